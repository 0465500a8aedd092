/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Jobs: the daemon's kernel-changing work (bind, unbind, the restores of ended leases,
 * carving VFs, configuring them, rolling back the journal), each run in a process of its
 * own, forked from the daemon, while the event loop goes on serving.
 *
 * Why processes and not threads: a write to sysfs can sleep in the kernel for as long as
 * the kernel likes (vfio-pci's unbind waits, uninterruptibly after the first signal,
 * until the device's last file is closed). A thread stuck there keeps the whole daemon
 * from exiting, its sockets and its journal lock with it; a process stuck there is on
 * its own: the daemon can stop, and the worker finishes its operation, journal included,
 * whenever the kernel returns, or the next daemon finishes it from the journal.
 *
 * A worker takes the journal's lock itself, as vfioctl does, so it waits for vfioctl
 * (and for other workers) without the loop waiting too. It keeps only the root's fd and
 * its result pipe: every connection and event source of the daemon is closed in it, and
 * it changes no state of the daemon's (all of that is done on the loop, in done()).
 *
 * The devices a job touches are busy while it runs (job_of_device()): calls that name
 * one are answered DeviceBusy with the operation and since when. Each job has a deadline:
 * past it, it is reported (log, Monitor event "operation-late", ShowDevice, ListLeases)
 * and the call waiting for it is answered io.vfiod.OperationPending; the job goes on and
 * its done() runs when the kernel returns. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "pci-addr.h"

struct server;
struct conn;
struct job;

/* Runs in the worker process: returns 0 or -errno, with a sentence for the log or the
 * client in *ret_why where it has one. */
typedef int (*job_work_fn)(struct server *s, void *data, char **ret_why);
/* Runs on the event loop once the worker has exited: r and why are what work() returned
 * (-ECHILD, why NULL, when the worker died without saying). j->conn is the call waiting
 * for the answer, NULL when there is none any more (gone, or answered as late). */
typedef void (*job_done_fn)(struct server *s, struct job *j, int r, const char *why);

struct job_spec {
        const char *operation; /* "bind", "unbind", "restore", "sriov", "configure-vf", ... */
        const struct pci_addr *devices; /* busy while it runs (copied) */
        size_t n_devices;
        bool all_devices; /* every device is busy (the journal's recovery) */
        job_work_fn work;
        job_done_fn done;
        void *data; /* for work() and done(); freed with free_data after done() */
        void (*free_data)(void *data);
        struct conn *conn; /* the call that waits for the answer, or NULL */
        /* Its deadline, for an operation that waits on purpose (a reclaim); 0: the
         * daemon's --operation-timeout. */
        uint64_t deadline_usec;
};

struct job {
        struct server *server;
        uint64_t id;
        const char *operation;
        struct pci_addr *devices;
        size_t n_devices;
        bool all_devices;
        uint64_t started_realtime_usec; /* for people */
        uint64_t started_usec;          /* CLOCK_MONOTONIC */
        uint64_t deadline_usec;         /* after its start */
        bool late;                      /* past its deadline, still running */
        pid_t pid;
        int pidfd, result_fd;
        sd_event_source *exit_source, *deadline;
        job_done_fn done;
        void *data;
        void (*free_data)(void *data);
        struct conn *conn;
        struct job *prev, *next;
};

/* Forks the worker. On success the job runs and *ret (if asked) points at it until its
 * done() has run; the call waiting in spec->conn is parked (its further calls wait). On
 * failure nothing was started and spec->data is left to the caller. */
int job_start(struct server *s, const struct job_spec *spec, struct job **ret);

/* The running job that has device a busy, or NULL. */
struct job *job_of_device(struct server *s, const struct pci_addr *a);

/* Detaches a connection that goes away from the job it waits for. */
void job_forget_conn(struct job *j);

/* Writes "OPERATION in progress since TIME[, past its deadline]" into buf. */
const char *job_describe(const struct job *j, char *buf, size_t size);
/* {"operation", "since", "late"} for ShowDevice and ListLeases. */
struct jbuf;
void job_write_json(const struct job *j, struct jbuf *b);

/* A stop (SIGTERM): exits the loop once no job runs, or after timeout_usec at most. The
 * loop goes on serving meanwhile. Jobs still running then are left to finish on their
 * own (see above): their done() does not run, and the journal and the lease records say
 * what the next start must finish. */
void jobs_stop(struct server *s, uint64_t timeout_usec);

/* At exit: the jobs still running are let go (their workers are not killed); their done()
 * does not run, their data is freed. */
void jobs_free(struct server *s);
