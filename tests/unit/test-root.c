/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "root.h"

static char tree[512];

static void put(const char *rel, const char *content)
{
        char p[PATH_MAX];
        FILE *f;

        snprintf(p, sizeof(p), "%s/%s", tree, rel);
        f = fopen(p, "w");
        assert_non_null(f);
        fputs(content, f);
        fclose(f);
}

static int setup(void **state)
{
        char p[PATH_MAX];

        snprintf(tree, sizeof(tree), "%s/vfiod-root-XXXXXX", getenv("TMPDIR") ?: "/tmp");
        if (!mkdtemp(tree))
                return -1;
        snprintf(p, sizeof(p), "%s/sys", tree);
        mkdir(p, 0755);
        snprintf(p, sizeof(p), "%s/sys/dev", tree);
        mkdir(p, 0755);
        put("sys/dev/vendor", "0x8086\n");
        put("sys/dev/cap", "d2008c222f0686\n");
        put("sys/dev/empty", "\n");
        put("sys/dev/garbage", "0x80zz\n");
        put("sys/secret", "inside\n");
        /* A link that climbs far above the tree: resolved in the root it lands on sys/. */
        snprintf(p, sizeof(p), "%s/sys/dev/escape", tree);
        if (symlink("../../../../../../../../sys/secret", p) < 0)
                return -1;
        snprintf(p, sizeof(p), "%s/sys/dev/abs", tree);
        if (symlink("/sys/secret", p) < 0)
                return -1;
        return 0;
}

static int teardown(void **state)
{
        char cmd[PATH_MAX + 16];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tree);
        return system(cmd) == 0 ? 0 : -1;
}

static void unsafe_relative_paths_are_refused(void **state)
{
        assert_true(path_is_safe_relative("sys/bus/pci/devices"));
        assert_true(path_is_safe_relative("proc/cmdline"));
        assert_false(path_is_safe_relative("/sys"));
        assert_false(path_is_safe_relative("sys/../etc"));
        assert_false(path_is_safe_relative(".."));
        assert_false(path_is_safe_relative("sys//bus"));
        assert_false(path_is_safe_relative("sys/./bus"));
        assert_false(path_is_safe_relative("sys/"));
        assert_false(path_is_safe_relative(""));
        assert_false(path_is_safe_relative(NULL));
}

static void symlinks_resolve_inside_the_root(void **state)
{
        _cleanup_(root_freep) struct root *r = NULL;
        _cleanup_free_ char *s = NULL;

        assert_int_equal(root_open(tree, &r), 0);
        assert_false(r->is_host);
        assert_int_equal(root_read_line(r, "sys/dev/escape", &s), 0);
        assert_string_equal(s, "inside");
        free(s);
        s = NULL;
        assert_int_equal(root_read_line(r, "sys/dev/abs", &s), 0);
        assert_string_equal(s, "inside");
        assert_int_equal(root_openat(r, "sys/../sys/secret", O_RDONLY), -EINVAL);
}

static void attribute_readers_parse_strictly(void **state)
{
        _cleanup_(root_freep) struct root *r = NULL;
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *s = NULL;
        int64_t v;
        uint64_t h;

        assert_int_equal(root_open(tree, &r), 0);
        fd = root_openat(r, "sys/dev", O_PATH | O_DIRECTORY);
        assert_true(fd >= 0);
        assert_int_equal(dir_read_int(fd, "vendor", &v), 0);
        assert_int_equal(v, 0x8086);
        assert_int_equal(dir_read_hex(fd, "cap", &h), 0);
        assert_true(h == 0xd2008c222f0686ull);
        assert_int_equal(dir_read_int(fd, "garbage", &v), -EINVAL);
        assert_int_equal(dir_read_line(fd, "empty", &s), -ENODATA);
        assert_int_equal(dir_read_int(fd, "missing", &v), -ENOENT);
        /* O_NOFOLLOW: an attribute that is a link is not an attribute. */
        assert_int_equal(dir_read_line(fd, "escape", &s), -ELOOP);
}

/* A tree of plain files stands in for sysfs: after a write it must read back what was
 * written, as the attribute would, and not the tail of a longer earlier value. */
static void a_written_attribute_reads_back_exactly_what_was_written(void **state)
{
        _cleanup_(root_freep) struct root *r = NULL;
        _cleanup_free_ char *s = NULL;

        put("sys/dev/driver_override", "mlx5_vfio_pci\n");
        assert_int_equal(root_open(tree, &r), 0);
        assert_int_equal(root_write_string(r, "sys/dev/driver_override", "vfio-pci"), 0);
        assert_int_equal(root_read_line(r, "sys/dev/driver_override", &s), 0);
        assert_string_equal(s, "vfio-pci");
}

static void the_kernel_release_comes_from_below_the_root(void **state)
{
        _cleanup_(root_freep) struct root *r = NULL;
        _cleanup_free_ char *s = NULL;
        char p[PATH_MAX];

        assert_int_equal(root_open(tree, &r), 0);
        assert_int_equal(root_kernel_release(r, &s), -ENOENT);
        snprintf(p, sizeof(p), "%s/proc", tree);
        mkdir(p, 0755);
        snprintf(p, sizeof(p), "%s/proc/sys", tree);
        mkdir(p, 0755);
        snprintf(p, sizeof(p), "%s/proc/sys/kernel", tree);
        mkdir(p, 0755);
        put("proc/sys/kernel/osrelease", "../../etc\n");
        assert_int_equal(root_kernel_release(r, &s), -EBADMSG);
        put("proc/sys/kernel/osrelease", "6.12.9-amd64\n");
        assert_int_equal(root_kernel_release(r, &s), 0);
        assert_string_equal(s, "6.12.9-amd64");
}

static void link_targets_resolve_as_strings(void **state)
{
        _cleanup_free_ char *p = NULL, *q = NULL, *x = NULL;

        assert_int_equal(path_resolve_link("sys/bus/pci/devices",
                                           "../../../devices/pci0000:00/0000:00:01.0", &p),
                         0);
        assert_string_equal(p, "sys/devices/pci0000:00/0000:00:01.0");
        assert_int_equal(path_resolve_link("sys/class/net", "../../../../../../x", &q), 0);
        assert_string_equal(q, "x");
        assert_int_equal(path_resolve_link("sys", "..", &x), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(unsafe_relative_paths_are_refused),
                cmocka_unit_test(symlinks_resolve_inside_the_root),
                cmocka_unit_test(attribute_readers_parse_strictly),
                cmocka_unit_test(link_targets_resolve_as_strings),
                cmocka_unit_test(a_written_attribute_reads_back_exactly_what_was_written),
                cmocka_unit_test(the_kernel_release_comes_from_below_the_root),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
