/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The fleet tests' fixture: tests/fixtures/fleet-numa.txt built with the nodes of an
 * iommufd or a type1-only kernel (add-vfio-nodes), in a temporary directory. */

#include <limits.h>

#include "helpers.h"
#include "inventory.h"
#include "pools.h"

/* The pools the tests export: igb-vf (8086:10ca) and edu (1234:11e8). */
extern const char fleet_pools_text[];

/* Makes the temporary directory (test_tmp) the trees and the tests' files go in; -errno. */
int fleet_tree_init(const char *mkfixture, const char *fixture_dir, const char *add_nodes);
/* Removes it. */
void fleet_tree_done(void);

/* The tree with the nodes of kind ("iommufd" or "type1"), built once, at out. */
void fleet_tree(const char *kind, char out[static PATH_MAX]);

/* The inventory of pools (NULL: fleet_pools_text) on that tree; *ret_config when not
 * NULL. */
struct fleet_inventory *fleet_tree_inventory(const char *kind, const char *pools,
                                             struct fleet_config **ret_config);
