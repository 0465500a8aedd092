/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Lease records (daemon/lease.c): JSON round trip, refusal of incomplete records, saving
 * and loading a directory of them, and telling a live holder from a reused pid. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lease.h"
#include "strv.h"

static struct lease sample(uint64_t id)
{
        struct lease l = {
                .id = id,
                .uid = 1000,
                .pid = 4242,
                .starttime = 123456789,
                .backend = VFIO_BACKEND_IOMMUFD,
                .on_release = RELEASE_POOL,
                .n_devices = 2,
        };
        l.devices = calloc(2, sizeof(*l.devices));
        assert_non_null(l.devices);
        assert_int_equal(pci_addr_parse("0000:01:00.0", &l.devices[0]), 0);
        assert_int_equal(pci_addr_parse("0000:02:10.2", &l.devices[1]), 0);
        return l;
}

static void assert_same_lease(const struct lease *a, const struct lease *b)
{
        assert_int_equal(a->id, b->id);
        assert_int_equal(a->uid, b->uid);
        assert_int_equal(a->pid, b->pid);
        assert_int_equal(a->starttime, b->starttime);
        assert_int_equal(a->backend, b->backend);
        assert_int_equal(a->on_release, b->on_release);
        assert_int_equal(a->n_devices, b->n_devices);
        for (size_t i = 0; i < a->n_devices; i++)
                assert_true(pci_addr_equal(&a->devices[i], &b->devices[i]));
}

static void a_lease_survives_json(void **state)
{
        struct lease l = sample(7);
        l.backend = VFIO_BACKEND_TYPE1;
        l.on_release = RELEASE_RESTORE;
        struct jbuf text = {};
        lease_write_json(&l, true, &text);
        assert_false(text.oom);
        /* Through text, as it goes to disk; a reader other than the writer. */
        json_object *back = json_tokener_parse(text.p);
        assert_non_null(back);
        struct lease m;
        assert_int_equal(lease_from_json(back, &m), 0);
        assert_same_lease(&l, &m);
        assert_null(m.holder);
        assert_false(m.adopted);
        json_object_put(back);
        jbuf_done(&text);
        /* Without the start time, for clients: the record needs it, so it is refused. */
        lease_write_json(&l, false, &text);
        back = json_tokener_parse(text.p);
        assert_non_null(back);
        assert_int_equal(lease_from_json(back, &m), -EBADMSG);
        json_object_put(back);
        jbuf_done(&text);
        lease_done(&l);
        lease_done(&m);
}

/* A type1 lease's record holds what each group node was and the holder's RLIMIT_MEMLOCK
 * before and after: what the lease's end (maybe in the next daemon) puts back. */
static void a_type1_leases_grants_and_memlock_survive_json(void **state)
{
        struct lease l = sample(9), m;
        l.backend = VFIO_BACKEND_TYPE1;
        l.grants = calloc(2, sizeof(*l.grants));
        assert_non_null(l.grants);
        l.grants[0] = (struct node_grant){.group = 12, .to = 65534, .was = {0, 0, 0600, NULL}};
        l.grants[1] = (struct node_grant){
                .group = 3, .to = 65534, .was = {0, 36, 0640, strdup("user::rw-\nuser:7:r--\n")}};
        l.n_grants = 2;
        l.memlock_raised = true;
        l.memlock = (struct lease_memlock){8388608, 8388608, -1, -1};
        struct jbuf text = {};
        lease_write_json(&l, true, &text);
        json_object *back = json_tokener_parse(text.p);
        assert_non_null(back);
        assert_int_equal(lease_from_json(back, &m), 0);
        assert_same_lease(&l, &m);
        assert_int_equal(m.n_grants, 2);
        for (size_t i = 0; i < 2; i++) {
                assert_int_equal(m.grants[i].group, l.grants[i].group);
                assert_int_equal(m.grants[i].to, l.grants[i].to);
                assert_true(node_access_equal(&m.grants[i].was, &l.grants[i].was));
        }
        assert_true(m.memlock_raised);
        assert_memory_equal(&m.memlock, &l.memlock, sizeof(m.memlock));
        json_object_put(back);
        jbuf_done(&text);
        lease_done(&m);

        /* A grant that does not say what the node was cannot be put back: refused. */
        static const char *const bad[] = {
                "{\"id\":9,\"uid\":0,\"pid\":1,\"starttime\":1,\"backend\":\"type1\","
                "\"on_release\":\"pool\",\"devices\":[\"0000:01:00.0\"],"
                "\"grants\":[{\"group\":1,\"to\":5}]}",
                "{\"id\":9,\"uid\":0,\"pid\":1,\"starttime\":1,\"backend\":\"type1\","
                "\"on_release\":\"pool\",\"devices\":[\"0000:01:00.0\"],"
                "\"grants\":[{\"group\":1,\"to\":5,\"uid\":0,\"gid\":0,\"mode\":99999}]}",
                "{\"id\":9,\"uid\":0,\"pid\":1,\"starttime\":1,\"backend\":\"type1\","
                "\"on_release\":\"pool\",\"devices\":[\"0000:01:00.0\"],\"memlock\":[1,2,3]}",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
                json_object *o = json_tokener_parse(bad[i]);
                assert_non_null(o);
                assert_int_equal(lease_from_json(o, &m), -EBADMSG);
                json_object_put(o);
        }
        lease_done(&l);
}

static void incomplete_or_wrong_records_are_refused(void **state)
{
        static const char *const bad[] = {
                "[]",
                "{}",
                /* each of these differs from a good record in one field */
                "{\"id\":0,\"uid\":1,\"pid\":2,\"starttime\":3,\"backend\":\"iommufd\","
                "\"on_release\":\"pool\",\"devices\":[\"0000:01:00.0\"]}",
                "{\"id\":1,\"uid\":-1,\"pid\":2,\"starttime\":3,\"backend\":\"iommufd\","
                "\"on_release\":\"pool\",\"devices\":[\"0000:01:00.0\"]}",
                "{\"id\":1,\"uid\":1,\"pid\":0,\"starttime\":3,\"backend\":\"iommufd\","
                "\"on_release\":\"pool\",\"devices\":[\"0000:01:00.0\"]}",
                "{\"id\":1,\"uid\":1,\"pid\":2,\"backend\":\"iommufd\","
                "\"on_release\":\"pool\",\"devices\":[\"0000:01:00.0\"]}",
                "{\"id\":1,\"uid\":1,\"pid\":2,\"starttime\":3,\"backend\":\"vfio\","
                "\"on_release\":\"pool\",\"devices\":[\"0000:01:00.0\"]}",
                "{\"id\":1,\"uid\":1,\"pid\":2,\"starttime\":3,\"backend\":\"iommufd\","
                "\"on_release\":\"keep\",\"devices\":[\"0000:01:00.0\"]}",
                "{\"id\":1,\"uid\":1,\"pid\":2,\"starttime\":3,\"backend\":\"iommufd\","
                "\"on_release\":\"pool\",\"devices\":[]}",
                "{\"id\":1,\"uid\":1,\"pid\":2,\"starttime\":3,\"backend\":\"iommufd\","
                "\"on_release\":\"pool\",\"devices\":[\"01:00\"]}",
                "{\"id\":1,\"uid\":1,\"pid\":2,\"starttime\":3,\"backend\":\"iommufd\","
                "\"on_release\":\"pool\",\"devices\":[3]}",
                "{\"id\":\"1\",\"uid\":1,\"pid\":2,\"starttime\":3,\"backend\":\"iommufd\","
                "\"on_release\":\"pool\",\"devices\":[\"0000:01:00.0\"]}",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                json_object *o = json_tokener_parse(bad[i]);
                assert_non_null(o);
                struct lease l;
                if (lease_from_json(o, &l) != -EBADMSG)
                        fail_msg("accepted: %s", bad[i]);
                json_object_put(o);
        }
        /* The same record with every field right is taken. */
        json_object *o = json_tokener_parse(
                "{\"id\":1,\"uid\":1,\"pid\":2,\"starttime\":3,\"backend\":\"iommufd\","
                "\"on_release\":\"pool\",\"devices\":[\"0000:01:00.0\"]}");
        struct lease l;
        assert_int_equal(lease_from_json(o, &l), 0);
        lease_done(&l);
        json_object_put(o);
}

static int find_lease(const struct lease *list, size_t n, uint64_t id)
{
        for (size_t i = 0; i < n; i++)
                if (list[i].id == id)
                        return (int)i;
        return -1;
}

static void read_log(int dfd, char *buf, size_t size)
{
        int fd = openat(dfd, "log", O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        ssize_t n = read(fd, buf, size - 1);
        assert_true(n >= 0);
        buf[n] = 0;
        close(fd);
}

static void append_raw(int dfd, const char *text)
{
        int fd = openat(dfd, "log", O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        close(fd);
}

static void logged_leases_load_back_and_bad_lines_are_named(void **state)
{
        char dir[] = "/tmp/test-lease-XXXXXX";
        assert_non_null(mkdtemp(dir));
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(dfd >= 0);

        struct lease_log log;
        assert_int_equal(lease_log_open(dfd, &log), 0);
        struct lease a = sample(3), b = sample(12), c = sample(7);
        b.uid = 0;
        assert_int_equal(lease_log_add(&log, &a), 0);
        assert_int_equal(lease_log_add(&log, &b), 0);
        /* Logged again under its id: the newer record counts. */
        b.pid = 99;
        assert_int_equal(lease_log_add(&log, &b), 0);
        assert_int_equal(lease_log_add(&log, &c), 0);
        struct lease *live_ab[] = {&a, &b};
        assert_int_equal(lease_log_end(&log, 7, live_ab, 2), 0);
        /* A line that is not a lease, one that ends an unknown lease, and an unfinished
         * last line (a daemon killed while writing it). */
        append_raw(dfd, "+{\"id\":40}\n-55\n+{\"id\":");

        struct lease *list = NULL;
        size_t n = 0;
        char **bad = NULL;
        assert_int_equal(lease_load_all(dfd, &list, &n, &bad), 0);
        assert_int_equal(n, 2);
        int i = find_lease(list, n, 3), k = find_lease(list, n, 12);
        assert_true(i >= 0 && k >= 0);
        assert_same_lease(&list[i], &a);
        assert_same_lease(&list[k], &b);
        assert_non_null(bad);
        assert_string_equal(bad[0], "log:6: not a whole lease record: +{\"id\":40}");
        assert_string_equal(bad[1], "log:8: a record cut off before it names its holder and a "
                                    "device: nothing is held for it: +{\"id\":");
        assert_null(bad[2]);
        for (size_t j = 0; j < n; j++)
                lease_done(&list[j]);
        free(list);
        strv_free(bad);

        /* Rewritten with the live ones only; then the last end empties it. */
        assert_int_equal(lease_log_rewrite(&log, live_ab, 2), 0);
        char text[8192];
        read_log(dfd, text, sizeof(text));
        assert_int_equal(text[0], '+');
        assert_null(strstr(text, "-7"));
        assert_null(strstr(text, "\"id\":7,"));
        struct lease *live_b[] = {&b};
        assert_int_equal(lease_log_end(&log, 3, live_b, 1), 0);
        read_log(dfd, text, sizeof(text));
        assert_non_null(strstr(text, "\n-3\n"));
        assert_int_equal(lease_log_end(&log, 12, NULL, 0), 0);
        read_log(dfd, text, sizeof(text));
        assert_non_null(strstr(text, "\n-12\n"));
        /* Grants and ends pile up until the log is rewritten: emptied once none is live. */
        struct stat st;
        off_t one = 0;
        for (int round = 0; round < 300; round++) {
                assert_int_equal(lease_log_add(&log, &c), 0);
                assert_int_equal(lease_log_end(&log, 7, NULL, 0), 0);
                if (round == 0) {
                        assert_int_equal(fstat(log.fd, &st), 0);
                        one = st.st_size; /* the lines before, and one grant and end */
                }
        }
        assert_int_equal(fstat(log.fd, &st), 0);
        assert_true(st.st_size > 0 && st.st_size < 200 * one / 2); /* emptied on the way */
        assert_int_equal(lease_load_all(dfd, &list, &n, &bad), 0);
        assert_int_equal(n, 0);
        assert_null(bad);
        free(list);
        assert_int_equal(ftruncate(log.fd, 0), 0);
        read_log(dfd, text, sizeof(text));
        assert_string_equal(text, "");
        assert_int_equal(lease_load_all(dfd, &list, &n, &bad), 0);
        assert_int_equal(n, 0);
        assert_null(bad);
        free(list);
        /* Appends go on from the start of the emptied file. */
        assert_int_equal(lease_log_add(&log, &c), 0);
        read_log(dfd, text, sizeof(text));
        assert_int_equal(text[0], '+');

        lease_log_close(&log);
        unlinkat(dfd, "log", 0);
        close(dfd);
        assert_int_equal(rmdir(dir), 0);
        lease_done(&a);
        lease_done(&b);
        lease_done(&c);
}

/* The record of l as the log has it, cut off right before the end of its first
 * occurrence of marker (or at its end with marker NULL). */
static char *record_cut(const struct lease *l, const char *marker)
{
        struct jbuf b = {};
        jbuf_lit(&b, "+");
        lease_write_json(l, true, &b);
        assert_false(b.oom);
        char *text = strndup(b.p, b.len);
        jbuf_done(&b);
        assert_non_null(text);
        if (marker) {
                char *at = strstr(text, marker);
                assert_non_null(at);
                at[strlen(marker)] = 0;
        }
        return text;
}

/* A write that stopped short leaves a piece with no newline (the next append joins its
 * line) or one ended by the newline written after it: what a piece still tells is
 * recovered, a whole record after it is read, and the rest is reported with its text. */
static void records_cut_off_mid_line_are_recovered_or_reported(void **state)
{
        char dir[] = "/tmp/test-lease-XXXXXX";
        assert_non_null(mkdtemp(dir));
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(dfd >= 0);

        struct lease a = sample(3), b = sample(12), c = sample(7), d = sample(20), e = sample(30);
        e.device_release = calloc(2, sizeof(*e.device_release));
        assert_non_null(e.device_release);
        e.device_release[1] = RELEASE_RESTORE;
        char *whole_a = record_cut(&a, NULL), *whole_c = record_cut(&c, NULL);
        /* b: cut inside its second device's address; d: inside its pid, which might have
         * had more digits; e: after its devices, inside the per-device choices. */
        char *cut_b = record_cut(&b, "\"0000:02:1"), *cut_d = record_cut(&d, "\"pid\":42");
        char *cut_e = record_cut(&e, "\"device_release\":[\"pool\"");
        char *text = NULL;
        assert_true(asprintf(&text, "%s\n%s%s\n%s\n%s", whole_a, cut_b, whole_c, cut_d, cut_e) > 0);
        append_raw(dfd, text);

        struct lease *list = NULL;
        size_t n = 0;
        char **bad = NULL;
        assert_int_equal(lease_load_all(dfd, &list, &n, &bad), 0);
        assert_int_equal(n, 4);
        int ia = find_lease(list, n, 3), ib = find_lease(list, n, 12), ic = find_lease(list, n, 7),
            ie = find_lease(list, n, 30);
        assert_true(ia >= 0 && ib >= 0 && ic >= 0 && ie >= 0);
        assert_same_lease(&list[ia], &a);
        /* The whole record glued after the cut-off one: as written. */
        assert_same_lease(&list[ic], &c);
        /* b: its holder, and the one device whole before the cut. */
        assert_int_equal(list[ib].pid, b.pid);
        assert_int_equal(list[ib].starttime, b.starttime);
        assert_int_equal(list[ib].n_devices, 1);
        assert_true(pci_addr_equal(&list[ib].devices[0], &b.devices[0]));
        /* e: both devices; the choices cut short give way to the lease's own. */
        e.device_release = (free(e.device_release), NULL);
        assert_same_lease(&list[ie], &e);
        assert_null(list[ie].device_release);

        assert_non_null(bad);
        char want[1024];
        snprintf(want, sizeof(want),
                 "log:2: a record cut off, recovered as lease 12 of pid 4242 (its device list "
                 "is cut off after 1 device(s): a device past them is not known): %s",
                 cut_b);
        assert_string_equal(bad[0], want);
        snprintf(want, sizeof(want),
                 "log:3: a record cut off before it names its holder and a device: nothing "
                 "is held for it: %s",
                 cut_d);
        assert_string_equal(bad[1], want);
        snprintf(want, sizeof(want),
                 "log:4: a record cut off, recovered as lease 30 of pid 4242 (cut off after "
                 "its devices (each returns as the lease's on_release says)): %s",
                 cut_e);
        assert_string_equal(bad[2], want);
        assert_null(bad[3]);

        for (size_t j = 0; j < n; j++)
                lease_done(&list[j]);
        free(list);
        strv_free(bad);
        free(text);
        free(whole_a);
        free(whole_c);
        free(cut_b);
        free(cut_d);
        free(cut_e);
        lease_done(&a);
        lease_done(&b);
        lease_done(&c);
        lease_done(&d);
        lease_done(&e);
        unlinkat(dfd, "log", 0);
        close(dfd);
        assert_int_equal(rmdir(dir), 0);
}

static void a_holder_is_known_by_pid_and_start_time(void **state)
{
        _cleanup_(root_freep) struct root *root = NULL;
        assert_int_equal(root_open(NULL, &root), 0);
        uint64_t start;
        assert_int_equal(process_starttime(root, getpid(), &start), 0);
        assert_true(start > 0);

        int pidfd = -1;
        assert_int_equal(process_pidfd_verified(root, getpid(), start, &pidfd), 0);
        assert_true(pidfd >= 0);
        close(pidfd);
        /* Same pid, another start time: a reused pid, not the holder. */
        assert_int_equal(process_pidfd_verified(root, getpid(), start + 1, &pidfd), -ESRCH);

        pid_t child = fork();
        assert_true(child >= 0);
        if (child == 0)
                _exit(0);
        assert_int_equal(waitpid(child, NULL, 0), child);
        assert_int_equal(process_starttime(root, child, &start), -ESRCH);
        assert_int_equal(process_pidfd_verified(root, child, start, &pidfd), -ESRCH);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(a_lease_survives_json),
                cmocka_unit_test(a_type1_leases_grants_and_memlock_survive_json),
                cmocka_unit_test(incomplete_or_wrong_records_are_refused),
                cmocka_unit_test(logged_leases_load_back_and_bad_lines_are_named),
                cmocka_unit_test(records_cut_off_mid_line_are_recovered_or_reported),
                cmocka_unit_test(a_holder_is_known_by_pid_and_start_time),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
