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
