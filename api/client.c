/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fd-util.h"
#include "macro.h"
#include "json-text.h"
#include "varlink.h"
#include "vfiod-client.h"

/* Replies can be large (every PCI function of a big host); calls are small. */
#define CLIENT_MAX_REPLY (64u * 1024 * 1024)

struct vfiod_client {
        int fd;
        struct varlink_stream stream;
};

int vfiod_client_connect(const char *path, struct vfiod_client **ret)
{
        if (!path)
                path = getenv("VFIOD_SOCKET");
        if (!path || !*path)
                path = VFIOD_SOCKET_PATH;

        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);

        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return negative_errno();

        struct vfiod_client *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->fd = TAKE_FD(fd);
        varlink_stream_init(&c->stream, c->fd, CLIENT_MAX_REPLY);
        *ret = c;
        return 0;
}

struct vfiod_client *vfiod_client_free(struct vfiod_client *c)
{
        if (!c)
                return NULL;
        varlink_stream_done(&c->stream);
        safe_close(c->fd);
        free(c);
        return NULL;
}

static int wait_fd(int fd, short events)
{
        struct pollfd p = {.fd = fd, .events = events};
        for (;;) {
                int r = poll(&p, 1, -1);
                if (r >= 0)
                        return 0;
                if (errno != EINTR)
                        return negative_errno();
        }
}

/* Sends one call (text, without its NUL) with copies of fds, and waits for the reply:
 * its text stays valid until the next exchange on c; the fds that came with it are the
 * caller's. */
static int exchange(struct vfiod_client *c, const char *text, size_t len, const int *fds,
                    size_t n_fds, const char **ret, size_t *ret_len, int *ret_fds,
                    size_t *ret_n_fds)
{
        /* The stream closes the fds it sends: give it copies. */
        int dups[VARLINK_FDS_MAX] = {};
        if (n_fds > VARLINK_FDS_MAX)
                return -E2BIG;
        for (size_t i = 0; i < n_fds; i++) {
                dups[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
                if (dups[i] < 0) {
                        int r = negative_errno();
                        close_many(dups, i);
                        return r;
                }
        }
        int r = varlink_stream_queue_text(&c->stream, text, len, dups, n_fds);
        if (r < 0) {
                close_many(dups, n_fds);
                return r;
        }
        while ((r = varlink_stream_flush(&c->stream)) == 0) {
                r = wait_fd(c->fd, POLLOUT);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        for (;;) {
                r = varlink_stream_next_text(&c->stream, ret, ret_len, ret_fds, ret_n_fds);
                if (r != 0)
                        return r < 0 ? r : 0;
                /* Wait in poll(), not in a blocking recvmsg(): a reader blocked in
                 * recvmsg() sleeps on the socket's wait queue, which the kernel also
                 * wakes when the daemon's read frees the call just sent (its write
                 * space). Woken for nothing, the client would preempt the daemon in the
                 * middle of its work and sleep again: two context switches per call. A
                 * poll() for POLLIN is woken by the reply only. */
                r = wait_fd(c->fd, POLLIN);
                if (r < 0)
                        return r;
                r = varlink_stream_read(&c->stream);
                if (r == -EAGAIN || r == -EINTR)
                        continue;
                if (r < 0)
                        return r;
                if (r == 0 && c->stream.eof)
                        return -ECONNRESET;
        }
}

int vfiod_client_call(struct vfiod_client *c, const char *method, json_object *parameters,
                      const int *fds, size_t n_fds, json_object **ret_reply, int *ret_fds,
                      size_t *ret_n_fds, char **ret_error)
{
        json_object *call = varlink_call_new(method, parameters, false);
        if (!call)
                return -ENOMEM;
        size_t len;
        const char *text = json_object_to_json_string_length(call, JSON_C_TO_STRING_PLAIN, &len);
        const char *reply;
        size_t reply_len, n_got = 0;
        int got[VARLINK_FDS_MAX];
        int r = text ? exchange(c, text, len, fds, n_fds, &reply, &reply_len, got, &n_got)
                     : -ENOMEM;
        json_object_put(call);
        if (r < 0)
                return r;

        json_object *msg;
        r = varlink_parse(&c->stream, reply, reply_len, &msg);
        if (r < 0) {
                close_many(got, n_got);
                return r;
        }
        json_object *params = NULL;
        if (!json_object_object_get_ex(msg, "parameters", &params) ||
            !json_object_is_type(params, json_type_object))
                params = NULL;
        const char *error = json_get_string(msg, "error");
        if (error) {
                close_many(got, n_got);
                if (ret_error) {
                        *ret_error = strdup(error);
                        if (!*ret_error) {
                                json_object_put(msg);
                                return -ENOMEM;
                        }
                }
                if (ret_reply)
                        *ret_reply = params ? json_object_get(params) : json_object_new_object();
                json_object_put(msg);
                return -EREMOTEIO;
        }

        if (ret_fds && ret_n_fds) {
                memcpy(ret_fds, got, n_got * sizeof(int));
                *ret_n_fds = n_got;
        } else
                close_many(got, n_got);
        if (ret_reply)
                *ret_reply = params ? json_object_get(params) : json_object_new_object();
        json_object_put(msg);
        return 0;
}

/* The same for a call written as text, with the reply read in place (json-text.h): *ret
 * is its parameters (an empty object when it has none), valid until the next call on c.
 * A varlink error is -EREMOTEIO with *ret_error "Name {parameters}". */
static int call_text(struct vfiod_client *c, const struct jbuf *call, const int *fds, size_t n_fds,
                     struct jspan *ret, int *ret_fds, size_t *ret_n_fds, char **ret_error)
{
        if (call->oom)
                return -ENOMEM;
        const char *reply;
        size_t len, n_got = 0;
        int got[VARLINK_FDS_MAX];
        int r = exchange(c, call->p, call->len, fds, n_fds, &reply, &len, got, &n_got);
        if (r < 0)
                return r;
        enum { PARAMETERS, ERROR };
        static const char *const keys[] = {"parameters", "error"};
        struct jspan msg, v[2], params = {"{}", 2};
        char error[256];
        if (jscan_validate(reply, len, &msg) < 0 || jscan_type(msg) != JTYPE_OBJECT) {
                close_many(got, n_got);
                return -EBADMSG;
        }
        uint32_t found = jscan_members(msg, keys, 2, v);
        if (found & (1u << PARAMETERS))
                params = v[PARAMETERS];
        if (jscan_type(params) != JTYPE_OBJECT) {
                close_many(got, n_got);
                return -EBADMSG;
        }
        if (found & (1u << ERROR)) {
                close_many(got, n_got);
                if (jscan_string(v[ERROR], error, sizeof(error)) < 0)
                        return -EBADMSG;
                if (ret_error && asprintf(ret_error, "%s %.*s", error, (int)params.n, params.p) < 0)
                        return -ENOMEM;
                return -EREMOTEIO;
        }
        memcpy(ret_fds, got, n_got * sizeof(int));
        *ret_n_fds = n_got;
        *ret = params;
        return 0;
}

/* Moves the fd of index idx out of fds[] (so it is not closed twice). */
static int take_fd(int *fds, size_t n, int64_t idx)
{
        if (idx < 0 || (size_t)idx >= n || fds[idx] < 0)
                return -EBADMSG;
        return TAKE_FD(fds[idx]);
}

static int span_int(struct jspan o, const char *key, int64_t *ret)
{
        struct jspan v;
        return jscan_member(o, key, &v) && jscan_int(v, ret) == 0 ? 0 : -EBADMSG;
}

int vfiod_client_acquire(struct vfiod_client *c, const char *const *devices, size_t n_devices,
                         const char *backend, int holder_pidfd, struct vfiod_lease **ret,
                         char **ret_error)
{
        return vfiod_client_acquire_flags(c, devices, n_devices, backend, holder_pidfd, 0, ret,
                                          ret_error);
}

int vfiod_client_acquire_flags(struct vfiod_client *c, const char *const *devices, size_t n_devices,
                               const char *backend, int holder_pidfd, unsigned flags,
                               struct vfiod_lease **ret, char **ret_error)
{
        if (flags & ~(unsigned)VFIOD_ACQUIRE_NO_GROUP_FDS)
                return -EINVAL;
        struct jbuf call = {};
        jbuf_lit(&call, "{\"method\":\"io.vfiod.Acquire\",\"parameters\":{\"devices\":[");
        for (size_t i = 0; i < n_devices; i++) {
                if (i > 0)
                        jbuf_lit(&call, ",");
                jbuf_str(&call, devices[i]);
        }
        jbuf_lit(&call, "]");
        if (backend) {
                jbuf_lit(&call, ",\"backend\":");
                jbuf_str(&call, backend);
        }
        if (holder_pidfd >= 0)
                jbuf_lit(&call, ",\"holder_fd\":0");
        if (flags & VFIOD_ACQUIRE_NO_GROUP_FDS)
                jbuf_lit(&call, ",\"group_fds\":false");
        jbuf_lit(&call, "}}");

        /* The reply is read in one pass over its members, and one over each device's. */
        enum { LEASE, BACKEND, DEVICES, MEMLOCK, IOMMUFD, CONTAINER };
        static const char *const keys[] = {"lease",   "backend", "devices",
                                           "memlock", "iommufd", "container"};
        enum { ADDRESS, FD, GROUP, CDEV };
        static const char *const device_keys[] = {"address", "fd", "group", "cdev"};
        struct jspan reply, d, v[6];
        int fds[VARLINK_FDS_MAX];
        size_t n_fds = 0;
        int r = call_text(c, &call, &holder_pidfd, holder_pidfd >= 0 ? 1 : 0, &reply, fds, &n_fds,
                          ret_error);
        jbuf_done(&call);
        if (r < 0)
                return r;

        struct vfiod_lease *l = calloc(1, sizeof(*l));
        int64_t id, idx;
        if (!l) {
                r = -ENOMEM;
                goto finish;
        }
        l->iommufd = l->container = -EBADF;
        l->memlock = -2;
        uint32_t found = jscan_members(reply, keys, 6, v);
        struct jspan devs = v[DEVICES];
        if (!(found & (1u << LEASE)) || jscan_int(v[LEASE], &id) < 0 ||
            !(found & (1u << BACKEND)) ||
            jscan_string(v[BACKEND], l->backend, sizeof(l->backend)) < 0 ||
            !(found & (1u << DEVICES)) || jscan_type(devs) != JTYPE_ARRAY) {
                r = -EBADMSG;
                goto finish;
        }
        l->id = (uint64_t)id;
        if ((found & (1u << MEMLOCK)) && jscan_int(v[MEMLOCK], &idx) == 0)
                l->memlock = idx;
        if ((found & (1u << IOMMUFD)) && jscan_int(v[IOMMUFD], &idx) == 0) {
                if ((r = take_fd(fds, n_fds, idx)) < 0)
                        goto finish;
                l->iommufd = r;
        }
        if ((found & (1u << CONTAINER)) && jscan_int(v[CONTAINER], &idx) == 0) {
                if ((r = take_fd(fds, n_fds, idx)) < 0)
                        goto finish;
                l->container = r;
        }
        size_t n = jscan_count(devs), pos = 0;
        l->devices = calloc(n ? n : 1, sizeof(*l->devices));
        if (!l->devices) {
                r = -ENOMEM;
                goto finish;
        }
        for (size_t i = 0; i < n && jscan_next(devs, &pos, &d); i++) {
                struct vfiod_acquired *a = &l->devices[l->n_devices];
                int64_t group, cdev = -1;
                uint32_t has = jscan_members(d, device_keys, 4, v);
                /* A lease without handles (type1, group nodes opened to the holder) has
                 * no fd per device; any other has one. */
                bool handles = l->iommufd >= 0 || l->container >= 0;
                if (!(has & (1u << ADDRESS)) ||
                    jscan_string(v[ADDRESS], a->address, sizeof(a->address)) < 0 ||
                    !(has & (1u << GROUP)) || jscan_int(v[GROUP], &group) < 0 ||
                    !!(has & (1u << FD)) != handles ||
                    (handles && (jscan_int(v[FD], &idx) < 0 || idx < 0 || (size_t)idx >= n_fds ||
                                 fds[idx] < 0))) {
                        r = -EBADMSG;
                        goto finish;
                }
                a->group = (int)group;
                if (!handles) {
                        a->fd = -EBADF;
                        a->cdev = -1;
                        l->n_devices++;
                        continue;
                }
                if ((has & (1u << CDEV)) && jscan_int(v[CDEV], &cdev) < 0)
                        cdev = -1;
                a->cdev = (int)cdev;
                /* Devices of one group share the group fd: each gets its own copy. The
                 * last device to name an fd takes it, the others get copies. */
                bool shared = false;
                size_t later = pos;
                struct jspan e;
                int64_t other;
                while (!shared && jscan_next(devs, &later, &e))
                        shared = span_int(e, "fd", &other) == 0 && other == idx;
                a->fd = shared ? fcntl(fds[idx], F_DUPFD_CLOEXEC, 3) : TAKE_FD(fds[idx]);
                if (a->fd < 0) {
                        r = negative_errno();
                        goto finish;
                }
                l->n_devices++;
        }
        *ret = TAKE_PTR(l);
        r = 0;
finish:
        vfiod_lease_free(l);
        close_many(fds, n_fds);
        return r;
}

struct vfiod_lease *vfiod_lease_free(struct vfiod_lease *l)
{
        if (!l)
                return NULL;
        safe_close(l->iommufd);
        safe_close(l->container);
        for (size_t i = 0; i < l->n_devices; i++)
                safe_close(l->devices[i].fd);
        free(l->devices);
        free(l);
        return NULL;
}

int vfiod_client_release(struct vfiod_client *c, uint64_t lease, char **ret_error)
{
        struct jbuf call = {};
        jbuf_lit(&call, "{\"method\":\"io.vfiod.Release\",\"parameters\":{\"lease\":");
        jbuf_int(&call, (int64_t)lease);
        jbuf_lit(&call, "}}");
        struct jspan reply;
        int fds[VARLINK_FDS_MAX];
        size_t n_fds = 0;
        int r = call_text(c, &call, NULL, 0, &reply, fds, &n_fds, ret_error);
        jbuf_done(&call);
        if (r >= 0)
                close_many(fds, n_fds);
        return r;
}
