/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The daemon's state: its sockets and connections, the policy, the leases and a cached
 * topology snapshot, all driven by one sd-event loop. Calls are served one at a time, in
 * the order they arrive; a kernel operation blocks the loop while it runs. */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#include "cdev-watch.h"
#include "cdi-export.h"
#include "job.h"
#include "json-text.h"
#include "lease.h"
#include "macro.h"
#include "policy.h"
#include "root.h"
#include "topology.h"
#include "varlink.h"

struct server_config {
        const char *root;          /* NULL: "/" */
        const char *socket_path;   /* public socket (when not socket-activated) */
        const char *admin_path;    /* root-only socket */
        const char *state_dir;     /* root-relative: the binding journal */
        const char *runtime_dir;   /* absolute: leases */
        const char *policy_path;   /* absolute */
        size_t max_message;        /* bytes of one call */
        unsigned max_conn_per_uid; /* open connections of one uid */
        unsigned max_conn_total;
        size_t max_fds_in_flight;   /* see SERVER_FDS_IN_FLIGHT_MAX */
        uint64_t idle_timeout_usec; /* a connection with no call in flight is closed after it */
        uint64_t call_timeout_usec; /* a call must be whole this long after its first byte */
        unsigned request_rate;      /* calls per second per uid (burst: twice that); 0: no limit */
        size_t max_output_per_uid;  /* replies and events queued for one uid; 0: no limit */
        size_t max_output;          /* the same for all connections together; 0: no limit */
        uint64_t operation_timeout_usec; /* a kernel operation is reported late after it */
        uint64_t stop_timeout_usec;      /* a stop waits this long for operations to finish */
        const char *pools_path;          /* the exported pools (cdi-export.h) */
        const char *cdi_dir;             /* where their CDI spec is kept; NULL: nowhere */
        int verbose;
};

/* Connections to the admin socket, outside --max-connections and the per-uid limit: root
 * can always get in to look and mend. */
#define SERVER_ADMIN_CONNECTIONS_MAX 16
/* File descriptors received with calls not yet whole, all connections together (the
 * default of server_config.max_fds_in_flight): what arrives past it is closed and its
 * call refused, so fds in flight cannot use up the daemon's own. */
#define SERVER_FDS_IN_FLIGHT_MAX 1024
/* Replies queued for one connection: past this its further calls wait (nothing more is
 * read from it) until the client reads. */
#define CONN_OUTPUT_MAX (256u * 1024)
/* The defaults of server_config.max_output_per_uid and .max_output. Past its uid's share
 * (or, for a uid that holds CONN_OUTPUT_MAX or more, past the daemon's) a connection's
 * calls wait as above, and a Monitor stream is ended: the uid's one that has the most
 * events unread. A reply shared by several connections (see server_list_text) counts
 * once per uid, and once in all. */
#define SERVER_OUTPUT_PER_UID_MAX (8u * 1024 * 1024)
#define SERVER_OUTPUT_MAX         (64u * 1024 * 1024)
/* A Monitor stream with no share to bound it (on the admin socket, or with no per-uid
 * limit) is ended this far behind. */
#define MONITOR_BACKLOG_MAX (4u * 1024 * 1024)
/* The request rate charges a call one token, and one more for every this many bytes of
 * its reply: a list of thousands of devices costs its caller what writing it costs. */
#define REQUEST_COST_BYTES (16u * 1024)

struct conn;

struct vfio_nodes {
        struct pci_addr addr;
        int group; /* -1: none */
        int cdev;  /* N of /dev/vfio/devices/vfioN, -1: none */
};

/* Shared texts held by a set of connections, each counted once: the bytes they hold. */
struct text_refs {
        struct text_ref {
                const struct varlink_text *text;
                unsigned n; /* connections of the set that have it queued */
        } * v;
        size_t n, bytes;
};

struct uid_usage {
        uid_t uid;
        unsigned n_conns;
        double tokens; /* request bucket; below 0 after a costly reply */
        uint64_t refilled_usec;
        size_t out_owned;        /* output of its connections, their own bytes */
        struct text_refs shared; /* and the shared texts they have queued */
};

/* A shared text queued on a connection, until the stream is past its end. */
struct conn_text {
        struct varlink_text *text; /* a reference */
        uint64_t end;              /* stream position just past it */
};

struct server {
        struct server_config cfg;
        sd_event *event;
        struct root *root;
        struct policy *policy;
        int lease_dirfd;
        struct lease_log lease_log;

        sd_event_source *listen[2]; /* public, admin */
        int listen_fd[2];

        /* Not accepting after EMFILE/ENFILE: the listening sources are off until the
         * timer, whose delay doubles while the condition lasts. */
        sd_event_source *accept_retry;
        uint64_t accept_backoff_usec;

        struct conn *conns;
        unsigned n_conns;       /* all of them, admin ones included */
        unsigned n_admin_conns; /* on the admin socket */
        size_t fds_in_flight;   /* received with calls not yet whole */
        unsigned n_monitors;    /* connections subscribed to events */
        struct uid_usage **uids;
        size_t n_uids;

        /* Output queued on all connections (as struct uid_usage). */
        size_t out_owned;
        struct text_refs shared;
        unsigned n_waiting;    /* connections whose calls wait for their uid's share */
        sd_event_source *wake; /* serves them once there is room again */
        size_t freed;          /* bytes freed since the heap was last trimmed */
        sd_event_source *trim;

        struct lease **leases;
        size_t n_leases;
        struct holder **holders; /* processes holding leases, or connected and watched */
        size_t n_holders;
        uint64_t next_lease_id;

        struct topology *topology; /* cached; NULL after something changed */
        /* Whole ListDevices and ListGroups replies for that topology, made on first use,
         * shared by every connection that has them queued. */
        struct varlink_text *list_text[2];
        /* Each device's VFIO nodes as last looked up, dropped with the topology. */
        struct vfio_nodes *nodes;
        size_t n_nodes;
        struct cdi_export cdi;
        int have_iommufd;         /* /dev/iommu exists: -1 unknown, 0, 1 */
        unsigned modules_present; /* VFIO_MODULE_BIT()s seen there, dropped with the topology */
        int dev_char_fd;          /* sys/dev/char below the root, opened on first use */
        /* Open files of the cdev nodes handed out (kept through a topology rescan). */
        struct cdev_watches cdev_watches;
        /* Devices to restore that a dead iommufd holder's files still held when its
         * lease ended: restored when the last closes (the cdev's events followed). */
        struct orphan *orphans; /* devices to restore once an ended lease's files close */
        size_t n_orphans;
        sd_event_source *orphan_source; /* the cdev nodes' events (iommufd) */
        sd_event_source *orphan_timer;  /* a look every ORPHAN_RECHECK_USEC (type1) */

        void *udev, *udev_monitor;
        sd_event_source *udev_source;

        /* Kernel operations running in their workers (job.h). */
        struct job *jobs;
        unsigned n_jobs;
        uint64_t next_job_id;
        bool stopping; /* SIGTERM came: exit once no job runs, or at stop_timer */
        sd_event_source *stop_timer;
};

/* The defaults of server_config.operation_timeout_usec and .stop_timeout_usec. */
#define SERVER_OPERATION_TIMEOUT_USEC (10u * 1000000u)
#define SERVER_STOP_TIMEOUT_USEC      (3u * 1000000u)

struct holder;

/* A device an ended lease left open (its holder passed the files on): followed until
 * they close (the lease stays recorded meanwhile), through the events of its cdev node where the
 * lease handed that out, else by looking again on a timer (a type1 lease's group and device files
 * make no events on any node). */
struct orphan {
        struct pci_addr addr;
        bool by_timer;
        uint64_t lease; /* the ended lease that stays until the device is back */
};
#define ORPHAN_RECHECK_USEC (250 * 1000)

struct conn {
        struct server *server;
        struct conn *prev, *next;
        int fd;
        bool admin;
        struct ucred cred;
        gid_t *groups;
        size_t n_groups;
        int pidfd;               /* of the peer, taken at accept */
        struct holder *holder;   /* the peer as a lease holder, from its first Acquire on */
        struct uid_usage *usage; /* its uid's; NULL on the admin socket */
        struct varlink_stream stream;
        size_t out_owned;        /* stream.out_owned as last counted in the usage */
        struct conn_text *texts; /* shared texts queued */
        size_t n_texts;
        bool waiting; /* its calls wait for its uid's share */
        sd_event_source *io, *idle;
        sd_event_source *deadline; /* the buffered part of a call must be whole by then */
        bool deadline_armed;
        uint64_t n_calls;          /* messages taken from the stream */
        uint64_t deadline_call;    /* n_calls when the deadline was armed: for that call */
        size_t fds_held;           /* received, in stream.in_fds, counted in fds_in_flight */
        uint64_t last_active_usec; /* CLOCK_MONOTONIC of the last call or reply written */
        bool monitor;              /* a Monitor call is streaming events to it */
        struct monitor_scope *monitor_scope; /* the events it may see; NULL: all */
        bool closing;                        /* send what is queued, then close */
        bool oneway;                         /* the call being served wants no reply */
        /* The job the call being served waits for: no further call of the connection
         * is read or served until it is answered. */
        struct job *job;
};

int server_new(const struct server_config *cfg, struct server **ret);
struct server *server_free(struct server *s);

/* Raises the soft RLIMIT_NOFILE so that the connection limits fit (two fds a connection,
 * and the fds in flight), or lowers cfg->max_conn_total to what the hard limit allows;
 * says which on the log. */
void server_fit_fd_limit(struct server_config *cfg);

/* Sets up the sockets (from systemd, or bound here), the udev monitor, and adopts or
 * ends the leases an earlier instance left. */
int server_start(struct server *s);

/* Serves a connection's calls buffered while it waited for a job, once that call is
 * answered. */
void conn_resume(struct conn *c);

/* Replies to the call being served: parameters taken. */
int conn_reply(struct conn *c, json_object *parameters, int *fds, size_t n_fds);
/* The same, and more replies follow (a Monitor stream). */
int conn_reply_continues(struct conn *c, json_object *parameters);
/* A whole reply made once and sent to many (a reference is taken). */
int conn_reply_shared(struct conn *c, struct varlink_text *text);
/* The same with the parameters as JSON text (NULL: none). */
int conn_reply_text(struct conn *c, const struct jbuf *parameters, int *fds, size_t n_fds);
int conn_error(struct conn *c, const char *error, json_object *parameters);
/* An error with one string parameter (and more pairs: key, value, ..., NULL). */
int conn_errorf(struct conn *c, const char *error, ...);

/* The topology snapshot, scanned on first use after server_invalidate(). */
int server_topology(struct server *s, const struct topology **ret);
/* The same for a call that names the devices a[0..n): when one of them is missing from
 * the cached scan but its directory exists in sysfs, it was added since the scan (its
 * uevent not read yet, or not even sent: a client that saw the device appear must not
 * be told it does not exist), and the scan is made again, once. An address that names
 * nothing costs one lookup, not a scan. */
int server_topology_for(struct server *s, const struct pci_addr *a, size_t n,
                        const struct topology **ret);
void server_invalidate(struct server *s);
/* Notes that n bytes went back to the heap: past a threshold, the heap is trimmed soon
 * after (memory freed in small pieces would otherwise stay with the process). */
void server_note_freed(struct server *s, size_t n);

/* Subscribes c to events, or not (counted, so that an event with no subscriber costs
 * nothing). */
void conn_set_monitor(struct conn *c, bool on);

/* Sends an event to every monitor that may see it (monitor_sees()). */
void server_broadcast(struct server *s, const char *kind, const struct pci_addr *addr,
                      uint64_t lease);

/* methods.c */
int methods_dispatch(struct conn *c, const char *method, struct jspan params, int *fds,
                     size_t n_fds);
int journal_recover(struct server *s);
int leases_recover(struct server *s);
/* Whether c's Monitor is told of an event about device addr (NULL: none) or lease (0:
 * none): its rules cover the device, or the lease's devices. */
bool monitor_sees(struct conn *c, const struct pci_addr *addr, uint64_t lease);
struct monitor_scope *monitor_scope_free(struct monitor_scope *m);
void lease_free(struct server *s, struct lease *l);
/* Drops a reference to a lease holder (NULL: nothing). */
void holder_unref(struct holder *h);

/* One line to stderr with its syslog priority. Control characters (and backslashes) in
 * the text are written as C escapes: strings that came from a client cannot start a line
 * of their own. */
void log_msg(int level, const char *fmt, ...) _printf_(2, 3);
extern int log_max_level;
