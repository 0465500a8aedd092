/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The verbs that change the kernel: bind, unbind, restore; and persisted. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bind.h"
#include "detail.h"
#include "cli-daemon.h"
#include "cli-route.h"
#include "cli.h"
#include "journal.h"
#include "modules.h"
#include "node-access.h"
#include "persist.h"
#include "reset.h"
#include "sriov.h"
#include "strv.h"
#include "sysfs-pci.h"
#include "variant.h"

struct outcome {
        json_object *results; /* array of per-device results (JSON mode) */
        size_t failed;
        bool via_daemon; /* vfiod did the work */
};

static void report(struct cli *c, struct outcome *o, const struct pci_addr *a, const char *action,
                   const char *before, const char *after, const char *error)
{
        char addr[PCI_ADDR_STRLEN];

        pci_addr_format(a, addr);
        if (error)
                o->failed++;
        if (c->json) {
                json_object *e = json_object_new_object();
                json_object_object_add(e, "address", json_object_new_string(addr));
                json_object_object_add(e, "action", json_object_new_string(action));
                json_object_object_add(e, "driver_before",
                                       before ? json_object_new_string(before) : NULL);
                json_object_object_add(e, "driver_after",
                                       after ? json_object_new_string(after) : NULL);
                json_object_object_add(e, "error", error ? json_object_new_string(error) : NULL);
                json_object_array_add(o->results, e);
                return;
        }
        if (error)
                fprintf(stderr, "vfioctl: %s\n", error);
        else
                printf("%s: %s%s (%s -> %s)\n", addr, action, o->via_daemon ? " by vfiod" : "",
                       before ? before : "no driver", after ? after : "no driver");
}

static int finish(struct cli *c, struct outcome *o, const char *schema, char **notes)
{
        if (c->json) {
                json_object *doc = json_object_new_object();
                json_object *n = json_object_new_array();
                STRV_FOREACH (s, notes)
                        json_object_array_add(n, json_object_new_string(*s));
                json_object_object_add(doc, "schema", json_object_new_string(schema));
                json_object_object_add(doc, "results", o->results);
                json_object_object_add(doc, "notes", n);
                json_object_object_add(doc, "failed", json_object_new_int64((int64_t)o->failed));
                cli_json_add_modules(c, doc);
                if (o->via_daemon)
                        json_object_object_add(doc, "via", json_object_new_string("vfiod"));
                o->results = NULL;
                if (print_json(doc, JSON_C_TO_STRING_PRETTY) == 0)
                        puts("");
        } else
                STRV_FOREACH (s, notes)
                        printf("note: %s\n", *s);
        json_object_put(o->results); /* text mode: collected for nothing */
        o->results = NULL;
        return o->failed ? EXIT_FAILED : 0;
}

static int open_journal(struct cli *c, struct journal **ret)
{
        int r = journal_open(c->root, c->state_dir, ret);

        if (r < 0) {
                fprintf(stderr, "vfioctl: cannot open the journal in %s/journal below %s: %s%s\n",
                        c->state_dir ? c->state_dir : "/" VFIOD_STATE_DIR_DEFAULT, c->root->path,
                        strerror(-r), r == -EACCES || r == -EPERM ? " (run as root)" : "");
                return EXIT_FAILED;
        }
        return 0;
}

static char *current_driver(struct cli *c, const struct pci_addr *a)
{
        char *d = NULL;
        return pci_sysfs_get_driver(c->root, a, &d) < 0 ? NULL : d;
}

/* bind or unbind through a running vfiod, reported as the direct path reports: -1 when
 * the daemon is not used, else the exit status. A device the daemon took along (a group
 * mate) shows its driver before as unknown. */
static int via_daemon(struct cli *c, struct outcome *o, bool bind, const struct pci_addr *req,
                      size_t n_req)
{
        _cleanup_(vfiod_client_freep) struct vfiod_client *client = NULL;
        _cleanup_free_ struct pci_addr *moved = NULL;
        uint64_t direct = OPT_BIT(OPT_DRY_RUN) | OPT_BIT(OPT_PERSIST) | OPT_BIT(OPT_PERSISTED) |
                          OPT_BIT(OPT_RESET) | OPT_BIT(OPT_DRIVER);
        size_t n = 0;
        int r = cli_route_connect(c, direct, &client);
        if (r <= 0)
                return r < 0 ? -r : -1;

        char **before = calloc(n_req, sizeof(char *));
        if (!before)
                return EXIT_FAILED;
        for (size_t i = 0; i < n_req; i++)
                before[i] = current_driver(c, &req[i]);
        r = cli_route_bind(c, client, bind, req, n_req, &moved, &n);
        o->via_daemon = r == 0;
        for (size_t i = 0; r == 0 && i < n; i++) {
                _cleanup_free_ char *after = current_driver(c, &moved[i]);
                const char *was = NULL;
                for (size_t k = 0; k < n_req; k++)
                        if (pci_addr_equal(&req[k], &moved[i]))
                                was = before[k];
                report(c, o, &moved[i], bind ? "bound" : "restored", was, after, NULL);
        }
        for (size_t i = 0; i < n_req; i++)
                free(before[i]);
        free(before);
        return r != 0 ? r : finish(c, o, bind ? "vfiod.bind/1" : "vfiod.unbind/1", NULL);
}

/* What vfio_bind_plan() (returning r, with why) did to each device of the plan; each
 * newly bound one is reset first with --reset. */
static void report_plan(struct cli *c, struct outcome *o, struct topology *t,
                        const struct bind_plan *plan, int r, const char *why)
{
        if (r < 0) {
                for (size_t i = 0; i < plan->n_devices; i++) {
                        _cleanup_free_ char *now = current_driver(c, &plan->devices[i]);
                        const struct pci_device *d = topology_find_device(t, &plan->devices[i]);
                        report(c, o, &plan->devices[i], "unchanged", d->driver, now, NULL);
                }
                report(c, o, &plan->devices[0], "failed", NULL, NULL, detail_or_strerror(why, r));
                return;
        }
        for (size_t i = 0; i < plan->n_devices; i++) {
                const struct pci_device *d = topology_find_device(t, &plan->devices[i]);
                const char *to = bind_plan_driver(plan, i);
                _cleanup_free_ char *rwhy = NULL;
                bool was = d->driver && strcmp(d->driver, to) == 0;

                if (cli_has(c, OPT_RESET) && vfio_device_reset(c->root, t, d, &rwhy) < 0) {
                        report(c, o, &d->addr, "bound", d->driver, to, rwhy);
                        continue;
                }
                report(c, o, &d->addr, was ? "already-bound" : "bound", d->driver, to, NULL);
        }
}

/* Whether --driver's name is one vfio_candidate_named() takes: vfio-pci or a variant. */
static bool driver_name_is_vfio(struct cli *c, const char *name)
{
        struct vfio_candidate v = {0};
        int r = vfio_candidate_named(c->root, name, &v, NULL);

        vfio_candidate_done(&v);
        return r >= 0;
}

/* The drivers of the plan made available (bind_plan_need_drivers()), each module loaded
 * reported; the detail names the device whose driver is missing. */
static int need_drivers(struct cli *c, const struct bind_plan *plan, char **ret_detail)
{
        _cleanup_(strv_freep) char **loaded = NULL;
        int r = bind_plan_need_drivers(c->root, plan, &loaded, ret_detail);

        if (r >= 0)
                r = cli_modules_loaded(c, loaded);
        return r;
}

int verb_bind(struct cli *c)
{
        _cleanup_free_ struct pci_addr *req = NULL;
        _cleanup_free_ struct persist_entry *recorded = NULL;
        _cleanup_(journal_freep) struct journal *j = NULL;
        _cleanup_free_ char *why = NULL;
        struct bind_plan plan = {0};
        struct outcome o = {0};
        struct topology *t;
        unsigned flags = 0;
        size_t n_req = 0;
        int r;

        if (cli_has(c, OPT_PERSISTED) && c->n_args > 0)
                return usage_error("bind: --persisted takes no DEVICE");
        /* Before anything is written: only a VFIO driver is a target. */
        if (cli_has(c, OPT_DRIVER) && !driver_name_is_vfio(c, c->values[OPT_DRIVER])) {
                char q[300];
                fprintf(stderr,
                        "vfioctl: bind: --driver %s: not vfio-pci or a vfio-pci variant driver "
                        "(such as mlx5_vfio_pci); nothing was changed\n",
                        cli_quote(c->values[OPT_DRIVER], q));
                return EXIT_USAGE;
        }
        if (!cli_has(c, OPT_PERSISTED) && c->n_args == 0)
                return usage_error("bind: expected at least one DEVICE");
        /* From here every return gives the results back or hands them to finish(). */
        o.results = json_object_new_array();
        if (cli_has(c, OPT_PERSISTED)) {
                r = persist_load(c->root, &recorded, &n_req, &why);
                if (r < 0) {
                        fprintf(stderr, "vfioctl: bind: cannot read /%s: %s\n", VFIOD_PERSIST_FILE,
                                detail_or_strerror(why, r));
                        json_object_put(o.results);
                        return EXIT_FAILED;
                }
                if (n_req > 0 && !(req = calloc(n_req, sizeof(*req)))) {
                        json_object_put(o.results);
                        return EXIT_FAILED;
                }
                for (size_t i = 0; i < n_req; i++)
                        req[i] = recorded[i].addr;
                if (n_req == 0) {
                        json_object_put(o.results);
                        printf(c->json ? "{\"schema\":\"vfiod.bind/1\",\"results\":[],\"notes\":[],"
                                         "\"failed\":0,\"modules_loaded\":[]}\n"
                                       : "No devices are recorded for boot-time assignment.\n");
                        return 0;
                }
        } else if ((r = cli_parse_addresses(c, "bind", &req, &n_req)))
                return json_object_put(o.results), r;
        if (!cli_has(c, OPT_PERSISTED) && (r = via_daemon(c, &o, true, req, n_req)) >= 0)
                return json_object_put(o.results), r;

        r = cli_topology_scoped(c, req, n_req, &t);
        if (r)
                return json_object_put(o.results), r;
        flags |= cli_has(c, OPT_GROUP) ? BIND_GROUP : 0;
        flags |= cli_has(c, OPT_FORCE) ? BIND_FORCE : 0;
        r = bind_plan_build(t, req, n_req, flags, &plan, &why);
        if (r < 0) {
                fprintf(stderr, "vfioctl: bind: %s\n", detail_or_strerror(why, r));
                json_object_put(o.results);
                return r == -ENODEV ? EXIT_USAGE : EXIT_FAILED;
        }
        r = bind_plan_choose_drivers(c->root, &plan, c->values[OPT_DRIVER], &why);
        /* A recorded device goes to the driver --driver chose when it was recorded. */
        for (size_t i = 0; r >= 0 && i < n_req && recorded; i++)
                if (recorded[i].driver[0])
                        r = bind_plan_force_driver(c->root, &plan, &recorded[i].addr,
                                                   recorded[i].driver, &why);
        if (r < 0) {
                fprintf(stderr, "vfioctl: bind: %s%s\n", detail_or_strerror(why, r),
                        r == -EINVAL ? "; nothing was changed" : "");
                bind_plan_done(&plan);
                json_object_put(o.results);
                return r == -EINVAL ? EXIT_USAGE : EXIT_FAILED;
        }
        if (cli_has(c, OPT_RESET))
                for (size_t i = 0; i < plan.n_devices; i++) {
                        _cleanup_free_ char *rwhy = NULL;
                        r = vfio_reset_check(t, topology_find_device(t, &plan.devices[i]), &rwhy);
                        if (r < 0) {
                                fprintf(stderr, "vfioctl: bind --reset: %s\n",
                                        detail_or_strerror(rwhy, r));
                                bind_plan_done(&plan);
                                json_object_put(o.results);
                                return EXIT_FAILED;
                        }
                }

        if (cli_has(c, OPT_DRY_RUN)) {
                for (size_t i = 0; i < plan.n_devices; i++) {
                        const struct pci_device *d = topology_find_device(t, &plan.devices[i]);
                        const char *to = bind_plan_driver(&plan, i);
                        report(c, &o, &d->addr,
                               d->driver && strcmp(d->driver, to) == 0 ? "already-bound"
                                                                       : "would-bind",
                               d->driver, to, NULL);
                }
                r = finish(c, &o, "vfiod.bind/1", plan.notes);
                bind_plan_done(&plan);
                return r;
        }

        /* Before anything is journaled: a module that cannot be loaded changes nothing. */
        r = need_drivers(c, &plan, &why);
        if (r < 0) {
                report(c, &o, &plan.devices[0], "failed", NULL, NULL, detail_or_strerror(why, r));
                r = finish(c, &o, "vfiod.bind/1", NULL);
                bind_plan_done(&plan);
                return r;
        }
        r = open_journal(c, &j);
        if (r) {
                bind_plan_done(&plan);
                json_object_put(o.results);
                return r;
        }
        r = vfio_bind_plan(c->root, j, &plan, cli_has(c, OPT_PERSIST), &why);
        report_plan(c, &o, t, &plan, r, why);
        if (r >= 0 && cli_has(c, OPT_PERSIST)) {
                _cleanup_free_ char *pwhy = NULL;
                /* --driver is recorded with the devices, to be chosen again at boot. */
                _cleanup_free_ const char **forced = NULL;
                if (cli_has(c, OPT_DRIVER) && (forced = calloc(plan.n_devices, sizeof(*forced))))
                        for (size_t i = 0; i < plan.n_devices; i++)
                                forced[i] = bind_plan_driver(&plan, i);
                int k = cli_has(c, OPT_DRIVER) && !forced
                                ? -ENOMEM
                                : persist_update(c->root, plan.devices, forced, plan.n_devices,
                                                 NULL, 0, &pwhy);
                if (k < 0)
                        report(c, &o, &plan.devices[0], "persist", NULL, NULL,
                               pwhy ? pwhy : "cannot record the boot-time assignment");
        }
        r = finish(c, &o, "vfiod.bind/1", plan.notes);
        bind_plan_done(&plan);
        return r;
}

static void restore_one(struct cli *c, struct outcome *o, struct journal *j,
                        const struct pci_addr *a)
{
        _cleanup_free_ char *before = current_driver(c, a), *why = NULL, *after = NULL;
        int r = vfio_device_restore(c->root, j, a, &why);

        after = current_driver(c, a);
        report(c, o, a, r == -EBADMSG ? "released" : "restored", before, after,
               r < 0 ? detail_or_strerror(why, r) : NULL);
}

int verb_unbind(struct cli *c)
{
        _cleanup_free_ struct pci_addr *req = NULL;
        _cleanup_(journal_freep) struct journal *j = NULL;
        struct outcome o = {.results = json_object_new_array()};
        struct topology *t = NULL;
        size_t n_req;
        int r;

        r = cli_parse_addresses(c, "unbind", &req, &n_req);
        if (r)
                return json_object_put(o.results), r;
        if ((r = via_daemon(c, &o, false, req, n_req)) >= 0)
                return json_object_put(o.results), r;
        r = open_journal(c, &j);
        if (!r && cli_has(c, OPT_RESET))
                r = cli_topology_scoped(c, req, n_req, &t);
        if (r)
                return json_object_put(o.results), r;
        for (size_t i = 0; i < n_req; i++) {
                char addr[PCI_ADDR_STRLEN];
                if (pci_sysfs_device_exists(c->root, &req[i]) < 0) {
                        fprintf(stderr, "vfioctl: unbind: no PCI device %s on this host\n",
                                pci_addr_format(&req[i], addr));
                        json_object_put(o.results);
                        return EXIT_USAGE;
                }
        }
        for (size_t i = 0; i < n_req; i++) {
                if (t) {
                        _cleanup_free_ char *rwhy = NULL;
                        const struct pci_device *d = topology_find_device(t, &req[i]);
                        if (d && vfio_device_reset(c->root, t, d, &rwhy) < 0) {
                                report(c, &o, &req[i], "reset", NULL, NULL, rwhy);
                                continue;
                        }
                }
                restore_one(c, &o, j, &req[i]);
        }
        if (cli_has(c, OPT_PERSIST)) {
                _cleanup_free_ char *pwhy = NULL;
                if (persist_update(c->root, NULL, NULL, 0, req, n_req, &pwhy) < 0)
                        report(c, &o, &req[0], "persist", NULL, NULL,
                               pwhy ? pwhy : "cannot update the boot-time assignments");
        }
        return finish(c, &o, "vfiod.unbind/1", NULL);
}

/* The daemon's lease log: $VFIOD_RUNTIME_DIR/leases/log on the live host, else
 * run/vfiod/leases/log below the root. -ENOENT when there is none. */
static int lease_log_read(struct cli *c, char **ret, size_t *ret_len)
{
        const char *dir = getenv("VFIOD_RUNTIME_DIR");
        _cleanup_close_ int fd = -EBADF;
        if (dir && *dir && c->root->is_host) {
                _cleanup_free_ char *path = NULL;
                if (asprintf(&path, "%s/leases/log", dir) < 0)
                        return -ENOMEM;
                fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0)
                        return negative_errno();
        } else if ((fd = root_openat(c->root, "run/vfiod/leases/log", O_RDONLY | O_NOFOLLOW)) < 0)
                return fd;
        return fd_read_all(fd, 64 * 1024 * 1024, ret, ret_len);
}

struct recorded_grants {
        uint64_t lease;
        struct node_grant *grants;
        size_t n;
};

/* The group nodes that live type1 leases opened to their holders: "+" records with
 * grants whose lease no "-" line ended. Lines that cannot be read are skipped (the
 * daemon names them at its next start). */
static int lease_log_grants(char *text, size_t len, struct recorded_grants **ret, size_t *ret_n)
{
        struct recorded_grants *list = NULL;
        size_t n = 0;
        for (char *line = text; line && line < text + len;) {
                char *nl = memchr(line, '\n', (size_t)(text + len - line));
                if (!nl)
                        break; /* unfinished: its lease never left the daemon */
                *nl = 0;
                char *next = nl + 1, *end;
                unsigned long long id;
                if (line[0] == '-' && (id = strtoull(line + 1, &end, 10), !*end)) {
                        for (size_t i = 0; i < n; i++)
                                if (list[i].lease == id) {
                                        node_grants_free(list[i].grants, list[i].n);
                                        list[i] = list[--n];
                                        break;
                                }
                } else if (line[0] == '+') {
                        json_object *o = json_tokener_parse(line + 1), *v, *g;
                        struct recorded_grants r = {};
                        if (o && json_object_object_get_ex(o, "id", &v) &&
                            json_object_object_get_ex(o, "grants", &g) &&
                            node_grants_from_json(g, &r.grants, &r.n) == 0) {
                                r.lease = (uint64_t)json_object_get_int64(v);
                                struct recorded_grants *p = reallocarray(list, n + 1, sizeof(*p));
                                if (!p) {
                                        node_grants_free(r.grants, r.n);
                                        json_object_put(o);
                                        break;
                                }
                                list = p;
                                list[n++] = r;
                        }
                        json_object_put(o);
                }
                line = next;
        }
        *ret = list;
        *ret_n = n;
        return 0;
}

/* Puts back every group node the daemon's live type1 leases opened to their holders;
 * returns how many there were. */
static size_t restore_grants(struct cli *c, struct outcome *o)
{
        _cleanup_free_ char *text = NULL;
        struct recorded_grants *list = NULL;
        size_t len = 0, n = 0;
        size_t count = 0;
        if (lease_log_read(c, &text, &len) < 0 || lease_log_grants(text, len, &list, &n) < 0)
                return 0;
        for (size_t i = 0; i < n; i++) {
                count += list[i].n;
                for (size_t k = 0; k < list[i].n; k++) {
                        const struct node_grant *g = &list[i].grants[k];
                        _cleanup_free_ char *why = NULL;
                        int r = vfio_group_node_restore(c->root, g->group, &g->was, &why);
                        if (r < 0)
                                o->failed++;
                        if (c->json) {
                                json_object *e = json_object_new_object();
                                json_object_object_add(e, "group", json_object_new_int(g->group));
                                json_object_object_add(e, "action",
                                                       json_object_new_string("node-put-back"));
                                json_object_object_add(e, "uid", json_object_new_int64(g->to));
                                json_object_object_add(
                                        e, "lease", json_object_new_int64((int64_t)list[i].lease));
                                json_object_object_add(
                                        e, "error",
                                        r < 0 ? json_object_new_string(detail_or_strerror(why, r))
                                              : NULL);
                                json_object_array_add(o->results, e);
                        } else if (r < 0)
                                fprintf(stderr, "vfioctl: restore: %s\n",
                                        detail_or_strerror(why, r));
                        else
                                printf("/dev/vfio/%d: no longer open to uid %u (lease %" PRIu64
                                       ")\n",
                                       g->group, (unsigned)g->to, list[i].lease);
                }
                node_grants_free(list[i].grants, list[i].n);
        }
        free(list);
        return count;
}

int verb_restore(struct cli *c)
{
        _cleanup_(journal_freep) struct journal *j = NULL;
        _cleanup_free_ struct pci_addr *l = NULL, *pfs = NULL;
        struct outcome o = {.results = json_object_new_array()};
        size_t n = 0, n_pfs = 0;
        int r;

        if (!cli_has(c, OPT_ALL)) {
                json_object_put(o.results);
                return usage_error("restore: pass --all (to return single devices, use unbind)");
        }
        r = open_journal(c, &j);
        if (r)
                return json_object_put(o.results), r;
        r = journal_list(j, &l, &n);
        if (r < 0) {
                fprintf(stderr, "vfioctl: restore: cannot list the journal: %s\n", strerror(-r));
                json_object_put(o.results);
                return EXIT_FAILED;
        }
        r = sriov_journal_list(j, &pfs, &n_pfs);
        if (r < 0) {
                fprintf(stderr, "vfioctl: restore: cannot list the journal: %s\n", strerror(-r));
                json_object_put(o.results);
                return EXIT_FAILED;
        }
        /* Group nodes first: a pooled device's node stays with it. */
        size_t n_nodes = restore_grants(c, &o);
        if (n == 0 && n_pfs == 0 && n_nodes == 0 && !c->json)
                printf("Nothing to restore: the journal is empty.\n");
        /* Devices first: a PF's VF count goes back last, which may remove VFs. */
        for (size_t i = 0; i < n; i++)
                restore_one(c, &o, j, &l[i]);
        for (size_t i = 0; i < n_pfs; i++) {
                _cleanup_free_ char *why = NULL;
                r = sriov_pf_restore(c->root, j, &pfs[i], &why);
                report(c, &o, &pfs[i], "sriov-restored", NULL, NULL,
                       r < 0 ? detail_or_strerror(why, r) : NULL);
        }
        return finish(c, &o, "vfiod.restore/1", NULL);
}

int verb_persisted(struct cli *c)
{
        _cleanup_free_ struct persist_entry *l = NULL;
        _cleanup_free_ char *why = NULL;
        struct pci_addr a;
        size_t n = 0;
        int r;

        if (c->n_args == 1 && pci_addr_parse(c->args[0], &a) < 0) {
                char q[300];
                fprintf(stderr, "vfioctl: persisted: '%s' is not a PCI address\n",
                        cli_quote(c->args[0], q));
                return EXIT_USAGE;
        }
        r = persist_load(c->root, &l, &n, &why);
        if (r < 0) {
                fprintf(stderr, "vfioctl: persisted: cannot read /%s: %s\n", VFIOD_PERSIST_FILE,
                        detail_or_strerror(why, r));
                return EXIT_FAILED;
        }
        if (c->n_args == 1) {
                for (size_t i = 0; i < n; i++)
                        if (pci_addr_equal(&l[i].addr, &a)) {
                                /* For the udev rule's driver_override: the device's VFIO
                                 * driver, the one recorded, else as a bind would choose it. */
                                _cleanup_(vfio_candidate_done) struct vfio_candidate cand = {0};
                                if (l[i].driver[0])
                                        return puts(l[i].driver) < 0;
                                _cleanup_free_ char *cwhy = NULL;
                                bool found =
                                        vfio_candidate_find(c->root, NULL, &a, &cand, &cwhy) >= 0;
                                return puts(found ? cand.driver : "vfio-pci") < 0;
                        }
                return 1;
        }
        if (c->json) {
                json_object *arr = json_object_new_array();
                for (size_t i = 0; i < n; i++) {
                        char buf[PCI_ADDR_STRLEN];
                        json_object_array_add(
                                arr, json_object_new_string(pci_addr_format(&l[i].addr, buf)));
                }
                return print_json(arr, JSON_C_TO_STRING_PLAIN) || puts("") < 0;
        }
        for (size_t i = 0; i < n; i++) {
                char buf[PCI_ADDR_STRLEN];
                printf("%s%s%s\n", pci_addr_format(&l[i].addr, buf), l[i].driver[0] ? " " : "",
                       l[i].driver);
        }
        return 0;
}
