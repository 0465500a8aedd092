/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The topology snapshot in the JSON shapes that vfioctl --json prints and the daemon's
 * API returns; docs/json.md is the schema. Each returns a new object or NULL without
 * memory. */

#include <json-c/json.h>

#include "card.h"
#include "migration.h"
#include "topology.h"

json_object *json_host_new(const struct topology *t);
json_object *json_group_new(const struct topology *t, const struct iommu_group *g);
/* detail adds the upstream path with each port's ACS bits, and the VF list. */
json_object *json_device_new(const struct topology *t, const struct pci_device *d, bool detail);
json_object *json_unit_new(const struct iommu_unit *u);
json_object *json_warnings_new(const struct topology *t);

/* ["dddd:bb:dd.f", ...] of n addresses. */
json_object *json_address_array_new(const struct pci_addr *l, size_t n);

/* Strings the text output shares with JSON. */
const char *tristate_to_string(enum tristate v);

/* What show and ShowDevice tell of a device beyond the snapshot, for its assignment:
 * live migration as far as the driver (and the VFIO driver a bind would give it) says,
 * its card's functions, option ROM, resizable BARs, a framebuffer over a display
 * device's BARs, a reset hint. */
struct device_preflight {
        struct vfio_migration migration;
        struct pci_rom rom;
        struct pci_rebar rebar[6];
        size_t n_rebar;
        struct pci_framebuffer fb[4];
        size_t n_fb;   /* of fb[] */
        int fb_result; /* pci_framebuffers()'s, -ENOTTY for a device that is no display */
};

/* candidate: the VFIO driver a bind would give d (NULL when not known); read_rom: read
 * the ROM's content (a sysfs write: never on the daemon's event loop). -ENOMEM only. */
int device_preflight_gather(const struct root *r, const struct pci_device *d, const char *candidate,
                            bool read_rom, struct device_preflight *ret);

/* Adds live_migration, card, rom, resizable_bars, reset_hint and framebuffers to o. */
void json_device_preflight_add(json_object *o, const struct topology *t, const struct pci_device *d,
                               const struct device_preflight *p);
