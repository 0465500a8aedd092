/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Bind and Unbind: each runs as a job, in a worker process. */

#include "methods-internal.h"

/* ---- bind, unbind ------------------------------------------------------------------- */

/* A bind job: the plan, applied in the worker with the modules it needs. */
struct bind_job {
        struct bind_plan plan;
        unsigned modules; /* VFIO_MODULE_BIT()s to load first */
        const char *operation;
};

static void bind_job_free(void *p)
{
        struct bind_job *bj = p;
        if (!bj)
                return;
        bind_plan_done(&bj->plan);
        free(bj);
}

static int bind_job_work(struct server *s, void *data, char **ret_why)
{
        struct bind_job *bj = data;
        _cleanup_(journal_freep) struct journal *j = NULL;
        int r = modules_need(s, bj->modules, ret_why);
        if (r >= 0)
                r = plan_drivers_need(s, &bj->plan, ret_why);
        if (r >= 0)
                r = open_journal(s, &j);
        if (r >= 0)
                r = vfio_bind_plan(s->root, j, &bj->plan, false, ret_why);
        return r;
}

static void bind_job_done(struct server *s, struct job *j, int r, const char *why)
{
        struct bind_job *bj = j->data;
        server_invalidate(s);
        s->have_iommufd = -1; /* a module loaded by the worker may have brought /dev/iommu */
        if (r >= 0)
                for (size_t i = 0; i < bj->plan.n_devices; i++)
                        server_broadcast(s, "device-changed", &bj->plan.devices[i], 0);
        if (!j->conn)
                return;
        if (r < 0) {
                (void)errno_error(j->conn, "bind", NULL, r, why);
                return;
        }
        json_object *p = json_object_new_object();
        if (p)
                json_object_object_add(
                        p, "bound", json_address_array_new(bj->plan.devices, bj->plan.n_devices));
        (void)(p ? conn_reply(j->conn, p, NULL, 0)
                 : conn_errorf(j->conn, "io.vfiod.OperationFailed", "operation", "bind", NULL));
}

int method_bind(struct conn *c, struct jspan params, int *fds, size_t n_fds)
{
        struct server *s = c->server;
        struct {
                struct pci_addrs devices;
                int group, force;
        } p;
        static const struct param table[] = {
                {"devices", PARAM_ADDRESSES, true, offsetof(typeof(p), devices), .max = 256},
                {"group", PARAM_BOOL, false, offsetof(typeof(p), group)},
                {"force", PARAM_BOOL, false, offsetof(typeof(p), force)},
        };
        int r = READ_PARAMS(c, params, table, &p);
        if (r != 0)
                return r < 0 ? r : 0;
        _cleanup_free_ struct pci_addr *req = p.devices.v;
        size_t n_req = p.devices.n;
        bool group = p.group > 0, force = p.force > 0;

        const struct topology *t;
        r = server_topology_for(s, req, n_req, &t);
        if (r < 0)
                return errno_error(c, "scan", NULL, r, NULL);
        for (size_t i = 0; i < n_req; i++)
                if (refuse_bridge(c, t, &req[i]) ||
                    device_allowed(c, POLICY_OP_BIND, t, &req[i], NULL, NULL))
                        return 0;

        struct bind_job *bj = calloc(1, sizeof(*bj));
        if (!bj)
                return -ENOMEM;
        _cleanup_free_ char *why = NULL;
        r = bind_plan_build(t, req, n_req, (group ? BIND_GROUP : 0) | (force ? BIND_FORCE : 0),
                            &bj->plan, &why);
        if (r < 0) {
                char buf[PCI_ADDR_STRLEN];
                bind_job_free(bj);
                return busy(c, pci_addr_format(&req[0], buf), "%s", detail_or_strerror(why, r));
        }
        /* The plan may add group members: each needs the right too, and none may be in
         * another operation or lease. */
        for (size_t i = 0; i < bj->plan.n_devices; i++)
                if (device_allowed(c, POLICY_OP_BIND, t, &bj->plan.devices[i], NULL, NULL)) {
                        bind_job_free(bj);
                        return 0;
                }
        if (devices_taken(c, bj->plan.devices, bj->plan.n_devices)) {
                bind_job_free(bj);
                return 0;
        }
        bj->modules = VFIO_MODULE_BIT(VFIO_MODULE_VFIO_PCI);
        return call_job(c, "bind", bj->plan.devices, bj->plan.n_devices, bind_job_work,
                        bind_job_done, bj, bind_job_free);
}

/* An unbind job: the devices, in order, back to their drivers; the first failure stops
 * it (the ones before are back). */
struct unbind_job {
        struct pci_addr *devices;
        size_t n_devices;
};

static void unbind_job_free(void *p)
{
        struct unbind_job *uj = p;
        if (!uj)
                return;
        free(uj->devices);
        free(uj);
}

static int unbind_job_work(struct server *s, void *data, char **ret_why)
{
        struct unbind_job *uj = data;
        _cleanup_(journal_freep) struct journal *j = NULL;
        int r = open_journal(s, &j);
        if (r < 0) {
                *ret_why = strdup("cannot open the journal");
                return r;
        }
        for (size_t i = 0; i < uj->n_devices; i++) {
                r = vfio_device_restore(s->root, j, &uj->devices[i], ret_why);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void unbind_job_done(struct server *s, struct job *j, int r, const char *why)
{
        struct unbind_job *uj = j->data;
        server_invalidate(s);
        for (size_t i = 0; i < uj->n_devices; i++)
                server_broadcast(s, "device-changed", &uj->devices[i], 0);
        if (!j->conn)
                return;
        if (r < 0) {
                (void)errno_error(j->conn, "unbind", NULL, r, why);
                return;
        }
        json_object *p = json_object_new_object();
        if (p)
                json_object_object_add(p, "restored",
                                       json_address_array_new(uj->devices, uj->n_devices));
        (void)(p ? conn_reply(j->conn, p, NULL, 0)
                 : conn_errorf(j->conn, "io.vfiod.OperationFailed", "operation", "unbind", NULL));
}

int method_unbind(struct conn *c, struct jspan params, int *fds, size_t n_fds)
{
        struct server *s = c->server;
        static const struct param table[] = {
                {"devices", PARAM_ADDRESSES, true, 0, .max = 256},
        };
        struct pci_addrs devices;
        int r = READ_PARAMS(c, params, table, &devices);
        if (r != 0)
                return r < 0 ? r : 0;
        _cleanup_free_ struct pci_addr *req = devices.v;
        size_t n_req = devices.n;
        const struct topology *t;
        r = server_topology_for(s, req, n_req, &t);
        if (r < 0)
                return errno_error(c, "scan", NULL, r, NULL);
        for (size_t i = 0; i < n_req; i++) {
                const struct pci_device *d;
                if (device_allowed(c, POLICY_OP_BIND, t, &req[i], &d, NULL))
                        return 0;
        }
        if (devices_taken(c, req, n_req))
                return 0;
        for (size_t i = 0; i < n_req; i++) {
                const struct pci_device *d = topology_find_device(t, &req[i]);
                /* The kernel holds the unbind until the holder lets go (asking it to,
                 * through the device's request interrupt). Other users are told who has
                 * it; root's admin socket may ask for it back and wait, in the job. */
                int pid;
                if (!c->admin && vfio_device_open_by(s->root, &req[i], &pid) > 0)
                        return busy(c, d->name, "open through VFIO in pid %d", pid);
                if (c->admin && device_open_elsewhere(s, &req[i], &pid) > 0)
                        log_msg(LOG_NOTICE,
                                "%s: unbind asked for while open (pid %d, 0: unknown): it "
                                "completes when that file is closed",
                                d->name, pid);
        }
        struct unbind_job *uj = calloc(1, sizeof(*uj));
        if (!uj)
                return -ENOMEM;
        uj->devices = TAKE_PTR(req);
        uj->n_devices = n_req;
        return call_job(c, "unbind", uj->devices, uj->n_devices, unbind_job_work, unbind_job_done,
                        uj, unbind_job_free);
}
