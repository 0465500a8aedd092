/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "view.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cdi.h"
#include "detail.h"
#include "inventory.h"
#include "macro.h"
#include "pools.h"
#include "preferred.h"
#include "root.h"
#include "topology.h"
#include "vfiod-client.h"

struct plugin_view {
        const struct fleet_config *config;
        struct fleet_inventory *inv;
        bool *leased; /* per inventory device */
};

int plugin_config_load(const char *path, struct fleet_config **ret, char **ret_detail)
{
        int r = fleet_config_load(path, ret, ret_detail);
        if (r == -ENOENT)
                return detail_errno(ret_detail, r, "%s does not exist: no pools to export", path);
        return r;
}

void plugin_config_free(struct fleet_config *c)
{
        fleet_config_free(c);
}

size_t plugin_config_n_pools(const struct fleet_config *c)
{
        return c->n_pools;
}

const char *plugin_config_pool_name(const struct fleet_config *c, size_t i)
{
        return c->pools[i].name;
}

const char *plugin_config_pool_resource(const struct fleet_config *c, size_t i)
{
        return c->pools[i].resource;
}

const char *plugin_config_cdi_kind(const struct fleet_config *c)
{
        return c->cdi_kind;
}

void plugin_view_free(struct plugin_view *v)
{
        if (!v)
                return;
        fleet_inventory_free(v->inv);
        free(v->leased);
        free(v);
}

static void plugin_view_freep(struct plugin_view **v)
{
        plugin_view_free(*v);
}

/* Marks the devices of every lease vfiod holds in leased (zeroed first); -errno when it
 * cannot be asked. */
static int leases_read(const struct plugin_view *v, const char *socket, bool *leased)
{
        struct vfiod_client *c = NULL;
        json_object *reply = NULL, *leases;
        int r = vfiod_client_connect(socket, &c);

        if (r < 0)
                return r;
        memset(leased, 0, (v->inv->n_devices ? v->inv->n_devices : 1) * sizeof(*leased));
        r = vfiod_client_call(c, "io.vfiod.ListLeases", NULL, NULL, 0, &reply, NULL, NULL, NULL);
        vfiod_client_free(c);
        if (r < 0) {
                json_object_put(reply);
                return r;
        }
        if (json_object_object_get_ex(reply, "leases", &leases))
                for (size_t i = 0; i < json_object_array_length(leases); i++) {
                        json_object *devs = json_object_object_get(
                                json_object_array_get_idx(leases, i), "devices");
                        for (size_t k = 0; k < json_object_array_length(devs); k++) {
                                const struct fleet_device *d = fleet_inventory_find(
                                        v->inv,
                                        json_object_get_string(json_object_array_get_idx(devs, k)));
                                if (d)
                                        leased[d - v->inv->devices] = true;
                        }
                }
        json_object_put(reply);
        return 0;
}

int plugin_view_load(const char *root_path, const struct fleet_config *c, const char *daemon_socket,
                     struct plugin_view **ret, bool *ret_leases_known, char **ret_detail)
{
        _cleanup_(root_freep) struct root *root = NULL;
        _cleanup_(topology_freep) struct topology *t = NULL;
        _cleanup_(plugin_view_freep) struct plugin_view *v = calloc(1, sizeof(*v));
        int r;

        if (!v)
                return -ENOMEM;
        v->config = c;
        r = root_open(root_path, &root);
        if (r < 0)
                return detail_errno(ret_detail, r, "cannot open %s: %s",
                                    root_path ? root_path : "/", strerror(-r));
        r = topology_scan(root, TOPOLOGY_SCAN_NO_NAMES, &t);
        if (r < 0)
                return detail_errno(ret_detail, r, "cannot scan the PCI devices below %s: %s",
                                    root->path, strerror(-r));
        r = fleet_inventory_build(root, t, c, &v->inv);
        if (r < 0)
                return r;
        v->leased = calloc(v->inv->n_devices ? v->inv->n_devices : 1, sizeof(*v->leased));
        if (!v->leased)
                return -ENOMEM;
        *ret_leases_known = daemon_socket && leases_read(v, daemon_socket, v->leased) >= 0;
        *ret = TAKE_PTR(v);
        return 0;
}

int plugin_view_read_leases(const struct plugin_view *v, const char *daemon_socket, bool **ret)
{
        _cleanup_free_ bool *leased =
                calloc(v->inv->n_devices ? v->inv->n_devices : 1, sizeof(*leased));
        int r;

        if (!leased)
                return -ENOMEM;
        r = leases_read(v, daemon_socket, leased);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(leased);
        return 0;
}

void plugin_view_set_leases(struct plugin_view *v, bool *leased)
{
        free(v->leased);
        v->leased = leased;
}

size_t plugin_view_n_devices(const struct plugin_view *v)
{
        return v->inv->n_devices;
}

void plugin_view_device(const struct plugin_view *v, size_t i, struct plugin_device *ret)
{
        const struct fleet_device *d = &v->inv->devices[i];
        *ret = (struct plugin_device){
                .name = d->name,
                .pool = d->pool,
                .numa_node = d->numa_node,
                .leased = v->leased[i],
                .nodes = {d->nodes[0], d->nodes[1]},
        };
}

long plugin_view_find(const struct plugin_view *v, const char *name)
{
        const struct fleet_device *d = fleet_inventory_find(v->inv, name);
        return d ? d - v->inv->devices : -1;
}

/* A NULL-terminated copy of n strings; NULL without memory. */
static char **strv_copy(const char *const *s, size_t n)
{
        char **v = calloc(n + 1, sizeof(*v));
        for (size_t i = 0; v && i < n; i++)
                if (!(v[i] = strdup(s[i]))) {
                        while (i > 0)
                                free(v[--i]);
                        free(v);
                        return NULL;
                }
        return v;
}

int plugin_view_device_env(const struct plugin_view *v, size_t i, char ***ret)
{
        json_object *env = json_object_new_array();
        const char *s[16];
        size_t n;
        int r;

        if (!env)
                return -ENOMEM;
        r = cdi_device_env(v->config, &v->inv->devices[i], env);
        n = json_object_array_length(env);
        for (size_t k = 0; r >= 0 && k < n && k < ELEMENTSOF(s); k++)
                s[k] = json_object_get_string(json_object_array_get_idx(env, k));
        if (r >= 0 && !(*ret = strv_copy(s, n < ELEMENTSOF(s) ? n : ELEMENTSOF(s))))
                r = -ENOMEM;
        json_object_put(env);
        return r;
}

int plugin_view_preferred(const struct plugin_view *v, const size_t *available, size_t n_available,
                          const size_t *must, size_t n_must, size_t size, char ***ret,
                          char **ret_detail)
{
        _cleanup_free_ const struct fleet_device **out = NULL;
        _cleanup_free_ const char **names = NULL;
        int r = fleet_preferred_allocation_at(v->inv, available, n_available, must, n_must, size,
                                              &out, ret_detail);

        if (r < 0)
                return r;
        names = calloc(size, sizeof(*names));
        if (!names)
                return -ENOMEM;
        for (size_t i = 0; i < size; i++)
                names[i] = out[i]->name;
        *ret = strv_copy(names, size);
        return *ret ? 0 : -ENOMEM;
}

char *plugin_view_cdi_spec(const struct plugin_view *v)
{
        json_object *spec = cdi_spec_build(v->config, v->inv);
        char *s = spec ? strdup(json_object_to_json_string_ext(
                                 spec, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                               JSON_C_TO_STRING_NOSLASHESCAPE))
                       : NULL;
        json_object_put(spec);
        return s;
}

int plugin_view_cdi_write(const struct plugin_view *v, const char *dir, const char *text,
                          char **ret_detail)
{
        return cdi_spec_publish(dir, v->config, text, v->inv->n_devices, NULL, ret_detail);
}
