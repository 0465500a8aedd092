/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The parts of a snapshot, shared by its files and nothing else: capture (what is read
 * below a root), the manifest (written first into the archive, checked on opening) and the
 * archive itself (the tar writer and the extractor). */

#include <stddef.h>
#include <time.h>

#include "snapshot.h"

/* Bounds for what an archive may make us write: a snapshot of a host with thousands of
 * functions is a few tens of megabytes. */
#define SNAPSHOT_MAX_FILE    (64u << 20)
#define SNAPSHOT_MAX_TOTAL   (1024ull << 20)
#define SNAPSHOT_MAX_ENTRIES 4000000u

struct snapshot_entry {
        char type; /* 'f' file, 'l' symbolic link, 'd' directory */
        char *path;
        char *data; /* file content or link target */
        size_t size;
};

/* What a capture took, sorted by path, each path once. */
struct snapshot_entries {
        struct snapshot_entry *e;
        size_t n;
};

void snapshot_entries_done(struct snapshot_entries *l);

/* Reads below root what the topology scan and the audit read (snapshot-capture.c); files
 * that exist but cannot be read become warnings in stats. Only -ENOMEM fails it. */
int snapshot_capture(const struct root *root, struct snapshot_stats *stats,
                     struct snapshot_entries *ret);

/* The manifest of l, captured from source (snapshot-manifest.c). */
int snapshot_manifest_build(const struct snapshot_entries *l, const char *source, char **ret,
                            size_t *ret_len);

/* Reads s->dir's manifest into s and checks every entry it lists: -EBADMSG for a damaged
 * manifest, -EUCLEAN when entries are missing or differ, with *ret_detail saying which. */
int snapshot_manifest_validate(struct snapshot *s, char **ret_detail);

/* Writes the manifest and then l as a tar archive to out_path ("-": standard output),
 * every member dated mtime (snapshot-archive.c). The file appears under its name only
 * when complete. */
int snapshot_archive_write(const char *out_path, const char *manifest, size_t manifest_len,
                           const struct snapshot_entries *l, time_t mtime, char **ret_detail);

/* Extracts the archive into dir, refusing what a snapshot never holds (unsafe names, hard
 * links, devices, oversized members); *ret_members counts the members read, also on
 * failure. -EBADMSG for a damaged archive, -EFBIG beyond the bounds. */
int snapshot_archive_extract(const char *archive_path, const char *dir, size_t *ret_members,
                             char **ret_detail);
