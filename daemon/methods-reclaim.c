/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Reclaim: the host takes a leased device back, by asking its holder first.
 *
 * The holder is sent the device's VFIO request (vfio/request.h): QEMU answers by
 * unplugging the device from its guest and closing its files. A worker sends it and
 * then waits, up to the call's timeout, for the lease's devices to be closed everywhere;
 * then the lease ends as a Release would end it, and its devices go back to the pool or
 * to their drivers. A holder that keeps them past the timeout is named in the error and
 * keeps its lease: nothing changed. With force the lease ends anyway: the holder loses
 * its rights (its group nodes' ACL entries, its raised RLIMIT_MEMLOCK), its devices are
 * never handed out again while open, and each one due back to its driver is restored
 * once its last file closes.
 *
 * The request is sent, not an unbind started: the kernel sends the same request while an
 * unbind waits, but it cannot take the unbind back, and a holder that ignores it would
 * leave the device half removed (its files working, no new open possible) for as long as
 * it likes. A lease is reclaimed whole: a type1 lease's devices share their groups'
 * container, and one VMM rarely runs on with part of its devices. */

#include "methods-internal.h"
#include "request.h"

/* The request is sent again this often while the holder keeps the device, as the
 * kernel does while an unbind waits: a guest that was not ready to hear the first one
 * (still booting, say) hears a later one. */
#define RECLAIM_RESEND_USEC (10u * 1000000u)
/* How often the worker looks whether the devices are closed. */
#define RECLAIM_POLL_USEC       (100u * 1000u)
#define RECLAIM_TIMEOUT_DEFAULT 30
#define RECLAIM_TIMEOUT_MAX     3600

struct reclaim {
        uint64_t lease;
        pid_t pid; /* the holder */
        bool iommufd;
        bool force;
        uint64_t timeout_usec;
        struct pci_addr asked; /* the device the call named */
        struct pci_addr *devices;
        size_t n_devices;
};

static void reclaim_free(void *p)
{
        struct reclaim *rc = p;
        if (!rc)
                return;
        free(rc->devices);
        free(rc);
}

/* In the worker: whether device a is still open anywhere. A cdev file is found in
 * /proc; a type1 device's group node is open once at most, and a file in flight keeps it
 * so, which /proc cannot see. (An iommufd lease's group node may be held by the other
 * devices of its group, leased elsewhere: it does not answer for this device.) */
static bool device_still_open(struct server *s, const struct reclaim *rc, const struct pci_addr *a,
                              int *ret_pid)
{
        if (vfio_device_open_by(s->root, a, ret_pid) > 0)
                return true;
        return !rc->iommufd && vfio_device_group_busy(s->root, a) > 0;
}

/* Sends the request for every device of the lease; the first failure's sentence in
 * *first_why (when there is none yet). */
static void reclaim_ask(struct server *s, const struct reclaim *rc, char **first_why)
{
        for (size_t i = 0; i < rc->n_devices; i++) {
                _cleanup_free_ char *why = NULL;
                pid_t who = 0;
                int r = vfio_device_request(s->root, &rc->devices[i], rc->pid, &who, &why);
                if (r < 0 && r != -ENOENT && !*first_why)
                        *first_why = TAKE_PTR(why);
        }
}

static int reclaim_work(struct server *s, void *data, char **ret_why)
{
        struct reclaim *rc = data;
        _cleanup_free_ char *told = NULL;
        uint64_t start = clock_usec(CLOCK_MONOTONIC), sent = start;
        reclaim_ask(s, rc, &told);
        for (;;) {
                int pid = 0;
                ssize_t open = -1;
                for (size_t i = 0; open < 0 && i < rc->n_devices; i++)
                        if (device_still_open(s, rc, &rc->devices[i], &pid))
                                open = (ssize_t)i;
                if (open < 0)
                        return 0;
                uint64_t now = clock_usec(CLOCK_MONOTONIC);
                if (now - start >= rc->timeout_usec) {
                        char buf[PCI_ADDR_STRLEN], holder[32] = "a process vfiod cannot name";
                        if (pid > 0)
                                snprintf(holder, sizeof(holder), "pid %d", pid);
                        (void)asprintf(ret_why, "%s still has %s open after %" PRIu64 " s%s%s",
                                       holder, pci_addr_format(&rc->devices[open], buf),
                                       rc->timeout_usec / 1000000u, told ? "; " : "",
                                       strempty(told));
                        return -ETIMEDOUT;
                }
                if (now - sent >= RECLAIM_RESEND_USEC) {
                        sent = now;
                        reclaim_ask(s, rc, &told);
                }
                uint64_t left = rc->timeout_usec - (now - start);
                (void)usleep((useconds_t)(left < RECLAIM_POLL_USEC ? left : RECLAIM_POLL_USEC));
        }
}

/* The reply: the lease and its holder, and whether it was ended by force. */
static json_object *reclaim_reply(const struct reclaim *rc, bool forced)
{
        json_object *p = json_object_new_object();
        if (!p)
                return NULL;
        json_object_object_add(p, "lease", json_object_new_int64((int64_t)rc->lease));
        json_object_object_add(p, "pid", json_object_new_int(rc->pid));
        json_object_object_add(p, "forced", json_object_new_boolean(forced));
        return p;
}

/* The timeout passed without force: each device still open, and by whom. */
static int reclaim_timed_out(struct conn *c, struct lease *l, const struct reclaim *rc,
                             const char *why)
{
        struct server *s = c->server;
        json_object *p = json_object_new_object(), *open = json_object_new_array();
        if (!p || !open) {
                json_object_put(p);
                json_object_put(open);
                return -ENOMEM;
        }
        char buf[PCI_ADDR_STRLEN];
        for (size_t k = 0; k < l->n_devices; k++) {
                int pid;
                if (!lease_device_held(s, l, k, &pid))
                        continue;
                json_object *o = json_object_new_object();
                if (!o)
                        continue;
                json_object_object_add(
                        o, "address", json_object_new_string(pci_addr_format(&l->devices[k], buf)));
                if (pid > 0)
                        json_object_object_add(o, "pid", json_object_new_int(pid));
                json_object_array_add(open, o);
        }
        json_object_object_add(p, "address",
                               json_object_new_string(pci_addr_format(&rc->asked, buf)));
        json_object_object_add(p, "lease", json_object_new_int64((int64_t)l->id));
        json_object_object_add(p, "pid", json_object_new_int(l->pid));
        json_object_object_add(p, "open", open);
        json_object_object_add(p, "reason", json_object_new_string(why ? why : "timed out"));
        return conn_error(c, "io.vfiod.ReclaimTimedOut", p);
}

static void reclaim_done(struct server *s, struct job *j, int r, const char *why)
{
        struct reclaim *rc = j->data;
        /* Answered here, or by the lease's end (which may start a restore that the call
         * then waits for). */
        struct conn *c = j->conn;
        job_forget_conn(j);
        struct lease *l = lease_by_id(s, rc->lease);
        char buf[PCI_ADDR_STRLEN];
        const char *name = pci_addr_format(&rc->asked, buf);
        if (!l || l->ending) {
                /* Released, or its holder exited, meanwhile: the lease ended without us. */
                log_msg(LOG_INFO, "reclaim of %s: lease %" PRIu64 " ended meanwhile", name,
                        rc->lease);
                if (c) {
                        (void)conn_reply(c, reclaim_reply(rc, false), NULL, 0);
                        conn_resume(c);
                }
                return;
        }
        bool forced = r == -ETIMEDOUT && rc->force;
        if (r == 0 || forced) {
                log_msg(forced ? LOG_WARNING : LOG_INFO,
                        "reclaim of %s: lease %" PRIu64 " of pid %d ends%s%s", name, l->id,
                        (int)l->pid, forced ? " by force: " : "", forced ? strempty(why) : "");
                json_object_put(l->end_reply);
                l->end_reply = reclaim_reply(rc, forced);
                lease_end(s, l, "lease-reclaimed", /* checked= */ false, c);
                if (c && !c->job)
                        conn_resume(c);
                return;
        }
        log_msg(LOG_NOTICE, "reclaim of %s: %s", name, detail_or_strerror(why, r));
        if (!c)
                return;
        if (r == -ETIMEDOUT) {
                if (reclaim_timed_out(c, l, rc, why) < 0)
                        (void)errno_error(c, "reclaim", &rc->asked, -ENOMEM, NULL);
        } else
                (void)errno_error(c, "reclaim", &rc->asked, r, why);
        conn_resume(c);
}

int method_reclaim(struct conn *c, struct jspan params, int *fds, size_t n_fds)
{
        struct server *s = c->server;
        struct {
                struct pci_addr device;
                int64_t timeout;
                int force;
        } p;
        static const struct param table[] = {
                {"device", PARAM_ADDRESS, true, offsetof(typeof(p), device)},
                {"timeout", PARAM_INT, false, offsetof(typeof(p), timeout), .min = 0,
                 .max = RECLAIM_TIMEOUT_MAX},
                {"force", PARAM_BOOL, false, offsetof(typeof(p), force)},
        };
        int r = READ_PARAMS(c, params, table, &p);
        if (r != 0)
                return r < 0 ? r : 0;
        const struct topology *t;
        r = server_topology_for(s, &p.device, 1, &t);
        if (r < 0)
                return errno_error(c, "scan", NULL, r, NULL);
        /* Taking a device from its holder changes its driver as Unbind does. */
        if (device_allowed(c, POLICY_OP_BIND, t, &p.device, NULL, NULL))
                return 0;
        char buf[PCI_ADDR_STRLEN];
        const char *name = pci_addr_format(&p.device, buf);
        struct lease *l = lease_of_device(s, &p.device);
        if (!l)
                return conn_errorf(c, "io.vfiod.NotLeased", "address", name, NULL);
        if (l->ending)
                return lease_busy(c, name, l);
        struct job *running = job_of_device(s, &p.device);
        if (running) {
                char what[160];
                return busy(c, name, "%s", job_describe(running, what, sizeof(what)));
        }

        struct reclaim *rc = calloc(1, sizeof(*rc));
        if (!rc || !(rc->devices = calloc(l->n_devices, sizeof(*rc->devices)))) {
                reclaim_free(rc);
                return -ENOMEM;
        }
        memcpy(rc->devices, l->devices, l->n_devices * sizeof(*rc->devices));
        rc->n_devices = l->n_devices;
        rc->lease = l->id;
        rc->pid = l->pid;
        rc->iommufd = l->backend == VFIO_BACKEND_IOMMUFD;
        rc->force = p.force > 0;
        rc->asked = p.device;
        rc->timeout_usec =
                (uint64_t)(p.timeout >= 0 ? p.timeout : RECLAIM_TIMEOUT_DEFAULT) * 1000000u;
        log_msg(LOG_INFO, "uid %u pid %d: reclaim of %s from lease %" PRIu64 " (pid %d)%s",
                c->cred.uid, (int)c->cred.pid, name, l->id, (int)l->pid,
                rc->force ? ", by force after the timeout" : "");
        /* The worker's own deadline is the timeout: its answer comes within a second of
         * it (one look at the devices); the job's is later, so that the call is answered
         * by the worker, not as OperationPending. */
        r = job_start(s,
                      &(struct job_spec){.operation = "reclaim",
                                         .devices = rc->devices,
                                         .n_devices = rc->n_devices,
                                         .work = reclaim_work,
                                         .done = reclaim_done,
                                         .data = rc,
                                         .free_data = reclaim_free,
                                         .conn = c,
                                         .deadline_usec = rc->timeout_usec + 10u * 1000000u},
                      NULL);
        if (r < 0) {
                reclaim_free(rc);
                return errno_error(c, "reclaim", &p.device, r, "cannot start a worker process");
        }
        return 0;
}
