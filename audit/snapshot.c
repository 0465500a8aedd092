/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Snapshots: capture below a root into a tar archive with a manifest, and extraction
 * and validation for offline audits. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
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
#include "snapshot.h"
#include "strv.h"

/* Bounds for what an archive may make us write: a snapshot of a host with thousands of
 * functions is a few tens of megabytes. */
#define SNAPSHOT_MAX_FILE    (64u << 20)
#define SNAPSHOT_MAX_TOTAL   (1024ull << 20)
#define SNAPSHOT_MAX_ENTRIES 4000000u

struct entry {
        char type; /* 'f' file, 'l' symbolic link, 'd' directory */
        char *path;
        char *data; /* file content or link target */
        size_t size;
};

struct capture {
        const struct root *root;
        struct entry *e;
        size_t n, cap;
        struct snapshot_stats *stats;
};

void snapshot_stats_done(struct snapshot_stats *s)
{
        strv_free(s->warnings);
        s->warnings = NULL;
        s->n_warnings = 0;
}

static void entries_free(struct entry *e, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(e[i].path);
                free(e[i].data);
        }
        free(e);
}

/* Takes data. */
static int capture_push(struct capture *c, char type, const char *path, char *data, size_t size)
{
        if (c->n == c->cap) {
                size_t ncap = c->cap ? c->cap * 2 : 1024;
                struct entry *ne = realloc(c->e, ncap * sizeof(*ne));
                if (!ne) {
                        free(data);
                        return -ENOMEM;
                }
                c->e = ne;
                c->cap = ncap;
        }
        c->e[c->n] = (struct entry){.type = type, .path = strdup(path), .data = data, .size = size};
        if (!c->e[c->n].path) {
                free(data);
                return -ENOMEM;
        }
        c->n++;
        return 0;
}

static int capture_warn(struct capture *c, int error, const char *path)
{
        return strv_pushf(&c->stats->warnings, &c->stats->n_warnings, "%s: %s", path,
                          strerror(-error));
}

/* A file that may be absent (not every device has every attribute). */
static int capture_file(struct capture *c, const char *path)
{
        char *buf = NULL;
        size_t len = 0;
        int r = root_read_file(c->root, path, SNAPSHOT_MAX_FILE, &buf, &len);

        if (r == -ENOENT || r == -ENOTDIR)
                return 0;
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return capture_warn(c, r, path);
        return capture_push(c, 'f', path, buf, len);
}

static int capture_filef(struct capture *c, const char *fmt, ...) _printf_(2, 3);
static int capture_filef(struct capture *c, const char *fmt, ...)
{
        _cleanup_free_ char *path = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&path, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        return capture_file(c, path);
}

/* A write-only attribute whose existence is what counts ("reset"). */
static int capture_presence(struct capture *c, const char *dir, const char *name)
{
        _cleanup_free_ char *path = NULL;
        int fd;

        if (asprintf(&path, "%s/%s", dir, name) < 0)
                return -ENOMEM;
        fd = root_openat(c->root, path, O_PATH | O_NOFOLLOW);
        if (fd < 0)
                return 0;
        close(fd);
        return capture_push(c, 'f', path, NULL, 0);
}

static int capture_dir(struct capture *c, const char *path)
{
        int fd = root_openat(c->root, path, O_PATH | O_DIRECTORY);

        if (fd < 0)
                return 0;
        close(fd);
        return capture_push(c, 'd', path, NULL, 0);
}

/* The link dir/name, and (if ret_resolved) the root-relative path it points to. */
static int capture_link(struct capture *c, const char *dir, const char *name, char **ret_resolved)
{
        _cleanup_close_ int fd = root_openat(c->root, dir, O_PATH | O_DIRECTORY);
        _cleanup_free_ char *target = NULL, *path = NULL;
        int r;

        if (ret_resolved)
                *ret_resolved = NULL;
        if (fd < 0)
                return 0;
        r = dir_readlink(fd, name, &target);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return 0;
        if (asprintf(&path, "%s/%s", dir, name) < 0)
                return -ENOMEM;
        if (ret_resolved) {
                r = path_resolve_link(dir, target, ret_resolved);
                if (r < 0)
                        return r;
        }
        return capture_push(c, 'l', path, TAKE_PTR(target), 0);
}

/* dir/name as it is: a file, a link or a directory (a damaged tree can have any of them
 * where sysfs has one), and for a link the path it points to (if ret_resolved). */
static int capture_entry(struct capture *c, const char *dir, const char *name, char **ret_resolved)
{
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        if (ret_resolved)
                *ret_resolved = NULL;
        if (asprintf(&path, "%s/%s", dir, name) < 0)
                return -ENOMEM;
        fd = root_openat(c->root, path, O_PATH | O_NOFOLLOW);
        if (fd < 0 || fstat(fd, &st) < 0)
                return 0;
        if (S_ISLNK(st.st_mode))
                return capture_link(c, dir, name, ret_resolved);
        if (S_ISDIR(st.st_mode))
                return capture_push(c, 'd', path, NULL, 0);
        return capture_file(c, path);
}

typedef int (*link_fn)(struct capture *c, const char *resolved, const char *name);

/* Every symbolic link in dir (whose name starts with prefix, if given), the directory
 * itself so that an empty one survives, and fn on each link's target. */
static int capture_links_in(struct capture *c, const char *dir, const char *prefix, link_fn fn)
{
        _cleanup_closedir_ DIR *d = NULL;
        int r = root_opendir(c->root, dir, &d);

        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return 0;
        r = capture_push(c, 'd', dir, NULL, 0);
        if (r < 0)
                return r;
        FOREACH_DIRENT (de, d) {
                _cleanup_free_ char *resolved = NULL;

                if (de->d_name[0] == '.' ||
                    (prefix && strncmp(de->d_name, prefix, strlen(prefix)) != 0))
                        continue;
                if (de->d_type != DT_LNK && de->d_type != DT_UNKNOWN)
                        continue;
                r = capture_link(c, dir, de->d_name, fn ? &resolved : NULL);
                if (r >= 0 && fn && resolved)
                        r = fn(c, resolved, de->d_name);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Every regular file in dir (module parameters). */
static int capture_files_in(struct capture *c, const char *dir)
{
        _cleanup_closedir_ DIR *d = NULL;
        int r = root_opendir(c->root, dir, &d);

        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return 0;
        FOREACH_DIRENT (de, d)
                if (de->d_name[0] != '.' && (de->d_type == DT_REG || de->d_type == DT_UNKNOWN)) {
                        r = capture_filef(c, "%s/%s", dir, de->d_name);
                        if (r < 0)
                                return r;
                }
        return 0;
}

/* What the topology scan and the audit read of each PCI function. */
static const char *const device_files[] = {
        "vendor",          "device",         "subsystem_vendor", "subsystem_device", "class",
        "revision",        "config",         "driver_override",  "numa_node",        "reset_method",
        "boot_vga",        "sriov_totalvfs", "sriov_numvfs",     "sriov_offset",     "sriov_stride",
        "sriov_vf_device", "removable",
};
static const char *const device_links[] = {"iommu_group", "iommu", "physfn"};

static int capture_device(struct capture *c, const char *dir, const char *name)
{
        _cleanup_free_ char *driver = NULL;
        int r;

        r = capture_push(c, 'd', dir, NULL, 0);
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(device_files); i++)
                r = capture_entry(c, dir, device_files[i], NULL);
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(device_links); i++)
                r = capture_entry(c, dir, device_links[i], NULL);
        if (r >= 0)
                r = capture_presence(c, dir, "reset");
        /* The driver's directory must exist too: the scan does not believe a driver link
         * that dangles. */
        if (r >= 0)
                r = capture_entry(c, dir, "driver", &driver);
        if (r >= 0 && driver)
                r = capture_dir(c, driver);
        if (r >= 0) {
                /* The VF links, without a directory entry of their own. */
                _cleanup_closedir_ DIR *d = NULL;
                if (root_opendir(c->root, dir, &d) >= 0) {
                        FOREACH_DIRENT (de, d)
                                if (strncmp(de->d_name, "virtfn", 6) == 0) {
                                        r = capture_link(c, dir, de->d_name, NULL);
                                        if (r < 0)
                                                break;
                                }
                }
        }
        return r;
}

static int capture_unit(struct capture *c, const char *dir, const char *name)
{
        static const char *const files[] = {"intel-iommu/cap", "intel-iommu/ecap",
                                            "intel-iommu/version", "amd-iommu/cap",
                                            "amd-iommu/features"};
        _cleanup_free_ char *devices = NULL;
        int r = 0;

        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(files); i++)
                r = capture_filef(c, "%s/%s", dir, files[i]);
        if (r < 0)
                return r;
        if (asprintf(&devices, "%s/devices", dir) < 0)
                return -ENOMEM;
        return capture_links_in(c, devices, NULL, NULL);
}

static int capture_netdev(struct capture *c, const char *dir, const char *name)
{
        int r = capture_filef(c, "%s/flags", dir);
        return r < 0 ? r : capture_filef(c, "%s/operstate", dir);
}

static int capture_blockdev(struct capture *c, const char *dir, const char *name)
{
        _cleanup_free_ char *holders = NULL;
        int r = capture_filef(c, "%s/dev", dir);

        if (r < 0)
                return r;
        if (asprintf(&holders, "%s/holders", dir) < 0)
                return -ENOMEM;
        return capture_links_in(c, holders, NULL, NULL);
}

static int capture_thunderbolt(struct capture *c, const char *dir, const char *name)
{
        return capture_filef(c, "%s/iommu_dma_protection", dir);
}

static int capture_groups(struct capture *c)
{
        _cleanup_closedir_ DIR *d = NULL;
        int r = root_opendir(c->root, "sys/kernel/iommu_groups", &d);

        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return 0;
        r = capture_push(c, 'd', "sys/kernel/iommu_groups", NULL, 0);
        if (r < 0)
                return r;
        FOREACH_DIRENT (de, d) {
                _cleanup_free_ char *devices = NULL;

                if (!str_is_decimal(de->d_name))
                        continue;
                r = capture_filef(c, "sys/kernel/iommu_groups/%s/type", de->d_name);
                if (r >= 0 &&
                    asprintf(&devices, "sys/kernel/iommu_groups/%s/devices", de->d_name) < 0)
                        r = -ENOMEM;
                if (r >= 0)
                        r = capture_links_in(c, devices, NULL, NULL);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* vfio's safety switches and their neighbours. */
static const char *const modules[] = {
        "vfio", "vfio_iommu_type1", "vfio_pci", "vfio_pci_core", "iommufd",
        "kvm",  "kvm_intel",        "kvm_amd",
};

static int capture_all(struct capture *c)
{
        static const char *const proc_files[] = {"proc/cmdline", "proc/interrupts",
                                                 "proc/self/mountinfo", "proc/swaps",
                                                 "proc/version"};
        int r = 0;

        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(proc_files); i++)
                r = capture_file(c, proc_files[i]);
        if (r >= 0)
                r = capture_links_in(c, "sys/bus/pci/devices", NULL, capture_device);
        if (r >= 0)
                r = capture_groups(c);
        if (r >= 0)
                r = capture_links_in(c, "sys/class/iommu", NULL, capture_unit);
        if (r >= 0)
                r = capture_links_in(c, "sys/class/net", NULL, capture_netdev);
        if (r >= 0)
                r = capture_links_in(c, "sys/class/block", NULL, capture_blockdev);
        if (r >= 0)
                r = capture_links_in(c, "sys/bus/thunderbolt/devices", "domain",
                                     capture_thunderbolt);
        /* A loaded module may have no parameters: its directory alone says it is
         * there, and vfio's class says so for a built-in vfio. */
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(modules); i++) {
                char path[128];
                snprintf(path, sizeof(path), "sys/module/%s", modules[i]);
                r = capture_dir(c, path);
                snprintf(path, sizeof(path), "sys/module/%s/parameters", modules[i]);
                if (r >= 0)
                        r = capture_files_in(c, path);
        }
        if (r >= 0)
                r = capture_dir(c, "sys/class/vfio");
        return r;
}

static int entry_compare(const void *a, const void *b)
{
        return strcmp(((const struct entry *)a)->path, ((const struct entry *)b)->path);
}

/* Sorted, and each path once (a driver directory is reached from every device on it). */
static void entries_sort_unique(struct capture *c)
{
        size_t w = 0;

        if (c->n > 1)
                qsort(c->e, c->n, sizeof(*c->e), entry_compare);
        for (size_t i = 0; i < c->n; i++) {
                if (w > 0 && strcmp(c->e[w - 1].path, c->e[i].path) == 0) {
                        free(c->e[i].path);
                        free(c->e[i].data);
                        continue;
                }
                c->e[w++] = c->e[i];
        }
        c->n = w;
}

/* Manifest fields are words: bytes that are not printable ASCII, spaces and backslashes
 * are written as \xNN. */
static void put_escaped(FILE *f, const char *s, size_t len)
{
        for (size_t i = 0; i < len; i++) {
                unsigned char ch = (unsigned char)s[i];
                if (ch <= 0x20 || ch >= 0x7f || ch == '\\')
                        fprintf(f, "\\x%02x", ch);
                else
                        fputc(ch, f);
        }
}

static int manifest_build(const struct capture *c, const char *source, char **ret, size_t *ret_len)
{
        char *s = NULL, created[32];
        size_t len = 0;
        struct tm tm;
        time_t now = time(NULL);
        FILE *f = open_memstream(&s, &len);

        if (!f)
                return -ENOMEM;
        strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
        fprintf(f, "vfiod-snapshot 1\ncreated %s\n", created);
        for (size_t i = 0; i < c->n; i++)
                if (strcmp(c->e[i].path, "proc/version") == 0 && c->e[i].data) {
                        fputs("kernel ", f);
                        put_escaped(f, c->e[i].data, strcspn(c->e[i].data, "\n"));
                        fputc('\n', f);
                }
        fputs("source ", f);
        put_escaped(f, source, strlen(source));
        fprintf(f, "\nentries %zu\n", c->n);
        for (size_t i = 0; i < c->n; i++) {
                const struct entry *e = &c->e[i];
                if (e->type == 'f')
                        fprintf(f, "f %zu ", e->size);
                else
                        fprintf(f, "%c ", e->type);
                put_escaped(f, e->path, strlen(e->path));
                if (e->type == 'l') {
                        fputc(' ', f);
                        put_escaped(f, e->data, strlen(e->data));
                }
                fputc('\n', f);
        }
        fprintf(f, "end %zu\n", c->n);
        if (fclose(f) != 0 || !s) {
                free(s);
                return -ENOMEM;
        }
        *ret = s;
        *ret_len = len;
        return 0;
}

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

int snapshot_write(const struct root *root, const char *out_path, struct snapshot_stats *ret_stats,
                   char **ret_detail)
{
        struct snapshot_stats stats = {0};
        struct capture c = {.root = root, .stats = &stats};
        _cleanup_free_ char *manifest = NULL, *tmp = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct archive *a = NULL;
        bool to_stdout = strcmp(out_path, "-") == 0;
        size_t manifest_len = 0;
        time_t now = time(NULL);
        int r;

        r = archive_dlopen(ret_detail);
        if (r < 0)
                return r;
        r = capture_all(&c);
        if (r < 0)
                goto out;
        if (c.n == 0) {
                r = detail_errno(ret_detail, -ENOENT,
                                 "%s holds none of the files a snapshot takes (sys/, proc/)",
                                 root->path);
                goto out;
        }
        entries_sort_unique(&c);
        for (size_t i = 0; i < c.n; i++) {
                stats.files += c.e[i].type == 'f';
                stats.links += c.e[i].type == 'l';
                stats.dirs += c.e[i].type == 'd';
                stats.bytes += c.e[i].size;
        }
        r = manifest_build(&c, root->path, &manifest, &manifest_len);
        if (r < 0)
                goto out;

        if (to_stdout)
                fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
        else {
                /* Written next to the destination and renamed over it when complete. */
                if (asprintf(&tmp, "%s.XXXXXX", out_path) < 0) {
                        r = -ENOMEM;
                        goto out;
                }
                fd = mkostemp(tmp, O_CLOEXEC);
        }
        if (fd < 0) {
                r = negative_errno();
                detail_errno(ret_detail, r, "cannot create %s: %s", to_stdout ? "output" : out_path,
                             strerror(-r));
                free(tmp);
                tmp = NULL;
                goto out;
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
        r = archive_add(a, 'f', SNAPSHOT_MANIFEST, manifest, manifest_len, now);
        for (size_t i = 0; r >= 0 && i < c.n; i++)
                r = archive_add(a, c.e[i].type, c.e[i].path, c.e[i].data, c.e[i].size, now);
        if (r >= 0 && sym_archive_write_close(a) != ARCHIVE_OK)
                r = -EIO;
        if (r < 0) {
                detail_errno(
                        ret_detail, r, "cannot write %s: %s", to_stdout ? "the archive" : out_path,
                        sym_archive_error_string(a) ? sym_archive_error_string(a) : strerror(-r));
                goto out;
        }
        if (!to_stdout) {
                if (fsync(fd) < 0 || rename(tmp, out_path) < 0) {
                        r = negative_errno();
                        detail_errno(ret_detail, r, "cannot write %s: %s", out_path, strerror(-r));
                        goto out;
                }
                free(tmp);
                tmp = NULL;
        }
        if (ret_stats) {
                *ret_stats = stats;
                stats = (struct snapshot_stats){0};
        }
        r = 0;
out:
        if (a)
                sym_archive_write_free(a);
        if (tmp)
                (void)unlink(tmp);
        entries_free(c.e, c.n);
        snapshot_stats_done(&stats);
        return r;
}

/* --- Reading ---------------------------------------------------------------------- */

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

static int extract(const char *archive_path, const char *dir, size_t *ret_members,
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

static char *unescape(const char *s)
{
        char *out = malloc(strlen(s) + 1), *o = out;

        if (!out)
                return NULL;
        for (; *s; s++) {
                unsigned v;
                if (s[0] == '\\' && s[1] == 'x' && sscanf(s + 2, "%2x", &v) == 1 && v > 0) {
                        *o++ = (char)v;
                        s += 3;
                } else
                        *o++ = *s;
        }
        *o = '\0';
        return out;
}

/* Whether the entry is there as the manifest says; a reason when not. */
static const char *entry_check(const struct root *r, char type, const char *path, size_t size,
                               const char *target)
{
        _cleanup_close_ int fd = root_openat(r, path, O_PATH | O_NOFOLLOW);
        struct stat st;
        char buf[PATH_MAX];
        ssize_t n;

        if (fd < 0)
                return fd == -ENOENT ? "missing" : "unreadable";
        if (fstat(fd, &st) < 0)
                return "unreadable";
        switch (type) {
        case 'd':
                return S_ISDIR(st.st_mode) ? NULL : "not a directory";
        case 'l':
                if (!S_ISLNK(st.st_mode))
                        return "not a symbolic link";
                n = readlinkat(fd, "", buf, sizeof(buf) - 1);
                if (n < 0)
                        return "unreadable";
                buf[n] = '\0';
                return strcmp(buf, target) == 0 ? NULL : "points elsewhere";
        default:
                if (!S_ISREG(st.st_mode))
                        return "not a regular file";
                return (size_t)st.st_size == size ? NULL : "wrong size (truncated?)";
        }
}

static int validate(struct snapshot *s, char **ret_detail)
{
        _cleanup_(root_freep) struct root *r = NULL;
        _cleanup_free_ char *buf = NULL;
        _cleanup_free_ char *first = NULL;
        size_t declared = 0, seen = 0, bad = 0, end = SIZE_MAX;
        char *save = NULL;
        bool header = false;
        int k;

        k = root_open(s->dir, &r);
        if (k < 0) {
                return detail_errno(ret_detail, k, "cannot open %s: %s", s->dir, strerror(-k));
        }
        k = root_read_file(r, SNAPSHOT_MANIFEST, 256u << 20, &buf, NULL);
        if (k == -ENOENT) {
                return detail_errno(ret_detail, -EBADMSG,
                                    "no %s: not a vfioctl snapshot, or one that lost its "
                                    "first member",
                                    SNAPSHOT_MANIFEST);
        }
        if (k < 0) {
                return detail_errno(ret_detail, k, "cannot read %s: %s", SNAPSHOT_MANIFEST,
                                    strerror(-k));
        }
        for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char type = line[0], *rest = line + 2, *path, *target = NULL;
                _cleanup_free_ char *upath = NULL, *utarget = NULL;
                unsigned long long size = 0;
                const char *why;

                if (!header) {
                        if (strcmp(line, "vfiod-snapshot 1") != 0) {
                                return detail_errno(ret_detail, -EBADMSG,
                                                    "%s is not a version 1 snapshot manifest",
                                                    SNAPSHOT_MANIFEST);
                        }
                        header = true;
                        continue;
                }
                if (strncmp(line, "created ", 8) == 0) {
                        free(s->created);
                        s->created = unescape(line + 8);
                        continue;
                }
                if (strncmp(line, "kernel ", 7) == 0) {
                        free(s->kernel);
                        s->kernel = unescape(line + 7);
                        continue;
                }
                if (strncmp(line, "source ", 7) == 0)
                        continue;
                if (sscanf(line, "entries %zu", &declared) == 1)
                        continue;
                if (sscanf(line, "end %zu", &end) == 1)
                        break;
                if ((type != 'f' && type != 'l' && type != 'd') || line[1] != ' ') {
                        return detail_errno(ret_detail, -EBADMSG, "%s: unreadable line '%.80s'",
                                            SNAPSHOT_MANIFEST, line);
                }
                if (type == 'f') {
                        char *sp = strchr(rest, ' ');
                        if (!sp || sscanf(rest, "%llu", &size) != 1) {
                                return detail_errno(ret_detail, -EBADMSG,
                                                    "%s: unreadable line '%.80s'",
                                                    SNAPSHOT_MANIFEST, line);
                        }
                        rest = sp + 1;
                }
                path = rest;
                if (type == 'l') {
                        target = strchr(rest, ' ');
                        if (!target) {
                                return detail_errno(ret_detail, -EBADMSG,
                                                    "%s: unreadable line '%.80s'",
                                                    SNAPSHOT_MANIFEST, line);
                        }
                        *target++ = '\0';
                        utarget = unescape(target);
                }
                upath = unescape(path);
                if (!upath || (type == 'l' && !utarget))
                        return -ENOMEM;
                seen++;
                why = entry_check(r, type, upath, (size_t)size, utarget);
                if (why && bad++ == 0 && asprintf(&first, "%s: %s", upath, why) < 0)
                        return -ENOMEM;
        }
        if (!header || end == SIZE_MAX || end != seen || declared != seen) {
                return detail_errno(ret_detail, -EBADMSG,
                                    "%s is truncated or damaged (%zu of %zu entries, %s)",
                                    SNAPSHOT_MANIFEST, seen, declared,
                                    end == SIZE_MAX ? "no end line" : "counts disagree");
        }
        s->n_entries = seen;
        if (bad > 0) {
                return detail_errno(
                        ret_detail, -EUCLEAN,
                        "incomplete: %zu of the %zu entries its manifest lists are missing or "
                        "differ (first: %s)",
                        bad, seen, first);
        }
        return 0;
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
                k = extract(path, s->dir, &members, ret_detail);
                if (k < 0)
                        return k;
        } else {
                return detail_errno(ret_detail, -EINVAL, "neither a directory nor an archive");
        }
        k = validate(s, ret_detail);
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
