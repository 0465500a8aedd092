/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* libvfiod-client: talk to the vfiod daemon over its varlink socket (interface
 * io.vfiod, api/io.vfiod.varlink). Blocking calls, one at a time per connection.
 * Functions return 0 or a negative errno; -EREMOTEIO means the daemon answered with a
 * varlink error, whose name and parameters are returned. */

#include <json-c/json.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The daemon's sockets; $VFIOD_SOCKET overrides the first for clients. */
#define VFIOD_SOCKET_PATH       "/run/vfiod/io.vfiod"
#define VFIOD_ADMIN_SOCKET_PATH "/run/vfiod/io.vfiod.admin"

struct vfiod_client;

/* Connects to path; NULL means $VFIOD_SOCKET, else VFIOD_SOCKET_PATH. */
int vfiod_client_connect(const char *path, struct vfiod_client **ret);

/* Closes the connection. Accepts NULL; returns NULL. */
struct vfiod_client *vfiod_client_free(struct vfiod_client *c);

/* Calls method ("io.vfiod.ListDevices") with parameters (taken; NULL means {}) and fds
 * (not taken: the caller closes its copies). On a reply: 0, *ret_reply its parameters
 * and ret_fds the fds that came with it (at most 16; the caller owns them). On a varlink
 * error: -EREMOTEIO, *ret_error its name, *ret_reply its parameters. ret_fds, ret_n_fds
 * and ret_error may be NULL (fds are then closed). */
int vfiod_client_call(struct vfiod_client *c, const char *method, json_object *parameters,
                      const int *fds, size_t n_fds, json_object **ret_reply, int *ret_fds,
                      size_t *ret_n_fds, char **ret_error);

struct vfiod_acquired {
        char address[16]; /* DDDD:BB:DD.F */
        int fd;    /* the vfio cdev (iommufd) or the group node (type1); -1 without handles */
        int group; /* IOMMU group */
        int cdev;  /* N of /dev/vfio/devices/vfioN, -1 with type1 */
};

struct vfiod_lease {
        uint64_t id;
        char backend[16]; /* "iommufd" or "type1" */
        int iommufd;      /* -1 with type1 */
        int container;    /* -1 with iommufd, and without handles */
        struct vfiod_acquired *devices;
        size_t n_devices;
        int64_t memlock; /* RLIMIT_MEMLOCK the daemon gave the holder; -1 unlimited, -2 not set */
};

/* Acquires devices (addresses as strings) as one lease. backend NULL lets the daemon
 * choose; holder_pidfd >= 0 ties the lease to that process instead of the caller. On a
 * varlink error *ret_error holds "Name: parameters" for messages. The fds in the lease
 * have O_CLOEXEC set. */
int vfiod_client_acquire(struct vfiod_client *c, const char *const *devices, size_t n_devices,
                         const char *backend, int holder_pidfd, struct vfiod_lease **ret,
                         char **ret_error);

/* With type1: hand out no handles (no container, no group fds). The daemon opens each
 * leased group node, /dev/vfio/N, to the holder's uid instead, for a VMM that opens the
 * nodes itself (QEMU's -device vfio-pci,host=). No effect on an iommufd lease. */
#define VFIOD_ACQUIRE_NO_GROUP_FDS (1u << 0)

/* vfiod_client_acquire() with VFIOD_ACQUIRE_* flags (-EINVAL for unknown ones). */
int vfiod_client_acquire_flags(struct vfiod_client *c, const char *const *devices, size_t n_devices,
                               const char *backend, int holder_pidfd, unsigned flags,
                               struct vfiod_lease **ret, char **ret_error);

/* Closes the lease's fds and frees it (the lease itself lives on until released or its
 * holder exits). Accepts NULL; returns NULL. */
struct vfiod_lease *vfiod_lease_free(struct vfiod_lease *l);

int vfiod_client_release(struct vfiod_client *c, uint64_t lease, char **ret_error);

#ifdef __cplusplus
}
#endif
