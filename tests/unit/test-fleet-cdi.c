/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The CDI spec of the exported pools, and its pool configuration, on fixture trees with
 * the nodes of an iommufd kernel and of a type1-only one. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cdi.h"
#include "fleet-tree.h"
#include "inventory.h"
#include "macro.h"
#include "pools.h"

static const char *vfioctl;

static json_object *spec_of(const char *kind, struct fleet_inventory **ret_inv)
{
        _cleanup_(fleet_config_freep) struct fleet_config *c = NULL;
        struct fleet_inventory *inv = fleet_tree_inventory(kind, NULL, &c);
        json_object *spec = cdi_spec_build(c, inv);

        assert_non_null(spec);
        if (ret_inv)
                *ret_inv = inv;
        else
                fleet_inventory_free(inv);
        return spec;
}

static json_object *spec_device(json_object *spec, const char *name)
{
        json_object *devices = json_object_object_get(spec, "devices");
        for (size_t i = 0; i < json_object_array_length(devices); i++) {
                json_object *d = json_object_array_get_idx(devices, i);
                if (strcmp(json_object_get_string(json_object_object_get(d, "name")), name) == 0)
                        return d;
        }
        return NULL;
}

/* The device's node paths and environment, each joined with spaces. */
static void device_edits(json_object *d, char *nodes, char *env, size_t size)
{
        json_object *edits = json_object_object_get(d, "containerEdits");
        json_object *n = json_object_object_get(edits, "deviceNodes"),
                    *e = json_object_object_get(edits, "env");

        nodes[0] = env[0] = 0;
        for (size_t i = 0; i < json_object_array_length(n); i++) {
                json_object *o = json_object_array_get_idx(n, i);
                assert_int_equal(json_object_object_length(o), 1);
                snprintf(nodes + strlen(nodes), size - strlen(nodes), "%s%s", i ? " " : "",
                         json_object_get_string(json_object_object_get(o, "path")));
        }
        for (size_t i = 0; i < json_object_array_length(e); i++)
                snprintf(env + strlen(env), size - strlen(env), "%s%s", i ? " " : "",
                         json_object_get_string(json_object_array_get_idx(e, i)));
}

static void the_iommufd_spec_gives_each_exported_device_its_cdev_and_iommu(void **state)
{
        json_object *spec = spec_of("iommufd", NULL), *devices;
        char nodes[512], env[1024];

        assert_string_equal(json_object_get_string(json_object_object_get(spec, "cdiVersion")),
                            "0.5.0");
        assert_string_equal(json_object_get_string(json_object_object_get(spec, "kind")),
                            "vfiod.io/pci");
        devices = json_object_object_get(spec, "devices");
        /* 16 VFs and one edu; not 00:04.0 (no pool), not 00:05.0 (no vfio-pci), no PF. */
        assert_int_equal(json_object_array_length(devices), 17);
        assert_string_equal(json_object_get_string(json_object_object_get(
                                    json_object_array_get_idx(devices, 0), "name")),
                            "0000:00:03.0");
        assert_null(spec_device(spec, "0000:00:04.0"));
        assert_null(spec_device(spec, "0000:00:05.0"));
        assert_null(spec_device(spec, "0000:01:00.0"));

        /* vfio0 is 00:03.0, vfio1 00:04.0, then the VFs in address order. */
        device_edits(spec_device(spec, "0000:01:10.2"), nodes, env, sizeof(env));
        assert_string_equal(nodes, "/dev/iommu /dev/vfio/devices/vfio4");
        assert_string_equal(env, "VFIOD_PCI_0000_01_10_2_ADDRESS=0000:01:10.2 "
                                 "VFIOD_PCI_0000_01_10_2_POOL=igb-vf "
                                 "VFIOD_PCI_0000_01_10_2_NODE=/dev/vfio/devices/vfio4 "
                                 "VFIOD_PCI_0000_01_10_2_PF=0000:01:00.0 "
                                 "VFIOD_PCI_0000_01_10_2_NUMA_NODE=0");
        device_edits(spec_device(spec, "0000:81:10.7"), nodes, env, sizeof(env));
        assert_string_equal(nodes, "/dev/iommu /dev/vfio/devices/vfio17");
        assert_non_null(strstr(env, "VFIOD_PCI_0000_81_10_7_PF=0000:81:00.1"));
        assert_non_null(strstr(env, "VFIOD_PCI_0000_81_10_7_NUMA_NODE=1"));
        /* Not a VF, NUMA node unknown: neither variable. */
        device_edits(spec_device(spec, "0000:00:03.0"), nodes, env, sizeof(env));
        assert_string_equal(env, "VFIOD_PCI_0000_00_03_0_ADDRESS=0000:00:03.0 "
                                 "VFIOD_PCI_0000_00_03_0_POOL=edu "
                                 "VFIOD_PCI_0000_00_03_0_NODE=/dev/vfio/devices/vfio0");
        assert_null(strstr(json_object_to_json_string(spec), "/dev/vfio/vfio\""));
        json_object_put(spec);
}

static void the_type1_spec_gives_each_exported_device_its_group_and_container(void **state)
{
        json_object *spec = spec_of("type1", NULL);
        char nodes[512], env[1024];

        assert_int_equal(json_object_array_length(json_object_object_get(spec, "devices")), 17);
        device_edits(spec_device(spec, "0000:01:10.2"), nodes, env, sizeof(env));
        assert_string_equal(nodes, "/dev/vfio/vfio /dev/vfio/11");
        assert_non_null(strstr(env, "VFIOD_PCI_0000_01_10_2_NODE=/dev/vfio/11"));
        device_edits(spec_device(spec, "0000:00:03.0"), nodes, env, sizeof(env));
        assert_string_equal(nodes, "/dev/vfio/vfio /dev/vfio/4");
        assert_null(strstr(json_object_to_json_string(spec), "iommu"));
        assert_null(strstr(json_object_to_json_string(spec), "devices/vfio"));
        json_object_put(spec);
}

static void the_inventory_knows_each_device_pf_numa_node_and_root_complex(void **state)
{
        _cleanup_(fleet_inventory_freep) struct fleet_inventory *inv = NULL;
        json_object *spec = spec_of("iommufd", &inv);
        const struct fleet_device *d;

        json_object_put(spec);
        d = fleet_inventory_find(inv, "81:10.4");
        assert_non_null(d);
        assert_true(d->is_vf);
        assert_string_equal(d->pf, "0000:81:00.0");
        assert_int_equal(d->numa_node, 1);
        assert_string_equal(d->pcie_root, "pci0000:80");
        assert_int_equal(d->backend, FLEET_BACKEND_IOMMUFD);
        d = fleet_inventory_find(inv, "0000:00:03.0");
        assert_false(d->is_vf);
        assert_string_equal(d->pf, "0000:00:03.0");
        assert_string_equal(d->pcie_root, "pci0000:00");
        assert_null(fleet_inventory_find(inv, "0000:00:04.0"));
}

static void a_pool_can_ask_for_the_group_nodes_or_only_cdevs(void **state)
{
        _cleanup_(fleet_inventory_freep) struct fleet_inventory *type1 = fleet_tree_inventory(
                "iommufd",
                "{\"pools\": [{\"name\": \"edu\", \"backend\": \"type1\", \"devices\": "
                "[\"1234:11e8\"]}]}",
                NULL);
        _cleanup_(fleet_inventory_freep) struct fleet_inventory *cdevs = fleet_tree_inventory(
                "type1",
                "{\"pools\": [{\"name\": \"edu\", \"backend\": \"iommufd\", \"devices\": "
                "[\"1234:11e8\"]}]}",
                NULL);

        assert_int_equal(type1->n_devices, 1);
        assert_int_equal(type1->devices[0].backend, FLEET_BACKEND_TYPE1);
        assert_string_equal(type1->devices[0].nodes[0], "/dev/vfio/vfio");
        assert_string_equal(type1->devices[0].nodes[1], "/dev/vfio/4");
        assert_int_equal(cdevs->n_devices, 0);
}

static void expect_bad(const char *text, int err, const char *needle)
{
        _cleanup_(fleet_config_freep) struct fleet_config *c = NULL;
        _cleanup_free_ char *detail = NULL;

        assert_int_equal(fleet_config_parse(text, &c, &detail), err);
        assert_null(c);
        assert_non_null(detail);
        if (!strstr(detail, needle))
                fail_msg("detail \"%s\" lacks \"%s\"", detail, needle);
}

static void a_configuration_that_does_not_parse_is_refused_with_its_reason(void **state)
{
        expect_bad("{\"pools\": [", -EBADMSG, "not valid JSON");
        expect_bad("{\"pools\": []} x", -EBADMSG, "after the end");
        expect_bad("[]", -EINVAL, "\"pools\" list");
        expect_bad("{\"pool\": []}", -EINVAL, "unknown key \"pool\"");
        expect_bad("{\"pools\": [{\"name\": \"Igb\", \"devices\": [\"8086:10ca\"]}]}", -EINVAL,
                   "DNS label");
        expect_bad("{\"pools\": [{\"name\": \"igb\"}]}", -EINVAL, "non-empty list");
        expect_bad("{\"pools\": [{\"name\": \"igb\", \"devices\": [\"8086:10c\"]}]}", -EINVAL,
                   "bad device selector \"8086:10c\"");
        expect_bad("{\"pools\": [{\"name\": \"igb\", \"devices\": [7]}]}", -EINVAL,
                   "bad device selector 7");
        expect_bad("{\"pools\": [{\"name\": \"igb\", \"devices\": [\"*\"]}]}", -EINVAL,
                   "bad device selector \"*\"");
        expect_bad("{\"pools\": [{\"name\": \"a\", \"devices\": [\"1234:11e8\"]},"
                   " {\"name\": \"a\", \"devices\": [\"8086:*\"]}]}",
                   -EINVAL, "pools 1 and 2");
        expect_bad("{\"pools\": [{\"name\": \"a\", \"resource\": \"noslash\", \"devices\": "
                   "[\"1234:11e8\"]}]}",
                   -EINVAL, "DOMAIN/NAME");
        expect_bad("{\"cdi_kind\": \"pci\", \"pools\": []}", -EINVAL, "VENDOR/CLASS");
        expect_bad("{\"pools\": [{\"name\": \"a\", \"backend\": \"vfio\", \"devices\": "
                   "[\"1234:11e8\"]}]}",
                   -EINVAL, "\"backend\" is \"auto\", \"iommufd\" or \"type1\"");
}

static void a_configuration_names_kind_resources_and_selectors(void **state)
{
        _cleanup_(fleet_config_freep) struct fleet_config *c = NULL;

        assert_int_equal(
                fleet_config_parse(
                        "{\"cdi_kind\": \"example.com/nic\", \"comment\": \"x\", \"pools\":"
                        " [{\"name\": \"vf\", \"devices\": [\"0000:01:00.0/vf0-3\"]},"
                        " {\"name\": \"gpu\", \"resource\": \"example.com/gpu\","
                        " \"devices\": [\"class:0300\", \"10de:*\"]}]}",
                        &c, NULL),
                0);
        assert_string_equal(c->cdi_kind, "example.com/nic");
        assert_int_equal(c->n_pools, 2);
        assert_string_equal(c->pools[0].resource, "vfiod.io/vf");
        assert_string_equal(c->pools[1].resource, "example.com/gpu");
        assert_int_equal(c->pools[1].n_selectors, 2);
        assert_int_equal(c->pools[0].selectors[0].kind, SELECTOR_VFS);
        assert_int_equal(c->pools[0].selectors[0].vf_last, 3);
}

static size_t dir_entries(const char *dir)
{
        char cmd[PATH_MAX + 64];
        FILE *p;
        size_t n = 0;
        int c;

        snprintf(cmd, sizeof(cmd), "ls -A '%s'", dir);
        p = popen(cmd, "r");
        assert_non_null(p);
        while ((c = fgetc(p)) != EOF)
                n += c == '\n';
        pclose(p);
        return n;
}

static void the_spec_is_replaced_whole_and_nothing_else_is_left(void **state)
{
        _cleanup_free_ char *path = NULL, *text = NULL;
        char dir[PATH_MAX];

        snprintf(dir, sizeof(dir), "%s/cdi", test_tmp);
        assert_int_equal(cdi_spec_write(dir, "vfiod.io/pci", "{\"a\": 1}\n", &path, NULL), 0);
        assert_int_equal(cdi_spec_write(dir, "vfiod.io/pci", "{\"b\": 2}\n", NULL, NULL), 0);
        assert_string_equal(path + strlen(dir), "/vfiod.io-pci.json");
        text = slurp(path);
        assert_string_equal(text, "{\"b\": 2}\n");
        assert_int_equal(dir_entries(dir), 1);
        assert_int_equal(cdi_spec_remove(dir, "vfiod.io/pci", NULL), 0);
        assert_int_equal(dir_entries(dir), 0);
        assert_int_equal(cdi_spec_remove(dir, "vfiod.io/pci", NULL), 0);
}

static void a_spec_directory_that_is_a_symlink_or_a_file_is_refused(void **state)
{
        _cleanup_free_ char *detail = NULL;
        char target[PATH_MAX], link[PATH_MAX], file[PATH_MAX];

        snprintf(target, sizeof(target), "%s/elsewhere", test_tmp);
        snprintf(link, sizeof(link), "%s/cdi-link", test_tmp);
        snprintf(file, sizeof(file), "%s/cdi-file", test_tmp);
        assert_int_equal(mkdir(target, 0755), 0);
        assert_int_equal(symlink(target, link), 0);
        assert_int_equal(cdi_spec_write(link, "vfiod.io/pci", "{}", NULL, &detail), -ELOOP);
        assert_non_null(strstr(detail, "is a symbolic link"));
        assert_non_null(strstr(detail, link));
        assert_int_equal(dir_entries(target), 0);
        free(detail);
        detail = NULL;
        assert_int_equal(cdi_spec_remove(link, "vfiod.io/pci", &detail), -ELOOP);

        FILE *f = fopen(file, "we");
        assert_non_null(f);
        fclose(f);
        free(detail);
        detail = NULL;
        assert_int_equal(cdi_spec_write(file, "vfiod.io/pci", "{}", NULL, &detail), -ENOTDIR);
        assert_non_null(strstr(detail, "not a directory"));
}

static void a_spec_directory_that_cannot_be_written_is_refused(void **state)
{
        _cleanup_free_ char *detail = NULL;
        char dir[PATH_MAX];

        /* Permission bits do not stop root. */
        if (geteuid() == 0)
                skip();
        snprintf(dir, sizeof(dir), "%s/cdi-ro", test_tmp);
        assert_int_equal(mkdir(dir, 0555), 0);
        assert_int_equal(cdi_spec_write(dir, "vfiod.io/pci", "{}", NULL, &detail), -EACCES);
        assert_non_null(strstr(detail, "cannot write a file in the CDI spec directory"));
        assert_int_equal(dir_entries(dir), 0);
}

/* vfioctl cdi: the same spec printed or written, and the refusals as exit status 1. */
static void vfioctl_cdi_prints_and_writes_the_spec_offline(void **state)
{
        char t[PATH_MAX], cfg[PATH_MAX], out[PATH_MAX], link[PATH_MAX], spec[PATH_MAX + 32],
                bad[PATH_MAX];
        _cleanup_free_ char *text = NULL;
        json_object *doc, *want = spec_of("type1", NULL);
        FILE *f;

        fleet_tree("type1", t);
        snprintf(cfg, sizeof(cfg), "%s/pools.json", test_tmp);
        snprintf(bad, sizeof(bad), "%s/bad.json", test_tmp);
        snprintf(out, sizeof(out), "%s/cli-out", test_tmp);
        snprintf(link, sizeof(link), "%s/cdi-link", test_tmp);
        snprintf(spec, sizeof(spec), "%s/vfiod.io-pci.json", out);
        f = fopen(cfg, "we");
        fputs(fleet_pools_text, f);
        fclose(f);
        f = fopen(bad, "we");
        fputs("{\"pools\": [{\"name\": \"x\"}]}", f);
        fclose(f);

        assert_int_equal(run_quiet((const char *[]){vfioctl, "--root", t, "cdi", "--config", cfg,
                                                    "--output", out, NULL}),
                         0);
        text = slurp(spec);
        doc = json_tokener_parse(text);
        assert_true(json_object_equal(doc, want));
        json_object_put(doc);
        json_object_put(want);

        assert_int_equal(
                run_quiet((const char *[]){vfioctl, "--root", t, "cdi", "--config", bad, NULL}), 1);
        if (access(link, F_OK) != 0)
                assert_int_equal(symlink(out, link), 0);
        assert_int_equal(run_quiet((const char *[]){vfioctl, "--root", t, "cdi", "--config", cfg,
                                                    "--output", link, NULL}),
                         1);
        assert_int_equal(run_quiet((const char *[]){vfioctl, "--root", t, "cdi", "--config",
                                                    "/nonexistent/pools.json", NULL}),
                         1);

        /* Nothing exported any more: the spec goes (CDI has no spec without devices). */
        f = fopen(bad, "we");
        fputs("{\"pools\": [{\"name\": \"x\", \"devices\": [\"dead:beef\"]}]}", f);
        fclose(f);
        assert_int_equal(access(spec, F_OK), 0);
        assert_int_equal(run_quiet((const char *[]){vfioctl, "--root", t, "cdi", "--config", bad,
                                                    "--output", out, NULL}),
                         0);
        assert_int_equal(access(spec, F_OK), -1);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(the_iommufd_spec_gives_each_exported_device_its_cdev_and_iommu),
                cmocka_unit_test(the_type1_spec_gives_each_exported_device_its_group_and_container),
                cmocka_unit_test(the_inventory_knows_each_device_pf_numa_node_and_root_complex),
                cmocka_unit_test(a_pool_can_ask_for_the_group_nodes_or_only_cdevs),
                cmocka_unit_test(a_configuration_that_does_not_parse_is_refused_with_its_reason),
                cmocka_unit_test(a_configuration_names_kind_resources_and_selectors),
                cmocka_unit_test(the_spec_is_replaced_whole_and_nothing_else_is_left),
                cmocka_unit_test(a_spec_directory_that_is_a_symlink_or_a_file_is_refused),
                cmocka_unit_test(a_spec_directory_that_cannot_be_written_is_refused),
                cmocka_unit_test(vfioctl_cdi_prints_and_writes_the_spec_offline),
        };
        int r;

        if (argc != 5) {
                fprintf(stderr, "usage: %s MKFIXTURE FIXTURE_DIR ADD_VFIO_NODES VFIOCTL\n",
                        argv[0]);
                return 2;
        }
        vfioctl = argv[4];
        if (fleet_tree_init(argv[1], argv[2], argv[3]) < 0)
                return 1;
        r = cmocka_run_group_tests(tests, NULL, NULL);
        fleet_tree_done();
        return r;
}
