/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Which VFIO driver a device goes to: vfio-pci, or a vendor's variant of it
 * (mlx5_vfio_pci, hisi_acc_vfio_pci, virtio_vfio_pci, nvgrace_gpu_vfio_pci, ...) that
 * adds what the generic driver cannot do, live migration above all. A variant announces
 * the devices it drives with "vfio_pci:" aliases in the running kernel's modules.alias,
 * which depmod writes from each module's id table; they are matched against the device's
 * modalias with its leading "pci:" read as "vfio_pci:". */

#include <json-c/json.h>
#include <stddef.h>

#include "pci-addr.h"
#include "root.h"
#include "topology.h"

/* The "vfio_pci:" aliases of one kernel's modules.alias. */
struct vfio_aliases;

/* Reads lib/modules/RELEASE/modules.alias below root, RELEASE from root_kernel_release().
 * A kernel without one (no modules installed, no release known) gives an empty set that
 * says why, not an error: every device then goes to vfio-pci. Fails with -ENOMEM, or
 * -errno when the file is there but cannot be read (-EFBIG past 64 MiB). */
int vfio_aliases_load(const struct root *root, struct vfio_aliases **ret, char **ret_detail);

/* Accepts NULL; returns NULL. */
struct vfio_aliases *vfio_aliases_free(struct vfio_aliases *al);

static inline void vfio_aliases_freep(struct vfio_aliases **al)
{
        vfio_aliases_free(*al);
}

struct vfio_candidate {
        char *driver;     /* what driver_override names: "vfio-pci" or the variant's driver */
        char *module;     /* the module that registers it: "vfio_pci", "mlx5_vfio_pci" */
        char *alias;      /* the modules.alias pattern that chose a variant; else NULL */
        size_t n_matches; /* the variant aliases that match the device */
        char *reason;     /* why this driver, for people */
};

void vfio_candidate_done(struct vfio_candidate *c);

/* The candidate for a device of modalias ("pci:v...d...sv...sd...bc..sc..i.."): the
 * variant of the most specific matching alias, else vfio-pci. -EBADMSG when the modalias
 * is not a PCI one, -ENOMEM. */
int vfio_candidate_match(const struct root *root, const struct vfio_aliases *al,
                         const char *modalias, struct vfio_candidate *ret);

/* The same for device a, from its sysfs modalias; al NULL: loads the aliases itself.
 * -ENODEV when the device is gone, other -errno when its modalias cannot be read. */
int vfio_candidate_find(const struct root *root, const struct vfio_aliases *al,
                        const struct pci_addr *a, struct vfio_candidate *ret, char **ret_detail);

/* The candidate for a driver people named (vfioctl bind --driver): only vfio-pci or a
 * variant of it (driver_is_vfio()) is one; anything else is -EINVAL with a detail naming
 * it. */
int vfio_candidate_named(const struct root *root, const char *driver, struct vfio_candidate *ret,
                         char **ret_detail);

/* The candidate of d as people are told it (vfioctl show, the daemon's ShowDevice): a
 * bridge has none (driver NULL), and a candidate that cannot be found has none with the
 * reason why. Fails only with -ENOMEM. */
int vfio_candidate_describe(const struct root *root, const struct pci_device *d,
                            struct vfio_candidate *ret);

/* {"name", "module", "alias", "matching_aliases", "reason"} (docs/json.md); NULL when out
 * of memory. */
json_object *vfio_candidate_to_json(const struct vfio_candidate *c);
