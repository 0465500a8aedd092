/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The io.vfiod methods' table. Each handler answers the call itself (a reply or a
 * varlink error) and returns 0, or returns -errno when it failed before it could, and the
 * dispatcher answers io.vfiod.OperationFailed. */

#include "methods-internal.h"

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
        {"io.vfiod.Reclaim", method_reclaim},
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
                close_many(fds, n_fds);
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
                close_many(fds, n_fds);
                json_object *p = json_object_new_object();
                if (!p)
                        return -ENOMEM;
                json_object_object_add(p, "count", json_object_new_int((int)n_fds));
                return conn_error(c, "io.vfiod.UnexpectedFileDescriptors", p);
        }
        if (m->takes_fds && n_fds > 1) {
                close_many(fds, n_fds);
                json_object *p = json_object_new_object();
                if (!p)
                        return -ENOMEM;
                json_object_object_add(p, "count", json_object_new_int((int)n_fds));
                return conn_error(c, "io.vfiod.UnexpectedFileDescriptors", p);
        }
        int r = m->fn(c, params, fds, n_fds);
        /* fds the method did not take (holder_fd not asked for) are closed here. */
        close_many(fds, n_fds);
        return r;
}
