/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Snapshots: capture below a root into a tar archive with a manifest, and opening one for
 * an offline audit. The parts are in snapshot-capture.c, snapshot-manifest.c and
 * snapshot-archive.c. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive-dlopen.h"
#include "detail.h"
#include "fd-util.h"
#include "macro.h"
#include "snapshot-internal.h"
#include "strv.h"

void snapshot_stats_done(struct snapshot_stats *s)
{
        strv_free(s->warnings);
        s->warnings = NULL;
        s->n_warnings = 0;
}

int snapshot_write(const struct root *root, const char *out_path, struct snapshot_stats *ret_stats,
                   char **ret_detail)
{
        struct snapshot_stats stats = {0};
        struct snapshot_entries l = {0};
        _cleanup_free_ char *manifest = NULL;
        size_t manifest_len = 0;
        time_t now = time(NULL);
        int r;

        r = archive_dlopen(ret_detail);
        if (r < 0)
                return r;
        r = snapshot_capture(root, &stats, &l);
        if (r >= 0 && l.n == 0)
                r = detail_errno(ret_detail, -ENOENT,
                                 "%s holds none of the files a snapshot takes (sys/, proc/)",
                                 root->path);
        for (size_t i = 0; r >= 0 && i < l.n; i++) {
                stats.files += l.e[i].type == 'f';
                stats.links += l.e[i].type == 'l';
                stats.dirs += l.e[i].type == 'd';
                stats.bytes += l.e[i].size;
        }
        if (r >= 0)
                r = snapshot_manifest_build(&l, root->path, &manifest, &manifest_len);
        if (r >= 0)
                r = snapshot_archive_write(out_path, manifest, manifest_len, &l, now, ret_detail);
        if (r >= 0 && ret_stats) {
                *ret_stats = stats;
                stats = (struct snapshot_stats){0};
        }
        snapshot_entries_done(&l);
        snapshot_stats_done(&stats);
        return r < 0 ? r : 0;
}

/* ---- opening --------------------------------------------------------------------- */

struct snapshot *snapshot_free(struct snapshot *s)
{
        if (!s)
                return NULL;
        if (s->temporary && s->dir)
                (void)rm_rf_at(AT_FDCWD, s->dir);
        free(s->path);
        free(s->dir);
        free(s->created);
        free(s->kernel);
        free(s);
        return NULL;
}

int snapshot_open(const char *path, const char *tmpdir, struct snapshot **ret, char **ret_detail)
{
        _cleanup_(snapshot_freep) struct snapshot *s = calloc(1, sizeof(*s));
        struct stat st;
        size_t members = 0;
        int k;

        if (!s)
                return -ENOMEM;
        s->path = strdup(path);
        if (!s->path)
                return -ENOMEM;
        if (stat(path, &st) < 0) {
                k = negative_errno();
                return detail_errno(ret_detail, k, "%s", strerror(-k));
        }
        if (S_ISDIR(st.st_mode)) {
                char manifest[PATH_MAX];
                snprintf(manifest, sizeof(manifest), "%s/%s", path, SNAPSHOT_MANIFEST);
                if (access(manifest, F_OK) < 0)
                        return -ENOMSG;
                s->dir = strdup(path);
                if (!s->dir)
                        return -ENOMEM;
        } else if (S_ISREG(st.st_mode)) {
                if (!tmpdir)
                        tmpdir = getenv("TMPDIR");
                if (!tmpdir || !*tmpdir)
                        tmpdir = "/tmp";
                if (asprintf(&s->dir, "%s/vfiod-snapshot.XXXXXX", tmpdir) < 0) {
                        s->dir = NULL;
                        return -ENOMEM;
                }
                if (!mkdtemp(s->dir)) {
                        k = negative_errno();
                        return detail_errno(ret_detail, k,
                                            "cannot create a directory below %s to extract "
                                            "into: %s",
                                            tmpdir, strerror(-k));
                }
                s->temporary = true;
                k = snapshot_archive_extract(path, s->dir, &members, ret_detail);
                if (k < 0)
                        return k;
        } else {
                return detail_errno(ret_detail, -EINVAL, "neither a directory nor an archive");
        }
        k = snapshot_manifest_validate(s, ret_detail);
        /* An archive cut at a member boundary reads as a shorter archive: only the
         * manifest (the first member) tells how many should follow it. */
        if (k == -EUCLEAN && s->temporary && members < s->n_entries + 1) {
                return detail_errno(ret_detail, -EBADMSG,
                                    "truncated: the archive ends after %zu of the %zu members its "
                                    "manifest announces",
                                    members, s->n_entries + 1);
        }
        if (k < 0)
                return k;
        *ret = TAKE_PTR(s);
        return 0;
}
