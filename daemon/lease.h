/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A lease: devices handed to one process. It is written to the runtime directory before
 * the fds leave the daemon and removed once its devices are back, so a daemon that dies
 * and starts again finds every lease and can tell, by the holder's pid and start time,
 * whether the holder still lives. The runtime directory is on tmpfs: leases die with the
 * processes that hold them, at reboot. */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "iommu.h"
#include "json-text.h"
#include "node-access.h"
#include "pci-addr.h"
#include "policy.h"
#include "root.h"

/* The holder's RLIMIT_MEMLOCK as the lease found it and as it left it (-1: unlimited). */
struct lease_memlock {
        int64_t was_cur, was_max;
        int64_t set_cur, set_max;
};

enum lease_device_state {
        LEASE_DEVICE_HELD = 0,  /* the lease has it (not ending) */
        LEASE_DEVICE_RETURNED,  /* back in the pool, restored, or gone */
        LEASE_DEVICE_RESTORING, /* a job gives it back to its driver */
        LEASE_DEVICE_WAITING,   /* still open elsewhere: restored once that file closes */
        _LEASE_DEVICE_STATE_MAX,
};

/* The state's name, as ListLeases and ShowDevice give it. */
const char *lease_device_state_to_string(enum lease_device_state s);

struct lease {
        uint64_t id;
        uid_t uid;
        pid_t pid;
        uint64_t starttime; /* /proc/PID/stat field 22: tells a reused pid apart */
        enum vfio_backend backend;
        enum release_action on_release; /* for devices without their own below */
        struct pci_addr *devices;
        size_t n_devices;
        enum release_action *device_release; /* per device, from its policy rule; or NULL */
        bool adopted;
        struct node_grant *grants; /* type1: the group nodes opened to the holder */
        size_t n_grants;
        bool memlock_raised; /* the lease raised the holder's RLIMIT_MEMLOCK: */
        struct lease_memlock memlock;

        /* Daemon-side, not persisted. */
        void *holder; /* the holder's pidfd and its watch, shared by its leases */
        void *owner;  /* the server */
        /* Once ended, a lease stays (and stays recorded) until each of its devices is
         * back: restored by a job, or followed until a file that outlived the holder is
         * closed. A restart finds it recorded and ends it again. */
        bool ending;
        const char *end_kind;   /* the Monitor event when it is gone */
        json_object *end_reply; /* what the call that ended it is answered (NULL: nothing) */
        enum lease_device_state *returning; /* per device, while ending */
};

void lease_done(struct lease *l);

/* What happens to device i when the lease ends. */
enum release_action lease_device_release(const struct lease *l, size_t i);

/* The lease as a JSON object (the start time only where asked: a record needs it, a
 * client has no use for it). */
void lease_write_json(const struct lease *l, bool with_starttime, struct jbuf *b);
/* -EBADMSG for a document that is not a complete lease. */
int lease_from_json(json_object *o, struct lease *ret);

/* The start time of process pid, from proc/PID/stat below root; -ESRCH when it is gone. */
int process_starttime(const struct root *root, pid_t pid, uint64_t *ret);

/* Opens a pidfd for pid and checks that it is the process that started at starttime:
 * -ESRCH when that process is gone (its pid may have been reused). */
int process_pidfd_verified(const struct root *root, pid_t pid, uint64_t starttime, int *ret);

/* Persisting: an append-only log in the runtime directory (see lease.c). */
struct lease_log {
        int dirfd, fd;
        size_t n_lines; /* in the file, live or ended */
};
int lease_log_open(int dirfd, struct lease_log *ret);
void lease_log_close(struct lease_log *log);
/* Records a lease before its fds leave the daemon. */
int lease_log_add(struct lease_log *log, const struct lease *l);
/* Records the end of lease id; live: the leases still held, after it. */
int lease_log_end(struct lease_log *log, uint64_t id, struct lease *const *live, size_t n_live);
/* Replaces the log with one that holds only these leases. */
int lease_log_rewrite(struct lease_log *log, struct lease *const *live, size_t n);
/* The leases the log holds. What cannot be read whole is reported through *ret_bad
 * (NULL-terminated, one sentence each: "log:LINE: what: raw text"): a record cut off by
 * a crash or a full file system is recovered when its whole part names the holder and a
 * device, the rest is only reported; none is skipped silently. */
int lease_load_all(int dirfd, struct lease **ret, size_t *ret_n, char ***ret_bad);
