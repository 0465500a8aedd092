/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The processes that hold leases and the lease table; how a device's nodes are found,
 * opened and counted; the group nodes and RLIMIT_MEMLOCK a lease grants its holder. */

#include "methods-internal.h"

/* ---- leases ------------------------------------------------------------------------- */

struct holder *holder_ref(struct holder *h)
{
        h->n_refs++;
        return h;
}

void holder_unref(struct holder *h)
{
        if (!h || --h->n_refs > 0)
                return;
        struct server *s = h->server;
        for (size_t i = 0; i < s->n_holders; i++)
                if (s->holders[i] == h) {
                        s->holders[i] = s->holders[--s->n_holders];
                        break;
                }
        sd_event_source_disable_unref(h->watch);
        safe_close(h->pidfd);
        free(h);
}

static inline void holder_unrefp(struct holder **h)
{
        holder_unref(*h);
}

/* The holder for the process of *pidfd (taken: closed when a holder exists already),
 * which started at starttime, with a reference for the caller. */
int holder_get(struct server *s, pid_t pid, uint64_t starttime, int *pidfd, struct holder **ret)
{
        for (size_t i = 0; i < s->n_holders; i++) {
                struct holder *h = s->holders[i];
                if (!h->exited && h->pid == pid && h->starttime == starttime) {
                        *pidfd = safe_close(*pidfd);
                        *ret = holder_ref(h);
                        return 0;
                }
        }
        struct holder **p = reallocarray(s->holders, s->n_holders + 1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        s->holders = p;
        struct holder *h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        *h = (struct holder){.server = s, .pid = pid, .starttime = starttime, .pidfd = -EBADF};
        int r = sd_event_add_io(s->event, &h->watch, *pidfd, EPOLLIN, on_holder_exit, h);
        if (r < 0) {
                free(h);
                return r;
        }
        h->pidfd = TAKE_FD(*pidfd);
        s->holders[s->n_holders++] = h;
        *ret = holder_ref(h);
        return 0;
}

int lease_add(struct server *s, struct lease *l)
{
        struct lease **p = reallocarray(s->leases, s->n_leases + 1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        s->leases = p;
        p[s->n_leases++] = l;
        if (l->id >= s->next_lease_id)
                s->next_lease_id = l->id + 1;
        return 0;
}

void lease_unlink(struct server *s, struct lease *l)
{
        for (size_t i = 0; i < s->n_leases; i++)
                if (s->leases[i] == l) {
                        memmove(s->leases + i, s->leases + i + 1,
                                (s->n_leases - i - 1) * sizeof(*s->leases));
                        s->n_leases--;
                        break;
                }
}

void lease_destroy(struct lease *l)
{
        holder_unref(l->holder);
        json_object_put(l->end_reply);
        lease_done(l);
        free(l);
}

void lease_free(struct server *s, struct lease *l)
{
        lease_unlink(s, l);
        lease_destroy(l);
}

/* The device's group and cdev, looked up once per topology snapshot (a rebind, which
 * makes a new cdev, comes with a uevent that drops the snapshot). */
const struct vfio_nodes *device_nodes(struct server *s, const struct pci_addr *a)
{
        for (size_t i = 0; i < s->n_nodes; i++)
                if (pci_addr_equal(&s->nodes[i].addr, a))
                        return &s->nodes[i];
        struct vfio_nodes *p = reallocarray(s->nodes, s->n_nodes + 1, sizeof(*p));
        if (!p)
                return NULL;
        s->nodes = p;
        struct vfio_nodes *n = &p[s->n_nodes++];
        *n = (struct vfio_nodes){.addr = *a, .group = -1, .cdev = -1};
        if (vfio_device_group_id(s->root, a, &n->group) < 0)
                n->group = -1;
        if (vfio_device_cdev_index(s->root, a, &n->cdev) < 0)
                n->cdev = -1;
        return n;
}

/* Whether device a's cdev node (/dev/vfio/devices/vfio<cdev>) is open anywhere, for a
 * node whose open files the daemon does not count yet (cdev-watch.h). Every process's
 * open files are searched, which also finds a cdev opened but not yet bound to an
 * iommufd. The node's watch is added before the search, so that a close during the
 * search is not missed; when the search finds the node closed, the count starts from
 * zero there. Returns 1 when it is open (by the process in *ret_pid, 0 when unknown), 0
 * when it is not, or -errno. */
static int search_and_count(struct server *s, int cdev, const struct pci_addr *a, int *ret_pid)
{
        bool uncounted = false;
        bool watched = cdev_watch_add(&s->cdev_watches, s->root, cdev, &uncounted) == 0;
        int k = vfio_device_open_by(s->root, a, ret_pid);
        if (k == 0 && watched && uncounted)
                cdev_watch_counted(&s->cdev_watches, cdev);
        return k;
}

/* Opens /dev/vfio/devices/vfioN for a and checks, through the char device's sysfs link,
 * that it still is a's: a cached N could be stale if a rebind raced its uevent. The
 * check is made once per node: the watched node (the same inode) stays a's for as long
 * as it exists. The node is watched before this open, so that its open is counted
 * (cdev-watch.h; the count itself was begun by device_open_elsewhere()). */
bool bound_now(const struct bind_plan *plan, const struct pci_addr *a)
{
        for (size_t i = 0; i < plan->n_devices; i++)
                if (pci_addr_equal(&plan->devices[i], a))
                        return true;
        return false;
}

int open_cdev_checked(struct server *s, const struct pci_addr *a, int cdev, bool fresh)
{
        char path[64], link[PATH_MAX], want[PCI_ADDR_STRLEN + 16], name[PCI_ADDR_STRLEN];
        bool uncounted;
        for (int attempt = 0;; attempt++) {
                (void)cdev_watch_add(&s->cdev_watches, s->root, cdev, &uncounted);
                /* A node this Acquire's bind just made: nothing but root could have
                 * opened it since, so its count starts at zero, and this open is in it. */
                if (fresh && uncounted)
                        cdev_watch_counted(&s->cdev_watches, cdev);
                _cleanup_close_ int fd =
                        root_openat(s->root, vfio_cdev_path(cdev, path), O_RDWR | O_NOCTTY);
                if (fd < 0)
                        return fd;
                struct stat st;
                if (fstat(fd, &st) < 0)
                        return negative_errno();
                /* The watched node, checked before: no need to ask sysfs again. */
                if (cdev_watch_is(&s->cdev_watches, cdev, &st, a))
                        return TAKE_FD(fd);
                snprintf(path, sizeof(path), "sys/dev/char/%u:%u", major(st.st_rdev),
                         minor(st.st_rdev));
                if (s->dev_char_fd < 0) {
                        s->dev_char_fd = root_openat(s->root, "sys/dev/char", O_PATH | O_DIRECTORY);
                        if (s->dev_char_fd < 0)
                                return s->dev_char_fd;
                }
                ssize_t k = readlinkat(s->dev_char_fd, path + strlen("sys/dev/char/"), link,
                                       sizeof(link) - 1);
                if (k < 0)
                        return negative_errno();
                link[k] = 0;
                snprintf(want, sizeof(want), "/%s/vfio-dev/", pci_addr_format(a, name));
                if (!strstr(link, want))
                        return -ESTALE;
                cdev_watch_owner(&s->cdev_watches, cdev, &st, a);
                /* The watch was on the node of an earlier binding (the device was unbound
                 * and bound again): it is dropped; watch this node, then open it again so
                 * that the open is counted. */
                if (!cdev_watch_watched(&s->cdev_watches, cdev) && attempt == 0)
                        continue;
                return TAKE_FD(fd);
        }
}

/* The backend a device opens through by default: iommufd when the kernel has it and the
 * device has a cdev, else type1. -EMEDIUMTYPE when it has neither node. */
int device_backend(struct server *s, const struct topology *t, const struct pci_addr *a,
                   enum vfio_backend *ret, char **ret_detail)
{
        /* vfio's no-IOMMU mode needs the full look (its nodes have other names). */
        if (t->host.mode != IOMMU_MODE_TRANSLATED && t->host.mode != IOMMU_MODE_PASSTHROUGH)
                return vfio_backend_detect(s->root, a, ret, ret_detail);
        const struct vfio_nodes *n = device_nodes(s, a);
        if (!n)
                return -ENOMEM;
        if (s->have_iommufd < 0) {
                _cleanup_close_ int fd = root_openat(s->root, "dev/iommu", O_PATH);
                s->have_iommufd = fd >= 0;
        }
        if (s->have_iommufd && n->cdev >= 0)
                *ret = VFIO_BACKEND_IOMMUFD;
        else if (n->group >= 0)
                *ret = VFIO_BACKEND_TYPE1;
        else
                return vfio_backend_detect(s->root, a, ret, ret_detail);
        return 0;
}

/* Whether a leased device is still held by some process, and by whom (0 if unknown).
 * One that goes back to its host driver must have no file open at all, since the
 * kernel blocks the unbind (and the daemon with it) until the last one closes; one that
 * stays in the pool must have no open file left that could bind it again. The count of
 * its cdev's open files says so when the daemon keeps one (cdev-watch.h). Without a
 * count (a lease adopted at start, whose files were opened before the watch; a count
 * lost), the thorough look through /proc, which sees a cdev that is open and not bound,
 * with the node watched first so that the count can start from there when it finds
 * none open. Last, for a pooled device, the kernel's answer for the group (its node
 * takes one opener at a time). */
/* Whether the group node of a (nodes n) is open: the kernel lets it be open once, and a
 * file in flight keeps it so. The /proc search then only names a holder, if it finds
 * one, in *ret_pid. */
static bool group_node_held(struct server *s, const struct vfio_nodes *n, const struct pci_addr *a,
                            int *ret_pid)
{
        if (!n || n->group < 0 || vfio_group_busy(s->root, n->group) <= 0)
                return false;
        (void)vfio_device_open_by(s->root, a, ret_pid);
        return true;
}

/* Whether a device to give back to its host driver still has a file open (an unbind
 * would block until it closes), by whom in *ret_pid (0 if unknown). For a device an
 * iommufd lease handed out, whose cdev is the only node its holder can open (the group
 * node is root's), an exact count of the cdev's files and the group node free are the
 * whole answer, and spare the search (then only made to name who holds it). */
bool restore_blocked(struct server *s, const struct pci_addr *a, bool iommufd, int *ret_pid)
{
        *ret_pid = 0;
        const struct vfio_nodes *n = device_nodes(s, a);
        int k = iommufd && n && n->cdev >= 0 ? cdev_watch_open_files(&s->cdev_watches, n->cdev)
                                             : -ENODATA;
        /* A file the count knows is open wins over the search, which cannot see one in
         * flight (sent over a socket nobody reads): the unbind would wait for it. The
         * search then only names a holder, if it finds one. */
        if (k > 0) {
                (void)vfio_device_open_by(s->root, a, ret_pid);
                return true;
        }
        if (k == 0 && (n->group < 0 || vfio_group_busy(s->root, n->group) == 0))
                return false;
        /* Without a count, a group node still open (the kernel lets it be open once, and
         * a file in flight keeps it so) says the device is in use whatever the search
         * finds. */
        if (k < 0 && group_node_held(s, n, a, ret_pid))
                return true;
        return vfio_device_open_by(s->root, a, ret_pid) > 0;
}

bool lease_device_held(struct server *s, const struct lease *l, size_t i, int *ret_pid)
{
        *ret_pid = 0;
        if (lease_device_release(l, i) == RELEASE_RESTORE)
                return restore_blocked(s, &l->devices[i], l->backend == VFIO_BACKEND_IOMMUFD,
                                       ret_pid);
        const struct vfio_nodes *n = device_nodes(s, &l->devices[i]);
        bool counted = l->backend == VFIO_BACKEND_IOMMUFD && n && n->cdev >= 0;
        if (counted) {
                int k = cdev_watch_open_files(&s->cdev_watches, n->cdev);
                if (k >= 0)
                        return k > 0;
                if (search_and_count(s, n->cdev, &l->devices[i], ret_pid) > 0)
                        return true;
                /* (Not found, or /proc could not be read: the group node answers too.) */
        }
        if (!n || n->group < 0)
                return vfio_device_group_busy(s->root, &l->devices[i]) > 0;
        return vfio_group_busy(s->root, n->group) > 0;
}

bool pidfd_alive(int pidfd)
{
        return syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) == 0;
}

/* The pid a pidfd refers to, from its fdinfo; -EBADF when fd is not a pidfd. */
int pidfd_get_pid(int fd, pid_t *ret)
{
        char path[64], link[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, link, sizeof(link) - 1);
        if (n < 0)
                return negative_errno();
        link[n] = 0;
        if (strcmp(link, "anon_inode:[pidfd]") != 0)
                return -EBADF;
        snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
        _cleanup_free_ char *text = NULL;
        size_t len;
        _cleanup_close_ int dfd = open("/proc/self/fdinfo", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return negative_errno();
        char name[16];
        snprintf(name, sizeof(name), "%d", fd);
        int r = dir_read_file(dfd, name, 4096, &text, &len);
        if (r < 0)
                return r;
        const char *p = strstr(text, "\nPid:\t");
        if (!p)
                return -EBADF;
        long pid = strtol(p + 6, NULL, 10);
        if (pid <= 0)
                return -ESRCH; /* the process has exited already */
        *ret = (pid_t)pid;
        return 0;
}

/* The real uid of a live process, from /proc/PID/status. */
int process_uid(const struct root *root, pid_t pid, uid_t *ret)
{
        char path[64];
        snprintf(path, sizeof(path), "proc/%d/status", (int)pid);
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r = root_read_file(root, path, 65536, &text, &len);
        if (r < 0)
                return r == -ENOENT ? -ESRCH : r;
        const char *p = strstr(text, "\nUid:\t");
        if (!p)
                return -EBADMSG;
        *ret = (uid_t)strtoul(p + 6, NULL, 10);
        return 0;
}

static int64_t rlim_to_int(rlim_t v)
{
        return v == RLIM_INFINITY ? -1 : (int64_t)v;
}

static rlim_t rlim_from_int(int64_t v)
{
        return v < 0 ? RLIM_INFINITY : (rlim_t)v;
}

/* What raising the holder's RLIMIT_MEMLOCK to what the policy grants would do (never
 * lowering it): iommufd charges the guest memory a VMM pins to the VMM, type1 checks it
 * against the VMM's limit. 1 when the limit must change (*ret says from what to what, to
 * be recorded before the change), 0 when it is high enough already. */
int holder_memlock_plan(pid_t pid, int64_t want, struct lease_memlock *ret)
{
        struct rlimit cur;
        if (prlimit(pid, RLIMIT_MEMLOCK, NULL, &cur) < 0)
                return negative_errno();
        rlim_t v = want == POLICY_MEMLOCK_UNLIMITED ? RLIM_INFINITY : (rlim_t)want;
        struct rlimit nl = cur;
        if (cur.rlim_cur != RLIM_INFINITY && (v == RLIM_INFINITY || cur.rlim_cur < v))
                nl.rlim_cur = v;
        if (cur.rlim_max != RLIM_INFINITY && (v == RLIM_INFINITY || cur.rlim_max < v))
                nl.rlim_max = v;
        *ret = (struct lease_memlock){
                .was_cur = rlim_to_int(cur.rlim_cur),
                .was_max = rlim_to_int(cur.rlim_max),
                .set_cur = rlim_to_int(nl.rlim_cur),
                .set_max = rlim_to_int(nl.rlim_max),
        };
        return nl.rlim_cur != cur.rlim_cur || nl.rlim_max != cur.rlim_max;
}

int holder_memlock_apply(pid_t pid, int64_t cur, int64_t max)
{
        struct rlimit nl = {.rlim_cur = rlim_from_int(cur), .rlim_max = rlim_from_int(max)};
        return prlimit(pid, RLIMIT_MEMLOCK, &nl, NULL) < 0 ? negative_errno() : 0;
}

/* At the end of a lease that raised its holder's RLIMIT_MEMLOCK, while the holder lives
 * (a Release): the limit goes back to what the lease found, unless someone changed it
 * since, or another lease of the same holder still needs it (that lease then owns the
 * record, the older "before" winning). */
void lease_memlock_end(struct server *s, struct lease *l)
{
        struct holder *h = l->holder;
        if (!l->memlock_raised || !h || h->exited)
                return;
        for (size_t i = 0; i < s->n_leases; i++) {
                struct lease *o = s->leases[i];
                if (o == l || o->holder != h)
                        continue;
                if (!o->memlock_raised || l->id < o->id) {
                        o->memlock.was_cur = l->memlock.was_cur;
                        o->memlock.was_max = l->memlock.was_max;
                        if (!o->memlock_raised)
                                o->memlock = l->memlock;
                        o->memlock_raised = true;
                }
                return;
        }
        struct rlimit now;
        if (prlimit(h->pid, RLIMIT_MEMLOCK, NULL, &now) < 0 || !pidfd_alive(h->pidfd))
                return;
        if (rlim_to_int(now.rlim_cur) != l->memlock.set_cur ||
            rlim_to_int(now.rlim_max) != l->memlock.set_max) {
                log_msg(LOG_INFO,
                        "lease %" PRIu64 ": pid %d's RLIMIT_MEMLOCK was changed since the "
                        "lease raised it: left as it is",
                        l->id, (int)h->pid);
                return;
        }
        int r = holder_memlock_apply(h->pid, l->memlock.was_cur, l->memlock.was_max);
        if (r < 0)
                log_msg(LOG_WARNING, "lease %" PRIu64 ": cannot lower pid %d's RLIMIT_MEMLOCK: %s",
                        l->id, (int)h->pid, strerror(-r));
}

/* Puts back every group node the lease opened to its holder. */
void lease_grants_end(struct lease *l)
{
        for (size_t i = 0; i < l->n_grants; i++) {
                struct server *s = l->owner;
                _cleanup_free_ char *why = NULL;
                int r = vfio_group_node_restore(s->root, l->grants[i].group, &l->grants[i].was,
                                                &why);
                if (r < 0)
                        log_msg(LOG_ERR, "lease %" PRIu64 ": %s", l->id,
                                detail_or_strerror(why, r));
                else
                        log_msg(LOG_INFO,
                                "lease %" PRIu64 ": /dev/vfio/%d no longer open to uid %u", l->id,
                                l->grants[i].group, (unsigned)l->grants[i].to);
        }
}

/* Records, for a type1 lease, each group node of its devices as it is now, to be opened
 * to uid once the lease is recorded. */
int lease_grants_plan(struct lease *l, const struct topology *t, uid_t uid, char **ret_why)
{
        struct server *s = l->owner;
        l->grants = calloc(l->n_devices, sizeof(*l->grants));
        if (!l->grants)
                return -ENOMEM;
        for (size_t i = 0; i < l->n_devices; i++) {
                const struct pci_device *d = topology_find_device(t, &l->devices[i]);
                int group = d ? d->iommu_group : -1;
                bool seen = group < 0;
                for (size_t k = 0; !seen && k < l->n_grants; k++)
                        seen = l->grants[k].group == group;
                if (seen)
                        continue;
                struct node_grant *g = &l->grants[l->n_grants];
                *g = (struct node_grant){.group = group, .to = uid};
                int r = vfio_group_node_access(s->root, group, &g->was);
                if (r < 0)
                        return detail_errno(ret_why, r, "cannot read /dev/vfio/%d: %s", group,
                                            strerror(-r));
                l->n_grants++;
        }
        return 0;
}

/* Opens the planned group nodes to their uid; on failure puts back what it changed. */
int lease_grants_apply(struct lease *l, char **ret_why)
{
        struct server *s = l->owner;
        for (size_t i = 0; i < l->n_grants; i++) {
                int r = vfio_group_node_grant(s->root, l->grants[i].group, l->grants[i].to,
                                              ret_why);
                if (r < 0) {
                        size_t n = l->n_grants;
                        l->n_grants = i + 1; /* the failed one may be half done */
                        lease_grants_end(l);
                        l->n_grants = n;
                        return r;
                }
        }
        return 0;
}

/* Whether a device about to be handed out has a file of its cdev open somewhere: one
 * that a dead holder passed on before its lease ended, or one opened before the daemon
 * knew the node. Such a file could bind the device under the next VMM. 1 (with the
 * process in *ret_pid when a search finds it, else 0) or 0. No system call when the
 * count of the node's files is known and zero; else the queued events are read, or,
 * without a count, /proc is searched (and the count begins when none is found). For a
 * device without a cdev (type1), whether its group node is open answers. */
int device_open_elsewhere(struct server *s, const struct pci_addr *a, int *ret_pid)
{
        *ret_pid = 0;
        const struct vfio_nodes *n = device_nodes(s, a);
        if (!n)
                return 0;
        if (n->cdev < 0) {
                /* No cdev (a type1 kernel): the group node tells, open once at most, a
                 * file in flight included. */
                return group_node_held(s, n, a, ret_pid);
        }
        int k = cdev_watch_open_files_read(&s->cdev_watches, n->cdev);
        if (k == 0)
                return 0;
        if (k > 0) {
                if (cdev_watch_open_files(&s->cdev_watches, n->cdev) == 0)
                        return 0;
                (void)vfio_device_open_by(s->root, a, ret_pid); /* only to name it */
                return 1;
        }
        return search_and_count(s, n->cdev, a, ret_pid) > 0;
}
