/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Opening a VFIO group node to one more uid for a type1 lease (vfio/node-access.c), on a
 * stand-in node: a character device made with mknod in a scratch root (it needs
 * CAP_MKNOD and a file system with POSIX ACLs; skipped without). What must hold: the
 * grant lets exactly that uid in, put back restores owner, mode and ACL exactly, whatever
 * ACL the node had, and a node that is gone is no error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <acl/libacl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/acl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "macro.h"
#include "node-access.h"
#include "root.h"

struct fixture {
        char dir[64];
        char node[128];
        struct root *root;
};

static int setup(void **state)
{
        static struct fixture f;
        char p[128];
        snprintf(f.dir, sizeof(f.dir), "/tmp/test-node-access.XXXXXX");
        if (!mkdtemp(f.dir))
                return -1;
        snprintf(p, sizeof(p), "%s/dev", f.dir);
        mkdir(p, 0755);
        snprintf(p, sizeof(p), "%s/dev/vfio", f.dir);
        mkdir(p, 0755);
        snprintf(f.node, sizeof(f.node), "%s/dev/vfio/7", f.dir);
        if (mknod(f.node, S_IFCHR | 0600, makedev(1, 3)) < 0 || chmod(f.node, 0600) < 0)
                f.node[0] = 0;
        if (root_open(f.dir, &f.root) < 0)
                return -1;
        *state = &f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        char p[128];
        if (f->node[0])
                unlink(f->node);
        snprintf(p, sizeof(p), "%s/dev/vfio", f->dir);
        rmdir(p);
        snprintf(p, sizeof(p), "%s/dev", f->dir);
        rmdir(p);
        rmdir(f->dir);
        root_free(f->root);
        return 0;
}

/* The node's ACL entry for uid: its permission bits (4 read, 2 write), or -1. */
static int user_entry(const char *path, uid_t uid)
{
        acl_t acl = acl_get_file(path, ACL_TYPE_ACCESS);
        acl_entry_t e;
        int found = -1;
        assert_non_null(acl);
        for (int w = ACL_FIRST_ENTRY; acl_get_entry(acl, w, &e) == 1; w = ACL_NEXT_ENTRY) {
                acl_tag_t tag;
                acl_permset_t ps;
                acl_get_tag_type(e, &tag);
                if (tag != ACL_USER)
                        continue;
                uid_t *who = acl_get_qualifier(e);
                if (*who == uid) {
                        acl_get_permset(e, &ps);
                        found = (acl_get_perm(ps, ACL_READ) ? 4 : 0) |
                                (acl_get_perm(ps, ACL_WRITE) ? 2 : 0);
                }
                acl_free(who);
        }
        acl_free(acl);
        return found;
}

static bool usable(struct fixture *f)
{
        if (!f->node[0])
                return false;
        acl_t acl = acl_from_text("u::rw-,u:1:r--,g::---,m::r--,o::---");
        int r = acl_set_file(f->node, ACL_TYPE_ACCESS, acl);
        acl_free(acl);
        acl = acl_from_mode(0600);
        acl_set_file(f->node, ACL_TYPE_ACCESS, acl);
        acl_free(acl);
        return r == 0;
}

static void a_grant_opens_the_node_to_one_uid_and_put_back_is_exact(void **state)
{
        struct fixture *f = *state;
        if (!usable(f))
                skip();
        struct node_access was = {}, during = {}, after = {};
        assert_int_equal(vfio_group_node_access(f->root, 7, &was), 0);
        assert_int_equal(was.mode, 0600);
        assert_null(was.acl); /* nothing beyond the mode */

        _cleanup_free_ char *why = NULL;
        assert_int_equal(vfio_group_node_grant(f->root, 7, 65534, &why), 0);
        assert_int_equal(user_entry(f->node, 65534), 6);
        assert_int_equal(user_entry(f->node, 65533), -1);
        assert_int_equal(vfio_group_node_access(f->root, 7, &during), 0);
        assert_non_null(during.acl);
        assert_false(node_access_equal(&was, &during));
        /* The mask (the mode's group bits) lets the entry through. */
        assert_int_equal(during.mode & 070, 060);

        /* Granting twice widens the one entry, it does not add a second. */
        assert_int_equal(vfio_group_node_grant(f->root, 7, 65534, &why), 0);
        struct node_access twice = {};
        assert_int_equal(vfio_group_node_access(f->root, 7, &twice), 0);
        assert_true(node_access_equal(&during, &twice));

        assert_int_equal(vfio_group_node_restore(f->root, 7, &was, &why), 0);
        assert_int_equal(vfio_group_node_access(f->root, 7, &after), 0);
        assert_true(node_access_equal(&was, &after));
        assert_int_equal(user_entry(f->node, 65534), -1);
        node_access_done(&was);
        node_access_done(&during);
        node_access_done(&twice);
        node_access_done(&after);
}

static void put_back_restores_an_acl_and_owner_the_node_had(void **state)
{
        struct fixture *f = *state;
        if (!usable(f))
                skip();
        acl_t acl = acl_from_text("u::rw-,u:1000:r--,g::r--,m::r--,o::---");
        assert_int_equal(acl_set_file(f->node, ACL_TYPE_ACCESS, acl), 0);
        acl_free(acl);
        assert_int_equal(chown(f->node, 0, 36), 0);

        struct node_access was = {}, after = {};
        _cleanup_free_ char *why = NULL;
        assert_int_equal(vfio_group_node_access(f->root, 7, &was), 0);
        assert_non_null(was.acl);
        assert_int_equal(vfio_group_node_grant(f->root, 7, 1000, &why), 0);
        assert_int_equal(user_entry(f->node, 1000), 6); /* widened from r-- */
        /* Someone changes the owner meanwhile: put back undoes that too. */
        assert_int_equal(chown(f->node, 5, 5), 0);
        assert_int_equal(vfio_group_node_restore(f->root, 7, &was, &why), 0);
        assert_int_equal(vfio_group_node_access(f->root, 7, &after), 0);
        assert_true(node_access_equal(&was, &after));
        assert_int_equal(user_entry(f->node, 1000), 4);
        struct stat st;
        assert_int_equal(stat(f->node, &st), 0);
        assert_int_equal(st.st_uid, 0);
        assert_int_equal(st.st_gid, 36);

        acl = acl_from_mode(0600);
        acl_set_file(f->node, ACL_TYPE_ACCESS, acl);
        acl_free(acl);
        assert_int_equal(chown(f->node, 0, 0), 0);
        node_access_done(&was);
        node_access_done(&after);
}

static void a_node_that_is_gone_is_no_error_and_a_file_is_refused(void **state)
{
        struct fixture *f = *state;
        _cleanup_free_ char *why = NULL;
        struct node_access was = {.uid = 0, .gid = 0, .mode = 0600};
        assert_int_equal(vfio_group_node_access(f->root, 8, &was), -ENOENT);
        assert_int_equal(vfio_group_node_restore(f->root, 8, &was, &why), 0);
        assert_true(vfio_group_node_grant(f->root, 8, 65534, &why) == -ENOENT);
        assert_non_null(strstr(why, "/dev/vfio/8"));

        /* A regular file where the node should be is not what the kernel made. */
        char p[160];
        snprintf(p, sizeof(p), "%s/dev/vfio/9", f->dir);
        int fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        close(fd);
        free(why);
        why = NULL;
        assert_int_equal(vfio_group_node_grant(f->root, 9, 65534, &why), -ENOTTY);
        assert_non_null(strstr(why, "not a device node"));
        /* And a symlink to it is not followed. */
        char l[160];
        snprintf(l, sizeof(l), "%s/dev/vfio/10", f->dir);
        assert_int_equal(symlink("9", l), 0);
        free(why);
        why = NULL;
        assert_int_equal(vfio_group_node_grant(f->root, 10, 65534, &why), -ENOTTY);
        unlink(l);
        unlink(p);
}

static const char *vfioctl;

static void write_file(const char *dir, const char *name, const char *text)
{
        char p[256];
        snprintf(p, sizeof(p), "%s/%s", dir, name);
        FILE *f = fopen(p, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
}

/* vfioctl restore --all after a daemon crash: the live leases' grants in the lease log
 * are put back; an ended lease's are not touched. */
static void restore_all_puts_back_what_live_leases_granted(void **state)
{
        struct fixture *f = *state;
        if (!usable(f) || !vfioctl)
                skip();
        char run[160], cmd[512];
        snprintf(run, sizeof(run), "%s/run", f->dir);
        mkdir(run, 0755);
        snprintf(run, sizeof(run), "%s/run/vfiod", f->dir);
        mkdir(run, 0755);
        snprintf(run, sizeof(run), "%s/run/vfiod/leases", f->dir);
        mkdir(run, 0700);
        /* Lease 3 (ended) opened the node to uid 1000 once; lease 4 (live) to 65534. */
        write_file(run, "log",
                   "+{\"id\":3,\"uid\":0,\"pid\":1,\"starttime\":1,\"backend\":\"type1\","
                   "\"on_release\":\"pool\",\"devices\":[\"0000:01:00.0\"],\"grants\":[{"
                   "\"group\":7,\"to\":1000,\"uid\":0,\"gid\":0,\"mode\":448}]}\n"
                   "-3\n"
                   "+{\"id\":4,\"uid\":0,\"pid\":1,\"starttime\":1,\"backend\":\"type1\","
                   "\"on_release\":\"pool\",\"devices\":[\"0000:01:00.0\"],\"grants\":[{"
                   "\"group\":7,\"to\":65534,\"uid\":0,\"gid\":0,\"mode\":384}]}\n");
        struct node_access was = {};
        _cleanup_free_ char *why = NULL;
        assert_int_equal(vfio_group_node_access(f->root, 7, &was), 0);
        assert_int_equal(vfio_group_node_grant(f->root, 7, 65534, &why), 0);
        assert_int_equal(user_entry(f->node, 65534), 6);

        char statedir[160];
        snprintf(statedir, sizeof(statedir), "%s/state", f->dir);
        mkdir(statedir, 0700);
        snprintf(cmd, sizeof(cmd), "%s --root %s --state-dir /state --json restore --all >%s/out",
                 vfioctl, f->dir, f->dir);
        int status = system(cmd);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        struct node_access after = {};
        assert_int_equal(vfio_group_node_access(f->root, 7, &after), 0);
        assert_true(node_access_equal(&was, &after));
        assert_int_equal(after.mode, 0600); /* lease 3's record (0700) was not applied */
        char out[4096] = "";
        snprintf(cmd, sizeof(cmd), "%s/out", f->dir);
        FILE *o = fopen(cmd, "r");
        assert_non_null(o);
        size_t n = fread(out, 1, sizeof(out) - 1, o);
        fclose(o);
        out[n] = 0;
        assert_non_null(strstr(out, "\"action\":\"node-put-back\""));
        assert_non_null(strstr(out, "\"lease\":4"));
        assert_null(strstr(out, "\"lease\":3"));
        node_access_done(&was);
        node_access_done(&after);
        unlink(cmd);
        snprintf(cmd, sizeof(cmd), "%s/run/vfiod/leases/log", f->dir);
        unlink(cmd);
        rmdir(run);
        snprintf(cmd, sizeof(cmd), "%s/run/vfiod", f->dir);
        rmdir(cmd);
        snprintf(cmd, sizeof(cmd), "%s/run", f->dir);
        rmdir(cmd);
        snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", statedir); /* the journal made there */
        assert_int_equal(system(cmd), 0);
}

int main(int argc, char **argv)
{
        vfioctl = argc > 1 ? argv[1] : NULL;
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(a_grant_opens_the_node_to_one_uid_and_put_back_is_exact),
                cmocka_unit_test(put_back_restores_an_acl_and_owner_the_node_had),
                cmocka_unit_test(a_node_that_is_gone_is_no_error_and_a_file_is_refused),
                cmocka_unit_test(restore_all_puts_back_what_live_leases_granted),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
