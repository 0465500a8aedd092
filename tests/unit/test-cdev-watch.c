/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Counting the open files of a VFIO cdev node (daemon/cdev-watch.c), on a stand-in node:
 * a character device made with mknod in a scratch root (it needs CAP_MKNOD; skipped
 * without). What the count must follow: opens, dup(), fork(), fds in flight over a
 * socket, O_PATH opens (none), a file opened before the watch, the node going away. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cdev-watch.h"
#include "macro.h"
#include "root.h"

struct fixture {
        char dir[64];
        char node[128];
        struct root *root;
        struct cdev_watches w;
};

static int setup(void **state)
{
        static struct fixture f;
        snprintf(f.dir, sizeof(f.dir), "/tmp/test-cdev-watch.XXXXXX");
        if (!mkdtemp(f.dir))
                return -1;
        char p[128];
        snprintf(p, sizeof(p), "%s/dev", f.dir);
        mkdir(p, 0755);
        snprintf(p, sizeof(p), "%s/dev/vfio", f.dir);
        mkdir(p, 0755);
        snprintf(p, sizeof(p), "%s/dev/vfio/devices", f.dir);
        mkdir(p, 0755);
        snprintf(f.node, sizeof(f.node), "%s/dev/vfio/devices/vfio0", f.dir);
        if (mknod(f.node, S_IFCHR | 0600, makedev(1, 3)) < 0) /* as /dev/null */
                f.node[0] = 0;
        if (root_open(f.dir, &f.root) < 0)
                return -1;
        cdev_watches_init(&f.w);
        *state = &f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        cdev_watches_done(&f->w);
        root_free(f->root);
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
        return system(cmd) == 0 ? 0 : -1;
}

static struct fixture *need_node(void **state)
{
        struct fixture *f = *state;
        if (!f->node[0])
                skip(); /* no CAP_MKNOD here */
        return f;
}

static void watch(struct fixture *f)
{
        bool uncounted;
        assert_int_equal(cdev_watch_add(&f->w, f->root, 0, &uncounted), 0);
        assert_true(uncounted);
        cdev_watch_counted(&f->w, 0);
}

static int open_files(struct fixture *f)
{
        return cdev_watch_open_files(&f->w, 0);
}

static void test_follows_files(void **state)
{
        struct fixture *f = need_node(state);
        watch(f);
        assert_int_equal(open_files(f), 0);

        bool uncounted = true;
        assert_int_equal(cdev_watch_add(&f->w, f->root, 0, &uncounted), 0);
        assert_false(uncounted); /* watched and counted already */

        int fd = open(f->node, O_RDWR | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(open_files(f), 1);
        int copy = dup(fd);
        assert_true(copy >= 0);
        close(fd);
        assert_int_equal(open_files(f), 1); /* the file lives on in the copy */

        /* A child that closes its inherited copy closes no file. */
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                close(copy);
                _exit(0);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_int_equal(open_files(f), 1);

        /* In flight over a socket: still open, though no process has it. */
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        char byte = 'x';
        struct iovec iov = {.iov_base = &byte, .iov_len = 1};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = &control,
                            .msg_controllen = sizeof(control)};
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &copy, sizeof(int));
        assert_int_equal(sendmsg(sv[0], &mh, 0), 1);
        close(copy);
        assert_int_equal(open_files(f), 1);
        assert_int_equal(recvmsg(sv[1], &mh, MSG_CMSG_CLOEXEC), 1);
        c = CMSG_FIRSTHDR(&mh);
        assert_non_null(c);
        memcpy(&fd, CMSG_DATA(c), sizeof(int));
        close(fd);
        close(sv[0]);
        close(sv[1]);
        assert_int_equal(open_files(f), 0);

        /* O_PATH is no open of the device; a read-only open is. */
        fd = open(f->node, O_PATH | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(open_files(f), 0);
        close(fd);
        fd = open(f->node, O_RDONLY | O_CLOEXEC);
        assert_int_equal(open_files(f), 1);
        close(fd);
        assert_int_equal(open_files(f), 0);
}

/* The count as last read moves only when the events are read. */
static void test_read_so_far(void **state)
{
        struct fixture *f = need_node(state);
        assert_int_equal(cdev_watch_open_files_read(&f->w, 0), -1); /* not watched */
        watch(f);
        assert_int_equal(cdev_watch_open_files_read(&f->w, 0), 0);
        int fd = open(f->node, O_RDWR | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(cdev_watch_open_files_read(&f->w, 0), 0); /* its open still queued */
        assert_int_equal(open_files(f), 1);
        assert_int_equal(cdev_watch_open_files_read(&f->w, 0), 1);
        close(fd);
        assert_int_equal(cdev_watch_open_files_read(&f->w, 0), 1); /* its close still queued */
        assert_int_equal(open_files(f), 0);
        assert_int_equal(cdev_watch_open_files_read(&f->w, 0), 0);
}

static void test_unknown(void **state)
{
        struct fixture *f = need_node(state);
        /* Not counted until the caller says nothing was open. */
        bool uncounted;
        assert_int_equal(cdev_watch_open_files(&f->w, 7), -1);
        int before = open(f->node, O_RDWR | O_CLOEXEC);
        assert_true(before >= 0);
        assert_int_equal(cdev_watch_add(&f->w, f->root, 0, &uncounted), 0);
        assert_true(uncounted);
        assert_int_equal(open_files(f), -1);
        /* Wrongly said to be counted: the close of the earlier file gives it away. */
        cdev_watch_counted(&f->w, 0);
        assert_int_equal(open_files(f), 0);
        close(before);
        assert_int_equal(open_files(f), -1);
        /* Counted again from zero once nothing is open. */
        assert_int_equal(cdev_watch_add(&f->w, f->root, 0, &uncounted), 0);
        assert_true(uncounted);
        cdev_watch_counted(&f->w, 0);
        assert_int_equal(open_files(f), 0);
        int fd = open(f->node, O_RDWR | O_CLOEXEC);
        assert_int_equal(open_files(f), 1);
        close(fd);
        assert_int_equal(open_files(f), 0);

        /* The owner: known once checked, for that inode only. */
        struct pci_addr a, b;
        assert_int_equal(pci_addr_parse("0000:01:00.0", &a), 0);
        assert_int_equal(pci_addr_parse("0000:02:00.0", &b), 0);
        struct stat st, other;
        assert_int_equal(stat(f->node, &st), 0);
        other = st;
        other.st_ino++;
        assert_false(cdev_watch_is(&f->w, 0, &st, &a));
        cdev_watch_owner(&f->w, 0, &st, &a);
        assert_true(cdev_watch_is(&f->w, 0, &st, &a));
        assert_false(cdev_watch_is(&f->w, 0, &st, &b));
        assert_false(cdev_watch_is(&f->w, 0, &other, &a));
        assert_false(cdev_watch_is(&f->w, 1, &st, &a));

        /* A node made again (another inode): the old watch goes, a new one starts. */
        cdev_watch_owner(&f->w, 0, &other, &a);
        assert_int_equal(open_files(f), -1);
        assert_false(cdev_watch_is(&f->w, 0, &st, &a));
        watch(f);
        assert_int_equal(open_files(f), 0);
        assert_false(cdev_watch_is(&f->w, 0, &st, &a)); /* not checked yet */

        /* The node removed: its watch ends. */
        assert_int_equal(unlink(f->node), 0);
        assert_int_equal(open_files(f), -1);
        assert_int_equal(cdev_watch_add(&f->w, f->root, 0, &uncounted), -ENOENT);
        assert_int_equal(mknod(f->node, S_IFCHR | 0600, makedev(1, 3)), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_follows_files, setup, teardown),
                cmocka_unit_test_setup_teardown(test_read_so_far, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unknown, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
