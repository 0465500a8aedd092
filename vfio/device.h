/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A PCI device opened through VFIO into a vfio_iommu: its info, regions (BARs, config
 * space), interrupt lines and resets. The device must already be bound to vfio-pci
 * (see bind.h); opening never binds. Errors are -errno with a one-line detail. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iommu.h"
#include "vfio-uapi.h"

struct vfio_device;

/* Opens device a into m: through its group (type1, noiommu) or its cdev (iommufd). For
 * the no-IOMMU backend the detail (even on success) carries the warning. */
int vfio_device_open(struct vfio_iommu *m, const struct pci_addr *a, struct vfio_device **ret,
                     char **ret_detail);

/* The same from a handle passed by another process: a group fd (legacy backends) or an
 * unbound cdev fd (iommufd). Takes fd in all cases. */
int vfio_device_open_fd(struct vfio_iommu *m, int fd, const struct pci_addr *a,
                        struct vfio_device **ret, char **ret_detail);

/* Opens the device's own handle for passing to another process, unconfigured: its
 * group node (legacy backends) or its cdev (iommufd, not bound). *ret_path is the node
 * opened, root-relative (the caller frees it). */
int vfio_device_open_raw(const struct root *r, const struct pci_addr *a, enum vfio_backend b,
                         int *ret_fd, char **ret_path, char **ret_detail);

/* Unmaps its regions and closes it. Accepts NULL; returns NULL. */
struct vfio_device *vfio_device_free(struct vfio_device *d);

static inline void vfio_device_freep(struct vfio_device **d)
{
        vfio_device_free(*d);
}

int vfio_device_fd(const struct vfio_device *d);
const char *vfio_device_name(const struct vfio_device *d);
const struct vfio_device_info *vfio_device_get_info(const struct vfio_device *d);
/* The group (legacy backends; -1 if handed over), cdev index and iommufd devid (iommufd). */
int vfio_device_group(const struct vfio_device *d);
int vfio_device_cdev(const struct vfio_device *d);
uint32_t vfio_device_devid(const struct vfio_device *d);

/* VFIO_DEVICE_GET_REGION_INFO of one region (VFIO_PCI_BAR0_REGION_INDEX...). */
int vfio_device_get_region_info(struct vfio_device *d, unsigned index, struct vfio_region_info *ret,
                                char **ret_detail);

/* mmap()s a whole region read-write; the mapping lives as long as d. -ENOTSUP when the
 * region cannot be mmapped (then use vfio_device_region_read/write). */
int vfio_device_map_region(struct vfio_device *d, unsigned index, volatile void **ret,
                           uint64_t *ret_size, char **ret_detail);

/* pread()/pwrite() of a region at offset: config space, or regions without mmap. */
int vfio_device_region_read(struct vfio_device *d, unsigned index, uint64_t offset, void *buf,
                            size_t n);
int vfio_device_region_write(struct vfio_device *d, unsigned index, uint64_t offset,
                             const void *buf, size_t n);

/* Sets bits in the PCI command register (PCI_COMMAND_MASTER to let it DMA). */
int vfio_device_enable_command(struct vfio_device *d, uint16_t bits, char **ret_detail);

/* VFIO_DEVICE_GET_IRQ_INFO of one index (VFIO_PCI_INTX_IRQ_INDEX, MSI, MSI-X...). */
int vfio_device_get_irq_info(struct vfio_device *d, unsigned index, struct vfio_irq_info *ret,
                             char **ret_detail);

/* VFIO_DEVICE_RESET: the function-level reset the kernel picks (-ENOTTY when the
 * device offers none). */
int vfio_device_ioctl_reset(struct vfio_device *d, char **ret_detail);

struct vfio_hot_reset_dep {
        struct pci_addr addr;
        int32_t group_id; /* legacy backends */
        uint32_t devid;   /* iommufd: VFIO_PCI_DEVID_OWNED, _NOT_OWNED or an id */
};

/* VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: the devices a bus reset of d would also reset.
 * *ret_by_devid says whether the kernel named them by iommufd devid (cdev-opened) or by
 * group. The array is the caller's to free. */
int vfio_device_get_hot_reset_info(struct vfio_device *d, struct vfio_hot_reset_dep **ret,
                                   size_t *ret_n, bool *ret_by_devid, char **ret_detail);
