/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfioctl against generated fixture trees: the real-machine fixtures reproduce their
 * source's IOMMU groups, broken trees give warnings but correct output for the rest, and
 * bad input exits 2 with one line. Run as: test-fixtures MKFIXTURE FIXTURE_DIR VFIOCTL */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "macro.h"

static const char *vfioctl;

static struct run vfioctl_run(const char *root, const char *a, const char *b, const char *c)
{
        char *argv[] = {(char *)vfioctl, (char *)"--root", (char *)root, (char *)a,
                        (char *)b,       (char *)c,        NULL};
        return run_argv(argv);
}

static size_t count_lines(const char *s)
{
        size_t n = 0;
        for (; *s; s++)
                n += *s == '\n';
        return n;
}

/* "ID BDF BDF..." per line, from a .groups file, as one string per group. */
static int compare_groups(const char *groups_file, json_object *doc)
{
        _cleanup_free_ char *want = slurp(groups_file);
        json_object *groups;
        char *save = NULL;
        size_t n_want = 0;

        assert_true(json_object_object_get_ex(doc, "groups", &groups));
        for (char *line = strtok_r(want, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char got[8192] = "";
                int id;
                bool found = false;

                if (line[0] == '#' || line[0] == '\0')
                        continue;
                n_want++;
                id = atoi(line);
                for (size_t i = 0; i < json_object_array_length(groups); i++) {
                        json_object *g = json_object_array_get_idx(groups, i), *v, *devs;
                        assert_true(json_object_object_get_ex(g, "id", &v));
                        if (json_object_get_int(v) != id)
                                continue;
                        found = true;
                        snprintf(got, sizeof(got), "%d", id);
                        assert_true(json_object_object_get_ex(g, "devices", &devs));
                        for (size_t k = 0; k < json_object_array_length(devs); k++) {
                                json_object *a;
                                assert_true(json_object_object_get_ex(
                                        json_object_array_get_idx(devs, k), "address", &a));
                                strncat(got, " ", sizeof(got) - strlen(got) - 1);
                                strncat(got, json_object_get_string(a),
                                        sizeof(got) - strlen(got) - 1);
                        }
                }
                if (!found)
                        fail_msg("%s: group %d missing from vfioctl's output", groups_file, id);
                /* Normalise the expected line's spacing before comparing. */
                {
                        char norm[8192] = "";
                        char *s2 = NULL;
                        for (char *w = strtok_r(line, " \t", &s2); w;
                             w = strtok_r(NULL, " \t", &s2)) {
                                if (norm[0])
                                        strncat(norm, " ", sizeof(norm) - strlen(norm) - 1);
                                strncat(norm, w, sizeof(norm) - strlen(norm) - 1);
                        }
                        if (strcmp(norm, got) != 0)
                                fail_msg("%s: group %d: expected '%s', vfioctl says '%s'",
                                         groups_file, id, norm, got);
                }
        }
        if (n_want != json_object_array_length(groups))
                fail_msg("%s: %zu groups expected, vfioctl lists %zu", groups_file, n_want,
                         json_object_array_length(groups));
        return (int)n_want;
}

static void every_real_machine_fixture_reproduces_its_source_groups(void **state)
{
        char dir[PATH_MAX];
        DIR *d;
        int machines = 0;

        snprintf(dir, sizeof(dir), "%s/machines", test_fixture_dir);
        d = opendir(dir);
        assert_non_null(d);
        for (struct dirent *de; (de = readdir(d));) {
                char desc[PATH_MAX + 300], groups[PATH_MAX + 300], out[PATH_MAX + 300];
                size_t len = strlen(de->d_name);
                json_object *doc;
                struct run r;

                if (len < 5 || strcmp(de->d_name + len - 4, ".txt") != 0)
                        continue;
                snprintf(desc, sizeof(desc), "%s/%s", dir, de->d_name);
                snprintf(groups, sizeof(groups), "%s/%.*s.groups", dir, (int)(len - 4), de->d_name);
                snprintf(out, sizeof(out), "%s/m-%.*s", test_tmp, (int)(len - 4), de->d_name);
                fixture_build(desc, out);
                r = vfioctl_run(out, "groups", "--json", NULL);
                if (r.status != 0)
                        fail_msg("%s: vfioctl groups exited %d: %s", de->d_name, r.status, r.err);
                doc = json_tokener_parse(r.out);
                if (!doc)
                        fail_msg("%s: vfioctl groups --json is not JSON", de->d_name);
                assert_true(compare_groups(groups, doc) > 0);
                json_object_put(doc);
                run_done(&r);

                /* The other verbs read the same tree without trouble. */
                r = vfioctl_run(out, "list", NULL, NULL);
                assert_int_equal(r.status, 0);
                run_done(&r);
                machines++;
        }
        closedir(d);
        assert_true(machines >= 4);
}

static void bad_device_arguments_exit_2_with_one_line(void **state)
{
        static const char *const bad[] = {"0000:zz:00.0",          "../../etc",
                                          "0000:7f:1f.7",          "",
                                          "0000:01:00.0/../../..", "0000:01:00.0\n"};
        char out[PATH_MAX], desc[PATH_MAX];

        snprintf(desc, sizeof(desc), "%s/machines", test_fixture_dir);
        snprintf(out, sizeof(out), "%s/bad", test_tmp);
        {
                /* Any real-machine fixture will do as the tree. */
                DIR *d = opendir(desc);
                assert_non_null(d);
                for (struct dirent *de; (de = readdir(d));) {
                        size_t len = strlen(de->d_name);
                        if (len > 4 && strcmp(de->d_name + len - 4, ".txt") == 0) {
                                char p[PATH_MAX + 300];
                                snprintf(p, sizeof(p), "%s/%s", desc, de->d_name);
                                fixture_build(p, out);
                                break;
                        }
                }
                closedir(d);
        }
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct run r = vfioctl_run(out, "show", bad[i], NULL);
                if (r.status != 2)
                        fail_msg("show '%s': exit %d, expected 2", bad[i], r.status);
                if (count_lines(r.err) != 1 || strncmp(r.err, "vfioctl: ", 9) != 0)
                        fail_msg("show '%s': expected one error line, got '%s'", bad[i], r.err);
                if (r.out[0] != '\0')
                        fail_msg("show '%s': printed to stdout: '%s'", bad[i], r.out);
                run_done(&r);
        }
        {
                struct run r = vfioctl_run(out, "frobnicate", NULL, NULL);
                assert_int_equal(r.status, 2);
                run_done(&r);
                r = vfioctl_run(out, "show", NULL, NULL);
                assert_int_equal(r.status, 2);
                run_done(&r);
                r = vfioctl_run("/nonexistent-vfiod-root", "list", NULL, NULL);
                assert_int_equal(r.status, 2);
                run_done(&r);
                /* Usage errors of bind exit 2 with one line, and (under LeakSanitizer)
                 * leave nothing allocated behind. */
                r = vfioctl_run(out, "bind", NULL, NULL);
                assert_int_equal(r.status, 2);
                assert_int_equal(count_lines(r.err), 1);
                run_done(&r);
                r = vfioctl_run(out, "bind", "--persisted", "0000:01:00.0");
                assert_int_equal(r.status, 2);
                assert_int_equal(count_lines(r.err), 1);
                run_done(&r);
        }
}

static struct run vfioctl_run4(const char *root, const char *a, const char *b, const char *c,
                               const char *d)
{
        char *argv[] = {(char *)vfioctl, (char *)"--root", (char *)root, (char *)a,
                        (char *)b,       (char *)c,        (char *)d,    NULL};
        return run_argv(argv);
}

/* Planning is checked on the desktop fixture, whose GPU shares group 2 with its HDMI
 * audio function (snd_hda_intel) behind root port 00:01.0, and whose iGPU drives the
 * console. --dry-run changes nothing, so the tree needs no fake kernel behind it. */
static void binding_checks_the_whole_group_before_touching_anything(void **state)
{
        char desc[PATH_MAX], out[PATH_MAX];
        struct run r;

        snprintf(desc, sizeof(desc), "%s/machines/desktop-z370-gt1030.txt", test_fixture_dir);
        snprintf(out, sizeof(out), "%s/plan", test_tmp);
        fixture_build(desc, out);

        r = vfioctl_run4(out, "bind", "01:00.0", "--dry-run", NULL);
        assert_int_equal(r.status, 1);
        if (!strstr(r.err, "IOMMU group 2 also holds 0000:01:00.1 (snd_hda_intel") ||
            !strstr(r.err, "--group"))
                fail_msg("unexpected refusal: %s", r.err);
        run_done(&r);

        r = vfioctl_run4(out, "bind", "01:00.0", "--dry-run", "--group");
        assert_int_equal(r.status, 0);
        if (!strstr(r.out, "0000:01:00.0: would-bind") ||
            !strstr(r.out, "0000:01:00.1: would-bind") || strstr(r.out, "0000:00:01.0"))
                fail_msg("unexpected plan: %s", r.out);
        run_done(&r);

        r = vfioctl_run4(out, "bind", "00:01.0", "--dry-run", NULL);
        assert_int_equal(r.status, 1);
        if (!strstr(r.err, "is a bridge (PCI bridge, class 0604"))
                fail_msg("bridge not refused: %s", r.err);
        run_done(&r);

        r = vfioctl_run4(out, "bind", "00:02.0", "--dry-run", NULL);
        assert_int_equal(r.status, 1);
        if (!strstr(r.err, "in use by the host: boot VGA device") || !strstr(r.err, "--force"))
                fail_msg("boot VGA not refused: %s", r.err);
        run_done(&r);

        r = vfioctl_run4(out, "bind", "00:02.0", "--dry-run", "--force");
        assert_int_equal(r.status, 0);
        assert_non_null(strstr(r.out, "0000:00:02.0: would-bind"));
        run_done(&r);

        r = vfioctl_run4(out, "bind", "0000:7e:00.0", "--dry-run", NULL);
        assert_int_equal(r.status, 2);
        assert_non_null(strstr(r.err, "no such PCI device"));
        run_done(&r);
}

/* A stock distribution kernel loads vfio-pci and vfio_iommu_type1 on demand. Below a
 * root that is not the running system nothing is ever loaded: the verb fails with one
 * line naming the module, and no journal, driver_override or VF count is written. */
static void an_absent_module_below_a_fixture_root_fails_and_changes_nothing(void **state)
{
        static const char *const attrs[] = {
                "sys/bus/pci/devices/0000:01:00.0/driver_override",
                "sys/bus/pci/devices/0000:02:00.0/sriov_numvfs",
                "sys/bus/pci/devices/0000:02:00.0/sriov_drivers_autoprobe",
                "var/lib/vfiod",
        };
        char desc[PATH_MAX], out[PATH_MAX], path[3 * PATH_MAX];
        char *before[ELEMENTSOF(attrs)];
        json_object *doc, *v, *e;
        struct run r;

        snprintf(desc, sizeof(desc), "%s/distro-modules.txt", test_fixture_dir);
        snprintf(out, sizeof(out), "%s/distro", test_tmp);
        fixture_build(desc, out);
        for (size_t i = 0; i < ELEMENTSOF(attrs); i++)
                before[i] = tree_read_line(out, attrs[i]);

        r = vfioctl_run4(out, "bind", "01:00.0", NULL, NULL);
        assert_int_equal(r.status, 1);
        assert_string_equal(r.err, "vfioctl: 0000:01:00.0: the vfio-pci driver is not loaded "
                                   "(modprobe vfio-pci)\n");
        assert_string_equal(r.out, "");
        run_done(&r);

        r = vfioctl_run4(out, "bind", "01:00.0", "--json", NULL);
        assert_int_equal(r.status, 1);
        doc = json_tokener_parse(r.out);
        assert_non_null(doc);
        assert_true(json_object_object_get_ex(doc, "modules_loaded", &v));
        assert_int_equal(json_object_array_length(v), 0);
        assert_true(json_object_object_get_ex(doc, "results", &v));
        e = json_object_array_get_idx(v, 0);
        assert_true(json_object_object_get_ex(e, "error", &v));
        assert_non_null(strstr(json_object_get_string(v), "vfio-pci driver is not loaded"));
        json_object_put(doc);
        run_done(&r);

        r = vfioctl_run4(out, "sriov", "02:00.0", "--numvfs", "2");
        assert_int_equal(r.status, 1);
        assert_string_equal(r.err, "vfioctl: sriov: 0000:02:00.0: the vfio-pci driver is not "
                                   "loaded (modprobe vfio-pci)\n");
        run_done(&r);

        for (size_t i = 0; i < ELEMENTSOF(attrs); i++) {
                _cleanup_free_ char *now = tree_read_line(out, attrs[i]);
                if (strcmp(now, before[i]) != 0)
                        fail_msg("%s changed: '%s' -> '%s'", attrs[i], before[i], now);
                free(before[i]);
        }

        /* The edu on vfio-pci, its group node there: type1 is what opens it, and its
         * module is not loaded. */
        snprintf(desc, sizeof(desc), "%s/distro-on-vfio.txt", test_tmp);
        snprintf(path, sizeof(path),
                 "sed 's/^dev 0000:01:00.0 .*/& driver=vfio-pci/' '%s/distro-modules.txt' > '%s'",
                 test_fixture_dir, desc);
        assert_int_equal(system(path), 0);
        snprintf(out, sizeof(out), "%s/distro-on-vfio", test_tmp);
        fixture_build(desc, out);
        snprintf(path, sizeof(path), "mkdir -p '%s/dev/vfio' && : > '%s/dev/vfio/3'", out, out);
        assert_int_equal(system(path), 0);
        r = vfioctl_run4(out, "probe", "01:00.0", "--json", NULL);
        assert_int_equal(r.status, 1);
        assert_string_equal(r.err, "vfioctl: probe: 0000:01:00.0: the vfio_iommu_type1 module is "
                                   "not loaded (modprobe vfio_iommu_type1)\n");
        doc = json_tokener_parse(r.out);
        assert_non_null(doc);
        assert_true(json_object_object_get_ex(doc, "modules_loaded", &v));
        assert_int_equal(json_object_array_length(v), 0);
        json_object_put(doc);
        run_done(&r);
}

static json_object *device_by_address(json_object *doc, const char *addr)
{
        json_object *devs;

        assert_true(json_object_object_get_ex(doc, "devices", &devs));
        for (size_t i = 0; i < json_object_array_length(devs); i++) {
                json_object *d = json_object_array_get_idx(devs, i), *a;
                if (json_object_object_get_ex(d, "address", &a) &&
                    strcmp(json_object_get_string(a), addr) == 0)
                        return d;
        }
        fail_msg("%s missing from the listing", addr);
        return NULL;
}

static json_object *field(json_object *o, const char *key)
{
        json_object *v = NULL;
        if (!json_object_object_get_ex(o, key, &v))
                fail_msg("no field %s", key);
        return v;
}

static json_object *generate_and_list(const char *name, struct run *r)
{
        char desc[PATH_MAX], out[PATH_MAX];
        json_object *doc;

        snprintf(desc, sizeof(desc), "%s/%s.txt", test_fixture_dir, name);
        snprintf(out, sizeof(out), "%s/%s", test_tmp, name);
        fixture_build(desc, out);
        *r = vfioctl_run(out, "list", "--json", NULL);
        if (r->status != 0)
                fail_msg("%s: list exited %d: %s", name, r->status, r->err);
        doc = json_tokener_parse(r->out);
        if (!doc)
                fail_msg("%s: list --json is not JSON", name);
        return doc;
}

/* broken.txt damages ten functions (see broken.md); each damage is a warning, and every
 * healthy fact stays right. Run under ASan and UBSan too, this is the no-crash check. */
static void a_damaged_tree_gives_warnings_and_correct_output_for_the_rest(void **state)
{
        static const char *const warned[] = {"0000:00:14.0", "0000:00:14.2", "0000:00:16.0",
                                             "0000:00:17.0", "0000:00:1f.3", "0000:00:1f.4",
                                             "0000:03:00.0"};
        struct run r;
        json_object *doc = generate_and_list("broken", &r), *d, *w;

        for (size_t i = 0; i < sizeof(warned) / sizeof(warned[0]); i++) {
                char needle[64];
                snprintf(needle, sizeof(needle), "vfioctl: warning: %s: ", warned[i]);
                if (!strstr(r.err, needle))
                        fail_msg("no warning for %s in: %s", warned[i], r.err);
        }
        w = field(doc, "warnings");
        assert_true(json_object_array_length(w) >= sizeof(warned) / sizeof(warned[0]));

        d = device_by_address(doc, "0000:05:00.0"); /* healthy NVMe with mounted partitions */
        assert_string_equal(json_object_get_string(field(d, "in_use")),
                            "nvme0n1p1 is mounted on /boot/efi");
        d = device_by_address(doc, "0000:01:00.0"); /* healthy GPU on vfio-pci */
        assert_string_equal(json_object_get_string(field(d, "driver")), "vfio-pci");
        assert_int_equal(json_object_get_int(field(d, "iommu_group")), 2);
        assert_true(json_object_get_boolean(field(d, "group_viable")));
        d = device_by_address(doc, "0000:00:16.0"); /* dangling group link */
        assert_null(field(d, "iommu_group"));
        assert_null(field(field(d, "isolation"), "alone_in_group"));
        d = device_by_address(doc, "0000:03:00.0"); /* garbage link, listed by group 12 */
        assert_int_equal(json_object_get_int(field(d, "iommu_group")), 12);
        assert_null(field(d, "acs"));
        d = device_by_address(doc, "0000:04:00.0"); /* PCIe, config cut at 256 bytes */
        assert_string_equal(json_object_get_string(field(d, "pcie_type")), "endpoint");
        assert_null(field(d, "acs"));
        d = device_by_address(doc, "0000:00:1f.3"); /* garbage numa_node, revision */
        assert_int_equal(json_object_get_int(field(d, "numa_node")), -1);
        d = device_by_address(doc, "0000:00:1f.0"); /* no vendor/class files: config has them */
        assert_string_equal(json_object_get_string(field(d, "vendor_id")), "0x8086");
        json_object_put(doc);
        run_done(&r);
}

static void iommu_modes_are_told_apart(void **state)
{
        static const struct {
                const char *fixture, *mode;
                bool present;
        } cases[] = {
                {"noiommu", "noiommu", false},
                {"passthrough", "passthrough", true},
                {"machines/desktop-z370-gt1030", "translated", true},
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct run r;
                json_object *doc = generate_and_list(cases[i].fixture, &r);
                json_object *iommu = field(field(doc, "host"), "iommu");
                if (strcmp(json_object_get_string(field(iommu, "mode")), cases[i].mode) != 0)
                        fail_msg("%s: mode %s, expected %s", cases[i].fixture,
                                 json_object_get_string(field(iommu, "mode")), cases[i].mode);
                assert_int_equal(json_object_get_boolean(field(iommu, "present")),
                                 cases[i].present);
                json_object_put(doc);
                run_done(&r);
        }
}

/* The live host, checked against the kernel's own listing: every function in
 * /sys/bus/pci/devices appears once, and the IOMMU verdict matches /sys/class/iommu. */
static void the_live_host_listing_matches_sysfs(void **state)
{
        char *argv[] = {(char *)vfioctl, (char *)"list", (char *)"--json", NULL};
        struct run r = run_argv(argv);
        json_object *doc, *devs, *host, *iommu, *present;
        size_t n_sysfs = 0, n_units = 0;
        DIR *d;

        assert_int_equal(r.status, 0);
        doc = json_tokener_parse(r.out);
        assert_non_null(doc);
        assert_true(json_object_object_get_ex(doc, "devices", &devs));
        d = opendir("/sys/bus/pci/devices");
        assert_non_null(d);
        for (struct dirent *de; (de = readdir(d));) {
                bool found = false;
                if (de->d_name[0] == '.')
                        continue;
                n_sysfs++;
                for (size_t i = 0; i < json_object_array_length(devs); i++) {
                        json_object *a;
                        assert_true(json_object_object_get_ex(json_object_array_get_idx(devs, i),
                                                              "address", &a));
                        found |= strcmp(json_object_get_string(a), de->d_name) == 0;
                }
                if (!found)
                        fail_msg("%s is in sysfs but not in vfioctl list", de->d_name);
        }
        closedir(d);
        assert_int_equal(n_sysfs, json_object_array_length(devs));

        d = opendir("/sys/class/iommu");
        for (struct dirent *de; d && (de = readdir(d));)
                n_units += de->d_name[0] != '.';
        if (d)
                closedir(d);
        assert_true(json_object_object_get_ex(doc, "host", &host));
        assert_true(json_object_object_get_ex(host, "iommu", &iommu));
        assert_true(json_object_object_get_ex(iommu, "present", &present));
        assert_int_equal(json_object_get_boolean(present), n_units > 0);
        json_object_put(doc);
        run_done(&r);

        if (n_units == 0) {
                /* Text output says so plainly, on its first line. */
                char *argv2[] = {(char *)vfioctl, (char *)"list", NULL};
                r = run_argv(argv2);
                assert_int_equal(r.status, 0);
                assert_true(strncmp(r.out, "No IOMMU is present", 19) == 0);
                run_done(&r);
        }
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(every_real_machine_fixture_reproduces_its_source_groups),
                cmocka_unit_test(bad_device_arguments_exit_2_with_one_line),
                cmocka_unit_test(the_live_host_listing_matches_sysfs),
                cmocka_unit_test(binding_checks_the_whole_group_before_touching_anything),
                cmocka_unit_test(a_damaged_tree_gives_warnings_and_correct_output_for_the_rest),
                cmocka_unit_test(iommu_modes_are_told_apart),
                cmocka_unit_test(an_absent_module_below_a_fixture_root_fails_and_changes_nothing),
        };

        if (argc != 4) {
                fprintf(stderr, "usage: test-fixtures MKFIXTURE FIXTURE_DIR VFIOCTL\n");
                return 2;
        }
        fixture_init(argv[1], argv[2]);
        vfioctl = argv[3];
        return cmocka_run_group_tests(tests, test_tmp_setup, test_tmp_teardown);
}
