/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Shared by the files that together build one snapshot; not part of the module's API. */

#include <dirent.h>

#include "macro.h"
#include "topology.h"

struct scan_ctx {
        const struct root *root;
        struct topology *t;
        unsigned flags;
        char **checked_drivers; /* driver names whose directory was seen to exist */
        size_t n_checked_drivers;
        /* A scoped scan: every PCI device on the host, sorted, of which the snapshot
         * holds only a part. NULL for a whole scan. */
        struct pci_addr *host_devices;
        size_t n_host_devices;
};

/* Records "<message>: <strerror(-error)>" as a snapshot warning. Returns 0, or -ENOMEM
 * when even the warning could not be stored. */
int scan_warn(struct scan_ctx *c, int error, const char *fmt, ...) _printf_(3, 4);

/* A directory stream of relpath below the root, for a listing that may be absent: *ret
 * is NULL when relpath does not exist, or when it cannot be read (a warning says so).
 * Returns 0, or -ENOMEM. */
int scan_opendir(struct scan_ctx *c, const char *relpath, DIR **ret);

int scan_iommu_units(struct scan_ctx *c);
int scan_host_usage(struct scan_ctx *c);
int scan_host_facts(struct scan_ctx *c);
int scan_names(struct scan_ctx *c);

/* The index of the device with this address, or -1. */
int topology_index_of(const struct topology *t, const struct pci_addr *a);

/* The index of the device owning a class link like
 * "../../devices/pci0000:00/0000:00:03.0/virtio0/net/eth0": the deepest path component
 * that is a PCI device of the host. -1 when there is none, or when a scoped scan left
 * that device out (its interfaces are not an ancestor's). */
int path_owning_pci_device(const struct scan_ctx *c, const char *path);

/* Whether a is a device of the host, in the snapshot or not. */
bool scan_host_has_device(const struct scan_ctx *c, const struct pci_addr *a);
