/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Whether a device can be live-migrated with its guest. The kernel decides it: a VFIO
 * driver that implements migration answers VFIO_DEVICE_FEATURE_MIGRATION with the states
 * it can reach (STOP_COPY at least, P2P and PRE_COPY optionally), and a migration also
 * needs the pages the device writes to be tracked, by the device itself (DMA logging,
 * VFIO_DEVICE_FEATURE_DMA_LOGGING_START) or by the IOMMU (iommufd's dirty tracking,
 * IOMMU_GET_HW_INFO). vfio-pci implements none of it; only vendor variant drivers do.
 *
 * Without opening the device the answer comes from its driver alone: no for vfio-pci,
 * unknown for a variant. Opened, the kernel's own answer replaces it. */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "device.h"
#include "iommu.h"

struct vfio_migration {
        int capable;      /* 1, 0, or -1: only the kernel can tell (a variant driver) */
        bool from_kernel; /* asked on the opened device, not inferred from the driver */
        uint64_t states;  /* VFIO_MIGRATION_* of the kernel's answer */
        int dma_logging;  /* the device tracks its own writes: 1, 0, -1 not asked */
        int iommu_dirty;  /* the IOMMU tracks them (iommufd): 1, 0, -1 not asked */
        char driver[64];  /* the VFIO driver the answer is about; empty for none */
        char why[400];    /* one line for people */
};

/* The answer without asking the kernel, from the device's driver (NULL for none) and,
 * when it is on no VFIO driver, the VFIO driver a bind would give it (NULL when not
 * known). bridge: a bridge stays with the host. */
void vfio_migration_guess(const char *driver, const char *candidate, bool bridge,
                          struct vfio_migration *ret);

/* The kernel's answer for d, opened into m, bound to driver (its name as sysfs gives
 * it). Never fails: what the kernel did not answer is said in why. */
void vfio_migration_ask(struct vfio_iommu *m, struct vfio_device *d, const char *driver,
                        struct vfio_migration *ret);

/* {"capable", "source", "driver", "states", "dma_logging", "iommu_dirty_tracking",
 * "why"} (docs/json.md); NULL when out of memory. */
json_object *vfio_migration_to_json(const struct vfio_migration *mi);

/* {"capable", "source", "driver"}: the short form for lists of many devices. */
json_object *vfio_migration_to_json_brief(const struct vfio_migration *mi);

/* "yes", "no" or "unknown", then the reason: one line for vfioctl's text output. */
const char *vfio_migration_verdict(const struct vfio_migration *mi);
