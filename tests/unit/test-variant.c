/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VFIO variant drivers on the vfio-variants fixture: the candidate modules.alias names
 * (the most specific alias, wherever it stands in the file; vfio-pci when none), and
 * what vfioctl show says of it. Run as:
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
#include <unistd.h>

#include "helpers.h"
#include "macro.h"
#include "variant.h"

static const char *vfioctl, *vfioctl_testhooks;

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

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(the_most_specific_variant_alias_wins_wherever_it_stands),
                cmocka_unit_test(vfioctl_show_names_the_candidate_and_why),
                cmocka_unit_test(a_device_no_variant_alias_matches_goes_to_vfio_pci),
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
