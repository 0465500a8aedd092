/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The varlink wire codec (api/varlink.c) over a real socketpair: framing, messages
 * split across reads, the size limit, fds and the message they belong to, bad JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "varlink.h"

struct pair {
        int fd[2];
        struct varlink_stream tx, rx;
};

static int pair_setup(void **state)
{
        struct pair *p = calloc(1, sizeof(*p));
        assert_non_null(p);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, p->fd),
                         0);
        varlink_stream_init(&p->tx, p->fd[0], 256);
        varlink_stream_init(&p->rx, p->fd[1], 256);
        *state = p;
        return 0;
}

static int pair_teardown(void **state)
{
        struct pair *p = *state;
        varlink_stream_done(&p->tx);
        varlink_stream_done(&p->rx);
        safe_close(p->fd[0]);
        safe_close(p->fd[1]);
        free(p);
        return 0;
}

static void write_raw(int fd, const void *buf, size_t len)
{
        assert_int_equal(write(fd, buf, len), (ssize_t)len);
}

/* Reads until a message is complete; returns varlink_stream_next()'s result. */
static int read_next(struct varlink_stream *s, json_object **ret, int *fds, size_t *n_fds)
{
        for (;;) {
                int r = varlink_stream_next(s, ret, fds, n_fds);
                if (r != 0)
                        return r;
                r = varlink_stream_read(s);
                if (r < 0)
                        return r;
                if (r == 0 && s->eof)
                        return 0;
        }
}

static void queue_and_flush(struct varlink_stream *s, json_object *msg, const int *fds, size_t n)
{
        assert_int_equal(varlink_stream_queue(s, msg, fds, n), 0);
        json_object_put(msg);
        assert_int_equal(varlink_stream_flush(s), 1);
        assert_false(varlink_stream_has_output(s));
}

static void a_call_arrives_as_sent(void **state)
{
        struct pair *p = *state;
        json_object *params = json_object_new_object();
        json_object_object_add(params, "address", json_object_new_string("0000:01:00.0"));
        queue_and_flush(&p->tx, varlink_call_new("io.vfiod.ShowDevice", params, false), NULL, 0);

        json_object *msg = NULL;
        int fds[VARLINK_FDS_MAX];
        size_t n_fds = 99;
        assert_int_equal(read_next(&p->rx, &msg, fds, &n_fds), 1);
        assert_int_equal(n_fds, 0);
        assert_string_equal(json_get_string(msg, "method"), "io.vfiod.ShowDevice");
        json_object *v;
        assert_true(json_object_object_get_ex(msg, "parameters", &v));
        assert_string_equal(json_get_string(v, "address"), "0000:01:00.0");
        assert_false(json_object_object_get_ex(msg, "more", &v));
        json_object_put(msg);
        /* Nothing more buffered. */
        assert_int_equal(varlink_stream_next(&p->rx, &msg, fds, &n_fds), 0);
}

static void each_message_ends_with_one_nul(void **state)
{
        struct pair *p = *state;
        queue_and_flush(&p->tx, varlink_reply_new(NULL, true), NULL, 0);
        char buf[64];
        ssize_t n = read(p->fd[1], buf, sizeof(buf));
        assert_true(n > 0);
        assert_int_equal(buf[n - 1], 0);
        assert_ptr_equal(memchr(buf, 0, (size_t)n), buf + n - 1);
        assert_string_equal(buf, "{\"parameters\":{},\"continues\":true}");
}

static void a_message_split_across_reads_waits_for_its_nul(void **state)
{
        struct pair *p = *state;
        const char *text = "{\"method\":\"io.vfiod.ListDevices\"}";
        json_object *msg = NULL;
        int fds[VARLINK_FDS_MAX];
        size_t n_fds;

        write_raw(p->fd[0], text, 10);
        assert_int_equal(varlink_stream_read(&p->rx), 10);
        assert_int_equal(varlink_stream_next(&p->rx, &msg, fds, &n_fds), 0);
        write_raw(p->fd[0], text + 10, strlen(text) - 10);
        assert_true(varlink_stream_read(&p->rx) > 0);
        /* Every byte is there but the terminator: still not a message. */
        assert_int_equal(varlink_stream_next(&p->rx, &msg, fds, &n_fds), 0);
        write_raw(p->fd[0], "", 1);
        assert_int_equal(varlink_stream_read(&p->rx), 1);
        assert_int_equal(varlink_stream_next(&p->rx, &msg, fds, &n_fds), 1);
        assert_string_equal(json_get_string(msg, "method"), "io.vfiod.ListDevices");
        json_object_put(msg);
}

static void two_messages_in_one_read_come_out_one_by_one(void **state)
{
        struct pair *p = *state;
        const char text[] = "{\"method\":\"a.B\"}\0{\"method\":\"c.D\"}";
        write_raw(p->fd[0], text, sizeof(text));
        assert_int_equal(varlink_stream_read(&p->rx), (int)sizeof(text));

        json_object *msg = NULL;
        int fds[VARLINK_FDS_MAX];
        size_t n_fds;
        assert_int_equal(varlink_stream_next(&p->rx, &msg, fds, &n_fds), 1);
        assert_string_equal(json_get_string(msg, "method"), "a.B");
        json_object_put(msg);
        assert_int_equal(varlink_stream_next(&p->rx, &msg, fds, &n_fds), 1);
        assert_string_equal(json_get_string(msg, "method"), "c.D");
        json_object_put(msg);
        assert_int_equal(varlink_stream_next(&p->rx, &msg, fds, &n_fds), 0);
}

static void bytes_past_the_limit_without_a_nul_are_refused(void **state)
{
        struct pair *p = *state;
        char big[300];
        memset(big, ' ', sizeof(big));
        big[0] = '{';
        write_raw(p->fd[0], big, sizeof(big));
        assert_int_equal(varlink_stream_read(&p->rx), -EMSGSIZE);
        /* And it stays refused: the stream cannot find a boundary again. */
        assert_int_equal(varlink_stream_read(&p->rx), -EMSGSIZE);
}

static void a_whole_message_over_the_limit_is_refused_and_consumed(void **state)
{
        struct pair *p = *state;
        char big[400];
        memset(big, ' ', sizeof(big));
        big[0] = '{';
        big[sizeof(big) - 2] = '}';
        big[sizeof(big) - 1] = 0;
        const char next[] = "{\"method\":\"a.B\"}";
        char buf[sizeof(big) + sizeof(next)];
        memcpy(buf, big, sizeof(big));
        memcpy(buf + sizeof(big), next, sizeof(next));
        write_raw(p->fd[0], buf, sizeof(buf));
        assert_true(varlink_stream_read(&p->rx) > 0);

        json_object *msg = NULL;
        int fds[VARLINK_FDS_MAX];
        size_t n_fds;
        assert_int_equal(varlink_stream_next(&p->rx, &msg, fds, &n_fds), -EMSGSIZE);
        assert_null(msg);
        assert_int_equal(varlink_stream_next(&p->rx, &msg, fds, &n_fds), 1);
        assert_string_equal(json_get_string(msg, "method"), "a.B");
        json_object_put(msg);
}

static void invalid_json_is_refused_and_the_stream_goes_on(void **state)
{
        struct pair *p = *state;
        static const char *const bad[] = {
                "{\"method\":",          /* incomplete */
                "[1,2,3]",               /* not an object */
                "\"text\"",     "{} {}", /* trailing bytes */
                "{\"a\":1}}",            /* trailing brace */
                "not json",     "",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                write_raw(p->fd[0], bad[i], strlen(bad[i]) + 1);
        write_raw(p->fd[0], "{\"method\":\"a.B\"}", 17);
        json_object *msg = NULL;
        int fds[VARLINK_FDS_MAX];
        size_t n_fds;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                assert_int_equal(read_next(&p->rx, &msg, fds, &n_fds), -EBADMSG);
                assert_null(msg);
        }
        assert_int_equal(read_next(&p->rx, &msg, fds, &n_fds), 1);
        assert_string_equal(json_get_string(msg, "method"), "a.B");
        json_object_put(msg);
}

static bool same_file(int a, int b)
{
        struct stat x, y;
        return fstat(a, &x) == 0 && fstat(b, &y) == 0 && x.st_dev == y.st_dev &&
               x.st_ino == y.st_ino;
}

static void fds_arrive_with_their_message(void **state)
{
        struct pair *p = *state;
        int pipefd[2];
        assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
        /* The queue takes the fds it sends: give it copies. */
        int send[2] = {fcntl(pipefd[0], F_DUPFD_CLOEXEC, 3), fcntl(pipefd[1], F_DUPFD_CLOEXEC, 3)};
        queue_and_flush(&p->tx, varlink_reply_new(NULL, false), send, 2);

        json_object *msg = NULL;
        int fds[VARLINK_FDS_MAX];
        size_t n_fds = 0;
        assert_int_equal(read_next(&p->rx, &msg, fds, &n_fds), 1);
        assert_int_equal(n_fds, 2);
        assert_true(same_file(fds[0], pipefd[0]));
        assert_true(same_file(fds[1], pipefd[1]));
        assert_true(fcntl(fds[0], F_GETFD) & FD_CLOEXEC);
        json_object_put(msg);
        for (size_t i = 0; i < n_fds; i++)
                close(fds[i]);
        close(pipefd[0]);
        close(pipefd[1]);
}

/* A receiver over its own fd budget drops a set before the message is whole: the fds are
 * closed, the message fails as if the kernel had dropped them, and the next goes on. */
static void dropped_fds_fail_their_message_only(void **state)
{
        struct pair *p = *state;
        int pipefd[2];
        assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
        int send = fcntl(pipefd[0], F_DUPFD_CLOEXEC, 3);
        queue_and_flush(&p->tx, varlink_reply_new(NULL, false), &send, 1);
        queue_and_flush(&p->tx, varlink_reply_new(NULL, false), NULL, 0);

        assert_true(varlink_stream_read(&p->rx) > 0);
        assert_int_equal(p->rx.n_in_fds, 1);
        int got = p->rx.in_fds[0];
        varlink_stream_drop_fds(&p->rx);
        assert_int_equal(p->rx.n_in_fds, 0);
        assert_int_equal(fcntl(got, F_GETFD), -1); /* closed */

        json_object *msg = NULL;
        int fds[VARLINK_FDS_MAX];
        size_t n_fds = 0;
        assert_int_equal(read_next(&p->rx, &msg, fds, &n_fds), -ETOOMANYREFS);
        assert_int_equal(read_next(&p->rx, &msg, fds, &n_fds), 1);
        assert_int_equal(n_fds, 0);
        json_object_put(msg);
        close(pipefd[0]);
        close(pipefd[1]);
}

static void queue_call(struct varlink_stream *s, const char *method, const int *fds, size_t n)
{
        json_object *msg = varlink_call_new(method, NULL, false);
        assert_int_equal(varlink_stream_queue(s, msg, fds, n), 0);
        json_object_put(msg);
}

/* Pipelined: a message without fds, then one with an fd, both sent before the peer
 * reads; the kernel may hand both over in one read. The fd must go with the second. */
static void fds_are_not_given_to_the_message_before_theirs(void **state)
{
        struct pair *p = *state;
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        int send = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        queue_call(&p->tx, "a.First", NULL, 0);
        queue_call(&p->tx, "a.Second", &send, 1);
        queue_call(&p->tx, "a.Third", NULL, 0);
        assert_int_equal(varlink_stream_flush(&p->tx), 1);

        json_object *msg = NULL;
        int fds[VARLINK_FDS_MAX];
        size_t n_fds = 99;
        assert_int_equal(read_next(&p->rx, &msg, fds, &n_fds), 1);
        assert_string_equal(json_get_string(msg, "method"), "a.First");
        assert_int_equal(n_fds, 0);
        json_object_put(msg);
        assert_int_equal(read_next(&p->rx, &msg, fds, &n_fds), 1);
        assert_string_equal(json_get_string(msg, "method"), "a.Second");
        assert_int_equal(n_fds, 1);
        assert_true(same_file(fds[0], fd));
        close(fds[0]);
        json_object_put(msg);
        assert_int_equal(read_next(&p->rx, &msg, fds, &n_fds), 1);
        assert_string_equal(json_get_string(msg, "method"), "a.Third");
        assert_int_equal(n_fds, 0);
        json_object_put(msg);
        close(fd);
}

static int count_open_fds(void)
{
        int n = 0;
        for (int fd = 0; fd < 1024; fd++)
                n += fcntl(fd, F_GETFD) >= 0;
        return n;
}

/* Sends text (with its NUL) and n fds (closed here) in one sendmsg(), as a peer that does
 * not use the codec would. */
static void send_raw_with_fds(int sock, const char *text, int *fds, size_t n)
{
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int) * (VARLINK_FDS_MAX + 4))];
        } control = {};
        assert_true(n <= VARLINK_FDS_MAX + 4);
        struct iovec iov = {.iov_base = (void *)text, .iov_len = strlen(text) + 1};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = &control,
                            .msg_controllen = CMSG_SPACE(sizeof(int) * n)};
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * n);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
        assert_int_equal(sendmsg(sock, &mh, 0), (ssize_t)iov.iov_len);
        for (size_t i = 0; i < n; i++)
                close(fds[i]);
}

static void fds_of_a_bad_message_are_closed(void **state)
{
        struct pair *p = *state;
        int before = count_open_fds();
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        send_raw_with_fds(p->fd[0], "not json", &fd, 1);

        json_object *msg = NULL;
        int fds[VARLINK_FDS_MAX];
        size_t n_fds;
        assert_int_equal(read_next(&p->rx, &msg, fds, &n_fds), -EBADMSG);
        assert_int_equal(count_open_fds(), before);
}

static void more_fds_than_the_stream_takes_fail_the_message(void **state)
{
        struct pair *p = *state;
        int before = count_open_fds();
        int sent[VARLINK_FDS_MAX + 4];
        for (size_t i = 0; i < ELEMENTSOF(sent); i++)
                sent[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        send_raw_with_fds(p->fd[0], "{}", sent, ELEMENTSOF(sent));

        json_object *msg = NULL;
        int fds[VARLINK_FDS_MAX];
        size_t n_fds;
        assert_int_equal(read_next(&p->rx, &msg, fds, &n_fds), -ETOOMANYREFS);
        assert_null(msg);
        assert_int_equal(count_open_fds(), before);
}

static void queued_fds_are_closed_when_the_stream_ends(void **state)
{
        struct pair *p = *state;
        int before = count_open_fds();
        /* Fill the socket so that the message with fds cannot leave. */
        char junk[4096];
        memset(junk, 'x', sizeof(junk));
        while (write(p->fd[0], junk, sizeof(junk)) > 0)
                ;
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        json_object *msg = varlink_reply_new(NULL, false);
        assert_int_equal(varlink_stream_queue(&p->tx, msg, &fd, 1), 0);
        json_object_put(msg);
        assert_int_equal(varlink_stream_flush(&p->tx), 0);
        assert_true(varlink_stream_has_output(&p->tx));
        varlink_stream_done(&p->tx);
        assert_int_equal(count_open_fds(), before);
}

static void too_many_fds_are_refused_at_queue_time(void **state)
{
        struct pair *p = *state;
        int fds[VARLINK_FDS_MAX + 1] = {};
        json_object *msg = varlink_reply_new(NULL, false);
        assert_int_equal(varlink_stream_queue(&p->tx, msg, fds, VARLINK_FDS_MAX + 1), -E2BIG);
        json_object_put(msg);
        assert_false(varlink_stream_has_output(&p->tx));
}

static void the_peer_leaving_is_end_of_file(void **state)
{
        struct pair *p = *state;
        write_raw(p->fd[0], "{\"meth", 6);
        p->fd[0] = safe_close(p->fd[0]);
        assert_int_equal(varlink_stream_read(&p->rx), 6);
        assert_int_equal(varlink_stream_read(&p->rx), 0);
        assert_true(p->rx.eof);
        json_object *msg = NULL;
        int fds[VARLINK_FDS_MAX];
        size_t n_fds;
        assert_int_equal(varlink_stream_next(&p->rx, &msg, fds, &n_fds), 0);
}

/* Everything the peer can read now, as one buffer (NULs included). */
static size_t read_all(int fd, char *buf, size_t size)
{
        size_t n = 0;
        ssize_t k;
        while (n < size && (k = read(fd, buf + n, size - n)) > 0)
                n += (size_t)k;
        return n;
}

static void shared_text_goes_out_in_order_and_is_released_once_sent(void **state)
{
        struct pair *p = *state;
        char *text = strdup("{\"parameters\":{\"devices\":[]}}");
        struct varlink_text *t;
        assert_int_equal(varlink_text_new(text, strlen(text), &t), 0);
        assert_int_equal(varlink_stream_queue_text(&p->tx, "{\"a\":1}", 7, NULL, 0), 0);
        assert_int_equal(varlink_stream_queue_shared(&p->tx, t), 0);
        assert_int_equal(varlink_stream_queue_shared(&p->rx, t), 0); /* a second stream */
        assert_int_equal(varlink_stream_queue_text(&p->tx, "{\"b\":2}", 7, NULL, 0), 0);
        assert_int_equal(t->n_ref, 3);
        assert_int_equal(varlink_stream_pending(&p->tx), 8 + t->len + 1 + 8);
        assert_int_equal(varlink_stream_flush(&p->tx), 1);
        assert_int_equal(t->n_ref, 2);
        assert_int_equal(p->tx.out_owned, 0);
        char buf[256];
        const char want[] = "{\"a\":1}\0{\"parameters\":{\"devices\":[]}}\0{\"b\":2}";
        assert_int_equal(read_all(p->fd[1], buf, sizeof(buf)), sizeof(want));
        assert_memory_equal(buf, want, sizeof(want));
        varlink_stream_done(&p->rx); /* drops its reference unsent */
        assert_int_equal(t->n_ref, 1);
        varlink_text_unref(t);
}

static void dropping_unsent_output_keeps_the_message_begun(void **state)
{
        struct pair *p = *state;
        /* A small socket buffer, so that a message is cut in the middle. */
        int size = 4096;
        assert_int_equal(setsockopt(p->fd[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)), 0);
        static char msg[20000]; /* several of the kernel's buffers: it takes a part */
        memset(msg, 'x', sizeof(msg));
        msg[0] = '"';
        msg[sizeof(msg) - 1] = '"';
        size_t queued = 0;
        while (varlink_stream_flush(&p->tx) == 1 || !varlink_stream_has_output(&p->tx)) {
                assert_int_equal(varlink_stream_queue_text(&p->tx, msg, sizeof(msg), NULL, 0), 0);
                queued++;
        }
        for (int i = 0; i < 10; i++)
                assert_int_equal(varlink_stream_queue_text(&p->tx, msg, sizeof(msg), NULL, 0), 0);
        queued += 10;
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC), before = count_open_fds();
        assert_int_equal(varlink_stream_queue_text(&p->tx, msg, sizeof(msg), &fd, 1), 0);
        queued++;
        assert_int_not_equal(p->tx.out_sent % (sizeof(msg) + 1), 0);
        size_t pending = varlink_stream_pending(&p->tx);
        size_t dropped = varlink_stream_drop_unsent(&p->tx);
        assert_true(dropped > 10 * (sizeof(msg) + 1));
        assert_int_equal(varlink_stream_pending(&p->tx), pending - dropped);
        assert_int_equal(count_open_fds(), before - 1); /* its message went: so did its fd */
        /* The peer reads whole messages only, up to the one that was begun. */
        char *buf = malloc(queued * (sizeof(msg) + 1));
        size_t n = 0;
        for (;;) {
                n += read_all(p->fd[1], buf + n, queued * (sizeof(msg) + 1) - n);
                if (varlink_stream_flush(&p->tx) == 1)
                        break;
        }
        n += read_all(p->fd[1], buf + n, queued * (sizeof(msg) + 1) - n);
        assert_int_equal(n % (sizeof(msg) + 1), 0);
        assert_int_equal(buf[n - 1], 0);
        assert_true(n / (sizeof(msg) + 1) < queued - 10);
        free(buf);
        /* And the stream goes on after. */
        assert_int_equal(varlink_stream_queue_text(&p->tx, "{}", 2, NULL, 0), 0);
        assert_int_equal(varlink_stream_flush(&p->tx), 1);
        assert_int_equal(read_all(p->fd[1], msg, sizeof(msg)), 3);
        assert_string_equal(msg, "{}");
}

static void message_helpers_build_the_varlink_shapes(void **state)
{
        json_object *p = json_object_new_object();
        json_object_object_add(p, "lease", json_object_new_int(7));
        json_object *e = varlink_error_new("io.vfiod.NoSuchLease", p);
        assert_string_equal(json_object_to_json_string_ext(e, JSON_C_TO_STRING_PLAIN),
                            "{\"error\":\"io.vfiod.NoSuchLease\",\"parameters\":{\"lease\":7}}");
        json_object_put(e);
        json_object *c = varlink_call_new("io.vfiod.Monitor", NULL, true);
        assert_string_equal(json_object_to_json_string_ext(c, JSON_C_TO_STRING_PLAIN),
                            "{\"method\":\"io.vfiod.Monitor\",\"parameters\":{},\"more\":true}");
        json_object_put(c);
        json_object *r = varlink_reply_new(NULL, false);
        assert_string_equal(json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN),
                            "{\"parameters\":{}}");
        assert_null(json_get_string(r, "parameters"));
        assert_null(json_get_string(NULL, "x"));
        json_object_put(r);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, pair_setup, pair_teardown)
                T(a_call_arrives_as_sent),
                T(each_message_ends_with_one_nul),
                T(a_message_split_across_reads_waits_for_its_nul),
                T(two_messages_in_one_read_come_out_one_by_one),
                T(bytes_past_the_limit_without_a_nul_are_refused),
                T(a_whole_message_over_the_limit_is_refused_and_consumed),
                T(invalid_json_is_refused_and_the_stream_goes_on),
                T(fds_arrive_with_their_message),
                T(fds_are_not_given_to_the_message_before_theirs),
                T(dropped_fds_fail_their_message_only),
                T(fds_of_a_bad_message_are_closed),
                T(more_fds_than_the_stream_takes_fail_the_message),
                T(queued_fds_are_closed_when_the_stream_ends),
                T(too_many_fds_are_refused_at_queue_time),
                T(the_peer_leaving_is_end_of_file),
                T(shared_text_goes_out_in_order_and_is_released_once_sent),
                T(dropping_unsent_output_keeps_the_message_begun),
                cmocka_unit_test(message_helpers_build_the_varlink_shapes),
#undef T
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
