/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* State-changing verbs through a running vfiod: when the daemon is up, bind, unbind and
 * sriov ask it to do the work, so that its view (leases, monitors) stays true and its
 * policy applies. Without a daemon they work directly, as always. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli-daemon.h"
#include "cli-route.h"
#include "sysfs-pci.h"

/* The socket to ask: root talks to the admin socket, others to the public one. */
static const char *route_socket(void)
{
        if (geteuid() == 0) {
                const char *p = getenv("VFIOD_ADMIN_SOCKET");
                return p && *p ? p : VFIOD_ADMIN_SOCKET_PATH;
        }
        return cli_daemon_socket();
}

/* Connects when the daemon should do the work: 1 and *ret set, 0 to work directly. */
static int route_connect(struct cli *c, uint64_t direct_only_opts, struct vfiod_client **ret)
{
        if (cli_has(c, OPT_NO_DAEMON) || (c->opts & direct_only_opts) || c->root_path ||
            c->state_dir || !c->root->is_host)
                return 0;
        int r = vfiod_client_connect(route_socket(), ret);
        if (r == -ENOENT || r == -ECONNREFUSED || r == -ENOTDIR)
                return 0; /* no daemon running */
        if (r < 0) {
                fprintf(stderr, "vfioctl: %s: %s (pass --no-daemon to work without it)\n",
                        route_socket(), strerror(-r));
                return -EXIT_FAILED;
        }
        return 1;
}

static char *driver_now(struct cli *c, const char *address)
{
        struct pci_addr a;
        char *d = NULL;
        if (pci_addr_parse(address, &a) < 0 || pci_sysfs_get_driver(c->root, &a, &d) < 0)
                return NULL;
        return d;
}

/* Calls method; on a varlink error prints it and returns its exit status. */
static int route_call(const char *verb, struct vfiod_client *client, const char *method,
                      json_object *params, json_object **ret)
{
        _cleanup_free_ char *error = NULL;
        json_object *reply = NULL;
        int r = vfiod_client_call(client, method, params, NULL, 0, &reply, NULL, NULL, &error);
        if (r == -EREMOTEIO) {
                r = cli_daemon_error(verb, error, reply);
                json_object_put(reply);
                return r;
        }
        if (r < 0) {
                fprintf(stderr, "vfioctl: %s: the daemon did not answer: %s\n", verb, strerror(-r));
                return EXIT_FAILED;
        }
        *ret = reply;
        return 0;
}

static json_object *address_list(char **args, size_t n)
{
        json_object *a = json_object_new_array();
        for (size_t i = 0; a && i < n; i++)
                json_object_array_add(a, json_object_new_string(args[i]));
        return a;
}

/* Prints the devices the daemon moved, in the shape the direct verbs print. */
static int route_report(struct cli *c, const char *schema, const char *action, json_object *list,
                        char **before_names)
{
        size_t n = json_object_array_length(list);
        json_object *results = json_object_new_array();
        if (!results)
                return EXIT_FAILED;
        for (size_t i = 0; i < n; i++) {
                const char *addr = json_object_get_string(json_object_array_get_idx(list, i));
                _cleanup_free_ char *after = driver_now(c, addr);
                const char *before = before_names ? before_names[i] : NULL;
                if (c->json) {
                        json_object *e = json_object_new_object();
                        json_object_object_add(e, "address", json_object_new_string(addr));
                        json_object_object_add(e, "action", json_object_new_string(action));
                        json_object_object_add(e, "driver_before",
                                               before ? json_object_new_string(before) : NULL);
                        json_object_object_add(e, "driver_after",
                                               after ? json_object_new_string(after) : NULL);
                        json_object_object_add(e, "error", NULL);
                        json_object_array_add(results, e);
                } else
                        printf("%s: %s by vfiod (%s -> %s)\n", addr, action,
                               before ? before : "no driver", after ? after : "no driver");
        }
        if (c->json) {
                json_object *doc = json_object_new_object();
                json_object_object_add(doc, "schema", json_object_new_string(schema));
                json_object_object_add(doc, "results", results);
                json_object_object_add(doc, "notes", json_object_new_array());
                json_object_object_add(doc, "failed", json_object_new_int(0));
                json_object_object_add(doc, "via", json_object_new_string("vfiod"));
                int r = print_json(doc, JSON_C_TO_STRING_PRETTY);
                puts("");
                return r ? EXIT_FAILED : 0;
        }
        json_object_put(results);
        return 0;
}

static char **drivers_before(struct cli *c, json_object *list)
{
        size_t n = json_object_array_length(list);
        char **l = calloc(n + 1, sizeof(char *));
        for (size_t i = 0; l && i < n; i++)
                l[i] = driver_now(c, json_object_get_string(json_object_array_get_idx(list, i)));
        return l;
}

static void names_free(char **l, size_t n)
{
        for (size_t i = 0; l && i < n; i++)
                free(l[i]);
        free(l);
}

int cli_route_bind(struct cli *c, bool bind)
{
        _cleanup_(vfiod_client_freep) struct vfiod_client *client = NULL;
        const char *verb = bind ? "bind" : "unbind";
        uint64_t direct = OPT_BIT(OPT_DRY_RUN) | OPT_BIT(OPT_PERSIST) | OPT_BIT(OPT_PERSISTED) |
                          OPT_BIT(OPT_RESET);
        int r = route_connect(c, direct, &client);
        if (r <= 0)
                return r < 0 ? -r : -1;

        json_object *params = json_object_new_object();
        json_object *devices = address_list(c->args, c->n_args);
        if (!params || !devices) {
                json_object_put(params);
                json_object_put(devices);
                return EXIT_FAILED;
        }
        /* The daemon decides which group members a bind takes: their drivers before are
         * read for every member after the reply, from what it names. */
        char **before = drivers_before(c, devices);
        json_object_object_add(params, "devices", devices);
        if (bind) {
                if (cli_has(c, OPT_GROUP))
                        json_object_object_add(params, "group", json_object_new_boolean(true));
                if (cli_has(c, OPT_FORCE))
                        json_object_object_add(params, "force", json_object_new_boolean(true));
        }
        json_object *reply = NULL;
        r = route_call(verb, client, bind ? "io.vfiod.Bind" : "io.vfiod.Unbind", params, &reply);
        if (r) {
                names_free(before, c->n_args);
                return r;
        }
        json_object *list;
        if (!json_object_object_get_ex(reply, bind ? "bound" : "restored", &list) ||
            !json_object_is_type(list, json_type_array)) {
                fprintf(stderr, "vfioctl: %s: the daemon's reply does not follow io.vfiod\n", verb);
                json_object_put(reply);
                names_free(before, c->n_args);
                return EXIT_FAILED;
        }
        /* Before-drivers are known for the devices named on the command line; a group
         * member the daemon added reads as unknown. */
        size_t n = json_object_array_length(list);
        char **b = calloc(n + 1, sizeof(char *));
        for (size_t i = 0; b && i < n; i++) {
                const char *addr = json_object_get_string(json_object_array_get_idx(list, i));
                for (size_t k = 0; k < c->n_args; k++) {
                        struct pci_addr x, y;
                        if (before[k] && pci_addr_parse(addr, &x) == 0 &&
                            pci_addr_parse(c->args[k], &y) == 0 && pci_addr_equal(&x, &y))
                                b[i] = strdup(before[k]);
                }
        }
        r = route_report(c, bind ? "vfiod.bind/1" : "vfiod.unbind/1", bind ? "bound" : "restored",
                         list, b);
        names_free(b, n);
        names_free(before, c->n_args);
        json_object_put(reply);
        return r;
}

int cli_route_sriov_numvfs(struct cli *c, const char *pf, unsigned long n, const char *driver)
{
        _cleanup_(vfiod_client_freep) struct vfiod_client *client = NULL;
        int r = route_connect(c, 0, &client);
        if (r <= 0)
                return r < 0 ? -r : -1;
        json_object *params = json_object_new_object();
        if (!params)
                return EXIT_FAILED;
        json_object_object_add(params, "pf", json_object_new_string(pf));
        json_object_object_add(params, "numvfs", json_object_new_int64((int64_t)n));
        if (driver)
                json_object_object_add(params, "driver", json_object_new_string(driver));
        json_object *reply = NULL;
        r = route_call("sriov", client, "io.vfiod.SetNumVFs", params, &reply);
        json_object_put(reply);
        return r ? r : 0;
}
