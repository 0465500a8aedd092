/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Which devices of a pool to give one container, as kubelet's GetPreferredAllocation
 * asks: the must-include devices, then the rest packed by locality. A pure function of
 * the inventory and the request, so that it is tested exactly. */

#include <stddef.h>

#include "inventory.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Chooses size devices among available (device names as kubelet has them, the PCI
 * addresses), every one of must first. The rest is drawn one PF at a time, the next PF
 * being, in this order of preference: a PF already drawn from (the must-include
 * devices' included), then one on a NUMA node already drawn from, then one under a PCIe
 * root complex already drawn from, then one that alone covers what is still needed (the
 * smallest such: packing leaves whole PFs for larger requests), else the largest. With
 * nothing drawn yet and no PF that covers the request alone, the NUMA node that covers
 * it with the fewest PFs is drawn from first. Within a PF devices go in address order.
 *
 * On success *ret (free() it) holds size pointers into inv, sorted by address. Fails
 * with a detail and changes nothing: -ENOENT for a name the inventory does not have,
 * -EINVAL for a must-include device that is not available, a size of 0, smaller than
 * the must-include devices or larger than the available ones. */
int fleet_preferred_allocation(const struct fleet_inventory *inv, const char *const *available,
                               size_t n_available, const char *const *must, size_t n_must,
                               size_t size, const struct fleet_device ***ret, char **ret_detail);

/* The same with devices given by their index in inv (an index out of range: -EINVAL),
 * for a caller that has looked the names up already. */
int fleet_preferred_allocation_at(const struct fleet_inventory *inv, const size_t *available,
                                  size_t n_available, const size_t *must, size_t n_must,
                                  size_t size, const struct fleet_device ***ret, char **ret_detail);

#ifdef __cplusplus
}
#endif
