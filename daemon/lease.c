/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "lease.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "macro.h"
#include "root.h"
#include "strv.h"
#include "string-table.h"

static const char *const lease_device_state_table[_LEASE_DEVICE_STATE_MAX] = {
        [LEASE_DEVICE_HELD] = "held",
        [LEASE_DEVICE_RETURNED] = "returned",
        [LEASE_DEVICE_RESTORING] = "restoring",
        [LEASE_DEVICE_WAITING] = "waiting for its files to close",
};

DEFINE_STRING_TABLE_TO_STRING(lease_device_state, enum lease_device_state);

void lease_done(struct lease *l)
{
        free(l->devices);
        l->devices = NULL;
        free(l->device_release);
        l->device_release = NULL;
        free(l->returning);
        l->returning = NULL;
        l->n_devices = 0;
        node_grants_free(l->grants, l->n_grants);
        l->grants = NULL;
        l->n_grants = 0;
}

enum release_action lease_device_release(const struct lease *l, size_t i)
{
        return l->device_release && i < l->n_devices ? l->device_release[i] : l->on_release;
}

static int get_int(json_object *o, const char *key, int64_t min, int64_t *ret)
{
        json_object *v;
        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return -EBADMSG;
        int64_t x = json_object_get_int64(v);
        if (x < min)
                return -EBADMSG;
        *ret = x;
        return 0;
}

void lease_write_json(const struct lease *l, bool with_starttime, struct jbuf *b)
{
        char buf[PCI_ADDR_STRLEN];
        jbuf_lit(b, "{\"id\":");
        jbuf_int(b, (int64_t)l->id);
        jbuf_lit(b, ",\"uid\":");
        jbuf_int(b, l->uid);
        jbuf_lit(b, ",\"pid\":");
        jbuf_int(b, l->pid);
        if (with_starttime) {
                jbuf_lit(b, ",\"starttime\":");
                jbuf_int(b, (int64_t)l->starttime);
        }
        jbuf_lit(b, ",\"backend\":");
        jbuf_str(b, vfio_backend_to_string(l->backend));
        jbuf_lit(b, ",\"on_release\":");
        jbuf_str(b, release_action_to_string(l->on_release));
        jbuf_lit(b, ",\"devices\":[");
        for (size_t i = 0; i < l->n_devices; i++) {
                if (i > 0)
                        jbuf_lit(b, ",");
                jbuf_str(b, pci_addr_format(&l->devices[i], buf));
        }
        jbuf_lit(b, "]");
        if (l->device_release) {
                jbuf_lit(b, ",\"device_release\":[");
                for (size_t i = 0; i < l->n_devices; i++) {
                        if (i > 0)
                                jbuf_lit(b, ",");
                        jbuf_str(b, release_action_to_string(l->device_release[i]));
                }
                jbuf_lit(b, "]");
        }
        if (l->n_grants > 0) {
                jbuf_lit(b, ",\"grants\":[");
                for (size_t i = 0; i < l->n_grants; i++) {
                        const struct node_grant *g = &l->grants[i];
                        if (i > 0)
                                jbuf_lit(b, ",");
                        jbuf_lit(b, "{\"group\":");
                        jbuf_int(b, g->group);
                        jbuf_lit(b, ",\"to\":");
                        jbuf_int(b, g->to);
                        if (with_starttime) { /* the record: what to put back */
                                jbuf_lit(b, ",\"uid\":");
                                jbuf_int(b, g->was.uid);
                                jbuf_lit(b, ",\"gid\":");
                                jbuf_int(b, g->was.gid);
                                jbuf_lit(b, ",\"mode\":");
                                jbuf_int(b, g->was.mode);
                                if (g->was.acl) {
                                        jbuf_lit(b, ",\"acl\":");
                                        jbuf_str(b, g->was.acl);
                                }
                        }
                        jbuf_lit(b, "}");
                }
                jbuf_lit(b, "]");
        }
        if (with_starttime && l->memlock_raised) {
                jbuf_lit(b, ",\"memlock\":[");
                jbuf_int(b, l->memlock.was_cur);
                jbuf_lit(b, ",");
                jbuf_int(b, l->memlock.was_max);
                jbuf_lit(b, ",");
                jbuf_int(b, l->memlock.set_cur);
                jbuf_lit(b, ",");
                jbuf_int(b, l->memlock.set_max);
                jbuf_lit(b, "]");
        }
        if (l->adopted)
                jbuf_lit(b, ",\"adopted\":true}");
        else
                jbuf_lit(b, ",\"adopted\":false}");
}

static int memlock_from_json(json_object *arr, struct lease_memlock *ret)
{
        int64_t v[4];
        if (!json_object_is_type(arr, json_type_array) || json_object_array_length(arr) != 4)
                return -EBADMSG;
        for (size_t i = 0; i < 4; i++) {
                json_object *x = json_object_array_get_idx(arr, i);
                if (!json_object_is_type(x, json_type_int) ||
                    (v[i] = json_object_get_int64(x)) < -1)
                        return -EBADMSG;
        }
        *ret = (struct lease_memlock){v[0], v[1], v[2], v[3]};
        return 0;
}

int lease_from_json(json_object *o, struct lease *ret)
{
        struct lease l = {};
        int64_t id, uid, pid, start;
        json_object *devs, *v;
        if (!json_object_is_type(o, json_type_object) || get_int(o, "id", 1, &id) < 0 ||
            get_int(o, "uid", 0, &uid) < 0 || get_int(o, "pid", 1, &pid) < 0 ||
            get_int(o, "starttime", 0, &start) < 0 || uid >= UINT32_MAX || pid > INT32_MAX ||
            !json_object_object_get_ex(o, "devices", &devs) ||
            !json_object_is_type(devs, json_type_array) || json_object_array_length(devs) == 0)
                return -EBADMSG;
        l.id = (uint64_t)id;
        l.uid = (uid_t)uid;
        l.pid = (pid_t)pid;
        l.starttime = (uint64_t)start;
        l.backend = vfio_backend_from_string(
                json_object_object_get_ex(o, "backend", &v) ? json_object_get_string(v) : NULL);
        l.on_release = release_action_from_string(
                json_object_object_get_ex(o, "on_release", &v) ? json_object_get_string(v) : NULL);
        if (l.backend < 0 || l.on_release < 0)
                return -EBADMSG;
        size_t n = json_object_array_length(devs);
        l.devices = calloc(n, sizeof(*l.devices));
        if (!l.devices)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                const char *s = json_object_get_string(json_object_array_get_idx(devs, i));
                if (!s || pci_addr_parse(s, &l.devices[i]) < 0) {
                        free(l.devices);
                        return -EBADMSG;
                }
        }
        l.n_devices = n;
        json_object *rel;
        if (json_object_object_get_ex(o, "device_release", &rel)) {
                if (!json_object_is_type(rel, json_type_array) ||
                    json_object_array_length(rel) != n) {
                        free(l.devices);
                        return -EBADMSG;
                }
                l.device_release = calloc(n, sizeof(*l.device_release));
                if (!l.device_release) {
                        free(l.devices);
                        return -ENOMEM;
                }
                for (size_t i = 0; i < n; i++) {
                        l.device_release[i] = release_action_from_string(
                                json_object_get_string(json_object_array_get_idx(rel, i)));
                        if (l.device_release[i] < 0) {
                                lease_done(&l);
                                return -EBADMSG;
                        }
                }
        }
        json_object *extra;
        int r = 0;
        if (json_object_object_get_ex(o, "grants", &extra))
                r = node_grants_from_json(extra, &l.grants, &l.n_grants);
        if (r == 0 && json_object_object_get_ex(o, "memlock", &extra)) {
                r = memlock_from_json(extra, &l.memlock);
                l.memlock_raised = r == 0;
        }
        if (r < 0) {
                lease_done(&l);
                return r;
        }
        *ret = l;
        return 0;
}

int process_starttime(const struct root *root, pid_t pid, uint64_t *ret)
{
        char path[64];
        snprintf(path, sizeof(path), "proc/%d/stat", (int)pid);
        /* One read: the line is far shorter than the buffer (and this runs on every
         * Acquire). */
        _cleanup_close_ int fd = root_openat(root, path, O_RDONLY | O_NOCTTY);
        if (fd == -ENOENT)
                return -ESRCH;
        if (fd < 0)
                return fd;
        char text[1024];
        ssize_t len = read(fd, text, sizeof(text) - 1);
        if (len < 0)
                return errno == ESRCH ? -ESRCH : negative_errno();
        if ((size_t)len >= sizeof(text) - 1)
                return -EBADMSG;
        text[len] = 0;
        /* The command name (field 2) may hold spaces and parentheses: count fields from
         * the last ')'. Field 22 is the 20th after it. */
        char *p = strrchr(text, ')');
        if (!p)
                return -EBADMSG;
        p++;
        for (int field = 3; field < 22; field++) {
                p = strchr(p + 1, ' ');
                if (!p)
                        return -EBADMSG;
        }
        char *end;
        errno = 0;
        unsigned long long v = strtoull(p + 1, &end, 10);
        if (errno || end == p + 1)
                return -EBADMSG;
        *ret = v;
        return 0;
}

int process_pidfd_verified(const struct root *root, pid_t pid, uint64_t starttime, int *ret)
{
        /* Open first, check second: if the start time still matches after the pidfd
         * exists, the pidfd is that process's. */
        _cleanup_close_ int fd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (fd < 0)
                return errno == ESRCH ? -ESRCH : negative_errno();
        uint64_t now;
        int r = process_starttime(root, pid, &now);
        if (r < 0)
                return r;
        if (now != starttime)
                return -ESRCH;
        *ret = TAKE_FD(fd);
        return 0;
}

/* The log: "+" and a lease's JSON on a line when it is granted, "-" and its id when it
 * ends. One append per event, on a file kept open: a lease costs the daemon one write()
 * at each end, not a file's create, write, rename and unlink. A line is written by one
 * write() to tmpfs before the fds leave, but a write can still stop short (a fatal
 * signal between pages, or the file system full, when the newline that should end the
 * piece may not fit either), and the next append then goes on the same line. The reader
 * therefore takes nothing for granted about a line:
 *   - `+{"id":` starts every record and can occur nowhere inside one (a quote inside a
 *     JSON string is escaped), so a line is cut into records there: a whole record
 *     appended after a cut-off piece is read as any other;
 *   - a cut-off record keeps what was whole before the cut: a member whose value ended
 *     (a number counts as ended only when a delimiter follows it: "pid":12 may be 1234
 *     cut short), and of the device list the addresses before the cut. The writer puts
 *     id, uid, pid, starttime, backend and on_release before the devices (a field added
 *     later goes after them), so a piece that names a device also names its holder: it
 *     is recovered as a lease over the devices it names, and adopted or ended like any
 *     other, by its holder's pid and start time. Its fds may never have left (the write
 *     did not finish); the devices are then held until that process is gone, not handed
 *     out twice. A device past the cut is not known, and that is reported;
 *   - an end record glued after a cut-off piece is not recognised (a '-' could belong
 *     to the piece): the lease it ended is adopted or ended again by its holder check;
 *   - whatever cannot be recovered is reported with its raw text, never skipped
 *     silently. */
#define LEASE_LOG      "log"
#define LEASE_LINE_MAX 65536
/* Rewritten with only the live leases once it holds this many lines more than they. */
#define LEASE_LOG_SLACK 256

/* (Re)opens the file under the log's name for appends. On failure the log has no fd:
 * an append to a file that is no longer the log would be lost, and one that fails keeps
 * a lease from being granted. */
static int log_reopen(struct lease_log *log)
{
        int fd = openat(log->dirfd, LEASE_LOG,
                        O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        int r = fd < 0 ? negative_errno() : 0;
        safe_close(log->fd);
        log->fd = fd < 0 ? -EBADF : fd;
        return r;
}

int lease_log_open(int dirfd, struct lease_log *ret)
{
        *ret = (struct lease_log){.dirfd = dirfd, .fd = -EBADF};
        return log_reopen(ret);
}

void lease_log_close(struct lease_log *log)
{
        log->fd = safe_close(log->fd);
}

static int log_append(struct lease_log *log, const char *line, size_t len)
{
        int r = log->fd < 0 ? log_reopen(log) : 0; /* after a failed reopen */
        if (r < 0)
                return r;
        ssize_t n = write(log->fd, line, len);
        if (n < 0)
                return negative_errno();
        if ((size_t)n != len) {
                /* Out of space in the middle of a line: cut it off, so the next line
                 * starts on its own (the reader drops the piece with the bad line). */
                (void)!write(log->fd, "\n", 1);
                return -ENOSPC;
        }
        log->n_lines++;
        return 0;
}

int lease_log_add(struct lease_log *log, const struct lease *l)
{
        struct jbuf b = {};
        jbuf_lit(&b, "+");
        lease_write_json(l, true, &b);
        jbuf_lit(&b, "\n");
        int r = b.oom ? -ENOMEM : log_append(log, b.p, b.len);
        jbuf_done(&b);
        return r;
}

int lease_log_rewrite(struct lease_log *log, struct lease *const *live, size_t n)
{
        struct jbuf b = {};
        for (size_t i = 0; i < n; i++) {
                jbuf_lit(&b, "+");
                lease_write_json(live[i], true, &b);
                jbuf_lit(&b, "\n");
        }
        if (b.oom) {
                jbuf_done(&b);
                return -ENOMEM;
        }
        /* A new file under the name, then appends go to it. */
        int r = dir_write_replace(log->dirfd, LEASE_LOG, b.p ? b.p : "", b.len, false);
        jbuf_done(&b);
        if (r < 0)
                return r;
        /* The old fd is the replaced file's: it goes even if the new one cannot be
         * opened. */
        log->n_lines = n;
        return log_reopen(log);
}

int lease_log_end(struct lease_log *log, uint64_t id, struct lease *const *live, size_t n_live)
{
        if (log->n_lines >= n_live + LEASE_LOG_SLACK) {
                /* None left: an empty log says so in one call, and appends go on from 0.
                 * (Not at every last end: tmpfs frees the page, and the next grant pays
                 * for a new one.) */
                if (n_live == 0) {
                        if (ftruncate(log->fd, 0) < 0)
                                return negative_errno();
                        log->n_lines = 0;
                        return 0;
                }
                return lease_log_rewrite(log, live, n_live);
        }
        char line[32];
        int k = snprintf(line, sizeof(line), "-%" PRIu64 "\n", id);
        return log_append(log, line, (size_t)k);
}

/* Scanning a JSON text that may be cut off anywhere (json_cut_complete()). */
struct cut_scan {
        char stack[16];    /* '{' or '[' of each open container */
        bool want_key[16]; /* an object's next string is a key */
        size_t depth;
        const char *key; /* the top object's member being read */
        size_t key_len;
        const char *const *keys; /* the members to flag in whole when their value ends */
        size_t n_keys;
        uint32_t whole;
        /* The last point the text can be closed at: its length, the containers open there
         * and the members whole by then. */
        size_t safe_at, safe_depth;
        char safe_stack[16];
        uint32_t safe_whole;
};

static void cut_scan_safe(struct cut_scan *c, size_t at)
{
        c->safe_at = at;
        c->safe_depth = c->depth;
        memcpy(c->safe_stack, c->stack, c->depth);
        c->safe_whole = c->whole;
}

/* A value ended just before at (at its container's level). */
static void cut_scan_value_end(struct cut_scan *c, size_t at)
{
        if (c->depth == 1 && c->key)
                for (size_t k = 0; k < c->n_keys && k < 32; k++)
                        if (strlen(c->keys[k]) == c->key_len &&
                            strncmp(c->key, c->keys[k], c->key_len) == 0)
                                c->whole |= 1u << k;
        cut_scan_safe(c, at);
}

/* A JSON object cut off at len made whole: cut back to the last point where a value, or
 * the opening of an object or array, ended, and the containers open there closed. The
 * members of the top object whose value was whole are flagged in *ret_whole by their
 * index in keys[] (at most 32). NULL when the text is no object, or on OOM. */
static char *json_cut_complete(const char *text, size_t len, const char *const *keys, size_t n_keys,
                               uint32_t *ret_whole)
{
        struct cut_scan c = {.keys = keys, .n_keys = n_keys};
        bool in_string = false, escaped = false, in_scalar = false;
        size_t string_start = 0;

        if (len == 0 || text[0] != '{')
                return NULL;
        for (size_t i = 0; i < len && !(i > 0 && c.depth == 0); i++) {
                char ch = text[i];
                if (in_string) {
                        if (escaped)
                                escaped = false;
                        else if (ch == '\\')
                                escaped = true;
                        else if (ch == '"') {
                                in_string = false;
                                bool is_key =
                                        c.stack[c.depth - 1] == '{' && c.want_key[c.depth - 1];
                                if (!is_key)
                                        cut_scan_value_end(&c, i + 1);
                                else {
                                        c.want_key[c.depth - 1] = false;
                                        if (c.depth == 1) {
                                                c.key = text + string_start;
                                                c.key_len = i - string_start;
                                        }
                                }
                        }
                        continue;
                }
                bool delimiter = ch == ',' || ch == '}' || ch == ']' || ch == ' ' || ch == '\t';
                if (in_scalar && delimiter) {
                        /* A number or literal is known whole only now: "pid":12 at the
                         * cut may have been 1234. */
                        in_scalar = false;
                        cut_scan_value_end(&c, i);
                }
                switch (ch) {
                case '"':
                        in_string = true;
                        string_start = i + 1;
                        break;
                case '{':
                case '[':
                        if (c.depth == sizeof(c.stack))
                                goto done;
                        c.want_key[c.depth] = ch == '{';
                        c.stack[c.depth++] = ch;
                        cut_scan_safe(&c, i + 1);
                        break;
                case '}':
                case ']':
                        if (c.depth == 0 || c.stack[c.depth - 1] != (ch == '}' ? '{' : '['))
                                goto done;
                        c.depth--;
                        cut_scan_value_end(&c, i + 1);
                        break;
                case ',':
                        if (c.depth > 0 && c.stack[c.depth - 1] == '{')
                                c.want_key[c.depth - 1] = true;
                        break;
                default:
                        if (!delimiter && ch != ':' && ch != '\n' && ch != '\r')
                                in_scalar = true; /* digits, '-', true, false, null */
                        break;
                }
        }
done:;
        char *out = malloc(c.safe_at + c.safe_depth + 1);
        if (!out)
                return NULL;
        memcpy(out, text, c.safe_at);
        size_t n = c.safe_at;
        for (size_t k = c.safe_depth; k > 0; k--)
                out[n++] = c.safe_stack[k - 1] == '{' ? '}' : ']';
        out[n] = 0;
        *ret_whole = c.safe_whole;
        return out;
}

/* Up to 256 bytes of a line for the daemon's log, non-printable bytes as \xNN. */
static char *raw_excerpt(const char *text, size_t len)
{
        size_t show = len < 256 ? len : 256;
        char *out = malloc(show * 4 + 64), *p = out;
        if (!out)
                return NULL;
        for (size_t i = 0; i < show; i++) {
                unsigned char ch = (unsigned char)text[i];
                if (ch >= 0x20 && ch < 0x7f && ch != '\\')
                        *p++ = (char)ch;
                else
                        p += sprintf(p, "\\x%02x", ch);
        }
        if (show < len)
                sprintf(p, "... (%zu bytes)", len);
        else
                *p = 0;
        return out;
}

enum { KEY_DEVICES, KEY_DEVICE_RELEASE };

/* A record cut off at len (after its '+'): the lease its whole part names, with what
 * was lost told in *ret_note; -EBADMSG when it names no holder and no whole device. */
static int lease_recover_cut(const char *text, size_t len, struct lease *ret, char **ret_note)
{
        static const char *const keys[] = {
                [KEY_DEVICES] = "devices", [KEY_DEVICE_RELEASE] = "device_release"};
        uint32_t whole = 0;
        _cleanup_free_ char *fixed = json_cut_complete(text, len, keys, ELEMENTSOF(keys), &whole);
        if (!fixed)
                return -EBADMSG;
        json_object *o = json_tokener_parse(fixed), *rel;
        if (!o)
                return -EBADMSG;
        /* Per-device choices cut short: every device follows the lease's own. */
        bool rel_cut = json_object_object_get_ex(o, "device_release", &rel) &&
                       !(whole & (1u << KEY_DEVICE_RELEASE));
        if (rel_cut)
                json_object_object_del(o, "device_release");
        struct lease l;
        int r = lease_from_json(o, &l);
        json_object_put(o);
        if (r < 0)
                return r;
        char *note = NULL;
        if (!(whole & (1u << KEY_DEVICES)))
                r = asprintf(&note,
                             "its device list is cut off after %zu device(s): a device past "
                             "them is not known",
                             l.n_devices);
        else
                r = asprintf(&note, "cut off after its devices%s",
                             rel_cut ? " (each returns as the lease's on_release says)" : "");
        if (r < 0) {
                lease_done(&l);
                return -ENOMEM;
        }
        *ret = l;
        *ret_note = note;
        return 0;
}

static int lease_list_find(const struct lease *list, size_t n, uint64_t id)
{
        for (size_t i = 0; i < n; i++)
                if (list[i].id == id)
                        return (int)i;
        return -1;
}

/* The leases read so far, and what could not be read whole. */
struct log_reader {
        struct lease *list;
        size_t n;
        char **bad;
        size_t n_bad;
        size_t lineno;
};

/* Adds a lease; granted again under the same id: the newer record counts. */
static int reader_add(struct log_reader *rd, struct lease *l)
{
        int i = lease_list_find(rd->list, rd->n, l->id);
        if (i >= 0) {
                lease_done(&rd->list[i]);
                rd->list[i] = *l;
                return 0;
        }
        struct lease *p = reallocarray(rd->list, rd->n + 1, sizeof(*p));
        if (!p) {
                lease_done(l);
                return -ENOMEM;
        }
        rd->list = p;
        rd->list[rd->n++] = *l;
        return 0;
}

/* "log:LINE: what: raw text". */
static int reader_report(struct log_reader *rd, const char *text, size_t len, const char *what)
{
        _cleanup_free_ char *raw = raw_excerpt(text, len);
        if (!raw)
                return -ENOMEM;
        return strv_pushf(&rd->bad, &rd->n_bad, LEASE_LOG ":%zu: %s: %s", rd->lineno, what, raw);
}

/* One record: text[0..len), no newline; cut: known to stop short (another record follows
 * it on its line, or the file ends in it). */
static int reader_record(struct log_reader *rd, char *text, size_t len, bool cut)
{
        if (text[0] == '-') {
                char *end;
                errno = 0;
                unsigned long long id = strtoull(text + 1, &end, 10);
                if (cut)
                        /* "-12" may have been "-123": nothing is ended on its word. */
                        return reader_report(rd, text, len,
                                             "an end record cut off, not followed (the "
                                             "lease it ended, if any, is checked by its "
                                             "holder like a live one)");
                if (errno != 0 || end == text + 1 || end != text + len)
                        return reader_report(rd, text, len, "unreadable");
                int i = lease_list_find(rd->list, rd->n, id);
                if (i >= 0) {
                        lease_done(&rd->list[i]);
                        rd->list[i] = rd->list[--rd->n];
                }
                return 0; /* or ended twice: harmless */
        }
        if (text[0] != '+')
                return reader_report(rd, text, len, "unreadable");

        struct lease l;
        int r;
        if (!cut && len - 1 <= LEASE_LINE_MAX) {
                char saved = text[len];
                text[len] = 0;
                json_object *o = json_tokener_parse(text + 1);
                text[len] = saved;
                if (o) {
                        r = lease_from_json(o, &l);
                        json_object_put(o);
                        if (r == -ENOMEM)
                                return r;
                        if (r < 0)
                                return reader_report(rd, text, len, "not a whole lease record");
                        return reader_add(rd, &l);
                }
                /* Not JSON: cut off, with a newline after the piece. */
        }
        _cleanup_free_ char *note = NULL;
        r = lease_recover_cut(text + 1, len - 1, &l, &note);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return reader_report(rd, text, len,
                                     "a record cut off before it names its holder and a "
                                     "device: nothing is held for it");
        _cleanup_free_ char *what = NULL;
        if (asprintf(&what, "a record cut off, recovered as lease %" PRIu64 " of pid %d (%s)", l.id,
                     (int)l.pid, note) < 0) {
                lease_done(&l);
                return -ENOMEM;
        }
        r = reader_report(rd, text, len, what);
        if (r < 0) {
                lease_done(&l);
                return r;
        }
        return reader_add(rd, &l);
}

int lease_load_all(int dirfd, struct lease **ret, size_t *ret_n, char ***ret_bad)
{
        static const char start[] = "+{\"id\":";
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r = dir_read_file(dirfd, LEASE_LOG, SIZE_MAX / 2, &text, &len);
        if (r == -ENOENT)
                r = 0;
        if (r < 0)
                return r;

        struct log_reader rd = {};
        for (size_t at = 0; r >= 0 && text && at < len;) {
                char *line = text + at, *nl = memchr(line, '\n', len - at);
                size_t line_len = nl ? (size_t)(nl - line) : len - at;
                at += line_len + 1;
                rd.lineno++;
                if (line_len == 0)
                        continue;
                /* Records glued after a piece cut off: each starts where a record does. */
                for (size_t p = 0; r >= 0 && p < line_len;) {
                        size_t q = p + 1;
                        while (q < line_len && !(line_len - q >= sizeof(start) - 1 &&
                                                 memcmp(line + q, start, sizeof(start) - 1) == 0))
                                q++;
                        r = reader_record(&rd, line + p, q - p, q < line_len || !nl);
                        p = q;
                }
        }
        if (r < 0) {
                for (size_t i = 0; i < rd.n; i++)
                        lease_done(&rd.list[i]);
                free(rd.list);
                strv_free(rd.bad);
                return r;
        }
        *ret = rd.list;
        *ret_n = rd.n;
        *ret_bad = rd.bad;
        return 0;
}
