/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The journal on disk: round trips, corrupt and half-written entries, listing, and the
 * SR-IOV entries that share its directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "macro.h"
#include "strv.h"
#include "sriov.h"

static char tree[256];
static struct root *root;

static int setup(void **state)
{
        snprintf(tree, sizeof(tree), "%s/vfiod-journal-XXXXXX", getenv("TMPDIR") ?: "/tmp");
        if (!mkdtemp(tree))
                return -1;
        return root_open(tree, &root);
}

static int teardown(void **state)
{
        char cmd[300];

        root = root_free(root);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tree);
        return system(cmd) == 0 ? 0 : -1;
}

static void write_raw(struct journal *j, const char *name, const char *content)
{
        int fd = openat(j->dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
        close(fd);
}

static void an_entry_reads_back_as_written(void **state)
{
        struct journal *j = NULL;
        struct journal_entry e = {.state = JOURNAL_BINDING, .original_driver = (char *)"igb"}, got;
        struct pci_addr *l = NULL;
        size_t n = 0;

        assert_int_equal(journal_open(root, "/var/lib/vfiod-test", &j), 0);
        assert_int_equal(pci_addr_parse("0000:02:00.0", &e.addr), 0);
        assert_int_equal(journal_put(j, &e), 0);
        assert_int_equal(journal_get(j, &e.addr, &got), 0);
        assert_int_equal(got.state, JOURNAL_BINDING);
        assert_string_equal(got.original_driver, "igb");
        assert_null(got.original_override);
        assert_null(got.driver);
        journal_entry_done(&got);

        e.state = JOURNAL_ASSIGNED;
        e.original_driver = NULL;
        e.original_override = (char *)"pci-stub";
        e.driver = (char *)"mlx5_vfio_pci";
        assert_int_equal(journal_put(j, &e), 0);
        assert_int_equal(journal_get(j, &e.addr, &got), 0);
        assert_int_equal(got.state, JOURNAL_ASSIGNED);
        assert_null(got.original_driver);
        assert_string_equal(got.original_override, "pci-stub");
        assert_string_equal(got.driver, "mlx5_vfio_pci");
        journal_entry_done(&got);

        assert_int_equal(journal_list(j, &l, &n), 0);
        assert_int_equal(n, 1);
        assert_true(pci_addr_equal(&l[0], &e.addr));
        free(l);
        assert_int_equal(journal_remove(j, &e.addr), 0);
        assert_int_equal(journal_get(j, &e.addr, &got), -ENOENT);
        assert_int_equal(journal_remove(j, &e.addr), 0); /* absent is fine */
        journal_free(j);
}

static void corrupt_and_truncated_entries_are_reported_not_believed(void **state)
{
        static const char *const bad[] = {
                "",
                "{\"address\":\"0000:03:00.0\",\"state\":\"assig",
                "{\"address\":\"0000:03:00.0\",\"state\":\"bogus\",\"original_driver\":null,"
                "\"original_override\":null}",
                "{\"address\":\"0000:04:00.0\",\"state\":\"assigned\",\"original_driver\":null,"
                "\"original_override\":null}", /* names another device */
                "{\"address\":\"0000:03:00.0\",\"state\":\"assigned\",\"original_driver\":7,"
                "\"original_override\":null}",
                "{\"address\":\"0000:03:00.0\",\"state\":\"assigned\",\"original_driver\":null,"
                "\"original_override\":null,\"driver\":7}",
                "[1,2,3]",
                "\x00\xff garbage",
        };
        struct journal *j = NULL;
        struct journal_entry got;
        struct pci_addr a, *l = NULL;
        size_t n = 0;

        assert_int_equal(journal_open(root, NULL, &j), 0);
        assert_int_equal(pci_addr_parse("0000:03:00.0", &a), 0);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                write_raw(j, "0000:03:00.0.json", bad[i]);
                if (journal_get(j, &a, &got) != -EBADMSG)
                        fail_msg("entry %zu was accepted", i);
        }
        /* A corrupt entry still names its device, so restore --all finds it; temporary
         * files from an interrupted write are not entries. */
        write_raw(j, ".0000:05:00.0.json.tmp", "{");
        assert_int_equal(journal_list(j, &l, &n), 0);
        assert_int_equal(n, 1);
        assert_true(pci_addr_equal(&l[0], &a));
        free(l);
        journal_free(j);
}

static void sriov_entries_keep_their_own_names_and_saved_vfs(void **state)
{
        struct journal *j = NULL;
        struct vf_config saved = {.vf = 3,
                                  .have = VF_FIELD_MAC | VF_FIELD_VLAN | VF_FIELD_TRUST,
                                  .mac = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55},
                                  .vlan = 100,
                                  .qos = 2,
                                  .trust = true};
        struct sriov_journal_entry e = {.original_numvfs = 2,
                                        .original_autoprobe = true,
                                        .saved = &saved,
                                        .n_saved = 1},
                                   got;
        struct pci_addr *l = NULL;
        size_t n = 0;

        assert_int_equal(journal_open(root, NULL, &j), 0);
        assert_int_equal(pci_addr_parse("0000:02:00.0", &e.addr), 0);
        assert_int_equal(sriov_journal_put(j, &e), 0);
        assert_int_equal(sriov_journal_get(j, &e.addr, &got), 0);
        assert_int_equal(got.original_numvfs, 2);
        assert_true(got.original_autoprobe);
        assert_int_equal(got.n_saved, 1);
        assert_int_equal(got.saved[0].vf, 3);
        assert_memory_equal(got.saved[0].mac, saved.mac, 6);
        assert_int_equal(got.saved[0].vlan, 100);
        assert_int_equal(got.saved[0].qos, 2);
        assert_true(got.saved[0].trust);
        assert_int_equal(got.saved[0].have, saved.have);
        sriov_journal_entry_done(&got);

        assert_int_equal(sriov_journal_list(j, &l, &n), 0);
        assert_int_equal(n, 1);
        free(l);
        l = NULL;
        /* Not mistaken for a device entry. */
        assert_int_equal(journal_list(j, &l, &n), 0);
        for (size_t i = 0; i < n; i++)
                assert_false(pci_addr_equal(&l[i], &e.addr));
        free(l);
        assert_int_equal(sriov_journal_remove(j, &e.addr), 0);
        journal_free(j);
}

/* A crash between a temporary file's write and its rename leaves it behind: only the
 * journal's own temporary names are removed, and only regular files. */
static void temporaries_a_crash_left_are_removed_and_nothing_else(void **state)
{
        struct journal *j = NULL;
        char **removed = NULL;
        struct stat st;

        assert_int_equal(journal_open(root, "/var/lib/vfiod-temporaries", &j), 0);
        static const char *const own[] = {".0000:01:00.0.json.tmp", ".0000:02:00.0.sriov.json.tmp"};
        static const char *const others[] = {
                "0000:01:00.0.json",       ".0000:01:00.0.json", ".0000:01:00.0.tmp",
                ".notes.json.tmp",         ".assign.conf.tmp",   "0000:03:00.0.json.tmp",
                ".0000:04:00.0.json.tmp2", ".log.tmp",
        };
        for (size_t i = 0; i < ELEMENTSOF(own); i++)
                write_raw(j, own[i], "{\"address\":");
        for (size_t i = 0; i < ELEMENTSOF(others); i++)
                write_raw(j, others[i], "{}");
        /* Named like one, but a directory and a link: not the journal's files. */
        assert_int_equal(mkdirat(j->dirfd, ".0000:0e:00.0.json.tmp", 0700), 0);
        assert_int_equal(symlinkat("/nonexistent", j->dirfd, ".0000:0f:00.0.json.tmp"), 0);

        assert_int_equal(journal_remove_temporaries(j, &removed), 0);
        assert_non_null(removed);
        /* In directory order. */
        assert_non_null(removed[0]);
        assert_non_null(removed[1]);
        assert_null(removed[2]);
        for (size_t i = 0; i < ELEMENTSOF(own); i++) {
                assert_true(strcmp(removed[0], own[i]) == 0 || strcmp(removed[1], own[i]) == 0);
                assert_int_equal(fstatat(j->dirfd, own[i], &st, AT_SYMLINK_NOFOLLOW), -1);
        }
        for (size_t i = 0; i < ELEMENTSOF(others); i++)
                assert_int_equal(fstatat(j->dirfd, others[i], &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_int_equal(fstatat(j->dirfd, ".0000:0e:00.0.json.tmp", &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_int_equal(fstatat(j->dirfd, ".0000:0f:00.0.json.tmp", &st, AT_SYMLINK_NOFOLLOW), 0);
        strv_free(removed);

        /* Nothing left to remove: no list. */
        assert_int_equal(journal_remove_temporaries(j, &removed), 0);
        assert_null(removed);
        journal_free(j);
}

static void vf_addresses_follow_offset_and_stride(void **state)
{
        struct sriov_pf pf = {.totalvfs = 7, .offset = 0x80, .stride = 2};
        struct pci_addr a;
        char buf[PCI_ADDR_STRLEN];

        assert_int_equal(pci_addr_parse("0000:02:00.0", &pf.addr), 0);
        assert_int_equal(sriov_vf_address(&pf, 0, &a), 0);
        assert_string_equal(pci_addr_format(&a, buf), "0000:02:10.0");
        assert_int_equal(sriov_vf_address(&pf, 1, &a), 0);
        assert_string_equal(pci_addr_format(&a, buf), "0000:02:10.2");
        assert_int_equal(sriov_vf_address(&pf, 6, &a), 0);
        assert_string_equal(pci_addr_format(&a, buf), "0000:02:11.4");
        assert_int_equal(sriov_vf_address(&pf, 7, &a), -EINVAL);
        assert_int_equal(sriov_vf_address(&pf, -1, &a), -EINVAL);

        /* VFs past the PF's bus: offset carries into the bus number. */
        pf = (struct sriov_pf){.totalvfs = 255, .offset = 0x100, .stride = 1};
        assert_int_equal(pci_addr_parse("0000:ff:00.0", &pf.addr), 0);
        assert_int_equal(sriov_vf_address(&pf, 0, &a), -ERANGE);
}

static void mac_addresses_parse_strictly(void **state)
{
        uint8_t mac[6];

        assert_int_equal(vf_mac_parse("02:11:22:33:44:55", mac), 0);
        assert_int_equal(mac[0], 0x02);
        assert_int_equal(mac[5], 0x55);
        assert_int_equal(vf_mac_parse("02:11:22:33:44", mac), -EINVAL);
        assert_int_equal(vf_mac_parse("02:11:22:33:44:55:66", mac), -EINVAL);
        assert_int_equal(vf_mac_parse("02-11-22-33-44-55", mac), -EINVAL);
        assert_int_equal(vf_mac_parse("zz:11:22:33:44:55", mac), -EINVAL);
        assert_int_equal(vf_mac_parse(" 2:11:22:33:44:55", mac), -EINVAL);
        assert_int_equal(vf_mac_parse(NULL, mac), -EINVAL);
        assert_int_equal(vf_link_state_from_string("enable"), VF_LINK_STATE_ENABLE);
        assert_int_equal(vf_link_state_from_string("on"), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(an_entry_reads_back_as_written),
                cmocka_unit_test(corrupt_and_truncated_entries_are_reported_not_believed),
                cmocka_unit_test(sriov_entries_keep_their_own_names_and_saved_vfs),
                cmocka_unit_test(temporaries_a_crash_left_are_removed_and_nothing_else),
                cmocka_unit_test(vf_addresses_follow_offset_and_stride),
                cmocka_unit_test(mac_addresses_parse_strictly),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
