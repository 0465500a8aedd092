/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <linux/pci_regs.h>

#include "dma.h"
#include "irq.h"
#include "selftest.h"
#include "test-device.h"
#include "detail.h"

/* The bad requests' IOVAs: clear of the DMA probe's (probe.h). */
#define IOVA_CHECKS 0x400000

void vfio_selftest_done(struct vfio_selftest *st)
{
        for (size_t i = 0; i < st->n_results; i++)
                free(st->results[i].detail);
        free(st->results);
        for (size_t i = 0; i < st->n_inputs; i++)
                free(st->inputs[i].message);
        free(st->inputs);
        vfio_probe_result_done(&st->dma);
        *st = (struct vfio_selftest){0};
}

/* Keeps r (taking its detail) and shows it. A result that cannot be kept for lack of
 * memory is still shown, and a check still counted. */
static void record(struct vfio_selftest *st, struct vfio_selftest_result *r)
{
        struct vfio_selftest_result *n;

        if (r->kind == VFIO_SELFTEST_CHECK) {
                st->n_checks++;
                st->n_failed += !r->ok;
        }
        if (st->observe)
                st->observe(r, st->userdata);
        n = reallocarray(st->results, st->n_results + 1, sizeof(*n));
        if (!n) {
                free(r->detail);
                return;
        }
        st->results = n;
        st->results[st->n_results++] = *r;
}

void vfio_selftest_check(struct vfio_selftest *st, const char *id, bool ok, const char *fmt, ...)
{
        struct vfio_selftest_result r = {.kind = VFIO_SELFTEST_CHECK, .ok = ok};
        va_list ap;

        snprintf(r.id, sizeof(r.id), "%s", id);
        va_start(ap, fmt);
        if (vasprintf(&r.detail, fmt, ap) < 0)
                r.detail = NULL;
        va_end(ap);
        record(st, &r);
}

void vfio_selftest_warn(struct vfio_selftest *st, const char *fmt, ...)
{
        struct vfio_selftest_result r = {.kind = VFIO_SELFTEST_WARNING};
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&r.detail, fmt, ap) < 0)
                r.detail = NULL;
        va_end(ap);
        if (r.detail)
                record(st, &r);
}

const char *vfio_selftest_errno_name(int e)
{
        const char *n = e ? strerrorname_np(e) : "0";

        return n ? n : "?";
}

int vfio_selftest_reset(struct vfio_selftest *st, char **ret_detail)
{
        _cleanup_free_ char *why = NULL;
        int q = vfio_device_ioctl_reset(st->d, &why);

        if (q == -ENOTTY) {
                *ret_detail = TAKE_PTR(why);
                return q;
        }
        vfio_selftest_check(st, "device.reset", q >= 0, "%s",
                            q >= 0 ? "VFIO_DEVICE_RESET succeeded" : why);
        return q;
}

int vfio_selftest_ranges(struct vfio_selftest *st, const struct iova_range **ret, size_t *ret_n,
                         uint64_t *ret_page_size)
{
        _cleanup_free_ char *why = NULL;
        int q = vfio_dma_get_ranges(st->m, ret, ret_n, ret_page_size, &why);

        if (q < 0)
                vfio_selftest_check(st, "iommu.ranges", false, "%s", why);
        return q;
}

/* The request's outcome: kept for the figures, and a check of the errno. Takes *why. */
static void input_case(struct vfio_selftest *st, const char *id, int got, int want, char **why)
{
        const char *msg = *why;
        struct vfio_selftest_input *n;

        vfio_selftest_check(st, id, got == want, "%s%s%s%s (expected %s)", got ? "-" : "",
                            vfio_selftest_errno_name(-got), msg && got ? ": " : "",
                            msg && got ? msg : "", vfio_selftest_errno_name(-want));
        n = reallocarray(st->inputs, st->n_inputs + 1, sizeof(*n));
        if (!n) {
                free(*why);
                *why = NULL;
                return;
        }
        st->inputs = n;
        st->inputs[st->n_inputs++] = (struct vfio_selftest_input){
                .id = id,
                .got = got,
                .want = want,
                .message = TAKE_PTR(*why),
        };
}

/* An IOVA outside every usable range: the first hole between ranges (the MSI window on
 * x86), or past the end of the last range; 0 when there is none. */
static uint64_t iova_outside(const struct iova_range *r, size_t n, uint64_t pg)
{
        if (n > 1)
                return r[0].last + 1;
        if (n == 1 && r[0].last < UINT64_MAX - pg)
                return (r[0].last + 1) & ~(pg - 1);
        return 0;
}

/* Bad requests are refused with the right errno and a message, and leave nothing
 * behind: the same range maps again afterwards. */
static void input_test(struct vfio_selftest *st)
{
        _cleanup_free_ char *why = NULL;
        struct vfio_iommu *m = st->m;
        const struct iova_range *r;
        uint64_t pg = 4096, base = IOVA_CHECKS, outside;
        const unsigned rw = VFIO_DMA_READ_WRITE;
        uint8_t *buf;
        size_t n = 0;

        st->inputs_ran = true;
        if (vfio_dma_get_ranges(m, &r, &n, &pg, &why) < 0 ||
            !(buf = vfio_test_anon_pages(8 * pg))) {
                vfio_selftest_check(st, "input.setup", false, "%s", why ? why : "out of memory");
                return;
        }
        free(why);
        why = NULL;
        input_case(st, "input.map", vfio_dma_map(m, buf, base, 2 * pg, rw, &why), 0, &why);
        input_case(st, "input.overlap", vfio_dma_map(m, buf + 2 * pg, base + pg, 2 * pg, rw, &why),
                   -EEXIST, &why);
        input_case(st, "input.unaligned_iova",
                   vfio_dma_map(m, buf + 4 * pg, base + 8 * pg + pg / 2, pg, rw, &why), -EINVAL,
                   &why);
        input_case(st, "input.unaligned_size",
                   vfio_dma_map(m, buf + 4 * pg, base + 8 * pg, pg / 2, rw, &why), -EINVAL, &why);
        outside = iova_outside(r, n, pg);
        if (n > 0 && outside)
                input_case(st, "input.outside_ranges",
                           vfio_dma_map(m, buf + 4 * pg, outside, pg, rw, &why), -ERANGE, &why);
        else
                vfio_selftest_check(st, "input.outside_ranges", true,
                                    "skipped: the IOVA ranges leave no address outside them");
        input_case(st, "input.unmap_never_mapped", vfio_dma_unmap(m, base + 0x100000, pg, &why),
                   -ENOENT, &why);
        input_case(st, "input.unmap_split", vfio_dma_unmap(m, base, pg, &why), -EINVAL, &why);
        input_case(st, "input.unmap", vfio_dma_unmap(m, base, 2 * pg, &why), 0, &why);
        /* Had a refused request left a mapping in the kernel, this would be -EEXIST. */
        input_case(st, "input.no_leak", vfio_dma_map(m, buf, base, 2 * pg, rw, &why), 0, &why);
        input_case(st, "input.no_leak_unmap", vfio_dma_unmap(m, base, 2 * pg, &why), 0, &why);
        vfio_selftest_check(st, "input.table_empty", vfio_dma_table(m)->n == 0,
                            "%zu mapping%s left in the handle's table", vfio_dma_table(m)->n,
                            vfio_dma_table(m)->n == 1 ? "" : "s");
        munmap(buf, 8 * pg);
}

static const char *msi_text(uint64_t n, char buf[static 64])
{
        snprintf(buf, 64, "the MSI eventfd fired %" PRIu64 " time%s", n, n == 1 ? "" : "s");
        return buf;
}

/* The checks of the round trip through the device, once both buffers were mapped. */
static void dma_round_trip_checks(struct vfio_selftest *st, const char *name,
                                  const struct vfio_probe_result *res)
{
        char t[64];

        if (res->to_device)
                vfio_selftest_check(st, "dma.to_device", true,
                                    "%s read 4 KiB from IOVA 0x100000 into its buffer", name);
        else
                vfio_selftest_check(st, "dma.to_device", false, "the DMA did not complete");
        vfio_selftest_check(st, "dma.to_device.msi", res->msi[0] == 1, "%s",
                            msi_text(res->msi[0], t));
        if (res->to_ram)
                vfio_selftest_check(st, "dma.to_ram", true, "%s wrote its buffer to IOVA 0x200000",
                                    name);
        else
                vfio_selftest_check(st, "dma.to_ram", false, "the DMA did not complete");
        vfio_selftest_check(st, "dma.to_ram.msi", res->msi[1] == 1, "%s", msi_text(res->msi[1], t));
        vfio_selftest_check(st, "dma.round_trip", res->round_trip, "%s",
                            res->round_trip ? "the 4 KiB came back intact"
                                            : "the data differs after the round trip");
        vfio_selftest_check(st, "dma.memfd_backing", res->memfd_backing, "%s",
                            res->memfd_backing ? "the memfd holds the data at offset 4096"
                                               : "the memfd does not hold the data");
}

/* The checks of the stray write to the unmapped IOVA. */
static void dma_fault_checks(struct vfio_selftest *st, const struct vfio_probe_result *res)
{
        bool untouched = res->fault_changed == 0;
        char t[64];

        vfio_selftest_check(st, "dma.fault.setup", !res->fault_setup_error, "%s",
                            res->fault_setup_error ? res->fault_setup_error
                                                   : "IOVA 0x300000 mapped and unmapped again");
        vfio_selftest_check(st, "dma.fault.untouched", untouched && res->fault_done, "%s",
                            !res->fault_done ? "the DMA did not complete"
                            : untouched ? "a DMA to the unmapped IOVA 0x300000 left the memory "
                                          "untouched"
                                        : "memory behind the unmapped IOVA was written");
        vfio_selftest_check(st, "dma.fault.msi", res->msi[2] == 1, "%s", msi_text(res->msi[2], t));
        if (res->kmsg)
                vfio_selftest_check(
                        st, "dma.fault.logged", res->fault_line, "%s%s",
                        res->fault_line ? res->fault_line
                                        : "no IOMMU fault naming the device and IOVA 0x300000 "
                                          "in the kernel log, twice in 3 s",
                        res->fault_retried ? " (on a second try: the kernel rate-limits these)"
                                           : "");
        else
                vfio_selftest_warn(st, "cannot read the kernel log (/dev/kmsg): the IOMMU fault "
                                       "cannot be confirmed here (look for it in dmesg)");
}

/* The DMA fault probe with interrupts, each step a check of its own. */
static void dma_test(struct vfio_selftest *st, const struct vfio_test_device *t,
                     struct irq_set *msi)
{
        const struct vfio_probe_result *res = &st->dma;

        st->dma_ran = true;
        vfio_probe_dma(st->root, st->m, t, msi, &st->addr, &st->dma);
        if (res->stop == VFIO_PROBE_STOP_SETUP) {
                vfio_selftest_check(st, "dma.setup", false, "%s", strna(res->stop_detail));
                return;
        }
        vfio_selftest_check(st, "dma.map_user", res->stop != VFIO_PROBE_STOP_MAP_USER, "%s",
                            res->stop == VFIO_PROBE_STOP_MAP_USER
                                    ? strna(res->stop_detail)
                                    : "4 KiB of anonymous memory mapped at IOVA 0x100000, "
                                      "device-readable");
        if (res->stop == VFIO_PROBE_STOP_MAP_USER)
                return;
        vfio_selftest_check(st, "dma.map_memfd", res->stop != VFIO_PROBE_STOP_MAP_MEMFD, "%s",
                            res->stop == VFIO_PROBE_STOP_MAP_MEMFD
                                    ? strna(res->stop_detail)
                                    : "memfd page 1 mapped at IOVA 0x200000, device-writable");
        if (res->stop == VFIO_PROBE_STOP_MAP_MEMFD)
                return;
        dma_round_trip_checks(st, t->ops->name, res);
        dma_fault_checks(st, res);
}

/* Wires one vector of index (MSI or INTx) to an eventfd, checked, then has the device
 * raise its interrupt there: *ret_n is how many times it fired. */
static int irq_wire_and_raise(struct vfio_selftest *st, const struct vfio_test_device *t,
                              unsigned index, struct irq_set **ret, uint64_t *ret_n)
{
        _cleanup_(irq_set_freep) struct irq_set *s = NULL;
        _cleanup_free_ char *why = NULL;
        bool msi = index == VFIO_PCI_MSI_IRQ_INDEX;
        int q;

        q = irq_set_enable(vfio_device_fd(st->d), index, 1, &s, &why);
        vfio_selftest_check(st, msi ? "irq.msi_enable" : "irq.intx_enable", q >= 0, "%s",
                            q < 0 ? why
                            : msi ? "MSI vector 0 wired to an eventfd"
                                  : "INTx wired to an eventfd");
        if (q < 0)
                return q;
        t->ops->irq_raise(t);
        *ret_n = vfio_test_irq_count(s, 0);
        t->ops->irq_ack(t);
        *ret = TAKE_PTR(s);
        return 0;
}

/* MSI vector 0 raised by the device reaches its eventfd; *ret_msi stays enabled. */
static int msi_test(struct vfio_selftest *st, const struct vfio_test_device *t,
                    struct irq_set **ret_msi)
{
        uint64_t n = 0;
        int q = irq_wire_and_raise(st, t, VFIO_PCI_MSI_IRQ_INDEX, ret_msi, &n);

        if (q < 0)
                return q;
        vfio_selftest_check(st, "irq.msi", n == 1,
                            "an interrupt raised by the device fired the eventfd %" PRIu64
                            " time%s",
                            n, n == 1 ? "" : "s");
        return 0;
}

/* INTx: the kernel masks it on each interrupt; ack the device, then unmask. */
static void intx_test(struct vfio_selftest *st, const struct vfio_test_device *t)
{
        _cleanup_(irq_set_freep) struct irq_set *intx = NULL;
        _cleanup_free_ char *why = NULL;
        uint64_t n = 0;
        int q;

        if (irq_wire_and_raise(st, t, VFIO_PCI_INTX_IRQ_INDEX, &intx, &n) < 0)
                return;
        q = irq_set_unmask(intx, &why);
        vfio_selftest_check(st, "irq.intx", n == 1 && q >= 0,
                            "the eventfd fired %" PRIu64 " time%s%s%s", n, n == 1 ? "" : "s",
                            q < 0 ? "; " : ", unmasked", q < 0 ? why : "");
}

/* A test device: BAR0 and its registers, MSI without DMA, DMA when there is an IOMMU,
 * then INTx. */
static void driver_test(struct vfio_selftest *st, const struct vfio_test_driver_ops *ops)
{
        _cleanup_(irq_set_freep) struct irq_set *msi = NULL;
        _cleanup_free_ char *why = NULL;
        struct vfio_test_device t = {.ops = ops};
        char id[48];
        int q;

        q = vfio_device_map_region(st->d, VFIO_PCI_BAR0_REGION_INDEX, &t.bar, &t.bar_size, &why);
        snprintf(id, sizeof(id), "%s.bar0_mmap", ops->name);
        vfio_selftest_check(st, id, q >= 0 && t.bar_size >= ops->bar_min, "%s",
                            q < 0 ? why : "BAR0 mapped into the process");
        if (q < 0 || t.bar_size < ops->bar_min)
                return;
        q = vfio_device_enable_command(st->d, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, &why);
        snprintf(id, sizeof(id), "%s.bus_master", ops->name);
        vfio_selftest_check(st, id, q >= 0, "%s",
                            q >= 0 ? "memory decoding and bus mastering on" : why);
        ops->check_registers(&t, st);

        if (msi_test(st, &t, &msi) < 0)
                return;
        if (st->noiommu)
                vfio_selftest_check(st, "dma.skipped", true,
                                    "no-IOMMU mode: no DMA mapping attempted, no DMA started");
        else {
                dma_test(st, &t, msi);
                input_test(st);
        }
        msi = irq_set_free(msi);
        intx_test(st, &t);
}

/* Any other device: MSI-X wiring and resizing, the part of the test that needs no
 * knowledge of the device. */
static void msix_test(struct vfio_selftest *st)
{
        _cleanup_(irq_set_freep) struct irq_set *s = NULL;
        _cleanup_free_ char *why = NULL;
        struct vfio_irq_info ii;
        bool in_place = false;
        uint32_t grow;
        int q;

        if (vfio_device_get_irq_info(st->d, VFIO_PCI_MSIX_IRQ_INDEX, &ii, NULL) < 0 ||
            ii.count == 0)
                return;
        q = irq_set_enable(vfio_device_fd(st->d), VFIO_PCI_MSIX_IRQ_INDEX, 1, &s, &why);
        vfio_selftest_check(st, "irq.msix_enable", q >= 0, "%s",
                            q >= 0 ? "1 MSI-X vector enabled" : why);
        if (q < 0)
                return;
        grow = ii.count < 4 ? ii.count : 4;
        q = irq_set_resize(s, grow, &in_place, &why);
        vfio_selftest_check(st, "irq.msix_resize", q >= 0 && irq_set_count(s) == grow, "%s%s",
                            q >= 0 ? "resized to the new count " : why,
                            q < 0      ? ""
                            : in_place ? "in place (dynamic MSI-X allocation)"
                                       : "by disabling and enabling again (NORESIZE)");
        q = irq_set_disable(s, &why);
        vfio_selftest_check(st, "irq.msix_disable", q >= 0, "%s", q >= 0 ? "MSI-X disabled" : why);
}

void vfio_selftest_run(struct vfio_selftest *st)
{
        const struct vfio_test_driver_ops *ops;
        uint32_t vd = 0;

        /* Config space says what the device is, whatever the snapshot could read. */
        if (vfio_device_region_read(st->d, VFIO_PCI_CONFIG_REGION_INDEX, PCI_VENDOR_ID, &vd,
                                    sizeof(vd)) < 0)
                vd = 0;
        st->ids = vd;
        ops = vfio_test_driver_find(vd & 0xffff, vd >> 16);
        if (ops)
                driver_test(st, ops);
        else {
                if (!st->noiommu)
                        input_test(st);
                msix_test(st);
        }
        if (st->noiommu) {
                /* The library refuses without asking the kernel: prove it. */
                _cleanup_free_ char *why = NULL;
                int q = vfio_dma_map(st->m, st, 0, 4096, VFIO_DMA_READ_WRITE, &why);

                vfio_selftest_check(st, "dma.noiommu_refused", q == -EOPNOTSUPP, "%s",
                                    detail_or_strerror(why, q));
        }
}
