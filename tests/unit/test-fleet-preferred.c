/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* GetPreferredAllocation's choice, exactly, on the two-socket fixture: NUMA node 0 has
 * PFs 01:00.0 (VFs 01:10.0 .2 .4 .6) and 01:00.1 (01:10.1 .3 .5 .7) under pci0000:00,
 * node 1 the same on bus 81 under pci0000:80; the edu 00:03.0 is its own group on no
 * known node. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fleet-tree.h"
#include "macro.h"
#include "preferred.h"

static struct fleet_inventory *inv;

/* Splits a space-separated list into v (at most 32 names, in s). */
static size_t split(char *s, const char *v[static 32])
{
        size_t n = 0;
        for (char *save = NULL, *w = strtok_r(s, " ", &save); w && n < 32;
             w = strtok_r(NULL, " ", &save))
                v[n++] = w;
        return n;
}

/* All the devices of the inventory, as kubelet would offer them. */
static const char *all = "00:03.0 01:10.0 01:10.1 01:10.2 01:10.3 01:10.4 01:10.5 01:10.6 "
                         "01:10.7 81:10.0 81:10.1 81:10.2 81:10.3 81:10.4 81:10.5 81:10.6 81:10.7";

/* The choice as a space-separated list of addresses, or the errno. */
static void expect(const char *available, const char *must, size_t size, const char *want)
{
        char a[1024], m[1024], got[1024] = "";
        const char *av[32], *mv[32];
        _cleanup_free_ const struct fleet_device **out = NULL;
        size_t na, nm;

        snprintf(a, sizeof(a), "%s", available);
        snprintf(m, sizeof(m), "%s", must);
        na = split(a, av);
        nm = split(m, mv);
        assert_int_equal(fleet_preferred_allocation(inv, av, na, mv, nm, size, &out, NULL), 0);
        for (size_t i = 0; i < size; i++)
                snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", i ? " " : "",
                         out[i]->name);
        assert_string_equal(got, want);
}

static void expect_error(const char *available, const char *must, size_t size, int err,
                         const char *needle)
{
        char a[1024], m[1024];
        const char *av[32], *mv[32];
        const struct fleet_device **out = NULL;
        _cleanup_free_ char *detail = NULL;
        size_t na, nm;

        snprintf(a, sizeof(a), "%s", available);
        snprintf(m, sizeof(m), "%s", must);
        na = split(a, av);
        nm = split(m, mv);
        assert_int_equal(fleet_preferred_allocation(inv, av, na, mv, nm, size, &out, &detail), err);
        assert_null(out);
        assert_non_null(strstr(detail, needle));
}

static void two_devices_come_from_one_pf(void **state)
{
        expect(all, "", 2, "0000:01:10.0 0000:01:10.2");
        expect(all, "", 4, "0000:01:10.0 0000:01:10.2 0000:01:10.4 0000:01:10.6");
        expect(all, "", 1, "0000:00:03.0");
}

static void the_pf_that_fits_best_is_chosen(void **state)
{
        /* 01:00.0 has 2 free, 01:00.1 has 3, 81:00.0 has 4: three fit exactly on 01:00.1. */
        expect("01:10.0 01:10.2 01:10.1 01:10.3 01:10.5 81:10.0 81:10.2 81:10.4 81:10.6", "", 3,
               "0000:01:10.1 0000:01:10.3 0000:01:10.5");
}

static void must_include_devices_pull_the_rest_onto_their_pf(void **state)
{
        expect(all, "81:10.3", 2, "0000:81:10.1 0000:81:10.3");
        /* Its PF has 4: two more must come from the same NUMA node, the other PF there. */
        expect(all, "81:10.3", 6,
               "0000:81:10.0 0000:81:10.1 0000:81:10.2 0000:81:10.3 0000:81:10.5 0000:81:10.7");
}

static void more_than_a_pf_stays_on_one_numa_node(void **state)
{
        expect(all, "", 6,
               "0000:01:10.0 0000:01:10.1 0000:01:10.2 0000:01:10.3 0000:01:10.4 0000:01:10.6");
        /* Node 0 has 4 + 1 free and cannot give 6; node 1 gives them from two PFs, where
         * taking the largest PF first would have spread over both nodes. */
        expect("01:10.0 01:10.2 01:10.4 01:10.6 01:10.1 81:10.0 81:10.2 81:10.4 81:10.1 81:10.3 "
               "81:10.5",
               "", 6,
               "0000:81:10.0 0000:81:10.1 0000:81:10.2 0000:81:10.3 0000:81:10.4 0000:81:10.5");
}

static void must_include_devices_on_two_nodes_are_all_kept(void **state)
{
        expect(all, "01:10.6 81:10.7", 3, "0000:01:10.0 0000:01:10.6 0000:81:10.7");
        expect(all, "01:10.6 81:10.7", 2, "0000:01:10.6 0000:81:10.7");
}

static void requests_that_cannot_be_met_are_refused(void **state)
{
        expect_error(all, "", 18, -EINVAL, "cannot choose 18 devices");
        expect_error(all, "", 0, -EINVAL, "cannot choose 0 devices");
        expect_error(all, "01:10.0 01:10.2", 1, -EINVAL, "with 2 must-include");
        expect_error("01:10.0", "01:10.2", 1, -EINVAL, "01:10.2 is not among the available");
        expect_error("01:10.0 00:04.0", "", 1, -ENOENT, "no device \"00:04.0\"");
        expect_error("01:10.0 nonsense", "", 1, -ENOENT, "no device \"nonsense\"");
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(two_devices_come_from_one_pf),
                cmocka_unit_test(the_pf_that_fits_best_is_chosen),
                cmocka_unit_test(must_include_devices_pull_the_rest_onto_their_pf),
                cmocka_unit_test(more_than_a_pf_stays_on_one_numa_node),
                cmocka_unit_test(must_include_devices_on_two_nodes_are_all_kept),
                cmocka_unit_test(requests_that_cannot_be_met_are_refused),
        };
        int r;

        if (argc != 4) {
                fprintf(stderr, "usage: %s MKFIXTURE FIXTURE_DIR ADD_VFIO_NODES\n", argv[0]);
                return 2;
        }
        if (fleet_tree_init(argv[1], argv[2], argv[3]) < 0)
                return 1;
        inv = fleet_tree_inventory("iommufd", NULL, NULL);
        r = cmocka_run_group_tests(tests, NULL, NULL);
        fleet_inventory_free(inv);
        fleet_tree_done();
        return r;
}
