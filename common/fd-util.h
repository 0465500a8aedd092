/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* File descriptors and directories: closing many at once, walking a directory, and
 * removing a tree, always relative to a directory fd. */

#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "macro.h"

/* Closes each open fd of fds[0..n) and marks it closed (-EBADF). Header-only, so that the
 * client library, which links nothing of common/, has it too. */
static inline void close_many(int *fds, size_t n)
{
        for (size_t i = 0; i < n; i++)
                fds[i] = safe_close(fds[i]);
}

static inline bool dot_or_dot_dot(const char *name)
{
        return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

/* Runs the statement after it for each entry of the directory stream d but "." and "..",
 * with de pointing at the entry; break and continue act on the walk. */
#define FOREACH_DIRENT(de, d)                          \
        for (struct dirent * de; ((de) = readdir(d));) \
                if (dot_or_dot_dot((de)->d_name)) {    \
                } else

static inline void closedirp(DIR **d)
{
        if (*d)
                closedir(*d);
}

#define _cleanup_closedir_ _cleanup_(closedirp)

/* A directory stream reading fd, which it takes: fd is closed on failure too. Returns 0
 * or -errno; a negative fd is returned as it is, so that a failed open's -errno can be
 * passed straight in. */
int dir_stream_from_fd(int fd, DIR **ret);

/* A directory stream of name below dirfd (AT_FDCWD or a directory fd), a final symlink
 * not followed. Returns 0 or -errno (-ENOENT, -ENOTDIR, ...). */
int dir_stream_open_at(int dirfd, const char *name, DIR **ret);

/* A second stream over the directory dirfd refers to, from its start, leaving dirfd as it
 * was. */
int dir_stream_dup(int dirfd, DIR **ret);

/* Removes everything below the directory dirfd, never following a symlink out of it.
 * Every entry is tried; returns the first error (0 when all went). */
int rm_rf_children(int dirfd);

/* Removes name below dirfd, with everything in it when it is a directory (a symlink is
 * removed, not followed). Returns 0 or the -errno of removing name itself. */
int rm_rf_at(int dirfd, const char *name);
