/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* DMA mappings of a vfio_iommu: process memory made visible to its devices at an IOVA.
 * Every request is checked against what the handle has mapped and what the kernel
 * reported as usable before the kernel is asked (see dma-ranges.h for the errno of each
 * refusal), so a bad request changes nothing. When the kernel itself refuses with
 * -ENOMEM because pinning would exceed RLIMIT_MEMLOCK, the detail gives the limit, what
 * is pinned already and what is needed. The no-IOMMU backend maps nothing: every map
 * there is -EOPNOTSUPP. */

#include <stdint.h>

#include "dma-ranges.h"
#include "iommu.h"

enum {
        VFIO_DMA_DEVICE_READS = 1u << 0,  /* the device may read the memory */
        VFIO_DMA_DEVICE_WRITES = 1u << 1, /* the device may write it */
        VFIO_DMA_READ_WRITE = VFIO_DMA_DEVICE_READS | VFIO_DMA_DEVICE_WRITES,
};

/* The usable IOVA ranges (inclusive; none when the kernel reports none) and the mapping
 * granule, as of the last device attached. The array belongs to m. */
int vfio_dma_get_ranges(struct vfio_iommu *m, const struct iova_range **ret, size_t *ret_n,
                        uint64_t *ret_page_size, char **ret_detail);

/* Maps [vaddr, vaddr + size) of this process at iova. The memory must stay mapped in the
 * process until it is unmapped here. */
int vfio_dma_map(struct vfio_iommu *m, void *vaddr, uint64_t iova, uint64_t size, unsigned prot,
                 char **ret_detail);

/* Maps size bytes of memfd (any shareable file) from offset at iova: the file window is
 * mapped into the process (MAP_SHARED) and unmapped again with the mapping. *ret_addr
 * (optional) is where the window is, for the caller to fill or check. */
int vfio_dma_map_memfd(struct vfio_iommu *m, int memfd, uint64_t offset, uint64_t iova,
                       uint64_t size, unsigned prot, void **ret_addr, char **ret_detail);

/* Unmaps whole mappings covering [iova, iova + size). */
int vfio_dma_unmap(struct vfio_iommu *m, uint64_t iova, uint64_t size, char **ret_detail);

/* What is mapped through m: a sorted, read-only view, and the byte total. */
const struct dma_table *vfio_dma_table(const struct vfio_iommu *m);

/* The detail for a map the kernel refused with -ENOMEM: RLIMIT_MEMLOCK, the bytes this
 * process has locked or pinned (/proc/self/status VmLck, VmPin) and the need. Exposed for
 * callers that hand handles to other processes and want to warn ahead. */
int vfio_dma_explain_memlock(const struct vfio_iommu *m, uint64_t request, char **ret_detail);
