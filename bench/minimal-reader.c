/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Benchmark baseline, not a product: performs the same sysfs reads a topology scan does
 * (see iommu_groups/topology.c), with no parsing beyond what finding the next file
 * needs, no names and no output. The snapshot's cost over this is what vfiod adds.
 * Usage: minimal-reader ROOT */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char buf[4096];
static unsigned long long bytes;

/* One read, as the snapshot does for attributes: a sysfs attribute comes whole. */
static void slurp_at(int dirfd, const char *name)
{
        int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        ssize_t n;

        if (fd < 0)
                return;
        n = read(fd, buf, sizeof(buf));
        close(fd);
        if (n > 0)
                bytes += (unsigned long long)n;
}

static void link_at(int dirfd, const char *name)
{
        char target[PATH_MAX];
        ssize_t n = readlinkat(dirfd, name, target, sizeof(target));

        if (n > 0)
                bytes += (unsigned long long)n;
}

static void scan_links(int rootfd, const char *dir)
{
        int fd = openat(rootfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

        if (!d)
                return;
        for (struct dirent *de; (de = readdir(d));)
                if (de->d_name[0] != '.')
                        link_at(dirfd(d), de->d_name);
        closedir(d);
}

/* Whether config space lists an SR-IOV extended capability: the snapshot reads the
 * sriov_* files only for such functions. */
static int has_sriov(const unsigned char *c, ssize_t n)
{
        unsigned off = 0x100;

        for (int guard = 0; n >= 4096 && off >= 0x100 && off + 4 <= 4096 && guard < 960; guard++) {
                unsigned hdr =
                        c[off] | c[off + 1] << 8 | c[off + 2] << 16 | (unsigned)c[off + 3] << 24;
                if (hdr == 0 || hdr == 0xffffffff)
                        return 0;
                if ((hdr & 0xffff) == 0x0010)
                        return 1;
                off = (hdr >> 20) & 0xffc;
        }
        return 0;
}

int main(int argc, char **argv)
{
        /* Config space gives the ids; these are what it does not hold. */
        static const char *const attrs[] = {"driver_override", "numa_node", "reset_method"};
        static const char *const links[] = {"driver", "iommu_group", "iommu"};
        int rootfd, busfd;
        DIR *d;

        if (argc != 2) {
                fprintf(stderr, "usage: minimal-reader ROOT\n");
                return 2;
        }
        rootfd = open(argv[1], O_PATH | O_DIRECTORY | O_CLOEXEC);
        busfd = rootfd >= 0
                        ? openat(rootfd, "sys/bus/pci/devices", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                        : -1;
        d = busfd >= 0 ? fdopendir(busfd) : NULL;
        if (!d) {
                perror("minimal-reader");
                return 1;
        }
        for (struct dirent *de; (de = readdir(d));) {
                char target[PATH_MAX], path[PATH_MAX];
                ssize_t n;
                int devfd, cfg;
                const char *rel;

                if (de->d_name[0] == '.')
                        continue;
                n = readlinkat(dirfd(d), de->d_name, target, sizeof(target) - 1);
                if (n <= 0)
                        continue;
                target[n] = '\0';
                /* "../../../devices/..." relative to sys/bus/pci/devices */
                rel = strstr(target, "devices/");
                if (!rel)
                        continue;
                snprintf(path, sizeof(path), "sys/%s", rel);
                devfd = openat(rootfd, path, O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (devfd < 0)
                        continue;
                cfg = openat(devfd, "config", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                n = cfg >= 0 ? pread(cfg, buf, sizeof(buf), 0) : -1;
                if (cfg >= 0)
                        close(cfg);
                if (n > 0)
                        bytes += (unsigned long long)n;
                if (has_sriov((const unsigned char *)buf, n)) {
                        slurp_at(devfd, "sriov_totalvfs");
                        slurp_at(devfd, "sriov_numvfs");
                }
                for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++)
                        link_at(devfd, links[i]);
                for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++)
                        slurp_at(devfd, attrs[i]);
                close(devfd);
        }
        closedir(d);

        /* The group type files, and the class links that find interfaces and disks. */
        {
                int gfd = openat(rootfd, "sys/kernel/iommu_groups",
                                 O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                DIR *g = gfd >= 0 ? fdopendir(gfd) : NULL;
                for (struct dirent *de; g && (de = readdir(g));) {
                        char p[300];
                        if (de->d_name[0] == '.')
                                continue;
                        snprintf(p, sizeof(p), "%s/type", de->d_name);
                        slurp_at(dirfd(g), p);
                }
                if (g)
                        closedir(g);
        }
        scan_links(rootfd, "sys/class/net");
        scan_links(rootfd, "sys/class/block");
        scan_links(rootfd, "sys/class/iommu");
        printf("%llu\n", bytes);
        return 0;
}
