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

/* ReclaimTimedOut, for people: each device still open, and by whom. */
static void print_timed_out(const char *address, json_object *params)
{
        json_object *open, *v;
        char q[300];
        int64_t lease =
                json_object_object_get_ex(params, "lease", &v) ? json_object_get_int64(v) : 0;
        int64_t pid = json_object_object_get_ex(params, "pid", &v) ? json_object_get_int64(v) : 0;
        const char *reason = cli_json_string(params, "reason");
        fprintf(stderr,
                "vfioctl: reclaim: %s: lease %" PRId64 " (pid %" PRId64 ") kept its devices "
                "past the timeout; nothing was changed (--force ends the lease anyway)\n",
                cli_quote(address, q), lease, pid);
        if (reason) {
                fputs("  ", stderr);
                cli_print_reason(reason, NULL);
                fputc('\n', stderr);
        }
        if (!json_object_object_get_ex(params, "open", &open) ||
            !json_object_is_type(open, json_type_array))
                return;
        for (size_t i = 0; i < json_object_array_length(open); i++) {
                json_object *o = json_object_array_get_idx(open, i);
                const char *a = cli_json_string(o, "address");
                if (!a)
                        continue;
                if (json_object_object_get_ex(o, "pid", &v))
                        fprintf(stderr, "  %s: open in pid %" PRId64 "\n", cli_quote(a, q),
                                json_object_get_int64(v));
                else
                        fprintf(stderr, "  %s: still open\n", cli_quote(a, q));
        }
}

int verb_reclaim(struct cli *c)
{
        _cleanup_(vfiod_client_freep) struct vfiod_client *client = NULL;
        _cleanup_free_ struct pci_addr *addrs = NULL;
        size_t n;
        int r = cli_parse_addresses(c, "reclaim", &addrs, &n);
        if (r)
                return r;
        int64_t timeout = -1;
        if (cli_has(c, OPT_TIMEOUT)) {
                const char *v = c->values[OPT_TIMEOUT];
                char *end;
                errno = 0;
                long long t = strtoll(v, &end, 10);
                if (!*v || *end || errno || t < 0 || t > 3600)
                        return usage_error("reclaim: --timeout takes whole seconds from 0 to "
                                           "3600, not '%s'",
                                           v);
                timeout = t;
        }
        char name[PCI_ADDR_STRLEN];
        pci_addr_format(&addrs[0], name);
        r = cli_daemon_connect_path("reclaim", cli_daemon_socket_for_user(), &client);
        if (r)
                return r;
        json_object *params = json_object_new_object(), *reply = NULL;
        if (!params)
                return EXIT_FAILED;
        json_object_object_add(params, "device", json_object_new_string(name));
        if (timeout >= 0)
                json_object_object_add(params, "timeout", json_object_new_int64(timeout));
        if (cli_has(c, OPT_FORCE))
                json_object_object_add(params, "force", json_object_new_boolean(true));
        _cleanup_free_ char *error = NULL;
        r = vfiod_client_call(client, "io.vfiod.Reclaim", params, NULL, 0, &reply, NULL, NULL,
                              &error);
        if (r == -EREMOTEIO && error && strcmp(error, "io.vfiod.ReclaimTimedOut") == 0) {
                if (c->json) {
                        json_object *doc = json_object_new_object();
                        json_object_object_add(doc, "schema",
                                               json_object_new_string("vfiod.reclaim/1"));
                        json_object_object_add(doc, "device", json_object_new_string(name));
                        json_object_object_add(doc, "reclaimed", json_object_new_boolean(false));
                        json_object_object_foreach(reply, k, v)
                        {
                                if (strcmp(k, "address") != 0)
                                        json_object_object_add(doc, k, json_object_get(v));
                        }
                        (void)print_json(doc, JSON_C_TO_STRING_PRETTY);
                        puts("");
                } else
                        print_timed_out(name, reply);
                json_object_put(reply);
                return EXIT_FAILED;
        }
        if (r == -EREMOTEIO) {
                r = cli_daemon_error("reclaim", error ? error : "?", reply);
                json_object_put(reply);
                return r;
        }
        if (r < 0) {
                fprintf(stderr, "vfioctl: reclaim: the daemon did not answer: %s\n", strerror(-r));
                return EXIT_FAILED;
        }
        json_object *v;
        int64_t lease =
                json_object_object_get_ex(reply, "lease", &v) ? json_object_get_int64(v) : 0;
        int64_t pid = json_object_object_get_ex(reply, "pid", &v) ? json_object_get_int64(v) : 0;
        bool forced = json_object_object_get_ex(reply, "forced", &v) && json_object_get_boolean(v);
        if (c->json) {
                json_object *doc = json_object_new_object();
                json_object_object_add(doc, "schema", json_object_new_string("vfiod.reclaim/1"));
                json_object_object_add(doc, "device", json_object_new_string(name));
                json_object_object_add(doc, "reclaimed", json_object_new_boolean(true));
                json_object_object_add(doc, "lease", json_object_new_int64(lease));
                json_object_object_add(doc, "pid", json_object_new_int64(pid));
                json_object_object_add(doc, "forced", json_object_new_boolean(forced));
                json_object_put(reply);
                r = print_json(doc, JSON_C_TO_STRING_PRETTY);
                puts("");
                return r ? EXIT_FAILED : 0;
        }
        json_object_put(reply);
        if (forced)
                printf("lease %" PRId64 " of pid %" PRId64 " ended by force; a device it still "
                       "has open is given back once its last file closes (vfioctl leases shows "
                       "it)\n",
                       lease, pid);
        else
                printf("lease %" PRId64 " of pid %" PRId64 " gave %s back; the lease ended\n",
                       lease, pid, name);
        return 0;
}
