/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "cdev-watch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "dev-node.h"

#define WATCH_EVENTS (IN_OPEN | IN_CLOSE_WRITE | IN_CLOSE_NOWRITE)

void cdev_watches_init(struct cdev_watches *w)
{
        *w = (struct cdev_watches){.fd = -EBADF};
}

void cdev_watches_done(struct cdev_watches *w)
{
        safe_close(w->fd); /* the watches go with it */
        free(w->v);
        cdev_watches_init(w);
}

static struct cdev_watch *find_cdev(struct cdev_watches *w, int cdev)
{
        for (size_t i = 0; i < w->n; i++)
                if (w->v[i].cdev == cdev)
                        return &w->v[i];
        return NULL;
}

static void drop(struct cdev_watches *w, struct cdev_watch *e, bool remove_watch)
{
        if (remove_watch)
                (void)inotify_rm_watch(w->fd, e->wd);
        *e = w->v[--w->n];
}

static void uncount_all(struct cdev_watches *w)
{
        for (size_t i = 0; i < w->n; i++)
                w->v[i].counted = false;
}

static void read_events(struct cdev_watches *w)
{
        if (w->fd < 0)
                return;
        /* The watches are on nodes, not directories: no event carries a name. */
        union {
                struct inotify_event e;
                char buf[4096];
        } u;
        for (;;) {
                ssize_t k = read(w->fd, u.buf, sizeof(u.buf));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0 && errno != EAGAIN)
                        uncount_all(w); /* events that cannot be read are lost too */
                if (k <= 0)
                        return; /* EAGAIN: nothing (more) queued */
                for (ssize_t off = 0; off + (ssize_t)sizeof(struct inotify_event) <= k;) {
                        struct inotify_event e;
                        memcpy(&e, u.buf + off, sizeof(e));
                        off += (ssize_t)(sizeof(e) + e.len);
                        if (e.mask & IN_Q_OVERFLOW) {
                                /* Events were lost: no count can be trusted any more. */
                                uncount_all(w);
                                continue;
                        }
                        struct cdev_watch *x = NULL;
                        for (size_t i = 0; i < w->n && !x; i++)
                                if (w->v[i].wd == e.wd)
                                        x = &w->v[i];
                        if (!x)
                                continue;
                        if (e.mask & IN_IGNORED) {
                                /* The node is gone (or the watch was removed). */
                                drop(w, x, false);
                                continue;
                        }
                        if (e.mask & IN_OPEN)
                                x->opens++;
                        if (e.mask & (IN_CLOSE_WRITE | IN_CLOSE_NOWRITE))
                                x->opens--;
                        if (x->opens < 0)
                                x->counted = false; /* closed a file opened before the watch */
                }
                /* A short read took everything that was queued. */
                if ((size_t)k < sizeof(u.buf) - sizeof(struct inotify_event))
                        return;
        }
}

int cdev_watch_add(struct cdev_watches *w, const struct root *r, int cdev, bool *ret_uncounted)
{
        *ret_uncounted = false;
        /* No read of the queue for a counted watch: the caller opens the node next, and a
         * watch left on a node that was since made again shows in cdev_watch_owner(). */
        struct cdev_watch *e = find_cdev(w, cdev);
        if (e && e->counted)
                return 0;
        if (e) {
                /* The count starts again from here, if the caller finds nothing open. */
                read_events(w);
                e = find_cdev(w, cdev);
        }
        if (e) {
                e->opens = 0;
                *ret_uncounted = true;
                return 0;
        }
        if (w->fd < 0) {
                w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
                if (w->fd < 0)
                        return negative_errno();
        }
        struct cdev_watch *v = reallocarray(w->v, w->n + 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        w->v = v;

        /* The node as the root's resolution finds it, named to inotify through the fd:
         * an O_PATH open is no open of the device, and makes no event. */
        char node[VFIO_CDEV_PATH_MAX], path[64];
        _cleanup_close_ int fd = root_openat(r, vfio_cdev_path(cdev, node), O_PATH | O_CLOEXEC);
        if (fd < 0)
                return fd;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISCHR(st.st_mode))
                return -ENOTTY;
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        int wd = inotify_add_watch(w->fd, path, WATCH_EVENTS);
        if (wd < 0)
                return negative_errno();
        /* Another entry on this inode (a cdev number that moved): it is this one now. */
        for (size_t i = 0; i < w->n; i++)
                if (w->v[i].wd == wd) {
                        drop(w, &w->v[i], false);
                        break;
                }
        w->v[w->n++] =
                (struct cdev_watch){.cdev = cdev, .wd = wd, .fs = st.st_dev, .ino = st.st_ino};
        *ret_uncounted = true;
        return 0;
}

void cdev_watch_counted(struct cdev_watches *w, int cdev)
{
        struct cdev_watch *e = find_cdev(w, cdev);
        if (e && e->opens >= 0)
                e->counted = true;
}

static bool same_node(const struct cdev_watch *e, const struct stat *st)
{
        return e->fs == st->st_dev && e->ino == st->st_ino;
}

bool cdev_watch_is(const struct cdev_watches *w, int cdev, const struct stat *st,
                   const struct pci_addr *a)
{
        for (size_t i = 0; i < w->n; i++)
                if (w->v[i].cdev == cdev)
                        return w->v[i].owned && same_node(&w->v[i], st) &&
                               pci_addr_equal(&w->v[i].owner, a);
        return false;
}

void cdev_watch_owner(struct cdev_watches *w, int cdev, const struct stat *st,
                      const struct pci_addr *a)
{
        struct cdev_watch *e = find_cdev(w, cdev);
        if (!e)
                return;
        if (!same_node(e, st)) {
                drop(w, e, true);
                return;
        }
        e->owned = true;
        e->owner = *a;
}

bool cdev_watch_watched(const struct cdev_watches *w, int cdev)
{
        for (size_t i = 0; i < w->n; i++)
                if (w->v[i].cdev == cdev)
                        return true;
        return false;
}

int cdev_watch_open_files_read(const struct cdev_watches *w, int cdev)
{
        for (size_t i = 0; i < w->n; i++)
                if (w->v[i].cdev == cdev)
                        return w->v[i].counted ? w->v[i].opens > 0 : -1;
        return -1;
}

void cdev_watches_read(struct cdev_watches *w)
{
        read_events(w);
}

int cdev_watch_open_files(struct cdev_watches *w, int cdev)
{
        read_events(w);
        return cdev_watch_open_files_read(w, cdev);
}
