/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/pci_regs.h>

#include "detail.h"
#include "dev-node.h"
#include "device.h"
#include "iommu-internal.h"
#include "macro.h"

struct region {
        struct vfio_region_info info;
        bool known;
        void *map;
        size_t map_size;
};

struct vfio_device {
        struct vfio_iommu *iommu;
        struct pci_addr addr;
        char name[PCI_ADDR_STRLEN];
        struct vfio_attach at;
        struct vfio_device_info info;
        struct region *regions; /* info.num_regions entries */
};

static int device_open(struct vfio_iommu *m, int handed_fd, const struct pci_addr *a,
                       struct vfio_device **ret, char **ret_detail)
{
        _cleanup_(vfio_device_freep) struct vfio_device *d = NULL;
        int q;

        d = calloc(1, sizeof(*d));
        if (!d) {
                safe_close(handed_fd);
                return -ENOMEM;
        }
        d->addr = *a;
        pci_addr_format(a, d->name);
        d->at.device_fd = -EBADF;
        q = m->ops->attach(m, a, handed_fd, &d->at, ret_detail);
        if (q < 0) {
                d->at.device_fd = -EBADF;
                return q;
        }
        d->iommu = m;
        m->n_devices++;
        /* The device's reserved regions (the MSI window...) narrow the usable IOVAs. */
        m->ranges_stale = true;

        d->info.argsz = sizeof(d->info);
        if (ioctl(d->at.device_fd, VFIO_DEVICE_GET_INFO, &d->info) < 0)
                return detail_errno(ret_detail, negative_errno(),
                                    "%s: VFIO_DEVICE_GET_INFO failed: %m", d->name);
        if (!(d->info.flags & VFIO_DEVICE_FLAGS_PCI))
                return detail_errno(ret_detail, -EMEDIUMTYPE,
                                    "%s: the vfio device is not a PCI device", d->name);
        d->regions = calloc(d->info.num_regions ? d->info.num_regions : 1, sizeof(*d->regions));
        if (!d->regions)
                return -ENOMEM;

        if (m->ops->backend == VFIO_BACKEND_NOIOMMU)
                detail_errno(ret_detail, 0,
                             "WARNING: %s is open in vfio's no-IOMMU mode: it can read and "
                             "write all of memory and nothing isolates its interrupts; the "
                             "kernel is tainted; no DMA mapping is made (or possible)",
                             d->name);
        *ret = TAKE_PTR(d);
        return 0;
}

int vfio_device_open(struct vfio_iommu *m, const struct pci_addr *a, struct vfio_device **ret,
                     char **ret_detail)
{
        return device_open(m, -EBADF, a, ret, ret_detail);
}

int vfio_device_open_fd(struct vfio_iommu *m, int fd, const struct pci_addr *a,
                        struct vfio_device **ret, char **ret_detail)
{
        if (fd < 0)
                return detail_errno(ret_detail, -EBADF, "no device file descriptor given");
        return device_open(m, fd, a, ret, ret_detail);
}

int vfio_device_open_raw(const struct root *r, const struct pci_addr *a, enum vfio_backend b,
                         int *ret_fd, char **ret_path, char **ret_detail)
{
        _cleanup_free_ char *path = NULL;
        char name[PCI_ADDR_STRLEN];
        int q, n, fd;

        pci_addr_format(a, name);
        if (b == VFIO_BACKEND_IOMMUFD) {
                q = vfio_device_cdev_index(r, a, &n);
                if (q < 0)
                        return detail_errno(ret_detail, q, "%s: no vfio device cdev: %s", name,
                                            strerror(-q));
                char node[VFIO_CDEV_PATH_MAX];
                path = strdup(vfio_cdev_path(n, node));
                q = path ? 0 : -ENOMEM;
        } else {
                q = vfio_device_group_id(r, a, &n);
                if (q < 0)
                        return detail_errno(ret_detail, q, "%s: no IOMMU group: %s", name,
                                            strerror(-q));
                q = asprintf(&path,
                             b == VFIO_BACKEND_NOIOMMU ? "dev/vfio/noiommu-%d" : "dev/vfio/%d", n);
        }
        if (q < 0) {
                path = NULL;
                return -ENOMEM;
        }
        fd = vfio_open_node(r, path, ret_detail);
        if (fd < 0)
                return fd;
        *ret_fd = fd;
        if (ret_path)
                *ret_path = TAKE_PTR(path);
        return 0;
}

struct vfio_device *vfio_device_free(struct vfio_device *d)
{
        if (!d)
                return NULL;
        for (size_t i = 0; d->regions && i < d->info.num_regions; i++)
                if (d->regions[i].map)
                        munmap(d->regions[i].map, d->regions[i].map_size);
        free(d->regions);
        safe_close(d->at.device_fd);
        if (d->iommu) {
                d->iommu->ops->detach(d->iommu, &d->at);
                d->iommu->n_devices--;
                d->iommu->ranges_stale = true;
        }
        free(d);
        return NULL;
}

int vfio_device_fd(const struct vfio_device *d)
{
        return d->at.device_fd;
}

const char *vfio_device_name(const struct vfio_device *d)
{
        return d->name;
}

const struct vfio_device_info *vfio_device_get_info(const struct vfio_device *d)
{
        return &d->info;
}

int vfio_device_group(const struct vfio_device *d)
{
        return d->at.group_id;
}

int vfio_device_cdev(const struct vfio_device *d)
{
        return d->at.cdev_index;
}

uint32_t vfio_device_devid(const struct vfio_device *d)
{
        return d->at.devid;
}

static int region_get(struct vfio_device *d, unsigned index, struct region **ret, char **ret_detail)
{
        struct region *r;

        if (index >= d->info.num_regions)
                return detail_errno(ret_detail, -ENOENT, "%s has no region %u (it has %u)", d->name,
                                    index, d->info.num_regions);
        r = &d->regions[index];
        if (!r->known) {
                r->info = (struct vfio_region_info){.argsz = sizeof(r->info), .index = index};
                if (ioctl(d->at.device_fd, VFIO_DEVICE_GET_REGION_INFO, &r->info) < 0)
                        return detail_errno(ret_detail, negative_errno(),
                                            "%s: VFIO_DEVICE_GET_REGION_INFO(%u) failed: %m",
                                            d->name, index);
                r->known = true;
        }
        *ret = r;
        return 0;
}

int vfio_device_get_region_info(struct vfio_device *d, unsigned index, struct vfio_region_info *ret,
                                char **ret_detail)
{
        struct region *r;
        int q = region_get(d, index, &r, ret_detail);

        if (q < 0)
                return q;
        *ret = r->info;
        return 0;
}

int vfio_device_map_region(struct vfio_device *d, unsigned index, volatile void **ret,
                           uint64_t *ret_size, char **ret_detail)
{
        struct region *r;
        void *p;
        int q = region_get(d, index, &r, ret_detail);

        if (q < 0)
                return q;
        if (!r->map) {
                if (r->info.size == 0)
                        return detail_errno(ret_detail, -ENOENT, "%s: region %u is not implemented",
                                            d->name, index);
                if (!(r->info.flags & VFIO_REGION_INFO_FLAG_MMAP) || r->info.size > SIZE_MAX)
                        return detail_errno(ret_detail, -ENOTSUP, "%s: region %u cannot be mmapped",
                                            d->name, index);
                p = mmap(NULL, (size_t)r->info.size, PROT_READ | PROT_WRITE, MAP_SHARED,
                         d->at.device_fd, (off_t)r->info.offset);
                if (p == MAP_FAILED)
                        return detail_errno(ret_detail, negative_errno(),
                                            "%s: mmap of region %u (%" PRIu64 " bytes) failed: %m",
                                            d->name, index, (uint64_t)r->info.size);
                r->map = p;
                r->map_size = (size_t)r->info.size;
        }
        *ret = r->map;
        if (ret_size)
                *ret_size = r->map_size;
        return 0;
}

static int region_io(struct vfio_device *d, unsigned index, uint64_t offset, void *buf, size_t n,
                     bool write)
{
        struct region *r;
        ssize_t k;
        int q = region_get(d, index, &r, NULL);

        if (q < 0)
                return q;
        if (offset > r->info.size || n > r->info.size - offset)
                return -ERANGE;
        k = write ? pwrite(d->at.device_fd, buf, n, (off_t)(r->info.offset + offset))
                  : pread(d->at.device_fd, buf, n, (off_t)(r->info.offset + offset));
        if (k < 0)
                return negative_errno();
        return (size_t)k == n ? 0 : -EIO;
}

int vfio_device_region_read(struct vfio_device *d, unsigned index, uint64_t offset, void *buf,
                            size_t n)
{
        return region_io(d, index, offset, buf, n, false);
}

int vfio_device_region_write(struct vfio_device *d, unsigned index, uint64_t offset,
                             const void *buf, size_t n)
{
        return region_io(d, index, offset, (void *)buf, n, true);
}

int vfio_device_enable_command(struct vfio_device *d, uint16_t bits, char **ret_detail)
{
        uint16_t cmd;
        int q;

        /* Config space is little endian, as is every host vfiod runs on. */
        q = vfio_device_region_read(d, VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND, &cmd,
                                    sizeof(cmd));
        if (q < 0)
                return detail_errno(ret_detail, q, "%s: reading the command register: %s", d->name,
                                    strerror(-q));
        if ((cmd & bits) == bits)
                return 0;
        cmd |= bits;
        q = vfio_device_region_write(d, VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND, &cmd,
                                     sizeof(cmd));
        if (q < 0)
                return detail_errno(ret_detail, q, "%s: writing the command register: %s", d->name,
                                    strerror(-q));
        return 0;
}

int vfio_device_get_irq_info(struct vfio_device *d, unsigned index, struct vfio_irq_info *ret,
                             char **ret_detail)
{
        struct vfio_irq_info info = {.argsz = sizeof(info), .index = index};

        if (index >= d->info.num_irqs)
                return detail_errno(ret_detail, -ENOENT, "%s has no IRQ index %u", d->name, index);
        if (ioctl(d->at.device_fd, VFIO_DEVICE_GET_IRQ_INFO, &info) < 0)
                return detail_errno(ret_detail, negative_errno(),
                                    "%s: VFIO_DEVICE_GET_IRQ_INFO(%u) failed: %m", d->name, index);
        *ret = info;
        return 0;
}

int vfio_device_ioctl_reset(struct vfio_device *d, char **ret_detail)
{
        if (!(d->info.flags & VFIO_DEVICE_FLAGS_RESET))
                return detail_errno(ret_detail, -ENOTTY,
                                    "%s: the kernel offers no function reset for it (only a "
                                    "bus reset, if any: see the hot-reset info)",
                                    d->name);
        if (ioctl(d->at.device_fd, VFIO_DEVICE_RESET) < 0)
                return detail_errno(ret_detail, negative_errno(),
                                    "%s: VFIO_DEVICE_RESET failed: %m", d->name);
        return 0;
}

int vfio_device_get_hot_reset_info(struct vfio_device *d, struct vfio_hot_reset_dep **ret,
                                   size_t *ret_n, bool *ret_by_devid, char **ret_detail)
{
        _cleanup_free_ struct vfio_pci_hot_reset_info *info = NULL;
        _cleanup_free_ struct vfio_hot_reset_dep *deps = NULL;
        size_t argsz = sizeof(*info);

        /* The first call, with room for nothing, tells the count (-ENOSPC). */
        for (unsigned tries = 0;; tries++) {
                struct vfio_pci_hot_reset_info *ni = realloc(info, argsz);
                if (!ni)
                        return -ENOMEM;
                info = ni;
                memset(info, 0, argsz);
                info->argsz = (uint32_t)argsz;
                if (ioctl(d->at.device_fd, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, info) == 0)
                        break;
                if (errno != ENOSPC || tries >= 3)
                        return detail_errno(ret_detail, negative_errno(),
                                            "%s: VFIO_DEVICE_GET_PCI_HOT_RESET_INFO failed: "
                                            "%m%s",
                                            d->name,
                                            errno == ENODEV ? " (no bus or slot reset "
                                                              "reaches it)"
                                                            : "");
                argsz = sizeof(*info) + (size_t)info->count * sizeof(info->devices[0]);
        }
        deps = calloc(info->count ? info->count : 1, sizeof(*deps));
        if (!deps)
                return -ENOMEM;
        for (uint32_t i = 0; i < info->count; i++) {
                const struct vfio_pci_dependent_device *k = &info->devices[i];
                deps[i] = (struct vfio_hot_reset_dep){
                        .addr = {.domain = k->segment,
                                 .bus = k->bus,
                                 .dev = (uint8_t)(k->devfn >> 3),
                                 .fn = (uint8_t)(k->devfn & 7)},
                        .group_id = (int32_t)k->group_id,
                        .devid = k->group_id,
                };
        }
        *ret_by_devid = info->flags & VFIO_PCI_HOT_RESET_FLAG_DEV_ID;
        *ret_n = info->count;
        *ret = TAKE_PTR(deps);
        return 0;
}
