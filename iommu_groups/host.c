/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the host itself is doing with its devices (interfaces, disks, the console) and
 * the host-wide settings that decide whether assignment is safe. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fd-util.h"
#include "string-table.h"
#include "strv.h"
#include "topology-internal.h"

struct mount_entry {
        unsigned major, minor;
        char *mountpoint;
};

struct usage_ctx {
        struct mount_entry *mounts;
        size_t n_mounts;
        char **swaps; /* basenames of swap devices */
        size_t n_swaps;
        struct ifaddrs *ifaddrs;
        bool ifaddrs_known;
};

static void usage_ctx_done(struct usage_ctx *u)
{
        for (size_t i = 0; i < u->n_mounts; i++)
                free(u->mounts[i].mountpoint);
        free(u->mounts);
        strv_free(u->swaps);
        if (u->ifaddrs)
                freeifaddrs(u->ifaddrs);
}

/* mountinfo: "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw" */
static int load_mounts(struct scan_ctx *c, struct usage_ctx *u)
{
        _cleanup_free_ char *buf = NULL;
        char *save = NULL;
        int r = root_read_file(c->root, "proc/self/mountinfo", 16 << 20, &buf, NULL);

        if (r < 0)
                return r == -ENOMEM ? r : scan_warn(c, r, "cannot read proc/self/mountinfo");
        for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                unsigned maj, min;
                char mp[4096];
                struct mount_entry *nm;

                if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &maj, &min, mp) != 3)
                        continue;
                nm = realloc(u->mounts, (u->n_mounts + 1) * sizeof(*nm));
                if (!nm)
                        return -ENOMEM;
                u->mounts = nm;
                nm[u->n_mounts] =
                        (struct mount_entry){.major = maj, .minor = min, .mountpoint = strdup(mp)};
                if (!nm[u->n_mounts].mountpoint)
                        return -ENOMEM;
                u->n_mounts++;
        }
        return 0;
}

static int load_swaps(struct scan_ctx *c, struct usage_ctx *u)
{
        _cleanup_free_ char *buf = NULL;
        char *save = NULL;
        int r = root_read_file(c->root, "proc/swaps", 1 << 20, &buf, NULL);

        if (r < 0)
                return r == -ENOMEM ? r : 0; /* no swap support is no swap */
        for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char path[4096];
                const char *base;

                if (line[0] != '/' || sscanf(line, "%4095s", path) != 1)
                        continue;
                base = strrchr(path, '/') + 1;
                if (*base && strv_push(&u->swaps, &u->n_swaps, base) < 0)
                        return -ENOMEM;
        }
        return 0;
}

static bool is_link_local6(const struct in6_addr *a)
{
        return a->s6_addr[0] == 0xfe && (a->s6_addr[1] & 0xc0) == 0x80;
}

/* Routable addresses of one interface: link-local IPv6 is on every up interface and
 * says nothing about use. */
static int interface_addresses(struct usage_ctx *u, const char *ifname, char ***ret)
{
        char **l = NULL;
        size_t n = 0;

        for (struct ifaddrs *i = u->ifaddrs; i; i = i->ifa_next) {
                char buf[INET6_ADDRSTRLEN];
                unsigned prefix = 0;
                const void *addr;

                if (!i->ifa_addr || strcmp(i->ifa_name, ifname) != 0)
                        continue;
                if (i->ifa_addr->sa_family == AF_INET) {
                        addr = &((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr;
                        if (i->ifa_netmask)
                                prefix = (unsigned)__builtin_popcount(
                                        ((struct sockaddr_in *)(void *)i->ifa_netmask)
                                                ->sin_addr.s_addr);
                } else if (i->ifa_addr->sa_family == AF_INET6) {
                        const struct sockaddr_in6 *s6 = (void *)i->ifa_addr;
                        if (is_link_local6(&s6->sin6_addr))
                                continue;
                        addr = &s6->sin6_addr;
                        if (i->ifa_netmask)
                                for (int b = 0; b < 16; b++)
                                        prefix += (unsigned)__builtin_popcount(
                                                ((struct sockaddr_in6 *)(void *)i->ifa_netmask)
                                                        ->sin6_addr.s6_addr[b]);
                } else
                        continue;
                if (!inet_ntop(i->ifa_addr->sa_family, addr, buf, sizeof(buf)))
                        continue;
                if (strv_pushf(&l, &n, "%s/%u", buf, prefix) < 0) {
                        strv_free(l);
                        return -ENOMEM;
                }
        }
        *ret = l;
        return 0;
}

static int scan_netdevs(struct scan_ctx *c, struct usage_ctx *u)
{
        struct topology *t = c->t;
        _cleanup_closedir_ DIR *d = NULL;
        int r = scan_opendir(c, "sys/class/net", &d);

        if (r < 0 || !d)
                return r;
        FOREACH_DIRENT (de, d) {
                _cleanup_free_ char *target = NULL, *path = NULL, *flagpath = NULL;
                _cleanup_free_ char *flags = NULL;
                struct netdev_info *ni, *nn;
                struct pci_device *dev;
                int idx;

                if (de->d_name[0] == '.' || dir_readlink(dirfd(d), de->d_name, &target) < 0)
                        continue;
                r = path_resolve_link("sys/class/net", target, &path);
                if (r < 0)
                        break;
                idx = path_owning_pci_device(c, path);
                if (idx < 0)
                        continue;
                dev = &t->devices[idx];
                nn = realloc(dev->netdevs, (dev->n_netdevs + 1) * sizeof(*nn));
                if (!nn) {
                        r = -ENOMEM;
                        break;
                }
                dev->netdevs = nn;
                ni = &nn[dev->n_netdevs];
                *ni = (struct netdev_info){.name = strdup(de->d_name)};
                if (!ni->name) {
                        r = -ENOMEM;
                        break;
                }
                dev->n_netdevs++;
                if (asprintf(&flagpath, "%s/flags", path) < 0) {
                        r = -ENOMEM;
                        break;
                }
                if (root_read_line(c->root, flagpath, &flags) >= 0)
                        ni->up = strtoul(flags, NULL, 16) & IFF_UP;
                if (u->ifaddrs_known) {
                        r = interface_addresses(u, ni->name, &ni->addresses);
                        ni->addresses_known = r >= 0;
                        if (r < 0)
                                break;
                }
        }
        return r;
}

static int scan_blockdevs(struct scan_ctx *c, struct usage_ctx *u)
{
        struct topology *t = c->t;
        _cleanup_closedir_ DIR *d = NULL;
        int r = scan_opendir(c, "sys/class/block", &d);

        if (r < 0 || !d)
                return r;
        FOREACH_DIRENT (de, d) {
                _cleanup_free_ char *target = NULL, *path = NULL, *devnum = NULL;
                _cleanup_close_ int bfd = -EBADF;
                struct blockdev_info *bi, *nb;
                struct pci_device *dev;
                int idx;

                if (de->d_name[0] == '.' || dir_readlink(dirfd(d), de->d_name, &target) < 0)
                        continue;
                r = path_resolve_link("sys/class/block", target, &path);
                if (r < 0)
                        break;
                idx = path_owning_pci_device(c, path);
                if (idx < 0)
                        continue;
                dev = &t->devices[idx];
                nb = realloc(dev->blockdevs, (dev->n_blockdevs + 1) * sizeof(*nb));
                if (!nb) {
                        r = -ENOMEM;
                        break;
                }
                dev->blockdevs = nb;
                bi = &nb[dev->n_blockdevs];
                *bi = (struct blockdev_info){.name = strdup(de->d_name)};
                if (!bi->name) {
                        r = -ENOMEM;
                        break;
                }
                dev->n_blockdevs++;
                bfd = root_openat(c->root, path, O_PATH | O_DIRECTORY);
                if (bfd < 0)
                        continue;
                if (dir_read_line(bfd, "dev", &devnum) >= 0 &&
                    sscanf(devnum, "%u:%u", &bi->major, &bi->minor) == 2) {
                        for (size_t m = 0; m < u->n_mounts; m++)
                                if (u->mounts[m].major == bi->major &&
                                    u->mounts[m].minor == bi->minor) {
                                        bi->mounted = true;
                                        bi->mountpoint = strdup(u->mounts[m].mountpoint);
                                        if (!bi->mountpoint)
                                                r = -ENOMEM;
                                        break;
                                }
                }
                STRV_FOREACH (s, u->swaps)
                        if (strcmp(*s, bi->name) == 0)
                                bi->mounted = true;
                {
                        _cleanup_closedir_ DIR *h = NULL;
                        if (dir_stream_open_at(bfd, "holders", &h) >= 0) {
                                FOREACH_DIRENT (e, h)
                                        if (e->d_name[0] != '.')
                                                bi->held = true;
                        }
                }
                if (r < 0)
                        break;
        }
        return r;
}

/* The one-line reason the host is using the device, most serious first. */
static int judge_usage(struct pci_device *dev)
{
        for (size_t i = 0; i < dev->n_blockdevs; i++) {
                struct blockdev_info *b = &dev->blockdevs[i];
                if (b->mounted)
                        return asprintf(&dev->in_use, "%s is mounted on %s", b->name,
                                        b->mountpoint ? b->mountpoint : "swap") < 0
                                       ? -ENOMEM
                                       : 0;
        }
        for (size_t i = 0; i < dev->n_blockdevs; i++)
                if (dev->blockdevs[i].held)
                        return asprintf(&dev->in_use, "%s is held by another block device",
                                        dev->blockdevs[i].name) < 0
                                       ? -ENOMEM
                                       : 0;
        for (size_t i = 0; i < dev->n_netdevs; i++) {
                struct netdev_info *n = &dev->netdevs[i];
                if (!n->up)
                        continue;
                if (!n->addresses_known) /* offline tree: an up interface counts */
                        return asprintf(&dev->in_use, "interface %s is up", n->name) < 0 ? -ENOMEM
                                                                                         : 0;
                if (n->addresses && n->addresses[0])
                        return asprintf(&dev->in_use, "interface %s is up with %s%s", n->name,
                                        n->addresses[0], n->addresses[1] ? " and more" : "") < 0
                                       ? -ENOMEM
                                       : 0;
        }
        if (dev->boot_vga)
                return (dev->in_use = strdup("boot VGA device, drives the console")) ? 0 : -ENOMEM;
        return 0;
}

int scan_host_usage(struct scan_ctx *c)
{
        struct usage_ctx u = {0};
        int r;

        if (c->root->is_host && getifaddrs(&u.ifaddrs) == 0)
                u.ifaddrs_known = true;
        r = load_mounts(c, &u);
        if (r >= 0)
                r = load_swaps(c, &u);
        if (r >= 0)
                r = scan_netdevs(c, &u);
        if (r >= 0)
                r = scan_blockdevs(c, &u);
        for (size_t i = 0; r >= 0 && i < c->t->n_devices; i++)
                r = judge_usage(&c->t->devices[i]);
        usage_ctx_done(&u);
        return r;
}

static const char *const cmdline_prefixes[] = {
        "intel_iommu=", "amd_iommu=",         "iommu=", "iommu.",
        "intremap=",    "pcie_acs_override=", "vfio.",  "vfio_iommu_type1.",
        "vfio-pci.",    "vfio_pci.",          "pci=",   "efi=",
};

static enum tristate read_module_bool(struct scan_ctx *c, const char *path)
{
        _cleanup_free_ char *s = NULL;
        bool b;

        if (root_read_line(c->root, path, &s) < 0 || parse_boolean(s, &b) < 0)
                return TRI_UNKNOWN;
        return b ? TRI_YES : TRI_NO;
}

static int scan_cmdline(struct scan_ctx *c)
{
        struct host_facts *h = &c->t->host;
        _cleanup_free_ char *copy = NULL;
        char *save = NULL;
        size_t n = 0;
        int r = root_read_line(c->root, "proc/cmdline", &h->cmdline);

        if (r < 0)
                return r == -ENOMEM ? r : scan_warn(c, r, "cannot read proc/cmdline");
        copy = strdup(h->cmdline);
        if (!copy)
                return -ENOMEM;
        for (char *w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save))
                for (size_t i = 0; i < ELEMENTSOF(cmdline_prefixes); i++)
                        if (strncmp(w, cmdline_prefixes[i], strlen(cmdline_prefixes[i])) == 0) {
                                if (strv_push(&h->cmdline_flags, &n, w) < 0)
                                        return -ENOMEM;
                                break;
                        }
        return 0;
}

/* Remapped interrupt chips show as "IR-IO-APIC", "IR-PCI-MSI-..." in /proc/interrupts. */
static enum tristate interrupts_remapped(struct scan_ctx *c)
{
        _cleanup_free_ char *buf = NULL;

        if (c->t->n_units == 0)
                return TRI_NO;
        if (root_read_file(c->root, "proc/interrupts", 16 << 20, &buf, NULL) < 0)
                return TRI_UNKNOWN;
        return strstr(buf, " IR-") ? TRI_YES : TRI_NO;
}

int scan_host_facts(struct scan_ctx *c)
{
        struct topology *t = c->t;
        struct host_facts *h = &t->host;
        const char *best = NULL;
        size_t best_n = 0;
        int r;

        r = scan_cmdline(c);
        if (r < 0)
                return r;
        h->noiommu_mode =
                read_module_bool(c, "sys/module/vfio/parameters/enable_unsafe_noiommu_mode");
        h->allow_unsafe_interrupts = read_module_bool(
                c, "sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts");

        h->iommu_present = t->n_units > 0;
        h->ir_supported = h->posted_interrupts = t->n_units > 0 ? TRI_YES : TRI_NO;
        for (size_t i = 0; i < t->n_units; i++) {
                const struct iommu_unit *u = &t->units[i];
                bool known = u->kind == IOMMU_KIND_AMD_VI || (u->have_cap && u->have_ecap);
                if (u->kind == IOMMU_KIND_OTHER || !known) {
                        h->ir_supported = h->ir_supported == TRI_NO ? TRI_NO : TRI_UNKNOWN;
                        h->posted_interrupts =
                                h->posted_interrupts == TRI_NO ? TRI_NO : TRI_UNKNOWN;
                        continue;
                }
                if (!u->interrupt_remapping)
                        h->ir_supported = TRI_NO;
                if (!u->posted_interrupts)
                        h->posted_interrupts = TRI_NO;
        }
        h->ir_enabled = interrupts_remapped(c);

        /* The default domain type is what most groups have: groups of devices that a
         * driver or vfio took over read differently ("blocked", "unmanaged"). */
        for (size_t i = 0; i < t->n_groups; i++) {
                size_t n = 0;
                const char *ty = t->groups[i].type;
                if (!ty || strcmp(ty, "blocked") == 0 || strcmp(ty, "unmanaged") == 0)
                        continue;
                for (size_t k = 0; k < t->n_groups; k++)
                        n += t->groups[k].type && strcmp(t->groups[k].type, ty) == 0;
                if (n > best_n)
                        best = ty, best_n = n;
                if (best_n * 2 > t->n_groups)
                        break;
        }
        if (best && !(h->default_domain_type = strdup(best)))
                return -ENOMEM;

        if (!h->iommu_present)
                h->mode = h->noiommu_mode == TRI_YES ? IOMMU_MODE_NOIOMMU : IOMMU_MODE_NONE;
        else if (best && strcmp(best, "identity") == 0)
                h->mode = IOMMU_MODE_PASSTHROUGH;
        else
                h->mode = IOMMU_MODE_TRANSLATED;
        return 0;
}

static const char *const iommu_mode_table[] = {
        [IOMMU_MODE_NONE] = "none",
        [IOMMU_MODE_NOIOMMU] = "noiommu",
        [IOMMU_MODE_PASSTHROUGH] = "passthrough",
        [IOMMU_MODE_TRANSLATED] = "translated",
};

DEFINE_STRING_TABLE_TO_STRING_FALLBACK(iommu_mode, enum iommu_mode, "translated");
