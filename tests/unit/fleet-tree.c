/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "fleet-tree.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "macro.h"
#include "root.h"
#include "topology.h"

const char fleet_pools_text[] = "{\"pools\": [{\"name\": \"igb-vf\", \"devices\": [\"8086:10ca\"]},"
                                " {\"name\": \"edu\", \"devices\": [\"1234:11e8\"]}]}";
static const char *add_nodes;

int fleet_tree_init(const char *mkfixture_path, const char *fixtures, const char *add_nodes_path)
{
        fixture_init(mkfixture_path, fixtures);
        add_nodes = add_nodes_path;
        return test_tmp_make(NULL, "fleet");
}

void fleet_tree_done(void)
{
        (void)test_tmp_remove();
}

/* The fleet fixture with the nodes of kind ("iommufd" or "type1") at tmp/kind. */
void fleet_tree(const char *kind, char out[static PATH_MAX])
{
        snprintf(out, PATH_MAX, "%s/%s", test_tmp, kind);
        if (access(out, F_OK) == 0)
                return;
        fixture_build("fleet-numa.txt", out);
        assert_int_equal(run_quiet((const char *[]){"/bin/sh", add_nodes, out, kind, NULL}), 0);
}

struct fleet_inventory *fleet_tree_inventory(const char *kind, const char *pools,
                                             struct fleet_config **ret_config)
{
        _cleanup_(root_freep) struct root *root = NULL;
        _cleanup_(topology_freep) struct topology *t = NULL;
        struct fleet_config *c = NULL;
        struct fleet_inventory *inv = NULL;
        char path[PATH_MAX];

        fleet_tree(kind, path);
        assert_int_equal(root_open(path, &root), 0);
        assert_int_equal(topology_scan(root, TOPOLOGY_SCAN_NO_NAMES, &t), 0);
        assert_int_equal(fleet_config_parse(pools ? pools : fleet_pools_text, &c, NULL), 0);
        assert_int_equal(fleet_inventory_build(root, t, c, &inv), 0);
        if (ret_config)
                *ret_config = c;
        else
                fleet_config_free(c);
        return inv;
}
