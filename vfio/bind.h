/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Moving devices to vfio-pci and back. Every change is journaled before it is made and
 * verified by reading sysfs back; a failure undoes what was done. Errors are -errno
 * with a one-line detail for people in *ret_detail (the caller frees it). */

#include <stdbool.h>

#include "journal.h"
#include "topology.h"

#define VFIO_PCI_DRIVER "vfio-pci"

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
};

void bind_plan_done(struct bind_plan *p);

/* Works out which devices a bind of the requested ones must move, from the snapshot:
 * refuses bridges, devices without an IOMMU group, groups with other endpoints on host
 * drivers (unless BIND_GROUP), and devices the host is using (unless BIND_FORCE). */
int bind_plan_build(const struct topology *t, const struct pci_addr *req, size_t n_req,
                    unsigned flags, struct bind_plan *ret, char **ret_detail);

/* Binds one device to vfio-pci: journal, driver_override, unbind, drivers_probe, verify.
 * Already on vfio-pci with the override set: 0 and nothing changes. On failure the
 * device is put back as it was. */
int vfio_device_bind(const struct root *root, struct journal *j, const struct pci_addr *a,
                     bool persist, char **ret_detail);

/* Returns one device to what the journal recorded (or, with no usable entry, clears the
 * override and lets the kernel probe it) and verifies it; removes the entry. */
int vfio_device_restore(const struct root *root, struct journal *j, const struct pci_addr *a,
                        char **ret_detail);

/* Binds every device of the plan, restoring those already bound if one fails. */
int vfio_bind_plan(const struct root *root, struct journal *j, const struct bind_plan *p,
                   bool persist, char **ret_detail);
