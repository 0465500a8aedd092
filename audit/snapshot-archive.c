/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The archive: a snapshot as a tar file (pax, compressed by its name's suffix) through
 * libarchive loaded at run time, written in one pass and extracted with every member
 * checked, since an archive may come from anywhere. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive-dlopen.h"
#include "detail.h"
#include "macro.h"
#include "snapshot-internal.h"

/* ---- the tar writer --------------------------------------------------------------- */

static bool has_suffix(const char *s, const char *suffix)
{
        size_t a = strlen(s), b = strlen(suffix);
        return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int archive_add(struct archive *a, char type, const char *path, const char *data,
                       size_t size, time_t mtime)
{
        struct archive_entry *e = sym_archive_entry_new();
        int k;

        if (!e)
                return -ENOMEM;
        sym_archive_entry_set_pathname(e, path);
        sym_archive_entry_set_mtime(e, mtime, 0);
        switch (type) {
        case 'd':
                sym_archive_entry_set_filetype(e, AE_IFDIR);
                sym_archive_entry_set_perm(e, 0755);
                break;
        case 'l':
                sym_archive_entry_set_filetype(e, AE_IFLNK);
                sym_archive_entry_set_perm(e, 0777);
                sym_archive_entry_set_symlink(e, data);
                break;
        default:
                sym_archive_entry_set_filetype(e, AE_IFREG);
                sym_archive_entry_set_perm(e, 0644);
                sym_archive_entry_set_size(e, (la_int64_t)size);
        }
        k = sym_archive_write_header(a, e);
        if (k == ARCHIVE_OK && type == 'f' && size > 0 &&
            sym_archive_write_data(a, data, size) != (la_ssize_t)size)
                k = ARCHIVE_FATAL;
        sym_archive_entry_free(e);
        return k == ARCHIVE_OK ? 0 : -EIO;
}

int snapshot_archive_write(const char *out_path, const char *manifest, size_t manifest_len,
                           const struct snapshot_entries *l, time_t mtime, char **ret_detail)
{
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct archive *a = NULL;
        bool to_stdout = strcmp(out_path, "-") == 0;
        int r;

        if (to_stdout)
                fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
        else {
                /* Written next to the destination and renamed over it when complete. */
                if (asprintf(&tmp, "%s.XXXXXX", out_path) < 0) {
                        tmp = NULL;
                        return -ENOMEM;
                }
                fd = mkostemp(tmp, O_CLOEXEC);
        }
        if (fd < 0) {
                r = negative_errno();
                return detail_errno(ret_detail, r, "cannot create %s: %s",
                                    to_stdout ? "output" : out_path, strerror(-r));
        }
        a = sym_archive_write_new();
        if (!a) {
                r = -ENOMEM;
                goto out;
        }
        sym_archive_write_set_format_pax_restricted(a);
        if (!to_stdout && (has_suffix(out_path, ".gz") || has_suffix(out_path, ".tgz")))
                sym_archive_write_add_filter_gzip(a);
        else if (!to_stdout && has_suffix(out_path, ".xz"))
                sym_archive_write_add_filter_xz(a);
        else if (!to_stdout && has_suffix(out_path, ".zst"))
                sym_archive_write_add_filter_zstd(a);
        if (sym_archive_write_open_fd(a, fd) != ARCHIVE_OK) {
                r = detail_errno(ret_detail, -EIO, "cannot start the archive: %s",
                                 sym_archive_error_string(a));
                goto out;
        }
        /* The manifest first: a truncated archive still says what it should have held. */
        r = archive_add(a, 'f', SNAPSHOT_MANIFEST, manifest, manifest_len, mtime);
        for (size_t i = 0; r >= 0 && i < l->n; i++)
                r = archive_add(a, l->e[i].type, l->e[i].path, l->e[i].data, l->e[i].size, mtime);
        if (r >= 0 && sym_archive_write_close(a) != ARCHIVE_OK)
                r = -EIO;
        if (r < 0) {
                r = detail_errno(
                        ret_detail, r, "cannot write %s: %s", to_stdout ? "the archive" : out_path,
                        sym_archive_error_string(a) ? sym_archive_error_string(a) : strerror(-r));
                goto out;
        }
        if (!to_stdout) {
                if (fsync(fd) < 0 || rename(tmp, out_path) < 0) {
                        r = negative_errno();
                        r = detail_errno(ret_detail, r, "cannot write %s: %s", out_path,
                                         strerror(-r));
                        goto out;
                }
                free(tmp);
                tmp = NULL;
        }
        r = 0;
out:
        if (a)
                sym_archive_write_free(a);
        if (tmp)
                (void)unlink(tmp);
        return r;
}

/* ---- the extractor ---------------------------------------------------------------- */

/* The directory holding relpath's last component (created as needed) and that component;
 * *ret_fd is not to be closed when it is the root's own. */
static int parent_of(const struct root *r, const char *relpath, int *ret_fd, bool *ret_own,
                     const char **ret_base)
{
        const char *slash = strrchr(relpath, '/');
        _cleanup_free_ char *dir = NULL;
        int fd;

        if (!slash) {
                *ret_fd = r->fd;
                *ret_own = false;
                *ret_base = relpath;
                return 0;
        }
        dir = strndup(relpath, (size_t)(slash - relpath));
        if (!dir)
                return -ENOMEM;
        fd = root_mkdir_p(r, dir);
        if (fd < 0)
                return fd;
        *ret_fd = fd;
        *ret_own = true;
        *ret_base = slash + 1;
        return 0;
}

static int extract_member(struct archive *a, struct archive_entry *e, const struct root *r,
                          const char *name, size_t *total, char **ret_detail)
{
        const char *base;
        bool own = false;
        int dfd = -EBADF, k = 0;
        mode_t type = sym_archive_entry_filetype(e);

        if (sym_archive_entry_hardlink(e)) {
                return detail_errno(ret_detail, -EBADMSG,
                                    "member %s is a hard link, which snapshots never hold", name);
        }
        if (type == AE_IFDIR) {
                int fd = root_mkdir_p(r, name);
                if (fd < 0) {
                        return detail_errno(ret_detail, fd, "cannot create directory %s: %s", name,
                                            strerror(-fd));
                }
                close(fd);
                return 0;
        }
        if (type != AE_IFREG && type != AE_IFLNK) {
                return detail_errno(ret_detail, -EBADMSG,
                                    "member %s is neither a file, a directory nor a link", name);
        }
        k = parent_of(r, name, &dfd, &own, &base);
        if (k < 0) {
                return detail_errno(ret_detail, k, "cannot create the directory of %s: %s", name,
                                    strerror(-k));
        }
        if (type == AE_IFLNK) {
                const char *target = sym_archive_entry_symlink(e);
                if (!target || symlinkat(target, dfd, base) < 0)
                        k = target ? negative_errno() : -EBADMSG;
        } else {
                la_int64_t size = sym_archive_entry_size(e);
                _cleanup_close_ int fd = -EBADF;
                char buf[16384];

                if (size < 0 || (uint64_t)size > SNAPSHOT_MAX_FILE ||
                    *total + (uint64_t)size > SNAPSHOT_MAX_TOTAL) {
                        k = detail_errno(ret_detail, -EFBIG,
                                         "member %s is too large for a snapshot", name);
                        goto done;
                }
                *total += (size_t)size;
                fd = openat(dfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
                if (fd < 0) {
                        k = negative_errno();
                        goto done;
                }
                for (;;) {
                        la_ssize_t n = sym_archive_read_data(a, buf, sizeof(buf));
                        if (n == 0)
                                break;
                        if (n < 0) {
                                k = detail_errno(ret_detail, -EBADMSG,
                                                 "damaged or truncated at %s: %s", name,
                                                 sym_archive_error_string(a));
                                goto done;
                        }
                        for (la_ssize_t off = 0; off < n;) {
                                ssize_t w = write(fd, buf + off, (size_t)(n - off));
                                if (w < 0) {
                                        k = negative_errno();
                                        goto done;
                                }
                                off += w;
                        }
                }
        }
done:
        if (k == -EEXIST)
                detail_errno(ret_detail, k, "member %s appears twice", name);
        else if (k < 0 && k != -EBADMSG && k != -EFBIG)
                detail_errno(ret_detail, k, "cannot extract %s: %s", name, strerror(-k));
        if (own)
                close(dfd);
        return k == -EEXIST ? -EBADMSG : k;
}

int snapshot_archive_extract(const char *archive_path, const char *dir, size_t *ret_members,
                             char **ret_detail)
{
        _cleanup_(root_freep) struct root *r = NULL;
        struct archive *a;
        struct archive_entry *e;
        size_t n = 0, total = 0;
        int k;

        *ret_members = 0;
        k = archive_dlopen(ret_detail);
        if (k < 0)
                return k;
        a = sym_archive_read_new();
        if (!a)
                return -ENOMEM;
        sym_archive_read_support_filter_all(a);
        sym_archive_read_support_format_tar(a);
        k = root_open(dir, &r);
        if (k < 0) {
                detail_errno(ret_detail, k, "cannot open %s: %s", dir, strerror(-k));
                goto out;
        }
        if (sym_archive_read_open_filename(a, archive_path, 64 * 1024) != ARCHIVE_OK) {
                k = detail_errno(ret_detail, -EBADMSG, "not a readable tar archive: %s",
                                 sym_archive_error_string(a));
                goto out;
        }
        for (;;) {
                const char *name;

                k = sym_archive_read_next_header(a, &e);
                if (k == ARCHIVE_EOF)
                        break;
                if (k < ARCHIVE_WARN) {
                        k = detail_errno(ret_detail, -EBADMSG,
                                         "damaged or truncated archive after %zu members: %s", n,
                                         sym_archive_error_string(a));
                        goto out;
                }
                if (++n > SNAPSHOT_MAX_ENTRIES) {
                        k = detail_errno(ret_detail, -EFBIG, "more than %u members",
                                         SNAPSHOT_MAX_ENTRIES);
                        goto out;
                }
                name = sym_archive_entry_pathname(e);
                while (name && name[0] == '.' && name[1] == '/')
                        name += 2;
                if (name && (strcmp(name, ".") == 0 || strcmp(name, "") == 0))
                        continue;
                if (!name || !path_is_safe_relative(name)) {
                        /* path_is_safe_relative refuses a trailing slash that tar writes
                         * for directories: accept that one. */
                        _cleanup_free_ char *trimmed = name ? strdup(name) : NULL;
                        size_t len = trimmed ? strlen(trimmed) : 0;
                        while (len > 0 && trimmed[len - 1] == '/')
                                trimmed[--len] = '\0';
                        if (!trimmed || !path_is_safe_relative(trimmed) ||
                            sym_archive_entry_filetype(e) != AE_IFDIR) {
                                k = detail_errno(ret_detail, -EBADMSG,
                                                 "member name '%.200s' is not a safe "
                                                 "relative path",
                                                 name ? name : "(null)");
                                goto out;
                        }
                        k = extract_member(a, e, r, trimmed, &total, ret_detail);
                } else
                        k = extract_member(a, e, r, name, &total, ret_detail);
                if (k < 0)
                        goto out;
        }
        k = 0;
out:
        *ret_members = n;
        sym_archive_read_free(a);
        return k;
}
