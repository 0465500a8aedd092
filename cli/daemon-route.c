/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* State-changing verbs through a running vfiod: when the daemon is up, bind, unbind and
 * sriov ask it to do the work, so that its view (leases, monitors) stays true and its
 * policy applies. Without a daemon they work directly, as always. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli-daemon.h"
#include "cli-route.h"
#include "topology-json.h"

int cli_route_connect(struct cli *c, uint64_t direct_only_opts, struct vfiod_client **ret)
{
        if (cli_has(c, OPT_NO_DAEMON) || (c->opts & direct_only_opts) || c->root_path ||
            c->state_dir || !c->root->is_host)
                return 0;
        int r = vfiod_client_connect(cli_daemon_socket_for_user(), ret);
        if (r == -ENOENT || r == -ECONNREFUSED || r == -ENOTDIR)
                return 0; /* no daemon running */
        if (r < 0) {
                fprintf(stderr, "vfioctl: %s: %s (pass --no-daemon to work without it)\n",
                        cli_daemon_socket_for_user(), strerror(-r));
                return -EXIT_FAILED;
        }
        return 1;
}

int cli_route_bind(struct cli *c, struct vfiod_client *client, bool bind,
                   const struct pci_addr *req, size_t n_req, struct pci_addr **ret_moved,
                   size_t *ret_n)
{
        const char *verb = bind ? "bind" : "unbind";
        int r;
        json_object *params = json_object_new_object();
        json_object *devices = json_address_array_new(req, n_req);
        if (!params || !devices) {
                json_object_put(params);
                json_object_put(devices);
                return EXIT_FAILED;
        }
        json_object_object_add(params, "devices", devices);
        if (bind) {
                if (cli_has(c, OPT_GROUP))
                        json_object_object_add(params, "group", json_object_new_boolean(true));
                if (cli_has(c, OPT_FORCE))
                        json_object_object_add(params, "force", json_object_new_boolean(true));
        }
        json_object *reply = NULL, *list;
        r = cli_daemon_call(verb, client, bind ? "io.vfiod.Bind" : "io.vfiod.Unbind", params,
                            &reply);
        if (r)
                return r;
        size_t n = 0;
        bool ok = json_object_object_get_ex(reply, bind ? "bound" : "restored", &list) &&
                  json_object_is_type(list, json_type_array);
        _cleanup_free_ struct pci_addr *moved = NULL;
        if (ok) {
                n = json_object_array_length(list);
                moved = calloc(n ? n : 1, sizeof(*moved));
                ok = moved != NULL;
                for (size_t i = 0; ok && i < n; i++)
                        ok = pci_addr_parse(
                                     json_object_get_string(json_object_array_get_idx(list, i)),
                                     &moved[i]) == 0;
        }
        json_object_put(reply);
        if (!ok) {
                fprintf(stderr, "vfioctl: %s: the daemon's reply does not follow io.vfiod\n", verb);
                return EXIT_FAILED;
        }
        *ret_moved = TAKE_PTR(moved);
        *ret_n = n;
        return 0;
}

int cli_route_sriov_numvfs(struct cli *c, const char *pf, unsigned long n, const char *driver)
{
        _cleanup_(vfiod_client_freep) struct vfiod_client *client = NULL;
        int r = cli_route_connect(c, 0, &client);
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
        r = cli_daemon_call("sriov", client, "io.vfiod.SetNumVFs", params, &reply);
        json_object_put(reply);
        return r ? r : 0;
}
