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

#include "macro.h"
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

static void close_all(int *fds, size_t n)
{
        for (size_t i = 0; i < n; i++)
                safe_close(fds[i]);
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

int vfiod_client_call(struct vfiod_client *c, const char *method, json_object *parameters,
                      const int *fds, size_t n_fds, json_object **ret_reply, int *ret_fds,
                      size_t *ret_n_fds, char **ret_error)
{
        json_object *call = varlink_call_new(method, parameters, false);
        if (!call)
                return -ENOMEM;

        /* The stream closes the fds it sends: give it copies. */
        int dups[VARLINK_FDS_MAX];
        if (n_fds > VARLINK_FDS_MAX) {
                json_object_put(call);
                return -E2BIG;
        }
        for (size_t i = 0; i < n_fds; i++) {
                dups[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
                if (dups[i] < 0) {
                        int r = negative_errno();
                        close_all(dups, i);
                        json_object_put(call);
                        return r;
                }
        }
        int r = varlink_stream_queue(&c->stream, call, dups, n_fds);
        json_object_put(call);
        if (r < 0) {
                close_all(dups, n_fds);
                return r;
        }
        while ((r = varlink_stream_flush(&c->stream)) == 0) {
                r = wait_fd(c->fd, POLLOUT);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;

        json_object *msg = NULL;
        int got[VARLINK_FDS_MAX];
        size_t n_got = 0;
        for (;;) {
                r = varlink_stream_next(&c->stream, &msg, got, &n_got);
                if (r != 0)
                        break;
                r = varlink_stream_read(&c->stream);
                if (r == -EAGAIN || r == -EINTR)
                        continue;
                if (r < 0)
                        return r;
                if (r == 0 && c->stream.eof)
                        return -ECONNRESET;
        }
        if (r < 0)
                return r;

        json_object *params = NULL;
        if (!json_object_object_get_ex(msg, "parameters", &params) ||
            !json_object_is_type(params, json_type_object))
                params = NULL;
        const char *error = json_get_string(msg, "error");
        if (error) {
                close_all(got, n_got);
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
                close_all(got, n_got);
        if (ret_reply)
                *ret_reply = params ? json_object_get(params) : json_object_new_object();
        json_object_put(msg);
        return 0;
}

static int error_text(const char *name, json_object *params, char **ret)
{
        if (!ret)
                return 0;
        const char *p =
                params ? json_object_to_json_string_ext(params, JSON_C_TO_STRING_PLAIN) : "{}";
        return asprintf(ret, "%s %s", name, p) < 0 ? -ENOMEM : 0;
}

static int get_int(json_object *o, const char *key, int64_t *ret)
{
        json_object *v;
        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return -EBADMSG;
        *ret = json_object_get_int64(v);
        return 0;
}

/* Moves the fd of index idx out of fds[] (so it is not closed twice). */
static int take_fd(int *fds, size_t n, int64_t idx)
{
        if (idx < 0 || (size_t)idx >= n || fds[idx] < 0)
                return -EBADMSG;
        return TAKE_FD(fds[idx]);
}

int vfiod_client_acquire(struct vfiod_client *c, const char *const *devices, size_t n_devices,
                         const char *backend, int holder_pidfd, struct vfiod_lease **ret,
                         char **ret_error)
{
        json_object *params = json_object_new_object(), *list = json_object_new_array();
        if (!params || !list) {
                json_object_put(params);
                json_object_put(list);
                return -ENOMEM;
        }
        json_object_object_add(params, "devices", list);
        for (size_t i = 0; i < n_devices; i++)
                json_object_array_add(list, json_object_new_string(devices[i]));
        if (backend)
                json_object_object_add(params, "backend", json_object_new_string(backend));
        if (holder_pidfd >= 0)
                json_object_object_add(params, "holder_fd", json_object_new_int(0));

        json_object *reply = NULL;
        _cleanup_free_ char *error = NULL;
        int fds[VARLINK_FDS_MAX];
        size_t n_fds = 0;
        int r = vfiod_client_call(c, "io.vfiod.Acquire", params, &holder_pidfd,
                                  holder_pidfd >= 0 ? 1 : 0, &reply, fds, &n_fds, &error);
        if (r == -EREMOTEIO) {
                int k = error_text(error, reply, ret_error);
                json_object_put(reply);
                return k < 0 ? k : r;
        }
        if (r < 0)
                return r;

        struct vfiod_lease *l = calloc(1, sizeof(*l));
        json_object *devs;
        int64_t id, idx;
        if (!l) {
                r = -ENOMEM;
                goto finish;
        }
        l->iommufd = l->container = -EBADF;
        l->memlock = -2;
        if (get_int(reply, "lease", &id) < 0 || !json_get_string(reply, "backend") ||
            !json_object_object_get_ex(reply, "devices", &devs) ||
            !json_object_is_type(devs, json_type_array)) {
                r = -EBADMSG;
                goto finish;
        }
        l->id = (uint64_t)id;
        snprintf(l->backend, sizeof(l->backend), "%s", json_get_string(reply, "backend"));
        if (get_int(reply, "memlock", &idx) == 0)
                l->memlock = idx;
        if (get_int(reply, "iommufd", &idx) == 0) {
                if ((r = take_fd(fds, n_fds, idx)) < 0)
                        goto finish;
                l->iommufd = r;
        }
        if (get_int(reply, "container", &idx) == 0) {
                if ((r = take_fd(fds, n_fds, idx)) < 0)
                        goto finish;
                l->container = r;
        }
        size_t n = json_object_array_length(devs);
        l->devices = calloc(n ? n : 1, sizeof(*l->devices));
        if (!l->devices) {
                r = -ENOMEM;
                goto finish;
        }
        for (size_t i = 0; i < n; i++) {
                json_object *d = json_object_array_get_idx(devs, i);
                const char *addr = json_get_string(d, "address");
                int64_t group, cdev = -1;
                if (!addr || get_int(d, "fd", &idx) < 0 || get_int(d, "group", &group) < 0 ||
                    idx < 0 || (size_t)idx >= n_fds || fds[idx] < 0) {
                        r = -EBADMSG;
                        goto finish;
                }
                (void)get_int(d, "cdev", &cdev);
                struct vfiod_acquired *a = &l->devices[l->n_devices++];
                snprintf(a->address, sizeof(a->address), "%s", addr);
                a->group = (int)group;
                a->cdev = (int)cdev;
                /* Devices of one group share the group fd: each gets its own copy. */
                a->fd = fcntl(fds[idx], F_DUPFD_CLOEXEC, 3);
                if (a->fd < 0) {
                        r = negative_errno();
                        goto finish;
                }
        }
        *ret = TAKE_PTR(l);
        r = 0;
finish:
        vfiod_lease_free(l);
        close_all(fds, n_fds);
        json_object_put(reply);
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
        json_object *params = json_object_new_object();
        if (!params)
                return -ENOMEM;
        json_object_object_add(params, "lease", json_object_new_int64((int64_t)lease));
        json_object *reply = NULL;
        _cleanup_free_ char *error = NULL;
        int r = vfiod_client_call(c, "io.vfiod.Release", params, NULL, 0, &reply, NULL, NULL,
                                  &error);
        if (r == -EREMOTEIO) {
                int k = error_text(error, reply, ret_error);
                if (k < 0)
                        r = k;
        }
        json_object_put(reply);
        return r;
}
