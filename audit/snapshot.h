/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Offline snapshots: the files below a root that the topology scan and the audit read
 * (PCI devices and their attributes and config space, IOMMU groups and units, interfaces
 * and disks, module parameters, a few /proc files), written as a tar archive that keeps
 * symbolic links, with a manifest as its first member. Opening a snapshot extracts an
 * archive to a private temporary directory and checks every entry against the manifest,
 * so that a truncated or pruned snapshot is refused instead of audited as a host that
 * lacks those files. */

#include <stddef.h>

#include "root.h"

#define SNAPSHOT_MANIFEST "vfiod-snapshot.manifest"

struct snapshot_stats {
        size_t files, links, dirs;
        size_t bytes;    /* file contents */
        char **warnings; /* files that exist but could not be read, NULL-terminated */
        size_t n_warnings;
};

void snapshot_stats_done(struct snapshot_stats *s);

/* Captures the root into the archive at out_path ("-" for standard output); the format
 * is tar (pax), compressed when the name ends in .gz, .tgz, .xz or .zst. The file appears
 * under its name only when complete. -errno with a human-readable reason in *ret_detail. */
int snapshot_write(const struct root *root, const char *out_path, struct snapshot_stats *ret_stats,
                   char **ret_detail);

struct snapshot {
        char *path;     /* as given */
        char *dir;      /* the directory holding sys/ and proc/ */
        bool temporary; /* dir was extracted here and goes away with the snapshot */
        char *created;  /* from the manifest: ISO 8601 UTC */
        char *kernel;   /* from the manifest: the kernel's version line, or NULL */
        size_t n_entries;
};

/* Opens path as a snapshot: an archive (extracted below tmpdir, NULL for $TMPDIR or
 * /tmp) or a directory with a manifest. -ENOMSG for a directory without a manifest (an
 * ordinary root, not a snapshot). -EBADMSG for a damaged or truncated archive or
 * manifest, -EUCLEAN when entries the manifest lists are missing or differ; *ret_detail
 * says which. */
int snapshot_open(const char *path, const char *tmpdir, struct snapshot **ret, char **ret_detail);

/* Removes a temporary extraction. Accepts NULL; returns NULL. */
struct snapshot *snapshot_free(struct snapshot *s);

static inline void snapshot_freep(struct snapshot **s)
{
        snapshot_free(*s);
}
