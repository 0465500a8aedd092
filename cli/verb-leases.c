/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfioctl leases, vfioctl release: the daemon's leases, from its socket. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli-daemon.h"
#include "cli.h"

int verb_leases(struct cli *c)
{
        _cleanup_(vfiod_client_freep) struct vfiod_client *client = NULL;
        json_object *reply = NULL, *list;
        int r = cli_daemon_connect_path("leases", cli_daemon_socket_for_user(), &client);
        if (!r)
                r = cli_daemon_call("leases", client, "io.vfiod.ListLeases", NULL, &reply);
        if (r)
                return r;
        if (!json_object_object_get_ex(reply, "leases", &list) ||
            !json_object_is_type(list, json_type_array)) {
                fprintf(stderr, "vfioctl: leases: the daemon's reply does not follow io.vfiod\n");
                json_object_put(reply);
                return EXIT_FAILED;
        }
        if (c->json) {
                json_object *doc = json_object_new_object();
                json_object_object_add(doc, "schema", json_object_new_string("vfiod.leases/1"));
                json_object_object_add(doc, "leases", json_object_get(list));
                json_object_put(reply);
                r = print_json(doc, JSON_C_TO_STRING_PRETTY);
                puts("");
                return r ? EXIT_FAILED : 0;
        }
        size_t n = json_object_array_length(list);
        if (n == 0)
                printf("No leases.\n");
        for (size_t i = 0; i < n; i++) {
                json_object *l = json_object_array_get_idx(list, i), *v, *devs;
                int64_t id = json_object_object_get_ex(l, "id", &v) ? json_object_get_int64(v) : 0;
                int64_t pid =
                        json_object_object_get_ex(l, "pid", &v) ? json_object_get_int64(v) : 0;
                int64_t uid =
                        json_object_object_get_ex(l, "uid", &v) ? json_object_get_int64(v) : 0;
                bool adopted =
                        json_object_object_get_ex(l, "adopted", &v) && json_object_get_boolean(v);
                printf("lease %" PRId64 "  pid %" PRId64 "  uid %" PRId64
                       "  %s  on release: %s%s\n",
                       id, pid, uid, strna(cli_json_string(l, "backend")),
                       strna(cli_json_string(l, "on_release")),
                       adopted ? "  (adopted after a restart)" : "");
                if (json_object_object_get_ex(l, "devices", &devs) &&
                    json_object_is_type(devs, json_type_array))
                        for (size_t k = 0; k < json_object_array_length(devs); k++)
                                printf("  %s\n",
                                       json_object_get_string(json_object_array_get_idx(devs, k)));
        }
        json_object_put(reply);
        return 0;
}

int verb_release(struct cli *c)
{
        _cleanup_(vfiod_client_freep) struct vfiod_client *client = NULL;
        char *end;
        errno = 0;
        unsigned long long id = strtoull(c->args[0], &end, 10);
        if (!c->args[0][0] || *end || errno || id == 0 || id > INT64_MAX || c->args[0][0] == '-') {
                char q[300];
                fprintf(stderr,
                        "vfioctl: release: '%s' is not a lease number (see vfioctl leases)\n",
                        cli_quote(c->args[0], q));
                return EXIT_USAGE;
        }
        int r = cli_daemon_connect_path("release", cli_daemon_socket_for_user(), &client);
        if (r)
                return r;
        json_object *params = json_object_new_object(), *reply = NULL;
        if (!params)
                return EXIT_FAILED;
        json_object_object_add(params, "lease", json_object_new_int64((int64_t)id));
        r = cli_daemon_call("release", client, "io.vfiod.Release", params, &reply);
        json_object_put(reply);
        if (r)
                return r;
        if (!c->json)
                printf("lease %llu released\n", id);
        else
                printf("{\"schema\":\"vfiod.release/1\",\"lease\":%llu,\"released\":true}\n", id);
        return 0;
}
