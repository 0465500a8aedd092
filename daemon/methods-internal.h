/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the files behind methods.c share. Each function's contract is written at its
 * definition; here they are grouped by the file that has it. */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "bind.h"
#include "detail.h"
#include "fd-util.h"
#include "device.h"
#include "iommu.h"
#include "journal.h"
#include "macro.h"
#include "modules.h"
#include "node-access.h"
#include "params.h"
#include "reset.h"
#include "server.h"
#include "sriov.h"
#include "strv.h"
#include "sysfs-pci.h"
#include "topology-json.h"
#include "dev-node.h"

/* A process that holds leases: one pidfd and one watch serve all its leases, and stay
 * while a lease or a connection of that process refers to them, so that a VMM that
 * acquires and releases devices over one connection sets up its watch once. */
struct holder {
        struct server *server;
        pid_t pid;
        uint64_t starttime; /* /proc/PID/stat field 22 */
        int pidfd;
        sd_event_source *watch;
        unsigned n_refs;
        bool exited; /* the watch fired: it holds nothing any more */
};

/* Reads a call's parameters through a method's table (params_read()). */
#define READ_PARAMS(c, params, table, out) params_read(c, params, table, ELEMENTSOF(table), out)
/* Devices in one Acquire: each takes an fd of the reply's VARLINK_FDS_MAX. */
#define ACQUIRE_DEVICES_MAX 8

/* call.c */
int read_no_params(struct conn *c, struct jspan params);
int errno_error(struct conn *c, const char *operation, const struct pci_addr *a, int r,
                const char *message);
const struct policy_rule *allowed(struct conn *c, enum policy_op op, const struct topology *t,
                                  const struct pci_device *d);
bool allowed_everywhere(struct conn *c, enum policy_op op);
bool group_allowed(struct conn *c, enum policy_op op, const struct topology *t,
                   const struct iommu_group *g);
int denied(struct conn *c, enum policy_op op, const struct pci_device *d);
int device_allowed(struct conn *c, enum policy_op op, const struct topology *t,
                   const struct pci_addr *a, const struct pci_device **ret,
                   const struct policy_rule **ret_rule);
struct lease *lease_of_device(struct server *s, const struct pci_addr *a);
int busy(struct conn *c, const char *address, const char *fmt, ...) _printf_(3, 4);
int lease_busy(struct conn *c, const char *address, const struct lease *l);
int devices_taken(struct conn *c, const struct pci_addr *a, size_t n);
int refuse_bridge(struct conn *c, const struct topology *t, const struct pci_addr *a);
bool modules_present(struct server *s, unsigned want);
int modules_need(struct server *s, unsigned want, char **ret_detail);
int plan_drivers_need(struct server *s, struct bind_plan *p, char **ret_detail);
int open_journal(struct server *s, struct journal **ret);
int call_job(struct conn *c, const char *operation, const struct pci_addr *devices,
             size_t n_devices, job_work_fn work, job_done_fn done, void *data,
             void (*free_data)(void *data));

/* queries.c */
int method_get_info(struct conn *c, struct jspan params, int *fds, size_t n_fds);
int method_get_interface_description(struct conn *c, struct jspan params, int *fds, size_t n_fds);
int method_list_devices(struct conn *c, struct jspan params, int *fds, size_t n_fds);
int method_list_groups(struct conn *c, struct jspan params, int *fds, size_t n_fds);
int method_show_device(struct conn *c, struct jspan params, int *fds, size_t n_fds);
int method_audit(struct conn *c, struct jspan params, int *fds, size_t n_fds);
int method_monitor(struct conn *c, struct jspan params, int *fds, size_t n_fds);

/* methods-bind.c */
int method_bind(struct conn *c, struct jspan params, int *fds, size_t n_fds);
int method_unbind(struct conn *c, struct jspan params, int *fds, size_t n_fds);

/* methods-sriov.c */
int method_set_numvfs(struct conn *c, struct jspan params, int *fds, size_t n_fds);
int method_configure_vf(struct conn *c, struct jspan params, int *fds, size_t n_fds);

/* holders.c */
struct holder *holder_ref(struct holder *h);
int holder_get(struct server *s, pid_t pid, uint64_t starttime, int *pidfd, struct holder **ret);
int lease_add(struct server *s, struct lease *l);
void lease_unlink(struct server *s, struct lease *l);
void lease_destroy(struct lease *l);
const struct vfio_nodes *device_nodes(struct server *s, const struct pci_addr *a);
bool bound_now(const struct bind_plan *plan, const struct pci_addr *a);
int open_cdev_checked(struct server *s, const struct pci_addr *a, int cdev, bool fresh);
int device_backend(struct server *s, const struct topology *t, const struct pci_addr *a,
                   enum vfio_backend *ret, char **ret_detail);
bool restore_blocked(struct server *s, const struct pci_addr *a, bool iommufd, int *ret_pid);
bool lease_device_held(struct server *s, const struct lease *l, size_t i, int *ret_pid);
bool pidfd_alive(int pidfd);
int pidfd_get_pid(int fd, pid_t *ret);
int process_uid(const struct root *root, pid_t pid, uid_t *ret);
int holder_memlock_plan(pid_t pid, int64_t want, struct lease_memlock *ret);
int holder_memlock_apply(pid_t pid, int64_t cur, int64_t max);
void lease_memlock_end(struct server *s, struct lease *l);
void lease_grants_end(struct lease *l);
int lease_grants_plan(struct lease *l, const struct topology *t, uid_t uid, char **ret_why);
int lease_grants_apply(struct lease *l, char **ret_why);
int device_open_elsewhere(struct server *s, const struct pci_addr *a, int *ret_pid);

/* lease-end.c */
struct lease *lease_by_id(struct server *s, uint64_t id);
struct job *restore_start(struct server *s, uint64_t lease, const struct pci_addr *a, size_t n,
                          struct conn *conn);
void lease_end(struct server *s, struct lease *l, const char *kind, bool checked,
               struct conn *conn);
int on_holder_exit(sd_event_source *src, int fd, uint32_t revents, void *userdata);

/* methods-leases.c */
int method_acquire(struct conn *c, struct jspan params, int *fds, size_t n_fds);
int method_release(struct conn *c, struct jspan params, int *fds, size_t n_fds);
int method_list_leases(struct conn *c, struct jspan params, int *fds, size_t n_fds);

/* methods-reclaim.c */
int method_reclaim(struct conn *c, struct jspan params, int *fds, size_t n_fds);
