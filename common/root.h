/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The root below which every /sys, /dev and /proc path is resolved. The live host uses
 * "/"; tests and offline audits point it at a directory tree shaped like one. No other
 * module builds such paths: it asks this object. */
struct root {
        int fd;       /* O_PATH directory fd of the root */
        char *path;   /* as given, for messages */
        bool is_host; /* the root is the running system's "/" */
};

/* Opens path (NULL means "/") as a root. Returns 0 or -errno (-ENOTDIR, -ENOENT...). */
int root_open(const char *path, struct root **ret);

/* Accepts NULL; returns NULL. */
struct root *root_free(struct root *r);

static inline void root_freep(struct root **r)
{
        root_free(*r);
}

/* A relative path with no empty, "." or ".." components and no leading '/'. */
bool path_is_safe_relative(const char *p);

/* Opens relpath below the root, resolving every symlink as if the root were "/"
 * (openat2 RESOLVE_IN_ROOT), so a tree's links can never lead outside it. Returns an fd
 * or -errno; -EINVAL for an unsafe relpath. */
int root_openat(const struct root *r, const char *relpath, int flags);

/* A directory stream of relpath below the root (opened as root_openat() does). Returns 0
 * or -errno. */
int root_opendir(const struct root *r, const char *relpath, DIR **ret);

/* Whether relpath names something below the root (an O_PATH open of it succeeds). */
bool root_exists(const struct root *r, const char *relpath);

/* Reads a whole file (at most max bytes; -EFBIG beyond) into a NUL-terminated buffer.
 * name must be a single component: symlinks are not followed (O_NOFOLLOW). */
int dir_read_file(int dirfd, const char *name, size_t max, char **ret, size_t *ret_len);

/* Reads fd to its end (at most max bytes; -EFBIG beyond) into a NUL-terminated buffer. */
int fd_read_all(int fd, size_t max, char **ret, size_t *ret_len);

/* The file's first line without trailing whitespace; -ENODATA when empty. */
int dir_read_line(int dirfd, const char *name, char **ret);

/* A sysfs number: "0x8086", "1", "-1"; base 0 as strtoll, rejects trailing garbage. */
int dir_read_int(int dirfd, const char *name, int64_t *ret);

/* A bare hexadecimal number without "0x", as the IOMMU cap/ecap files print it. */
int dir_read_hex(int dirfd, const char *name, uint64_t *ret);

/* The target of the symlink name (a single component); -EINVAL if it is not a link. */
int dir_readlink(int dirfd, const char *name, char **ret);

/* The last component of a symlink's target ("../../bus/pci/drivers/igb" -> "igb"). */
int dir_readlink_basename(int dirfd, const char *name, char **ret);

/* Root-relative forms of the above, for paths like "proc/cmdline". */
int root_read_file(const struct root *r, const char *relpath, size_t max, char **ret,
                   size_t *ret_len);
int root_read_line(const struct root *r, const char *relpath, char **ret);

/* The running kernel's release, as uname -r prints it, from proc/sys/kernel/osrelease
 * below the root (a fixture tree sets its own). -ENOENT when the tree has none, -EBADMSG
 * when it is empty or not a single path component. */
int root_kernel_release(const struct root *r, char **ret);

/* Parses "Y"/"N"/"1"/"0" (module parameters). */
int parse_boolean(const char *s, bool *ret);

/* True if s is all decimal digits (and not empty). */
bool str_is_decimal(const char *s);

/* Resolves a relative symlink target against the root-relative directory holding the
 * link, purely as strings: "sys/bus/pci/devices" + "../../../devices/pci0000:00/x" gives
 * "sys/devices/pci0000:00/x". ".." never climbs above the root. Absolute targets are
 * taken relative to the root. */
int path_resolve_link(const char *linkdir, const char *target, char **ret);

/* Writes s to an existing attribute file below the root in one write(), as sysfs wants,
 * opened with O_TRUNC as a shell's '>' would (a plain file then holds only s). A short
 * write is -EIO; the kernel's own error (-EBUSY, -ENODEV, ...) is returned. */
int root_write_string(const struct root *r, const char *relpath, const char *s);

/* Creates relpath and its missing parents below the root (mode 0700 for new ones) and
 * returns an O_DIRECTORY fd of it, or -errno. */
int root_mkdir_p(const struct root *r, const char *relpath);

/* Replaces name in dirfd with data atomically: a temporary file is written and fsynced,
 * renamed over name, and the directory fsynced. After a crash the file holds the old or
 * the new content, never a mix. */
int dir_write_atomic(int dirfd, const char *name, const char *data, size_t len);

/* The same; without durable, nothing is fsynced: readers never see a mix, but a power
 * loss may lose the file. For files on tmpfs that only need to outlive a process. */
int dir_write_replace(int dirfd, const char *name, const char *data, size_t len, bool durable);
