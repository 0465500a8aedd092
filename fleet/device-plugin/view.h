/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The device plugin's view of the host, for its C++ gRPC front: one snapshot of the
 * exported devices (fleet inventory) with the leases vfiod holds on them. The module
 * headers are C (a field is named "class"), so the C++ side sees only this. */

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct fleet_config;
struct plugin_view;

/* Loads the pool configuration (fleet_config_load()); a detail naming the file. */
int plugin_config_load(const char *path, struct fleet_config **ret, char **ret_detail);
void plugin_config_free(struct fleet_config *c);
size_t plugin_config_n_pools(const struct fleet_config *c);
const char *plugin_config_pool_name(const struct fleet_config *c, size_t i);
const char *plugin_config_pool_resource(const struct fleet_config *c, size_t i);
const char *plugin_config_cdi_kind(const struct fleet_config *c);

/* Scans the host below root_path (NULL: "/") and builds the view of c's pools. With
 * daemon_socket not NULL, asks vfiod there (io.vfiod.ListLeases) which devices are
 * leased; *ret_leases_known says whether it answered (a daemon that is not running
 * leases nothing, and that is not an error). c must outlive the view. */
int plugin_view_load(const char *root_path, const struct fleet_config *c, const char *daemon_socket,
                     struct plugin_view **ret, bool *ret_leases_known, char **ret_detail);
void plugin_view_free(struct plugin_view *v);

/* Asks vfiod again which of the view's devices are leased, without rescanning the host
 * (leases change far more often than devices): *ret, one flag per device, for
 * plugin_view_set_leases(). -errno when vfiod cannot be asked. */
int plugin_view_read_leases(const struct plugin_view *v, const char *daemon_socket, bool **ret);
/* Takes leased (from plugin_view_read_leases() on the same view). */
void plugin_view_set_leases(struct plugin_view *v, bool *leased);

struct plugin_device {
        const char *name;     /* the PCI address, kubelet's device id */
        size_t pool;          /* index into the configuration's pools */
        int numa_node;        /* -1: unknown */
        bool leased;          /* held by a vfiod lease: in use outside Kubernetes */
        const char *nodes[2]; /* the device nodes a container needs */
};

size_t plugin_view_n_devices(const struct plugin_view *v);
void plugin_view_device(const struct plugin_view *v, size_t i, struct plugin_device *ret);
/* The index of a device by name, or -1. */
long plugin_view_find(const struct plugin_view *v, const char *name);

/* The CDI environment of device i, "NAME=VALUE" strings, NULL-terminated (free each and
 * the array); -ENOMEM. */
int plugin_view_device_env(const struct plugin_view *v, size_t i, char ***ret);

/* fleet_preferred_allocation_at() on the view, devices by index (plugin_view_find());
 * *ret: the chosen names, NULL-terminated (free each and the array). */
int plugin_view_preferred(const struct plugin_view *v, const size_t *available, size_t n_available,
                          const size_t *must, size_t n_must, size_t size, char ***ret,
                          char **ret_detail);

/* The CDI spec text of the view (free it); NULL without memory. */
char *plugin_view_cdi_spec(const struct plugin_view *v);

/* Writes the spec text into dir, or removes it when the view has no device. */
int plugin_view_cdi_write(const struct plugin_view *v, const char *dir, const char *text,
                          char **ret_detail);

#ifdef __cplusplus
}
#endif
