/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The legacy backend: a /dev/vfio/vfio container, groups attached to it, the type1v2
 * IOMMU driver (or vfio's no-IOMMU driver, which maps nothing). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "detail.h"
#include "iommu-internal.h"
#include "macro.h"
#include "vfio-uapi.h"

static unsigned long iommu_type(const struct vfio_iommu *m)
{
        return m->ops->backend == VFIO_BACKEND_NOIOMMU ? VFIO_NOIOMMU_IOMMU : VFIO_TYPE1v2_IOMMU;
}

static int type1_setup(struct vfio_iommu *m, char **ret_detail)
{
        int v = ioctl(m->fd, VFIO_GET_API_VERSION);

        if (v < 0)
                return detail_errno(ret_detail, negative_errno(),
                                    "VFIO_GET_API_VERSION on the container failed: %m (is this "
                                    "/dev/vfio/vfio?)");
        if (v != VFIO_API_VERSION)
                return detail_errno(ret_detail, -EPROTO,
                                    "the kernel's VFIO API version is %d, vfiod speaks %d", v,
                                    VFIO_API_VERSION);
        if (ioctl(m->fd, VFIO_CHECK_EXTENSION, iommu_type(m)) <= 0)
                return detail_errno(
                        ret_detail, -EOPNOTSUPP, "the kernel's VFIO container lacks the %s",
                        m->ops->backend == VFIO_BACKEND_NOIOMMU
                                ? "no-IOMMU driver (vfio.enable_unsafe_noiommu_mode is off)"
                                : "type1v2 IOMMU driver (vfio_iommu_type1 not loaded?)");
        return 0;
}

static struct vfio_group_ref *group_find(struct vfio_iommu *m, int id)
{
        for (size_t i = 0; id >= 0 && i < m->n_groups; i++)
                if (m->groups[i].id == id)
                        return &m->groups[i];
        return NULL;
}

/* Opens (or reuses) the group, checks it is viable, puts it in the container and, for
 * the first group, selects the IOMMU driver: the kernel wants one group before that. */
static int group_attach(struct vfio_iommu *m, const char *name, int id, int handed_fd,
                        struct vfio_group_ref **ret, char **ret_detail)
{
        _cleanup_close_ int fd = handed_fd;
        struct vfio_group_status st = {.argsz = sizeof(st)};
        struct vfio_group_ref *g = group_find(m, id), *ng;
        bool noiommu = m->ops->backend == VFIO_BACKEND_NOIOMMU;
        char path[64];
        int q;

        if (g) {
                g->users++;
                *ret = g;
                return 0;
        }
        if (fd < 0) {
                snprintf(path, sizeof(path), noiommu ? "dev/vfio/noiommu-%d" : "dev/vfio/%d", id);
                fd = root_openat(m->root, path, O_RDWR | O_NOCTTY);
                if (fd == -ENOENT) {
                        char other[64];
                        snprintf(other, sizeof(other),
                                 noiommu ? "dev/vfio/%d" : "dev/vfio/noiommu-%d", id);
                        _cleanup_close_ int probe = root_openat(m->root, other, O_PATH);
                        if (probe >= 0 && !noiommu)
                                return detail_errno(
                                        ret_detail, -EPERM,
                                        "%s: group %d is a no-IOMMU group (/%s): the device can "
                                        "DMA anywhere; it opens only in explicit no-IOMMU mode",
                                        name, id, other);
                        if (probe >= 0)
                                return detail_errno(ret_detail, -ENOENT,
                                                    "%s: group %d is not a no-IOMMU group", name,
                                                    id);
                }
                if (fd < 0)
                        return detail_errno(ret_detail, fd, "%s: cannot open /%s: %s%s", name, path,
                                            strerror(-fd),
                                            fd == -EBUSY ? " (another process holds the group)"
                                            : fd == -EACCES || fd == -EPERM ? " (run as root)"
                                                                            : "");
        }
        if (ioctl(fd, VFIO_GROUP_GET_STATUS, &st) < 0)
                return detail_errno(ret_detail, negative_errno(),
                                    "%s: VFIO_GROUP_GET_STATUS on group %d failed: %m", name, id);
        if (!(st.flags & VFIO_GROUP_FLAGS_VIABLE))
                return detail_errno(ret_detail, -EBUSY,
                                    "%s: group %d is not viable: every device in it must be on "
                                    "vfio-pci, pci-stub or no driver (see 'vfioctl groups')",
                                    name, id);
        if (st.flags & VFIO_GROUP_FLAGS_CONTAINER_SET)
                return detail_errno(ret_detail, -EBUSY,
                                    "%s: group %d is already in another container", name, id);
        if (ioctl(fd, VFIO_GROUP_SET_CONTAINER, &m->fd) < 0)
                return detail_errno(ret_detail, negative_errno(),
                                    "%s: VFIO_GROUP_SET_CONTAINER for group %d failed: %m", name,
                                    id);
        if (!m->iommu_set) {
                if (ioctl(m->fd, VFIO_SET_IOMMU, iommu_type(m)) < 0) {
                        q = negative_errno();
                        return detail_errno(
                                ret_detail, q, "%s: VFIO_SET_IOMMU(%s) failed: %s%s", name,
                                noiommu ? "no-IOMMU" : "type1v2", strerror(-q),
                                q == -EPERM ? ": the platform cannot isolate the device's MSIs "
                                              "(no interrupt remapping); the kernel allows it "
                                              "only with vfio_iommu_type1.allow_unsafe_"
                                              "interrupts=1"
                                            : "");
                }
                m->iommu_set = true;
        }

        ng = reallocarray(m->groups, m->n_groups + 1, sizeof(*ng));
        if (!ng)
                return -ENOMEM;
        m->groups = ng;
        g = &m->groups[m->n_groups++];
        *g = (struct vfio_group_ref){.id = id, .fd = TAKE_FD(fd), .users = 1};
        *ret = g;
        return 0;
}

static void group_put(struct vfio_iommu *m, int fd)
{
        for (size_t i = 0; i < m->n_groups; i++) {
                if (m->groups[i].fd != fd)
                        continue;
                if (--m->groups[i].users > 0)
                        return;
                /* Closing the last group fd takes the group out of the container. */
                safe_close(m->groups[i].fd);
                m->groups[i] = m->groups[--m->n_groups];
                return;
        }
}

static int type1_attach(struct vfio_iommu *m, const struct pci_addr *a, int handed_fd,
                        struct vfio_attach *ret, char **ret_detail)
{
        struct vfio_group_ref *g = NULL;
        char name[PCI_ADDR_STRLEN];
        int id = -1, q, dfd;

        pci_addr_format(a, name);
        if (handed_fd < 0) {
                q = vfio_device_group_id(m->root, a, &id);
                if (q < 0)
                        return detail_errno(ret_detail, q, "%s: cannot read its IOMMU group: %s",
                                            name, strerror(-q));
        }
        q = group_attach(m, name, id, handed_fd, &g, ret_detail);
        if (q < 0)
                return q;
        dfd = ioctl(g->fd, VFIO_GROUP_GET_DEVICE_FD, name);
        if (dfd < 0) {
                q = negative_errno();
                group_put(m, g->fd);
                return detail_errno(ret_detail, q, "%s: VFIO_GROUP_GET_DEVICE_FD failed: %s%s",
                                    name, strerror(-q),
                                    q == -EBUSY ? " (the device is open elsewhere)" : "");
        }
        *ret = (struct vfio_attach){
                .device_fd = dfd,
                .group_id = g->id,
                .group_fd = g->fd,
                .cdev_index = -1,
        };
        return 0;
}

static void type1_detach(struct vfio_iommu *m, const struct vfio_attach *at)
{
        group_put(m, at->group_fd);
}

/* Walks the capability chain of VFIO_IOMMU_GET_INFO for the IOVA ranges and the number
 * of mappings left. */
static int type1_query(struct vfio_iommu *m, char **ret_detail)
{
        _cleanup_free_ struct vfio_iommu_type1_info *info = NULL;
        uint32_t argsz = sizeof(*info) + 256;
        struct iova_range *ranges = NULL;
        size_t n_ranges = 0;

        for (;;) {
                struct vfio_iommu_type1_info *ni = realloc(info, argsz);
                if (!ni)
                        return -ENOMEM;
                info = ni;
                memset(info, 0, argsz);
                info->argsz = argsz;
                if (ioctl(m->fd, VFIO_IOMMU_GET_INFO, info) < 0)
                        return detail_errno(ret_detail, negative_errno(),
                                            "VFIO_IOMMU_GET_INFO failed: %m");
                if (info->argsz <= argsz)
                        break;
                argsz = info->argsz; /* the capabilities did not fit: grow and ask again */
        }
        m->page_size = (info->flags & VFIO_IOMMU_INFO_PGSIZES) && info->iova_pgsizes
                               ? info->iova_pgsizes & -info->iova_pgsizes
                               : 4096;
        m->dma_avail = UINT32_MAX;
        if ((info->flags & VFIO_IOMMU_INFO_CAPS) && info->cap_offset) {
                uint32_t off = info->cap_offset;
                for (unsigned guard = 0; off && guard < 64; guard++) {
                        struct vfio_info_cap_header *h;
                        if (off < sizeof(*info) || off + sizeof(*h) > argsz)
                                break;
                        h = (struct vfio_info_cap_header *)((char *)info + off);
                        if (h->id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
                                struct vfio_iommu_type1_info_cap_iova_range *c = (void *)h;
                                if (off + sizeof(*c) +
                                            (uint64_t)c->nr_iovas * sizeof(c->iova_ranges[0]) >
                                    argsz)
                                        break;
                                free(ranges);
                                ranges = calloc(c->nr_iovas ? c->nr_iovas : 1, sizeof(*ranges));
                                if (!ranges)
                                        return -ENOMEM;
                                for (uint32_t i = 0; i < c->nr_iovas; i++)
                                        ranges[i] = (struct iova_range){
                                                .start = c->iova_ranges[i].start,
                                                .last = c->iova_ranges[i].end,
                                        };
                                n_ranges = c->nr_iovas;
                        } else if (h->id == VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) {
                                struct vfio_iommu_type1_info_dma_avail *c = (void *)h;
                                if (off + sizeof(*c) <= argsz)
                                        m->dma_avail = c->avail;
                        }
                        off = h->next;
                }
        }
        free(m->ranges);
        m->ranges = ranges;
        m->n_ranges = n_ranges;
        return 0;
}

static int type1_map(struct vfio_iommu *m, uint64_t vaddr, uint64_t iova, uint64_t size,
                     unsigned prot)
{
        struct vfio_iommu_type1_dma_map map = {
                .argsz = sizeof(map),
                .flags = prot,
                .vaddr = vaddr,
                .iova = iova,
                .size = size,
        };

        return ioctl(m->fd, VFIO_IOMMU_MAP_DMA, &map) < 0 ? negative_errno() : 0;
}

static int type1_unmap(struct vfio_iommu *m, uint64_t iova, uint64_t size, uint64_t expected)
{
        struct vfio_iommu_type1_dma_unmap unmap = {
                .argsz = sizeof(unmap),
                .iova = iova,
                .size = size,
        };

        if (ioctl(m->fd, VFIO_IOMMU_UNMAP_DMA, &unmap) < 0)
                return negative_errno();
        /* The kernel reports what it unmapped; anything else means the table and the
         * kernel disagree, which must not pass silently. */
        return unmap.size == expected ? 0 : -EIO;
}

/* No-IOMMU mode has no IOVA space: its "query" reports none. */
static int noiommu_query(struct vfio_iommu *m, char **ret_detail)
{
        free(m->ranges);
        m->ranges = NULL;
        m->n_ranges = 0;
        m->page_size = 4096;
        return 0;
}

const struct vfio_iommu_ops vfio_iommu_type1_ops = {
        .backend = VFIO_BACKEND_TYPE1,
        .setup = type1_setup,
        .attach = type1_attach,
        .detach = type1_detach,
        .query = type1_query,
        .map = type1_map,
        .unmap = type1_unmap,
};

const struct vfio_iommu_ops vfio_iommu_noiommu_ops = {
        .backend = VFIO_BACKEND_NOIOMMU,
        .setup = type1_setup,
        .attach = type1_attach,
        .detach = type1_detach,
        .query = noiommu_query,
        .map = NULL,
        .unmap = NULL,
};
