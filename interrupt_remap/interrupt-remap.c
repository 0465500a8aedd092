/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "detail.h"
#include "interrupt-remap.h"
#include "macro.h"
#include "string-table.h"

static const char *const irq_isolation_table[_IRQ_ISOLATION_MAX] = {
        [IRQ_ISOLATION_REMAPPED] = "remapped",
        [IRQ_ISOLATION_NONE] = "none",
        [IRQ_ISOLATION_UNKNOWN] = "unknown",
};

DEFINE_STRING_TABLE_TO_STRING(irq_isolation, enum irq_isolation);

static enum tristate read_switch(const struct root *r, const char *path)
{
        _cleanup_free_ char *s = NULL;
        bool b;

        if (root_read_line(r, path, &s) < 0 || parse_boolean(s, &b) < 0)
                return TRI_UNKNOWN;
        return b ? TRI_YES : TRI_NO;
}

void interrupt_remap_status_get(const struct root *r, const struct topology *t,
                                const struct pci_device *d, struct interrupt_remap_status *ret)
{
        const struct iommu_unit *u = d->iommu_unit ? topology_find_unit(t, d->iommu_unit) : NULL;
        struct interrupt_remap_status s = {
                .isolation = IRQ_ISOLATION_UNKNOWN,
                .unit = u ? u->name : NULL,
                .type1_allows_unsafe = t->host.allow_unsafe_interrupts,
                .iommufd_allows_unsafe =
                        read_switch(r, "sys/module/iommufd/parameters/allow_unsafe_interrupts"),
        };

        if (!t->host.iommu_present) {
                s.isolation = IRQ_ISOLATION_NONE;
                s.why = "there is no IOMMU";
        } else if (!u)
                s.why = "the device has no IOMMU unit link";
        else if (u->kind == IOMMU_KIND_OTHER)
                s.why = "its IOMMU is of a kind whose capabilities vfiod does not decode";
        else if (u->kind == IOMMU_KIND_INTEL_VTD && !(u->have_cap && u->have_ecap))
                s.why = "its IOMMU unit's capability registers are unreadable";
        else {
                s.unit_remaps = u->interrupt_remapping;
                s.posted = u->posted_interrupts;
                if (!u->interrupt_remapping) {
                        s.isolation = IRQ_ISOLATION_NONE;
                        s.why = "its IOMMU unit does not implement interrupt remapping";
                } else if (t->host.ir_enabled == TRI_NO) {
                        s.isolation = IRQ_ISOLATION_NONE;
                        s.why = "interrupt remapping is implemented but switched off "
                                "(intremap=off, or x2APIC/firmware opt-out)";
                } else if (t->host.ir_enabled == TRI_UNKNOWN)
                        s.why = "whether remapping is on cannot be read (/proc/interrupts)";
                else {
                        s.isolation = IRQ_ISOLATION_REMAPPED;
                        s.why = s.posted ? "its IOMMU unit remaps and posts interrupts"
                                         : "its IOMMU unit remaps interrupts";
                }
        }
        *ret = s;
}

int interrupt_remap_check_assignment(const struct interrupt_remap_status *s, const char *device,
                                     bool iommufd, bool allow_unsafe, char **ret_detail)
{
        const char *knob = iommufd ? "iommufd.allow_unsafe_interrupts"
                                   : "vfio_iommu_type1.allow_unsafe_interrupts";
        enum tristate kernel = iommufd ? s->iommufd_allows_unsafe : s->type1_allows_unsafe;

        switch (s->isolation) {
        case IRQ_ISOLATION_REMAPPED:
                return 0;
        case IRQ_ISOLATION_UNKNOWN:
                return detail_errno(ret_detail, 0,
                                    "%s: cannot tell whether its interrupts are remapped (%s); the "
                                    "kernel will decide",
                                    device, s->why);
        default:
                break;
        }
        if (allow_unsafe)
                return detail_errno(
                        ret_detail, 0,
                        "WARNING: %s: its interrupts are not isolated (%s): it can send "
                        "any MSI to the host; going ahead because unsafe interrupts were "
                        "allowed%s",
                        device, s->why,
                        kernel == TRI_YES ? ""
                        : iommufd         ? ", but the kernel refuses unless "
                                            "iommufd.allow_unsafe_interrupts=1"
                                          : ", but the kernel refuses unless "
                                            "vfio_iommu_type1.allow_unsafe_"
                                            "interrupts=1");
        if (kernel == TRI_YES)
                return detail_errno(
                        ret_detail, 0,
                        "WARNING: %s: its interrupts are not isolated (%s); going ahead "
                        "because %s is on",
                        device, s->why, knob);
        return detail_errno(
                ret_detail, -EPERM,
                "%s: refusing to open it for DMA: its interrupts are not isolated (%s), "
                "so it could send any MSI to the host; pass --allow-unsafe-interrupts "
                "(and set %s=1) to accept that",
                device, s->why, knob);
}
