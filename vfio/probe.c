/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/pci_regs.h>

#include "detail.h"
#include "device.h"
#include "dma.h"
#include "probe.h"
#include "test-device.h"

/* How long the kernel may take to log the fault. */
#define FAULT_LOG_MS 3000
/* dmar_fault()'s rate limit window (DEFAULT_RATELIMIT_INTERVAL), and a little more. */
#define FAULT_RATELIMIT_MS 5500
/* The memory the stray write must not reach. */
#define FAULT_PATTERN 0x5a

bool vfio_probe_can_drive(uint16_t vendor, uint16_t device)
{
        return vfio_test_driver_find(vendor, device) != NULL;
}

void vfio_probe_result_done(struct vfio_probe_result *r)
{
        free(r->stop_detail);
        free(r->fault_setup_error);
        free(r->fault_line);
        *r = (struct vfio_probe_result){0};
}

bool vfio_probe_result_blocked(const struct vfio_probe_result *r)
{
        return r->stop == VFIO_PROBE_RAN && r->round_trip && r->fault_done &&
               r->fault_changed == 0 && r->fault_line;
}

/* A DMA of the device's buffer, with its interrupt counted and acknowledged when msi is
 * given. */
static bool dma_counted(const struct vfio_test_device *t, struct irq_set *msi, uint64_t iova,
                        bool to_ram, uint64_t *ret_irqs)
{
        bool done = t->ops->dma(t, iova, VFIO_PROBE_BYTES, to_ram, msi != NULL);

        if (msi) {
                *ret_irqs = vfio_test_irq_count(msi, 0);
                t->ops->dma_irq_ack(t);
        }
        return done;
}

/* Looks for the IOMMU's fault report about the device and address in the kernel log,
 * read from kmsg (positioned before the DMA). */
static char *find_fault(int kmsg, const struct pci_addr *a, uint64_t iova)
{
        char dev[16], addr[24], rec[8192]; /* a whole kmsg record always fits */
        uint64_t deadline = vfio_test_now_ms() + FAULT_LOG_MS;

        /* VT-d says "[01:00.0] fault addr 0x300000", AMD-Vi "device=01:00.0 ...
         * address=0x300000": the bus/device/function and the address are in both. */
        snprintf(dev, sizeof(dev), "%02x:%02x.%x", a->bus, a->dev, a->fn);
        snprintf(addr, sizeof(addr), "0x%" PRIx64, iova);
        while (vfio_test_now_ms() < deadline) {
                ssize_t n = read(kmsg, rec, sizeof(rec) - 1);
                const char *msg;
                if (n < 0 && errno == EAGAIN) {
                        vfio_test_sleep_ms(20);
                        continue;
                }
                if (n < 0 && errno == EPIPE) /* overwritten records: go on */
                        continue;
                if (n <= 0)
                        return NULL;
                rec[n] = '\0';
                msg = strchr(rec, ';');
                msg = msg ? msg + 1 : rec;
                if ((strstr(msg, "DMAR") || strstr(msg, "AMD-Vi") || strstr(msg, "fault")) &&
                    strstr(msg, dev) && strstr(msg, addr)) {
                        char *nl = strchr(msg, '\n');
                        if (nl)
                                *nl = '\0';
                        return strdup(msg);
                }
        }
        return NULL;
}

static size_t bytes_changed(const uint8_t *p, size_t n)
{
        size_t k = 0;

        for (size_t i = 0; i < n; i++)
                k += p[i] != FAULT_PATTERN;
        return k;
}

static void stop(struct vfio_probe_result *r, enum vfio_probe_stop where, char **why)
{
        r->stop = where;
        r->stop_detail = *why;
        *why = NULL;
}

/* The stray write: to an IOVA that was mapped (so the kernel knew it) and is no more.
 * The memory that was behind it must stay as it was. */
static void stray_write(const struct root *root, struct vfio_iommu *m,
                        const struct vfio_test_device *t, struct irq_set *msi,
                        const struct pci_addr *a, uint8_t *target, struct vfio_probe_result *r)
{
        const size_t sz = VFIO_PROBE_BYTES;
        _cleanup_close_ int kmsg = -EBADF;
        _cleanup_free_ char *why = NULL;
        int q;

        memset(target, FAULT_PATTERN, sz);
        q = vfio_dma_map(m, target, VFIO_PROBE_IOVA_FAULT, sz, VFIO_DMA_READ_WRITE, &why);
        if (q >= 0)
                q = vfio_dma_unmap(m, VFIO_PROBE_IOVA_FAULT, sz, &why);
        if (q < 0) {
                r->fault_setup_error = why ? TAKE_PTR(why) : strdup(strerror(-q));
                if (!r->fault_setup_error)
                        r->fault_setup_error = strdup("out of memory");
        }
        kmsg = root_openat(root, "dev/kmsg", O_RDONLY | O_NONBLOCK);
        if (kmsg >= 0 && lseek(kmsg, 0, SEEK_END) < 0)
                kmsg = safe_close(kmsg);
        r->kmsg = kmsg >= 0;
        r->fault_done = dma_counted(t, msi, VFIO_PROBE_IOVA_FAULT, true, &r->msi[2]);
        r->fault_changed = bytes_changed(target, sz);
        if (kmsg < 0)
                return;
        r->fault_line = find_fault(kmsg, a, VFIO_PROBE_IOVA_FAULT);
        if (!r->fault_line) {
                /* The kernel prints at most a few IOMMU faults per 5 s and drops the
                 * rest: after the window, one more try. */
                vfio_test_sleep_ms(FAULT_RATELIMIT_MS);
                if (t->ops->dma(t, VFIO_PROBE_IOVA_FAULT, sz, true, false)) {
                        r->fault_line = find_fault(kmsg, a, VFIO_PROBE_IOVA_FAULT);
                        r->fault_retried = r->fault_line;
                }
                r->fault_changed = bytes_changed(target, sz);
        }
}

void vfio_probe_dma(const struct root *root, struct vfio_iommu *m, const struct vfio_test_device *t,
                    struct irq_set *msi, const struct pci_addr *a, struct vfio_probe_result *ret)
{
        const size_t sz = VFIO_PROBE_BYTES;
        _cleanup_close_ int memfd = -EBADF;
        _cleanup_free_ char *why = NULL;
        uint8_t *src = NULL, *target = NULL, back[VFIO_PROBE_BYTES];
        void *dst = NULL;
        int q;

        *ret = (struct vfio_probe_result){.irqs = msi != NULL};
        src = vfio_test_anon_pages(sz);
        target = vfio_test_anon_pages(sz);
        memfd = memfd_create("vfiod-probe", MFD_CLOEXEC);
        if (!src || !target || memfd < 0 || ftruncate(memfd, 2 * (off_t)sz) < 0) {
                (void)detail_errno(&why, -errno, "cannot allocate the test buffers: %m");
                stop(ret, VFIO_PROBE_STOP_SETUP, &why);
                goto out;
        }
        for (size_t i = 0; i < sz; i++)
                src[i] = (uint8_t)(i * 7 + 0x3d + (i >> 8));

        q = vfio_dma_map(m, src, VFIO_PROBE_IOVA_SRC, sz, VFIO_DMA_DEVICE_READS, &why);
        if (q < 0) {
                if (!why)
                        (void)detail_errno(&why, q, "%s", strerror(-q));
                stop(ret, VFIO_PROBE_STOP_MAP_USER, &why);
                goto out;
        }
        /* The second page of the memfd: a window at a non-zero file offset. */
        q = vfio_dma_map_memfd(m, memfd, sz, VFIO_PROBE_IOVA_DST, sz, VFIO_DMA_DEVICE_WRITES, &dst,
                               &why);
        if (q < 0) {
                if (!why)
                        (void)detail_errno(&why, q, "%s", strerror(-q));
                stop(ret, VFIO_PROBE_STOP_MAP_MEMFD, &why);
                goto out;
        }
        memset(dst, 0, sz);

        ret->to_device = dma_counted(t, msi, VFIO_PROBE_IOVA_SRC, false, &ret->msi[0]);
        ret->to_ram = dma_counted(t, msi, VFIO_PROBE_IOVA_DST, true, &ret->msi[1]);
        ret->round_trip = memcmp(src, dst, sz) == 0;
        ret->memfd_backing =
                pread(memfd, back, sz, (off_t)sz) == (ssize_t)sz && memcmp(src, back, sz) == 0;

        stray_write(root, m, t, msi, a, target, ret);
out:
        /* Whatever of the two buffers is mapped (the range may span gaps). */
        if (vfio_dma_table(m)->n > 0)
                (void)vfio_dma_unmap(m, VFIO_PROBE_IOVA_SRC,
                                     VFIO_PROBE_IOVA_DST + sz - VFIO_PROBE_IOVA_SRC, NULL);
        if (src)
                munmap(src, sz);
        if (target)
                munmap(target, sz);
}

int vfio_probe_device(const struct root *root, const struct pci_addr *a, enum vfio_backend want,
                      struct vfio_probe_result *ret, enum vfio_backend *ret_backend,
                      char **ret_detail)
{
        _cleanup_(vfio_iommu_freep) struct vfio_iommu *m = NULL;
        _cleanup_(vfio_device_freep) struct vfio_device *d = NULL;
        _cleanup_free_ char *why = NULL;
        char name[PCI_ADDR_STRLEN];
        char drivers[128];
        enum vfio_backend b;
        struct vfio_test_device t = {0};
        uint32_t ids = 0;
        int r;

        pci_addr_format(a, name);
        r = vfio_backend_detect(root, a, &b, ret_detail);
        if (r < 0)
                return r;
        if (b == VFIO_BACKEND_NOIOMMU)
                return detail_errno(ret_detail, -EPERM,
                                    "%s is in a vfio no-IOMMU group: nothing translates its DMA, "
                                    "so a stray write would land in physical memory; not sent",
                                    name);
        if (want != _VFIO_BACKEND_INVALID)
                b = want;
        r = vfio_iommu_new(root, b, 0, &m, &why);
        if (r < 0)
                return detail_errno(ret_detail, r, "%s: cannot open %s: %s", name,
                                    vfio_backend_to_string(b), detail_or_strerror(why, r));
        r = vfio_device_open(m, a, &d, &why);
        if (r < 0)
                return detail_errno(ret_detail, r, "%s: cannot open through %s: %s", name,
                                    vfio_backend_to_string(b), detail_or_strerror(why, r));
        /* Config space says what the device is, whatever sysfs said. */
        if (vfio_device_region_read(d, VFIO_PCI_CONFIG_REGION_INDEX, PCI_VENDOR_ID, &ids,
                                    sizeof(ids)) < 0 ||
            !(t.ops = vfio_test_driver_find(ids & 0xffff, ids >> 16)))
                return detail_errno(ret_detail, -EOPNOTSUPP,
                                    "%s (%04x:%04x) has no DMA engine the probe can drive "
                                    "(only %s)",
                                    name, ids & 0xffff, ids >> 16,
                                    vfio_test_drivers_describe(drivers, sizeof(drivers)));
        free(why);
        why = NULL;
        r = vfio_device_map_region(d, VFIO_PCI_BAR0_REGION_INDEX, &t.bar, &t.bar_size, &why);
        if (r >= 0 && t.bar_size < t.ops->bar_min)
                r = -ERANGE;
        if (r < 0)
                return detail_errno(ret_detail, r, "%s: cannot map BAR0: %s", name,
                                    detail_or_strerror(why, r));
        r = vfio_device_enable_command(d, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, &why);
        if (r < 0)
                return detail_errno(ret_detail, r, "%s: cannot enable bus mastering: %s", name,
                                    detail_or_strerror(why, r));
        vfio_probe_dma(root, m, &t, NULL, a, ret);
        if (ret_backend)
                *ret_backend = b;
        return 0;
}
