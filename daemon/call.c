/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What every method uses: the answers for bad parameters and failed operations, the
 * policy's verdicts, the refusals of devices that are busy, and jobs started for a call. */

#include "methods-internal.h"

/* ---- parameters --------------------------------------------------------------------- */

/* Refuses every parameter: for the methods that take none. */
int read_no_params(struct conn *c, struct jspan params)
{
        return params_read(c, params, NULL, 0, NULL);
}

int errno_error(struct conn *c, const char *operation, const struct pci_addr *a, int r,
                const char *message)
{
        json_object *p = json_object_new_object();
        if (!p)
                return -ENOMEM;
        char buf[PCI_ADDR_STRLEN], ebuf[128];
        json_object_object_add(p, "operation", json_object_new_string(operation));
        if (a)
                json_object_object_add(p, "address",
                                       json_object_new_string(pci_addr_format(a, buf)));
        json_object_object_add(p, "errno", json_object_new_int(r < 0 ? -r : r));
        json_object_object_add(
                p, "message",
                json_object_new_string(message ? message : strerror_r(-r, ebuf, sizeof(ebuf))));
        return conn_error(c, "io.vfiod.OperationFailed", p);
}

/* ---- authorization ------------------------------------------------------------------ */

const struct policy_rule *allowed(struct conn *c, enum policy_op op, const struct topology *t,
                                  const struct pci_device *d)
{
        static const struct policy_rule admin_rule = {.on_release = RELEASE_RESTORE,
                                                      .memlock = POLICY_MEMLOCK_UNSET};
        if (c->admin)
                return &admin_rule;
        struct policy_client pc = {
                .uid = c->cred.uid,
                .gid = c->cred.gid,
                .groups = c->groups,
                .n_groups = c->n_groups,
        };
        return policy_check(c->server->policy, &pc, op, t, d);
}

/* Whether op covers every device for the caller. When not, a rule of the caller names
 * devices: list, audit and monitor show only those that allowed() grants one by one. */
bool allowed_everywhere(struct conn *c, enum policy_op op)
{
        if (c->admin)
                return true;
        struct policy_client pc = {
                .uid = c->cred.uid,
                .gid = c->cred.gid,
                .groups = c->groups,
                .n_groups = c->n_groups,
        };
        return policy_grants_every_device(c->server->policy, &pc, op);
}

/* A group is shown to a scoped caller when op covers one of its members. */
bool group_allowed(struct conn *c, enum policy_op op, const struct topology *t,
                   const struct iommu_group *g)
{
        for (size_t k = 0; k < g->n_members; k++)
                if (allowed(c, op, t, topology_device(t, g->members[k])))
                        return true;
        return false;
}

int denied(struct conn *c, enum policy_op op, const struct pci_device *d)
{
        log_msg(LOG_NOTICE, "uid %u pid %d: %s%s%s denied by policy", c->cred.uid, (int)c->cred.pid,
                policy_op_to_string(op), d ? " on " : "", d ? d->name : "");
        return conn_errorf(c, "io.vfiod.PermissionDenied", "operation", policy_op_to_string(op),
                           "address", d ? d->name : NULL, NULL);
}

/* Looks the device up and checks op on it; answers and returns 1 when refused. */
int device_allowed(struct conn *c, enum policy_op op, const struct topology *t,
                   const struct pci_addr *a, const struct pci_device **ret,
                   const struct policy_rule **ret_rule)
{
        const struct pci_device *d = topology_find_device(t, a);
        if (!d) {
                char buf[PCI_ADDR_STRLEN];
                /* Whether a device exists is no secret: sysfs shows every PCI function
                 * to every user. */
                conn_errorf(c, "io.vfiod.NoSuchDevice", "address", pci_addr_format(a, buf), NULL);
                return 1;
        }
        const struct policy_rule *rule = allowed(c, op, t, d);
        if (!rule) {
                denied(c, op, d);
                return 1;
        }
        if (ret)
                *ret = d;
        if (ret_rule)
                *ret_rule = rule;
        return 0;
}

/* The lease that has device a: held, or being given back from an ended lease. */
struct lease *lease_of_device(struct server *s, const struct pci_addr *a)
{
        for (size_t i = 0; i < s->n_leases; i++) {
                const struct lease *l = s->leases[i];
                for (size_t k = 0; k < l->n_devices; k++)
                        if (pci_addr_equal(&l->devices[k], a) &&
                            (!l->ending || l->returning[k] != LEASE_DEVICE_RETURNED))
                                return s->leases[i];
        }
        return NULL;
}

int busy(struct conn *c, const char *address, const char *fmt, ...)
{
        _cleanup_free_ char *reason = NULL;
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&reason, fmt, ap) < 0)
                reason = NULL;
        va_end(ap);
        return conn_errorf(c, "io.vfiod.DeviceBusy", "address", address, "reason",
                           reason ? reason : "busy", NULL);
}

/* DeviceBusy for a device of lease l, or of a running job. */
int lease_busy(struct conn *c, const char *address, const struct lease *l)
{
        if (l->ending)
                return busy(c, address,
                            "being given back from lease %" PRIu64 " (pid %d), which ended: "
                            "restore in progress, or waiting for a file of it to close",
                            l->id, (int)l->pid);
        return busy(c, address, "leased to pid %d (lease %" PRIu64 ")", (int)l->pid, l->id);
}

static int job_busy(struct conn *c, const char *address, const struct job *j)
{
        char what[160];
        return busy(c, address, "%s", job_describe(j, what, sizeof(what)));
}

/* Answers DeviceBusy and returns 1 when one of a[0..n) is leased or in a running job. */
int devices_taken(struct conn *c, const struct pci_addr *a, size_t n)
{
        struct server *s = c->server;
        for (size_t i = 0; i < n; i++) {
                char buf[PCI_ADDR_STRLEN];
                struct job *j = job_of_device(s, &a[i]);
                if (j)
                        return job_busy(c, pci_addr_format(&a[i], buf), j), 1;
                struct lease *l = lease_of_device(s, &a[i]);
                if (l)
                        return lease_busy(c, pci_addr_format(&a[i], buf), l), 1;
        }
        return 0;
}

/* A bridge is never bound to vfio-pci or handed out, whatever a rule says (a vendor
 * selector such as "8086:*" also matches the host bridge): answers with why and returns
 * 1 when a names one. Before the policy, so that the answer says what is wrong. */
int refuse_bridge(struct conn *c, const struct topology *t, const struct pci_addr *a)
{
        const struct pci_device *d = topology_find_device(t, a);
        if (!d || !pci_device_is_bridge(d))
                return 0;
        char kind[64];
        log_msg(LOG_NOTICE, "uid %u pid %d: %s is a bridge (%s): refused", c->cred.uid,
                (int)c->cred.pid, d->name, pci_device_bridge_kind(d, kind, sizeof(kind)));
        busy(c, d->name,
             "a bridge (%s): bridges stay with the host and are never bound to vfio-pci or "
             "handed out, whatever the policy says",
             kind);
        return 1;
}

/* Whether the modules in want are there. Once seen they are taken to stay until the
 * topology is dropped, so that an Acquire checks nothing in sysfs: a module in use cannot
 * be removed, and one removed while unused fails the open that needs it, with the
 * kernel's error, until the next rescan. */
bool modules_present(struct server *s, unsigned want)
{
        if ((s->modules_present & want) == want)
                return true;
        if (vfio_modules_check(s->root, want, NULL) < 0)
                return false;
        s->modules_present |= want;
        return true;
}

/* Loads the kernel modules an operation needs that are absent (vfio_modules_need()),
 * logging each one loaded. */
int modules_need(struct server *s, unsigned want, char **ret_detail)
{
        if (modules_present(s, want))
                return 0;
        _cleanup_(strv_freep) char **loaded = NULL;
        int r = vfio_modules_need(s->root, want, &loaded, ret_detail);

        if (r < 0)
                return r;
        s->modules_present |= want;
        STRV_FOREACH (m, loaded)
                log_msg(LOG_INFO, "loaded kernel module %s", *m);
        if (loaded)
                s->have_iommufd = -1; /* /dev/iommu may have come with it */
        return 0;
}

/* In a worker, before the plan is applied: the VFIO driver of each device chosen (a
 * variant where modules.alias names one) and the modules they need loaded, each logged. */
int plan_drivers_need(struct server *s, struct bind_plan *p, char **ret_detail)
{
        _cleanup_(strv_freep) char **loaded = NULL;
        int r = bind_plan_choose_drivers(s->root, p, NULL, ret_detail);

        if (r >= 0)
                r = bind_plan_need_drivers(s->root, p, &loaded, ret_detail);
        if (r < 0)
                return r;
        STRV_FOREACH (n, p->notes)
                log_msg(LOG_INFO, "%s", *n);
        STRV_FOREACH (m, loaded)
                log_msg(LOG_INFO, "loaded kernel module %s", *m);
        return 0;
}

int open_journal(struct server *s, struct journal **ret)
{
        return journal_open(s->root, s->cfg.state_dir, ret);
}

/* Starts a call's job: c waits for its answer (done() gives it). When it cannot start,
 * data is freed and c told why. */
int call_job(struct conn *c, const char *operation, const struct pci_addr *devices,
             size_t n_devices, job_work_fn work, job_done_fn done, void *data,
             void (*free_data)(void *data))
{
        /* Out of the CDI spec before the kernel changes anything. */
        cdi_export_now(c->server, devices, n_devices);
        int r = job_start(c->server,
                          &(struct job_spec){.operation = operation,
                                             .devices = devices,
                                             .n_devices = n_devices,
                                             .work = work,
                                             .done = done,
                                             .data = data,
                                             .free_data = free_data,
                                             .conn = c},
                          NULL);
        if (r < 0) {
                free_data(data);
                return errno_error(c, operation, n_devices ? &devices[0] : NULL, r,
                                   "cannot start a worker process");
        }
        return 0;
}
