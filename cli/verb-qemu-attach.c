/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfioctl qemu-attach: hot-plug a device leased from vfiod into a running QEMU over QMP.
 * The lease is held by QEMU's process (a pidfd from the QMP socket's peer credentials),
 * so it lasts as long as QEMU, whatever happens to vfioctl. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli-daemon.h"
#include "pci-addr.h"

/* device_add of a vfio-pci device maps all guest RAM for DMA, which takes a while under
 * emulation; a QEMU that says nothing for this long is not answering. */
#define QMP_TIMEOUT_MS (120 * 1000)
#define QMP_MAX_LINE   (1024 * 1024)

struct qmp {
        int fd;
        char *buf;
        size_t len;
        unsigned serial;
};

static void qmp_done(struct qmp *q)
{
        safe_close(q->fd);
        free(q->buf);
}

/* The next message QEMU sends, one JSON object per line. */
static int qmp_read(struct qmp *q, json_object **ret)
{
        for (;;) {
                char *nl = q->buf ? memchr(q->buf, '\n', q->len) : NULL;
                if (nl) {
                        *nl = '\0';
                        json_object *o = json_tokener_parse(q->buf);
                        size_t used = (size_t)(nl + 1 - q->buf);
                        memmove(q->buf, nl + 1, q->len - used);
                        q->len -= used;
                        if (!o || !json_object_is_type(o, json_type_object)) {
                                json_object_put(o);
                                return -EBADMSG;
                        }
                        *ret = o;
                        return 0;
                }
                if (q->len >= QMP_MAX_LINE)
                        return -EMSGSIZE;
                char *b = realloc(q->buf, q->len + 65536);
                if (!b)
                        return -ENOMEM;
                q->buf = b;

                struct pollfd p = {.fd = q->fd, .events = POLLIN};
                int r = poll(&p, 1, QMP_TIMEOUT_MS);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return negative_errno();
                if (r == 0)
                        return -ETIMEDOUT;
                ssize_t n = read(q->fd, q->buf + q->len, 65536);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        return -ECONNRESET;
                q->len += (size_t)n;
        }
}

/* Sends text, with fd (when >= 0) as SCM_RIGHTS on its first byte: QEMU takes the fd
 * that arrives with the command that names it. */
static int qmp_send(struct qmp *q, const char *text, int fd)
{
        size_t len = strlen(text), off = 0;

        while (off < len) {
                struct iovec iov = {.iov_base = (char *)text + off, .iov_len = len - off};
                union {
                        struct cmsghdr h;
                        char buf[CMSG_SPACE(sizeof(int))];
                } control = {};
                struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
                if (fd >= 0 && off == 0) {
                        mh.msg_control = control.buf;
                        mh.msg_controllen = sizeof(control.buf);
                        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
                        cm->cmsg_level = SOL_SOCKET;
                        cm->cmsg_type = SCM_RIGHTS;
                        cm->cmsg_len = CMSG_LEN(sizeof(int));
                        memcpy(CMSG_DATA(cm), &fd, sizeof(int));
                }
                ssize_t n = sendmsg(q->fd, &mh, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return negative_errno();
                off += (size_t)n;
        }
        return 0;
}

/* Runs one command (arguments taken; may be NULL). 0 on success; -EREMOTEIO when QEMU
 * answered with an error, whose description goes to *ret_error. Events are skipped. */
static int qmp_execute(struct qmp *q, const char *command, json_object *arguments, int fd,
                       char **ret_error)
{
        json_object *cmd = json_object_new_object();
        char id[32];
        int r;

        if (!cmd) {
                json_object_put(arguments);
                return -ENOMEM;
        }
        snprintf(id, sizeof(id), "vfioctl-%u", ++q->serial);
        json_object_object_add(cmd, "execute", json_object_new_string(command));
        if (arguments)
                json_object_object_add(cmd, "arguments", arguments);
        json_object_object_add(cmd, "id", json_object_new_string(id));
        _cleanup_free_ char *text = NULL;
        if (asprintf(&text, "%s\n", json_object_to_json_string_ext(cmd, JSON_C_TO_STRING_PLAIN)) <
            0)
                text = NULL;
        json_object_put(cmd);
        if (!text)
                return -ENOMEM;
        r = qmp_send(q, text, fd);
        if (r < 0)
                return r;

        for (;;) {
                json_object *m = NULL, *v;
                r = qmp_read(q, &m);
                if (r < 0)
                        return r;
                const char *got = cli_json_string(m, "id");
                if (!got || strcmp(got, id) != 0) {
                        json_object_put(m); /* an event, or an answer to someone else */
                        continue;
                }
                r = 0;
                if (json_object_object_get_ex(m, "error", &v)) {
                        const char *desc = cli_json_string(v, "desc");
                        r = -EREMOTEIO;
                        if (ret_error)
                                *ret_error = strdup(desc ? desc : "QEMU reported an error");
                } else if (!json_object_object_get_ex(m, "return", &v))
                        r = -EBADMSG;
                json_object_put(m);
                return r;
        }
}

/* Connects, reads the greeting and leaves capabilities negotiation. */
static int qmp_connect(const char *path, struct qmp *q)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        json_object *greeting = NULL, *v;
        int r;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (q->fd < 0)
                return negative_errno();
        if (connect(q->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return negative_errno();
        r = qmp_read(q, &greeting);
        if (r < 0)
                return r;
        r = json_object_object_get_ex(greeting, "QMP", &v) ? 0 : -EPROTO;
        json_object_put(greeting);
        if (r < 0)
                return r;
        return qmp_execute(q, "qmp_capabilities", NULL, -EBADF, NULL);
}

static int qmp_getfd(struct qmp *q, const char *name, int fd, char **ret_error)
{
        json_object *a = json_object_new_object();

        if (!a)
                return -ENOMEM;
        json_object_object_add(a, "fdname", json_object_new_string(name));
        return qmp_execute(q, "getfd", a, fd, ret_error);
}

/* A QMP command whose only argument is a string. */
static int qmp_execute1(struct qmp *q, const char *command, const char *key, const char *value,
                        char **ret_error)
{
        json_object *a = json_object_new_object();

        if (!a)
                return -ENOMEM;
        json_object_object_add(a, key, json_object_new_string(value));
        return qmp_execute(q, command, a, -EBADF, ret_error);
}

struct attach {
        const char *address;
        const char *device_id;
        const char *bus;
        char iommufd_name[48]; /* fdname and object id */
        char device_fdname[48];
        bool iommufd_sent, object_added, device_sent;
        char *error; /* QEMU's description of the failure */
        const char *step;
};

/* A type1 lease: QEMU opens the group node itself (host=), open to its uid for the lease. */
static int attach_host(struct qmp *q, struct attach *at)
{
        json_object *a = json_object_new_object();

        if (!a)
                return -ENOMEM;
        at->step = "device_add";
        json_object_object_add(a, "driver", json_object_new_string("vfio-pci"));
        json_object_object_add(a, "host", json_object_new_string(at->address));
        json_object_object_add(a, "id", json_object_new_string(at->device_id));
        if (at->bus)
                json_object_object_add(a, "bus", json_object_new_string(at->bus));
        return qmp_execute(q, "device_add", a, -EBADF, &at->error);
}

static int attach_steps(struct qmp *q, struct attach *at, const struct vfiod_lease *l)
{
        json_object *a;
        int r;

        if (l->iommufd < 0)
                return attach_host(q, at);

        at->step = "getfd (the iommufd)";
        r = qmp_getfd(q, at->iommufd_name, l->iommufd, &at->error);
        if (r < 0)
                return r;
        at->iommufd_sent = true;

        at->step = "getfd (the device)";
        r = qmp_getfd(q, at->device_fdname, l->devices[0].fd, &at->error);
        if (r < 0)
                return r;
        at->device_sent = true;

        at->step = "object-add";
        if (!(a = json_object_new_object()))
                return -ENOMEM;
        json_object_object_add(a, "qom-type", json_object_new_string("iommufd"));
        json_object_object_add(a, "id", json_object_new_string(at->iommufd_name));
        json_object_object_add(a, "fd", json_object_new_string(at->iommufd_name));
        r = qmp_execute(q, "object-add", a, -EBADF, &at->error);
        if (r < 0)
                return r;
        at->object_added = true;

        at->step = "device_add";
        if (!(a = json_object_new_object()))
                return -ENOMEM;
        json_object_object_add(a, "driver", json_object_new_string("vfio-pci"));
        json_object_object_add(a, "iommufd", json_object_new_string(at->iommufd_name));
        json_object_object_add(a, "fd", json_object_new_string(at->device_fdname));
        json_object_object_add(a, "id", json_object_new_string(at->device_id));
        if (at->bus)
                json_object_object_add(a, "bus", json_object_new_string(at->bus));
        return qmp_execute(q, "device_add", a, -EBADF, &at->error);
}

/* Removes what attach_steps() added. A named fd that QEMU already took over (object-add
 * and device_add consume theirs) is gone, so closefd may fail: that is expected. */
static void attach_undo(struct qmp *q, struct attach *at)
{
        if (at->object_added)
                (void)qmp_execute1(q, "object-del", "id", at->iommufd_name, NULL);
        if (at->device_sent)
                (void)qmp_execute1(q, "closefd", "fdname", at->device_fdname, NULL);
        if (at->iommufd_sent)
                (void)qmp_execute1(q, "closefd", "fdname", at->iommufd_name, NULL);
}

static int peer_pidfd(int fd, pid_t *ret_pid)
{
        struct ucred cred;
        socklen_t len = sizeof(cred);

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return negative_errno();
        if (cred.pid <= 0)
                return -ESRCH; /* QEMU is in another pid namespace */
        int pidfd = (int)syscall(SYS_pidfd_open, cred.pid, 0);
        if (pidfd < 0)
                return negative_errno();
        *ret_pid = cred.pid;
        return pidfd;
}

static int report(struct cli *c, const struct attach *at, const struct vfiod_lease *l, pid_t pid,
                  const char *reason)
{
        bool iommufd = l->iommufd >= 0;
        char m[FORMAT_SIZE_MAX];

        if (!c->json) {
                printf("%s: attached to QEMU pid %d as device %s (lease %" PRIu64 ", ", at->address,
                       (int)pid, at->device_id, l->id);
                if (iommufd)
                        printf("iommufd object %s", at->iommufd_name);
                else
                        printf("type1, /dev/vfio/%d open to QEMU's uid", l->devices[0].group);
                printf(", RLIMIT_MEMLOCK %s)\nbackend %s: %s\n", cli_memlock_text(l->memlock, m),
                       l->backend, reason);
                return 0;
        }
        json_object *o = cli_lease_json(l);
        if (!o)
                return print_json(NULL, 0);
        json_object_object_add(o, "pid", json_object_new_int((int)pid));
        json_object_object_add(o, "qemu_id", json_object_new_string(at->device_id));
        json_object_object_add(o, "iommufd_object",
                               iommufd ? json_object_new_string(at->iommufd_name) : NULL);
        json_object_object_add(o, "backend_reason", json_object_new_string(reason));
        return print_json(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED);
}

/* Closes this process's handles, then releases the lease: the kernel holds up the
 * device's return to a driver while any handle to it is open, this process's included. */
static int release_closed(struct vfiod_client *client, struct vfiod_lease **l)
{
        uint64_t lease = (*l)->id;

        *l = vfiod_lease_free(*l);
        return cli_daemon_release("qemu-attach", client, lease);
}

static int attach(struct cli *c, struct qmp *q, struct attach *at, pid_t pid, int pidfd)
{
        _cleanup_(vfiod_client_freep) struct vfiod_client *client = NULL;
        _cleanup_(vfiod_lease_freep) struct vfiod_lease *l = NULL;
        char *devices[] = {(char *)at->address, NULL};
        char q1[300], id[32];
        int r;

        r = cli_daemon_connect("qemu-attach", &client);
        if (r != 0)
                return r;
        /* QEMU takes handed-over handles only with iommufd; with type1 it opens the group
         * node itself, which the lease opens to QEMU's uid. */
        const char *backend = c->values[OPT_BACKEND];
        r = cli_daemon_acquire("qemu-attach", client, devices, 1, backend, pidfd,
                               VFIOD_ACQUIRE_NO_GROUP_FDS, &l);
        if (r != 0)
                return r;
        const char *reason = cli_backend_reason(c, l->backend, backend != NULL);

        snprintf(at->iommufd_name, sizeof(at->iommufd_name), "vfiod-iommufd-%" PRIu64, l->id);
        cli_qemu_id(at->address, id);
        snprintf(at->device_fdname, sizeof(at->device_fdname), "vfiod-dev-%s",
                 id + strlen("vfiod-"));
        bool type1 = strcmp(l->backend, "type1") == 0;
        if ((type1 ? l->container >= 0 : l->iommufd < 0) || l->n_devices < 1 ||
            strcmp(l->devices[0].address, at->address) != 0) {
                fprintf(stderr,
                        "vfioctl: qemu-attach: %s: the daemon's reply lacks the iommufd "
                        "or the device\n",
                        at->address);
                (void)release_closed(client, &l);
                return EXIT_FAILED;
        }
        r = attach_steps(q, at, l);
        if (r >= 0)
                return report(c, at, l, pid, reason);

        if (r == -EREMOTEIO)
                fprintf(stderr, "vfioctl: qemu-attach: %s: QEMU refused %s: %s\n", at->address,
                        at->step, cli_quote(at->error ? at->error : "?", q1));
        else
                fprintf(stderr, "vfioctl: qemu-attach: %s: QMP %s failed: %s\n", at->address,
                        at->step, strerror(-r));
        if (r != -ECONNRESET && r != -ETIMEDOUT && r != -EPIPE)
                attach_undo(q, at);
        uint64_t lease = l->id;
        r = release_closed(client, &l);
        fprintf(stderr, "vfioctl: qemu-attach: %s: not attached; lease %" PRIu64 " %s\n",
                at->address, lease, r == 0 ? "released" : "not released (see above)");
        return EXIT_FAILED;
}

int verb_qemu_attach(struct cli *c)
{
        _cleanup_close_ int pidfd = -EBADF;
        struct qmp q = {.fd = -EBADF};
        struct attach at = {};
        struct pci_addr a;
        char addr[PCI_ADDR_STRLEN], id[32], q1[300];
        const char *path = c->values[OPT_QMP];
        pid_t pid = 0;
        int r;

        if (!path)
                return usage_error("qemu-attach: --qmp SOCKET names QEMU's QMP socket");
        const char *backend = c->values[OPT_BACKEND];
        if (backend && strcmp(backend, "iommufd") != 0 && strcmp(backend, "type1") != 0)
                return usage_error("qemu-attach: --backend takes iommufd or type1, not '%s'",
                                   cli_quote(backend, q1));
        if (pci_addr_parse(c->args[0], &a) < 0)
                return usage_error("qemu-attach: '%s' is not a PCI address (expected "
                                   "DDDD:BB:DD.F or BB:DD.F in hexadecimal)",
                                   cli_quote(c->args[0], q1));
        at.address = pci_addr_format(&a, addr);
        cli_qemu_id(addr, id);
        at.device_id = c->values[OPT_ID] ? c->values[OPT_ID] : id;
        at.bus = c->values[OPT_BUS];

        r = qmp_connect(path, &q);
        if (r < 0) {
                fprintf(stderr, "vfioctl: qemu-attach: cannot talk QMP on %s: %s%s\n",
                        cli_quote(path, q1), strerror(-r),
                        r == -EPROTO || r == -EBADMSG ? " (not a QMP socket?)"
                        : r == -ENOENT || r == -ECONNREFUSED
                                ? " (start QEMU with -qmp unix:SOCKET,server=on,wait=off)"
                                : "");
                qmp_done(&q);
                return EXIT_FAILED;
        }
        pidfd = peer_pidfd(q.fd, &pid);
        if (pidfd < 0) {
                fprintf(stderr, "vfioctl: qemu-attach: cannot tell which process serves %s: %s\n",
                        cli_quote(path, q1), strerror(-pidfd));
                qmp_done(&q);
                return EXIT_FAILED;
        }
        r = attach(c, &q, &at, pid, pidfd);
        free(at.error);
        qmp_done(&q);
        return r;
}
