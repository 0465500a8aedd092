/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "varlink.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fd-util.h"
#include "macro.h"

#define READ_CHUNK 65536

void varlink_stream_init(struct varlink_stream *s, int fd, size_t max_message)
{
        *s = (struct varlink_stream){.fd = fd, .max_message = max_message};
}

/* A piece of the output queue: whole messages, the stream's own bytes (text[]) or a
 * shared text. */
struct varlink_chunk {
        struct varlink_chunk *next;
        struct varlink_text *shared; /* NULL: owned, the bytes are in text[] */
        size_t len;                  /* bytes queued in it, NULs included */
        size_t alloc;                /* owned: room in text[] */
        char text[];
};

/* Owned chunks are at least this large (with their header), so that the replies of a
 * client that pipelines share a few allocations. */
#define CHUNK_MIN 1024

int varlink_text_new(char *text, size_t len, struct varlink_text **ret)
{
        struct varlink_text *t = malloc(sizeof(*t));
        if (!t)
                return -ENOMEM;
        text[len] = 0;
        *t = (struct varlink_text){.n_ref = 1, .len = len, .text = text};
        *ret = t;
        return 0;
}

struct varlink_text *varlink_text_ref(struct varlink_text *t)
{
        if (t)
                t->n_ref++;
        return t;
}

struct varlink_text *varlink_text_unref(struct varlink_text *t)
{
        if (t && --t->n_ref == 0) {
                free(t->text);
                free(t);
        }
        return NULL;
}

static const char *chunk_bytes(const struct varlink_chunk *c)
{
        return c->shared ? c->shared->text : c->text;
}

static void chunk_free(struct varlink_stream *s, struct varlink_chunk *c)
{
        if (c->shared)
                varlink_text_unref(c->shared);
        else
                s->out_owned -= c->alloc;
        free(c);
}

void varlink_stream_done(struct varlink_stream *s)
{
        close_many(s->in_fds, s->n_in_fds);
        close_many(s->out_fds, s->n_out_fds);
        if (s->tok)
                json_tokener_free(s->tok);
        free(s->msg);
        free(s->in);
        while (s->out_head) {
                struct varlink_chunk *c = s->out_head;
                s->out_head = c->next;
                chunk_free(s, c);
        }
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
        close_many(s->in_fds, s->n_in_fds);
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
        if (s->in_len == 0) {
                /* Read room is taken again with the next read: an idle connection (a
                 * Monitor, a client between calls) holds no buffer of READ_CHUNK. */
                free(s->in);
                s->in = NULL;
                s->in_alloc = 0;
        }

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
                close_many(s->in_fds, s->n_in_fds);
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
                close_many(ret_fds, n_fds);
                return r;
        }
        *ret_n_fds = n_fds;
        return 1;
}

/* Room for n_fds fds with the next message: one message with fds in flight at a time
 * keeps each set with the first byte of its own message. */
static int out_fds_room(struct varlink_stream *s, size_t n_fds)
{
        if (n_fds > VARLINK_FDS_MAX)
                return -E2BIG;
        if (n_fds > 0 && s->n_out_fds > 0) {
                int r = varlink_stream_flush(s);
                if (r < 0)
                        return r;
                if (s->n_out_fds > 0)
                        return -EBUSY;
        }
        return 0;
}

static void out_append(struct varlink_stream *s, struct varlink_chunk *c)
{
        if (s->out_tail)
                s->out_tail->next = c;
        else
                s->out_head = c;
        s->out_tail = c;
}

int varlink_stream_queue_text(struct varlink_stream *s, const char *text, size_t len,
                              const int *fds, size_t n_fds)
{
        int r = out_fds_room(s, n_fds);
        if (r < 0)
                return r;
        /* Into the last chunk when it is owned and has room, else a chunk of its own. */
        struct varlink_chunk *c = s->out_tail;
        if (!c || c->shared || c->alloc - c->len < len + 1) {
                size_t alloc = len + 1 > CHUNK_MIN - sizeof(*c) ? len + 1 : CHUNK_MIN - sizeof(*c);
                c = malloc(sizeof(*c) + alloc);
                if (!c)
                        return -ENOMEM;
                *c = (struct varlink_chunk){.alloc = alloc};
                s->out_owned += alloc;
                out_append(s, c);
        }
        if (n_fds > 0) {
                memcpy(s->out_fds, fds, n_fds * sizeof(int));
                s->n_out_fds = n_fds;
                s->out_fds_at = s->out_queued;
                s->out_fds_end = s->out_queued + len + 1;
        }
        memcpy(c->text + c->len, text, len);
        c->text[c->len + len] = 0;
        c->len += len + 1;
        s->out_queued += len + 1;
        return 0;
}

int varlink_stream_queue_shared(struct varlink_stream *s, struct varlink_text *t)
{
        struct varlink_chunk *c = malloc(sizeof(*c));
        if (!c)
                return -ENOMEM;
        *c = (struct varlink_chunk){.shared = varlink_text_ref(t), .len = t->len + 1};
        out_append(s, c);
        s->out_queued += c->len;
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

/* Takes n written bytes off the head of the queue. */
static void out_consume(struct varlink_stream *s, size_t n)
{
        s->out_sent += n;
        while (n > 0) {
                struct varlink_chunk *c = s->out_head;
                size_t k = c->len - s->out_off < n ? c->len - s->out_off : n;
                s->out_off += k;
                n -= k;
                if (s->out_off < c->len)
                        break;
                s->out_head = c->next;
                if (!s->out_head)
                        s->out_tail = NULL;
                s->out_off = 0;
                chunk_free(s, c);
        }
}

#define FLUSH_IOV_MAX 64

int varlink_stream_flush(struct varlink_stream *s)
{
        while (varlink_stream_has_output(s)) {
                union {
                        struct cmsghdr h;
                        char buf[CMSG_SPACE(sizeof(int) * VARLINK_FDS_MAX)];
                } control = {};
                uint64_t limit = s->out_queued;
                bool with_fds = s->n_out_fds > 0 && s->out_sent == s->out_fds_at;
                if (s->n_out_fds > 0 && s->out_sent < s->out_fds_at)
                        /* Stop before the message that carries fds: they must go with
                         * its first byte, not with the bytes ahead of it. */
                        limit = s->out_fds_at;
                else if (with_fds)
                        /* Alone, so the peer can tell which message they belong to:
                         * its read ends with them. */
                        limit = s->out_fds_end;
                struct iovec iov[FLUSH_IOV_MAX];
                size_t n_iov = 0;
                uint64_t at = s->out_sent;
                for (struct varlink_chunk *c = s->out_head;
                     c && at < limit && n_iov < FLUSH_IOV_MAX; c = c->next) {
                        size_t off = c == s->out_head ? s->out_off : 0;
                        size_t n = c->len - off;
                        if (n > limit - at)
                                n = (size_t)(limit - at);
                        iov[n_iov++] = (struct iovec){.iov_base = (char *)chunk_bytes(c) + off,
                                                      .iov_len = n};
                        at += n;
                }
                struct msghdr mh = {.msg_iov = iov, .msg_iovlen = n_iov};
                if (with_fds) {
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
                        close_many(s->out_fds, s->n_out_fds);
                        s->n_out_fds = 0;
                }
                out_consume(s, (size_t)n);
        }
        return 1;
}

size_t varlink_stream_drop_unsent(struct varlink_stream *s)
{
        struct varlink_chunk *head = s->out_head;
        if (!head)
                return 0;
        /* Chunks hold whole messages: the one begun is in the head, and ends at the
         * first NUL from the last byte written on. */
        struct varlink_chunk *keep = NULL;
        if (s->out_off > 0 && !head->shared) {
                const char *end =
                        memchr(head->text + s->out_off - 1, 0, head->len - s->out_off + 1);
                head->len = (size_t)(end - head->text) + 1;
                if (head->len > s->out_off)
                        keep = head;
        } else if (s->out_off > 0)
                keep = head;
        struct varlink_chunk *c = keep ? keep->next : head;
        if (keep)
                keep->next = NULL;
        else
                s->out_off = 0;
        s->out_head = s->out_tail = keep;
        while (c) {
                struct varlink_chunk *next = c->next;
                chunk_free(s, c);
                c = next;
        }
        uint64_t queued = s->out_sent + (keep ? keep->len - s->out_off : 0);
        size_t dropped = (size_t)(s->out_queued - queued);
        s->out_queued = queued;
        if (s->n_out_fds > 0 && s->out_fds_at >= queued) {
                close_many(s->out_fds, s->n_out_fds);
                s->n_out_fds = 0;
        }
        return dropped;
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
