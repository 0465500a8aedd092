/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The methods that change nothing: GetInfo, GetInterfaceDescription, ListDevices,
 * ListGroups, ShowDevice, Audit and Monitor. */

#include "vfiod-interface.h"
#include "methods-internal.h"
#include "variant.h"

/* ---- org.varlink.service ------------------------------------------------------------ */

int method_get_info(struct conn *c, struct jspan params, int *fds, size_t n_fds)
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

int method_get_interface_description(struct conn *c, struct jspan params, int *fds, size_t n_fds)
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

int method_list_devices(struct conn *c, struct jspan params, int *fds, size_t n_fds)
{
        int r = read_no_params(c, params);
        if (r != 0)
                return r < 0 ? r : 0;
        return reply_topology_list(c, "devices", false);
}

int method_list_groups(struct conn *c, struct jspan params, int *fds, size_t n_fds)
{
        int r = read_no_params(c, params);
        if (r != 0)
                return r < 0 ? r : 0;
        return reply_topology_list(c, "groups", true);
}

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
                        json_object_object_add(o, "state",
                                               json_object_new_string(lease_device_state_to_string(
                                                       l->returning[k])));
                        return o;
                }
        return NULL;
}

int method_show_device(struct conn *c, struct jspan params, int *fds, size_t n_fds)
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
        /* The VFIO driver a bind would choose, as vfioctl show tells it. */
        struct vfio_candidate cand = {0};
        if (vfio_candidate_describe(c->server->root, d, &cand) >= 0)
                json_object_object_add(o, "vfio_driver", vfio_candidate_to_json(&cand));
        /* As vfioctl show has them, but the ROM's content: reading it is a sysfs write. */
        struct device_preflight pf;
        if (device_preflight_gather(c->server->root, d, cand.driver, false, &pf) < 0) {
                vfio_candidate_done(&cand);
                json_object_put(p);
                json_object_put(o);
                return -ENOMEM;
        }
        json_device_preflight_add(o, t, d, &pf);
        vfio_candidate_done(&cand);
        json_object *op = device_operation_json(c->server, &a);
        if (op)
                json_object_object_add(o, "operation", op);
        json_object_object_add(p, "device", o);
        return conn_reply(c, p, NULL, 0);
}

/* ---- audit -------------------------------------------------------------------------- */

int method_audit(struct conn *c, struct jspan params, int *fds, size_t n_fds)
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

int method_monitor(struct conn *c, struct jspan params, int *fds, size_t n_fds)
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
