/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Capture: the files below a root that the topology scan and the audit read, taken into
 * memory as a list of entries. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fd-util.h"
#include "macro.h"
#include "snapshot-internal.h"
#include "strv.h"

struct capture {
        const struct root *root;
        struct snapshot_entry *e;
        size_t n, cap;
        struct snapshot_stats *stats;
};

static void entries_free(struct snapshot_entry *e, size_t n)
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
                struct snapshot_entry *ne = realloc(c->e, ncap * sizeof(*ne));
                if (!ne) {
                        free(data);
                        return -ENOMEM;
                }
                c->e = ne;
                c->cap = ncap;
        }
        c->e[c->n] = (struct snapshot_entry){
                .type = type, .path = strdup(path), .data = data, .size = size};
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
                                                 "proc/iomem",   "proc/self/mountinfo",
                                                 "proc/swaps",   "proc/version"};
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
        return strcmp(((const struct snapshot_entry *)a)->path,
                      ((const struct snapshot_entry *)b)->path);
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

int snapshot_capture(const struct root *root, struct snapshot_stats *stats,
                     struct snapshot_entries *ret)
{
        struct capture c = {.root = root, .stats = stats};
        int r = capture_all(&c);

        if (r < 0) {
                entries_free(c.e, c.n);
                return r;
        }
        entries_sort_unique(&c);
        *ret = (struct snapshot_entries){.e = c.e, .n = c.n};
        return 0;
}

void snapshot_entries_done(struct snapshot_entries *l)
{
        entries_free(l->e, l->n);
        *l = (struct snapshot_entries){0};
}
