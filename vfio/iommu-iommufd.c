/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The iommufd backend: /dev/iommu, one IOAS, devices bound through their vfio cdev and
 * attached to the IOAS (the kernel picks or makes the page table). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "detail.h"
#include "dev-node.h"
#include "iommu-internal.h"
#include "macro.h"
#include "vfio-uapi.h"

/* Whether the iommufd charges pins to the process (1) or to its user (0). */
static int get_accounting_mode(int fd, bool *ret)
{
        struct iommu_option opt = {
                .size = sizeof(opt),
                .option_id = IOMMU_OPTION_RLIMIT_MODE,
                .op = IOMMU_OPTION_OP_GET,
        };

        if (ioctl(fd, IOMMU_OPTION, &opt) < 0)
                return negative_errno();
        *ret = opt.val64 == 1;
        return 0;
}

int vfio_iommufd_set_process_accounting(int fd)
{
        struct iommu_option opt = {
                .size = sizeof(opt),
                .option_id = IOMMU_OPTION_RLIMIT_MODE,
                .op = IOMMU_OPTION_OP_SET,
                .object_id = 0, /* a global option of this iommufd */
                .val64 = 1,
        };

        return ioctl(fd, IOMMU_OPTION, &opt) < 0 ? negative_errno() : 0;
}

static int iommufd_setup(struct vfio_iommu *m, char **ret_detail)
{
        struct iommu_ioas_alloc alloc = {.size = sizeof(alloc)};

        /* The accounting mode can only change while the iommufd holds no object, so
         * before the IOAS. -EPERM (no CAP_SYS_RESOURCE) leaves per-user accounting. */
        if (m->flags & VFIO_IOMMU_PROCESS_ACCOUNTING)
                (void)vfio_iommufd_set_process_accounting(m->fd);
        /* Read it back: a handle passed on by a privileged process may have it set. */
        if (get_accounting_mode(m->fd, &m->process_accounting) < 0)
                m->process_accounting = false;
        if (ioctl(m->fd, IOMMU_IOAS_ALLOC, &alloc) < 0)
                return detail_errno(ret_detail, negative_errno(),
                                    "IOMMU_IOAS_ALLOC on /dev/iommu failed: %m");
        m->ioas_id = alloc.out_ioas_id;
        return 0;
}

static int iommufd_attach(struct vfio_iommu *m, const struct pci_addr *a, int handed_fd,
                          struct vfio_attach *ret, char **ret_detail)
{
        _cleanup_close_ int fd = handed_fd;
        struct vfio_device_bind_iommufd bind = {.argsz = sizeof(bind), .iommufd = m->fd};
        struct vfio_device_attach_iommufd_pt at = {.argsz = sizeof(at), .pt_id = m->ioas_id};
        char name[PCI_ADDR_STRLEN], path[64];
        int cdev = -1, q;

        pci_addr_format(a, name);
        if (fd < 0) {
                q = vfio_device_cdev_index(m->root, a, &cdev);
                if (q < 0)
                        return detail_errno(ret_detail, q,
                                            "%s: no vfio device cdev (sys/bus/pci/devices/%s/"
                                            "vfio-dev): %s; the kernel lacks "
                                            "CONFIG_VFIO_DEVICE_CDEV, use the type1 backend",
                                            name, name, strerror(-q));
                vfio_cdev_path(cdev, path);
                fd = root_openat(m->root, path, O_RDWR | O_NOCTTY);
                if (fd < 0)
                        return detail_errno(ret_detail, fd, "%s: cannot open /%s: %s%s", name, path,
                                            strerror(-fd),
                                            fd == -EACCES || fd == -EPERM ? " (run as root)" : "");
        }
        if (ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, &bind) < 0) {
                q = negative_errno();
                return detail_errno(
                        ret_detail, q, "%s: VFIO_DEVICE_BIND_IOMMUFD failed: %s%s", name,
                        strerror(-q),
                        q == -EPERM   ? ": the platform cannot isolate the device's MSIs (no "
                                        "interrupt remapping); the kernel allows it only with "
                                        "iommufd.allow_unsafe_interrupts=1"
                        : q == -EBUSY ? ": the device or its group is in use elsewhere"
                                      : "");
        }
        if (ioctl(fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at) < 0)
                return detail_errno(ret_detail, negative_errno(),
                                    "%s: VFIO_DEVICE_ATTACH_IOMMUFD_PT to IOAS %u failed: %m", name,
                                    m->ioas_id);
        *ret = (struct vfio_attach){
                .device_fd = TAKE_FD(fd),
                .group_id = -1,
                .group_fd = -EBADF,
                .cdev_index = cdev,
                .devid = bind.out_devid,
                .hwpt_id = at.pt_id,
        };
        return 0;
}

static void iommufd_detach(struct vfio_iommu *m, const struct vfio_attach *at)
{
        /* Closing the device fd unbound it from the iommufd. */
}

static int iommufd_query(struct vfio_iommu *m, char **ret_detail)
{
        struct iommu_ioas_iova_ranges q = {.size = sizeof(q), .ioas_id = m->ioas_id};
        _cleanup_free_ struct iommu_iova_range *kr = NULL;
        struct iova_range *ranges;

        /* Ask for the count first (the kernel answers -EMSGSIZE with it), then the
         * ranges; a device attached in between can change it, so loop. */
        for (;;) {
                if (ioctl(m->fd, IOMMU_IOAS_IOVA_RANGES, &q) == 0)
                        break;
                if (errno != EMSGSIZE)
                        return detail_errno(ret_detail, negative_errno(),
                                            "IOMMU_IOAS_IOVA_RANGES of IOAS %u failed: %m",
                                            m->ioas_id);
                free(kr);
                kr = calloc(q.num_iovas ? q.num_iovas : 1, sizeof(*kr));
                if (!kr)
                        return -ENOMEM;
                q.allowed_iovas = (uintptr_t)kr;
        }
        ranges = calloc(q.num_iovas ? q.num_iovas : 1, sizeof(*ranges));
        if (!ranges)
                return -ENOMEM;
        for (uint32_t i = 0; kr && i < q.num_iovas; i++)
                ranges[i] = (struct iova_range){.start = kr[i].start, .last = kr[i].last};
        free(m->ranges);
        m->ranges = ranges;
        m->n_ranges = kr ? q.num_iovas : 0;
        m->page_size = q.out_iova_alignment ? q.out_iova_alignment : 4096;
        return 0;
}

static int iommufd_map(struct vfio_iommu *m, uint64_t vaddr, uint64_t iova, uint64_t size,
                       unsigned prot)
{
        struct iommu_ioas_map map = {
                .size = sizeof(map),
                .flags = IOMMU_IOAS_MAP_FIXED_IOVA |
                         ((prot & VFIO_DMA_MAP_FLAG_READ) ? IOMMU_IOAS_MAP_READABLE : 0) |
                         ((prot & VFIO_DMA_MAP_FLAG_WRITE) ? IOMMU_IOAS_MAP_WRITEABLE : 0),
                .ioas_id = m->ioas_id,
                .user_va = vaddr,
                .length = size,
                .iova = iova,
        };

        return ioctl(m->fd, IOMMU_IOAS_MAP, &map) < 0 ? negative_errno() : 0;
}

static int iommufd_unmap(struct vfio_iommu *m, uint64_t iova, uint64_t size, uint64_t expected)
{
        struct iommu_ioas_unmap unmap = {
                .size = sizeof(unmap),
                .ioas_id = m->ioas_id,
                .iova = iova,
                .length = size,
        };

        if (ioctl(m->fd, IOMMU_IOAS_UNMAP, &unmap) < 0)
                return negative_errno();
        return unmap.length == expected ? 0 : -EIO;
}

const struct vfio_iommu_ops vfio_iommu_iommufd_ops = {
        .backend = VFIO_BACKEND_IOMMUFD,
        .setup = iommufd_setup,
        .attach = iommufd_attach,
        .detach = iommufd_detach,
        .query = iommufd_query,
        .map = iommufd_map,
        .unmap = iommufd_unmap,
};
