/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Who still has a VFIO device cdev open.
 *
 * The kernel answers whether a device is bound through VFIO (its group node refuses a
 * second opener then), not whether a file of its cdev is merely open. A client that
 * kept the cdev fd of a lease without binding it would pass that check at Release, and
 * could bind the fd later, once the device is back in the pool and nobody else has it.
 *
 * inotify sees every file of a node: each open() of /dev/vfio/devices/vfioN is one
 * IN_OPEN, and the last close of each open file (wherever dup(), fork() or SCM_RIGHTS
 * took it) one IN_CLOSE_WRITE or IN_CLOSE_NOWRITE; O_PATH opens give neither. So the
 * daemon watches each cdev node before it first opens it and keeps a count of its open
 * files. The count is exact only if nothing was open when the watch began: the caller
 * checks that another way (a look through /proc) and says so with cdev_watch_counted().
 * It stops being exact, and the callers fall back to the kernel's own answer, when the
 * event queue overflows, when the count would go below zero (a file opened before the
 * watch was closed), or when the node goes away. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "pci-addr.h"
#include "root.h"

struct cdev_watch {
        int cdev;      /* N of /dev/vfio/devices/vfioN */
        int wd;        /* its inotify watch */
        dev_t fs;      /* the node's file system and inode when the watch began */
        ino_t ino;     /* (the watch keeps that inode: its number is not reused) */
        int64_t opens; /* open files, from the events read so far */
        bool counted;  /* opens is exact */
        bool owned;    /* owner is known: the node was checked to be its cdev */
        struct pci_addr owner;
};

struct cdev_watches {
        int fd; /* inotify; -EBADF until the first watch */
        struct cdev_watch *v;
        size_t n;
};

void cdev_watches_init(struct cdev_watches *w);
void cdev_watches_done(struct cdev_watches *w);

/* Starts watching dev/vfio/devices/vfioN below r, unless it is watched already. With
 * *ret_uncounted true (a new watch, or one whose count was lost and starts again at
 * zero), the count is not trusted until cdev_watch_counted(): the caller first makes
 * sure no file of the node is open. Returns 0 or -errno. */
int cdev_watch_add(struct cdev_watches *w, const struct root *r, int cdev, bool *ret_uncounted);

/* The caller found no open file of vfioN after cdev_watch_add() said it was uncounted:
 * from now on the count is exact (unless an event read later shows otherwise). */
void cdev_watch_counted(struct cdev_watches *w, int cdev);

/* Whether the file st (just opened as vfioN) is the watched node, already checked to be
 * a's cdev: then it still is, since a node goes with its device and a new one is a new
 * inode. */
bool cdev_watch_is(const struct cdev_watches *w, int cdev, const struct stat *st,
                   const struct pci_addr *a);

/* vfioN was opened as st and checked to be a's cdev: the watch remembers it, or, if it
 * is on another inode (the node was removed and made again), is dropped, and the
 * device's leases fall back. */
void cdev_watch_owner(struct cdev_watches *w, int cdev, const struct stat *st,
                      const struct pci_addr *a);

/* Reads the events queued so far (the fd polls readable while some are). */
void cdev_watches_read(struct cdev_watches *w);
/* Reads the events queued so far, then tells whether vfioN has open files: 1 yes, 0 no,
 * -1 not known (no exact count: ask the kernel another way). */
int cdev_watch_open_files(struct cdev_watches *w, int cdev);
/* Whether vfioN has a watch (counted or not). */
bool cdev_watch_watched(const struct cdev_watches *w, int cdev);

/* The same from the events read so far, without reading more: no system call. Where
 * every file the daemon opened of the node is known to have had its open read (the
 * daemon's own opens are read back when their lease ends), 0 here means none of those
 * is open; 1 may be stale (a close still queued). */
int cdev_watch_open_files_read(const struct cdev_watches *w, int cdev);
