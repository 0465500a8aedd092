/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The kernel's VFIO and iommufd interfaces. Build hosts often carry older uapi headers
 * than the kernels vfiod drives (Debian 12 ships 6.1 headers, which predate iommufd's
 * vfio cdev support), so what the installed headers lack is declared here with the
 * layouts and ioctl numbers of the kernel ABI, which never change once released. */

#include <linux/ioctl.h>
#include <linux/types.h>
#include <linux/vfio.h>

#if __has_include(<linux/iommufd.h>)
#include <linux/iommufd.h>
#endif

/* vfio device cdev <-> iommufd (Linux 6.6). */
#ifndef VFIO_DEVICE_BIND_IOMMUFD
struct vfio_device_bind_iommufd {
        __u32 argsz;
        __u32 flags;
        __s32 iommufd;
        __u32 out_devid;
};
#define VFIO_DEVICE_BIND_IOMMUFD _IO(VFIO_TYPE, VFIO_BASE + 18)

struct vfio_device_attach_iommufd_pt {
        __u32 argsz;
        __u32 flags;
        __u32 pt_id;
};
#define VFIO_DEVICE_ATTACH_IOMMUFD_PT _IO(VFIO_TYPE, VFIO_BASE + 19)

struct vfio_device_detach_iommufd_pt {
        __u32 argsz;
        __u32 flags;
};
#define VFIO_DEVICE_DETACH_IOMMUFD_PT _IO(VFIO_TYPE, VFIO_BASE + 20)
#endif

/* Hot-reset info of a cdev-opened device names dependents by devid (Linux 6.6). */
#ifndef VFIO_PCI_HOT_RESET_FLAG_DEV_ID
#define VFIO_PCI_HOT_RESET_FLAG_DEV_ID       (1 << 0)
#define VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED (1 << 1)
#define VFIO_PCI_DEVID_OWNED                 0
#define VFIO_PCI_DEVID_NOT_OWNED             -1
#endif

/* iommufd (Linux 6.2): only what vfiod uses. */
#ifndef IOMMU_IOAS_ALLOC
#define IOMMUFD_TYPE (';')

struct iommu_destroy {
        __u32 size;
        __u32 id;
};
#define IOMMU_DESTROY _IO(IOMMUFD_TYPE, 0x80)

struct iommu_ioas_alloc {
        __u32 size;
        __u32 flags;
        __u32 out_ioas_id;
};
#define IOMMU_IOAS_ALLOC _IO(IOMMUFD_TYPE, 0x81)

struct iommu_iova_range {
        __aligned_u64 start;
        __aligned_u64 last;
};

struct iommu_ioas_iova_ranges {
        __u32 size;
        __u32 ioas_id;
        __u32 num_iovas;
        __u32 __reserved;
        __aligned_u64 allowed_iovas;
        __aligned_u64 out_iova_alignment;
};
#define IOMMU_IOAS_IOVA_RANGES _IO(IOMMUFD_TYPE, 0x84)

enum iommufd_ioas_map_flags {
        IOMMU_IOAS_MAP_FIXED_IOVA = 1 << 0,
        IOMMU_IOAS_MAP_WRITEABLE = 1 << 1,
        IOMMU_IOAS_MAP_READABLE = 1 << 2,
};

struct iommu_ioas_map {
        __u32 size;
        __u32 flags;
        __u32 ioas_id;
        __u32 __reserved;
        __aligned_u64 user_va;
        __aligned_u64 length;
        __aligned_u64 iova;
};
#define IOMMU_IOAS_MAP _IO(IOMMUFD_TYPE, 0x85)

struct iommu_ioas_unmap {
        __u32 size;
        __u32 ioas_id;
        __aligned_u64 iova;
        __aligned_u64 length;
};
#define IOMMU_IOAS_UNMAP _IO(IOMMUFD_TYPE, 0x86)

enum iommufd_option {
        IOMMU_OPTION_RLIMIT_MODE = 0,
        IOMMU_OPTION_HUGE_PAGES = 1,
};

enum iommufd_option_ops {
        IOMMU_OPTION_OP_SET = 0,
        IOMMU_OPTION_OP_GET = 1,
};

struct iommu_option {
        __u32 size;
        __u32 option_id;
        __u16 op;
        __u16 __reserved;
        __u32 object_id;
        __aligned_u64 val64;
};
#define IOMMU_OPTION _IO(IOMMUFD_TYPE, 0x87)
#endif

/* Migration: PRE_COPY (Linux 6.2) beside STOP_COPY and P2P (5.18). */
#ifndef VFIO_MIGRATION_PRE_COPY
#define VFIO_MIGRATION_PRE_COPY (1 << 2)
#endif
#ifndef VFIO_DEVICE_FEATURE_DMA_LOGGING_START
#define VFIO_DEVICE_FEATURE_DMA_LOGGING_START 6
#endif

/* IOMMU_GET_HW_INFO (Linux 6.6) with out_capabilities (6.7), under a name of its own:
 * installed headers of 6.6 have the command but not the field. A kernel that predates
 * the field leaves it as passed (zero). */
struct vfiod_iommu_hw_info {
        __u32 size;
        __u32 flags;
        __u32 dev_id;
        __u32 data_len;
        __aligned_u64 data_uptr;
        __u32 out_data_type;
        __u32 __reserved;
        __aligned_u64 out_capabilities;
};
#define VFIOD_IOMMU_GET_HW_INFO           _IO(';', 0x8a)
#define VFIOD_IOMMU_HW_CAP_DIRTY_TRACKING (1 << 0)
