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

char fleet_tmp[PATH_MAX - 256];
const char fleet_pools_text[] = "{\"pools\": [{\"name\": \"igb-vf\", \"devices\": [\"8086:10ca\"]},"
                                " {\"name\": \"edu\", \"devices\": [\"1234:11e8\"]}]}";
static const char *mkfixture, *fixture_dir, *add_nodes;

int fleet_tree_init(const char *mkfixture_path, const char *fixtures, const char *add_nodes_path)
{
        mkfixture = mkfixture_path;
        fixture_dir = fixtures;
        add_nodes = add_nodes_path;
        snprintf(fleet_tmp, sizeof(fleet_tmp), "%s/vfiod-test-fleet.XXXXXX",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        return mkdtemp(fleet_tmp) ? 0 : negative_errno();
}

void fleet_tree_done(void)
{
        char cmd[PATH_MAX + 16];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fleet_tmp);
        (void)!system(cmd);
}

int fleet_run(const char *const argv[])
{
        pid_t pid = fork();
        int st;

        assert_true(pid >= 0);
        if (pid == 0) {
                if (!freopen("/dev/null", "w", stdout))
                        _exit(127);
                execv(argv[0], (char *const *)argv);
                _exit(127);
        }
        assert_int_equal(waitpid(pid, &st, 0), pid);
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* The fleet fixture with the nodes of kind ("iommufd" or "type1") at tmp/kind. */
void fleet_tree(const char *kind, char out[static PATH_MAX])
{
        char desc[PATH_MAX];

        snprintf(out, PATH_MAX, "%s/%s", fleet_tmp, kind);
        snprintf(desc, sizeof(desc), "%s/fleet-numa.txt", fixture_dir);
        if (access(out, F_OK) == 0)
                return;
        assert_int_equal(
                fleet_run((const char *[]){"/usr/bin/python3", mkfixture, desc, out, NULL}), 0);
        assert_int_equal(fleet_run((const char *[]){"/bin/sh", add_nodes, out, kind, NULL}), 0);
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
