/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The Container Device Interface spec of the exported devices: one CDI device per
 * device of the inventory, named by its PCI address, with the VFIO nodes a container
 * needs and environment naming the device, its pool, its PF and its NUMA node. Runtimes
 * (podman, CRI-O, containerd) read it from /var/run/cdi. */

#include <json-c/json.h>

#include "inventory.h"
#include "pools.h"

/* The newest version Debian 12's podman (4.3) accepts. */
#define CDI_VERSION          "0.5.0"
#define CDI_SPEC_DIR_DEFAULT "/var/run/cdi"

/* The spec as a JSON document; NULL without memory. */
json_object *cdi_spec_build(const struct fleet_config *c, const struct fleet_inventory *inv);

/* The environment of one device, as "NAME=VALUE" strings added to the array env:
 * VFIOD_PCI_<ADDR>_{ADDRESS,POOL,NODE,PF,NUMA_NODE}, ADDR the address with ':' and '.'
 * as '_' ("0000_01_10_0"), so that several devices in one container do not collide.
 * PF only for a VF, NUMA_NODE only when known. -ENOMEM. */
int cdi_device_env(const struct fleet_config *c, const struct fleet_device *d, json_object *env);

/* "vfiod.io/pci" -> "vfiod.io-pci.json", the file name the spec gets in a spec
 * directory. NULL without memory. */
char *cdi_spec_file_name(const char *kind);

/* Writes text as the spec of kind into dir atomically: a temporary file in dir, fsynced,
 * renamed over the spec's name, then dir fsynced, so a runtime reads the old spec or the
 * new one and never a part. dir is created (one level) when missing. Refused with a
 * detail naming dir and what to do: dir is a symbolic link (-ELOOP) or not a directory
 * (-ENOTDIR), or cannot be written (-EACCES, -EROFS, ...). *ret_path (when not NULL):
 * the spec's path. */
int cdi_spec_write(const char *dir, const char *kind, const char *text, char **ret_path,
                   char **ret_detail);

/* What a spec directory should hold for the configuration's kind: the spec text when
 * n_devices > 0 (cdi_spec_write(); *ret_path its path), else no spec at all
 * (cdi_spec_remove(); *ret_path NULL). */
int cdi_spec_publish(const char *dir, const struct fleet_config *c, const char *text,
                     size_t n_devices, char **ret_path, char **ret_detail);

/* Removes the spec of kind from dir (a spec without devices is not valid CDI); 0 when
 * there was none. The same refusals as cdi_spec_write(). */
int cdi_spec_remove(const char *dir, const char *kind, char **ret_detail);
