/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A DMA address space that devices are opened into, through one of the kernel's two
 * VFIO backends: the legacy container (/dev/vfio/vfio with the type1v2 IOMMU driver,
 * devices reached through their group /dev/vfio/N), or iommufd (/dev/iommu with an IOAS,
 * devices reached through their cdev /dev/vfio/devices/vfioN). vfio's no-IOMMU mode is
 * a third, explicitly unsafe variant of the legacy path: no translation at all.
 *
 * Errors are -errno with a one-line detail in *ret_detail (the caller frees it). */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "pci-addr.h"
#include "root.h"

enum vfio_backend {
        VFIO_BACKEND_TYPE1,
        VFIO_BACKEND_IOMMUFD,
        VFIO_BACKEND_NOIOMMU,
        _VFIO_BACKEND_MAX,
        _VFIO_BACKEND_INVALID = -EINVAL,
};

const char *vfio_backend_to_string(enum vfio_backend b);
/* "type1", "iommufd" or "noiommu"; _VFIO_BACKEND_INVALID otherwise. */
enum vfio_backend vfio_backend_from_string(const char *s);

enum {
        /* The caller accepts vfio's no-IOMMU mode: a device that can DMA anywhere. */
        VFIO_IOMMU_ALLOW_NOIOMMU = 1u << 0,
        /* iommufd: charge pinned pages to the pinning process (IOMMU_OPTION_RLIMIT_MODE
         * 1) rather than to its user as a whole. Needs CAP_SYS_RESOURCE; without it the
         * handle is still made and vfio_iommu_process_accounting() says false. */
        VFIO_IOMMU_PROCESS_ACCOUNTING = 1u << 1,
};

/* How device a can be opened now: VFIO_BACKEND_NOIOMMU when its group is a no-IOMMU
 * group, VFIO_BACKEND_IOMMUFD when /dev/iommu and the device's cdev both exist, else
 * VFIO_BACKEND_TYPE1 when its group node exists. -ENODEV when there is no such device,
 * -EMEDIUMTYPE when it is not bound to a vfio driver (binding is a separate step), and
 * -ENOENT when the nodes are missing. */
int vfio_backend_detect(const struct root *r, const struct pci_addr *a, enum vfio_backend *ret,
                        char **ret_detail);

/* The group number of a device (its iommu_group link), or -ENOENT. */
int vfio_device_group_id(const struct root *r, const struct pci_addr *a, int *ret);

/* N of the device's cdev vfioN (sys/bus/pci/devices/BDF/vfio-dev/vfioN), or -ENOENT. */
int vfio_device_cdev_index(const struct root *r, const struct pci_addr *a, int *ret);

struct vfio_iommu;

/* Opens an empty address space for backend b below root r (which must outlive it):
 * the container, API version and IOMMU driver checked; or /dev/iommu with a new IOAS. */
int vfio_iommu_new(const struct root *r, enum vfio_backend b, unsigned flags,
                   struct vfio_iommu **ret, char **ret_detail);

/* The same around a handle another process opened and passed on: a /dev/vfio/vfio
 * container with no group yet, or a /dev/iommu fd with no objects. Takes fd in all
 * cases (closed on failure). */
int vfio_iommu_new_from_fd(const struct root *r, int fd, enum vfio_backend b, unsigned flags,
                           struct vfio_iommu **ret, char **ret_detail);

/* Opens the kernel handle of backend b for passing to another process, without
 * configuring it: /dev/vfio/vfio or /dev/iommu, the latter with process accounting when
 * flags ask for it (*ret_process_accounting says whether it took). */
int vfio_iommu_open_raw(const struct root *r, enum vfio_backend b, unsigned flags, int *ret_fd,
                        bool *ret_process_accounting, char **ret_detail);

/* Unmaps everything mapped through it and closes it; devices opened into it must have
 * been freed first. Accepts NULL; returns NULL. */
struct vfio_iommu *vfio_iommu_free(struct vfio_iommu *m);

static inline void vfio_iommu_freep(struct vfio_iommu **m)
{
        vfio_iommu_free(*m);
}

enum vfio_backend vfio_iommu_backend(const struct vfio_iommu *m);

/* The container or iommufd file descriptor (still owned by m). */
int vfio_iommu_fd(const struct vfio_iommu *m);

/* The IOAS of an iommufd handle; 0 otherwise. */
uint32_t vfio_iommu_ioas(const struct vfio_iommu *m);

/* Whether pinned pages are charged to the process (iommufd option set, or type1, which
 * always does so) rather than to its user. */
bool vfio_iommu_process_accounting(const struct vfio_iommu *m);

/* Whether some process holds device a's VFIO node open (its cdev or its group node), by
 * the fd links under proc/ below the root: 1 and *ret_pid one such process, or 0. The
 * kernel blocks an unbind of an open vfio-pci device until it is closed, so callers
 * check this before giving a device back. Processes that vanish while looked at are
 * skipped. */
int vfio_device_open_by(const struct root *r, const struct pci_addr *a, int *ret_pid);

/* Whether device a's IOMMU group is in use through VFIO right now, asked of the kernel
 * directly: the group node refuses a second opener (EBUSY) while the group is open or
 * one of its devices is bound to an iommufd through its cdev. 1 busy, 0 free, or -errno
 * (-ENOENT: no group node, the device is not on a vfio driver). Cheap, unlike
 * vfio_device_open_by(), but blind to a cdev that is open and not yet bound. */
int vfio_device_group_busy(const struct root *r, const struct pci_addr *a);

/* The same for a group number already known. */
int vfio_group_busy(const struct root *r, int group);
