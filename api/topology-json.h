/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The topology snapshot in the JSON shapes that vfioctl --json prints and the daemon's
 * API returns; docs/json.md is the schema. Each returns a new object or NULL without
 * memory. */

#include <json-c/json.h>

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

struct pci_rom;
struct pci_rebar;
/* The functions of d's slot, [{address, class_name, driver}], d included; null for a
 * device alone in its slot. */
json_object *json_card_new(const struct topology *t, const struct pci_device *d);
/* null when the device has no ROM. */
json_object *json_rom_new(const struct pci_rom *rom);
/* [{bar, sizes, current}]. */
json_object *json_rebar_new(const struct pci_rebar *b, size_t n);
/* [{name, start, end, bar}]. */
struct pci_framebuffer;
json_object *json_framebuffers_new(const struct pci_framebuffer *fb, size_t n);
