/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Shared by iommu.c, dma.c, device.c and the backends: the address-space object and the
 * table of backend operations (one backend per file). */

#include <stddef.h>
#include <stdint.h>

#include "dma-ranges.h"
#include "iommu.h"

struct vfio_iommu;

/* What attaching a device produced: its device fd and backend-specific ids. */
struct vfio_attach {
        int device_fd;
        int group_id;     /* legacy backends: the group, -1 when unknown (fd handed over) */
        int group_fd;     /* legacy backends: the group's fd (owned by the vfio_iommu) */
        int cdev_index;   /* iommufd: N of /dev/vfio/devices/vfioN, -1 when handed over */
        uint32_t devid;   /* iommufd: the bound device object */
        uint32_t hwpt_id; /* iommufd: the page table the kernel attached it to */
};

struct vfio_iommu_ops {
        enum vfio_backend backend;
        /* Makes fd (the container or iommufd, already open) ready: checks, IOAS. */
        int (*setup)(struct vfio_iommu *m, char **ret_detail);
        /* Opens device a (or adopts handed_fd: a group or cdev fd, when >= 0) into m. */
        int (*attach)(struct vfio_iommu *m, const struct pci_addr *a, int handed_fd,
                      struct vfio_attach *ret, char **ret_detail);
        /* Undoes attach, given what it returned (device_fd already closed). */
        void (*detach)(struct vfio_iommu *m, const struct vfio_attach *at);
        /* Reads the usable IOVA ranges and page sizes into m. */
        int (*query)(struct vfio_iommu *m, char **ret_detail);
        /* NULL for the no-IOMMU backend: nothing can be mapped there. */
        int (*map)(struct vfio_iommu *m, uint64_t vaddr, uint64_t iova, uint64_t size,
                   unsigned prot);
        /* expected: the bytes mapped in the range (it may span gaps between mappings);
         * the kernel says what it unmapped, and a difference is -EIO. */
        int (*unmap)(struct vfio_iommu *m, uint64_t iova, uint64_t size, uint64_t expected);
};

extern const struct vfio_iommu_ops vfio_iommu_type1_ops;
extern const struct vfio_iommu_ops vfio_iommu_noiommu_ops;
extern const struct vfio_iommu_ops vfio_iommu_iommufd_ops;

struct vfio_group_ref {
        int id;
        int fd;
        unsigned users;
};

struct vfio_iommu {
        const struct vfio_iommu_ops *ops;
        const struct root *root; /* borrowed */
        unsigned flags;
        int fd;

        /* Legacy backends. */
        bool iommu_set; /* VFIO_SET_IOMMU done: it needs a group first */
        struct vfio_group_ref *groups;
        size_t n_groups;

        /* iommufd. */
        uint32_t ioas_id;
        bool process_accounting;

        size_t n_devices;

        /* From the kernel, re-read after each attach (reserved regions of new devices
         * narrow the usable ranges). */
        bool ranges_stale;
        struct iova_range *ranges;
        size_t n_ranges;
        uint64_t page_size; /* smallest IOMMU page size: the mapping granule */
        uint32_t dma_avail; /* type1: mappings the kernel still allows; UINT32_MAX unknown */
        struct dma_table table;
};

/* iommufd: IOMMU_OPTION_RLIMIT_MODE := 1 on a handle holding no objects yet. */
int vfio_iommufd_set_process_accounting(int fd);

/* Opens a node below the root read-write, naming it in the detail on failure. */
int vfio_open_node(const struct root *r, const char *relpath, char **ret_detail);
