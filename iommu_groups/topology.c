/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config-space.h"
#include "fd-util.h"
#include "string-table.h"
#include "strv.h"
#include "topology-internal.h"

static const char *const pcie_type_table[] = {
        [PCIE_TYPE_ENDPOINT] = "endpoint",
        [PCIE_TYPE_LEGACY_ENDPOINT] = "legacy-endpoint",
        [PCIE_TYPE_ROOT_PORT] = "root-port",
        [PCIE_TYPE_UPSTREAM] = "upstream-port",
        [PCIE_TYPE_DOWNSTREAM] = "downstream-port",
        [PCIE_TYPE_PCIE_TO_PCI] = "pcie-to-pci-bridge",
        [PCIE_TYPE_PCI_TO_PCIE] = "pci-to-pcie-bridge",
        [PCIE_TYPE_RC_INTEGRATED] = "rc-integrated-endpoint",
        [PCIE_TYPE_RC_EVENT_COLLECTOR] = "rc-event-collector",
        [PCIE_TYPE_NONE] = "pci",
};

/* PCIE_TYPE_UNKNOWN, and the device/port types the spec reserves, read "unknown". */
DEFINE_STRING_TABLE_TO_STRING_FALLBACK(pcie_type, enum pcie_type, "unknown");

int scan_warn(struct scan_ctx *c, int error, const char *fmt, ...)
{
        _cleanup_free_ char *msg = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        if (error < 0)
                r = strv_pushf(&c->t->warnings, &c->t->n_warnings, "%s: %s", msg, strerror(-error));
        else
                r = strv_push(&c->t->warnings, &c->t->n_warnings, msg);
        return r < 0 ? -ENOMEM : 0;
}

int scan_opendir(struct scan_ctx *c, const char *relpath, DIR **ret)
{
        int r = root_opendir(c->root, relpath, ret);

        if (r >= 0)
                return 0;
        *ret = NULL;
        if (r == -ENOMEM)
                return r;
        return r == -ENOENT ? 0 : scan_warn(c, r, "cannot list %s", relpath);
}

static int device_compare(const void *a, const void *b)
{
        return pci_addr_compare(&((const struct pci_device *)a)->addr,
                                &((const struct pci_device *)b)->addr);
}

int topology_index_of(const struct topology *t, const struct pci_addr *a)
{
        size_t lo = 0, hi = t->n_devices;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = pci_addr_compare(a, &t->devices[mid].addr);
                if (c == 0)
                        return (int)mid;
                if (c < 0)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return -1;
}

const struct pci_device *topology_find_device(const struct topology *t, const struct pci_addr *a)
{
        return topology_device(t, topology_index_of(t, a));
}

const struct iommu_group *topology_find_group(const struct topology *t, int id)
{
        size_t lo = 0, hi = t->n_groups;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (t->groups[mid].id == id)
                        return &t->groups[mid];
                if (id < t->groups[mid].id)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return NULL;
}

const struct iommu_unit *topology_find_unit(const struct topology *t, const char *name)
{
        for (size_t i = 0; i < t->n_units; i++)
                if (strcmp(t->units[i].name, name) == 0)
                        return &t->units[i];
        return NULL;
}

static int addr_compare(const void *a, const void *b)
{
        return pci_addr_compare(a, b);
}

bool scan_host_has_device(const struct scan_ctx *c, const struct pci_addr *a)
{
        if (!c->host_devices)
                return topology_index_of(c->t, a) >= 0;
        return bsearch(a, c->host_devices, c->n_host_devices, sizeof(*a), addr_compare);
}

/* The next component of *p that is a PCI address ("0000:00:02.0"), advancing *p past
 * it; false at the end of the path. */
static bool path_next_pci_addr(const char **p, struct pci_addr *ret)
{
        while (**p) {
                size_t n = strcspn(*p, "/");
                char comp[PCI_ADDR_STRLEN];
                bool ok = false;

                if (n > 0 && n < sizeof(comp)) {
                        memcpy(comp, *p, n);
                        comp[n] = '\0';
                        ok = strchr(comp, ':') && pci_addr_parse(comp, ret) == 0;
                }
                *p += n;
                if (**p == '/')
                        (*p)++;
                if (ok)
                        return true;
        }
        return false;
}

int path_owning_pci_device(const struct scan_ctx *c, const char *path)
{
        bool found = false;
        struct pci_addr owner, a;

        for (const char *p = path; path_next_pci_addr(&p, &a);)
                if (scan_host_has_device(c, &a)) {
                        owner = a;
                        found = true;
                }
        return found ? topology_index_of(c->t, &owner) : -1;
}

/* Lists sys/bus/pci/devices: each entry must be a PCI address and a link to the real
 * device directory, whose path gives the hierarchy. */
static int scan_device_list(struct scan_ctx *c)
{
        struct topology *t = c->t;
        _cleanup_closedir_ DIR *d = NULL;
        size_t cap = 0;
        int r = root_opendir(c->root, "sys/bus/pci/devices", &d);

        if (r < 0)
                return r;
        FOREACH_DIRENT (de, d) {
                _cleanup_free_ char *target = NULL;
                struct pci_device *dev;
                struct pci_addr a;

                if (de->d_name[0] == '.')
                        continue;
                if (pci_addr_parse(de->d_name, &a) < 0 || !strchr(de->d_name, ':')) {
                        r = scan_warn(c, 0, "sys/bus/pci/devices/%s: not a PCI address, ignored",
                                      de->d_name);
                        if (r < 0)
                                break;
                        continue;
                }
                r = dir_readlink(dirfd(d), de->d_name, &target);
                if (r < 0) {
                        r = scan_warn(c, r, "sys/bus/pci/devices/%s: cannot read link", de->d_name);
                        if (r < 0)
                                break;
                        continue;
                }
                if (t->n_devices == cap) {
                        size_t ncap = cap ? cap * 2 : 64;
                        struct pci_device *nd = realloc(t->devices, ncap * sizeof(*nd));
                        if (!nd) {
                                r = -ENOMEM;
                                break;
                        }
                        t->devices = nd;
                        cap = ncap;
                }
                dev = &t->devices[t->n_devices];
                *dev = (struct pci_device){
                        .addr = a,
                        .iommu_group = -1,
                        .numa_node = -1,
                        .parent = -1,
                        .physfn = -1,
                        .sriov_totalvfs = -1,
                        .sriov_numvfs = -1,
                        .pcie_type = PCIE_TYPE_UNKNOWN,
                };
                pci_addr_format(&a, dev->name);
                r = path_resolve_link("sys/bus/pci/devices", target, &dev->sysfs_path);
                if (r < 0)
                        break;
                t->n_devices++;
        }
        if (r < 0)
                return r;
        if (t->n_devices > 1)
                qsort(t->devices, t->n_devices, sizeof(*t->devices), device_compare);
        return 0;
}

static int read_id(struct scan_ctx *c, struct pci_device *dev, int fd, const char *attr,
                   uint32_t max, uint32_t *ret)
{
        int64_t v;
        int r = dir_read_int(fd, attr, &v);

        if (r >= 0 && (v < 0 || v > (int64_t)max))
                r = -ERANGE;
        if (r < 0)
                return scan_warn(c, r, "%s: cannot read %s", dev->name, attr) < 0 ? -ENOMEM : r;
        *ret = (uint32_t)v;
        return 0;
}

/* A driver link must name a directory under sys/bus/pci/drivers; a dangling one is
 * reported rather than believed. Names are few, so each is checked once. */
static int check_driver(struct scan_ctx *c, struct pci_device *dev)
{
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;

        STRV_FOREACH (s, c->checked_drivers)
                if (strcmp(*s, dev->driver) == 0)
                        return 0;
        if (asprintf(&path, "sys/bus/pci/drivers/%s", dev->driver) < 0)
                return -ENOMEM;
        fd = root_openat(c->root, path, O_PATH | O_DIRECTORY);
        if (fd < 0)
                return scan_warn(c, fd, "%s: driver link names %s, which does not exist", dev->name,
                                 dev->driver);
        return strv_push(&c->checked_drivers, &c->n_checked_drivers, dev->driver);
}

static int scan_config(struct scan_ctx *c, struct pci_device *dev, int devfd,
                       struct config_info *ci)
{
        _cleanup_close_ int fd = openat(devfd, "config", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        uint8_t buf[4096];
        ssize_t n;

        *ci = (struct config_info){.pcie_type = PCIE_TYPE_UNKNOWN};
        if (fd < 0)
                return scan_warn(c, negative_errno(), "%s: cannot open config space", dev->name);
        n = pread(fd, buf, sizeof(buf), 0);
        if (n < 0)
                return scan_warn(c, negative_errno(), "%s: cannot read config space", dev->name);
        if (n < 64)
                (void)scan_warn(c, 0, "%s: config space is %zd bytes, shorter than a header",
                                dev->name, n);
        config_space_parse(buf, (size_t)n, ci);
        if (n == 64)
                c->t->host.unprivileged = true;
        dev->config_len = (size_t)n;
        dev->header_type = ci->header_type;
        dev->multifunction = ci->multifunction;
        dev->is_bridge = ci->is_bridge;
        dev->pcie_type = ci->pcie_type;
        dev->have_acs = ci->have_acs;
        dev->acs_cap = ci->acs_cap;
        dev->acs_ctrl = ci->acs_ctrl;
        dev->acs_known = ci->ext_known;
        dev->have_ats = ci->have_ats;
        dev->have_sriov_cap = ci->have_sriov;
        dev->sriov_cfg_numvfs = ci->sriov_num;
        dev->sriov_offset = ci->sriov_offset;
        dev->sriov_stride = ci->sriov_stride;
        dev->sriov_vf_device = ci->sriov_vf_device;
        return 0;
}

static int scan_sriov(struct scan_ctx *c, struct pci_device *dev, int devfd)
{
        int64_t total, num;
        int r;

        r = dir_read_int(devfd, "sriov_totalvfs", &total);
        if (r == -ENOENT)
                return 0;
        if (r < 0 || total < 0 || total > 65535)
                return scan_warn(c, r < 0 ? r : -ERANGE, "%s: cannot read sriov_totalvfs",
                                 dev->name);
        dev->sriov_totalvfs = (int)total;
        r = dir_read_int(devfd, "sriov_numvfs", &num);
        if (r < 0 || num < 0 || num > total)
                return scan_warn(c, r < 0 ? r : -ERANGE, "%s: cannot read sriov_numvfs", dev->name);
        dev->sriov_numvfs = (int)num;
        return 0;
}

/* Ids from the sysfs attributes: the fallback when config space does not give them
 * (unreadable, too short, or a VF, whose vendor and device registers read all-ones). */
static int scan_id_attributes(struct scan_ctx *c, struct pci_device *dev, int fd)
{
        uint32_t v;
        int64_t n;
        int r, ok = 0;

        if ((r = read_id(c, dev, fd, "vendor", 0xffff, &v)) == 0)
                dev->vendor = (uint16_t)v, ok++;
        else if (r == -ENOMEM)
                return r;
        if ((r = read_id(c, dev, fd, "device", 0xffff, &v)) == 0)
                dev->device = (uint16_t)v, ok++;
        else if (r == -ENOMEM)
                return r;
        if ((r = read_id(c, dev, fd, "class", 0xffffff, &v)) == 0)
                dev->class = v, ok++;
        else if (r == -ENOMEM)
                return r;
        dev->have_ids = ok == 3;
        if (dir_read_int(fd, "subsystem_vendor", &n) == 0 && n >= 0 && n <= 0xffff)
                dev->subsystem_vendor = (uint16_t)n;
        if (dir_read_int(fd, "subsystem_device", &n) == 0 && n >= 0 && n <= 0xffff)
                dev->subsystem_device = (uint16_t)n;
        if (dir_read_int(fd, "revision", &n) == 0 && n >= 0 && n <= 0xff)
                dev->revision = (uint8_t)n;
        return 0;
}

static int scan_device(struct scan_ctx *c, struct pci_device *dev)
{
        _cleanup_close_ int fd = root_openat(c->root, dev->sysfs_path, O_PATH | O_DIRECTORY);
        _cleanup_free_ char *group = NULL;
        struct config_info ci;
        int64_t n;
        int r;

        if (fd < 0)
                return scan_warn(c, fd, "%s: cannot open %s", dev->name, dev->sysfs_path);

        /* Config space first: its header holds the ids the attribute files repeat, so
         * one read replaces six. */
        r = scan_config(c, dev, fd, &ci);
        if (r < 0)
                return r;
        if (ci.len >= 64 && ci.vendor == 0xffff && ci.device == 0xffff && ci.class != 0xffffff) {
                /* A VF: the rest of its header is real; vendor and device are its PF's,
                 * filled in once the PF is known (or read from sysfs if it is not). */
                dev->class = ci.class;
                dev->revision = ci.revision;
                dev->subsystem_vendor = ci.subsystem_vendor;
                dev->subsystem_device = ci.subsystem_device;
                dev->ids_from_pf = true;
        } else if (ci.have_ids) {
                dev->vendor = ci.vendor;
                dev->device = ci.device;
                dev->class = ci.class;
                dev->revision = ci.revision;
                dev->subsystem_vendor = ci.subsystem_vendor;
                dev->subsystem_device = ci.subsystem_device;
                dev->have_ids = true;
        } else {
                r = scan_id_attributes(c, dev, fd);
                if (r < 0)
                        return r;
        }

        r = dir_readlink_basename(fd, "driver", &dev->driver);
        if (r == -ENOMEM)
                return r;
        if (r < 0 && r != -ENOENT && scan_warn(c, r, "%s: cannot read driver link", dev->name) < 0)
                return -ENOMEM;
        if (dev->driver && check_driver(c, dev) < 0)
                return -ENOMEM;

        r = dir_read_line(fd, "driver_override", &dev->driver_override);
        if (r >= 0 && strcmp(dev->driver_override, "(null)") == 0)
                dev->driver_override = (free(dev->driver_override), NULL);

        r = dir_readlink_basename(fd, "iommu_group", &group);
        if (r >= 0 && str_is_decimal(group) && strlen(group) < 10)
                dev->iommu_group = atoi(group);
        else if (r >= 0 || r != -ENOENT) {
                if (scan_warn(c, r < 0 ? r : -EINVAL, "%s: bad iommu_group link", dev->name) < 0)
                        return -ENOMEM;
                dev->group_link_bad = true;
        }
        (void)dir_readlink_basename(fd, "iommu", &dev->iommu_unit);

        r = dir_read_int(fd, "numa_node", &n);
        if (r >= 0 && n >= -1 && n < 65536)
                dev->numa_node = (int)n;
        else if (r != -ENOENT &&
                 scan_warn(c, r < 0 ? r : -ERANGE, "%s: bad numa_node", dev->name) < 0)
                return -ENOMEM;
        (void)dir_read_line(fd, "reset_method", &dev->reset_method);
        if ((dev->class >> 16) == 0x03 && dir_read_int(fd, "boot_vga", &n) == 0)
                dev->boot_vga = n == 1;

        /* Only a PF has the SR-IOV files; when config space was read whole, its
         * capability list says which devices are PFs. */
        if (ci.have_sriov || (!ci.ext_known && ci.pcie_type != PCIE_TYPE_NONE))
                return scan_sriov(c, dev, fd);
        return 0;
}

/* Parent, physfn and virtfn relations, once every device has its index. */
static int link_relations(struct scan_ctx *c)
{
        struct topology *t = c->t;

        for (size_t i = 0; i < t->n_devices; i++) {
                struct pci_device *dev = &t->devices[i];
                const char *slash = strrchr(dev->sysfs_path, '/');

                if (slash && slash > dev->sysfs_path) {
                        /* The directory above the device: a bridge, or a host bridge root. */
                        const char *start =
                                memrchr(dev->sysfs_path, '/', (size_t)(slash - dev->sysfs_path));
                        char comp[PCI_ADDR_STRLEN];
                        size_t len;
                        struct pci_addr a;

                        start = start ? start + 1 : dev->sysfs_path;
                        len = (size_t)(slash - start);
                        if (len < sizeof(comp)) {
                                memcpy(comp, start, len);
                                comp[len] = '\0';
                                if (strchr(comp, ':') && pci_addr_parse(comp, &a) == 0)
                                        dev->parent = topology_index_of(t, &a);
                        }
                }
        }

        for (size_t i = 0; i < t->n_devices; i++) {
                struct pci_device *pf = &t->devices[i];
                _cleanup_close_ int fd = -EBADF;
                /* VF k's routing ID is the PF's plus First VF Offset plus k times VF Stride
                 * (SR-IOV spec), which spares a readlink per VF while the capability agrees
                 * with sysfs about how many VFs are enabled. */
                bool computed = pf->have_sriov_cap && pf->sriov_offset != 0 &&
                                pf->sriov_cfg_numvfs == pf->sriov_numvfs;

                if (pf->sriov_numvfs <= 0)
                        continue;
                pf->virtfn = calloc((size_t)pf->sriov_numvfs, sizeof(int));
                if (!pf->virtfn)
                        return -ENOMEM;
                for (int k = 0; k < pf->sriov_numvfs; k++) {
                        _cleanup_free_ char *vf = NULL;
                        char name[32];
                        struct pci_addr a;
                        int idx = -1;

                        if (computed) {
                                unsigned rid = (unsigned)pf->addr.bus << 8 |
                                               (unsigned)pf->addr.dev << 3 | pf->addr.fn;
                                rid += pf->sriov_offset + (unsigned)k * pf->sriov_stride;
                                a = (struct pci_addr){.domain = pf->addr.domain,
                                                      .bus = (uint8_t)(rid >> 8),
                                                      .dev = (uint8_t)((rid >> 3) & 0x1f),
                                                      .fn = (uint8_t)(rid & 7)};
                                idx = rid <= 0xffff ? topology_index_of(t, &a) : -1;
                                if (idx < 0 && rid <= 0xffff && c->host_devices &&
                                    scan_host_has_device(c, &a))
                                        continue; /* on the host, outside the scope */
                        }
                        if (idx < 0) {
                                snprintf(name, sizeof(name), "virtfn%d", k);
                                if (fd < 0)
                                        fd = root_openat(c->root, pf->sysfs_path,
                                                         O_PATH | O_DIRECTORY);
                                if (fd >= 0 && dir_readlink_basename(fd, name, &vf) >= 0 &&
                                    pci_addr_parse(vf, &a) >= 0 && c->host_devices &&
                                    topology_index_of(t, &a) < 0 && scan_host_has_device(c, &a))
                                        continue;
                                if (fd < 0 || !vf || pci_addr_parse(vf, &a) < 0 ||
                                    (idx = topology_index_of(t, &a)) < 0) {
                                        if (scan_warn(c, 0, "%s: %s is missing or dangling",
                                                      pf->name, name) < 0)
                                                return -ENOMEM;
                                        continue;
                                }
                        }
                        pf->virtfn[pf->n_virtfn++] = idx;
                        t->devices[idx].physfn = (int)i;
                }
        }
        return 0;
}

/* VFs whose ids were deferred: from the PF as the kernel does (vendor of the PF, device
 * from its SR-IOV VF Device ID), else from the VF's own sysfs attributes. */
static int fill_vf_ids(struct scan_ctx *c)
{
        struct topology *t = c->t;

        for (size_t i = 0; i < t->n_devices; i++) {
                struct pci_device *vf = &t->devices[i];
                const struct pci_device *pf = topology_device(t, vf->physfn);
                _cleanup_close_ int fd = -EBADF;
                uint32_t v;
                int r, ok = 0;

                if (!vf->ids_from_pf)
                        continue;
                if (pf && pf->have_ids && pf->have_sriov_cap) {
                        vf->vendor = pf->vendor;
                        vf->device = pf->sriov_vf_device;
                        vf->have_ids = true;
                        continue;
                }
                vf->ids_from_pf = false;
                fd = root_openat(c->root, vf->sysfs_path, O_PATH | O_DIRECTORY);
                if (fd < 0)
                        continue;
                if ((r = read_id(c, vf, fd, "vendor", 0xffff, &v)) == 0)
                        vf->vendor = (uint16_t)v, ok++;
                else if (r == -ENOMEM)
                        return r;
                if ((r = read_id(c, vf, fd, "device", 0xffff, &v)) == 0)
                        vf->device = (uint16_t)v, ok++;
                else if (r == -ENOMEM)
                        return r;
                vf->have_ids = ok == 2;
        }
        return 0;
}

/* A multi-function device is one whose slot holds other physical functions, whatever
 * the header bit says on functions other than 0. VFs are never counted. */
static void mark_multifunction(struct topology *t)
{
        for (size_t i = 0; i < t->n_devices; i++) {
                struct pci_device *a = &t->devices[i];
                for (size_t j = i + 1; j < t->n_devices; j++) {
                        struct pci_device *b = &t->devices[j];
                        if (b->addr.domain != a->addr.domain || b->addr.bus != a->addr.bus ||
                            b->addr.dev != a->addr.dev)
                                break;
                        if (a->physfn < 0 && b->physfn < 0)
                                a->multifunction = b->multifunction = true;
                }
        }
}

bool driver_is_vfio(const char *driver)
{
        /* vfio-pci and its variant drivers (mlx5_vfio_pci, hisi_acc_vfio_pci, ...). */
        return driver && (strcmp(driver, "vfio-pci") == 0 || strstr(driver, "vfio_pci") ||
                          strstr(driver, "vfio-pci"));
}

bool driver_is_vfio_compatible(const char *driver)
{
        return !driver || driver_is_vfio(driver) || strcmp(driver, "pci-stub") == 0 ||
               strcmp(driver, "pcieport") == 0;
}

bool pci_device_is_bridge(const struct pci_device *d)
{
        return d->is_bridge || (d->have_ids && (d->class >> 16) == 0x06);
}

const char *pci_device_bridge_kind(const struct pci_device *d, char *buf, size_t size)
{
        if (!d->have_ids || (d->class >> 16) != 0x06) {
                snprintf(buf, size, "PCI bridge, header type 1");
                return buf;
        }
        unsigned sub = (d->class >> 8) & 0xff;
        const char *kind = sub == 0x00   ? "host bridge"
                           : sub == 0x01 ? "ISA bridge"
                           : sub == 0x04 ? "PCI bridge"
                                         : "bridge";
        snprintf(buf, size, "%s, class %04x", kind, (unsigned)(d->class >> 8));
        return buf;
}

static int group_compare(const void *a, const void *b)
{
        int x = ((const struct iommu_group *)a)->id, y = ((const struct iommu_group *)b)->id;
        return (x > y) - (x < y);
}

/* Appends a group; the caller knows the id is not there yet. */
static struct iommu_group *group_append(struct topology *t, int id, size_t *cap)
{
        if (t->n_groups == *cap) {
                size_t ncap = *cap ? *cap * 2 : 32;
                struct iommu_group *ng = realloc(t->groups, ncap * sizeof(*ng));
                if (!ng)
                        return NULL;
                t->groups = ng;
                *cap = ncap;
        }
        t->groups[t->n_groups] = (struct iommu_group){.id = id};
        return &t->groups[t->n_groups++];
}

/* Whether a scoped snapshot needs group id: one of its devices is in it, or a device's
 * own link was unreadable, which only a walk over every group settles. */
static bool scope_has_group(const struct scan_ctx *c, int id)
{
        for (size_t i = 0; i < c->t->n_devices; i++)
                if (c->t->devices[i].iommu_group == id || c->t->devices[i].group_link_bad)
                        return true;
        return false;
}

static int build_groups(struct scan_ctx *c)
{
        struct topology *t = c->t;
        _cleanup_closedir_ DIR *d = NULL;
        size_t cap = 0;
        int r = scan_opendir(c, "sys/kernel/iommu_groups", &d);

        if (r < 0)
                return r;
        if (d) {
                FOREACH_DIRENT (de, d) {
                        struct iommu_group *g;
                        char path[64];

                        if (!str_is_decimal(de->d_name) || strlen(de->d_name) > 9)
                                continue;
                        if (c->host_devices && !scope_has_group(c, atoi(de->d_name)))
                                continue;
                        g = group_append(t, atoi(de->d_name), &cap);
                        if (!g)
                                return -ENOMEM;
                        snprintf(path, sizeof(path), "%s/type", de->d_name);
                        (void)dir_read_line(dirfd(d), path, &g->type);
                }
        }

        /* Sorted now, so lookups by id below stay logarithmic for big trees. */
        if (t->n_groups > 1)
                qsort(t->groups, t->n_groups, sizeof(*t->groups), group_compare);

        /* A device whose own link is unreadable may still be listed by its group. */
        for (size_t i = 0; i < t->n_devices; i++) {
                struct pci_device *dev = &t->devices[i];
                _cleanup_close_ int gfd = -EBADF;

                if (!dev->group_link_bad)
                        continue;
                gfd = root_openat(c->root, "sys/kernel/iommu_groups", O_PATH | O_DIRECTORY);
                for (size_t k = 0; gfd >= 0 && k < t->n_groups; k++) {
                        char path[64];
                        snprintf(path, sizeof(path), "%d/devices/%s", t->groups[k].id, dev->name);
                        if (faccessat(gfd, path, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
                                dev->iommu_group = t->groups[k].id;
                                if (scan_warn(c, 0,
                                              "%s: group %d taken from the group's own "
                                              "device list",
                                              dev->name, dev->iommu_group) < 0)
                                        return -ENOMEM;
                                break;
                        }
                }
        }
        for (size_t i = 0; i < t->n_devices; i++) {
                struct pci_device *dev = &t->devices[i];
                struct iommu_group *g;
                int *nm;

                if (dev->iommu_group < 0)
                        continue;
                g = (struct iommu_group *)topology_find_group(t, dev->iommu_group);
                if (!g) {
                        /* A link to a group the kernel does not list: believe neither. The
                         * device counts as having no known group, so nothing calls it
                         * isolated. */
                        if (scan_warn(c, 0,
                                      "%s: iommu_group link names group %d, which is not "
                                      "in sys/kernel/iommu_groups; group unknown",
                                      dev->name, dev->iommu_group) < 0)
                                return -ENOMEM;
                        dev->iommu_group = -1;
                        continue;
                }
                nm = realloc(g->members, (g->n_members + 1) * sizeof(int));
                if (!nm)
                        return -ENOMEM;
                g->members = nm;
                g->members[g->n_members++] = (int)i;
        }
        return 0;
}

static int judge_groups(struct topology *t)
{
        for (size_t i = 0; i < t->n_groups; i++) {
                struct iommu_group *g = &t->groups[i];
                const struct pci_device *blocker = NULL;
                int r;

                for (size_t k = 0; k < g->n_members; k++) {
                        const struct pci_device *m = &t->devices[g->members[k]];
                        if (!blocker && !driver_is_vfio_compatible(m->driver))
                                blocker = m;
                        if (!g->in_use && m->in_use &&
                            asprintf(&g->in_use, "%s: %s", m->name, m->in_use) < 0)
                                return -ENOMEM;
                }
                g->viable = !blocker && g->n_members > 0;
                if (g->n_members == 0)
                        r = asprintf(&g->verdict, "no PCI devices in the group");
                else if (blocker)
                        r = asprintf(&g->verdict, "%s is bound to %s", blocker->name,
                                     blocker->driver);
                else
                        r = asprintf(&g->verdict, "every member is unbound or bound to a "
                                                  "driver vfio accepts");
                if (r < 0)
                        return -ENOMEM;
        }
        return 0;
}

enum tristate topology_path_isolated(const struct topology *t, const struct pci_device *dev,
                                     const char **ret_reason)
{
        const char *reason = NULL;
        enum tristate v = TRI_YES;

        if (dev->multifunction && dev->physfn < 0) {
                if (!dev->acs_known)
                        v = TRI_UNKNOWN, reason = "config space of the function not readable";
                else if ((dev->acs_ctrl & ACS_REQUIRED) != ACS_REQUIRED &&
                         dev->pcie_type != PCIE_TYPE_NONE)
                        v = TRI_NO, reason = "multi-function device without ACS";
        }
        for (int p = dev->parent; v != TRI_NO && p >= 0; p = t->devices[p].parent) {
                const struct pci_device *port = &t->devices[p];

                if (port->pcie_type == PCIE_TYPE_PCIE_TO_PCI || port->pcie_type == PCIE_TYPE_NONE) {
                        v = TRI_NO, reason = "behind a PCI bridge: devices share requester IDs";
                        break;
                }
                if (port->pcie_type != PCIE_TYPE_ROOT_PORT &&
                    port->pcie_type != PCIE_TYPE_DOWNSTREAM)
                        continue; /* upstream ports do not route between their peers */
                if (!port->acs_known) {
                        v = TRI_UNKNOWN, reason = "config space of a port not readable";
                        continue;
                }
                if ((port->acs_ctrl & ACS_REQUIRED) != ACS_REQUIRED) {
                        v = TRI_NO, reason = port->have_acs ? "a port on the path does not "
                                                              "enable ACS"
                                                            : "a port on the path lacks ACS";
                }
        }
        if (ret_reason)
                *ret_reason = reason;
        return v;
}

/* The directory a device sits in when that is a PCI bridge's ("sys/devices/pci0000:00/
 * 0000:00:02.0" for 0000:01:00.0), else NULL: a device on a root bus has no bridge whose
 * secondary bus reset could reach it. */
static char *bridge_dir_of(const struct pci_device *dev)
{
        const char *slash = strrchr(dev->sysfs_path, '/'), *start;
        struct pci_addr a;
        char comp[PCI_ADDR_STRLEN];

        if (!slash || slash == dev->sysfs_path)
                return NULL;
        start = memrchr(dev->sysfs_path, '/', (size_t)(slash - dev->sysfs_path));
        start = start ? start + 1 : dev->sysfs_path;
        if ((size_t)(slash - start) >= sizeof(comp))
                return NULL;
        memcpy(comp, start, (size_t)(slash - start));
        comp[slash - start] = '\0';
        if (!strchr(comp, ':') || pci_addr_parse(comp, &a) < 0)
                return NULL;
        return strndup(dev->sysfs_path, (size_t)(slash - dev->sysfs_path));
}

/* Marks the members of dev's IOMMU group, as the group's own device list has them.
 * Returns 1 when the group cannot be read that way: then only a whole scan is exact. */
static int scope_group_members(struct scan_ctx *c, const struct pci_device *dev, bool *keep)
{
        _cleanup_close_ int fd = root_openat(c->root, dev->sysfs_path, O_PATH | O_DIRECTORY);
        _cleanup_free_ char *group = NULL, *path = NULL;
        _cleanup_closedir_ DIR *d = NULL;
        int r;

        if (fd < 0)
                return 1;
        r = dir_readlink_basename(fd, "iommu_group", &group);
        if (r == -ENOENT)
                return 0;
        if (r == -ENOMEM)
                return r;
        if (r < 0 || !str_is_decimal(group) || strlen(group) > 9)
                return 1;
        if (asprintf(&path, "sys/kernel/iommu_groups/%s/devices", group) < 0)
                return -ENOMEM;
        r = root_opendir(c->root, path, &d);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return 1;
        FOREACH_DIRENT (de, d) {
                struct pci_addr a;
                int idx;

                if (de->d_name[0] == '.')
                        continue;
                if (pci_addr_parse(de->d_name, &a) < 0 || (idx = topology_index_of(c->t, &a)) < 0)
                        return 1;
                keep[idx] = true;
        }
        return 0;
}

/* Narrows the device list to what a decision about want needs (see
 * topology_scan_scoped()); the list of the host's devices stays for attributing
 * interfaces and disks to the right device. */
static int scope_devices(struct scan_ctx *c, const struct pci_addr *want, size_t n_want)
{
        struct topology *t = c->t;
        _cleanup_free_ bool *keep = calloc(t->n_devices ? t->n_devices : 1, sizeof(bool));
        size_t n = 0;
        int r;

        c->host_devices = calloc(t->n_devices ? t->n_devices : 1, sizeof(struct pci_addr));
        if (!keep || !c->host_devices)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_devices; i++)
                c->host_devices[i] = t->devices[i].addr;
        c->n_host_devices = t->n_devices;

        for (size_t w = 0; w < n_want; w++) {
                _cleanup_free_ char *bridge = NULL;
                int idx = topology_index_of(t, &want[w]);
                size_t len;

                if (idx < 0)
                        continue;
                keep[idx] = true;
                r = scope_group_members(c, &t->devices[idx], keep);
                if (r != 0)
                        return r < 0 ? r : 0; /* keep everything */
                /* Everything a bus reset below the same bridge reaches. */
                bridge = bridge_dir_of(&t->devices[idx]);
                if (!bridge)
                        continue;
                len = strlen(bridge);
                for (size_t i = 0; i < t->n_devices; i++)
                        if (strncmp(t->devices[i].sysfs_path, bridge, len) == 0 &&
                            t->devices[i].sysfs_path[len] == '/')
                                keep[i] = true;
        }
        /* The other functions of each slot (multi-function detection), then every
         * bridge above what is kept. */
        for (size_t i = 0; i < t->n_devices; i++)
                for (size_t j = 0; keep[i] && j < t->n_devices; j++)
                        if (t->devices[j].addr.domain == t->devices[i].addr.domain &&
                            t->devices[j].addr.bus == t->devices[i].addr.bus &&
                            t->devices[j].addr.dev == t->devices[i].addr.dev)
                                keep[j] = true;
        for (size_t i = 0; i < t->n_devices; i++) {
                struct pci_addr a;
                int idx;

                if (!keep[i])
                        continue;
                for (const char *p = t->devices[i].sysfs_path; path_next_pci_addr(&p, &a);)
                        if ((idx = topology_index_of(t, &a)) >= 0)
                                keep[idx] = true;
        }
        for (size_t i = 0; i < t->n_devices; i++) {
                if (keep[i])
                        t->devices[n++] = t->devices[i];
                else
                        free(t->devices[i].sysfs_path);
        }
        t->n_devices = n;
        return 0;
}

static void pci_device_done(struct pci_device *dev)
{
        free(dev->sysfs_path);
        free(dev->vendor_name);
        free(dev->device_name);
        free(dev->subsystem_name);
        free(dev->class_name);
        free(dev->driver);
        free(dev->driver_override);
        free(dev->iommu_unit);
        free(dev->reset_method);
        free(dev->virtfn);
        for (size_t i = 0; i < dev->n_netdevs; i++) {
                free(dev->netdevs[i].name);
                strv_free(dev->netdevs[i].addresses);
        }
        free(dev->netdevs);
        for (size_t i = 0; i < dev->n_blockdevs; i++) {
                free(dev->blockdevs[i].name);
                free(dev->blockdevs[i].mountpoint);
        }
        free(dev->blockdevs);
        free(dev->in_use);
}

struct topology *topology_free(struct topology *t)
{
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_devices; i++)
                pci_device_done(&t->devices[i]);
        free(t->devices);
        for (size_t i = 0; i < t->n_groups; i++) {
                free(t->groups[i].type);
                free(t->groups[i].members);
                free(t->groups[i].verdict);
                free(t->groups[i].in_use);
        }
        free(t->groups);
        for (size_t i = 0; i < t->n_units; i++) {
                free(t->units[i].name);
                free(t->units[i].version);
        }
        free(t->units);
        free(t->host.default_domain_type);
        free(t->host.cmdline);
        strv_free(t->host.cmdline_flags);
        strv_free(t->warnings);
        free(t);
        return NULL;
}

static int scan(const struct root *root, unsigned flags, bool scoped, const struct pci_addr *want,
                size_t n_want, struct topology **ret)
{
        _cleanup_(topology_freep) struct topology *t = calloc(1, sizeof(*t));
        struct scan_ctx c = {.root = root, .flags = flags};
        int r;

        if (!t)
                return -ENOMEM;
        c.t = t;
        r = scan_device_list(&c);
        if (r < 0)
                goto out;
        if (scoped) {
                r = scope_devices(&c, want, n_want);
                if (r < 0)
                        goto out;
        }
        for (size_t i = 0; i < t->n_devices; i++) {
                r = scan_device(&c, &t->devices[i]);
                if (r < 0)
                        goto out;
        }
        r = link_relations(&c);
        if (r < 0)
                goto out;
        r = fill_vf_ids(&c);
        if (r < 0)
                goto out;
        mark_multifunction(t);
        r = scan_iommu_units(&c);
        if (r < 0)
                goto out;
        r = scan_host_usage(&c);
        if (r < 0)
                goto out;
        r = build_groups(&c);
        if (r < 0)
                goto out;
        r = judge_groups(t);
        if (r < 0)
                goto out;
        r = scan_host_facts(&c);
        if (r < 0)
                goto out;
        if (!(flags & TOPOLOGY_SCAN_NO_NAMES)) {
                r = scan_names(&c);
                if (r < 0)
                        goto out;
        }
        *ret = TAKE_PTR(t);
out:
        strv_free(c.checked_drivers);
        free(c.host_devices);
        return r;
}

int topology_scan(const struct root *root, unsigned flags, struct topology **ret)
{
        return scan(root, flags, false, NULL, 0, ret);
}

int topology_scan_scoped(const struct root *root, unsigned flags, const struct pci_addr *want,
                         size_t n_want, struct topology **ret)
{
        return scan(root, flags, true, want, n_want, ret);
}
