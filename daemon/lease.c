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

void lease_done(struct lease *l)
{
        free(l->devices);
        l->devices = NULL;
        free(l->device_release);
        l->device_release = NULL;
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
 * write() to tmpfs, so a daemon killed at any point leaves whole lines, and at most an
 * unfinished last one (a lease whose fds never left: ignored). */
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

static int lease_list_find(const struct lease *list, size_t n, uint64_t id)
{
        for (size_t i = 0; i < n; i++)
                if (list[i].id == id)
                        return (int)i;
        return -1;
}

int lease_load_all(int dirfd, struct lease **ret, size_t *ret_n, char ***ret_bad)
{
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r = dir_read_file(dirfd, LEASE_LOG, SIZE_MAX / 2, &text, &len);
        if (r == -ENOENT)
                r = 0;
        if (r < 0)
                return r;

        struct lease *list = NULL;
        size_t n = 0, n_bad = 0, lineno = 0;
        char **bad = NULL;
        for (size_t at = 0; r >= 0 && text && at < len;) {
                char *nl = memchr(text + at, '\n', len - at);
                if (!nl)
                        break; /* unfinished: the daemon died writing it, its fds never left */
                *nl = 0;
                char *line = text + at;
                at = (size_t)(nl - text) + 1;
                lineno++;
                if (line[0] == '-') {
                        char *end;
                        errno = 0;
                        unsigned long long id = strtoull(line + 1, &end, 10);
                        int i = errno == 0 && end != line + 1 && !*end
                                        ? lease_list_find(list, n, id)
                                        : -2;
                        if (i >= 0) {
                                lease_done(&list[i]);
                                list[i] = list[--n];
                                continue;
                        }
                        if (i == -1)
                                continue; /* ended twice: harmless */
                } else if (line[0] == '+' && nl - line - 1 <= LEASE_LINE_MAX) {
                        struct lease l;
                        json_object *o = json_tokener_parse(line + 1);
                        int k = o ? lease_from_json(o, &l) : -EBADMSG;
                        json_object_put(o);
                        if (k == 0) {
                                int i = lease_list_find(list, n, l.id);
                                if (i >= 0) { /* granted again under the same id: the newer */
                                        lease_done(&list[i]);
                                        list[i] = l;
                                        continue;
                                }
                                struct lease *p = reallocarray(list, n + 1, sizeof(*list));
                                if (!p) {
                                        lease_done(&l);
                                        r = -ENOMEM;
                                        break;
                                }
                                list = p;
                                list[n++] = l;
                                continue;
                        }
                }
                char what[48];
                snprintf(what, sizeof(what), LEASE_LOG ":%zu", lineno);
                r = strv_push(&bad, &n_bad, what);
        }
        if (r < 0) {
                for (size_t i = 0; i < n; i++)
                        lease_done(&list[i]);
                free(list);
                strv_free(bad);
                return r;
        }
        *ret = list;
        *ret_n = n;
        *ret_bad = bad;
        return 0;
}
