/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "detail.h"
#include "device.h"
#include "dma.h"
#include "probe.h"

/* DMA completes on a QEMU timer (100 ms of virtual time) and TCG is slow: be patient. */
#define DMA_TIMEOUT_MS 5000
#define IRQ_TIMEOUT_MS 2000
/* After an interrupt arrives, how long to watch for a spurious second one. */
#define IRQ_SETTLE_MS 50
/* How long the kernel may take to log the fault. */
#define FAULT_LOG_MS 3000
/* dmar_fault()'s rate limit window (DEFAULT_RATELIMIT_INTERVAL), and a little more. */
#define FAULT_RATELIMIT_MS 5500
/* The memory the stray write must not reach. */
#define FAULT_PATTERN 0x5a

#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4

bool vfio_probe_can_drive(uint16_t vendor, uint16_t device)
{
        return vendor == EDU_VENDOR && device == EDU_DEVICE;
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

static void sleep_ms(long ms)
{
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static uint64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Reads the eventfd's counter (which resets it) when it fires within timeout_ms. */
static uint64_t eventfd_take(int fd, int timeout_ms)
{
        struct pollfd p = {.fd = fd, .events = POLLIN};
        uint64_t n = 0;

        if (poll(&p, 1, timeout_ms) <= 0 || read(fd, &n, sizeof(n)) != (ssize_t)sizeof(n))
                return 0;
        return n;
}

/* One interrupt, then a short watch for a spurious second: the count. */
static uint64_t irq_count(int fd)
{
        uint64_t n = eventfd_take(fd, IRQ_TIMEOUT_MS);

        if (n > 0) {
                sleep_ms(IRQ_SETTLE_MS);
                n += eventfd_take(fd, 0);
        }
        return n;
}

static bool edu_dma(volatile void *bar, uint64_t src, uint64_t dst, uint32_t cmd)
{
        uint64_t deadline = now_ms() + DMA_TIMEOUT_MS;

        mmio_write64(bar, EDU_REG_DMA_SRC, src);
        mmio_write64(bar, EDU_REG_DMA_DST, dst);
        mmio_write64(bar, EDU_REG_DMA_COUNT, EDU_BUFFER_SIZE);
        mmio_write64(bar, EDU_REG_DMA_CMD, cmd | EDU_DMA_START);
        while (mmio_read64(bar, EDU_REG_DMA_CMD) & EDU_DMA_START) {
                if (now_ms() > deadline)
                        return false;
                sleep_ms(1);
        }
        return true;
}

/* A DMA of edu's buffer, with its interrupt counted and acknowledged when irq_fd is
 * given. */
static bool edu_dma_counted(volatile void *bar, int irq_fd, uint64_t src, uint64_t dst,
                            uint32_t cmd, uint64_t *ret_irqs)
{
        bool done = edu_dma(bar, src, dst, cmd | (irq_fd >= 0 ? EDU_DMA_IRQ : 0));

        if (irq_fd >= 0) {
                *ret_irqs = irq_count(irq_fd);
                mmio_write32(bar, EDU_REG_IRQ_ACK, EDU_IRQ_DMA);
        }
        return done;
}

/* Looks for the IOMMU's fault report about the device and address in the kernel log,
 * read from kmsg (positioned before the DMA). */
static char *find_fault(int kmsg, const struct pci_addr *a, uint64_t iova)
{
        char dev[16], addr[24], rec[8192]; /* a whole kmsg record always fits */
        uint64_t deadline = now_ms() + FAULT_LOG_MS;

        /* VT-d says "[01:00.0] fault addr 0x300000", AMD-Vi "device=01:00.0 ...
         * address=0x300000": the bus/device/function and the address are in both. */
        snprintf(dev, sizeof(dev), "%02x:%02x.%x", a->bus, a->dev, a->fn);
        snprintf(addr, sizeof(addr), "0x%" PRIx64, iova);
        while (now_ms() < deadline) {
                ssize_t n = read(kmsg, rec, sizeof(rec) - 1);
                const char *msg;
                if (n < 0 && errno == EAGAIN) {
                        sleep_ms(20);
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

static void *anon_page(size_t n)
{
        void *b = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return b == MAP_FAILED ? NULL : b;
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
static void stray_write(const struct root *root, struct vfio_iommu *m, volatile void *bar,
                        int irq_fd, const struct pci_addr *a, uint8_t *target,
                        struct vfio_probe_result *r)
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
        r->fault_done = edu_dma_counted(bar, irq_fd, EDU_BUFFER, VFIO_PROBE_IOVA_FAULT,
                                        EDU_DMA_TO_RAM, &r->msi[2]);
        r->fault_changed = bytes_changed(target, sz);
        if (kmsg < 0)
                return;
        r->fault_line = find_fault(kmsg, a, VFIO_PROBE_IOVA_FAULT);
        if (!r->fault_line) {
                /* The kernel prints at most a few IOMMU faults per 5 s and drops the
                 * rest: after the window, one more try. */
                sleep_ms(FAULT_RATELIMIT_MS);
                if (edu_dma(bar, EDU_BUFFER, VFIO_PROBE_IOVA_FAULT, EDU_DMA_TO_RAM)) {
                        r->fault_line = find_fault(kmsg, a, VFIO_PROBE_IOVA_FAULT);
                        r->fault_retried = r->fault_line;
                }
                r->fault_changed = bytes_changed(target, sz);
        }
}

void vfio_probe_edu_dma(const struct root *root, struct vfio_iommu *m, volatile void *bar,
                        int irq_fd, const struct pci_addr *a, struct vfio_probe_result *ret)
{
        const size_t sz = VFIO_PROBE_BYTES;
        _cleanup_close_ int memfd = -EBADF;
        _cleanup_free_ char *why = NULL;
        uint8_t *src = NULL, *target = NULL, back[VFIO_PROBE_BYTES];
        void *dst = NULL;
        int q;

        *ret = (struct vfio_probe_result){.irqs = irq_fd >= 0};
        src = anon_page(sz);
        target = anon_page(sz);
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

        ret->to_device =
                edu_dma_counted(bar, irq_fd, VFIO_PROBE_IOVA_SRC, EDU_BUFFER, 0, &ret->msi[0]);
        ret->to_ram = edu_dma_counted(bar, irq_fd, EDU_BUFFER, VFIO_PROBE_IOVA_DST, EDU_DMA_TO_RAM,
                                      &ret->msi[1]);
        ret->round_trip = memcmp(src, dst, sz) == 0;
        ret->memfd_backing =
                pread(memfd, back, sz, (off_t)sz) == (ssize_t)sz && memcmp(src, back, sz) == 0;

        stray_write(root, m, bar, irq_fd, a, target, ret);
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
        enum vfio_backend b;
        volatile void *bar = NULL;
        uint64_t bar_size = 0;
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
                                    vfio_backend_to_string(b), why ? why : strerror(-r));
        r = vfio_device_open(m, a, &d, &why);
        if (r < 0)
                return detail_errno(ret_detail, r, "%s: cannot open through %s: %s", name,
                                    vfio_backend_to_string(b), why ? why : strerror(-r));
        /* Config space says what the device is, whatever sysfs said. */
        if (vfio_device_region_read(d, VFIO_PCI_CONFIG_REGION_INDEX, 0, &ids, sizeof(ids)) < 0 ||
            !vfio_probe_can_drive(ids & 0xffff, ids >> 16))
                return detail_errno(ret_detail, -EOPNOTSUPP,
                                    "%s (%04x:%04x) has no DMA engine the probe can drive "
                                    "(only QEMU's edu, %04x:%04x)",
                                    name, ids & 0xffff, ids >> 16, EDU_VENDOR, EDU_DEVICE);
        free(why);
        why = NULL;
        r = vfio_device_map_region(d, VFIO_PCI_BAR0_REGION_INDEX, &bar, &bar_size, &why);
        if (r >= 0 && bar_size < EDU_BAR_MIN)
                r = -ERANGE;
        if (r < 0)
                return detail_errno(ret_detail, r, "%s: cannot map BAR0: %s", name,
                                    why ? why : strerror(-r));
        r = vfio_device_enable_command(d, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, &why);
        if (r < 0)
                return detail_errno(ret_detail, r, "%s: cannot enable bus mastering: %s", name,
                                    why ? why : strerror(-r));
        vfio_probe_edu_dma(root, m, bar, -1, a, ret);
        if (ret_backend)
                *ret_backend = b;
        return 0;
}
