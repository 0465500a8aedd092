/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What bind decides from a snapshot scoped to the requested devices is what it decides
 * from the whole host, on every fixture tree and for every device in it; and the reset
 * check refuses a bus reset that would reach a device the host is using. Run as:
 * test-bind-scope MKFIXTURE FIXTURE_DIR */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bind.h"
#include "helpers.h"
#include "macro.h"
#include "reset.h"
#include "strv.h"

static const char *const trees[] = {
        "machines/amd-b450m-raven.txt",
        "machines/desktop-z370-gt1030.txt",
        "machines/server-c236-i350.txt",
        "machines/workstation-rpl-82576-sriov.txt",
        "audit-hazards.txt",
        "broken.txt",
        "noiommu.txt",
        "passthrough.txt",
};

/* The tree of fixture_dir/desc, built once below tmp; returns its root. */
static struct root *tree(const char *desc)
{
        char out[PATH_MAX];
        struct root *root = NULL;

        snprintf(out, sizeof(out), "%s/%s", test_tmp, desc);
        for (char *s = out + strlen(test_tmp) + 1; *s; s++)
                if (*s == '/')
                        *s = '_';
        if (access(out, F_OK) < 0)
                fixture_build(desc, out);
        assert_int_equal(root_open(out, &root), 0);
        return root;
}

/* One decision, flattened to text: return code, detail, plan and notes. */
static char *decide(const struct topology *t, const struct pci_addr *a, unsigned flags)
{
        _cleanup_free_ char *why = NULL, *rwhy = NULL;
        struct bind_plan p = {0};
        char *s = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&s, &n);
        const struct pci_device *d = topology_find_device(t, a);
        int r = bind_plan_build(t, a, 1, flags, &p, &why);

        assert_non_null(f);
        fprintf(f, "bind %d %s;", r, strna(why));
        for (size_t i = 0; i < p.n_devices; i++) {
                char buf[PCI_ADDR_STRLEN];
                fprintf(f, " %s", pci_addr_format(&p.devices[i], buf));
        }
        STRV_FOREACH (note, p.notes)
                fprintf(f, " note: %s;", *note);
        if (d) {
                r = vfio_reset_check(t, d, &rwhy);
                fprintf(f, " reset %d %s; in use: %s", r, strna(rwhy), strna(d->in_use));
        }
        bind_plan_done(&p);
        assert_int_equal(fclose(f), 0);
        return s;
}

static void scoped_snapshots_decide_like_the_whole_host(void **state)
{
        static const unsigned flag_sets[] = {0, BIND_GROUP, BIND_FORCE, BIND_GROUP | BIND_FORCE};
        size_t compared = 0, smaller = 0;

        for (size_t k = 0; k < ELEMENTSOF(trees); k++) {
                _cleanup_(root_freep) struct root *root = tree(trees[k]);
                _cleanup_(topology_freep) struct topology *whole = NULL;

                assert_int_equal(topology_scan(root, TOPOLOGY_SCAN_NO_NAMES, &whole), 0);
                for (size_t i = 0; i < whole->n_devices; i++) {
                        _cleanup_(topology_freep) struct topology *scoped = NULL;
                        const struct pci_addr *a = &whole->devices[i].addr;

                        assert_int_equal(
                                topology_scan_scoped(root, TOPOLOGY_SCAN_NO_NAMES, a, 1, &scoped),
                                0);
                        smaller += scoped->n_devices < whole->n_devices;
                        for (size_t f = 0; f < ELEMENTSOF(flag_sets); f++) {
                                _cleanup_free_ char *w = decide(whole, a, flag_sets[f]);
                                _cleanup_free_ char *s = decide(scoped, a, flag_sets[f]);
                                if (strcmp(w, s) != 0)
                                        fail_msg("%s: %s, flags %u:\n  whole:  %s\n  scoped: %s",
                                                 trees[k], whole->devices[i].name, flag_sets[f], w,
                                                 s);
                                compared++;
                        }
                }
        }
        print_message("%zu decisions compared; %zu scoped snapshots smaller than the host\n",
                      compared, smaller);
        assert_true(compared > 100);
        /* The scope must leave something out, or it saves nothing. */
        assert_true(smaller > 0);
}

static void a_scoped_snapshot_holds_the_group_and_the_bridges_above(void **state)
{
        _cleanup_(root_freep) struct root *root = tree("audit-hazards.txt");
        _cleanup_(topology_freep) struct topology *t = NULL;
        struct pci_addr want[2];
        const struct pci_device *d;

        assert_int_equal(pci_addr_parse("0000:03:00.0", &want[0]), 0);
        assert_int_equal(pci_addr_parse("0000:7f:1f.7", &want[1]), 0); /* not on the host */
        assert_int_equal(topology_scan_scoped(root, TOPOLOGY_SCAN_NO_NAMES, want, 2, &t), 0);
        /* 03:00.0, its group (the bridge 00:1e.0 and 03:01.0), nothing else. */
        assert_int_equal(t->n_devices, 3);
        assert_int_equal(t->n_groups, 1);
        d = topology_find_device(t, &want[0]);
        assert_non_null(d);
        assert_string_equal(t->devices[d->parent].name, "0000:00:1e.0");
        assert_null(topology_find_device(t, &want[1]));
        /* The interface up on 03:01.0 is found although the scan skipped most devices. */
        assert_int_equal(pci_addr_parse("0000:03:01.0", &want[1]), 0);
        assert_string_equal(topology_find_device(t, &want[1])->in_use, "interface eth1 is up");
}

static void a_bus_reset_reaching_a_device_in_use_is_refused(void **state)
{
        _cleanup_(root_freep) struct root *root = tree("audit-hazards.txt");
        _cleanup_(topology_freep) struct topology *t = NULL;
        _cleanup_free_ char *why = NULL;
        struct pci_addr a;

        assert_int_equal(topology_scan(root, TOPOLOGY_SCAN_NO_NAMES, &t), 0);
        /* 03:00.0 has only a bus reset, and 03:01.0 on the same bus is the host's. */
        assert_int_equal(pci_addr_parse("0000:03:00.0", &a), 0);
        assert_int_equal(vfio_reset_check(t, topology_find_device(t, &a), &why), -EBUSY);
        assert_string_equal(why, "0000:03:00.0: only a bus reset is available, and it would "
                                 "also reset 0000:03:01.0, which the host is using "
                                 "(interface eth1 is up)");
        free(why);
        why = NULL;
        /* A function-level reset touches the device alone. */
        assert_int_equal(pci_addr_parse("0000:01:00.0", &a), 0);
        assert_int_equal(vfio_reset_check(t, topology_find_device(t, &a), &why), 0);
        assert_null(why);
        /* No reset method at all. */
        assert_int_equal(pci_addr_parse("0000:04:00.0", &a), 0);
        assert_int_equal(vfio_reset_check(t, topology_find_device(t, &a), &why), -ENOTTY);
        assert_string_equal(why, "0000:04:00.0: the kernel offers no reset method for it");
}

/* A host bridge has a type 0 header, so its class is what marks it: no plan binds one,
 * asked for or taken with its group (the ISA bridge of group 18 stays behind too). */
static void no_plan_binds_a_bridge_of_any_class(void **state)
{
        _cleanup_(root_freep) struct root *root = tree("machines/workstation-rpl-82576-sriov.txt");
        _cleanup_(topology_freep) struct topology *t = NULL;
        static const struct {
                const char *addr, *why;
        } bridges[] = {
                {"0000:00:00.0", "0000:00:00.0: is a bridge (host bridge, class 0600, no driver); "
                                 "bridges "
                                 "stay with the host and are never bound to vfio-pci"},
                {"0000:00:1f.0", "0000:00:1f.0: is a bridge (ISA bridge, class 0601, no driver); "
                                 "bridges "
                                 "stay with the host and are never bound to vfio-pci"},
                {"0000:00:1c.0", "0000:00:1c.0: is a bridge (PCI bridge, class 0604, pcieport); "
                                 "bridges "
                                 "stay with the host and are never bound to vfio-pci"},
        };
        struct pci_addr a;

        assert_int_equal(topology_scan(root, TOPOLOGY_SCAN_NO_NAMES, &t), 0);
        for (size_t i = 0; i < ELEMENTSOF(bridges); i++) {
                _cleanup_free_ char *why = NULL;
                struct bind_plan p = {0};

                assert_int_equal(pci_addr_parse(bridges[i].addr, &a), 0);
                assert_true(pci_device_is_bridge(topology_find_device(t, &a)));
                assert_int_equal(bind_plan_build(t, &a, 1, BIND_GROUP | BIND_FORCE, &p, &why),
                                 -EINVAL);
                assert_string_equal(why, bridges[i].why);
        }
        /* 00:1f.3 shares group 18 with the ISA bridge: --group takes the others only. */
        _cleanup_free_ char *why = NULL;
        struct bind_plan p = {0};
        assert_int_equal(pci_addr_parse("0000:00:1f.3", &a), 0);
        assert_int_equal(bind_plan_build(t, &a, 1, BIND_GROUP | BIND_FORCE, &p, &why), 0);
        assert_int_equal(p.n_devices, 3);
        for (size_t i = 0; i < p.n_devices; i++)
                assert_false(pci_device_is_bridge(topology_find_device(t, &p.devices[i])));
        bind_plan_done(&p);
}

/* A card: the GT 1030 (01:00.0) and its HDMI audio (01:00.1) share group 2. With the
 * audio function on no driver the kernel would let it stay behind; bind does not. */
static void a_cards_function_without_a_driver_goes_with_it(void **state)
{
        _cleanup_(root_freep) struct root *root = tree("machines/desktop-z370-gt1030.txt");
        _cleanup_(topology_freep) struct topology *t = NULL;
        _cleanup_free_ char *why = NULL;
        char link[PATH_MAX];
        struct pci_addr a[2];
        struct bind_plan p = {0};

        snprintf(link, sizeof(link),
                 "%s/machines_desktop-z370-gt1030.txt/sys/bus/pci/devices/"
                 "0000:01:00.1/driver",
                 test_tmp);
        (void)unlink(link);
        assert_int_equal(topology_scan(root, TOPOLOGY_SCAN_NO_NAMES, &t), 0);
        assert_int_equal(pci_addr_parse("0000:01:00.0", &a[0]), 0);
        assert_int_equal(pci_addr_parse("0000:01:00.1", &a[1]), 0);
        assert_null(topology_find_device(t, &a[1])->driver);

        assert_int_equal(bind_plan_build(t, a, 1, BIND_FORCE, &p, &why), -EBUSY);
        assert_non_null(strstr(why, "0000:01:00.0: its card's function 0000:01:00.1 ("));
        assert_non_null(strstr(why, "no driver) shares IOMMU group 2 and goes with it: pass "
                                    "--group, or name it too"));
        /* Named too, or taken with --group: the whole card. */
        assert_int_equal(bind_plan_build(t, a, 2, BIND_FORCE, &p, &why), 0);
        assert_int_equal(p.n_devices, 2);
        bind_plan_done(&p);
        assert_int_equal(bind_plan_build(t, a, 1, BIND_FORCE | BIND_GROUP, &p, &why), 0);
        assert_int_equal(p.n_devices, 2);
        assert_true(pci_addr_equal(&p.devices[1], &a[1]));
        assert_string_equal(p.notes[0], "0000:01:00.1: taken with 0000:01:00.0, the same card "
                                        "(--group)");
        bind_plan_done(&p);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(scoped_snapshots_decide_like_the_whole_host),
                cmocka_unit_test(a_scoped_snapshot_holds_the_group_and_the_bridges_above),
                cmocka_unit_test(a_bus_reset_reaching_a_device_in_use_is_refused),
                cmocka_unit_test(no_plan_binds_a_bridge_of_any_class),
                cmocka_unit_test(a_cards_function_without_a_driver_goes_with_it),
        };

        if (argc != 3) {
                fprintf(stderr, "usage: %s MKFIXTURE FIXTURE_DIR\n", argv[0]);
                return 2;
        }
        fixture_init(argv[1], argv[2]);
        /* The fixture trees live in one temporary directory for the whole run. */
        return cmocka_run_group_tests(tests, test_tmp_setup, test_tmp_teardown);
}
