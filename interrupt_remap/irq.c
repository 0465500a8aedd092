/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "detail.h"
#include "fd-util.h"
#include "irq.h"
#include "macro.h"
#include "string-table.h"

struct irq_set {
        int device_fd; /* borrowed */
        unsigned index;
        uint32_t info_flags, max;
        int *fds; /* count entries, -EBADF where none */
        uint32_t count;
        bool enabled;
};

static const char *const irq_index_table[] = {
        [VFIO_PCI_INTX_IRQ_INDEX] = "INTx",   [VFIO_PCI_MSI_IRQ_INDEX] = "MSI",
        [VFIO_PCI_MSIX_IRQ_INDEX] = "MSI-X",  [VFIO_PCI_ERR_IRQ_INDEX] = "error",
        [VFIO_PCI_REQ_IRQ_INDEX] = "request",
};

DEFINE_STRING_TABLE_TO_STRING_FALLBACK(irq_index, unsigned, "unknown");

/* SET_IRQS with eventfds (or -1: release the vector) for [start, start + count). */
static int set_trigger(struct irq_set *s, uint32_t start, uint32_t count, const int *fds)
{
        size_t sz = sizeof(struct vfio_irq_set) + (size_t)count * sizeof(int32_t);
        _cleanup_free_ struct vfio_irq_set *set = calloc(1, sz);

        if (!set)
                return -ENOMEM;
        set->argsz = (uint32_t)sz;
        set->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
        set->index = s->index;
        set->start = start;
        set->count = count;
        for (uint32_t i = 0; i < count; i++)
                ((int32_t *)set->data)[i] = fds ? fds[i] : -1;
        return ioctl(s->device_fd, VFIO_DEVICE_SET_IRQS, set) < 0 ? negative_errno() : 0;
}

static int set_none(struct irq_set *s, uint32_t action, uint32_t start, uint32_t count)
{
        struct vfio_irq_set set = {
                .argsz = sizeof(set),
                .flags = VFIO_IRQ_SET_DATA_NONE | action,
                .index = s->index,
                .start = start,
                .count = count,
        };

        return ioctl(s->device_fd, VFIO_DEVICE_SET_IRQS, &set) < 0 ? negative_errno() : 0;
}

/* Grows the eventfd array to count, opening the new ones. */
static int open_fds(struct irq_set *s, uint32_t count)
{
        int *nf;

        if (count > s->count) {
                nf = reallocarray(s->fds, count, sizeof(*nf));
                if (!nf)
                        return -ENOMEM;
                s->fds = nf;
                for (uint32_t i = s->count; i < count; i++)
                        s->fds[i] = -EBADF;
        }
        for (uint32_t i = 0; i < count; i++)
                if (s->fds[i] < 0) {
                        s->fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                        if (s->fds[i] < 0)
                                return negative_errno();
                }
        return 0;
}

static int check_count(const struct irq_set *s, uint32_t count, char **ret_detail)
{
        if (count == 0)
                return detail_errno(ret_detail, -EINVAL,
                                    "enabling %s with no vector: disable it instead",
                                    irq_index_to_string(s->index));
        if (count > s->max)
                return detail_errno(ret_detail, -ERANGE, "%s has %u vector%s, %u asked for",
                                    irq_index_to_string(s->index), s->max, s->max == 1 ? "" : "s",
                                    count);
        return 0;
}

static int enable(struct irq_set *s, uint32_t count, char **ret_detail)
{
        int q = open_fds(s, count);

        if (q < 0)
                return detail_errno(ret_detail, q, "cannot create eventfds: %s", strerror(-q));
        s->count = count > s->count ? count : s->count;
        q = set_trigger(s, 0, count, s->fds);
        if (q < 0)
                return detail_errno(
                        ret_detail, q, "VFIO_DEVICE_SET_IRQS enabling %u %s vector%s: %s%s", count,
                        irq_index_to_string(s->index), count == 1 ? "" : "s", strerror(-q),
                        q == -EINVAL ? " (another interrupt type is enabled: disable it "
                                       "first)"
                                     : "");
        close_many(s->fds + count, s->count - count); /* left over from a larger former count */
        s->count = count;
        s->enabled = true;
        return 0;
}

int irq_set_enable(int device_fd, unsigned index, uint32_t count, struct irq_set **ret,
                   char **ret_detail)
{
        struct vfio_irq_info info = {.argsz = sizeof(info), .index = index};
        struct irq_set *s;
        int q;

        if (ioctl(device_fd, VFIO_DEVICE_GET_IRQ_INFO, &info) < 0)
                return detail_errno(ret_detail, negative_errno(),
                                    "VFIO_DEVICE_GET_IRQ_INFO(%s) failed: %m",
                                    irq_index_to_string(index));
        if (!(info.flags & VFIO_IRQ_INFO_EVENTFD) || info.count == 0)
                return detail_errno(ret_detail, -EOPNOTSUPP, "the device has no %s interrupt%s",
                                    irq_index_to_string(index),
                                    info.count ? " that signals an eventfd" : "");
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        *s = (struct irq_set){
                .device_fd = device_fd,
                .index = index,
                .info_flags = info.flags,
                .max = info.count,
        };
        q = check_count(s, count, ret_detail);
        if (q >= 0)
                q = enable(s, count, ret_detail);
        if (q < 0) {
                s->enabled = false;
                irq_set_free(s);
                return q;
        }
        *ret = s;
        return 0;
}

int irq_set_disable(struct irq_set *s, char **ret_detail)
{
        int q;

        if (!s->enabled)
                return 0;
        q = set_none(s, VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0);
        if (q < 0)
                return detail_errno(ret_detail, q, "VFIO_DEVICE_SET_IRQS disabling %s: %s",
                                    irq_index_to_string(s->index), strerror(-q));
        s->enabled = false;
        close_many(s->fds, s->count);
        return 0;
}

int irq_set_resize(struct irq_set *s, uint32_t count, bool *ret_in_place, char **ret_detail)
{
        uint32_t old = s->count;
        int q = check_count(s, count, ret_detail);

        if (q < 0)
                return q;
        if (s->enabled && count == old) {
                if (ret_in_place)
                        *ret_in_place = true;
                return 0;
        }
        /* Only MSI-X with dynamic allocation (no NORESIZE flag) takes vectors added or
         * released while enabled. */
        if (s->enabled && !(s->info_flags & VFIO_IRQ_INFO_NORESIZE) &&
            s->index == VFIO_PCI_MSIX_IRQ_INDEX) {
                if (count > old) {
                        q = open_fds(s, count);
                        if (q < 0)
                                return detail_errno(ret_detail, q, "cannot create eventfds: %s",
                                                    strerror(-q));
                        s->count = count;
                        q = set_trigger(s, old, count - old, s->fds + old);
                        if (q < 0) {
                                close_many(s->fds + old, s->count - old);
                                s->count = old;
                                return detail_errno(
                                        ret_detail, q,
                                        "VFIO_DEVICE_SET_IRQS adding MSI-X vectors %u-%u: "
                                        "%s",
                                        old, count - 1, strerror(-q));
                        }
                } else {
                        q = set_trigger(s, count, old - count, NULL);
                        if (q < 0)
                                return detail_errno(ret_detail, q,
                                                    "VFIO_DEVICE_SET_IRQS releasing MSI-X vectors "
                                                    "%u-%u: %s",
                                                    count, old - 1, strerror(-q));
                        close_many(s->fds + count, s->count - count);
                        s->count = count;
                }
                if (ret_in_place)
                        *ret_in_place = true;
                return 0;
        }
        q = irq_set_disable(s, ret_detail);
        if (q < 0)
                return q;
        q = enable(s, count, ret_detail);
        if (q < 0)
                return q;
        if (ret_in_place)
                *ret_in_place = false;
        return 0;
}

int irq_set_unmask(struct irq_set *s, char **ret_detail)
{
        int q;

        if (s->index != VFIO_PCI_INTX_IRQ_INDEX)
                return 0; /* message-signalled interrupts are never masked by vfio */
        q = set_none(s, VFIO_IRQ_SET_ACTION_UNMASK, 0, 1);
        if (q < 0)
                return detail_errno(ret_detail, q, "VFIO_DEVICE_SET_IRQS unmasking INTx: %s",
                                    strerror(-q));
        return 0;
}

struct irq_set *irq_set_free(struct irq_set *s)
{
        if (!s)
                return NULL;
        (void)irq_set_disable(s, NULL);
        close_many(s->fds, s->count);
        free(s->fds);
        free(s);
        return NULL;
}

uint32_t irq_set_count(const struct irq_set *s)
{
        return s->enabled ? s->count : 0;
}

uint32_t irq_set_info_flags(const struct irq_set *s)
{
        return s->info_flags;
}

uint32_t irq_set_max(const struct irq_set *s)
{
        return s->max;
}

int irq_set_eventfd(const struct irq_set *s, uint32_t vector)
{
        return s->enabled && vector < s->count ? s->fds[vector] : -EBADF;
}

int irq_set_wait(struct irq_set *s, uint32_t vector, int timeout_ms, uint64_t *ret_count)
{
        int fd = irq_set_eventfd(s, vector);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        uint64_t v;
        int q;

        if (fd < 0)
                return -EBADF;
        do
                q = poll(&p, 1, timeout_ms);
        while (q < 0 && errno == EINTR);
        if (q < 0)
                return negative_errno();
        if (q == 0) {
                *ret_count = 0;
                return 0;
        }
        if (read(fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
                return errno == EAGAIN ? (*ret_count = 0, 0) : negative_errno();
        *ret_count = v;
        return 0;
}
