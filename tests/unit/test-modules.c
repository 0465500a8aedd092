/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The kernel-module decision on fixture trees: what counts as present (a driver
 * directory, sys/module, vfio's class or nodes), and that below a root which is not the
 * running system nothing is ever loaded: an absent module is the error it always was.
 * Loading itself needs a real kernel (the lab's modules scenario); libkmod, loaded only
 * for it, stays out of a process that has nothing to load, and its absence is an error
 * that names it. Run as:
 * test-modules MKFIXTURE FIXTURE_DIR [--without-libkmod]
 * the last with LD_LIBRARY_PATH leading to tests/unit/no-libkmod, whose libkmod.so.2 is
 * no library. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "helpers.h"
#include "kmod-dlopen.h"
#include "modules.h"
#include "strv.h"

/* distro-modules.txt with extra description lines, built as tmp/name; then the shell
 * command post (if any) runs in the tree. */
static struct root *tree(const char *name, const char *extra, const char *post)
{
        _cleanup_free_ char *base = NULL, *cmd = NULL;
        char out[PATH_MAX], desc[PATH_MAX + 8];
        struct root *root = NULL;
        FILE *f;

        snprintf(out, sizeof(out), "%s/%s", test_tmp, name);
        snprintf(desc, sizeof(desc), "%s.txt", out);
        assert_true(asprintf(&cmd, "%s/distro-modules.txt", test_fixture_dir) >= 0);
        base = slurp(cmd);
        f = fopen(desc, "we");
        assert_non_null(f);
        fprintf(f, "%s%s\n", base, extra);
        assert_int_equal(fclose(f), 0);
        fixture_build(desc, out);
        free(cmd);
        assert_true(asprintf(&cmd, "cd '%s' && { %s; }", out, post ? post : ":") >= 0);
        if (system(cmd) != 0)
                fail_msg("cannot finish the tree %s", name);
        assert_int_equal(root_open(out, &root), 0);
        assert_false(root->is_host);
        return root;
}

/* vfio_modules_need() on a fixture: its return, and the detail when it fails. */
static int need(const struct root *root, unsigned want, char **ret_detail)
{
        char **loaded = (char **)(uintptr_t)1; /* must be reset */
        int r = vfio_modules_need(root, want, &loaded, ret_detail);

        assert_null(loaded);
        return r;
}

static void a_distribution_tree_has_none_and_nothing_is_loaded_below_a_fixture(void **state)
{
        _cleanup_(root_freep) struct root *root = tree("distro", "", NULL);
        _cleanup_free_ char *why = NULL;

        assert_false(vfio_module_present(root, VFIO_MODULE_VFIO_PCI));
        assert_false(vfio_module_present(root, VFIO_MODULE_TYPE1));
        assert_false(vfio_module_present(root, VFIO_MODULE_IOMMUFD));
        /* vfio is loaded, although it has no parameters. */
        assert_true(vfio_module_present(root, VFIO_MODULE_VFIO));

        assert_int_equal(need(root, VFIO_MODULE_BIT(VFIO_MODULE_VFIO_PCI), &why), -ENOENT);
        assert_string_equal(why, "the vfio-pci driver is not loaded (modprobe vfio-pci)");
        assert_int_equal(need(root, VFIO_MODULE_BIT(VFIO_MODULE_TYPE1), &why), -ENOENT);
        assert_string_equal(
                why, "the vfio_iommu_type1 module is not loaded (modprobe vfio_iommu_type1)");
        assert_int_equal(need(root, VFIO_MODULE_BIT(VFIO_MODULE_IOMMUFD), &why), -ENOENT);
        assert_string_equal(why, "iommufd is not loaded (modprobe iommufd)");
        /* The first absent one is named. */
        assert_int_equal(need(root,
                              VFIO_MODULE_BIT(VFIO_MODULE_VFIO) |
                                      VFIO_MODULE_BIT(VFIO_MODULE_TYPE1) |
                                      VFIO_MODULE_BIT(VFIO_MODULE_VFIO_PCI),
                              &why),
                         -ENOENT);
        assert_non_null(strstr(why, "vfio-pci"));
        /* Asking for nothing, or for what is there, is no error. */
        assert_int_equal(need(root, 0, NULL), 0);
        assert_int_equal(need(root, VFIO_MODULE_BIT(VFIO_MODULE_VFIO), NULL), 0);
}

static void vfio_pci_is_present_by_its_driver_directory_or_its_module(void **state)
{
        _cleanup_(root_freep) struct root *by_driver =
                tree("by-driver", "driver vfio-pci", "rm -r sys/module/vfio_pci");
        _cleanup_(root_freep) struct root *by_module = tree("by-module", "module vfio_pci", NULL);
        _cleanup_free_ char *why = NULL;

        assert_true(vfio_module_present(by_driver, VFIO_MODULE_VFIO_PCI));
        assert_int_equal(need(by_driver, VFIO_MODULE_BIT(VFIO_MODULE_VFIO_PCI), &why), 0);
        assert_int_equal(vfio_modules_check(by_driver, VFIO_MODULE_BIT(VFIO_MODULE_VFIO_PCI), NULL),
                         0);
        assert_true(vfio_module_present(by_module, VFIO_MODULE_VFIO_PCI));
        assert_int_equal(need(by_module, VFIO_MODULE_BIT(VFIO_MODULE_VFIO_PCI), &why), 0);
        assert_null(why);
}

static void the_backends_modules_are_present_by_sys_module_or_their_node(void **state)
{
        _cleanup_(root_freep) struct root *type1 =
                tree("type1", "module vfio_iommu_type1 allow_unsafe_interrupts=N", NULL);
        _cleanup_(root_freep) struct root *node =
                tree("iommu-node", "", "mkdir -p dev && : > dev/iommu");
        _cleanup_(root_freep) struct root *mod = tree("iommufd-module", "module iommufd", NULL);

        assert_int_equal(need(type1, vfio_modules_for_backend(VFIO_BACKEND_TYPE1), NULL), 0);
        assert_int_equal(need(type1, vfio_modules_for_backend(VFIO_BACKEND_IOMMUFD), NULL),
                         -ENOENT);
        assert_int_equal(need(node, vfio_modules_for_backend(VFIO_BACKEND_IOMMUFD), NULL), 0);
        assert_int_equal(need(mod, vfio_modules_for_backend(VFIO_BACKEND_IOMMUFD), NULL), 0);
        assert_int_equal(need(node, vfio_modules_for_backend(VFIO_BACKEND_TYPE1), NULL), -ENOENT);
        /* The no-IOMMU group path needs neither. */
        assert_int_equal(vfio_modules_for_backend(VFIO_BACKEND_NOIOMMU), 0u);
}

static void a_built_in_vfio_is_seen_by_its_class_or_its_nodes(void **state)
{
        /* No sys/module/vfio: a built-in vfio without parameters. */
        _cleanup_(root_freep) struct root *none = tree("no-vfio", "", "rm -r sys/module/vfio");
        _cleanup_(root_freep) struct root *class =
                tree("vfio-class", "", "rm -r sys/module/vfio && mkdir -p sys/class/vfio");
        _cleanup_(root_freep) struct root *nodes =
                tree("vfio-nodes", "", "rm -r sys/module/vfio && mkdir -p dev/vfio");

        assert_false(vfio_module_present(none, VFIO_MODULE_VFIO));
        assert_true(vfio_module_present(class, VFIO_MODULE_VFIO));
        assert_true(vfio_module_present(nodes, VFIO_MODULE_VFIO));
}

/* The two tests below make the fixture pass for the running host, where missing modules
 * are loaded: each makes sure first that nothing can reach the kernel of the machine that
 * runs the tests. */

static void modules_present_on_the_host_never_load_libkmod(void **state)
{
        _cleanup_(root_freep) struct root *root =
                tree("host-present", "driver vfio-pci\nmodule vfio_iommu_type1", NULL);
        unsigned want = VFIO_MODULE_BIT(VFIO_MODULE_VFIO_PCI) | VFIO_MODULE_BIT(VFIO_MODULE_TYPE1);

        assert_true(vfio_module_present(root, VFIO_MODULE_VFIO_PCI));
        assert_true(vfio_module_present(root, VFIO_MODULE_TYPE1));
        root->is_host = true;
        assert_int_equal(need(root, want, NULL), 0);
        /* Not in the process at all: neither linked nor loaded on the way. */
        assert_null(dlopen("libkmod.so.2", RTLD_NOLOAD | RTLD_LAZY));
}

static void without_libkmod_loading_a_module_fails_naming_it(void **state)
{
        _cleanup_(root_freep) struct root *root = tree("host-no-libkmod", "", NULL);
        _cleanup_free_ char *why = NULL;
        const char *prefix = "cannot load kernel module vfio-pci: cannot load libkmod.so.2 "
                             "(dlopen): ";
        unsigned want = VFIO_MODULE_BIT(VFIO_MODULE_VFIO_PCI) | VFIO_MODULE_BIT(VFIO_MODULE_TYPE1);

        /* Else the call below would load vfio-pci for real. */
        assert_int_equal(kmod_dlopen(&why), -EOPNOTSUPP);
        root->is_host = true;
        assert_int_equal(need(root, want, &why), -EOPNOTSUPP);
        assert_int_equal(strncmp(why, prefix, strlen(prefix)), 0);
        /* dlerror()'s words: the file the loader found and why it is no library. */
        assert_non_null(strstr(why, "no-libkmod/libkmod.so.2: "));
        assert_non_null(strstr(why, " (install libkmod, or modprobe vfio-pci)"));
        /* A second try fails the same way: a failed load is not remembered as done. */
        assert_int_equal(need(root, VFIO_MODULE_BIT(VFIO_MODULE_VFIO_PCI), &why), -EOPNOTSUPP);
        assert_int_equal(strncmp(why, prefix, strlen(prefix)), 0);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(
                        a_distribution_tree_has_none_and_nothing_is_loaded_below_a_fixture),
                cmocka_unit_test(vfio_pci_is_present_by_its_driver_directory_or_its_module),
                cmocka_unit_test(the_backends_modules_are_present_by_sys_module_or_their_node),
                cmocka_unit_test(a_built_in_vfio_is_seen_by_its_class_or_its_nodes),
                cmocka_unit_test(modules_present_on_the_host_never_load_libkmod),
        };
        const struct CMUnitTest without_libkmod[] = {
                cmocka_unit_test(without_libkmod_loading_a_module_fails_naming_it),
        };

        if (argc == 4 && strcmp(argv[3], "--without-libkmod") == 0) {
                fixture_init(argv[1], argv[2]);
                return cmocka_run_group_tests(without_libkmod, test_tmp_setup, test_tmp_teardown);
        }
        if (argc != 3) {
                fprintf(stderr, "usage: %s MKFIXTURE FIXTURE_DIR [--without-libkmod]\n", argv[0]);
                return 2;
        }
        fixture_init(argv[1], argv[2]);
        return cmocka_run_group_tests(tests, test_tmp_setup, test_tmp_teardown);
}
