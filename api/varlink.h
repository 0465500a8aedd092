/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The varlink wire format: each message is one JSON object followed by a NUL byte, on a
 * SOCK_STREAM UNIX socket; file descriptors travel as SCM_RIGHTS ancillary data with the
 * first byte of the message they belong to, and a message with fds is sent by a sendmsg()
 * of its own, so the receiver knows it as the last message starting in the read that
 * brought them. A varlink_stream buffers both directions of such a socket; it serves the
 * daemon (non-blocking) and the client library (blocking) alike and never decides
 * policy: it reports what arrived.
 *
 * Message shapes (https://varlink.org): a call is {"method": "iface.Name", "parameters":
 * {...}, "more": bool, "oneway": bool}; a reply is {"parameters": {...}, "continues":
 * bool} or {"error": "iface.ErrorName", "parameters": {...}}. */

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* At most this many fds are taken from one recvmsg(); more is a protocol error. */
#define VARLINK_FDS_MAX 16

struct varlink_stream {
        int fd;
        size_t max_message; /* a message longer than this is refused (-EMSGSIZE) */

        json_tokener *tok; /* kept from message to message: a new one costs more than a
                            * small call's parse */
        char *msg;         /* the message varlink_stream_next_text() returned last */
        size_t msg_alloc;
        char *in; /* bytes read and not yet consumed */
        size_t in_len, in_alloc;
        int in_fds[VARLINK_FDS_MAX]; /* fds received with bytes still in in[] */
        size_t n_in_fds;
        size_t in_fds_at;      /* where in in[] the message they came with starts */
        bool in_fds_truncated; /* the kernel dropped some fds (MSG_CTRUNC) */
        bool eof;

        /* Messages queued and not yet written, in order: whole messages in each chunk,
         * shared or owned. out_queued and out_sent count bytes since the start (so
         * positions in the output stay valid as chunks go). */
        struct varlink_chunk *out_head, *out_tail;
        size_t out_off; /* bytes of out_head written */
        uint64_t out_queued, out_sent;
        size_t out_owned;             /* bytes allocated by the owned chunks */
        int out_fds[VARLINK_FDS_MAX]; /* to go with the byte at out_fds_at */
        size_t n_out_fds;
        uint64_t out_fds_at, out_fds_end; /* end: just past that message */
};

/* A whole message's text that several streams send as it is (a large reply that does
 * not depend on who asked): refcounted, never changed once made. */
struct varlink_text {
        unsigned n_ref;
        size_t len; /* bytes of text, the NUL that ends it not counted */
        char *text; /* text[len] == 0 */
};

/* A shared text around text[0..len) (taken: malloc()ed, with room for the NUL at
 * text[len], which is written here); one reference. */
int varlink_text_new(char *text, size_t len, struct varlink_text **ret);
struct varlink_text *varlink_text_ref(struct varlink_text *t);
/* Drops a reference (NULL: nothing); returns NULL. */
struct varlink_text *varlink_text_unref(struct varlink_text *t);

/* Sets s up around the connected socket fd (not taken: the caller closes it after
 * varlink_stream_done()). */
void varlink_stream_init(struct varlink_stream *s, int fd, size_t max_message);

/* Frees the buffers and closes every fd received or queued and not handed out. */
void varlink_stream_done(struct varlink_stream *s);

/* One recvmsg(): the number of bytes read, 0 at end of file (s->eof), -EAGAIN on a
 * non-blocking socket with nothing to read, -EMSGSIZE when the unconsumed bytes exceed
 * the message limit with no message end among them, or another -errno. */
int varlink_stream_read(struct varlink_stream *s);

/* Closes the fds received and not handed out yet: the message they came with is then
 * -ETOOMANYREFS, as when the kernel drops fds (for a receiver over its own budget). */
void varlink_stream_drop_fds(struct varlink_stream *s);

/* Takes the next complete message from the buffer: 1 and *ret set (with the fds that
 * arrived with it, the caller then owns them), 0 when no whole message is buffered,
 * -EBADMSG for a message that is not a JSON object (it is consumed; its fds closed). */
int varlink_stream_next(struct varlink_stream *s, json_object **ret, int *ret_fds,
                        size_t *ret_n_fds);
/* Parses one message's text (len bytes) as a JSON object, with the stream's tokener:
 * -EBADMSG for anything else, trailing bytes included. */
int varlink_parse(struct varlink_stream *s, const char *text, size_t len, json_object **ret);
/* varlink_stream_next() without the parsing: *ret is the message's text (NUL-terminated, len
 * bytes), valid until the next call. -EMSGSIZE, -ETOOMANYREFS (the kernel dropped fds) as above. */
int varlink_stream_next_text(struct varlink_stream *s, const char **ret, size_t *ret_len,
                             int *ret_fds, size_t *ret_n_fds);

/* Queues msg (serialized, NUL-terminated) and, with its first byte, fds (taken: they are
 * closed once sent, or by varlink_stream_done()). -E2BIG for more than VARLINK_FDS_MAX
 * fds, -EBUSY while another message's fds cannot be sent yet. */
int varlink_stream_queue(struct varlink_stream *s, json_object *msg, const int *fds, size_t n_fds);
/* The same for a message already serialized: text[0..len), without the NUL. */
int varlink_stream_queue_text(struct varlink_stream *s, const char *text, size_t len,
                              const int *fds, size_t n_fds);

/* Queues a shared text (a reference is taken; no copy is made). */
int varlink_stream_queue_shared(struct varlink_stream *s, struct varlink_text *t);

/* Writes queued bytes: 1 when everything is written, 0 when the socket would block with
 * bytes left (-EAGAIN is not an error here), or -errno (-EPIPE when the peer left). */
int varlink_stream_flush(struct varlink_stream *s);

/* Drops the queued messages not begun yet (the one partly written stays, so that the
 * peer gets it whole), closing any fds they carried; returns the bytes dropped. */
size_t varlink_stream_drop_unsent(struct varlink_stream *s);

static inline bool varlink_stream_has_output(const struct varlink_stream *s)
{
        return s->out_sent < s->out_queued;
}

/* Bytes queued and not yet written. */
static inline size_t varlink_stream_pending(const struct varlink_stream *s)
{
        return (size_t)(s->out_queued - s->out_sent);
}

/* Helpers for the message shapes. Each returns a new object or NULL without memory;
 * parameters is taken (NULL means {}). */
json_object *varlink_call_new(const char *method, json_object *parameters, bool more);
json_object *varlink_reply_new(json_object *parameters, bool continues);
json_object *varlink_error_new(const char *error, json_object *parameters);

/* A string or integer member, or NULL/-1 when absent or of another type. */
const char *json_get_string(json_object *o, const char *key);
