/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfioctl and the vfiod daemon: connecting, acquiring, and turning the daemon's varlink
 * errors into sentences that say what was refused and why. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli-daemon.h"
#include "format-util.h"
#include "root.h"

const char *cli_daemon_socket(void)
{
        const char *p = getenv("VFIOD_SOCKET");
        return p && *p ? p : VFIOD_SOCKET_PATH;
}

const char *cli_daemon_socket_for_user(void)
{
        if (geteuid() == 0) {
                const char *p = getenv("VFIOD_ADMIN_SOCKET");
                return p && *p ? p : VFIOD_ADMIN_SOCKET_PATH;
        }
        return cli_daemon_socket();
}

int cli_daemon_call(const char *verb, struct vfiod_client *client, const char *method,
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

int cli_daemon_connect(const char *verb, struct vfiod_client **ret)
{
        return cli_daemon_connect_path(verb, cli_daemon_socket(), ret);
}

int cli_daemon_connect_path(const char *verb, const char *path, struct vfiod_client **ret)
{
        int r = vfiod_client_connect(path, ret);

        if (r >= 0)
                return 0;
        fprintf(stderr, "vfioctl: %s: cannot reach the vfiod daemon at %s: %s%s\n", verb, path,
                strerror(-r),
                r == -ENOENT || r == -ECONNREFUSED
                        ? " (is vfiod running? $VFIOD_SOCKET names another socket)"
                : r == -EACCES ? " (the socket's permissions leave this user out)"
                               : "");
        return EXIT_FAILED;
}

const char *cli_json_string(json_object *params, const char *key)
{
        json_object *v;

        if (!params || !json_object_object_get_ex(params, key, &v) ||
            !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static int64_t param_int(json_object *params, const char *key)
{
        json_object *v;

        if (!params || !json_object_object_get_ex(params, key, &v) ||
            !json_object_is_type(v, json_type_int))
                return -1;
        return json_object_get_int64(v);
}

/* A daemon's free-text reason in full (cli_quote() would cut it), control bytes escaped,
 * without a leading "ADDRESS: " that the message already names. */
void cli_print_reason(const char *reason, const char *address)
{
        size_t n = address ? strlen(address) : 0;

        if (n && strncmp(reason, address, n) == 0 && strncmp(reason + n, ": ", 2) == 0)
                reason += n + 2;
        for (size_t i = 0; reason[i] && i < 4096; i++) {
                unsigned char ch = (unsigned char)reason[i];
                if (ch < 0x20 || ch == 0x7f)
                        fprintf(stderr, "\\x%02x", ch);
                else
                        fputc(ch, stderr);
        }
}

int cli_daemon_error(const char *verb, const char *name, json_object *params)
{
        const char *address = cli_json_string(params, "address");
        const char *operation = cli_json_string(params, "operation");
        char q[300], prefix[400];

        /* Parameters come from the daemon: quote them like user input. */
        if (address)
                snprintf(prefix, sizeof(prefix), "vfioctl: %s: %s: ", verb, cli_quote(address, q));
        else
                snprintf(prefix, sizeof(prefix), "vfioctl: %s: ", verb);

        if (strcmp(name, "io.vfiod.PermissionDenied") == 0) {
                const char *op = operation ? cli_quote(operation, q) : "do that";
                if (address)
                        fprintf(stderr, "%sthe daemon's policy does not allow uid %u to %s it\n",
                                prefix, (unsigned)geteuid(), op);
                else if (operation && strcmp(operation, "acquire") == 0)
                        fprintf(stderr,
                                "%sthe daemon does not let uid %u acquire devices for that "
                                "process (it must run as the same user)\n",
                                prefix, (unsigned)geteuid());
                else
                        fprintf(stderr, "%sthe daemon's policy does not allow uid %u to %s\n",
                                prefix, (unsigned)geteuid(), op);
                return EXIT_FAILED;
        }
        if (strcmp(name, "io.vfiod.NoSuchDevice") == 0) {
                fprintf(stderr, "%sno such PCI device on the daemon's host\n", prefix);
                return EXIT_USAGE;
        }
        if (strcmp(name, "io.vfiod.InvalidAddress") == 0) {
                fprintf(stderr, "%sthe daemon does not take this as a PCI address\n", prefix);
                return EXIT_USAGE;
        }
        if (strcmp(name, "io.vfiod.DeviceBusy") == 0) {
                const char *reason = cli_json_string(params, "reason");
                fprintf(stderr, "%snot available: ", prefix);
                cli_print_reason(reason ? reason : "busy", address);
                fputc('\n', stderr);
                return EXIT_FAILED;
        }
        if (strcmp(name, "io.vfiod.OperationFailed") == 0) {
                const char *message = cli_json_string(params, "message");
                char m[300];
                int64_t e = param_int(params, "errno");
                fprintf(stderr, "%s%s failed in the daemon: %s", prefix,
                        operation ? cli_quote(operation, q) : "the operation",
                        message ? cli_quote(message, m)
                        : e > 0 ? strerror((int)e)
                                : "error");
                if (message && e > 0)
                        fprintf(stderr, " (%s)", strerror((int)e));
                fputc('\n', stderr);
                return EXIT_FAILED;
        }
        if (strcmp(name, "io.vfiod.LimitExceeded") == 0) {
                const char *limit = cli_json_string(params, "limit");
                fprintf(stderr,
                        "%sthe daemon refused: limit %s (%" PRId64 ") reached; retry later\n",
                        prefix, limit ? cli_quote(limit, q) : "?", param_int(params, "value"));
                return EXIT_FAILED;
        }
        if (strcmp(name, "io.vfiod.NotLeased") == 0) {
                fprintf(stderr, "%snot leased: no lease of the daemon holds it\n", prefix);
                return EXIT_FAILED;
        }
        if (strcmp(name, "io.vfiod.NoSuchLease") == 0) {
                fprintf(stderr, "%sthe daemon has no lease %" PRId64 " for this user\n", prefix,
                        param_int(params, "lease"));
                return EXIT_FAILED;
        }
        if (strcmp(name, "org.varlink.service.InvalidParameter") == 0) {
                const char *p = cli_json_string(params, "parameter");
                fprintf(stderr, "%sthe daemon refused the parameter '%s'\n", prefix,
                        p ? cli_quote(p, q) : "?");
                return EXIT_FAILED;
        }
        fprintf(stderr, "%sthe daemon answered %s %s\n", prefix, cli_quote(name, q),
                params ? json_object_to_json_string_ext(params, JSON_C_TO_STRING_PLAIN) : "{}");
        return EXIT_FAILED;
}

/* The client library hands an error back as "Name {parameters}". */
static int error_text(const char *verb, const char *text)
{
        const char *sp = strchr(text, ' ');
        _cleanup_free_ char *name = sp ? strndup(text, (size_t)(sp - text)) : strdup(text);
        json_object *params = sp ? json_tokener_parse(sp + 1) : NULL;

        if (!name) {
                json_object_put(params);
                fprintf(stderr, "vfioctl: %s: out of memory\n", verb);
                return EXIT_FAILED;
        }
        int r = cli_daemon_error(verb, name, params);
        json_object_put(params);
        return r;
}

static int call_failed(const char *verb, const char *what, int r, const char *error)
{
        if (r == -EREMOTEIO && error)
                return error_text(verb, error);
        fprintf(stderr, "vfioctl: %s: %s: %s%s\n", verb, what, strerror(-r),
                r == -EBADMSG ? " (the daemon's reply does not follow io.vfiod)" : "");
        return EXIT_FAILED;
}

int cli_daemon_acquire(const char *verb, struct vfiod_client *client, char *const *devices,
                       size_t n_devices, const char *backend, int holder_pidfd, unsigned flags,
                       struct vfiod_lease **ret)
{
        _cleanup_free_ char *error = NULL;
        int r = vfiod_client_acquire_flags(client, (const char *const *)devices, n_devices, backend,
                                           holder_pidfd, flags, ret, &error);

        return r < 0 ? call_failed(verb, "acquire", r, error) : 0;
}

int cli_daemon_release(const char *verb, struct vfiod_client *client, uint64_t lease)
{
        _cleanup_free_ char *error = NULL;
        int r = vfiod_client_release(client, lease, &error);

        return r < 0 ? call_failed(verb, "release", r, error) : 0;
}

const char *cli_backend_reason(const struct cli *c, const char *backend, bool forced)
{
        if (forced)
                return "chosen with --backend";
        if (strcmp(backend, "iommufd") == 0)
                return "this kernel has iommufd (/dev/iommu) and vfio device cdevs";
        if (!c->root || !root_exists(c->root, "dev/iommu"))
                return "this kernel has no iommufd (no /dev/iommu): the legacy type1 container";
        return "this kernel's vfio gives the device no cdev: the legacy type1 container";
}

const char *cli_memlock_text(int64_t memlock, char buf[static FORMAT_SIZE_MAX])
{
        if (memlock == -1)
                return "unlimited";
        if (memlock < 0)
                return "left as it was";
        /* In the syntax a policy's "memlock" and --memlock take (1G, 256M), not
         * format_size()'s: the value reads as what one would write to get it. */
        if (memlock % (1024 * 1024 * 1024) == 0)
                snprintf(buf, FORMAT_SIZE_MAX, "%" PRId64 "G", memlock / (1024 * 1024 * 1024));
        else if (memlock % (1024 * 1024) == 0)
                snprintf(buf, FORMAT_SIZE_MAX, "%" PRId64 "M", memlock / (1024 * 1024));
        else
                snprintf(buf, FORMAT_SIZE_MAX, "%" PRId64, memlock);
        return buf;
}

json_object *cli_lease_json(const struct vfiod_lease *l)
{
        json_object *o = json_object_new_object(), *devs = json_object_new_array();

        if (!o || !devs) {
                json_object_put(o);
                json_object_put(devs);
                return NULL;
        }
        json_object_object_add(o, "lease", json_object_new_int64((int64_t)l->id));
        json_object_object_add(o, "backend", json_object_new_string(l->backend));
        json_object_object_add(o, "memlock",
                               l->memlock >= -1 ? json_object_new_int64(l->memlock) : NULL);
        json_object_object_add(o, "devices", devs);
        for (size_t i = 0; i < l->n_devices; i++) {
                json_object *d = json_object_new_object();
                if (!d) {
                        json_object_put(o);
                        return NULL;
                }
                json_object_object_add(d, "address", json_object_new_string(l->devices[i].address));
                json_object_object_add(d, "group", json_object_new_int(l->devices[i].group));
                json_object_object_add(
                        d, "cdev",
                        l->devices[i].cdev >= 0 ? json_object_new_int(l->devices[i].cdev) : NULL);
                json_object_array_add(devs, d);
        }
        return o;
}

void cli_qemu_id(const char *address, char buf[static 32])
{
        size_t n = (size_t)snprintf(buf, 32, "vfiod-%s", address);

        for (size_t i = 0; i < n && i < 31; i++)
                if (buf[i] == ':' || buf[i] == '.')
                        buf[i] = '-';
}
