/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Acquire, Release and ListLeases. */

#include "methods-internal.h"

/* ---- acquire: checks, the bind (a job, when a device is not on vfio-pci), the lease -- */

/* One Acquire, from its parameters to its reply. Each step below reads what the ones
 * before it filled and returns 0 to go on, 1 when it answered the call (a refusal), or
 * -errno with ->why saying what failed; acquire_free() releases whatever a failed step
 * left, whichever it was. */
struct acquire {
        /* The call. */
        struct pci_addr req[ACQUIRE_DEVICES_MAX];
        size_t n_req;
        enum vfio_backend backend; /* asked for, or _VFIO_BACKEND_INVALID: chosen */
        bool group_fds;
        bool holder_fd; /* the caller sent the holder's pidfd */
        /* The checks. */
        enum release_action req_release[ACQUIRE_DEVICES_MAX];
        enum release_action on_release; /* the first device's rule's */
        int64_t memlock;                /* the rule's RLIMIT_MEMLOCK, or POLICY_MEMLOCK_UNSET */
        bool need_bind;
        struct holder *h; /* a reference */
        uid_t holder_uid;
        /* The bind step. */
        struct bind_plan plan; /* what the bind step binds, undone on a later failure */
        unsigned modules;      /* loaded by the bind step */
        bool bound;            /* the bind step is done */
        /* The lease, built once every device is on vfio-pci. */
        const struct topology *t;
        struct lease *lease; /* ours until the lease table has it */
        bool leased;         /* the lease table has it */
        int fds[VARLINK_FDS_MAX];
        size_t n_fds;
        int handle_index;  /* of the iommufd or container in fds, or -1 */
        struct jbuf reply; /* written as the steps go */
        char *why;
};

static struct acquire *acquire_new(void)
{
        struct acquire *a = calloc(1, sizeof(*a));
        if (a) {
                a->backend = _VFIO_BACKEND_INVALID;
                a->memlock = POLICY_MEMLOCK_UNSET;
                a->handle_index = -1;
        }
        return a;
}

static void acquire_free(void *p)
{
        struct acquire *a = p;
        if (!a)
                return;
        holder_unref(a->h);
        bind_plan_done(&a->plan);
        close_many(a->fds, a->n_fds);
        if (a->lease && !a->leased) {
                lease_done(a->lease);
                free(a->lease);
        }
        jbuf_done(&a->reply);
        free(a->why);
        free(a);
}

static inline void acquire_freep(struct acquire **a)
{
        acquire_free(*a);
}

/* Sets ->why to text and returns r, for a step's failures. */
static int acquire_fail(struct acquire *a, int r, const char *text)
{
        free(a->why);
        a->why = strdup(text);
        return r;
}

/* A step's "answered": what conn_error() returned when it failed, else 1. */
static int answered(int r)
{
        return r < 0 ? r : 1;
}

static int acquire_read_params(struct conn *c, struct jspan params, struct acquire *a)
{
        struct {
                struct pci_addrs devices;
                char backend[32];
                int group_fds;
                int64_t holder_fd;
        } p;
        static const struct param table[] = {
                {"devices", PARAM_ADDRESSES, true, offsetof(typeof(p), devices),
                 .max = ACQUIRE_DEVICES_MAX},
                {"backend", PARAM_STRING, false, offsetof(typeof(p), backend), .size = 32},
                {"group_fds", PARAM_BOOL, false, offsetof(typeof(p), group_fds)},
                /* The index of the holder's pidfd among the call's fds: the only one. */
                {"holder_fd", PARAM_INT, false, offsetof(typeof(p), holder_fd), .max = 0},
        };
        int r = READ_PARAMS(c, params, table, &p);
        if (r != 0)
                return r;
        memcpy(a->req, p.devices.v, p.devices.n * sizeof(*a->req));
        a->n_req = p.devices.n;
        pci_addrs_done(&p.devices);
        if (p.backend[0]) {
                a->backend = vfio_backend_from_string(p.backend);
                if (a->backend != VFIO_BACKEND_IOMMUFD && a->backend != VFIO_BACKEND_TYPE1)
                        return answered(params_invalid(c, "backend"));
        }
        /* With type1, a VMM that opens the group nodes itself (QEMU's host=) wants none
         * of the daemon's handles: one open group fd would keep it from its own. */
        a->group_fds = p.group_fds != 0;
        a->holder_fd = p.holder_fd == 0;
        return 0;
}

/* The policy first, so that a refused client learns nothing about holders; then each
 * device free: in no operation or lease, open nowhere else, its group leased to nobody.
 * Notes which devices need binding. */
static int acquire_check(struct conn *c, struct acquire *a)
{
        struct server *s = c->server;
        const struct topology *t;
        int r = server_topology_for(s, a->req, a->n_req, &t);
        if (r < 0)
                return answered(errno_error(c, "scan", NULL, r, NULL));
        a->t = t;
        for (size_t i = 0; i < a->n_req; i++) {
                const struct pci_device *d;
                const struct policy_rule *rule;
                if (refuse_bridge(c, t, &a->req[i]) ||
                    device_allowed(c, POLICY_OP_ACQUIRE, t, &a->req[i], &d, &rule))
                        return 1;
                if (i == 0) {
                        a->on_release = rule->on_release;
                        a->memlock = rule->memlock;
                }
                a->req_release[i] = rule->on_release;
                if (devices_taken(c, &a->req[i], 1))
                        return 1;
                int opener;
                if (device_open_elsewhere(s, &a->req[i], &opener) > 0)
                        return answered(opener > 0 ? busy(c, d->name,
                                                          "still open in pid %d: not handed out "
                                                          "until that file is closed",
                                                          opener)
                                                   : busy(c, d->name,
                                                          "still open in another process: not "
                                                          "handed out until that file is closed"));
                /* One IOMMU group is one DMA owner: the kernel would refuse a second
                 * iommufd (or container) anyway; say why before handing out fds. */
                const struct iommu_group *g = topology_find_group(t, d->iommu_group);
                for (size_t m = 0; g && m < g->n_members; m++) {
                        const struct pci_device *md = topology_device(t, g->members[m]);
                        struct lease *ml = md != d ? lease_of_device(s, &md->addr) : NULL;
                        if (ml)
                                return answered(busy(c, d->name,
                                                     "shares IOMMU group %d with %s, leased to "
                                                     "pid %d (lease %" PRIu64 ")",
                                                     g->id, md->name, (int)ml->pid, ml->id));
                }
                if (!driver_is_vfio(d->driver))
                        a->need_bind = true;
        }
        return 0;
}

/* The holder named by the pidfd the caller sent: a live process of the caller's uid
 * (any uid, for root's admin socket). */
static int acquire_holder_sent(struct conn *c, struct acquire *a, int *fds, size_t n_fds)
{
        struct server *s = c->server;
        if (n_fds != 1)
                return answered(params_invalid(c, "holder_fd"));
        _cleanup_close_ int pidfd = TAKE_FD(fds[0]);
        pid_t pid;
        uid_t uid;
        uint64_t starttime;
        if (pidfd_get_pid(pidfd, &pid) < 0 || process_uid(s->root, pid, &uid) < 0 ||
            !pidfd_alive(pidfd))
                return answered(params_invalid(c, "holder_fd"));
        if (uid != c->cred.uid && !c->admin)
                return answered(conn_errorf(c, "io.vfiod.PermissionDenied", "operation", "acquire",
                                            "address", NULL, NULL));
        int r = process_starttime(s->root, pid, &starttime);
        if (r < 0 || !pidfd_alive(pidfd))
                return answered(
                        errno_error(c, "acquire", NULL, -ESRCH, "the lease holder has exited"));
        r = holder_get(s, pid, starttime, &pidfd, &a->h);
        if (r < 0)
                return r;
        a->holder_uid = uid;
        return 0;
}

/* The holder: the caller, or the process of the pidfd it sent. The caller's holder is
 * looked up once per connection and kept with it: its pidfd was taken at accept, so it
 * cannot be another process by now; its watch tells when it is gone (a connection can
 * outlive its process, inherited by a child). */
static int acquire_holder(struct conn *c, struct acquire *a, int *fds, size_t n_fds)
{
        struct server *s = c->server;
        a->holder_uid = c->cred.uid;
        if (!a->holder_fd && n_fds > 0) {
                json_object *p = json_object_new_object();
                if (!p)
                        return -ENOMEM;
                json_object_object_add(p, "count", json_object_new_int((int)n_fds));
                return answered(conn_error(c, "io.vfiod.UnexpectedFileDescriptors", p));
        }
        if (a->holder_fd) {
                int r = acquire_holder_sent(c, a, fds, n_fds);
                if (r != 0)
                        return r;
        } else {
                if (!c->holder) {
                        _cleanup_close_ int pidfd =
                                c->pidfd >= 0 ? fcntl(c->pidfd, F_DUPFD_CLOEXEC, 3)
                                              : (int)syscall(SYS_pidfd_open, c->cred.pid, 0);
                        uint64_t starttime;
                        if (pidfd < 0 || process_starttime(s->root, c->cred.pid, &starttime) < 0 ||
                            !pidfd_alive(pidfd))
                                return answered(errno_error(c, "acquire", NULL, -ESRCH,
                                                            "the caller has exited"));
                        int r = holder_get(s, c->cred.pid, starttime, &pidfd, &c->holder);
                        if (r < 0)
                                return r;
                }
                a->h = holder_ref(c->holder);
        }
        if (a->h->exited)
                return answered(
                        errno_error(c, "acquire", NULL, -ESRCH, "the lease holder has exited"));
        return 0;
}

/* The backend, when the caller left it to the daemon (by the first device and what the
 * kernel offers), with its modules loaded; never a no-IOMMU group. */
static int acquire_backend(struct server *s, struct acquire *a)
{
        int r = server_topology(s, &a->t);
        if (r < 0)
                return r;
        if (a->h->exited)
                return acquire_fail(a, -ESRCH, "the lease holder has exited");
        if (a->backend < 0) {
                r = device_backend(s, a->t, &a->req[0], &a->backend, &a->why);
                if (r >= 0)
                        r = modules_need(s, vfio_modules_for_backend(a->backend), &a->why);
                if (r < 0)
                        return r;
        }
        if (a->backend == VFIO_BACKEND_NOIOMMU)
                return acquire_fail(a, -EPERM,
                                    "the device is in a no-IOMMU group: it could DMA anywhere; "
                                    "not handed out");
        return 0;
}

/* The lease's devices: those asked for and, with type1, every other member of their
 * groups, since the fds reach whole groups: the caller needs the right to each, and none
 * may be leased already. */
static int acquire_devices(struct conn *c, struct acquire *a)
{
        struct server *s = c->server;
        const struct topology *t = a->t;
        struct lease *l = a->lease = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->owner = s;
        size_t cap = a->backend == VFIO_BACKEND_TYPE1 ? t->n_devices : a->n_req;
        l->devices = calloc(cap ? cap : 1, sizeof(*l->devices));
        l->device_release = calloc(cap ? cap : 1, sizeof(*l->device_release));
        if (!l->devices || !l->device_release)
                return -ENOMEM;
        /* The parameters had no duplicates. */
        for (size_t i = 0; i < a->n_req; i++) {
                l->device_release[l->n_devices] = a->req_release[i];
                l->devices[l->n_devices++] = a->req[i];
        }
        for (size_t i = 0; a->backend == VFIO_BACKEND_TYPE1 && i < a->n_req; i++) {
                const struct pci_device *d = topology_find_device(t, &a->req[i]);
                const struct iommu_group *g = d ? topology_find_group(t, d->iommu_group) : NULL;
                for (size_t m = 0; g && m < g->n_members; m++) {
                        const struct pci_device *md = topology_device(t, g->members[m]);
                        if (pci_device_is_bridge(md))
                                continue;
                        bool dup = false;
                        for (size_t k = 0; k < l->n_devices; k++)
                                dup = dup || pci_addr_equal(&l->devices[k], &md->addr);
                        if (dup)
                                continue;
                        const struct policy_rule *rm = allowed(c, POLICY_OP_ACQUIRE, t, md);
                        if (!rm)
                                return answered(denied(c, POLICY_OP_ACQUIRE, md));
                        if (lease_of_device(s, &md->addr))
                                return answered(busy(c, md->name,
                                                     "shares IOMMU group %d with %s and is leased",
                                                     g->id, d->name));
                        l->device_release[l->n_devices] = rm->on_release;
                        l->devices[l->n_devices++] = md->addr;
                }
        }
        return 0;
}

/* One device's fd for the lease: its vfio cdev (iommufd) from the nodes the daemon looked
 * up, checked, else by the full lookup (a group node for type1); *ret_cdev is the cdev's
 * N, or -1. */
static int acquire_open_device(struct server *s, struct acquire *a, const struct pci_addr *addr,
                               int *ret_fd, int *ret_cdev)
{
        free(a->why);
        a->why = NULL;
        const struct vfio_nodes *nodes = device_nodes(s, addr);
        int fd = a->backend == VFIO_BACKEND_IOMMUFD && nodes && nodes->cdev >= 0
                         ? open_cdev_checked(s, addr, nodes->cdev, bound_now(&a->plan, addr))
                         : -ENOENT;
        if (fd >= 0) {
                *ret_fd = fd;
                *ret_cdev = nodes->cdev;
                return 0;
        }
        /* Not looked up yet, or stale. */
        _cleanup_free_ char *node = NULL;
        int r = vfio_device_open_raw(s->root, addr, a->backend, &fd, &node, &a->why);
        if (r < 0)
                return r;
        /* The cdev's N is in the node just opened. */
        int cdev;
        if (a->backend != VFIO_BACKEND_IOMMUFD || vfio_cdev_path_index(node, &cdev) < 0)
                cdev = -1;
        *ret_fd = fd;
        *ret_cdev = cdev;
        return 0;
}

/* The lease's fds: the address space handle (iommufd or container) first, then one per
 * device (iommufd) or per group (type1), none when the caller opens the group nodes
 * itself; the reply's "devices" say which fd is whose. A type1 lease opens each group
 * node to the holder's uid: what the nodes are now is planned here, to be recorded. */
static int acquire_open(struct server *s, struct acquire *a)
{
        struct lease *l = a->lease;
        bool handles = a->backend == VFIO_BACKEND_IOMMUFD || a->group_fds;
        int r;
        if (a->backend == VFIO_BACKEND_TYPE1) {
                r = lease_grants_plan(l, a->t, a->holder_uid, &a->why);
                if (r < 0)
                        return r;
        }
        if (handles) {
                int fd;
                bool accounting = false;
                r = vfio_iommu_open_raw(s->root, a->backend, VFIO_IOMMU_PROCESS_ACCOUNTING, &fd,
                                        &accounting, &a->why);
                if (r < 0)
                        return r;
                a->handle_index = (int)a->n_fds;
                a->fds[a->n_fds++] = fd;
        }
        int group_fd_index[VARLINK_FDS_MAX], group_ids[VARLINK_FDS_MAX];
        size_t n_groups = 0;
        jbuf_lit(&a->reply, "{\"devices\":[");
        for (size_t i = 0; i < l->n_devices; i++) {
                const struct pci_device *d = topology_find_device(a->t, &l->devices[i]);
                int group = d ? d->iommu_group : -1, idx = -1, cdev = -1;
                for (size_t k = 0; a->backend == VFIO_BACKEND_TYPE1 && k < n_groups; k++)
                        if (group_ids[k] == group)
                                idx = group_fd_index[k];
                if (idx < 0 && handles) {
                        if (a->n_fds >= VARLINK_FDS_MAX)
                                return -E2BIG;
                        int fd;
                        r = acquire_open_device(s, a, &l->devices[i], &fd, &cdev);
                        if (r < 0)
                                return r;
                        idx = (int)a->n_fds;
                        a->fds[a->n_fds++] = fd;
                        if (a->backend == VFIO_BACKEND_TYPE1) {
                                group_ids[n_groups] = group;
                                group_fd_index[n_groups++] = idx;
                        }
                }
                char buf[PCI_ADDR_STRLEN];
                if (i > 0)
                        jbuf_lit(&a->reply, ",");
                jbuf_lit(&a->reply, "{\"address\":");
                jbuf_str(&a->reply, pci_addr_format(&l->devices[i], buf));
                if (idx >= 0) {
                        jbuf_lit(&a->reply, ",\"fd\":");
                        jbuf_int(&a->reply, idx);
                }
                jbuf_lit(&a->reply, ",\"group\":");
                jbuf_int(&a->reply, group);
                if (cdev >= 0) {
                        jbuf_lit(&a->reply, ",\"cdev\":");
                        jbuf_int(&a->reply, cdev);
                }
                jbuf_lit(&a->reply, "}");
        }
        return 0;
}

/* The lease made real. It is recorded before any fd leaves or any node or limit
 * changes, so that a crash from here on finds it and what to put back; then the group
 * nodes are opened to the holder's uid and its RLIMIT_MEMLOCK raised to the policy's (the
 * limit as it was recorded with the lease, to be lowered back); then the lease table
 * takes it. A failure undoes what this step did, in reverse. */
static int acquire_commit(struct conn *c, struct acquire *a)
{
        struct server *s = c->server;
        struct lease *l = a->lease;
        struct holder *h = a->h;
        l->id = s->next_lease_id;
        l->uid = c->cred.uid;
        l->pid = h->pid;
        l->starttime = h->starttime;
        l->backend = a->backend;
        l->on_release = a->on_release;
        if (a->memlock != POLICY_MEMLOCK_UNSET) {
                int r = holder_memlock_plan(h->pid, a->memlock, &l->memlock);
                if (r < 0)
                        return acquire_fail(a, r, "cannot read the holder's RLIMIT_MEMLOCK");
                l->memlock_raised = r > 0;
        }
        int r = lease_log_add(&s->lease_log, l);
        if (r < 0)
                return acquire_fail(a, r, "cannot record the lease");
        free(a->why);
        a->why = NULL;
        bool granted = false, raised = false;
        r = lease_grants_apply(l, &a->why);
        if (r < 0)
                goto undo;
        granted = true;
        if (l->memlock_raised) {
                r = holder_memlock_apply(h->pid, l->memlock.set_cur, l->memlock.set_max);
                if (r < 0) {
                        acquire_fail(a, r, "cannot raise the holder's RLIMIT_MEMLOCK");
                        goto undo;
                }
                raised = true;
                /* prlimit() went by pid: it must still have been the holder's (a lease
                 * without a memlock grant needs no second look: the watch sees an exit). */
                if (!pidfd_alive(h->pidfd)) {
                        r = acquire_fail(a, -ESRCH, "the lease holder has exited");
                        goto undo;
                }
        }
        r = lease_add(s, l);
        if (r < 0)
                goto undo;
        a->leased = true;
        l->holder = TAKE_PTR(a->h);
        /* Out of the CDI spec before its fds leave. */
        cdi_export_now(s, NULL, 0);
        return 0;

undo:
        if (raised)
                (void)holder_memlock_apply(h->pid, l->memlock.was_cur, l->memlock.was_max);
        if (granted)
                lease_grants_end(l);
        (void)lease_log_end(&s->lease_log, l->id, s->leases, s->n_leases);
        return r;
}

/* The reply, with the fds, once the lease is in the table. */
static void acquire_reply(struct conn *c, struct acquire *a)
{
        struct server *s = c->server;
        const struct lease *l = a->lease;
        const char *handle =
                a->backend == VFIO_BACKEND_IOMMUFD ? "],\"iommufd\":" : "],\"container\":";
        if (a->handle_index >= 0) {
                jbuf_raw(&a->reply, handle, strlen(handle));
                jbuf_int(&a->reply, a->handle_index);
        } else
                jbuf_lit(&a->reply, "]");
        if (a->memlock != POLICY_MEMLOCK_UNSET) {
                jbuf_lit(&a->reply, ",\"memlock\":");
                jbuf_int(&a->reply, l->memlock.set_cur);
        }
        jbuf_lit(&a->reply, ",\"lease\":");
        jbuf_int(&a->reply, (int64_t)l->id);
        jbuf_lit(&a->reply, ",\"backend\":");
        jbuf_str(&a->reply, vfio_backend_to_string(a->backend));
        jbuf_lit(&a->reply, "}");
        log_msg(LOG_INFO, "lease %" PRIu64 ": %zu device(s) to pid %d uid %u (%s)", l->id,
                l->n_devices, (int)l->pid, l->uid, vfio_backend_to_string(a->backend));
        for (size_t i = 0; i < l->n_devices; i++)
                server_broadcast(s, "lease-acquired", &l->devices[i], l->id);
        /* The fds are the reply's now, sent or not. */
        (void)conn_reply_text(c, &a->reply, a->fds, a->n_fds);
        a->n_fds = 0;
}

/* The rest of an Acquire, once every device is on vfio-pci. On failure, what its bind
 * step bound goes back. */
static void acquire_finish(struct conn *c, struct acquire *a)
{
        int r = acquire_backend(c->server, a);
        if (r == 0)
                r = acquire_devices(c, a);
        if (r == 0)
                r = acquire_open(c->server, a);
        if (r == 0)
                r = a->reply.oom ? -ENOMEM : acquire_commit(c, a);
        if (r == 0) {
                acquire_reply(c, a);
                return;
        }
        if (r < 0)
                (void)errno_error(c, "acquire", &a->req[0], r, a->why);
        if (a->bound && a->plan.n_devices > 0)
                (void)restore_start(c->server, 0, a->plan.devices, a->plan.n_devices, NULL);
}

/* In the worker: the modules loaded and what is not on vfio-pci yet bound. */
static int acquire_bind_work(struct server *s, void *data, char **ret_why)
{
        struct acquire *a = data;
        int r = modules_need(s, a->modules, ret_why);
        if (r >= 0 && a->plan.n_devices > 0) {
                _cleanup_(journal_freep) struct journal *j = NULL;
                r = plan_drivers_need(s, &a->plan, ret_why);
                if (r >= 0)
                        r = open_journal(s, &j);
                if (r >= 0)
                        r = vfio_bind_plan(s->root, j, &a->plan, false, ret_why);
        }
        if (r >= 0 && a->backend < 0) {
                /* The backend the first device opens through by default is known once
                 * it is bound (its nodes are there): its modules are loaded here too,
                 * so that acquire_backend() finds them present and loads nothing on the
                 * event loop. A failure is acquire_backend()'s to report. */
                enum vfio_backend b;
                if (vfio_backend_detect(s->root, &a->req[0], &b, NULL) >= 0)
                        (void)modules_need(s, vfio_modules_for_backend(b), NULL);
        }
        return r;
}

static void acquire_bound(struct server *s, struct job *j, int r, const char *why)
{
        struct acquire *a = j->data;
        server_invalidate(s);
        s->have_iommufd = -1;
        if (r < 0) {
                /* vfio_bind_plan() undid its part. */
                if (j->conn)
                        (void)(a->plan.n_devices > 0
                                       ? errno_error(j->conn, "bind", NULL, r, why)
                                       : errno_error(j->conn, "acquire", &a->req[0], r, why));
                return;
        }
        a->bound = true;
        if (!j->conn) {
                /* Nobody to hand the devices to (the caller left, or was told the bind
                 * was late): what was bound for it goes back. */
                (void)restore_start(s, 0, a->plan.devices, a->plan.n_devices, NULL);
                return;
        }
        acquire_finish(j->conn, a);
}

/* Every device on vfio-pci already and the backend's modules there: the rest at once.
 * Otherwise a job loads the modules and binds what is not on vfio-pci (loading a module
 * and binding are kernel work, kept off the event loop); acquire_bound() goes on from
 * there, with the plan kept to undo the bind on a later failure. The job owns the acquire
 * from then on. */
static int acquire_start(struct conn *c, struct acquire **ap)
{
        struct server *s = c->server;
        struct acquire *a = *ap;
        enum vfio_backend b = a->backend;
        if (b < 0 && !a->need_bind && device_backend(s, a->t, &a->req[0], &b, NULL) < 0)
                b = _VFIO_BACKEND_INVALID; /* acquire_backend() says why */
        unsigned modules = b >= 0 ? vfio_modules_for_backend(b) : 0;
        _cleanup_free_ char *why = NULL;
        int r;
        if (!a->need_bind && modules_present(s, modules)) {
                acquire_finish(c, a);
                return 0;
        }
        if (a->need_bind) {
                r = bind_plan_build(a->t, a->req, a->n_req, 0, &a->plan, &why);
                if (r < 0) {
                        char buf[PCI_ADDR_STRLEN];
                        return busy(c, pci_addr_format(&a->req[0], buf), "%s",
                                    detail_or_strerror(why, r));
                }
                if (devices_taken(c, a->plan.devices, a->plan.n_devices))
                        return 0;
                modules |= VFIO_MODULE_BIT(VFIO_MODULE_VFIO_PCI);
        }
        a->modules = modules;
        a = TAKE_PTR(*ap);
        if (a->plan.n_devices > 0)
                return call_job(c, "bind", a->plan.devices, a->plan.n_devices, acquire_bind_work,
                                acquire_bound, a, acquire_free);
        return call_job(c, "acquire", a->req, a->n_req, acquire_bind_work, acquire_bound, a,
                        acquire_free);
}

int method_acquire(struct conn *c, struct jspan params, int *fds, size_t n_fds)
{
        _cleanup_(acquire_freep) struct acquire *a = acquire_new();
        if (!a)
                return -ENOMEM;
        int r = acquire_read_params(c, params, a);
        if (r == 0)
                r = acquire_check(c, a);
        if (r == 0)
                r = acquire_holder(c, a, fds, n_fds);
        if (r == 0)
                return acquire_start(c, &a);
        return r < 0 ? r : 0;
}

int method_release(struct conn *c, struct jspan params, int *fds, size_t n_fds)
{
        struct server *s = c->server;
        static const struct param table[] = {
                {"lease", PARAM_INT, true, 0, .min = 1, .max = INT64_MAX},
        };
        int64_t lease;
        int r = READ_PARAMS(c, params, table, &lease);
        if (r != 0)
                return r < 0 ? r : 0;
        uint64_t id = (uint64_t)lease;
        for (size_t i = 0; i < s->n_leases; i++) {
                struct lease *l = s->leases[i];
                if (l->id != id)
                        continue;
                if (l->uid != c->cred.uid && !c->admin)
                        break; /* someone else's: as if there were none */
                if (l->ending) {
                        char buf[PCI_ADDR_STRLEN];
                        return lease_busy(c, pci_addr_format(&l->devices[0], buf), l);
                }
                for (size_t k = 0; k < l->n_devices; k++) {
                        int pid;
                        char buf[PCI_ADDR_STRLEN];
                        if (lease_device_held(s, l, k, &pid))
                                return pid > 0 ? busy(c, pci_addr_format(&l->devices[k], buf),
                                                      "still open in pid %d: close its file "
                                                      "descriptors before Release",
                                                      pid)
                                               : busy(c, pci_addr_format(&l->devices[k], buf),
                                                      "still in use through VFIO: close its "
                                                      "file descriptors before Release");
                }
                /* Answered once its devices are back. */
                lease_end(s, l, "lease-released", /* checked= */ true, c);
                return 0;
        }
        json_object *p = json_object_new_object();
        if (!p)
                return -ENOMEM;
        json_object_object_add(p, "lease", json_object_new_int64((int64_t)id));
        return conn_error(c, "io.vfiod.NoSuchLease", p);
}

int method_list_leases(struct conn *c, struct jspan params, int *fds, size_t n_fds)
{
        struct server *s = c->server;
        int r = read_no_params(c, params);
        if (r != 0)
                return r < 0 ? r : 0;
        struct jbuf p = {};
        jbuf_lit(&p, "{\"leases\":[");
        bool first = true;
        for (size_t i = 0; i < s->n_leases; i++) {
                if (s->leases[i]->uid != c->cred.uid && !c->admin)
                        continue;
                if (!first)
                        jbuf_lit(&p, ",");
                first = false;
                const struct lease *l = s->leases[i];
                lease_write_json(l, false, &p);
                /* Its state, inside the object lease_write_json() closed. */
                if (!p.oom && p.len > 0)
                        p.len--;
                jbuf_lit(&p, ",\"state\":");
                jbuf_str(&p, l->ending ? "ending" : "active");
                if (l->ending) {
                        jbuf_lit(&p, ",\"pending\":[");
                        bool firstp = true;
                        for (size_t k = 0; k < l->n_devices; k++) {
                                if (l->returning[k] == LEASE_DEVICE_RETURNED)
                                        continue;
                                char buf[PCI_ADDR_STRLEN];
                                if (!firstp)
                                        jbuf_lit(&p, ",");
                                firstp = false;
                                jbuf_lit(&p, "{\"address\":");
                                jbuf_str(&p, pci_addr_format(&l->devices[k], buf));
                                jbuf_lit(&p, ",\"state\":");
                                jbuf_str(&p, lease_device_state_to_string(l->returning[k]));
                                struct job *j = job_of_device(s, &l->devices[k]);
                                if (j) {
                                        jbuf_lit(&p, ",\"operation\":");
                                        job_write_json(j, &p);
                                }
                                jbuf_lit(&p, "}");
                        }
                        jbuf_lit(&p, "]");
                }
                jbuf_lit(&p, "}");
        }
        jbuf_lit(&p, "]}");
        r = p.oom ? -ENOMEM : conn_reply_text(c, &p, NULL, 0);
        jbuf_done(&p);
        return r;
}
