/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <stdint.h>

#include "cli.h"
#include "format-util.h"
#include "vfiod-client.h"

/* The string at key in o, or NULL (absent, another type, o NULL). */
const char *cli_json_string(json_object *o, const char *key);

/* The socket vfioctl asks for leases: $VFIOD_SOCKET, else VFIOD_SOCKET_PATH. */
const char *cli_daemon_socket(void);

/* Connects to cli_daemon_socket(). On failure prints why, naming the socket, and returns
 * EXIT_FAILED. */
int cli_daemon_connect(const char *verb, struct vfiod_client **ret);
/* The same for another socket. */
int cli_daemon_connect_path(const char *verb, const char *path, struct vfiod_client **ret);

/* The socket for calls that act as the user: root's is the admin socket
 * ($VFIOD_ADMIN_SOCKET, else VFIOD_ADMIN_SOCKET_PATH), everyone else's cli_daemon_socket(). */
const char *cli_daemon_socket_for_user(void);

/* Calls method with parameters (taken) and no fds; on a varlink error prints it as
 * cli_daemon_error() does and returns its exit status, else 0 and the reply's
 * parameters in *ret (the caller puts them). */
int cli_daemon_call(const char *verb, struct vfiod_client *client, const char *method,
                    json_object *params, json_object **ret);

/* Prints the daemon's varlink error (name, parameters) as one sentence naming the device
 * and the reason ("vfioctl: VERB: ADDR: the daemon's policy does not allow uid N to
 * acquire it"). Returns the exit status: EXIT_USAGE for an unknown or malformed device,
 * EXIT_FAILED otherwise. */
int cli_daemon_error(const char *verb, const char *name, json_object *params);

/* vfiod_client_acquire() and vfiod_client_release() that print what went wrong; 0 or the
 * exit status. */
int cli_daemon_acquire(const char *verb, struct vfiod_client *client, char *const *devices,
                       size_t n_devices, const char *backend, int holder_pidfd, unsigned flags,
                       struct vfiod_lease **ret);
int cli_daemon_release(const char *verb, struct vfiod_client *client, uint64_t lease);

/* Why a lease has the backend it has, as far as this host tells: the user's --backend,
 * or what the kernel offers (iommufd needs /dev/iommu and vfio device cdevs). */
const char *cli_backend_reason(const struct cli *c, const char *backend, bool forced);

/* A lease's RLIMIT_MEMLOCK in words: "unlimited", "8G", "256M", "left as it was". */
const char *cli_memlock_text(int64_t memlock, char buf[static FORMAT_SIZE_MAX]);

/* The lease as JSON: lease, backend, memlock (bytes, -1 unlimited, null when the daemon
 * left it alone) and devices (address, group, cdev). NULL when out of memory. */
json_object *cli_lease_json(const struct vfiod_lease *l);

/* The QEMU id vfioctl gives a device: vfiod-DDDD-BB-DD-F. */
void cli_qemu_id(const char *address, char buf[static 32]);

static inline void vfiod_client_freep(struct vfiod_client **c)
{
        vfiod_client_free(*c);
}

static inline void vfiod_lease_freep(struct vfiod_lease **l)
{
        vfiod_lease_free(*l);
}

/* Prints a daemon's free-text reason to stderr in full, control bytes escaped, without a
 * leading "ADDRESS: " (address may be NULL). */
void cli_print_reason(const char *reason, const char *address);
