/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Moving devices to vfio-pci (or a variant of it, vfio/variant.h) and back. Every change
 * is journaled before it is made and verified by reading sysfs back; a failure undoes
 * what was done. Errors are -errno with a one-line detail for people in *ret_detail (the
 * caller frees it). */

#include <stdbool.h>

#include "journal.h"
#include "modules.h"
#include "topology.h"

enum {
        BIND_GROUP = 1u << 0,   /* take every endpoint of the device's IOMMU group */
        BIND_FORCE = 1u << 1,   /* take devices the host is using */
        BIND_PERSIST = 1u << 2, /* recorded for re-assignment at boot */
};

struct bind_plan {
        struct pci_addr *devices; /* in the order they are bound */
        size_t n_devices;
        char **notes; /* what the plan decided and why, for --dry-run and logs */
        size_t n_notes;
        char **drivers; /* the VFIO driver of each device (bind_plan_choose_drivers()), or
                         * NULL before the choice: vfio-pci for all */
        char **modules; /* the module that registers each of them */
};

void bind_plan_done(struct bind_plan *p);

/* Works out which devices a bind of the requested ones must move, from the snapshot:
 * refuses bridges, devices without an IOMMU group, groups with other endpoints on host
 * drivers (unless BIND_GROUP), and devices the host is using (unless BIND_FORCE). */
int bind_plan_build(const struct topology *t, const struct pci_addr *req, size_t n_req,
                    unsigned flags, struct bind_plan *ret, char **ret_detail);

/* Chooses the VFIO driver of every device of the plan: forced (a name
 * vfio_candidate_named() takes) for all when not NULL; else the VFIO driver a device is on
 * already, so that a bind never moves a device between VFIO drivers unasked; else its
 * candidate (vfio_candidate_find()). A device going to a variant gets a note saying why.
 * Reads sysfs and modules.alias only. -EINVAL for a forced name that is no VFIO driver. */
int bind_plan_choose_drivers(const struct root *root, struct bind_plan *p, const char *forced,
                             char **ret_detail);

/* After bind_plan_choose_drivers(): device a of the plan goes to driver instead (a name
 * vfio_candidate_named() takes; -EINVAL when it is none). A device not in the plan is no
 * error: nothing changes. */
int bind_plan_force_driver(const struct root *root, struct bind_plan *p, const struct pci_addr *a,
                           const char *driver, char **ret_detail);

/* The VFIO driver device i of the plan goes to: vfio-pci until drivers are chosen. */
const char *bind_plan_driver(const struct bind_plan *p, size_t i);

/* Makes every driver of the plan available (vfio_driver_need()) before any device is
 * touched. *ret_loaded (when not NULL) gets the modules loaded, NULL-terminated, or NULL. */
int bind_plan_need_drivers(const struct root *root, const struct bind_plan *p, char ***ret_loaded,
                           char **ret_detail);

/* Binds one device to driver (NULL: vfio-pci), which must be a VFIO driver: journal
 * (recording the driver), driver_override, unbind, drivers_probe, verify. Already on
 * driver with the override set: 0 and nothing changes. On failure the device is put back
 * as it was. */
int vfio_device_bind(const struct root *root, struct journal *j, const struct pci_addr *a,
                     const char *driver, bool persist, char **ret_detail);

/* Returns one device to what the journal recorded (or, with no usable entry, clears the
 * override and lets the kernel probe it) and verifies it; removes the entry. */
int vfio_device_restore(const struct root *root, struct journal *j, const struct pci_addr *a,
                        char **ret_detail);

/* Binds every device of the plan to its driver (bind_plan_driver()), restoring those
 * already bound if one fails. */
int vfio_bind_plan(const struct root *root, struct journal *j, const struct bind_plan *p,
                   bool persist, char **ret_detail);
