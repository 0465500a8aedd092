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
#include "pci-addr.h"
#include "policy.h"
#include "root.h"

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

        /* Daemon-side, not persisted. */
        int pidfd;
        void *watch; /* the event source watching pidfd */
        void *owner; /* the server */
};

void lease_done(struct lease *l);

/* What happens to device i when the lease ends. */
enum release_action lease_device_release(const struct lease *l, size_t i);

json_object *lease_to_json(const struct lease *l);
/* -EBADMSG for a document that is not a complete lease. */
int lease_from_json(json_object *o, struct lease *ret);

/* The start time of process pid, from proc/PID/stat below root; -ESRCH when it is gone. */
int process_starttime(const struct root *root, pid_t pid, uint64_t *ret);

/* Opens a pidfd for pid and checks that it is the process that started at starttime:
 * -ESRCH when that process is gone (its pid may have been reused). */
int process_pidfd_verified(const struct root *root, pid_t pid, uint64_t starttime, int *ret);

/* Persisting: "<id>.lease" files in dirfd, written atomically. */
int lease_save(int dirfd, const struct lease *l);
int lease_remove(int dirfd, uint64_t id);
/* Every lease file; one that cannot be parsed is reported through *ret_bad (its name,
 * NULL-terminated list) and left in place. */
int lease_load_all(int dirfd, struct lease **ret, size_t *ret_n, char ***ret_bad);
