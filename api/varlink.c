/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "varlink.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "macro.h"

#define READ_CHUNK 65536

void varlink_stream_init(struct varlink_stream *s, int fd, size_t max_message)
{
        *s = (struct varlink_stream){.fd = fd, .max_message = max_message};
}

static void close_fds(int *fds, size_t n)
{
        for (size_t i = 0; i < n; i++)
                fds[i] = safe_close(fds[i]);
}

void varlink_stream_done(struct varlink_stream *s)
{
        close_fds(s->in_fds, s->n_in_fds);
        close_fds(s->out_fds, s->n_out_fds);
        if (s->tok)
                json_tokener_free(s->tok);
        free(s->msg);
        free(s->in);
        free(s->out);
        *s = (struct varlink_stream){.fd = -EBADF};
}

static int grow(char **buf, size_t *alloc, size_t need)
{
        if (need <= *alloc)
                return 0;
        size_t n = *alloc ? *alloc : 4096;
        while (n < need)
                n *= 2;
        char *p = realloc(*buf, n);
        if (!p)
                return -ENOMEM;
        *buf = p;
        *alloc = n;
        return 0;
}

int varlink_stream_read(struct varlink_stream *s)
{
        /* A whole message may already be buffered: reading more would only grow the
         * buffer past the limit on a client that pipelines. */
        if (s->in_len > s->max_message && !memchr(s->in, 0, s->in_len))
                return -EMSGSIZE;

        int r = grow(&s->in, &s->in_alloc, s->in_len + READ_CHUNK);
        if (r < 0)
                return r;

        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int) * VARLINK_FDS_MAX)];
        } control = {};
        struct iovec iov = {.iov_base = s->in + s->in_len, .iov_len = READ_CHUNK};
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof(control),
        };
        ssize_t n = recvmsg(s->fd, &mh, MSG_CMSG_CLOEXEC);
        if (n < 0)
                return errno == EWOULDBLOCK ? -EAGAIN : negative_errno();

        /* fds from an earlier read still wait for their message: a second set cannot be
         * placed, so the waiting message fails (the peer sent fds with two messages
         * without waiting for an answer, which vfiod's peers never do). */
        bool earlier = s->n_in_fds > 0 || s->in_fds_truncated, got = false;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                const int *fds = (const int *)CMSG_DATA(c);
                for (size_t i = 0; i < k; i++) {
                        got = true;
                        if (!earlier && s->n_in_fds < VARLINK_FDS_MAX)
                                s->in_fds[s->n_in_fds++] = fds[i];
                        else {
                                safe_close(fds[i]);
                                s->in_fds_truncated = true;
                        }
                }
        }
        if (mh.msg_flags & MSG_CTRUNC) {
                got = true;
                s->in_fds_truncated = true;
        }

        if (n == 0) {
                s->eof = true;
                return 0;
        }
        s->in_len += (size_t)n;
        if (got && !earlier) {
                /* The kernel ends a read with the chunk that carried fds, and that chunk
                 * begins with the first byte of their message (the sender sends that
                 * message alone): the last message that begins in the buffer. */
                s->in_fds_at = 0;
                for (size_t i = s->in_len - 1; i-- > 0;)
                        if (s->in[i] == 0) {
                                s->in_fds_at = i + 1;
                                break;
                        }
        }
        if (s->in_len > s->max_message && !memchr(s->in, 0, s->in_len))
                return -EMSGSIZE;
        return (int)n;
}

void varlink_stream_drop_fds(struct varlink_stream *s)
{
        if (s->n_in_fds == 0)
                return;
        close_fds(s->in_fds, s->n_in_fds);
        s->n_in_fds = 0;
        s->in_fds_truncated = true;
}

int varlink_stream_next_text(struct varlink_stream *s, const char **ret, size_t *ret_len,
                             int *ret_fds, size_t *ret_n_fds)
{
        char *end = s->in_len ? memchr(s->in, 0, s->in_len) : NULL;
        if (!end)
                return 0;

        size_t len = (size_t)(end - s->in);
        int r = 0;
        if (len > s->max_message)
                r = -EMSGSIZE;
        else if ((r = grow(&s->msg, &s->msg_alloc, len + 1)) == 0)
                memcpy(s->msg, s->in, len + 1);

        memmove(s->in, end + 1, s->in_len - len - 1);
        s->in_len -= len + 1;

        /* fds waiting for a later message stay for it. */
        if ((s->n_in_fds > 0 || s->in_fds_truncated) && s->in_fds_at > 0) {
                s->in_fds_at = s->in_fds_at > len + 1 ? s->in_fds_at - len - 1 : 0;
                if (r < 0)
                        return r;
                *ret_n_fds = 0;
                *ret = s->msg;
                *ret_len = len;
                return 1;
        }
        if (r < 0 || s->in_fds_truncated) {
                close_fds(s->in_fds, s->n_in_fds);
                s->n_in_fds = 0;
                bool truncated = s->in_fds_truncated;
                s->in_fds_truncated = false;
                return r < 0 ? r : truncated ? -ETOOMANYREFS : r;
        }
        memcpy(ret_fds, s->in_fds, s->n_in_fds * sizeof(int));
        *ret_n_fds = s->n_in_fds;
        s->n_in_fds = 0;
        *ret = s->msg;
        *ret_len = len;
        return 1;
}

int varlink_parse(struct varlink_stream *s, const char *text, size_t len, json_object **ret)
{
        if (!s->tok && !(s->tok = json_tokener_new()))
                return -ENOMEM;
        json_tokener_reset(s->tok);
        json_object *o = json_tokener_parse_ex(s->tok, text, (int)len);
        /* Trailing bytes after the object, or an incomplete one, are invalid. */
        if (!o || json_tokener_get_error(s->tok) != json_tokener_success ||
            json_tokener_get_parse_end(s->tok) != len ||
            !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return -EBADMSG;
        }
        *ret = o;
        return 0;
}

int varlink_stream_next(struct varlink_stream *s, json_object **ret, int *ret_fds,
                        size_t *ret_n_fds)
{
        const char *text;
        size_t len, n_fds = 0;
        int r = varlink_stream_next_text(s, &text, &len, ret_fds, &n_fds);
        if (r <= 0)
                return r;
        r = varlink_parse(s, text, len, ret);
        if (r < 0) {
                close_fds(ret_fds, n_fds);
                return r;
        }
        *ret_n_fds = n_fds;
        return 1;
}

int varlink_stream_queue_text(struct varlink_stream *s, const char *text, size_t len,
                              const int *fds, size_t n_fds)
{
        if (n_fds > VARLINK_FDS_MAX)
                return -E2BIG;
        if (n_fds > 0 && s->n_out_fds > 0) {
                /* One message with fds in flight at a time keeps each set with the
                 * first byte of its own message. */
                int r = varlink_stream_flush(s);
                if (r < 0)
                        return r;
                if (s->n_out_fds > 0)
                        return -EBUSY;
        }

        /* Compact the written prefix away before growing. */
        if (s->out_off > 0) {
                memmove(s->out, s->out + s->out_off, s->out_len - s->out_off);
                s->out_len -= s->out_off;
                if (s->n_out_fds > 0) {
                        s->out_fds_at -= s->out_off;
                        s->out_fds_end -= s->out_off;
                }
                s->out_off = 0;
        }
        int r = grow(&s->out, &s->out_alloc, s->out_len + len + 1);
        if (r < 0)
                return r;

        if (n_fds > 0) {
                memcpy(s->out_fds, fds, n_fds * sizeof(int));
                s->n_out_fds = n_fds;
                s->out_fds_at = s->out_len;
                s->out_fds_end = s->out_len + len + 1;
        }
        memcpy(s->out + s->out_len, text, len);
        s->out[s->out_len + len] = 0;
        s->out_len += len + 1;
        return 0;
}

int varlink_stream_queue(struct varlink_stream *s, json_object *msg, const int *fds, size_t n_fds)
{
        size_t len;
        const char *text = json_object_to_json_string_length(msg, JSON_C_TO_STRING_PLAIN, &len);
        if (!text)
                return -ENOMEM;
        return varlink_stream_queue_text(s, text, len, fds, n_fds);
}

int varlink_stream_flush(struct varlink_stream *s)
{
        while (varlink_stream_has_output(s)) {
                union {
                        struct cmsghdr h;
                        char buf[CMSG_SPACE(sizeof(int) * VARLINK_FDS_MAX)];
                } control = {};
                struct iovec iov = {.iov_base = s->out + s->out_off,
                                    .iov_len = s->out_len - s->out_off};
                struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
                bool with_fds = s->n_out_fds > 0 && s->out_off == s->out_fds_at;
                if (s->n_out_fds > 0 && s->out_off < s->out_fds_at)
                        /* Stop before the message that carries fds: they must go with
                         * its first byte, not with the bytes ahead of it. */
                        iov.iov_len = s->out_fds_at - s->out_off;
                if (with_fds) {
                        /* Alone, so the peer can tell which message they belong to:
                         * its read ends with them. */
                        iov.iov_len = s->out_fds_end - s->out_off;
                        mh.msg_control = &control;
                        mh.msg_controllen = CMSG_SPACE(sizeof(int) * s->n_out_fds);
                        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
                        c->cmsg_level = SOL_SOCKET;
                        c->cmsg_type = SCM_RIGHTS;
                        c->cmsg_len = CMSG_LEN(sizeof(int) * s->n_out_fds);
                        memcpy(CMSG_DATA(c), s->out_fds, sizeof(int) * s->n_out_fds);
                }
                ssize_t n = sendmsg(s->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                                return 0;
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (with_fds) {
                        /* They went with the first byte; the peer owns them now. */
                        close_fds(s->out_fds, s->n_out_fds);
                        s->n_out_fds = 0;
                }
                s->out_off += (size_t)n;
        }
        s->out_off = s->out_len = 0;
        return 1;
}

/* {key: value, "parameters": parameters, flag: true}, each part optional but the
 * parameters; parameters is taken. */
static json_object *envelope(const char *key, const char *value, json_object *parameters,
                             const char *flag)
{
        json_object *o = json_object_new_object();
        if (!parameters)
                parameters = json_object_new_object();
        if (!o || !parameters ||
            (key && json_object_object_add(o, key, json_object_new_string(value)) < 0)) {
                json_object_put(o);
                json_object_put(parameters);
                return NULL;
        }
        if (json_object_object_add(o, "parameters", parameters) < 0) {
                json_object_put(parameters);
                json_object_put(o);
                return NULL;
        }
        if (flag && json_object_object_add(o, flag, json_object_new_boolean(true)) < 0) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

json_object *varlink_call_new(const char *method, json_object *parameters, bool more)
{
        return envelope("method", method, parameters, more ? "more" : NULL);
}

json_object *varlink_reply_new(json_object *parameters, bool continues)
{
        return envelope(NULL, NULL, parameters, continues ? "continues" : NULL);
}

json_object *varlink_error_new(const char *error, json_object *parameters)
{
        return envelope("error", error, parameters, NULL);
}

const char *json_get_string(json_object *o, const char *key)
{
        json_object *v;
        if (!o || !json_object_object_get_ex(o, key, &v) ||
            !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}
