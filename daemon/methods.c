/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The io.vfiod methods and the life of a lease. Each handler answers the call itself
 * (a reply or a varlink error) and returns 0, or returns -errno when it failed before it
 * could, and the dispatcher answers io.vfiod.OperationFailed. */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "bind.h"
#include "detail.h"
#include "device.h"
#include "iommu.h"
#include "journal.h"
#include "macro.h"
#include "modules.h"
#include "node-access.h"
#include "params.h"
#include "reset.h"
#include "server.h"
#include "sriov.h"
#include "strv.h"
#include "sysfs-pci.h"
#include "topology-json.h"
#include "vfiod-interface.h"

/* ---- parameters --------------------------------------------------------------------- */

/* Refuses every parameter: for the methods that take none. */
static int read_no_params(struct conn *c, struct jspan params)
{
        return params_read(c, params, NULL, 0, NULL);
}

#define READ_PARAMS(c, params, table, out) params_read(c, params, table, ELEMENTSOF(table), out)

static int errno_error(struct conn *c, const char *operation, const struct pci_addr *a, int r,
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

static const struct policy_rule *allowed(struct conn *c, enum policy_op op,
                                         const struct topology *t, const struct pci_device *d)
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
static bool allowed_everywhere(struct conn *c, enum policy_op op)
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
static bool group_allowed(struct conn *c, enum policy_op op, const struct topology *t,
                          const struct iommu_group *g)
{
        for (size_t k = 0; k < g->n_members; k++)
                if (allowed(c, op, t, topology_device(t, g->members[k])))
                        return true;
        return false;
}

static int denied(struct conn *c, enum policy_op op, const struct pci_device *d)
{
        log_msg(LOG_NOTICE, "uid %u pid %d: %s%s%s denied by policy", c->cred.uid, (int)c->cred.pid,
                policy_op_to_string(op), d ? " on " : "", d ? d->name : "");
        return conn_errorf(c, "io.vfiod.PermissionDenied", "operation", policy_op_to_string(op),
                           "address", d ? d->name : NULL, NULL);
}

/* Looks the device up and checks op on it; answers and returns 1 when refused. */
static int device_allowed(struct conn *c, enum policy_op op, const struct topology *t,
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
static struct lease *lease_of_device(struct server *s, const struct pci_addr *a)
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

static int busy(struct conn *c, const char *address, const char *fmt, ...) _printf_(3, 4);
static int busy(struct conn *c, const char *address, const char *fmt, ...)
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
static int lease_busy(struct conn *c, const char *address, const struct lease *l)
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
static int devices_taken(struct conn *c, const struct pci_addr *a, size_t n)
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
static int refuse_bridge(struct conn *c, const struct topology *t, const struct pci_addr *a)
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

/* ---- org.varlink.service ------------------------------------------------------------ */

static int method_get_info(struct conn *c, struct jspan params, int *fds, size_t n_fds)
{
        int r = read_no_params(c, params);
        if (r != 0)
                return r < 0 ? r : 0;
        json_object *p = json_object_new_object(), *ifaces = json_object_new_array();
        if (!p || !ifaces) {
                json_object_put(p);
                json_object_put(ifaces);
                return -ENOMEM;
        }
        json_object_object_add(p, "vendor", json_object_new_string("vfiod"));
        json_object_object_add(p, "product", json_object_new_string("vfiod"));
        json_object_object_add(p, "version", json_object_new_string(VFIOD_VERSION));
        json_object_object_add(p, "url", json_object_new_string("man:vfiod(8)"));
        json_object_array_add(ifaces, json_object_new_string("org.varlink.service"));
        json_object_array_add(ifaces, json_object_new_string("io.vfiod"));
        json_object_object_add(p, "interfaces", ifaces);
        return conn_reply(c, p, NULL, 0);
}

static int method_get_interface_description(struct conn *c, struct jspan params, int *fds,
                                            size_t n_fds)
{
        static const struct param table[] = {
                {"interface", PARAM_STRING, true, 0, .size = 256},
        };
        char name[256];
        int r = READ_PARAMS(c, params, table, name);
        if (r != 0)
                return r < 0 ? r : 0;
        const char *text = strcmp(name, "io.vfiod") == 0 ? vfiod_interface_io_vfiod
                           : strcmp(name, "org.varlink.service") == 0
                                   ? vfiod_interface_org_varlink_service
                                   : NULL;
        if (!text)
                return conn_errorf(c, "org.varlink.service.InterfaceNotFound", "interface", name,
                                   NULL);
        json_object *p = json_object_new_object();
        if (!p)
                return -ENOMEM;
        json_object_object_add(p, "description", json_object_new_string(text));
        return conn_reply(c, p, NULL, 0);
}

/* ---- topology ----------------------------------------------------------------------- */

static json_object *device_item(const struct topology *t, size_t i)
{
        return json_device_new(t, &t->devices[i], false);
}

static json_object *group_item(const struct topology *t, size_t i)
{
        return json_group_new(t, &t->groups[i]);
}

/* The whole reply {"parameters": {key: [item(t, 0), ..., item(t, n - 1)]}}, as json-c
 * would write it, made one item at a time: no tree of thousands of objects at once, and
 * the heap is left as it was. With c, only what c's rules let it list (the devices they
 * name, and the groups that hold one). */
static int topology_list_text(const struct topology *t, const char *key, bool groups,
                              struct conn *c, struct varlink_text **ret)
{
        size_t n = groups ? t->n_groups : t->n_devices;
        json_object *(*item)(const struct topology *, size_t) = groups ? group_item : device_item;
        struct jbuf b = {};
        jbuf_lit(&b, "{\"parameters\":{");
        jbuf_str(&b, key);
        jbuf_lit(&b, ":[");
        bool first = true;
        for (size_t i = 0; i < n && !b.oom; i++) {
                if (c && !(groups ? group_allowed(c, POLICY_OP_LIST, t, &t->groups[i])
                                  : allowed(c, POLICY_OP_LIST, t, &t->devices[i]) != NULL))
                        continue;
                json_object *o = item(t, i);
                size_t len;
                const char *text =
                        o ? json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len)
                          : NULL;
                if (!text) {
                        json_object_put(o);
                        jbuf_done(&b);
                        return -ENOMEM;
                }
                if (!first)
                        jbuf_lit(&b, ",");
                first = false;
                jbuf_raw(&b, text, len);
                json_object_put(o);
        }
        jbuf_lit(&b, "]}}");
        if (b.oom) {
                jbuf_done(&b);
                return -ENOMEM;
        }
        /* Kept for as long as the topology: no slack past its end. */
        char *p = realloc(b.p, b.len + 1);
        if (p)
                b.p = p;
        int r = varlink_text_new(b.p, b.len, ret);
        if (r < 0)
                jbuf_done(&b);
        return r;
}

/* Replies {key: [...]} to a caller allowed to list: for one whose rules cover every
 * device, the text is made once for the topology and shared by every such caller until it
 * changes; one whose rules name devices gets its own, with only those. */
static int reply_topology_list(struct conn *c, const char *key, bool groups)
{
        struct server *s = c->server;
        const struct topology *t;
        int r = server_topology(s, &t);
        if (r < 0)
                return errno_error(c, "scan", NULL, r, NULL);
        if (!allowed(c, POLICY_OP_LIST, t, NULL))
                return denied(c, POLICY_OP_LIST, NULL);
        if (!allowed_everywhere(c, POLICY_OP_LIST)) {
                struct varlink_text *own;
                r = topology_list_text(t, key, groups, c, &own);
                if (r < 0)
                        return r;
                r = conn_reply_shared(c, own);
                varlink_text_unref(own);
                return r;
        }
        if (!s->list_text[groups]) {
                r = topology_list_text(t, key, groups, NULL, &s->list_text[groups]);
                if (r < 0)
                        return r;
                /* json-c's objects, one device's at a time, went back to the heap. */
                server_note_freed(s, s->list_text[groups]->len);
        }
        return conn_reply_shared(c, s->list_text[groups]);
}

static int method_list_devices(struct conn *c, struct jspan params, int *fds, size_t n_fds)
{
        int r = read_no_params(c, params);
        if (r != 0)
                return r < 0 ? r : 0;
        return reply_topology_list(c, "devices", false);
}

static int method_list_groups(struct conn *c, struct jspan params, int *fds, size_t n_fds)
{
        int r = read_no_params(c, params);
        if (r != 0)
                return r < 0 ? r : 0;
        return reply_topology_list(c, "groups", true);
}

static const char *const returning_names[] = {
        [LEASE_DEVICE_HELD] = "held",
        [LEASE_DEVICE_RETURNED] = "returned",
        [LEASE_DEVICE_RESTORING] = "restoring",
        [LEASE_DEVICE_WAITING] = "waiting for its files to close",
};

/* What is under way for device a: a running job ({operation, since, late}), or the
 * restore of an ended lease waiting for a file to close ({operation, lease, state});
 * NULL for nothing. */
static json_object *device_operation_json(struct server *s, const struct pci_addr *a)
{
        struct job *j = job_of_device(s, a);
        if (j) {
                struct jbuf b = {};
                job_write_json(j, &b);
                json_object *o = b.oom ? NULL : json_tokener_parse(b.p);
                jbuf_done(&b);
                return o;
        }
        struct lease *l = lease_of_device(s, a);
        if (!l || !l->ending)
                return NULL;
        for (size_t k = 0; k < l->n_devices; k++)
                if (pci_addr_equal(&l->devices[k], a)) {
                        json_object *o = json_object_new_object();
                        if (!o)
                                return NULL;
                        json_object_object_add(o, "operation", json_object_new_string("restore"));
                        json_object_object_add(o, "lease", json_object_new_int64((int64_t)l->id));
                        json_object_object_add(
                                o, "state",
                                json_object_new_string(returning_names[l->returning[k]]));
                        return o;
                }
        return NULL;
}

static int method_show_device(struct conn *c, struct jspan params, int *fds, size_t n_fds)
{
        static const struct param table[] = {
                {"address", PARAM_ADDRESS, true, 0},
        };
        struct pci_addr a;
        int r = READ_PARAMS(c, params, table, &a);
        if (r != 0)
                return r < 0 ? r : 0;
        const struct topology *t;
        r = server_topology_for(c->server, &a, 1, &t);
        if (r < 0)
                return errno_error(c, "scan", &a, r, NULL);
        const struct pci_device *d;
        if (device_allowed(c, POLICY_OP_LIST, t, &a, &d, NULL))
                return 0;
        json_object *p = json_object_new_object(), *o = json_device_new(t, d, true);
        if (!p || !o) {
                json_object_put(p);
                json_object_put(o);
                return -ENOMEM;
        }
        json_object *op = device_operation_json(c->server, &a);
        if (op)
                json_object_object_add(o, "operation", op);
        json_object_object_add(p, "device", o);
        return conn_reply(c, p, NULL, 0);
}

/* ---- bind, unbind ------------------------------------------------------------------- */

/* Loads the kernel modules an operation needs that are absent (vfio_modules_need()),
 * logging each one loaded. */
static int modules_need(struct server *s, unsigned want, char **ret_detail)
{
        _cleanup_(strv_freep) char **loaded = NULL;
        int r = vfio_modules_need(s->root, want, &loaded, ret_detail);

        if (r < 0)
                return r;
        STRV_FOREACH (m, loaded)
                log_msg(LOG_INFO, "loaded kernel module %s", *m);
        if (loaded)
                s->have_iommufd = -1; /* /dev/iommu may have come with it */
        return 0;
}

static int open_journal(struct server *s, struct journal **ret)
{
        return journal_open(s->root, s->cfg.state_dir, ret);
}

/* Starts a call's job: c waits for its answer (done() gives it). When it cannot start,
 * data is freed and c told why. */
static int call_job(struct conn *c, const char *operation, const struct pci_addr *devices,
                    size_t n_devices, job_work_fn work, job_done_fn done, void *data,
                    void (*free_data)(void *data))
{
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

static int method_bind(struct conn *c, struct jspan params, int *fds, size_t n_fds)
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
                return busy(c, pci_addr_format(&req[0], buf), "%s", why ? why : strerror(-r));
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

static int device_open_elsewhere(struct server *s, const struct pci_addr *a, int *ret_pid);

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

static int method_unbind(struct conn *c, struct jspan params, int *fds, size_t n_fds)
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

/* ---- SR-IOV ------------------------------------------------------------------------- */

/* A carve: the PF's VF count set, the VFs on the driver asked for (in the worker). */
struct sriov_job {
        struct pci_addr pf;
        int numvfs;
        enum sriov_driver driver;
        /* The scan the call was checked against: read in the worker only (its copy of
         * the daemon's memory keeps it, whatever the loop does meanwhile). */
        const struct topology *topology;
};

static int sriov_job_work(struct server *s, void *data, char **ret_why)
{
        struct sriov_job *sj = data;
        _cleanup_(journal_freep) struct journal *j = NULL;
        /* VFs for vfio-pci need it before the carve, which it would otherwise undo half
         * way. */
        int r = sj->driver == SRIOV_DRIVER_VFIO && sj->numvfs > 0
                        ? modules_need(s, VFIO_MODULE_BIT(VFIO_MODULE_VFIO_PCI), ret_why)
                        : 0;
        if (r >= 0)
                r = open_journal(s, &j);
        if (r >= 0)
                r = sriov_pf_set_numvfs(s->root, j, sj->topology, &sj->pf, sj->numvfs, sj->driver,
                                        ret_why);
        return r;
}

static void sriov_job_done(struct server *s, struct job *j, int r, const char *why)
{
        struct sriov_job *sj = j->data;
        server_invalidate(s);
        s->have_iommufd = -1;
        if (r >= 0)
                server_broadcast(s, "device-changed", &sj->pf, 0);
        if (!j->conn)
                return;
        if (r < 0) {
                (void)errno_error(j->conn, "sriov", &sj->pf, r, why);
                return;
        }
        struct sriov_pf info;
        json_object *p = json_object_new_object(), *vfs = json_object_new_array();
        if (!p || !vfs) {
                json_object_put(p);
                json_object_put(vfs);
                (void)conn_errorf(j->conn, "io.vfiod.OperationFailed", "operation", "sriov", NULL);
                return;
        }
        json_object_object_add(p, "vfs", vfs);
        if (sriov_pf_read(s->root, &sj->pf, &info) == 0)
                for (int i = 0; i < info.numvfs; i++) {
                        struct pci_addr a;
                        char buf[PCI_ADDR_STRLEN];
                        if (sriov_vf_address(&info, i, &a) == 0)
                                json_object_array_add(
                                        vfs, json_object_new_string(pci_addr_format(&a, buf)));
                }
        (void)conn_reply(j->conn, p, NULL, 0);
}

static int method_set_numvfs(struct conn *c, struct jspan params, int *fds, size_t n_fds)
{
        struct server *s = c->server;
        struct {
                struct pci_addr pf;
                int64_t numvfs;
                char driver[32];
        } p;
        static const struct param table[] = {
                {"pf", PARAM_ADDRESS, true, offsetof(typeof(p), pf)},
                {"numvfs", PARAM_INT, true, offsetof(typeof(p), numvfs), .max = 65535},
                {"driver", PARAM_STRING, false, offsetof(typeof(p), driver), .size = 32},
        };
        int r = READ_PARAMS(c, params, table, &p);
        if (r != 0)
                return r < 0 ? r : 0;
        struct pci_addr pf = p.pf;
        int64_t n = p.numvfs;
        enum sriov_driver driver = SRIOV_DRIVER_VFIO;
        if (strcmp(p.driver, "host") == 0)
                driver = SRIOV_DRIVER_HOST;
        else if (p.driver[0] && strcmp(p.driver, "vfio-pci") != 0)
                return params_invalid(c, "driver");

        const struct topology *t;
        r = server_topology_for(s, &pf, 1, &t);
        if (r < 0)
                return errno_error(c, "scan", NULL, r, NULL);
        const struct pci_device *d;
        if (device_allowed(c, POLICY_OP_SRIOV, t, &pf, &d, NULL))
                return 0;
        for (size_t i = 0; i < d->n_virtfn; i++) {
                const struct pci_device *vf = topology_device(t, d->virtfn[i]);
                struct lease *l = vf ? lease_of_device(s, &vf->addr) : NULL;
                if (l)
                        return busy(c, d->name, "VF %s is leased to pid %d", vf->name, (int)l->pid);
        }

        struct sriov_job *sj = calloc(1, sizeof(*sj));
        if (!sj)
                return -ENOMEM;
        sj->pf = pf;
        sj->numvfs = (int)n;
        sj->driver = driver;
        sj->topology = t;
        /* The PF and the VFs it has now are busy while it runs. */
        _cleanup_free_ struct pci_addr *busy_set = calloc(1 + d->n_virtfn, sizeof(*busy_set));
        size_t n_busy = 0;
        if (!busy_set) {
                free(sj);
                return -ENOMEM;
        }
        busy_set[n_busy++] = pf;
        for (size_t i = 0; i < d->n_virtfn; i++) {
                const struct pci_device *vf = topology_device(t, d->virtfn[i]);
                if (vf)
                        busy_set[n_busy++] = vf->addr;
        }
        if (devices_taken(c, busy_set, n_busy)) {
                free(sj);
                return 0;
        }
        return call_job(c, "sriov", busy_set, n_busy, sriov_job_work, sriov_job_done, sj, free);
}

/* A VF's settings, written through the PF's netdev in the worker. */
struct vf_job {
        struct pci_addr pf;
        struct vf_config want;
        unsigned fields;
        const struct topology *topology; /* as struct sriov_job's */
};

static int vf_job_work(struct server *s, void *data, char **ret_why)
{
        struct vf_job *vj = data;
        _cleanup_(journal_freep) struct journal *j = NULL;
        int r = open_journal(s, &j);
        if (r >= 0)
                r = sriov_vf_configure(s->root, j, vj->topology, &vj->pf, &vj->want, vj->fields,
                                       ret_why);
        return r;
}

static void vf_job_done(struct server *s, struct job *j, int r, const char *why)
{
        struct vf_job *vj = j->data;
        if (!j->conn)
                return;
        (void)(r < 0 ? errno_error(j->conn, "configure-vf", &vj->pf, r, why)
                     : conn_reply(j->conn, NULL, NULL, 0));
}

static int method_configure_vf(struct conn *c, struct jspan params, int *fds, size_t n_fds)
{
        struct server *s = c->server;
        struct {
                struct pci_addr pf;
                int64_t vf, vlan, qos, max_rate, min_rate;
                char mac[64], link_state[32];
                int trust, spoof_check;
        } p;
#define F(name) offsetof(typeof(p), name)
        static const struct param table[] = {
                {"pf", PARAM_ADDRESS, true, F(pf)},
                {"vf", PARAM_INT, true, F(vf), .max = 65535},
                {"mac", PARAM_STRING, false, F(mac), .size = 64},
                {"vlan", PARAM_INT, false, F(vlan), .max = 4095},
                {"qos", PARAM_INT, false, F(qos), .max = 7},
                {"trust", PARAM_BOOL, false, F(trust)},
                {"spoof_check", PARAM_BOOL, false, F(spoof_check)},
                {"link_state", PARAM_STRING, false, F(link_state), .size = 32},
                {"max_rate", PARAM_INT, false, F(max_rate), .max = UINT32_MAX},
                {"min_rate", PARAM_INT, false, F(min_rate), .max = UINT32_MAX},
        };
#undef F
        int r = READ_PARAMS(c, params, table, &p);
        if (r != 0)
                return r < 0 ? r : 0;
        struct pci_addr pf = p.pf;
        struct vf_config want = {.vf = (int)p.vf};
        unsigned fields = 0;
        if (p.mac[0]) {
                if (vf_mac_parse(p.mac, want.mac) < 0)
                        return params_invalid(c, "mac");
                fields |= VF_FIELD_MAC;
        }
        if (p.qos >= 0 && p.vlan < 0)
                return params_invalid(c, "qos"); /* a priority needs its VLAN */
        if (p.vlan >= 0) {
                want.vlan = (uint16_t)p.vlan;
                want.qos = p.qos >= 0 ? (uint8_t)p.qos : 0;
                fields |= VF_FIELD_VLAN;
        }
        if (p.trust >= 0) {
                want.trust = p.trust;
                fields |= VF_FIELD_TRUST;
        }
        if (p.spoof_check >= 0) {
                want.spoofchk = p.spoof_check;
                fields |= VF_FIELD_SPOOFCHK;
        }
        if (p.link_state[0]) {
                int ls = vf_link_state_from_string(p.link_state);
                if (ls < 0)
                        return params_invalid(c, "link_state");
                want.link_state = ls;
                fields |= VF_FIELD_LINK_STATE;
        }
        if (p.max_rate >= 0 || p.min_rate >= 0) {
                want.max_rate = p.max_rate >= 0 ? (uint32_t)p.max_rate : 0;
                want.min_rate = p.min_rate >= 0 ? (uint32_t)p.min_rate : 0;
                fields |= VF_FIELD_RATE;
        }
        if (fields == 0)
                return params_invalid(c, "mac");

        const struct topology *t;
        r = server_topology_for(s, &pf, 1, &t);
        if (r < 0)
                return errno_error(c, "scan", NULL, r, NULL);
        if (device_allowed(c, POLICY_OP_SRIOV, t, &pf, NULL, NULL) || devices_taken(c, &pf, 1))
                return 0;
        struct vf_job *vj = calloc(1, sizeof(*vj));
        if (!vj)
                return -ENOMEM;
        *vj = (struct vf_job){.pf = pf, .want = want, .fields = fields, .topology = t};
        return call_job(c, "configure-vf", &pf, 1, vf_job_work, vf_job_done, vj, free);
}

/* ---- audit -------------------------------------------------------------------------- */

static int method_audit(struct conn *c, struct jspan params, int *fds, size_t n_fds)
{
        struct server *s = c->server;
        struct {
                struct pci_addrs devices;
                char fail_on[32];
        } in;
        static const struct param table[] = {
                {"devices", PARAM_ADDRESSES, false, offsetof(typeof(in), devices), .max = 4096},
                {"fail_on", PARAM_STRING, false, offsetof(typeof(in), fail_on), .size = 32},
        };
        int r = READ_PARAMS(c, params, table, &in);
        if (r != 0)
                return r < 0 ? r : 0;
        _cleanup_free_ struct pci_addr *devs = in.devices.v;
        size_t n_devs = in.devices.n;
        enum audit_severity fail_on = AUDIT_SEVERITY_MEDIUM;
        if (in.fail_on[0]) {
                fail_on = audit_severity_from_string(in.fail_on);
                if (fail_on < 0)
                        return params_invalid(c, "fail_on");
        }
        const struct topology *t;
        r = server_topology_for(s, devs, n_devs, &t);
        if (r < 0)
                return errno_error(c, "scan", NULL, r, NULL);
        if (!allowed(c, POLICY_OP_AUDIT, t, NULL))
                return denied(c, POLICY_OP_AUDIT, NULL);
        for (size_t i = 0; i < n_devs; i++)
                if (device_allowed(c, POLICY_OP_AUDIT, t, &devs[i], NULL, NULL))
                        return 0;

        /* The devices named: as a plan that assigns them. None: the whole host, or, for
         * a caller whose rules name devices, the part of it they cover. */
        struct audit_scope scope = {.devices = devs, .n_devices = n_devs};
        const struct audit_scope *sc = &scope;
        _cleanup_free_ struct pci_addr *covered = NULL;
        if (n_devs == 0 && allowed_everywhere(c, POLICY_OP_AUDIT))
                sc = NULL;
        else if (n_devs == 0) {
                covered = calloc(t->n_devices ? t->n_devices : 1, sizeof(*covered));
                if (!covered)
                        return -ENOMEM;
                for (size_t i = 0; i < t->n_devices; i++)
                        if (allowed(c, POLICY_OP_AUDIT, t, &t->devices[i]))
                                covered[scope.n_devices++] = t->devices[i].addr;
                scope.devices = covered;
                scope.as_host = true;
        }
        _cleanup_(audit_report_freep) struct audit_report *report = NULL;
        _cleanup_free_ char *why = NULL;
        r = audit_run(s->root, t, sc, &report, &why);
        if (r == -ENODEV)
                return conn_errorf(c, "io.vfiod.NoSuchDevice", "address", why ? why : "", NULL);
        if (r < 0)
                return errno_error(c, "audit", NULL, r, why);
        struct audit_source src = {
                .root = s->root->path, .live = s->root->is_host, .tool_version = VFIOD_VERSION};
        json_object *p = json_object_new_object(), *o = audit_report_to_json(report, &src, fail_on);
        if (!p || !o) {
                json_object_put(p);
                json_object_put(o);
                return -ENOMEM;
        }
        json_object_object_add(p, "report", o);
        json_object_object_add(p, "findings",
                               json_object_new_int64((int64_t)audit_report_count(report, fail_on)));
        return conn_reply(c, p, NULL, 0);
}

/* ---- monitor ------------------------------------------------------------------------ */

/* What a monitor whose rules name devices is told about: the devices they cover, as last
 * looked at (a device that is gone can no longer be matched, so it is known by its
 * address until then), and the leases of those devices, whose end events name no
 * device. */
struct monitor_scope {
        struct pci_addr *devices;
        size_t n_devices;
        uint64_t *leases;
        size_t n_leases;
};

struct monitor_scope *monitor_scope_free(struct monitor_scope *m)
{
        if (m) {
                free(m->devices);
                free(m->leases);
                free(m);
        }
        return NULL;
}

static ssize_t scope_find_device(const struct monitor_scope *m, const struct pci_addr *a)
{
        for (size_t i = 0; i < m->n_devices; i++)
                if (pci_addr_equal(&m->devices[i], a))
                        return (ssize_t)i;
        return -1;
}

static ssize_t scope_find_lease(const struct monitor_scope *m, uint64_t id)
{
        for (size_t i = 0; i < m->n_leases; i++)
                if (m->leases[i] == id)
                        return (ssize_t)i;
        return -1;
}

static int scope_add_device(struct monitor_scope *m, const struct pci_addr *a)
{
        if (scope_find_device(m, a) >= 0)
                return 0;
        struct pci_addr *v = reallocarray(m->devices, m->n_devices + 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        m->devices = v;
        v[m->n_devices++] = *a;
        return 0;
}

static int scope_add_lease(struct monitor_scope *m, uint64_t id)
{
        if (scope_find_lease(m, id) >= 0)
                return 0;
        uint64_t *v = reallocarray(m->leases, m->n_leases + 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        m->leases = v;
        v[m->n_leases++] = id;
        return 0;
}

/* Scopes c's events to the devices its monitor rules cover in t, and their leases. */
static int monitor_scope_new(struct conn *c, const struct topology *t)
{
        struct server *s = c->server;
        struct monitor_scope *m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        int r = 0;
        for (size_t i = 0; r >= 0 && i < t->n_devices; i++)
                if (allowed(c, POLICY_OP_MONITOR, t, &t->devices[i]))
                        r = scope_add_device(m, &t->devices[i].addr);
        for (size_t i = 0; r >= 0 && i < s->n_leases; i++)
                for (size_t k = 0; r >= 0 && k < s->leases[i]->n_devices; k++)
                        if (scope_find_device(m, &s->leases[i]->devices[k]) >= 0)
                                r = scope_add_lease(m, s->leases[i]->id);
        if (r < 0) {
                monitor_scope_free(m);
                return r;
        }
        monitor_scope_free(c->monitor_scope);
        c->monitor_scope = m;
        return 0;
}

bool monitor_sees(struct conn *c, const struct pci_addr *addr, uint64_t lease)
{
        struct monitor_scope *m = c->monitor_scope;
        if (!m)
                return true;
        if (!addr) { /* a lease's end: seen when its devices were */
                ssize_t k = lease > 0 ? scope_find_lease(m, lease) : -1;
                if (k >= 0)
                        m->leases[k] = m->leases[--m->n_leases];
                return lease == 0 || k >= 0;
        }
        /* A device seen before is still seen: no scan of the whole bus for it (leases
         * end and devices come back in a hurry). One that is gone leaves the scope. */
        ssize_t i = scope_find_device(m, addr);
        bool there = pci_sysfs_device_exists(c->server->root, addr) >= 0;
        bool sees = i >= 0;
        if (i >= 0 && !there)
                m->devices[i] = m->devices[--m->n_devices];
        else if (i < 0 && there) {
                /* New here (hot-plugged, a VF carved): the rules decide. */
                const struct topology *t;
                const struct pci_device *d;
                sees = server_topology(c->server, &t) >= 0 && (d = topology_find_device(t, addr)) &&
                       allowed(c, POLICY_OP_MONITOR, t, d) && scope_add_device(m, addr) >= 0;
        }
        if (sees && lease > 0)
                (void)scope_add_lease(m, lease);
        return sees;
}

static int method_monitor(struct conn *c, struct jspan params, int *fds, size_t n_fds)
{
        int r = read_no_params(c, params);
        if (r != 0) {
                conn_set_monitor(c, false);
                return r < 0 ? r : 0;
        }
        if (!c->monitor)
                return conn_errorf(c, "org.varlink.service.ExpectedMore", NULL);
        const struct topology *t;
        r = server_topology(c->server, &t);
        if (r < 0)
                return errno_error(c, "scan", NULL, r, NULL);
        if (!allowed(c, POLICY_OP_MONITOR, t, NULL)) {
                conn_set_monitor(c, false);
                return denied(c, POLICY_OP_MONITOR, NULL);
        }
        if (!allowed_everywhere(c, POLICY_OP_MONITOR)) {
                r = monitor_scope_new(c, t);
                if (r < 0) {
                        conn_set_monitor(c, false);
                        return r;
                }
        }
        /* A first event tells the client it is subscribed: nothing after it is missed.
         * Events follow as replies with "continues": true. */
        json_object *p = json_object_new_object(), *ev = json_object_new_object();
        if (!p || !ev) {
                json_object_put(p);
                json_object_put(ev);
                return -ENOMEM;
        }
        json_object_object_add(ev, "kind", json_object_new_string("monitor-started"));
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        json_object_object_add(
                ev, "timestamp",
                json_object_new_int64((int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000));
        json_object_object_add(p, "event", ev);
        int k = conn_reply_continues(c, p);
        return k == -EPIPE || k == -ECONNRESET ? 0 : k; /* gone: nobody to tell */
}

/* ---- leases ------------------------------------------------------------------------- */

/* A process that holds leases: one pidfd and one watch serve all its leases, and stay
 * while a lease or a connection of that process refers to them, so that a VMM that
 * acquires and releases devices over one connection sets up its watch once. */
struct holder {
        struct server *server;
        pid_t pid;
        uint64_t starttime; /* /proc/PID/stat field 22 */
        int pidfd;
        sd_event_source *watch;
        unsigned n_refs;
        bool exited; /* the watch fired: it holds nothing any more */
};

static int on_holder_exit(sd_event_source *src, int fd, uint32_t revents, void *userdata);

static struct holder *holder_ref(struct holder *h)
{
        h->n_refs++;
        return h;
}

void holder_unref(struct holder *h)
{
        if (!h || --h->n_refs > 0)
                return;
        struct server *s = h->server;
        for (size_t i = 0; i < s->n_holders; i++)
                if (s->holders[i] == h) {
                        s->holders[i] = s->holders[--s->n_holders];
                        break;
                }
        sd_event_source_disable_unref(h->watch);
        safe_close(h->pidfd);
        free(h);
}

static inline void holder_unrefp(struct holder **h)
{
        holder_unref(*h);
}

/* The holder for the process of *pidfd (taken: closed when a holder exists already),
 * which started at starttime, with a reference for the caller. */
static int holder_get(struct server *s, pid_t pid, uint64_t starttime, int *pidfd,
                      struct holder **ret)
{
        for (size_t i = 0; i < s->n_holders; i++) {
                struct holder *h = s->holders[i];
                if (!h->exited && h->pid == pid && h->starttime == starttime) {
                        *pidfd = safe_close(*pidfd);
                        *ret = holder_ref(h);
                        return 0;
                }
        }
        struct holder **p = reallocarray(s->holders, s->n_holders + 1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        s->holders = p;
        struct holder *h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        *h = (struct holder){.server = s, .pid = pid, .starttime = starttime, .pidfd = -EBADF};
        int r = sd_event_add_io(s->event, &h->watch, *pidfd, EPOLLIN, on_holder_exit, h);
        if (r < 0) {
                free(h);
                return r;
        }
        h->pidfd = TAKE_FD(*pidfd);
        s->holders[s->n_holders++] = h;
        *ret = holder_ref(h);
        return 0;
}

static int lease_add(struct server *s, struct lease *l)
{
        struct lease **p = reallocarray(s->leases, s->n_leases + 1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        s->leases = p;
        p[s->n_leases++] = l;
        if (l->id >= s->next_lease_id)
                s->next_lease_id = l->id + 1;
        return 0;
}

static void lease_unlink(struct server *s, struct lease *l)
{
        for (size_t i = 0; i < s->n_leases; i++)
                if (s->leases[i] == l) {
                        memmove(s->leases + i, s->leases + i + 1,
                                (s->n_leases - i - 1) * sizeof(*s->leases));
                        s->n_leases--;
                        break;
                }
}

static void lease_destroy(struct lease *l)
{
        holder_unref(l->holder);
        lease_done(l);
        free(l);
}

void lease_free(struct server *s, struct lease *l)
{
        lease_unlink(s, l);
        lease_destroy(l);
}

/* The device's group and cdev, looked up once per topology snapshot (a rebind, which
 * makes a new cdev, comes with a uevent that drops the snapshot). */
static const struct vfio_nodes *device_nodes(struct server *s, const struct pci_addr *a)
{
        for (size_t i = 0; i < s->n_nodes; i++)
                if (pci_addr_equal(&s->nodes[i].addr, a))
                        return &s->nodes[i];
        struct vfio_nodes *p = reallocarray(s->nodes, s->n_nodes + 1, sizeof(*p));
        if (!p)
                return NULL;
        s->nodes = p;
        struct vfio_nodes *n = &p[s->n_nodes++];
        *n = (struct vfio_nodes){.addr = *a, .group = -1, .cdev = -1};
        if (vfio_device_group_id(s->root, a, &n->group) < 0)
                n->group = -1;
        if (vfio_device_cdev_index(s->root, a, &n->cdev) < 0)
                n->cdev = -1;
        return n;
}

/* No count of the files of vfioN (a's cdev): the node is watched first, then every
 * process's open files are searched (which sees a cdev that is open and not bound), and
 * the count begins when none is found. Returns the search's answer: 1 open (by the
 * process in *ret_pid), 0 not, or -errno. */
static int search_and_count(struct server *s, int cdev, const struct pci_addr *a, int *ret_pid)
{
        bool uncounted = false;
        bool watched = cdev_watch_add(&s->cdev_watches, s->root, cdev, &uncounted) == 0;
        int k = vfio_device_open_by(s->root, a, ret_pid);
        if (k == 0 && watched && uncounted)
                cdev_watch_counted(&s->cdev_watches, cdev);
        return k;
}

/* Opens /dev/vfio/devices/vfioN for a and checks, through the char device's sysfs link,
 * that it still is a's: a cached N could be stale if a rebind raced its uevent. The
 * check is made once per node: the watched node (the same inode) stays a's for as long
 * as it exists. The node is watched before this open, so that its open is counted
 * (cdev-watch.h; the count itself was begun by device_open_elsewhere()). */
static bool bound_now(const struct bind_plan *plan, const struct pci_addr *a)
{
        for (size_t i = 0; i < plan->n_devices; i++)
                if (pci_addr_equal(&plan->devices[i], a))
                        return true;
        return false;
}

static int open_cdev_checked(struct server *s, const struct pci_addr *a, int cdev, bool fresh)
{
        char path[64], link[PATH_MAX], want[PCI_ADDR_STRLEN + 16], name[PCI_ADDR_STRLEN];
        bool uncounted;
        for (int attempt = 0;; attempt++) {
                (void)cdev_watch_add(&s->cdev_watches, s->root, cdev, &uncounted);
                /* A node this Acquire's bind just made: nothing but root could have
                 * opened it since, so its count starts at zero, and this open is in it. */
                if (fresh && uncounted)
                        cdev_watch_counted(&s->cdev_watches, cdev);
                snprintf(path, sizeof(path), "dev/vfio/devices/vfio%d", cdev);
                _cleanup_close_ int fd = root_openat(s->root, path, O_RDWR | O_NOCTTY);
                if (fd < 0)
                        return fd;
                struct stat st;
                if (fstat(fd, &st) < 0)
                        return negative_errno();
                /* The watched node, checked before: no need to ask sysfs again. */
                if (cdev_watch_is(&s->cdev_watches, cdev, &st, a))
                        return TAKE_FD(fd);
                snprintf(path, sizeof(path), "sys/dev/char/%u:%u", major(st.st_rdev),
                         minor(st.st_rdev));
                if (s->dev_char_fd < 0) {
                        s->dev_char_fd = root_openat(s->root, "sys/dev/char", O_PATH | O_DIRECTORY);
                        if (s->dev_char_fd < 0)
                                return s->dev_char_fd;
                }
                ssize_t k = readlinkat(s->dev_char_fd, path + strlen("sys/dev/char/"), link,
                                       sizeof(link) - 1);
                if (k < 0)
                        return negative_errno();
                link[k] = 0;
                snprintf(want, sizeof(want), "/%s/vfio-dev/", pci_addr_format(a, name));
                if (!strstr(link, want))
                        return -ESTALE;
                cdev_watch_owner(&s->cdev_watches, cdev, &st, a);
                /* The watch was on the node of an earlier binding (the device was unbound
                 * and bound again): it is dropped; watch this node, then open it again so
                 * that the open is counted. */
                if (!cdev_watch_watched(&s->cdev_watches, cdev) && attempt == 0)
                        continue;
                return TAKE_FD(fd);
        }
}

/* The backend a device opens through by default: iommufd when the kernel has it and the
 * device has a cdev, else type1. -EMEDIUMTYPE when it has neither node. */
static int device_backend(struct server *s, const struct topology *t, const struct pci_addr *a,
                          enum vfio_backend *ret, char **ret_detail)
{
        /* vfio's no-IOMMU mode needs the full look (its nodes have other names). */
        if (t->host.mode != IOMMU_MODE_TRANSLATED && t->host.mode != IOMMU_MODE_PASSTHROUGH)
                return vfio_backend_detect(s->root, a, ret, ret_detail);
        const struct vfio_nodes *n = device_nodes(s, a);
        if (!n)
                return -ENOMEM;
        if (s->have_iommufd < 0) {
                _cleanup_close_ int fd = root_openat(s->root, "dev/iommu", O_PATH);
                s->have_iommufd = fd >= 0;
        }
        if (s->have_iommufd && n->cdev >= 0)
                *ret = VFIO_BACKEND_IOMMUFD;
        else if (n->group >= 0)
                *ret = VFIO_BACKEND_TYPE1;
        else
                return vfio_backend_detect(s->root, a, ret, ret_detail);
        return 0;
}

/* Whether a leased device is still held by some process, and by whom (0 if unknown).
 * One that goes back to its host driver must have no file open at all, since the
 * kernel blocks the unbind (and the daemon with it) until the last one closes; one that
 * stays in the pool must have no open file left that could bind it again. The count of
 * its cdev's open files says so when the daemon keeps one (cdev-watch.h). Without a
 * count (a lease adopted at start, whose files were opened before the watch; a count
 * lost), the thorough look through /proc, which sees a cdev that is open and not bound,
 * with the node watched first so that the count can start from there when it finds
 * none open. Last, for a pooled device, the kernel's answer for the group (its node
 * takes one opener at a time). */
/* Whether the group node of a (nodes n) is open: the kernel lets it be open once, and a
 * file in flight keeps it so. The /proc search then only names a holder, if it finds
 * one, in *ret_pid. */
static bool group_node_held(struct server *s, const struct vfio_nodes *n, const struct pci_addr *a,
                            int *ret_pid)
{
        if (!n || n->group < 0 || vfio_group_busy(s->root, n->group) <= 0)
                return false;
        (void)vfio_device_open_by(s->root, a, ret_pid);
        return true;
}

/* Whether a device to give back to its host driver still has a file open (an unbind
 * would block until it closes), by whom in *ret_pid (0 if unknown). For a device an
 * iommufd lease handed out, whose cdev is the only node its holder can open (the group
 * node is root's), an exact count of the cdev's files and the group node free are the
 * whole answer, and spare the search (then only made to name who holds it). */
static bool restore_blocked(struct server *s, const struct pci_addr *a, bool iommufd, int *ret_pid)
{
        *ret_pid = 0;
        const struct vfio_nodes *n = device_nodes(s, a);
        int k = iommufd && n && n->cdev >= 0 ? cdev_watch_open_files(&s->cdev_watches, n->cdev)
                                             : -ENODATA;
        /* A file the count knows is open wins over the search, which cannot see one in
         * flight (sent over a socket nobody reads): the unbind would wait for it. The
         * search then only names a holder, if it finds one. */
        if (k > 0) {
                (void)vfio_device_open_by(s->root, a, ret_pid);
                return true;
        }
        if (k == 0 && (n->group < 0 || vfio_group_busy(s->root, n->group) == 0))
                return false;
        /* Without a count, a group node still open (the kernel lets it be open once, and
         * a file in flight keeps it so) says the device is in use whatever the search
         * finds. */
        if (k < 0 && group_node_held(s, n, a, ret_pid))
                return true;
        return vfio_device_open_by(s->root, a, ret_pid) > 0;
}

static bool lease_device_held(struct server *s, const struct lease *l, size_t i, int *ret_pid)
{
        *ret_pid = 0;
        if (lease_device_release(l, i) == RELEASE_RESTORE)
                return restore_blocked(s, &l->devices[i], l->backend == VFIO_BACKEND_IOMMUFD,
                                       ret_pid);
        const struct vfio_nodes *n = device_nodes(s, &l->devices[i]);
        bool counted = l->backend == VFIO_BACKEND_IOMMUFD && n && n->cdev >= 0;
        if (counted) {
                int k = cdev_watch_open_files(&s->cdev_watches, n->cdev);
                if (k >= 0)
                        return k > 0;
                if (search_and_count(s, n->cdev, &l->devices[i], ret_pid) > 0)
                        return true;
                /* (Not found, or /proc could not be read: the group node answers too.) */
        }
        if (!n || n->group < 0)
                return vfio_device_group_busy(s->root, &l->devices[i]) > 0;
        return vfio_group_busy(s->root, n->group) > 0;
}

/* ---- giving an ended lease's devices back ------------------------------------------ */

/* A restore job: devices to give back to the drivers the journal recorded (those it has
 * no entry for stay as they are), for an ended lease (or none). */
struct restore_job {
        uint64_t lease; /* 0: none (an Acquire's rollback) */
        char what[48];  /* for the log */
        struct pci_addr *devices;
        size_t n_devices;
};

static void restore_job_free(void *p)
{
        struct restore_job *rj = p;
        if (!rj)
                return;
        free(rj->devices);
        free(rj);
}

/* In the worker: each device the journal has goes back; the journal's lock is taken
 * here, as vfioctl takes it. Returns how many went back; failures are logged one by one,
 * and the first is returned. */
static int restore_job_work(struct server *s, void *data, char **ret_why)
{
        struct restore_job *rj = data;
        _cleanup_(journal_freep) struct journal *j = NULL;
        int r = open_journal(s, &j), first = 0;
        if (r < 0) {
                log_msg(LOG_ERR, "%s: cannot open the journal: %s", rj->what, strerror(-r));
                return r;
        }
        int n = 0;
        for (size_t i = 0; i < rj->n_devices; i++) {
                char buf[PCI_ADDR_STRLEN];
                const char *name = pci_addr_format(&rj->devices[i], buf);
                struct journal_entry e = {};
                bool found = journal_get(j, &rj->devices[i], &e) == 0;
                journal_entry_done(&e);
                if (!found)
                        continue;
                _cleanup_free_ char *why = NULL;
                r = vfio_device_restore(s->root, j, &rj->devices[i], &why);
                if (r < 0) {
                        log_msg(LOG_ERR, "%s: %s: restore failed: %s", rj->what, name,
                                why ? why : strerror(-r));
                        if (first == 0) {
                                first = r;
                                *ret_why = TAKE_PTR(why);
                        }
                } else
                        n++;
        }
        return first < 0 ? first : n;
}

static struct lease *lease_by_id(struct server *s, uint64_t id)
{
        for (size_t i = 0; i < s->n_leases; i++)
                if (s->leases[i]->id == id)
                        return s->leases[i];
        return NULL;
}

/* An ended lease whose devices are all back goes: its record last, so that a crash
 * before finds it and gives back what is left. */
static void lease_finish(struct server *s, struct lease *l)
{
        for (size_t i = 0; i < l->n_devices; i++)
                if (l->returning[i] != LEASE_DEVICE_RETURNED)
                        return;
        lease_unlink(s, l);
        int r = lease_log_end(&s->lease_log, l->id, s->leases, s->n_leases);
        if (r < 0)
                log_msg(LOG_ERR, "lease %" PRIu64 ": cannot remove its record: %s", l->id,
                        strerror(-r));
        server_broadcast(s, l->end_kind, NULL, l->id);
        lease_destroy(l);
}

static void restore_job_done(struct server *s, struct job *j, int r, const char *why)
{
        struct restore_job *rj = j->data;
        struct lease *l = rj->lease ? lease_by_id(s, rj->lease) : NULL;
        if (r != 0) /* a driver changed, or may have */
                server_invalidate(s);
        for (size_t i = 0; i < rj->n_devices; i++) {
                server_broadcast(s, "device-changed", &rj->devices[i], 0);
                for (size_t k = 0; l && k < l->n_devices; k++)
                        if (pci_addr_equal(&l->devices[k], &rj->devices[i]))
                                l->returning[k] = LEASE_DEVICE_RETURNED;
        }
        if (j->conn) /* a Release waits */
                (void)(r < 0 ? errno_error(j->conn, "release", NULL, r, why)
                             : conn_reply(j->conn, NULL, NULL, 0));
        if (l)
                lease_finish(s, l);
}

/* Starts the restore of devices a[0..n) of lease (0: none); conn waits for it, or NULL.
 * Returns the job, or NULL when it could not start (logged; the devices stay on vfio-pci
 * and the journal keeps them for 'vfioctl restore --all' or the next start). */
static struct job *restore_start(struct server *s, uint64_t lease, const struct pci_addr *a,
                                 size_t n, struct conn *conn)
{
        struct restore_job *rj = calloc(1, sizeof(*rj));
        if (!rj || !(rj->devices = calloc(n ? n : 1, sizeof(*a)))) {
                restore_job_free(rj);
                log_msg(LOG_ERR, "cannot start a restore: %s", strerror(ENOMEM));
                return NULL;
        }
        memcpy(rj->devices, a, n * sizeof(*a));
        rj->n_devices = n;
        rj->lease = lease;
        if (lease)
                snprintf(rj->what, sizeof(rj->what), "lease %" PRIu64, lease);
        else
                snprintf(rj->what, sizeof(rj->what), "acquire rollback");
        struct job *j;
        int r = job_start(s,
                          &(struct job_spec){.operation = "restore",
                                             .devices = a,
                                             .n_devices = n,
                                             .work = restore_job_work,
                                             .done = restore_job_done,
                                             .data = rj,
                                             .free_data = restore_job_free,
                                             .conn = conn},
                          &j);
        if (r < 0) {
                log_msg(LOG_ERR, "%s: cannot start the restore of %zu device(s): %s", rj->what, n,
                        strerror(-r));
                restore_job_free(rj);
                return NULL;
        }
        return j;
}

static bool orphans_by_timer(const struct server *s)
{
        for (size_t i = 0; i < s->n_orphans; i++)
                if (s->orphans[i].by_timer)
                        return true;
        return false;
}

static void orphan_drop(struct server *s, size_t i)
{
        s->orphans[i] = s->orphans[--s->n_orphans];
        if (s->n_orphans == 0)
                (void)sd_event_source_set_enabled(s->orphan_source, SD_EVENT_OFF);
        if (!orphans_by_timer(s))
                (void)sd_event_source_set_enabled(s->orphan_timer, SD_EVENT_OFF);
}

/* Device k of an ending lease is back (or given up on): the lease goes once all are. */
static void lease_device_returned(struct server *s, struct lease *l, size_t k)
{
        l->returning[k] = LEASE_DEVICE_RETURNED;
        server_broadcast(s, "device-changed", &l->devices[k], 0);
}

/* Each orphan (of those followed by_timer, or by events) whose files are all closed is
 * restored, in a job. */
static void orphans_check(struct server *s, bool by_timer)
{
        for (size_t i = 0; i < s->n_orphans;) {
                struct orphan o = s->orphans[i];
                char buf[PCI_ADDR_STRLEN];
                const char *name = pci_addr_format(&o.addr, buf);
                if (o.by_timer != by_timer) {
                        i++;
                        continue;
                }
                struct lease *l = lease_by_id(s, o.lease);
                ssize_t k = -1;
                for (size_t m = 0; l && m < l->n_devices; m++)
                        if (pci_addr_equal(&l->devices[m], &o.addr))
                                k = (ssize_t)m;
                if (k < 0) {
                        orphan_drop(s, i);
                        continue;
                }
                const struct vfio_nodes *n = device_nodes(s, &o.addr);
                if (!n || (by_timer ? n->group < 0 : n->cdev < 0)) {
                        log_msg(LOG_WARNING, "%s: gone, or off vfio-pci: not restored", name);
                        orphan_drop(s, i);
                        lease_device_returned(s, l, (size_t)k);
                        lease_finish(s, l);
                        continue;
                }
                int pid;
                if (restore_blocked(s, &o.addr, !by_timer, &pid)) {
                        i++; /* still open: an unbind would block */
                        continue;
                }
                log_msg(LOG_INFO, "%s: its last file is closed: restoring it", name);
                orphan_drop(s, i);
                l->returning[k] = LEASE_DEVICE_RESTORING;
                if (!restore_start(s, l->id, &o.addr, 1, NULL)) {
                        lease_device_returned(s, l, (size_t)k);
                        lease_finish(s, l);
                }
        }
}

/* The node's events came: each orphan whose last file is closed (and whose group node is
 * free) is restored. */
static int on_orphan_events(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct server *s = userdata;
        cdev_watches_read(&s->cdev_watches);
        orphans_check(s, false);
        return 0;
}

static int on_orphan_timer(sd_event_source *src, uint64_t usec, void *userdata)
{
        struct server *s = userdata;
        orphans_check(s, true);
        if (orphans_by_timer(s)) {
                (void)sd_event_source_set_time_relative(src, ORPHAN_RECHECK_USEC);
                (void)sd_event_source_set_enabled(src, SD_EVENT_ONESHOT);
        }
        return 0;
}

/* Follows a (of lease) until its last file closes, then restores it: through its cdev
 * node's events (iommufd), else by looking again on a timer. Returns 0, or -errno when
 * it cannot be followed. */
static int orphan_add(struct server *s, const struct pci_addr *a, uint64_t lease, bool iommufd)
{
        const struct vfio_nodes *n = device_nodes(s, a);
        bool uncounted, by_timer = !iommufd || !n || n->cdev < 0;
        if (!by_timer) /* an adopted lease's node may not be watched yet */
                (void)cdev_watch_add(&s->cdev_watches, s->root, n->cdev, &uncounted);
        struct orphan *v = reallocarray(s->orphans, s->n_orphans + 1, sizeof(*v));
        int r = !v ? -ENOMEM : 0;
        if (v)
                s->orphans = v;
        if (r >= 0 && !by_timer && s->cdev_watches.fd < 0)
                r = -EBADF;
        if (r >= 0 && !by_timer && !s->orphan_source)
                r = sd_event_add_io(s->event, &s->orphan_source, s->cdev_watches.fd, EPOLLIN,
                                    on_orphan_events, s);
        if (r >= 0 && by_timer && !s->orphan_timer)
                r = sd_event_add_time_relative(s->event, &s->orphan_timer, CLOCK_MONOTONIC,
                                               ORPHAN_RECHECK_USEC, 0, on_orphan_timer, s);
        if (r < 0)
                return r;
        v[s->n_orphans++] = (struct orphan){.addr = *a, .by_timer = by_timer, .lease = lease};
        if (by_timer) {
                (void)sd_event_source_set_time_relative(s->orphan_timer, ORPHAN_RECHECK_USEC);
                (void)sd_event_source_set_enabled(s->orphan_timer, SD_EVENT_ONESHOT);
        } else
                (void)sd_event_source_set_enabled(s->orphan_source, SD_EVENT_ON);
        return 0;
}

/* Ends a lease: its devices go back to the pool (stay on vfio-pci) or, when their policy
 * rule says restore, to the drivers they had before vfiod bound them (the journal knows
 * which), in a job: the lease stays, marked ending, until they are back. The reset is
 * the kernel's: vfio-pci resets a function when its last VFIO file is closed
 * (vfio_pci_core_disable(), with a bus reset of the device set when a function-level one
 * is missing) and again when it is next opened, so the daemon only makes sure nobody
 * holds the device any more: a second reset here would cost up to a second per device
 * (a bus reset waits that long) and buy nothing. conn (a Release) is answered once the
 * devices are back, or now when none needs a restore. */
static void lease_grants_end(struct lease *l);
static void lease_memlock_end(struct server *s, struct lease *l);

static void lease_end(struct server *s, struct lease *l, const char *kind, bool checked,
                      struct conn *conn)
{
        if (l->ending)
                return;
        log_msg(LOG_INFO, "lease %" PRIu64 " of pid %d ends (%s): returning its %zu device(s)",
                l->id, (int)l->pid, kind, l->n_devices);
        l->returning = calloc(l->n_devices ? l->n_devices : 1, sizeof(*l->returning));
        if (!l->returning) {
                log_msg(LOG_ERR, "lease %" PRIu64 ": out of memory: ended at the next start",
                        l->id);
                if (conn)
                        (void)errno_error(conn, "release", NULL, -ENOMEM, NULL);
                return;
        }
        l->ending = true;
        l->end_kind = kind;

        /* The holder's extra rights first: a node that stays (a pooled device) is shut
         * to its uid again; one whose device goes back to its driver goes with it. */
        lease_grants_end(l);
        lease_memlock_end(s, l);
        _cleanup_free_ struct pci_addr *restore =
                calloc(l->n_devices ? l->n_devices : 1, sizeof(*restore));
        size_t n_restore = 0;
        for (size_t i = 0; i < l->n_devices; i++) {
                char buf[PCI_ADDR_STRLEN];
                const char *name = pci_addr_format(&l->devices[i], buf);
                l->returning[i] = LEASE_DEVICE_RETURNED;
                /* Whether it is still there: the cached scan knows, else sysfs does (not
                 * a new scan of the whole bus, which uevents of the VMM's run have likely
                 * made necessary, and which takes long enough to matter on a big host:
                 * the devices are due back within a second of the holder's exit). */
                if (s->topology ? !topology_find_device(s->topology, &l->devices[i])
                                : pci_sysfs_device_exists(s->root, &l->devices[i]) < 0) {
                        log_msg(LOG_WARNING, "lease %" PRIu64 ": %s is gone", l->id, name);
                        continue;
                }
                bool to_restore = lease_device_release(l, i) == RELEASE_RESTORE;
                int holder = 0;
                if (!checked && lease_device_held(s, l, i, &holder)) {
                        /* Its fds went on to another process: an unbind would wait until
                         * it lets go. It stays on vfio-pci, not handed out while open
                         * (device_open_elsewhere()), and one to restore is followed until
                         * the last file closes (the lease stays recorded meanwhile: a
                         * restart follows it again). */
                        log_msg(LOG_WARNING,
                                "lease %" PRIu64 ": %s is still in use (pid %d, 0: unknown): "
                                "left on vfio-pci%s",
                                l->id, name, holder,
                                to_restore ? " until that file is closed, then restored" : "");
                        if (to_restore && orphan_add(s, &l->devices[i], l->id,
                                                     l->backend == VFIO_BACKEND_IOMMUFD) >= 0)
                                l->returning[i] = LEASE_DEVICE_WAITING;
                        else if (to_restore)
                                log_msg(LOG_ERR,
                                        "%s: cannot follow its files: it stays on vfio-pci", name);
                        continue;
                }
                /* Only what vfiod bound has anything to go back to (the journal has
                 * it): the rest stays, with no worker to start. */
                if (to_restore && restore &&
                    journal_has_entry(s->root, s->cfg.state_dir, &l->devices[i])) {
                        restore[n_restore++] = l->devices[i];
                        l->returning[i] = LEASE_DEVICE_RESTORING;
                        continue;
                }
                server_broadcast(s, "device-changed", &l->devices[i], 0);
        }
        uint64_t id = l->id;
        if (n_restore > 0 && !restore_start(s, id, restore, n_restore, conn)) {
                for (size_t i = 0; i < l->n_devices; i++)
                        if (l->returning[i] == LEASE_DEVICE_RESTORING)
                                lease_device_returned(s, l, i);
                n_restore = 0;
        }
        if (n_restore == 0 && conn)
                (void)conn_reply(conn, NULL, NULL, 0);
        lease_finish(s, l); /* when nothing is left to wait for */
}

static int on_holder_exit(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct holder *h = holder_ref(userdata);
        struct server *s = h->server;
        h->exited = true;
        sd_event_source_set_enabled(h->watch, SD_EVENT_OFF);
        /* lease_end() may remove the lease from the table: start over after each. */
        for (size_t i = 0; i < s->n_leases;) {
                struct lease *l = s->leases[i];
                if (l->holder == h && !l->ending) {
                        lease_end(s, l, "lease-expired", false, NULL);
                        i = 0;
                } else
                        i++;
        }
        holder_unref(h);
        return 0;
}

static bool pidfd_alive(int pidfd)
{
        return syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) == 0;
}

/* The pid a pidfd refers to, from its fdinfo; -EBADF when fd is not a pidfd. */
static int pidfd_get_pid(int fd, pid_t *ret)
{
        char path[64], link[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, link, sizeof(link) - 1);
        if (n < 0)
                return negative_errno();
        link[n] = 0;
        if (strcmp(link, "anon_inode:[pidfd]") != 0)
                return -EBADF;
        snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
        _cleanup_free_ char *text = NULL;
        size_t len;
        _cleanup_close_ int dfd = open("/proc/self/fdinfo", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return negative_errno();
        char name[16];
        snprintf(name, sizeof(name), "%d", fd);
        int r = dir_read_file(dfd, name, 4096, &text, &len);
        if (r < 0)
                return r;
        const char *p = strstr(text, "\nPid:\t");
        if (!p)
                return -EBADF;
        long pid = strtol(p + 6, NULL, 10);
        if (pid <= 0)
                return -ESRCH; /* the process has exited already */
        *ret = (pid_t)pid;
        return 0;
}

/* The real uid of a live process, from /proc/PID/status. */
static int process_uid(const struct root *root, pid_t pid, uid_t *ret)
{
        char path[64];
        snprintf(path, sizeof(path), "proc/%d/status", (int)pid);
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r = root_read_file(root, path, 65536, &text, &len);
        if (r < 0)
                return r == -ENOENT ? -ESRCH : r;
        const char *p = strstr(text, "\nUid:\t");
        if (!p)
                return -EBADMSG;
        *ret = (uid_t)strtoul(p + 6, NULL, 10);
        return 0;
}

static int64_t rlim_to_int(rlim_t v)
{
        return v == RLIM_INFINITY ? -1 : (int64_t)v;
}

static rlim_t rlim_from_int(int64_t v)
{
        return v < 0 ? RLIM_INFINITY : (rlim_t)v;
}

/* What raising the holder's RLIMIT_MEMLOCK to what the policy grants would do (never
 * lowering it): iommufd charges the guest memory a VMM pins to the VMM, type1 checks it
 * against the VMM's limit. 1 when the limit must change (*ret says from what to what, to
 * be recorded before the change), 0 when it is high enough already. */
static int holder_memlock_plan(pid_t pid, int64_t want, struct lease_memlock *ret)
{
        struct rlimit cur;
        if (prlimit(pid, RLIMIT_MEMLOCK, NULL, &cur) < 0)
                return negative_errno();
        rlim_t v = want == POLICY_MEMLOCK_UNLIMITED ? RLIM_INFINITY : (rlim_t)want;
        struct rlimit nl = cur;
        if (cur.rlim_cur != RLIM_INFINITY && (v == RLIM_INFINITY || cur.rlim_cur < v))
                nl.rlim_cur = v;
        if (cur.rlim_max != RLIM_INFINITY && (v == RLIM_INFINITY || cur.rlim_max < v))
                nl.rlim_max = v;
        *ret = (struct lease_memlock){
                .was_cur = rlim_to_int(cur.rlim_cur),
                .was_max = rlim_to_int(cur.rlim_max),
                .set_cur = rlim_to_int(nl.rlim_cur),
                .set_max = rlim_to_int(nl.rlim_max),
        };
        return nl.rlim_cur != cur.rlim_cur || nl.rlim_max != cur.rlim_max;
}

static int holder_memlock_apply(pid_t pid, int64_t cur, int64_t max)
{
        struct rlimit nl = {.rlim_cur = rlim_from_int(cur), .rlim_max = rlim_from_int(max)};
        return prlimit(pid, RLIMIT_MEMLOCK, &nl, NULL) < 0 ? negative_errno() : 0;
}

/* At the end of a lease that raised its holder's RLIMIT_MEMLOCK, while the holder lives
 * (a Release): the limit goes back to what the lease found, unless someone changed it
 * since, or another lease of the same holder still needs it (that lease then owns the
 * record, the older "before" winning). */
static void lease_memlock_end(struct server *s, struct lease *l)
{
        struct holder *h = l->holder;
        if (!l->memlock_raised || !h || h->exited)
                return;
        for (size_t i = 0; i < s->n_leases; i++) {
                struct lease *o = s->leases[i];
                if (o == l || o->holder != h)
                        continue;
                if (!o->memlock_raised || l->id < o->id) {
                        o->memlock.was_cur = l->memlock.was_cur;
                        o->memlock.was_max = l->memlock.was_max;
                        if (!o->memlock_raised)
                                o->memlock = l->memlock;
                        o->memlock_raised = true;
                }
                return;
        }
        struct rlimit now;
        if (prlimit(h->pid, RLIMIT_MEMLOCK, NULL, &now) < 0 || !pidfd_alive(h->pidfd))
                return;
        if (rlim_to_int(now.rlim_cur) != l->memlock.set_cur ||
            rlim_to_int(now.rlim_max) != l->memlock.set_max) {
                log_msg(LOG_INFO,
                        "lease %" PRIu64 ": pid %d's RLIMIT_MEMLOCK was changed since the "
                        "lease raised it: left as it is",
                        l->id, (int)h->pid);
                return;
        }
        int r = holder_memlock_apply(h->pid, l->memlock.was_cur, l->memlock.was_max);
        if (r < 0)
                log_msg(LOG_WARNING, "lease %" PRIu64 ": cannot lower pid %d's RLIMIT_MEMLOCK: %s",
                        l->id, (int)h->pid, strerror(-r));
}

/* Puts back every group node the lease opened to its holder. */
static void lease_grants_end(struct lease *l)
{
        for (size_t i = 0; i < l->n_grants; i++) {
                struct server *s = l->owner;
                _cleanup_free_ char *why = NULL;
                int r = vfio_group_node_restore(s->root, l->grants[i].group, &l->grants[i].was,
                                                &why);
                if (r < 0)
                        log_msg(LOG_ERR, "lease %" PRIu64 ": %s", l->id, why ? why : strerror(-r));
                else
                        log_msg(LOG_INFO,
                                "lease %" PRIu64 ": /dev/vfio/%d no longer open to uid %u", l->id,
                                l->grants[i].group, (unsigned)l->grants[i].to);
        }
}

/* Records, for a type1 lease, each group node of its devices as it is now, to be opened
 * to uid once the lease is recorded. */
static int lease_grants_plan(struct lease *l, const struct topology *t, uid_t uid, char **ret_why)
{
        struct server *s = l->owner;
        l->grants = calloc(l->n_devices, sizeof(*l->grants));
        if (!l->grants)
                return -ENOMEM;
        for (size_t i = 0; i < l->n_devices; i++) {
                const struct pci_device *d = topology_find_device(t, &l->devices[i]);
                int group = d ? d->iommu_group : -1;
                bool seen = group < 0;
                for (size_t k = 0; !seen && k < l->n_grants; k++)
                        seen = l->grants[k].group == group;
                if (seen)
                        continue;
                struct node_grant *g = &l->grants[l->n_grants];
                *g = (struct node_grant){.group = group, .to = uid};
                int r = vfio_group_node_access(s->root, group, &g->was);
                if (r < 0)
                        return detail_errno(ret_why, r, "cannot read /dev/vfio/%d: %s", group,
                                            strerror(-r));
                l->n_grants++;
        }
        return 0;
}

/* Opens the planned group nodes to their uid; on failure puts back what it changed. */
static int lease_grants_apply(struct lease *l, char **ret_why)
{
        struct server *s = l->owner;
        for (size_t i = 0; i < l->n_grants; i++) {
                int r = vfio_group_node_grant(s->root, l->grants[i].group, l->grants[i].to,
                                              ret_why);
                if (r < 0) {
                        size_t n = l->n_grants;
                        l->n_grants = i + 1; /* the failed one may be half done */
                        lease_grants_end(l);
                        l->n_grants = n;
                        return r;
                }
        }
        return 0;
}

static void close_all(int *fds, size_t n)
{
        for (size_t i = 0; i < n; i++)
                fds[i] = safe_close(fds[i]);
}

/* Devices in one Acquire: each takes an fd of the reply's VARLINK_FDS_MAX. */
#define ACQUIRE_DEVICES_MAX 8

/* Whether a device about to be handed out has a file of its cdev open somewhere: one
 * that a dead holder passed on before its lease ended, or one opened before the daemon
 * knew the node. Such a file could bind the device under the next VMM. 1 (with the
 * process in *ret_pid when a search finds it, else 0) or 0. No system call when the
 * count of the node's files is known and zero; else the queued events are read, or,
 * without a count, /proc is searched (and the count begins when none is found). For a
 * device without a cdev (type1), whether its group node is open answers. */
static int device_open_elsewhere(struct server *s, const struct pci_addr *a, int *ret_pid)
{
        *ret_pid = 0;
        const struct vfio_nodes *n = device_nodes(s, a);
        if (!n)
                return 0;
        if (n->cdev < 0) {
                /* No cdev (a type1 kernel): the group node tells, open once at most, a
                 * file in flight included. */
                return group_node_held(s, n, a, ret_pid);
        }
        int k = cdev_watch_open_files_read(&s->cdev_watches, n->cdev);
        if (k == 0)
                return 0;
        if (k > 0) {
                if (cdev_watch_open_files(&s->cdev_watches, n->cdev) == 0)
                        return 0;
                (void)vfio_device_open_by(s->root, a, ret_pid); /* only to name it */
                return 1;
        }
        return search_and_count(s, n->cdev, a, ret_pid) > 0;
}

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
        close_all(a->fds, a->n_fds);
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
        if (a->backend != VFIO_BACKEND_IOMMUFD ||
            sscanf(node, "dev/vfio/devices/vfio%d", &cdev) != 1)
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

static int acquire_bind_work(struct server *s, void *data, char **ret_why)
{
        struct acquire *a = data;
        _cleanup_(journal_freep) struct journal *j = NULL;
        int r = modules_need(s, a->modules, ret_why);
        if (r >= 0)
                r = open_journal(s, &j);
        if (r >= 0)
                r = vfio_bind_plan(s->root, j, &a->plan, false, ret_why);
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
                        (void)errno_error(j->conn, "bind", NULL, r, why);
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

/* Every device on vfio-pci already: the modules the backend needs, then the rest at
 * once. Otherwise a job binds what is not (acquire_bound() goes on from there), with the
 * plan kept to undo it on a later failure; the job owns the acquire from then on. */
static int acquire_start(struct conn *c, struct acquire **ap)
{
        struct server *s = c->server;
        struct acquire *a = *ap;
        unsigned backend_modules = a->backend >= 0 ? vfio_modules_for_backend(a->backend) : 0;
        _cleanup_free_ char *why = NULL;
        int r;
        if (!a->need_bind) {
                r = modules_need(s, backend_modules, &why);
                if (r < 0)
                        return errno_error(c, "acquire", &a->req[0], r, why);
                acquire_finish(c, a);
                return 0;
        }
        r = bind_plan_build(a->t, a->req, a->n_req, 0, &a->plan, &why);
        if (r < 0) {
                char buf[PCI_ADDR_STRLEN];
                return busy(c, pci_addr_format(&a->req[0], buf), "%s", why ? why : strerror(-r));
        }
        if (devices_taken(c, a->plan.devices, a->plan.n_devices))
                return 0;
        a->modules = VFIO_MODULE_BIT(VFIO_MODULE_VFIO_PCI) | backend_modules;
        a = TAKE_PTR(*ap);
        return call_job(c, "bind", a->plan.devices, a->plan.n_devices, acquire_bind_work,
                        acquire_bound, a, acquire_free);
}

static int method_acquire(struct conn *c, struct jspan params, int *fds, size_t n_fds)
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

static int method_release(struct conn *c, struct jspan params, int *fds, size_t n_fds)
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

static int method_list_leases(struct conn *c, struct jspan params, int *fds, size_t n_fds)
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
                                jbuf_str(&p, returning_names[l->returning[k]]);
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

/* In the worker: a bind or restore that a crash interrupted (of this daemon or of
 * vfioctl) is rolled back: the device returns to what the journal says it had. Confirmed
 * assignments stay. A corrupt entry names its device; vfio_device_restore() then works
 * the state out from sysfs. The journal's lock may be held by a worker an earlier daemon
 * left waiting for the kernel: this one waits for it, the loop does not. */
static int journal_recover_work(struct server *s, void *data, char **ret_why)
{
        _cleanup_(journal_freep) struct journal *j = NULL;
        int r = open_journal(s, &j);
        if (r < 0) {
                log_msg(LOG_ERR, "cannot open the journal: %s", strerror(-r));
                return r;
        }
        /* What a crash left half-written: never renamed over an entry, so nothing. */
        char **removed = NULL;
        r = journal_remove_temporaries(j, &removed);
        if (r < 0)
                log_msg(LOG_WARNING, "cannot remove the journal's temporary files: %s",
                        strerror(-r));
        for (char **f = removed; f && *f; f++)
                log_msg(LOG_NOTICE, "removed /%s/%s, a temporary file a crash left", j->path, *f);
        strv_free(removed);
        _cleanup_free_ struct pci_addr *l = NULL;
        size_t n = 0;
        r = journal_list(j, &l, &n);
        if (r < 0) {
                log_msg(LOG_ERR, "cannot list the journal: %s", strerror(-r));
                return r;
        }
        for (size_t i = 0; i < n; i++) {
                char buf[PCI_ADDR_STRLEN];
                const char *name = pci_addr_format(&l[i], buf);
                struct journal_entry e = {};
                r = journal_get(j, &l[i], &e);
                bool unconfirmed = r == -EBADMSG || (r == 0 && e.state != JOURNAL_ASSIGNED);
                journal_entry_done(&e);
                if (!unconfirmed)
                        continue;
                _cleanup_free_ char *why = NULL;
                r = vfio_device_restore(s->root, j, &l[i], &why);
                if (r < 0)
                        log_msg(LOG_ERR, "%s: interrupted operation, restore failed: %s", name,
                                why ? why : strerror(-r));
                else
                        log_msg(LOG_NOTICE, "%s: an interrupted bind or restore was rolled back",
                                name);
        }
        return 0;
}

static void journal_recover_done(struct server *s, struct job *j, int r, const char *why)
{
        server_invalidate(s);
        if (r >= 0)
                server_broadcast(s, "device-changed", NULL, 0);
}

int journal_recover(struct server *s)
{
        /* Every device is busy until it is done: none changes hands meanwhile. */
        int r = job_start(s,
                          &(struct job_spec){.operation = "journal recovery",
                                             .all_devices = true,
                                             .work = journal_recover_work,
                                             .done = journal_recover_done},
                          NULL);
        if (r < 0)
                log_msg(LOG_ERR, "cannot start the journal's recovery: %s", strerror(-r));
        return r;
}

int leases_recover(struct server *s)
{
        struct lease *list = NULL;
        size_t n = 0;
        char **bad = NULL;
        int r = lease_load_all(s->lease_log.dirfd, &list, &n, &bad);
        if (r < 0) {
                log_msg(LOG_ERR, "cannot read the lease records: %s", strerror(-r));
                return r;
        }
        for (char **b = bad; b && *b; b++)
                log_msg(LOG_ERR, "lease records: %s", *b);
        strv_free(bad);

        for (size_t i = 0; i < n; i++) {
                struct lease *l = malloc(sizeof(*l));
                if (!l) {
                        r = -ENOMEM;
                        for (size_t k = i; k < n; k++)
                                lease_done(&list[k]);
                        break;
                }
                *l = list[i];
                l->owner = s;
                l->adopted = true;
                r = lease_add(s, l);
                if (r < 0) {
                        lease_done(l);
                        free(l);
                        continue;
                }
                int pidfd;
                r = process_pidfd_verified(s->root, l->pid, l->starttime, &pidfd);
                if (r == 0) {
                        struct holder *h;
                        r = holder_get(s, l->pid, l->starttime, &pidfd, &h);
                        safe_close(pidfd);
                        if (r >= 0) {
                                l->holder = h;
                                log_msg(LOG_INFO, "lease %" PRIu64 ": adopted, held by pid %d",
                                        l->id, (int)l->pid);
                                continue;
                        }
                }
                /* Its holder is gone (or cannot be watched): give the devices back now. */
                lease_end(s, l, "lease-expired", false, NULL);
        }
        free(list);
        /* The log starts again with only what is live. */
        r = lease_log_rewrite(&s->lease_log, s->leases, s->n_leases);
        if (r < 0)
                log_msg(LOG_ERR, "cannot rewrite the lease log: %s", strerror(-r));
        return r;
}

/* ---- dispatch ----------------------------------------------------------------------- */

typedef int (*method_fn)(struct conn *c, struct jspan params, int *fds, size_t n_fds);

static const struct method {
        const char *name;
        method_fn fn;
        bool takes_fds;
} methods[] = {
        {"org.varlink.service.GetInfo", method_get_info},
        {"org.varlink.service.GetInterfaceDescription", method_get_interface_description},
        {"io.vfiod.ListDevices", method_list_devices},
        {"io.vfiod.ShowDevice", method_show_device},
        {"io.vfiod.ListGroups", method_list_groups},
        {"io.vfiod.Bind", method_bind},
        {"io.vfiod.Unbind", method_unbind},
        {"io.vfiod.SetNumVFs", method_set_numvfs},
        {"io.vfiod.ConfigureVF", method_configure_vf},
        {"io.vfiod.Acquire", method_acquire, .takes_fds = true},
        {"io.vfiod.Release", method_release},
        {"io.vfiod.ListLeases", method_list_leases},
        {"io.vfiod.Audit", method_audit},
        {"io.vfiod.Monitor", method_monitor},
};

int methods_dispatch(struct conn *c, const char *method, struct jspan params, int *fds,
                     size_t n_fds)
{
        const struct method *m = NULL;
        for (size_t i = 0; i < ELEMENTSOF(methods); i++)
                if (strcmp(methods[i].name, method) == 0)
                        m = &methods[i];
        if (!m) {
                close_all(fds, n_fds);
                const char *dot = strrchr(method, '.');
                size_t iface_len = dot ? (size_t)(dot - method) : 0;
                bool known_iface =
                        (iface_len == 8 && strncmp(method, "io.vfiod", 8) == 0) ||
                        (iface_len == 19 && strncmp(method, "org.varlink.service", 19) == 0);
                if (!known_iface) {
                        _cleanup_free_ char *iface = strndup(method, iface_len);
                        return conn_errorf(c, "org.varlink.service.InterfaceNotFound", "interface",
                                           iface ? iface : "", NULL);
                }
                return conn_errorf(c, "org.varlink.service.MethodNotFound", "method", method, NULL);
        }
        if (n_fds > 0 && !m->takes_fds) {
                close_all(fds, n_fds);
                json_object *p = json_object_new_object();
                if (!p)
                        return -ENOMEM;
                json_object_object_add(p, "count", json_object_new_int((int)n_fds));
                return conn_error(c, "io.vfiod.UnexpectedFileDescriptors", p);
        }
        if (m->takes_fds && n_fds > 1) {
                close_all(fds, n_fds);
                json_object *p = json_object_new_object();
                if (!p)
                        return -ENOMEM;
                json_object_object_add(p, "count", json_object_new_int((int)n_fds));
                return conn_error(c, "io.vfiod.UnexpectedFileDescriptors", p);
        }
        int r = m->fn(c, params, fds, n_fds);
        /* fds the method did not take (holder_fd not asked for) are closed here. */
        close_all(fds, n_fds);
        return r;
}
