/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* At start: the journal's interrupted operations rolled back, the recorded leases
 * taken up again. */

#include "methods-internal.h"

/* In the worker: a bind or restore that a crash interrupted (of this daemon or of
 * vfioctl) is rolled back: the device returns to what the journal says it had. Confirmed
 * assignments stay. A corrupt entry names its device; vfio_device_restore() then works
 * the state out from sysfs. The journal's lock may be held by a worker an earlier daemon
 * left waiting for the kernel: this one waits for it, the loop does not. */
static int journal_recover_work(struct server *s, void *data, char **ret_why)
{
        _cleanup_(journal_freep) struct journal *j = NULL;
        int r = open_journal(s, &j);
        if (r < 0) {
                log_msg(LOG_ERR, "cannot open the journal: %s", strerror(-r));
                return r;
        }
        /* What a crash left half-written: never renamed over an entry, so nothing. */
        char **removed = NULL;
        r = journal_remove_temporaries(j, &removed);
        if (r < 0)
                log_msg(LOG_WARNING, "cannot remove the journal's temporary files: %s",
                        strerror(-r));
        for (char **f = removed; f && *f; f++)
                log_msg(LOG_NOTICE, "removed /%s/%s, a temporary file a crash left", j->path, *f);
        strv_free(removed);
        _cleanup_free_ struct pci_addr *l = NULL;
        size_t n = 0;
        r = journal_list(j, &l, &n);
        if (r < 0) {
                log_msg(LOG_ERR, "cannot list the journal: %s", strerror(-r));
                return r;
        }
        for (size_t i = 0; i < n; i++) {
                char buf[PCI_ADDR_STRLEN];
                const char *name = pci_addr_format(&l[i], buf);
                struct journal_entry e = {};
                r = journal_get(j, &l[i], &e);
                bool unconfirmed = r == -EBADMSG || (r == 0 && e.state != JOURNAL_ASSIGNED);
                journal_entry_done(&e);
                if (!unconfirmed)
                        continue;
                _cleanup_free_ char *why = NULL;
                r = vfio_device_restore(s->root, j, &l[i], &why);
                if (r < 0)
                        log_msg(LOG_ERR, "%s: interrupted operation, restore failed: %s", name,
                                detail_or_strerror(why, r));
                else
                        log_msg(LOG_NOTICE, "%s: an interrupted bind or restore was rolled back",
                                name);
        }
        return 0;
}

static void journal_recover_done(struct server *s, struct job *j, int r, const char *why)
{
        server_invalidate(s);
        if (r >= 0)
                server_broadcast(s, "device-changed", NULL, 0);
}

int journal_recover(struct server *s)
{
        /* Every device is busy until it is done: none changes hands meanwhile. */
        int r = job_start(s,
                          &(struct job_spec){.operation = "journal recovery",
                                             .all_devices = true,
                                             .work = journal_recover_work,
                                             .done = journal_recover_done},
                          NULL);
        if (r < 0)
                log_msg(LOG_ERR, "cannot start the journal's recovery: %s", strerror(-r));
        return r;
}

int leases_recover(struct server *s)
{
        struct lease *list = NULL;
        size_t n = 0;
        char **bad = NULL;
        int r = lease_load_all(s->lease_log.dirfd, &list, &n, &bad);
        if (r < 0) {
                log_msg(LOG_ERR, "cannot read the lease records: %s", strerror(-r));
                return r;
        }
        for (char **b = bad; b && *b; b++)
                log_msg(LOG_ERR, "lease records: %s", *b);
        strv_free(bad);

        for (size_t i = 0; i < n; i++) {
                struct lease *l = malloc(sizeof(*l));
                if (!l) {
                        r = -ENOMEM;
                        for (size_t k = i; k < n; k++)
                                lease_done(&list[k]);
                        break;
                }
                *l = list[i];
                l->owner = s;
                l->adopted = true;
                r = lease_add(s, l);
                if (r < 0) {
                        lease_done(l);
                        free(l);
                        continue;
                }
                int pidfd;
                r = process_pidfd_verified(s->root, l->pid, l->starttime, &pidfd);
                if (r == 0) {
                        struct holder *h;
                        r = holder_get(s, l->pid, l->starttime, &pidfd, &h);
                        safe_close(pidfd);
                        if (r >= 0) {
                                l->holder = h;
                                log_msg(LOG_INFO, "lease %" PRIu64 ": adopted, held by pid %d",
                                        l->id, (int)l->pid);
                                continue;
                        }
                }
                /* Its holder is gone (or cannot be watched): give the devices back now. */
                lease_end(s, l, "lease-expired", false, NULL);
        }
        free(list);
        /* The log starts again with only what is live. */
        r = lease_log_rewrite(&s->lease_log, s->leases, s->n_leases);
        if (r < 0)
                log_msg(LOG_ERR, "cannot rewrite the lease log: %s", strerror(-r));
        return r;
}
