/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The end of a lease: its devices given back, by restore jobs, or followed until the
 * last file that outlived the holder is closed. */

#include "methods-internal.h"

/* ---- giving an ended lease's devices back ------------------------------------------ */

/* A restore job: devices to give back to the drivers the journal recorded (those it has
 * no entry for stay as they are), for an ended lease (or none). */
struct restore_job {
        uint64_t lease; /* 0: none (an Acquire's rollback) */
        char what[48];  /* for the log */
        struct pci_addr *devices;
        size_t n_devices;
};

static void restore_job_free(void *p)
{
        struct restore_job *rj = p;
        if (!rj)
                return;
        free(rj->devices);
        free(rj);
}

/* In the worker: each device the journal has goes back; the journal's lock is taken
 * here, as vfioctl takes it. Returns how many went back; failures are logged one by one,
 * and the first is returned. */
static int restore_job_work(struct server *s, void *data, char **ret_why)
{
        struct restore_job *rj = data;
        _cleanup_(journal_freep) struct journal *j = NULL;
        int r = open_journal(s, &j), first = 0;
        if (r < 0) {
                log_msg(LOG_ERR, "%s: cannot open the journal: %s", rj->what, strerror(-r));
                return r;
        }
        int n = 0;
        for (size_t i = 0; i < rj->n_devices; i++) {
                char buf[PCI_ADDR_STRLEN];
                const char *name = pci_addr_format(&rj->devices[i], buf);
                struct journal_entry e = {};
                bool found = journal_get(j, &rj->devices[i], &e) == 0;
                journal_entry_done(&e);
                if (!found)
                        continue;
                _cleanup_free_ char *why = NULL;
                r = vfio_device_restore(s->root, j, &rj->devices[i], &why);
                if (r < 0) {
                        log_msg(LOG_ERR, "%s: %s: restore failed: %s", rj->what, name,
                                detail_or_strerror(why, r));
                        if (first == 0) {
                                first = r;
                                *ret_why = TAKE_PTR(why);
                        }
                } else
                        n++;
        }
        return first < 0 ? first : n;
}

struct lease *lease_by_id(struct server *s, uint64_t id)
{
        for (size_t i = 0; i < s->n_leases; i++)
                if (s->leases[i]->id == id)
                        return s->leases[i];
        return NULL;
}

/* An ended lease whose devices are all back goes: its record last, so that a crash
 * before finds it and gives back what is left. */
static void lease_finish(struct server *s, struct lease *l)
{
        for (size_t i = 0; i < l->n_devices; i++)
                if (l->returning[i] != LEASE_DEVICE_RETURNED)
                        return;
        lease_unlink(s, l);
        int r = lease_log_end(&s->lease_log, l->id, s->leases, s->n_leases);
        if (r < 0)
                log_msg(LOG_ERR, "lease %" PRIu64 ": cannot remove its record: %s", l->id,
                        strerror(-r));
        server_broadcast(s, l->end_kind, NULL, l->id);
        lease_destroy(l);
        cdi_export_changed(s); /* a pooled device is offered again */
}

static void restore_job_done(struct server *s, struct job *j, int r, const char *why)
{
        struct restore_job *rj = j->data;
        struct lease *l = rj->lease ? lease_by_id(s, rj->lease) : NULL;
        if (r != 0) /* a driver changed, or may have */
                server_invalidate(s);
        for (size_t i = 0; i < rj->n_devices; i++) {
                server_broadcast(s, "device-changed", &rj->devices[i], 0);
                for (size_t k = 0; l && k < l->n_devices; k++)
                        if (pci_addr_equal(&l->devices[k], &rj->devices[i]))
                                l->returning[k] = LEASE_DEVICE_RETURNED;
        }
        if (j->conn) /* a Release waits */
                (void)(r < 0 ? errno_error(j->conn, "release", NULL, r, why)
                             : conn_reply(j->conn, l ? json_object_get(l->end_reply) : NULL, NULL,
                                          0));
        if (l)
                lease_finish(s, l);
}

/* Starts the restore of devices a[0..n) of lease (0: none); conn waits for it, or NULL.
 * Returns the job, or NULL when it could not start (logged; the devices stay on vfio-pci
 * and the journal keeps them for 'vfioctl restore --all' or the next start). */
struct job *restore_start(struct server *s, uint64_t lease, const struct pci_addr *a, size_t n,
                          struct conn *conn)
{
        struct restore_job *rj = calloc(1, sizeof(*rj));
        if (!rj || !(rj->devices = calloc(n ? n : 1, sizeof(*a)))) {
                restore_job_free(rj);
                log_msg(LOG_ERR, "cannot start a restore: %s", strerror(ENOMEM));
                return NULL;
        }
        memcpy(rj->devices, a, n * sizeof(*a));
        rj->n_devices = n;
        rj->lease = lease;
        if (lease)
                snprintf(rj->what, sizeof(rj->what), "lease %" PRIu64, lease);
        else
                snprintf(rj->what, sizeof(rj->what), "acquire rollback");
        cdi_export_now(s, a, n);
        struct job *j;
        int r = job_start(s,
                          &(struct job_spec){.operation = "restore",
                                             .devices = a,
                                             .n_devices = n,
                                             .work = restore_job_work,
                                             .done = restore_job_done,
                                             .data = rj,
                                             .free_data = restore_job_free,
                                             .conn = conn},
                          &j);
        if (r < 0) {
                log_msg(LOG_ERR, "%s: cannot start the restore of %zu device(s): %s", rj->what, n,
                        strerror(-r));
                restore_job_free(rj);
                return NULL;
        }
        return j;
}

static bool orphans_by_timer(const struct server *s)
{
        for (size_t i = 0; i < s->n_orphans; i++)
                if (s->orphans[i].by_timer)
                        return true;
        return false;
}

static void orphan_drop(struct server *s, size_t i)
{
        s->orphans[i] = s->orphans[--s->n_orphans];
        if (s->n_orphans == 0)
                (void)sd_event_source_set_enabled(s->orphan_source, SD_EVENT_OFF);
        if (!orphans_by_timer(s))
                (void)sd_event_source_set_enabled(s->orphan_timer, SD_EVENT_OFF);
}

/* Device k of an ending lease is back (or given up on): the lease goes once all are. */
static void lease_device_returned(struct server *s, struct lease *l, size_t k)
{
        l->returning[k] = LEASE_DEVICE_RETURNED;
        server_broadcast(s, "device-changed", &l->devices[k], 0);
}

static int orphan_timer_arm(struct server *s);

/* Each orphan (of those followed by_timer, or by events) whose files are all closed is
 * restored, in a job. */
static void orphans_check(struct server *s, bool by_timer)
{
        for (size_t i = 0; i < s->n_orphans;) {
                struct orphan o = s->orphans[i];
                char buf[PCI_ADDR_STRLEN];
                const char *name = pci_addr_format(&o.addr, buf);
                if (o.by_timer != by_timer) {
                        i++;
                        continue;
                }
                struct lease *l = lease_by_id(s, o.lease);
                ssize_t k = -1;
                for (size_t m = 0; l && m < l->n_devices; m++)
                        if (pci_addr_equal(&l->devices[m], &o.addr))
                                k = (ssize_t)m;
                if (k < 0) {
                        orphan_drop(s, i);
                        continue;
                }
                const struct vfio_nodes *n = device_nodes(s, &o.addr);
                if (!n || (by_timer ? n->group < 0 : n->cdev < 0)) {
                        log_msg(LOG_WARNING, "%s: gone, or off vfio-pci: not restored", name);
                        orphan_drop(s, i);
                        lease_device_returned(s, l, (size_t)k);
                        lease_finish(s, l);
                        continue;
                }
                int pid;
                if (restore_blocked(s, &o.addr, !by_timer, &pid)) {
                        i++; /* still open: an unbind would block */
                        continue;
                }
                log_msg(LOG_INFO, "%s: its last file is closed: restoring it", name);
                if (!restore_start(s, l->id, &o.addr, 1, NULL)) {
                        /* Tried again on the timer (an event may never come again). */
                        s->orphans[i++].by_timer = true;
                        if (orphan_timer_arm(s) < 0)
                                log_msg(LOG_ERR, "%s: its restore could not start", name);
                        continue;
                }
                orphan_drop(s, i);
                l->returning[k] = LEASE_DEVICE_RESTORING;
        }
}

/* The node's events came: each orphan whose last file is closed (and whose group node is
 * free) is restored. */
static int on_orphan_events(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct server *s = userdata;
        cdev_watches_read(&s->cdev_watches);
        orphans_check(s, false);
        return 0;
}

static int on_orphan_timer(sd_event_source *src, uint64_t usec, void *userdata)
{
        struct server *s = userdata;
        orphans_check(s, true);
        if (orphans_by_timer(s)) {
                (void)sd_event_source_set_time_relative(src, ORPHAN_RECHECK_USEC);
                (void)sd_event_source_set_enabled(src, SD_EVENT_ONESHOT);
        }
        return 0;
}

static int on_orphan_timer(sd_event_source *src, uint64_t usec, void *userdata);

/* Arms the timer that looks at the orphans followed by_timer again. */
static int orphan_timer_arm(struct server *s)
{
        if (!s->orphan_timer) {
                int r = sd_event_add_time_relative(s->event, &s->orphan_timer, CLOCK_MONOTONIC,
                                                   ORPHAN_RECHECK_USEC, 0, on_orphan_timer, s);
                if (r < 0)
                        return r;
        }
        (void)sd_event_source_set_time_relative(s->orphan_timer, ORPHAN_RECHECK_USEC);
        (void)sd_event_source_set_enabled(s->orphan_timer, SD_EVENT_ONESHOT);
        return 0;
}

/* Follows a (of lease) until its last file closes, then restores it: through its cdev
 * node's events (iommufd), else by looking again on a timer. Returns 0, or -errno when
 * it cannot be followed. */
static int orphan_add(struct server *s, const struct pci_addr *a, uint64_t lease, bool iommufd)
{
        const struct vfio_nodes *n = device_nodes(s, a);
        bool uncounted, by_timer = !iommufd || !n || n->cdev < 0;
        if (!by_timer) /* an adopted lease's node may not be watched yet */
                (void)cdev_watch_add(&s->cdev_watches, s->root, n->cdev, &uncounted);
        struct orphan *v = reallocarray(s->orphans, s->n_orphans + 1, sizeof(*v));
        int r = !v ? -ENOMEM : 0;
        if (v)
                s->orphans = v;
        if (r >= 0 && !by_timer && s->cdev_watches.fd < 0)
                r = -EBADF;
        if (r >= 0 && !by_timer && !s->orphan_source)
                r = sd_event_add_io(s->event, &s->orphan_source, s->cdev_watches.fd, EPOLLIN,
                                    on_orphan_events, s);
        if (r >= 0 && by_timer)
                r = orphan_timer_arm(s);
        if (r < 0)
                return r;
        v[s->n_orphans++] = (struct orphan){.addr = *a, .by_timer = by_timer, .lease = lease};
        if (!by_timer)
                (void)sd_event_source_set_enabled(s->orphan_source, SD_EVENT_ON);
        return 0;
}

/* Device k of ending lease l is to be restored, but no job could start for it (no
 * memory, no worker process): it is followed on the timer, as an orphan whose files are
 * closed, so that the restore is tried again, and the lease stays, ending, meanwhile. */
static void restore_later(struct server *s, struct lease *l, size_t k)
{
        char buf[PCI_ADDR_STRLEN];
        const char *name = pci_addr_format(&l->devices[k], buf);
        if (orphan_add(s, &l->devices[k], l->id, /* iommufd= */ false) >= 0) {
                log_msg(LOG_WARNING,
                        "lease %" PRIu64 ": %s: its restore could not start: "
                        "tried again in a moment",
                        l->id, name);
                l->returning[k] = LEASE_DEVICE_WAITING;
                return;
        }
        log_msg(LOG_ERR,
                "lease %" PRIu64 ": %s: its restore could not start: it stays on "
                "vfio-pci until 'vfioctl restore --all' or the next start of vfiod",
                l->id, name);
        lease_device_returned(s, l, k);
}

/* Ends a lease: its devices go back to the pool (stay on vfio-pci) or, when their policy
 * rule says restore, to the drivers they had before vfiod bound them (the journal knows
 * which), in a job: the lease stays, marked ending, until they are back. The reset is
 * the kernel's: vfio-pci resets a function when its last VFIO file is closed
 * (vfio_pci_core_disable(), with a bus reset of the device set when a function-level one
 * is missing) and again when it is next opened, so the daemon only makes sure nobody
 * holds the device any more: a second reset here would cost up to a second per device
 * (a bus reset waits that long) and buy nothing. conn (a Release) is answered once the
 * devices are back, or now when none needs a restore. */
void lease_end(struct server *s, struct lease *l, const char *kind, bool checked, struct conn *conn)
{
        if (l->ending)
                return;
        log_msg(LOG_INFO, "lease %" PRIu64 " of pid %d ends (%s): returning its %zu device(s)",
                l->id, (int)l->pid, kind, l->n_devices);
        l->returning = calloc(l->n_devices ? l->n_devices : 1, sizeof(*l->returning));
        if (!l->returning) {
                log_msg(LOG_ERR, "lease %" PRIu64 ": out of memory: ended at the next start",
                        l->id);
                if (conn)
                        (void)errno_error(conn, "release", NULL, -ENOMEM, NULL);
                return;
        }
        l->ending = true;
        l->end_kind = kind;

        /* The holder's extra rights first: a node that stays (a pooled device) is shut
         * to its uid again; one whose device goes back to its driver goes with it. */
        lease_grants_end(l);
        lease_memlock_end(s, l);
        _cleanup_free_ struct pci_addr *restore =
                calloc(l->n_devices ? l->n_devices : 1, sizeof(*restore));
        size_t n_restore = 0;
        for (size_t i = 0; i < l->n_devices; i++) {
                char buf[PCI_ADDR_STRLEN];
                const char *name = pci_addr_format(&l->devices[i], buf);
                l->returning[i] = LEASE_DEVICE_RETURNED;
                /* Whether it is still there: the cached scan knows, else sysfs does (not
                 * a new scan of the whole bus, which uevents of the VMM's run have likely
                 * made necessary, and which takes long enough to matter on a big host:
                 * the devices are due back within a second of the holder's exit). */
                if (s->topology ? !topology_find_device(s->topology, &l->devices[i])
                                : pci_sysfs_device_exists(s->root, &l->devices[i]) < 0) {
                        log_msg(LOG_WARNING, "lease %" PRIu64 ": %s is gone", l->id, name);
                        continue;
                }
                bool to_restore = lease_device_release(l, i) == RELEASE_RESTORE;
                int holder = 0;
                if (!checked && lease_device_held(s, l, i, &holder)) {
                        /* Its fds went on to another process: an unbind would wait until
                         * it lets go. It stays on vfio-pci, not handed out while open
                         * (device_open_elsewhere()), and one to restore is followed until
                         * the last file closes (the lease stays recorded meanwhile: a
                         * restart follows it again). */
                        log_msg(LOG_WARNING,
                                "lease %" PRIu64 ": %s is still in use (pid %d, 0: unknown): "
                                "left on vfio-pci%s",
                                l->id, name, holder,
                                to_restore ? " until that file is closed, then restored" : "");
                        if (to_restore && orphan_add(s, &l->devices[i], l->id,
                                                     l->backend == VFIO_BACKEND_IOMMUFD) >= 0)
                                l->returning[i] = LEASE_DEVICE_WAITING;
                        else if (to_restore)
                                log_msg(LOG_ERR,
                                        "%s: cannot follow its files: it stays on vfio-pci", name);
                        continue;
                }
                /* Only what vfiod bound has anything to go back to (the journal has
                 * it): the rest stays, with no worker to start. */
                if (to_restore && journal_has_entry(s->root, s->cfg.state_dir, &l->devices[i])) {
                        if (!restore) {
                                restore_later(s, l, i);
                                continue;
                        }
                        restore[n_restore++] = l->devices[i];
                        l->returning[i] = LEASE_DEVICE_RESTORING;
                        continue;
                }
                server_broadcast(s, "device-changed", &l->devices[i], 0);
        }
        uint64_t id = l->id;
        if (n_restore > 0 && !restore_start(s, id, restore, n_restore, conn)) {
                for (size_t i = 0; i < l->n_devices; i++)
                        if (l->returning[i] == LEASE_DEVICE_RESTORING)
                                restore_later(s, l, i);
                n_restore = 0;
        }
        if (n_restore == 0 && conn)
                (void)conn_reply(conn, json_object_get(l->end_reply), NULL, 0);
        lease_finish(s, l); /* when nothing is left to wait for */
}

int on_holder_exit(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct holder *h = holder_ref(userdata);
        struct server *s = h->server;
        h->exited = true;
        sd_event_source_set_enabled(h->watch, SD_EVENT_OFF);
        /* lease_end() may remove the lease from the table: start over after each. */
        for (size_t i = 0; i < s->n_leases;) {
                struct lease *l = s->leases[i];
                if (l->holder == h && !l->ending) {
                        lease_end(s, l, "lease-expired", false, NULL);
                        i = 0;
                } else
                        i++;
        }
        holder_unref(h);
        return 0;
}
