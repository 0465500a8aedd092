/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VFIO variant drivers on the vfio-variants fixture: the candidate modules.alias names
 * (the most specific alias, wherever it stands in the file; vfio-pci when none), what
 * vfioctl show says of it, and binds that go to it, to a driver --driver names, or
 * nowhere when --driver names no VFIO driver. Real binds run vfioctl-testhooks with
 * VFIOD_TEST_DRIVER_CORE, which plays the kernel's driver core in the tree. Run as:
 * test-variant MKFIXTURE FIXTURE_DIR VFIOCTL VFIOCTL_TESTHOOKS */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"
#include "macro.h"
#include "variant.h"

static const char *vfioctl, *vfioctl_testhooks;

/* What the kernel's own match gives each device of the fixture. */
#define NATIVE "0000:01:00.0=mlx5_core,0000:02:00.0=virtio-pci,0000:03:00.0=e1000e"

static struct root *tree(const char *name, char out[static PATH_MAX])
{
        struct root *root = NULL;

        fixture_tree("vfio-variants.txt", name, out);
        assert_int_equal(root_open(out, &root), 0);
        return root;
}

static struct vfio_candidate candidate(const struct root *root, const char *addr)
{
        _cleanup_free_ char *why = NULL;
        struct vfio_candidate c = {0};
        struct pci_addr a;

        assert_int_equal(pci_addr_parse(addr, &a), 0);
        if (vfio_candidate_find(root, NULL, &a, &c, &why) < 0)
                fail_msg("%s: %s", addr, strna(why));
        return c;
}

/* The basename of a link below root, or "(none)". */
static char *link_name(const char *root, const char *relpath)
{
        char p[2 * PATH_MAX], target[PATH_MAX];
        ssize_t n;

        snprintf(p, sizeof(p), "%s/%s", root, relpath);
        n = readlink(p, target, sizeof(target) - 1);
        if (n < 0)
                return strdup("(none)");
        target[n] = '\0';
        return strdup(strrchr(target, '/') ? strrchr(target, '/') + 1 : target);
}

#define DEV1     "sys/bus/pci/devices/0000:01:00.0"
#define JOURNAL1 "var/lib/vfiod/journal/0000:01:00.0.json"

static void assert_driver(const char *root, const char *driver, const char *override)
{
        _cleanup_free_ char *d = link_name(root, DEV1 "/driver");
        _cleanup_free_ char *o = tree_read_line(root, DEV1 "/driver_override");

        assert_string_equal(d, driver);
        /* The kernel shows no override as "(null)"; a cleared one in a tree reads empty. */
        if (!override)
                assert_true(strcmp(o, "(null)") == 0 || o[0] == '\0');
        else
                assert_string_equal(o, override);
}

static void the_most_specific_variant_alias_wins_wherever_it_stands(void **state)
{
        _cleanup_(root_freep) struct root *root = NULL;
        struct vfio_candidate c;
        char out[PATH_MAX];

        root = tree("specific", out);
        /* The vendor-wide alias comes first in modules.alias: not the first match. */
        c = candidate(root, "0000:01:00.0");
        assert_string_equal(c.driver, "mlx5_vfio_pci");
        assert_string_equal(c.module, "mlx5_vfio_pci");
        assert_string_equal(c.alias, "vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i*");
        assert_int_equal(c.n_matches, 2);
        vfio_candidate_done(&c);
        /* The vendor-wide alias comes last: not the last match either. */
        c = candidate(root, "0000:02:00.0");
        assert_string_equal(c.driver, "virtio_vfio_pci");
        assert_int_equal(c.n_matches, 2);
        vfio_candidate_done(&c);
}

static void vfioctl_show_names_the_candidate_and_why(void **state)
{
        _cleanup_(root_freep) struct root *root = NULL;
        char out[PATH_MAX];
        json_object *doc, *v, *f;
        struct run r;

        root = tree("show", out);
        r = run_argv((char *[]){(char *)vfioctl, (char *)"--root", out, (char *)"show",
                                (char *)"01:00.0", NULL});
        assert_int_equal(r.status, 0);
        if (!strstr(r.out, "  vfio driver  mlx5_vfio_pci (modules.alias "
                           "vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i*, the most specific of 2 "
                           "that match)\n"))
                fail_msg("unexpected show: %s", r.out);
        run_done(&r);

        r = run_argv((char *[]){(char *)vfioctl, (char *)"--root", out, (char *)"--json",
                                (char *)"show", (char *)"03:00.0", NULL});
        assert_int_equal(r.status, 0);
        doc = json_tokener_parse(r.out);
        assert_non_null(doc);
        assert_true(json_object_object_get_ex(doc, "vfio_driver", &v));
        assert_true(json_object_object_get_ex(v, "name", &f));
        assert_string_equal(json_object_get_string(f), "vfio-pci");
        assert_true(json_object_object_get_ex(v, "alias", &f));
        assert_null(f);
        assert_true(json_object_object_get_ex(v, "matching_aliases", &f));
        assert_int_equal(json_object_get_int(f), 0);
        assert_true(json_object_object_get_ex(v, "reason", &f));
        assert_string_equal(json_object_get_string(f),
                            "no vfio_pci alias of a variant driver matches");
        json_object_put(doc);
        run_done(&r);
}

/* vfio_pci's own catch-all alias matches everything and is no variant; without a
 * modules.alias at all every device goes to vfio-pci, and show says why. */
static void a_device_no_variant_alias_matches_goes_to_vfio_pci(void **state)
{
        _cleanup_(root_freep) struct root *root = NULL;
        struct vfio_candidate c;
        char out[PATH_MAX], path[2 * PATH_MAX];

        root = tree("none", out);
        c = candidate(root, "0000:03:00.0");
        assert_string_equal(c.driver, "vfio-pci");
        assert_string_equal(c.module, "vfio_pci");
        assert_null(c.alias);
        assert_int_equal(c.n_matches, 0);
        vfio_candidate_done(&c);

        snprintf(path, sizeof(path), "%s/lib/modules/6.12.9-amd64/modules.alias", out);
        assert_int_equal(unlink(path), 0);
        c = candidate(root, "0000:01:00.0");
        assert_string_equal(c.driver, "vfio-pci");
        assert_string_equal(c.reason, "no /lib/modules/6.12.9-amd64/modules.alias");
        vfio_candidate_done(&c);
}

static struct run bind_with_driver_core(const char *root, const char *verb, const char *opt,
                                        const char *value)
{
        struct run r;

        assert_int_equal(setenv("VFIOD_TEST_DRIVER_CORE", NATIVE, 1), 0);
        r = run_argv((char *[]){(char *)vfioctl_testhooks, (char *)"--root", (char *)root,
                                (char *)"--no-daemon", (char *)verb, (char *)"01:00.0", (char *)opt,
                                (char *)value, NULL});
        assert_int_equal(unsetenv("VFIOD_TEST_DRIVER_CORE"), 0);
        return r;
}

/* The journal records the variant and the driver before it; unbind puts that one back. */
static void a_variant_bind_is_journaled_and_unbind_restores_the_original_driver(void **state)
{
        _cleanup_(root_freep) struct root *root = NULL;
        _cleanup_free_ char *record = NULL;
        char out[PATH_MAX], path[2 * PATH_MAX];
        json_object *doc, *v;
        struct run r;

        root = tree("journal", out);
        r = bind_with_driver_core(out, "bind", NULL, NULL);
        if (r.status != 0)
                fail_msg("bind: exit %d: %s", r.status, r.err);
        assert_non_null(strstr(r.out, "0000:01:00.0: bound (mlx5_core -> mlx5_vfio_pci)"));
        run_done(&r);
        assert_driver(out, "mlx5_vfio_pci", "mlx5_vfio_pci");

        snprintf(path, sizeof(path), "%s/%s", out, JOURNAL1);
        record = slurp(path);
        doc = json_tokener_parse(record);
        assert_non_null(doc);
        assert_true(json_object_object_get_ex(doc, "driver", &v));
        assert_string_equal(json_object_get_string(v), "mlx5_vfio_pci");
        assert_true(json_object_object_get_ex(doc, "original_driver", &v));
        assert_string_equal(json_object_get_string(v), "mlx5_core");
        assert_true(json_object_object_get_ex(doc, "state", &v));
        assert_string_equal(json_object_get_string(v), "assigned");
        json_object_put(doc);

        r = bind_with_driver_core(out, "unbind", NULL, NULL);
        if (r.status != 0)
                fail_msg("unbind: exit %d: %s", r.status, r.err);
        assert_non_null(strstr(r.out, "0000:01:00.0: restored (mlx5_vfio_pci -> mlx5_core)"));
        run_done(&r);
        assert_driver(out, "mlx5_core", NULL);
        assert_int_equal(access(path, F_OK), -1);
}

static void the_driver_option_forces_another_vfio_driver(void **state)
{
        _cleanup_(root_freep) struct root *root = NULL;
        char out[PATH_MAX];
        struct run r;

        root = tree("forced", out);
        r = run_argv((char *[]){(char *)vfioctl, (char *)"--root", out, (char *)"bind",
                                (char *)"01:00.0", (char *)"--driver", (char *)"vfio-pci",
                                (char *)"--dry-run", NULL});
        assert_int_equal(r.status, 0);
        assert_non_null(strstr(r.out, "0000:01:00.0: would-bind (mlx5_core -> vfio-pci)"));
        run_done(&r);

        r = bind_with_driver_core(out, "bind", "--driver", "vfio-pci");
        if (r.status != 0)
                fail_msg("bind --driver vfio-pci: exit %d: %s", r.status, r.err);
        run_done(&r);
        assert_driver(out, "vfio-pci", "vfio-pci");
}

/* e1000e is a driver of the tree, but no VFIO one: refused before anything is read or
 * written, dry run or not. */
static void the_driver_option_refuses_a_driver_that_is_not_vfio(void **state)
{
        _cleanup_(root_freep) struct root *root = NULL;
        char out[PATH_MAX], path[2 * PATH_MAX];
        struct run r;

        root = tree("refused", out);
        for (int dry = 0; dry < 2; dry++) {
                r = run_argv((char *[]){(char *)vfioctl, (char *)"--root", out, (char *)"bind",
                                        (char *)"01:00.0", (char *)"--driver", (char *)"e1000e",
                                        dry ? (char *)"--dry-run" : NULL, NULL});
                assert_int_equal(r.status, 2);
                assert_string_equal(r.err, "vfioctl: bind: --driver e1000e: not vfio-pci or a "
                                           "vfio-pci variant driver (such as mlx5_vfio_pci); "
                                           "nothing was changed\n");
                assert_string_equal(r.out, "");
                run_done(&r);
        }
        assert_driver(out, "mlx5_core", NULL);
        snprintf(path, sizeof(path), "%s/var/lib/vfiod", out);
        assert_int_equal(access(path, F_OK), -1);
}

/* The udev rule sets driver_override to what 'persisted DEVICE' prints: a recorded
 * device's VFIO driver, the variant where the kernel has one. */
static void persisted_prints_the_vfio_driver_for_udev(void **state)
{
        _cleanup_(root_freep) struct root *root = NULL;
        char out[PATH_MAX], path[2 * PATH_MAX];
        static const struct {
                const char *addr, *out;
                int status;
        } cases[] = {
                {"01:00.0", "mlx5_vfio_pci\n", 0},
                {"03:00.0", "vfio-pci\n", 0},
                {"02:00.0", "", 1}, /* not recorded */
        };
        FILE *f;

        root = tree("persisted", out);
        snprintf(path, sizeof(path), "%s/etc", out);
        assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
        snprintf(path, sizeof(path), "%s/etc/vfiod", out);
        assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
        snprintf(path, sizeof(path), "%s/etc/vfiod/assign.conf", out);
        f = fopen(path, "we");
        assert_non_null(f);
        fputs("0000:01:00.0\n0000:03:00.0\n", f);
        assert_int_equal(fclose(f), 0);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct run r =
                        run_argv((char *[]){(char *)vfioctl, (char *)"--root", out,
                                            (char *)"persisted", (char *)cases[i].addr, NULL});
                assert_int_equal(r.status, cases[i].status);
                assert_string_equal(r.out, cases[i].out);
                run_done(&r);
        }
}

/* bind --driver --persist records the driver with the device: persisted prints it for
 * the udev rule, and bind --persisted (vfiod-assign.service) binds to it, not to the
 * candidate. A line whose driver is no driver's name is refused, naming it. */
static void a_forced_driver_is_recorded_for_boot(void **state)
{
        _cleanup_(root_freep) struct root *root = NULL;
        _cleanup_free_ char *conf = NULL;
        char out[PATH_MAX], path[2 * PATH_MAX];
        struct run r;
        FILE *f;

        root = tree("forced-persist", out);
        r = bind_with_driver_core(out, "bind", "--driver", "vfio-pci");
        run_done(&r);
        assert_driver(out, "vfio-pci", "vfio-pci");
        r = bind_with_driver_core(out, "unbind", NULL, NULL);
        run_done(&r);
        assert_driver(out, "mlx5_core", NULL);

        /* Recorded: the same bind with --persist. */
        assert_int_equal(setenv("VFIOD_TEST_DRIVER_CORE", NATIVE, 1), 0);
        r = run_argv((char *[]){(char *)vfioctl_testhooks, (char *)"--root", out,
                                (char *)"--no-daemon", (char *)"bind", (char *)"01:00.0",
                                (char *)"--driver", (char *)"vfio-pci", (char *)"--persist", NULL});
        if (r.status != 0)
                fail_msg("bind --driver --persist: exit %d: %s", r.status, r.err);
        run_done(&r);
        snprintf(path, sizeof(path), "%s/etc/vfiod/assign.conf", out);
        conf = slurp(path);
        assert_non_null(strstr(conf, "\n0000:01:00.0 vfio-pci\n"));
        r = run_argv((char *[]){(char *)vfioctl, (char *)"--root", out, (char *)"persisted",
                                (char *)"01:00.0", NULL});
        assert_int_equal(r.status, 0);
        assert_string_equal(r.out, "vfio-pci\n"); /* not the candidate, mlx5_vfio_pci */
        run_done(&r);

        /* At boot: back on mlx5_core, then bind --persisted. */
        r = run_argv((char *[]){(char *)vfioctl_testhooks, (char *)"--root", out,
                                (char *)"--no-daemon", (char *)"unbind", (char *)"01:00.0", NULL});
        run_done(&r);
        assert_driver(out, "mlx5_core", NULL);
        r = run_argv((char *[]){(char *)vfioctl_testhooks, (char *)"--root", out, (char *)"bind",
                                (char *)"--persisted", NULL});
        assert_int_equal(unsetenv("VFIOD_TEST_DRIVER_CORE"), 0);
        if (r.status != 0)
                fail_msg("bind --persisted: exit %d: %s", r.status, r.err);
        assert_non_null(strstr(r.out, "0000:01:00.0: bound (mlx5_core -> vfio-pci)"));
        run_done(&r);
        assert_driver(out, "vfio-pci", "vfio-pci");

        f = fopen(path, "we");
        assert_non_null(f);
        fputs("0000:01:00.0 vfio-pci\n0000:03:00.0 ../vfio-pci\n", f);
        assert_int_equal(fclose(f), 0);
        r = run_argv((char *[]){(char *)vfioctl, (char *)"--root", out, (char *)"persisted",
                                (char *)"01:00.0", NULL});
        assert_int_equal(r.status, 1);
        assert_string_equal(r.err, "vfioctl: persisted: cannot read /etc/vfiod/assign.conf: "
                                   "/etc/vfiod/assign.conf: line 2: '../vfio-pci' is not a "
                                   "driver name\n");
        run_done(&r);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(the_most_specific_variant_alias_wins_wherever_it_stands),
                cmocka_unit_test(vfioctl_show_names_the_candidate_and_why),
                cmocka_unit_test(a_device_no_variant_alias_matches_goes_to_vfio_pci),
                cmocka_unit_test(
                        a_variant_bind_is_journaled_and_unbind_restores_the_original_driver),
                cmocka_unit_test(the_driver_option_forces_another_vfio_driver),
                cmocka_unit_test(the_driver_option_refuses_a_driver_that_is_not_vfio),
                cmocka_unit_test(persisted_prints_the_vfio_driver_for_udev),
                cmocka_unit_test(a_forced_driver_is_recorded_for_boot),
        };

        if (argc != 5) {
                fprintf(stderr, "usage: test-variant MKFIXTURE FIXTURE_DIR VFIOCTL "
                                "VFIOCTL_TESTHOOKS\n");
                return 2;
        }
        fixture_init(argv[1], argv[2]);
        vfioctl = argv[3];
        vfioctl_testhooks = argv[4];
        return cmocka_run_group_tests(tests, test_tmp_setup, test_tmp_teardown);
}
