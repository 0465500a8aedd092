/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libudev.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "sysfs-pci.h"
#include "detail.h"
#include "fd-util.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

int log_max_level = LOG_INFO;

/* Copies text[0..len) to out (room for n bytes), escaping what could end or forge a line
 * or drive a terminal: C0 controls, DEL, the UTF-8 form of C1 controls, and the backslash
 * that starts an escape. Returns the bytes written; stops before an escape that would not
 * fit whole. */
static size_t log_escape(char *out, size_t n, const char *text, size_t len)
{
        size_t o = 0;
        for (size_t i = 0; i < len; i++) {
                unsigned char ch = (unsigned char)text[i];
                bool c1 = ch == 0xc2 && i + 1 < len && (unsigned char)text[i + 1] >= 0x80 &&
                          (unsigned char)text[i + 1] <= 0x9f;
                if (ch >= 0x20 && ch != 0x7f && ch != '\\' && !c1) {
                        if (o + 1 > n)
                                break;
                        out[o++] = (char)ch;
                        continue;
                }
                const char *named = ch == '\\'   ? "\\\\"
                                    : ch == '\n' ? "\\n"
                                    : ch == '\t' ? "\\t"
                                    : ch == '\r' ? "\\r"
                                                 : NULL;
                char esc[9];
                int k = named ? snprintf(esc, sizeof(esc), "%s", named)
                        : c1  ? snprintf(esc, sizeof(esc), "\\x%02x\\x%02x", ch,
                                         (unsigned char)text[++i])
                              : snprintf(esc, sizeof(esc), "\\x%02x", ch);
                if (o + (size_t)k > n)
                        break;
                memcpy(out + o, esc, (size_t)k);
                o += (size_t)k;
        }
        return o;
}

void log_msg(int level, const char *fmt, ...)
{
        if (level > log_max_level)
                return;
        int saved = errno;
        /* One write() per line: lines from a busy daemon stay whole, and cheap. "<N>" lets
         * journald keep the priority; harmless on a terminal. The text is escaped as a
         * whole, so every caller is covered whatever it passes: no format string of the
         * daemon holds a control character. */
        char text[1024], line[1024];
        va_list ap;
        va_start(ap, fmt);
        errno = saved;
        int k = vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
        size_t len = k < 0 ? 0 : (size_t)k < sizeof(text) ? (size_t)k : sizeof(text) - 1;
        /* "<N>vfiod: ", N a syslog level (0-7). */
        memcpy(line, "<0>vfiod: ", 10);
        line[1] = (char)('0' + (level & 7));
        size_t n = 10 + log_escape(line + 10, sizeof(line) - 10 - 1, text, len);
        line[n++] = '\n';
        (void)!write(STDERR_FILENO, line, n);
        errno = saved;
}

/* ---- per-uid accounting ------------------------------------------------------------- */

static struct uid_usage *uid_usage_get(struct server *s, uid_t uid, bool create)
{
        for (size_t i = 0; i < s->n_uids; i++)
                if (s->uids[i]->uid == uid)
                        return s->uids[i];
        if (!create)
                return NULL;
        struct uid_usage **p = reallocarray(s->uids, s->n_uids + 1, sizeof(*p));
        if (!p)
                return NULL;
        s->uids = p;
        struct uid_usage *u = malloc(sizeof(*u));
        if (!u)
                return NULL;
        *u = (struct uid_usage){
                .uid = uid,
                .tokens = 2.0 * s->cfg.request_rate,
                .refilled_usec = clock_usec(CLOCK_MONOTONIC),
        };
        return p[s->n_uids++] = u;
}

static bool uid_take_token(struct server *s, uid_t uid)
{
        if (s->cfg.request_rate == 0)
                return true;
        struct uid_usage *u = uid_usage_get(s, uid, true);
        if (!u)
                return false;
        uint64_t now = clock_usec(CLOCK_MONOTONIC);
        double burst = 2.0 * s->cfg.request_rate;
        u->tokens += (double)(now - u->refilled_usec) * s->cfg.request_rate / 1e6;
        if (u->tokens > burst)
                u->tokens = burst;
        u->refilled_usec = now;
        if (u->tokens < 1.0)
                return false;
        u->tokens -= 1.0;
        return true;
}

/* Charges a call whose reply took bytes its share of the cost beyond the token it took:
 * the bucket may go below zero, and the uid's calls are refused until it refills. */
static void uid_charge_reply(struct server *s, uid_t uid, uint64_t bytes)
{
        if (s->cfg.request_rate == 0 || bytes < REQUEST_COST_BYTES)
                return;
        struct uid_usage *u = uid_usage_get(s, uid, false);
        if (u)
                u->tokens -= (double)(bytes / REQUEST_COST_BYTES);
}

/* ---- queued output ------------------------------------------------------------------ */

static int text_refs_add(struct text_refs *r, const struct varlink_text *t)
{
        for (size_t i = 0; i < r->n; i++)
                if (r->v[i].text == t) {
                        r->v[i].n++;
                        return 0;
                }
        struct text_ref *v = reallocarray(r->v, r->n + 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        r->v = v;
        v[r->n++] = (struct text_ref){.text = t, .n = 1};
        r->bytes += t->len + 1;
        return 0;
}

static void text_refs_remove(struct text_refs *r, const struct varlink_text *t)
{
        for (size_t i = 0; i < r->n; i++)
                if (r->v[i].text == t) {
                        if (--r->v[i].n > 0)
                                return;
                        r->bytes -= t->len + 1;
                        r->v[i] = r->v[--r->n];
                        if (r->n == 0) {
                                free(r->v);
                                r->v = NULL;
                        }
                        return;
                }
}

static size_t uid_output(const struct uid_usage *u)
{
        return u->out_owned + u->shared.bytes;
}

static size_t server_output(const struct server *s)
{
        return s->out_owned + s->shared.bytes;
}

/* Whether u is past its share of queued output: its own limit, or, while the daemon is
 * past its limit, holding CONN_OUTPUT_MAX or more (the uids that hold little are still
 * served). */
static bool uid_over_share(const struct server *s, const struct uid_usage *u)
{
        size_t used = uid_output(u);
        if (s->cfg.max_output_per_uid > 0 && used >= s->cfg.max_output_per_uid)
                return true;
        return s->cfg.max_output > 0 && server_output(s) >= s->cfg.max_output &&
               used >= CONN_OUTPUT_MAX;
}

static bool conn_share_blocked(const struct conn *c)
{
        return c->usage && uid_over_share(c->server, c->usage);
}

#define TRIM_AFTER_BYTES (1u << 20)
#define TRIM_DELAY_USEC  (500u * 1000)

static int on_trim(sd_event_source *src, uint64_t usec, void *userdata)
{
        struct server *s = userdata;
        /* What free() keeps (small blocks amid the heap, the top below the trim
         * threshold) goes back to the kernel: a burst of clients leaves no trace. */
        malloc_trim(0);
        s->freed = 0;
        return 0;
}

void server_note_freed(struct server *s, size_t n)
{
        s->freed += n;
        if (s->freed < TRIM_AFTER_BYTES)
                return;
        int enabled = SD_EVENT_OFF;
        if (s->trim && sd_event_source_get_enabled(s->trim, &enabled) >= 0 &&
            enabled != SD_EVENT_OFF)
                return; /* one is coming */
        uint64_t when = clock_usec(CLOCK_MONOTONIC) + TRIM_DELAY_USEC;
        int r = s->trim ? sd_event_source_set_time(s->trim, when)
                        : sd_event_add_time(s->event, &s->trim, CLOCK_MONOTONIC, when, 0, on_trim,
                                            s);
        if (r >= 0)
                (void)sd_event_source_set_enabled(s->trim, SD_EVENT_ONESHOT);
}

static int on_conn_io(sd_event_source *src, int fd, uint32_t revents, void *userdata);

static int on_wake(sd_event_source *src, void *userdata)
{
        struct server *s = userdata;
        for (struct conn *c = s->conns, *next; c && s->n_waiting > 0; c = next) {
                next = c->next; /* serving c may free c, never another connection */
                if (c->waiting && !conn_share_blocked(c))
                        (void)on_conn_io(c->io, c->fd, 0, c);
        }
        return 0;
}

static void server_wake(struct server *s)
{
        if (!s->wake && sd_event_add_defer(s->event, &s->wake, on_wake, s) < 0)
                return;
        (void)sd_event_source_set_enabled(s->wake, SD_EVENT_ONESHOT);
}

static void conn_set_waiting(struct conn *c, bool on)
{
        if (c->waiting == on)
                return;
        c->waiting = on;
        if (on)
                c->server->n_waiting++;
        else
                c->server->n_waiting--;
}

/* Brings the counts of queued output up to date with c's stream (after anything was
 * queued, written or dropped): its own bytes, and the shared texts the stream is not
 * past yet. Calls that waited for a share are served again once there is room. */
static void conn_account(struct conn *c)
{
        struct server *s = c->server;
        struct uid_usage *u = c->usage;
        size_t before = server_output(s);
        bool was_over = s->cfg.max_output > 0 && before >= s->cfg.max_output,
             uid_was_over = u && uid_over_share(s, u);

        s->out_owned = s->out_owned - c->out_owned + c->stream.out_owned;
        if (u)
                u->out_owned = u->out_owned - c->out_owned + c->stream.out_owned;
        c->out_owned = c->stream.out_owned;
        for (size_t i = 0; i < c->n_texts;) {
                struct conn_text *e = &c->texts[i];
                if (e->end > c->stream.out_sent && e->end <= c->stream.out_queued) {
                        i++;
                        continue;
                }
                text_refs_remove(&s->shared, e->text);
                if (u)
                        text_refs_remove(&u->shared, e->text);
                varlink_text_unref(e->text);
                c->texts[i] = c->texts[--c->n_texts];
        }

        size_t after = server_output(s);
        if (after >= before)
                return;
        server_note_freed(s, before - after);
        if (s->n_waiting > 0 &&
            ((was_over && after < s->cfg.max_output) || (uid_was_over && !uid_over_share(s, u))))
                server_wake(s);
}

/* ---- replies ------------------------------------------------------------------------ */

static void conn_update_events(struct conn *c);

/* After a message was queued (r: how that went), with the fds it took: sends what it
 * can now, unless earlier replies already wait for the socket (it would block). */
static int conn_queued(struct conn *c, int r, bool had_output)
{
        if (r >= 0 && !had_output) {
                r = varlink_stream_flush(&c->stream);
                if (r < 0)
                        c->closing = true;
        }
        conn_account(c);
        if (r < 0)
                return r;
        conn_update_events(c);
        return 0;
}

/* Queues msg (taken) with fds (taken in every case: the stream closes them once sent). */
static int conn_queue(struct conn *c, json_object *msg, int *fds, size_t n_fds)
{
        bool had = varlink_stream_has_output(&c->stream);
        int r = msg ? varlink_stream_queue(&c->stream, msg, fds, n_fds) : -ENOMEM;
        json_object_put(msg);
        if (r < 0)
                close_many(fds, n_fds);
        return conn_queued(c, r, had);
}

int conn_reply_text(struct conn *c, const struct jbuf *parameters, int *fds, size_t n_fds)
{
        static const char empty[] = "{\"parameters\":{}}";
        if (c->oneway) {
                close_many(fds, n_fds);
                return 0;
        }
        struct jbuf msg = {};
        bool had = varlink_stream_has_output(&c->stream);
        int r;
        if (parameters) {
                jbuf_lit(&msg, "{\"parameters\":");
                jbuf_raw(&msg, parameters->p, parameters->len);
                jbuf_lit(&msg, "}");
                r = parameters->oom || msg.oom
                            ? -ENOMEM
                            : varlink_stream_queue_text(&c->stream, msg.p, msg.len, fds, n_fds);
        } else
                r = varlink_stream_queue_text(&c->stream, empty, sizeof(empty) - 1, fds, n_fds);
        jbuf_done(&msg);
        if (r < 0)
                close_many(fds, n_fds);
        return conn_queued(c, r, had);
}

int conn_reply_continues(struct conn *c, json_object *parameters)
{
        return conn_queue(c, varlink_reply_new(parameters, true), NULL, 0);
}

int conn_reply_shared(struct conn *c, struct varlink_text *text)
{
        struct server *s = c->server;
        if (c->oneway)
                return 0;
        struct conn_text *v = reallocarray(c->texts, c->n_texts + 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        c->texts = v;
        /* Counted before it is queued, so that nothing is queued uncounted. */
        int r = text_refs_add(&s->shared, text);
        if (r < 0)
                return r;
        if (c->usage && (r = text_refs_add(&c->usage->shared, text)) < 0) {
                text_refs_remove(&s->shared, text);
                return r;
        }
        bool had = varlink_stream_has_output(&c->stream);
        r = varlink_stream_queue_shared(&c->stream, text);
        if (r < 0) {
                text_refs_remove(&s->shared, text);
                if (c->usage)
                        text_refs_remove(&c->usage->shared, text);
                return r;
        }
        v[c->n_texts++] =
                (struct conn_text){.text = varlink_text_ref(text), .end = c->stream.out_queued};
        return conn_queued(c, 0, had);
}

int conn_reply(struct conn *c, json_object *parameters, int *fds, size_t n_fds)
{
        if (!parameters || c->oneway) {
                json_object_put(parameters);
                return conn_reply_text(c, NULL, fds, n_fds);
        }
        return conn_queue(c, varlink_reply_new(parameters, false), fds, n_fds);
}

int conn_error(struct conn *c, const char *error, json_object *parameters)
{
        /* The parameters are written out only when the line will be. */
        if (log_max_level >= LOG_DEBUG)
                log_msg(LOG_DEBUG, "pid %d uid %u: %s %s", (int)c->cred.pid, c->cred.uid, error,
                        parameters
                                ? json_object_to_json_string_ext(parameters, JSON_C_TO_STRING_PLAIN)
                                : "{}");
        if (c->oneway) {
                json_object_put(parameters);
                return 0;
        }
        return conn_queue(c, varlink_error_new(error, parameters), NULL, 0);
}

int conn_errorf(struct conn *c, const char *error, ...)
{
        json_object *p = json_object_new_object();
        if (!p)
                return -ENOMEM;
        va_list ap;
        va_start(ap, error);
        const char *key;
        while ((key = va_arg(ap, const char *))) {
                const char *value = va_arg(ap, const char *);
                json_object_object_add(p, key, value ? json_object_new_string(value) : NULL);
        }
        va_end(ap);
        return conn_error(c, error, p);
}

/* ---- connections -------------------------------------------------------------------- */

static void conn_free(struct conn *c)
{
        struct server *s = c->server;
        if (c->prev)
                c->prev->next = c->next;
        else
                s->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        s->n_conns--;
        if (c->job) /* it goes on; its answer has nobody to go to */
                job_forget_conn(c->job);
        conn_set_monitor(c, false);
        conn_set_waiting(c, false);
        if (c->admin)
                s->n_admin_conns--;
        else if (c->usage && c->usage->n_conns > 0)
                c->usage->n_conns--;
        s->fds_in_flight -= c->fds_held;

        sd_event_source_disable_unref(c->io);
        sd_event_source_disable_unref(c->idle);
        sd_event_source_disable_unref(c->deadline);
        varlink_stream_done(&c->stream);
        conn_account(c); /* nothing queued any more */
        free(c->texts);
        safe_close(c->fd);
        safe_close(c->pidfd);
        holder_unref(c->holder);
        free(c->groups);
        free(c);
}

static int on_idle(sd_event_source *src, uint64_t usec, void *userdata)
{
        struct conn *c = userdata;
        uint64_t deadline = c->last_active_usec + c->server->cfg.idle_timeout_usec;
        if (!c->monitor && !c->job && clock_usec(CLOCK_MONOTONIC) >= deadline) {
                log_msg(LOG_DEBUG, "closing idle connection of pid %d", (int)c->cred.pid);
                conn_free(c);
                return 0;
        }
        /* Activity since the timer was set: sleep until the new deadline. The timer is
         * moved only here, not on every call. */
        sd_event_source_set_time(src, deadline);
        sd_event_source_set_enabled(src, c->monitor ? SD_EVENT_OFF : SD_EVENT_ONESHOT);
        return 0;
}

/* Notes activity: a call served or a reply written. Bytes of a call not yet whole are
 * not activity (the call deadline watches those). */
static void conn_arm_idle(struct conn *c)
{
        struct server *s = c->server;
        c->last_active_usec = clock_usec(CLOCK_MONOTONIC);
        if (s->cfg.idle_timeout_usec == 0 || c->monitor) {
                if (c->idle)
                        sd_event_source_set_enabled(c->idle, SD_EVENT_OFF);
                return;
        }
        int enabled = SD_EVENT_ONESHOT;
        if (!c->idle)
                (void)sd_event_add_time(s->event, &c->idle, CLOCK_MONOTONIC,
                                        c->last_active_usec + s->cfg.idle_timeout_usec, 0, on_idle,
                                        c);
        else if (sd_event_source_get_enabled(c->idle, &enabled) >= 0 && enabled == SD_EVENT_OFF) {
                /* Off while it was a Monitor stream. */
                (void)sd_event_source_set_time(c->idle,
                                               c->last_active_usec + s->cfg.idle_timeout_usec);
                (void)sd_event_source_set_enabled(c->idle, SD_EVENT_ONESHOT);
        }
}

/* Whether the connection's next call must wait: its replies are over the bound, or one
 * with fds is not sent yet (one set in flight at a time), or its uid is past its share
 * of queued output, or the call before it waits for a job (replies go out in order). */
static bool conn_output_full(const struct conn *c)
{
        return varlink_stream_pending(&c->stream) >= CONN_OUTPUT_MAX || c->stream.n_out_fds > 0 ||
               conn_share_blocked(c) || c->job;
}

static void conn_update_events(struct conn *c)
{
        /* While replies over the bound wait to be written, read nothing more: a client
         * that does not read cannot make the daemon buffer without bound. One that waits
         * for its uid's share is served again by server_wake(). */
        uint32_t ev = varlink_stream_has_output(&c->stream) ? EPOLLOUT : 0;
        if (!c->closing && !conn_output_full(c))
                ev |= EPOLLIN;
        conn_set_waiting(c, !c->closing && conn_share_blocked(c));
        sd_event_source_set_io_events(c->io, ev);
}

/* Brings the server's count of fds in flight up to date with what the stream holds;
 * a set that arrived past the budget is closed (its call is then refused). */
static void conn_count_fds(struct conn *c)
{
        struct server *s = c->server;
        size_t n = c->stream.n_in_fds;
        if (n > c->fds_held && s->fds_in_flight + (n - c->fds_held) > s->cfg.max_fds_in_flight) {
                log_msg(LOG_DEBUG, "pid %d: %zu fds with a call past the budget of %zu: closed",
                        (int)c->cred.pid, n, s->cfg.max_fds_in_flight);
                varlink_stream_drop_fds(&c->stream);
                n = 0;
        }
        s->fds_in_flight = s->fds_in_flight - c->fds_held + n;
        c->fds_held = n;
}

static int on_deadline(sd_event_source *src, uint64_t usec, void *userdata)
{
        struct conn *c = userdata;
        uint64_t timeout = c->server->cfg.call_timeout_usec;
        log_msg(LOG_DEBUG, "pid %d uid %u: call not whole after %" PRIu64 " s: closing",
                (int)c->cred.pid, c->cred.uid, timeout / 1000000u);
        /* Told why if its socket has room, never waited for. */
        char limit[32];
        snprintf(limit, sizeof(limit), "%" PRIu64, timeout / 1000000u);
        c->oneway = false;
        (void)conn_errorf(c, "io.vfiod.ProtocolError", "reason", "call not complete in time",
                          "limit", limit, NULL);
        conn_free(c);
        return 0;
}

/* After the whole calls were served: the call begun and not whole at the head of the
 * buffer must be by the deadline. Its clock runs while the daemon waits for its bytes:
 * from the read that brought its first byte, or, when calls ahead of it were waiting for
 * the client to read their replies, from when the daemon could read again. */
static int conn_watch_partial(struct conn *c)
{
        if (c->stream.in_len == 0 || conn_output_full(c)) {
                if (c->deadline_armed)
                        (void)sd_event_source_set_enabled(c->deadline, SD_EVENT_OFF);
                c->deadline_armed = false;
                return 0;
        }
        if (c->deadline_armed && c->deadline_call == c->n_calls)
                return 0; /* the deadline of this call stands */
        uint64_t when = clock_usec(CLOCK_MONOTONIC) + c->server->cfg.call_timeout_usec;
        int r = c->deadline ? sd_event_source_set_time(c->deadline, when)
                            : sd_event_add_time(c->server->event, &c->deadline, CLOCK_MONOTONIC,
                                                when, 0, on_deadline, c);
        if (r >= 0)
                r = sd_event_source_set_enabled(c->deadline, SD_EVENT_ONESHOT);
        if (r < 0)
                return r;
        c->deadline_armed = true;
        c->deadline_call = c->n_calls;
        return 0;
}

static bool span_true(struct jspan v)
{
        bool b = false;
        return jscan_bool(v, &b) == 0 && b;
}

/* A call's envelope is read from its text (json-text.h), in one pass: the methods read
 * their parameters the same way, and no call builds a json-c tree. */
static void conn_serve_one(struct conn *c, struct jspan msg, int *fds, size_t n_fds)
{
        enum { METHOD, PARAMETERS, ONEWAY, MORE };
        static const char *const keys[] = {"method", "parameters", "oneway", "more"};
        struct server *s = c->server;
        struct jspan v[4], params = {"{}", 2};
        char method_buf[256];
        uint32_t found = jscan_members(msg, keys, 4, v);
        const char *method = (found & (1u << METHOD)) && jscan_string(v[METHOD], method_buf,
                                                                      sizeof(method_buf)) == 0
                                     ? method_buf
                                     : NULL;
        c->oneway = (found & (1u << ONEWAY)) && span_true(v[ONEWAY]);
        bool more = (found & (1u << MORE)) && span_true(v[MORE]);

        if (!method) {
                close_many(fds, n_fds);
                c->oneway = false;
                conn_errorf(c, "io.vfiod.ProtocolError", "reason",
                            "a call needs a \"method\" string", NULL);
                return;
        }
        if (found & (1u << PARAMETERS))
                params = v[PARAMETERS];
        if (jscan_type(params) != JTYPE_OBJECT) {
                close_many(fds, n_fds);
                conn_errorf(c, "org.varlink.service.InvalidParameter", "parameter", "parameters",
                            NULL);
                return;
        }
        if (!uid_take_token(s, c->cred.uid)) {
                close_many(fds, n_fds);
                json_object *p = json_object_new_object();
                json_object_object_add(p, "limit", json_object_new_string("request_rate"));
                json_object_object_add(p, "value", json_object_new_int64(s->cfg.request_rate));
                conn_error(c, "io.vfiod.LimitExceeded", p);
                return;
        }
        /* Only Monitor streams; others answer once. */
        if (more && strcmp(method, "io.vfiod.Monitor") == 0)
                conn_set_monitor(c, true);

        log_msg(LOG_DEBUG, "pid %d uid %u calls %s", (int)c->cred.pid, c->cred.uid, method);
        uint64_t queued = c->stream.out_queued;
        int r = methods_dispatch(c, method, params, fds, n_fds);
        if (c->stream.out_queued > queued)
                uid_charge_reply(s, c->cred.uid, c->stream.out_queued - queued);
        if (r < 0) {
                /* The method failed before it could answer: say so rather than leave
                 * the client waiting. */
                char buf[128];
                json_object *p = json_object_new_object();
                json_object_object_add(p, "operation", json_object_new_string(method));
                json_object_object_add(p, "errno", json_object_new_int(-r));
                json_object_object_add(p, "message",
                                       json_object_new_string(strerror_r(-r, buf, sizeof(buf))));
                conn_error(c, "io.vfiod.OperationFailed", p);
        }
}

/* The error for a call past the size limit; the connection is closed once it is out
 * (the stream cannot be trusted to resync). */
static void conn_refuse_oversized(struct conn *c)
{
        char limit[32];
        snprintf(limit, sizeof(limit), "%zu", c->server->cfg.max_message);
        c->oneway = false;
        (void)conn_errorf(c, "io.vfiod.ProtocolError", "reason", "message larger than the limit",
                          "limit", limit, NULL);
        c->closing = true;
}

/* Serves the calls buffered whole, in order, while their replies fit below the bound;
 * returns how many it took. */
static unsigned conn_serve_buffered(struct conn *c)
{
        unsigned n = 0;
        while (!c->closing && !conn_output_full(c)) {
                const char *text;
                size_t len, n_fds = 0;
                int fds[VARLINK_FDS_MAX];
                struct jspan msg;
                int r = varlink_stream_next_text(&c->stream, &text, &len, fds, &n_fds);
                if (r == 0)
                        break;
                n++;
                c->n_calls++;
                if (r == -EMSGSIZE) {
                        /* Its end came in a later read than the one that passed the limit. */
                        conn_refuse_oversized(c);
                        break;
                }
                if (r > 0 &&
                    (jscan_validate(text, len, &msg) < 0 || jscan_type(msg) != JTYPE_OBJECT)) {
                        close_many(fds, n_fds);
                        r = -EBADMSG;
                }
                if (r < 0) {
                        c->oneway = false;
                        conn_errorf(c, "io.vfiod.ProtocolError", "reason",
                                    r == -ETOOMANYREFS ? "too many file descriptors"
                                                       : "not a JSON object",
                                    NULL);
                } else
                        conn_serve_one(c, msg, fds, n_fds);
        }
        conn_count_fds(c);
        return n;
}

/* What the connection's events call for (revents 0: none, only the calls buffered). */
static void conn_process(struct conn *c, uint32_t revents)
{
        bool active = false;

        if (c->closing && (revents & (EPOLLHUP | EPOLLERR))) {
                conn_free(c);
                return;
        }
        if (revents & EPOLLOUT) {
                int r = varlink_stream_flush(&c->stream);
                if (r < 0 || (r > 0 && c->closing)) {
                        conn_free(c);
                        return;
                }
                conn_account(c);
                active = true;
        }
        /* Calls read while the replies ahead of them were being written go first, as
         * soon as there is room: the client may well send nothing more. */
        unsigned served = conn_serve_buffered(c);

        if ((revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !c->closing && !conn_output_full(c)) {
                /* Nothing whole is buffered here: what is read is bounded by the limit. */
                int r = varlink_stream_read(&c->stream);
                if (r == -EMSGSIZE)
                        /* No message boundary within the limit. */
                        conn_refuse_oversized(c);
                else if (r == 0 && c->stream.eof)
                        /* Gone (a partial call left behind is dropped with its fds); the
                         * replies queued still go out if it only stopped writing. */
                        c->closing = true;
                else if (r < 0 && r != -EAGAIN) {
                        conn_free(c);
                        return;
                } else if (r > 0) {
                        conn_count_fds(c);
                        served += conn_serve_buffered(c);
                }
        }
        if (c->closing && !varlink_stream_has_output(&c->stream)) {
                conn_free(c);
                return;
        }
        if (served > 0 || active)
                conn_arm_idle(c);
        if (conn_watch_partial(c) < 0) {
                conn_free(c);
                return;
        }
        conn_update_events(c);
}

static int on_conn_io(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
        conn_process(userdata, revents);
        return 0;
}

void conn_resume(struct conn *c)
{
        conn_arm_idle(c); /* the answer is activity */
        conn_process(c, 0);
}

static void refuse(int fd, const char *limit, int64_t value)
{
        /* Best effort, never blocking: a refused client learns why. */
        json_object *p = json_object_new_object();
        json_object_object_add(p, "limit", json_object_new_string(limit));
        json_object_object_add(p, "value", json_object_new_int64(value));
        json_object *msg = varlink_error_new("io.vfiod.LimitExceeded", p);
        if (msg) {
                size_t len;
                const char *t =
                        json_object_to_json_string_length(msg, JSON_C_TO_STRING_PLAIN, &len);
                if (t)
                        (void)!send(fd, t, len + 1, MSG_DONTWAIT | MSG_NOSIGNAL);
                json_object_put(msg);
        }
        safe_close(fd);
}

/* Out of fds (ours or the system's): accept() would fail at once again, and the
 * listening socket stays readable, so a retry now is a busy loop. The listening
 * sources are turned off and back on after a pause that doubles while it lasts. */
#define ACCEPT_BACKOFF_MIN_USEC (10u * 1000)
#define ACCEPT_BACKOFF_MAX_USEC (1000u * 1000)

static void listen_set_enabled(struct server *s, int enabled)
{
        for (int i = 0; i < 2; i++)
                if (s->listen[i])
                        (void)sd_event_source_set_enabled(s->listen[i], enabled);
}

static int on_accept_retry(sd_event_source *src, uint64_t usec, void *userdata)
{
        listen_set_enabled(userdata, SD_EVENT_ON);
        return 0;
}

static void accept_pause(struct server *s, int error)
{
        if (s->accept_backoff_usec == 0) {
                /* Once per episode: the retries that fail again say nothing. */
                log_msg(LOG_WARNING,
                        "accept: %s, with %u connections open: pausing new connections "
                        "until fds are free",
                        strerror(error), s->n_conns);
                s->accept_backoff_usec = ACCEPT_BACKOFF_MIN_USEC;
        } else if (s->accept_backoff_usec < ACCEPT_BACKOFF_MAX_USEC)
                s->accept_backoff_usec = 2 * s->accept_backoff_usec < ACCEPT_BACKOFF_MAX_USEC
                                                 ? 2 * s->accept_backoff_usec
                                                 : ACCEPT_BACKOFF_MAX_USEC;
        uint64_t when = clock_usec(CLOCK_MONOTONIC) + s->accept_backoff_usec;
        int r = s->accept_retry ? sd_event_source_set_time(s->accept_retry, when)
                                : sd_event_add_time(s->event, &s->accept_retry, CLOCK_MONOTONIC,
                                                    when, 0, on_accept_retry, s);
        if (r >= 0)
                r = sd_event_source_set_enabled(s->accept_retry, SD_EVENT_ONESHOT);
        if (r < 0)
                return; /* no timer: keep listening rather than stop for good */
        listen_set_enabled(s, SD_EVENT_OFF);
}

static int on_accept(sd_event_source *src, int lfd, uint32_t revents, void *userdata)
{
        struct server *s = userdata;
        bool admin = src == s->listen[1];

        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                        accept_pause(s, errno);
                else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                        log_msg(LOG_WARNING, "accept: %m");
                return 0;
        }
        if (s->accept_backoff_usec > 0) {
                log_msg(LOG_NOTICE, "accepting connections again (%u open)", s->n_conns);
                s->accept_backoff_usec = 0;
        }

        /* Identity is what the kernel recorded at connect time, never a pid looked up
         * later. */
        struct ucred cred;
        socklen_t len = sizeof(cred);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
                log_msg(LOG_WARNING, "SO_PEERCRED: %m");
                safe_close(fd);
                return 0;
        }
        struct uid_usage *u = NULL;
        if (admin) {
                /* Root's own reserve, outside the limits the public socket can fill. */
                if (cred.uid != 0) {
                        refuse(fd, "admin_socket_uid", cred.uid);
                        return 0;
                }
                if (s->n_admin_conns >= SERVER_ADMIN_CONNECTIONS_MAX) {
                        refuse(fd, "admin_connections", SERVER_ADMIN_CONNECTIONS_MAX);
                        return 0;
                }
        } else {
                if (s->n_conns - s->n_admin_conns >= s->cfg.max_conn_total) {
                        refuse(fd, "connections", s->cfg.max_conn_total);
                        return 0;
                }
                u = uid_usage_get(s, cred.uid, true);
                if (!u) {
                        safe_close(fd);
                        return 0;
                }
                if (u->n_conns >= s->cfg.max_conn_per_uid) {
                        refuse(fd, "connections_per_uid", s->cfg.max_conn_per_uid);
                        return 0;
                }
        }

        struct conn *c = calloc(1, sizeof(*c));
        if (!c) {
                safe_close(fd);
                return 0;
        }
        c->server = s;
        c->fd = fd;
        c->admin = admin;
        c->usage = u;
        c->cred = cred;
        c->pidfd = -EBADF;
        int pidfd;
        len = sizeof(pidfd);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0)
                c->pidfd = pidfd;
        gid_t groups[256];
        len = sizeof(groups);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0 && len > 0) {
                c->groups = malloc(len);
                if (c->groups) {
                        memcpy(c->groups, groups, len);
                        c->n_groups = len / sizeof(gid_t);
                }
        }
        varlink_stream_init(&c->stream, fd, s->cfg.max_message);
        c->next = s->conns;
        if (s->conns)
                s->conns->prev = c;
        s->conns = c;
        s->n_conns++;
        if (admin)
                s->n_admin_conns++;
        else
                u->n_conns++;

        if (sd_event_add_io(s->event, &c->io, fd, EPOLLIN, on_conn_io, c) < 0) {
                conn_free(c);
                return 0;
        }
        conn_arm_idle(c);
        log_msg(LOG_DEBUG, "connection from pid %d uid %u%s", (int)cred.pid, cred.uid,
                admin ? " (admin)" : "");
        return 0;
}

/* ---- topology, monitor, udev -------------------------------------------------------- */

int server_topology(struct server *s, const struct topology **ret)
{
        if (!s->topology) {
                int r = topology_scan(s->root, 0, &s->topology);
                if (r < 0)
                        return r;
        }
        *ret = s->topology;
        return 0;
}

int server_topology_for(struct server *s, const struct pci_addr *a, size_t n,
                        const struct topology **ret)
{
        int r = server_topology(s, ret);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                if (topology_find_device(*ret, &a[i]) ||
                    pci_sysfs_device_exists(s->root, &a[i]) < 0)
                        continue; /* known, or not there: the caller says so */
                char name[PCI_ADDR_STRLEN];
                log_msg(LOG_DEBUG, "%s appeared since the last scan: scanning again",
                        pci_addr_format(&a[i], name));
                server_invalidate(s);
                return server_topology(s, ret);
        }
        return 0;
}

void server_invalidate(struct server *s)
{
        /* Connections that have the lists queued keep them until they are written. */
        for (size_t i = 0; i < ELEMENTSOF(s->list_text); i++)
                s->list_text[i] = varlink_text_unref(s->list_text[i]);
        if (s->topology)
                server_note_freed(s, TRIM_AFTER_BYTES);
        s->topology = topology_free(s->topology);
        free(s->nodes);
        s->nodes = NULL;
        s->n_nodes = 0;
        s->have_iommufd = -1;
        s->modules_present = 0;
        cdi_export_changed(s);
}

void conn_set_monitor(struct conn *c, bool on)
{
        if (!on)
                c->monitor_scope = monitor_scope_free(c->monitor_scope);
        if (c->monitor == on)
                return;
        c->monitor = on;
        if (on)
                c->server->n_monitors++;
        else
                c->server->n_monitors--;
}

/* Ends c's Monitor stream: the events it has not begun to read are dropped, and it is
 * told why (after the event it is in the middle of, if any); the connection closes once
 * that is written, or when it has been idle for --idle-timeout. */
static void conn_end_monitor(struct conn *c, const char *limit, size_t value)
{
        size_t dropped = varlink_stream_drop_unsent(&c->stream);
        log_msg(LOG_NOTICE,
                "pid %d uid %u: ending its Monitor stream, %zu bytes of events unread (%s "
                "%zu)",
                (int)c->cred.pid, c->cred.uid, dropped + varlink_stream_pending(&c->stream), limit,
                value);
        conn_set_monitor(c, false);
        c->oneway = false;
        json_object *p = json_object_new_object();
        if (p) {
                json_object_object_add(p, "limit", json_object_new_string(limit));
                json_object_object_add(p, "value", json_object_new_int64((int64_t)value));
        }
        (void)conn_queue(c, varlink_error_new("io.vfiod.LimitExceeded", p), NULL, 0);
        c->closing = true;
        conn_update_events(c);
        conn_arm_idle(c);
        /* All written: the hang-up brings its handler, which frees it (it may be below
         * us on the stack). */
        if (!varlink_stream_has_output(&c->stream))
                (void)shutdown(c->fd, SHUT_RDWR);
}

/* Before an event is queued on c, a Monitor of a uid past its share: ends the uid's
 * streams with the most events unread until it is within it again (or none has any).
 * Returns whether c itself was ended. */
static bool monitor_make_room(struct server *s, struct conn *c)
{
        struct uid_usage *u = c->usage;
        while (uid_over_share(s, u)) {
                struct conn *victim = NULL;
                for (struct conn *m = s->conns; m; m = m->next)
                        if (m->monitor && !m->closing && m->usage == u &&
                            (!victim || varlink_stream_pending(&m->stream) >
                                                varlink_stream_pending(&victim->stream)))
                                victim = m;
                if (!victim || !varlink_stream_has_output(&victim->stream))
                        return false; /* the uid's share is taken by replies, not events */
                bool own =
                        s->cfg.max_output_per_uid > 0 && uid_output(u) >= s->cfg.max_output_per_uid;
                conn_end_monitor(victim, own ? "output_per_uid" : "output",
                                 own ? s->cfg.max_output_per_uid : s->cfg.max_output);
                if (victim == c)
                        return true;
        }
        return false;
}

void server_broadcast(struct server *s, const char *kind, const struct pci_addr *addr,
                      uint64_t lease)
{
        if (s->n_monitors == 0)
                return; /* nobody to tell: no walk through every connection */
        json_object *ev = json_object_new_object(), *p = json_object_new_object();
        if (!ev || !p) {
                json_object_put(ev);
                json_object_put(p);
                return;
        }
        json_object_object_add(ev, "kind", json_object_new_string(kind));
        if (addr) {
                char buf[PCI_ADDR_STRLEN];
                json_object_object_add(ev, "address",
                                       json_object_new_string(pci_addr_format(addr, buf)));
        }
        if (lease)
                json_object_object_add(ev, "lease", json_object_new_int64((int64_t)lease));
        json_object_object_add(ev, "timestamp",
                               json_object_new_int64((int64_t)clock_usec(CLOCK_REALTIME)));
        json_object_object_add(p, "event", ev);
        /* Made into text once, for every monitor. */
        json_object *msg = varlink_reply_new(p, true);
        size_t len;
        const char *text =
                msg ? json_object_to_json_string_length(msg, JSON_C_TO_STRING_PLAIN, &len) : NULL;
        for (struct conn *c = s->conns; text && c; c = c->next) {
                if (!c->monitor || c->closing || !monitor_sees(c, addr, lease))
                        continue;
                /* A monitor that does not keep up is ended, not buffered forever: past
                 * its uid's share, or (with no share to bound it) this far behind. */
                if ((!c->usage || s->cfg.max_output_per_uid == 0) &&
                    varlink_stream_pending(&c->stream) > MONITOR_BACKLOG_MAX) {
                        conn_end_monitor(c, "monitor_backlog", MONITOR_BACKLOG_MAX);
                        continue;
                }
                if (c->usage && monitor_make_room(s, c))
                        continue;
                bool had = varlink_stream_has_output(&c->stream);
                (void)conn_queued(c, varlink_stream_queue_text(&c->stream, text, len, NULL, 0),
                                  had);
        }
        json_object_put(msg);
}

static int on_udev(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct server *s = userdata;
        struct udev_device *d;
        while ((d = udev_monitor_receive_device(s->udev_monitor))) {
                const char *action = udev_device_get_action(d);
                const char *name = udev_device_get_sysname(d);
                struct pci_addr a;
                if (action && name && pci_addr_parse(name, &a) == 0) {
                        const char *kind = strcmp(action, "add") == 0      ? "device-added"
                                           : strcmp(action, "remove") == 0 ? "device-removed"
                                                                           : "device-changed";
                        log_msg(LOG_DEBUG, "udev: %s %s", action, name);
                        server_invalidate(s);
                        server_broadcast(s, kind, &a, 0);
                }
                udev_device_unref(d);
        }
        return 0;
}

static int setup_udev(struct server *s)
{
        if (!s->root->is_host)
                return 0; /* a tree below --root has no uevents */
        struct udev *u = udev_new();
        if (!u)
                return -ENOMEM;
        /* Events that udevd has processed, when udevd runs; otherwise (initramfs,
         * containers, minimal hosts) the kernel's own uevents carry the same news. */
        bool have_udevd = access("/run/udev/control", F_OK) == 0;
        struct udev_monitor *m = udev_monitor_new_from_netlink(u, have_udevd ? "udev" : "kernel");
        if (!m) {
                udev_unref(u);
                log_msg(LOG_WARNING, "no uevent monitor: hotplug is not followed");
                return 0;
        }
        if (udev_monitor_filter_add_match_subsystem_devtype(m, "pci", NULL) < 0 ||
            udev_monitor_enable_receiving(m) < 0) {
                udev_monitor_unref(m);
                udev_unref(u);
                log_msg(LOG_WARNING, "uevent monitor failed: hotplug is not followed");
                return 0;
        }
        s->udev = u;
        s->udev_monitor = m;
        return sd_event_add_io(s->event, &s->udev_source, udev_monitor_get_fd(m), EPOLLIN, on_udev,
                               s);
}

/* ---- sockets ------------------------------------------------------------------------ */

static int mkdir_parents(const char *path)
{
        _cleanup_free_ char *p = strdup(path);
        if (!p)
                return -ENOMEM;
        for (char *slash = strchr(p + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
                *slash = 0;
                if (mkdir(p, 0755) < 0 && errno != EEXIST)
                        return negative_errno();
                *slash = '/';
        }
        return 0;
}

static int bind_socket(const char *path, mode_t mode)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        int r = mkdir_parents(path);
        if (r < 0)
                return r;
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        (void)unlink(path);
        /* Created with no access, opened up once bound: no window with the wrong mode. */
        mode_t old = umask(0777);
        r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
        umask(old);
        if (r < 0)
                return negative_errno();
        if (chmod(path, mode) < 0 || listen(fd, SOMAXCONN) < 0)
                return negative_errno();
        return TAKE_FD(fd);
}

static int setup_sockets(struct server *s)
{
        char **names = NULL;
        int n = sd_listen_fds_with_names(true, &names);
        s->listen_fd[0] = s->listen_fd[1] = -EBADF;
        for (int i = 0; i < n; i++) {
                int fd = SD_LISTEN_FDS_START + i;
                bool admin = names && names[i] && strstr(names[i], "admin");
                if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) <= 0) {
                        log_msg(LOG_WARNING, "ignoring passed fd %d: not a listening UNIX socket",
                                fd);
                        continue;
                }
                (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
                s->listen_fd[admin] = fd;
        }
        for (int i = 0; names && i < n; i++)
                free(names[i]);
        free(names);

        if (s->listen_fd[0] < 0 && s->cfg.socket_path) {
                s->listen_fd[0] = bind_socket(s->cfg.socket_path, 0666);
                if (s->listen_fd[0] < 0) {
                        log_msg(LOG_ERR, "%s: %s", s->cfg.socket_path, strerror(-s->listen_fd[0]));
                        return s->listen_fd[0];
                }
        }
        if (s->listen_fd[1] < 0 && s->cfg.admin_path) {
                s->listen_fd[1] = bind_socket(s->cfg.admin_path, 0600);
                if (s->listen_fd[1] < 0) {
                        log_msg(LOG_ERR, "%s: %s", s->cfg.admin_path, strerror(-s->listen_fd[1]));
                        return s->listen_fd[1];
                }
        }
        for (int i = 0; i < 2; i++) {
                if (s->listen_fd[i] < 0)
                        continue;
                int r = sd_event_add_io(s->event, &s->listen[i], s->listen_fd[i], EPOLLIN,
                                        on_accept, s);
                if (r < 0)
                        return r;
        }
        return 0;
}

void server_fit_fd_limit(struct server_config *cfg)
{
        /* Room for what is not a connection: the listening sockets, the event loop, udev,
         * the lease log, the holders' pidfds and the cdev watches. */
        const rlim_t base = 256, admin = 2 * SERVER_ADMIN_CONNECTIONS_MAX;
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return;
        rlim_t need = base + admin + 2 * (rlim_t)cfg->max_conn_total + cfg->max_fds_in_flight;
        if (rl.rlim_cur >= need)
                return;
        rlim_t cur = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
                cur = rl.rlim_cur;
        if (cur >= need)
                return;
        /* Short of the hard limit: serve fewer connections rather than run out of fds,
         * a quarter of what is left going to fds in flight. */
        rlim_t left = cur > base + admin ? cur - base - admin : 0;
        if (cfg->max_fds_in_flight > left / 4)
                cfg->max_fds_in_flight = left / 4;
        rlim_t fit = (left - cfg->max_fds_in_flight) / 2;
        unsigned old = cfg->max_conn_total;
        cfg->max_conn_total = fit > 0 ? (unsigned)fit : 1;
        log_msg(LOG_WARNING,
                "RLIMIT_NOFILE %llu (hard %llu) is short of the %llu fds that --max-connections "
                "%u needs: serving at most %u connections and %zu fds in flight (raise "
                "LimitNOFILE=)",
                (unsigned long long)cur, (unsigned long long)rl.rlim_max, (unsigned long long)need,
                old, cfg->max_conn_total, cfg->max_fds_in_flight);
}

int server_new(const struct server_config *cfg, struct server **ret)
{
        struct server *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->cfg = *cfg;
        s->lease_dirfd = -EBADF;
        s->lease_log.fd = -EBADF;
        s->listen_fd[0] = s->listen_fd[1] = -EBADF;
        s->next_lease_id = 1;
        s->have_iommufd = -1;
        s->dev_char_fd = -EBADF;
        cdev_watches_init(&s->cdev_watches);
        /* A loop of its own, not the thread's default one: sd-event checks the thread of a
         * default loop with a gettid() call at every iteration. */
        int r = sd_event_new(&s->event);
        if (r < 0)
                goto fail;
        r = root_open(cfg->root, &s->root);
        if (r < 0)
                goto fail;
        *ret = s;
        return 0;
fail:
        server_free(s);
        return r;
}

struct server *server_free(struct server *s)
{
        if (!s)
                return NULL;
        jobs_free(s);
        cdi_export_done(s);
        sd_event_source_disable_unref(s->stop_timer);
        while (s->conns)
                conn_free(s->conns);
        for (size_t i = 0; i < s->n_leases; i++) {
                holder_unref(s->leases[i]->holder);
                lease_done(s->leases[i]);
                free(s->leases[i]);
        }
        free(s->leases);
        free(s->holders);
        sd_event_source_disable_unref(s->accept_retry);
        for (int i = 0; i < 2; i++) {
                sd_event_source_disable_unref(s->listen[i]);
                safe_close(s->listen_fd[i]);
        }
        sd_event_source_disable_unref(s->udev_source);
        if (s->udev_monitor)
                udev_monitor_unref(s->udev_monitor);
        if (s->udev)
                udev_unref(s->udev);
        server_invalidate(s);
        sd_event_source_disable_unref(s->wake);
        sd_event_source_disable_unref(s->trim);
        free(s->shared.v);
        policy_free(s->policy);
        lease_log_close(&s->lease_log);
        safe_close(s->lease_dirfd);
        safe_close(s->dev_char_fd);
        sd_event_source_disable_unref(s->orphan_source);
        sd_event_source_disable_unref(s->orphan_timer);
        free(s->orphans);
        cdev_watches_done(&s->cdev_watches);
        root_free(s->root);
        for (size_t i = 0; i < s->n_uids; i++) {
                free(s->uids[i]->shared.v);
                free(s->uids[i]);
        }
        free(s->uids);
        sd_event_unref(s->event);
        free(s);
        return NULL;
}

int server_start(struct server *s)
{
        _cleanup_free_ char *detail = NULL;
        int r = policy_load(s->cfg.policy_path, &s->policy, &detail);
        if (r == -ENOENT) {
                log_msg(LOG_NOTICE, "%s: no policy file: only the admin socket grants anything",
                        s->cfg.policy_path);
                r = policy_parse("{\"rules\": []}", &s->policy, NULL);
        }
        if (r < 0) {
                log_msg(LOG_ERR, "%s: %s", s->cfg.policy_path, detail_or_strerror(detail, r));
                return r;
        }

        /* The runtime directory holds the public socket too: others must be able to
         * reach it. The lease records below it are the daemon's alone. */
        r = mkdir_parents(s->cfg.runtime_dir);
        if (r < 0 || (mkdir(s->cfg.runtime_dir, 0755) < 0 && errno != EEXIST)) {
                r = r < 0 ? r : negative_errno();
                log_msg(LOG_ERR, "%s: %s", s->cfg.runtime_dir, strerror(-r));
                return r;
        }
        _cleanup_close_ int rt = open(s->cfg.runtime_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (rt < 0 || ((mkdirat(rt, "leases", 0700) < 0 && errno != EEXIST)) ||
            (s->lease_dirfd = openat(rt, "leases", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
            (r = lease_log_open(s->lease_dirfd, &s->lease_log)) < 0) {
                r = r < 0 ? r : negative_errno();
                log_msg(LOG_ERR, "%s/leases: %s", s->cfg.runtime_dir, strerror(-r));
                return r;
        }

        r = journal_recover(s);
        if (r < 0)
                return r;
        r = leases_recover(s);
        if (r < 0)
                return r;
        r = setup_udev(s);
        if (r < 0)
                return r;
        cdi_export_start(s);
        return setup_sockets(s);
}
