/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Whether a device's interrupts are isolated, read from the topology snapshot (which
 * decodes each IOMMU unit's capabilities: VT-d ecap IR and cap PI, AMD-Vi) and the
 * kernel's switches. A device whose MSIs nothing remaps can write any interrupt message
 * and so reach every CPU's vectors: vfio refuses it unless told otherwise, and so does
 * vfiod, with the reason spelled out. */

#include <stdbool.h>

#include "root.h"
#include "topology.h"

enum irq_isolation {
        IRQ_ISOLATION_REMAPPED, /* the device's IOMMU unit remaps, and remapping is on */
        IRQ_ISOLATION_NONE,     /* nothing remaps the device's interrupts */
        IRQ_ISOLATION_UNKNOWN,  /* an IOMMU whose capabilities cannot be read here */
        _IRQ_ISOLATION_MAX,
        _IRQ_ISOLATION_INVALID = -1,
};

const char *irq_isolation_to_string(enum irq_isolation i);

struct interrupt_remap_status {
        enum irq_isolation isolation;
        const char *unit; /* the device's IOMMU unit (points into the snapshot), or NULL */
        bool unit_remaps; /* the unit implements interrupt remapping */
        bool posted;      /* ... and posts interrupts to vCPUs */
        const char *why;  /* a static phrase: why the isolation is what it is */
        enum tristate type1_allows_unsafe;   /* vfio_iommu_type1.allow_unsafe_interrupts */
        enum tristate iommufd_allows_unsafe; /* iommufd.allow_unsafe_interrupts */
};

/* Fills *ret for d. Reads the iommufd switch below r (the snapshot has type1's). */
void interrupt_remap_status_get(const struct root *r, const struct topology *t,
                                const struct pci_device *d, struct interrupt_remap_status *ret);

/* Whether d may be opened for DMA with respect to interrupts: 0 when they are remapped;
 * when they are not, 0 if the caller allows unsafe interrupts or the kernel switch of
 * the backend about to be used (iommufd's or type1's) is on, -EPERM otherwise. When the
 * answer is 0 without isolation the detail is a warning; on -EPERM it says what to do. */
int interrupt_remap_check_assignment(const struct interrupt_remap_status *s, const char *device,
                                     bool iommufd, bool allow_unsafe, char **ret_detail);
