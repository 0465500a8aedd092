/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "detail.h"
#include "dma.h"
#include "format-util.h"
#include "iommu-internal.h"
#include "macro.h"
#include "vfio-uapi.h"

_Static_assert(VFIO_DMA_DEVICE_READS == VFIO_DMA_MAP_FLAG_READ, "prot bits follow type1's");
_Static_assert(VFIO_DMA_DEVICE_WRITES == VFIO_DMA_MAP_FLAG_WRITE, "prot bits follow type1's");

static int refresh_ranges(struct vfio_iommu *m, char **ret_detail)
{
        int q;

        if (!m->ranges_stale)
                return 0;
        /* type1 knows its IOMMU driver, hence its ranges, only once a group is in. */
        if (m->ops->backend != VFIO_BACKEND_IOMMUFD && !m->iommu_set)
                return detail_errno(ret_detail, -ENODEV,
                                    "no device is open in this container yet: the IOMMU and "
                                    "its IOVA ranges are unknown until one is");
        q = m->ops->query(m, ret_detail);
        if (q < 0)
                return q;
        m->ranges_stale = false;
        return 0;
}

int vfio_dma_get_ranges(struct vfio_iommu *m, const struct iova_range **ret, size_t *ret_n,
                        uint64_t *ret_page_size, char **ret_detail)
{
        int q = refresh_ranges(m, ret_detail);

        if (q < 0)
                return q;
        *ret = m->ranges;
        *ret_n = m->n_ranges;
        if (ret_page_size)
                *ret_page_size = m->page_size;
        return 0;
}

const struct dma_table *vfio_dma_table(const struct vfio_iommu *m)
{
        return &m->table;
}

/* "VmLck:   1234 kB" from proc/self/status, in bytes; -ENOENT without the line. */
static int status_field(const char *status, const char *key, uint64_t *ret)
{
        size_t n = strlen(key);
        unsigned long long kb;

        for (const char *l = status; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
                if (strncmp(l, key, n) == 0 && l[n] == ':' &&
                    sscanf(l + n + 1, "%llu kB", &kb) == 1) {
                        *ret = (uint64_t)kb * 1024;
                        return 0;
                }
        return -ENOENT;
}

int vfio_dma_explain_memlock(const struct vfio_iommu *m, uint64_t request, char **ret_detail)
{
        _cleanup_free_ char *status = NULL;
        struct rlimit rl;
        uint64_t locked = 0, pinned = 0, base, need;
        bool known = false, per_user = !vfio_iommu_process_accounting(m);
        char s_req[FORMAT_SIZE_MAX], s_lim[FORMAT_SIZE_MAX], s_hard[FORMAT_SIZE_MAX],
                s_lck[FORMAT_SIZE_MAX], s_pin[FORMAT_SIZE_MAX], s_need[FORMAT_SIZE_MAX];

        if (getrlimit(RLIMIT_MEMLOCK, &rl) < 0)
                return detail_errno(ret_detail, -ENOMEM,
                                    "the kernel could not pin %s (and RLIMIT_MEMLOCK is "
                                    "unreadable: %m)",
                                    format_size(request, s_req));
        if (rl.rlim_cur == RLIM_INFINITY)
                return detail_errno(ret_detail, -ENOMEM,
                                    "the kernel could not pin %s although RLIMIT_MEMLOCK is "
                                    "unlimited: the system is out of memory",
                                    format_size(request, s_req));
        /* Only the live host's /proc describes this process. */
        if (m->root->is_host &&
            root_read_file(m->root, "proc/self/status", 1 << 20, &status, NULL) >= 0)
                known = status_field(status, "VmLck", &locked) >= 0 &&
                        status_field(status, "VmPin", &pinned) >= 0;
        /* type1 and iommufd's per-process mode charge the process's locked_vm (VmLck);
         * iommufd's default charges the user, which /proc does not show: this process's
         * own pins (VmPin) and this handle's mappings are a lower bound. */
        base = per_user ? (pinned > m->table.bytes ? pinned : m->table.bytes) : locked;
        need = base + request;
        format_size(request, s_req);
        format_size(rl.rlim_cur, s_lim);
        if (rl.rlim_max == RLIM_INFINITY)
                snprintf(s_hard, sizeof(s_hard), "unlimited");
        else
                format_size(rl.rlim_max, s_hard);
        format_size(locked, s_lck);
        format_size(pinned, s_pin);
        format_size(need, s_need);
        return detail_errno(
                ret_detail, -ENOMEM,
                "pinning %s more would exceed RLIMIT_MEMLOCK: the limit is %s (hard %s)%s%s%s%s%s; "
                "%s at least %s: raise it (prlimit --memlock=%" PRIu64 ", LimitMEMLOCK= in a "
                "unit) or grant CAP_IPC_LOCK",
                s_req, s_lim, s_hard, known ? ", this process has " : "", known ? s_lck : "",
                known ? " locked (VmLck) and " : "", known ? s_pin : "",
                known ? " pinned (VmPin)" : "",
                per_user ? "iommufd charges every process of this user together, so it needs"
                         : "it needs",
                s_need, need);
}

static int kernel_refusal(struct vfio_iommu *m, int q, uint64_t iova, uint64_t size,
                          char **ret_detail)
{
        _cleanup_free_ char *why = NULL;

        switch (q) {
        case -ENOMEM:
                vfio_dma_explain_memlock(m, size, &why);
                return detail_errno(ret_detail, q, "mapping IOVA 0x%" PRIx64 ": %s", iova,
                                    detail_or_strerror(why, q));
        case -ENOSPC:
                return detail_errno(ret_detail, q,
                                    "mapping IOVA 0x%" PRIx64 ": the kernel allows no more "
                                    "mappings in this container (vfio_iommu_type1."
                                    "dma_entry_limit); %zu are made",
                                    iova, m->table.n);
        case -EFAULT:
                return detail_errno(ret_detail, q,
                                    "mapping IOVA 0x%" PRIx64 ": the memory is not mapped in "
                                    "this process (or not with the access asked for)",
                                    iova);
        case -EEXIST:
                return detail_errno(ret_detail, q,
                                    "mapping IOVA 0x%" PRIx64 ": the kernel already has a "
                                    "mapping there, made outside this handle",
                                    iova);
        default:
                return detail_errno(ret_detail, q,
                                    "mapping %" PRIu64 " bytes at IOVA 0x%" PRIx64 " failed: %s",
                                    size, iova, strerror(-q));
        }
}

static int map_common(struct vfio_iommu *m, void *vaddr, uint64_t iova, uint64_t size,
                      unsigned prot, void *window, size_t window_size, char **ret_detail)
{
        struct dma_mapping e = {
                .iova = iova,
                .size = size,
                .vaddr = (uintptr_t)vaddr,
                .window = window,
                .window_size = window_size,
        };
        int q;

        if (!dma_map_is_plain_append(&m->table, m->ranges, m->n_ranges, m->page_size, iova, size,
                                     (uintptr_t)vaddr)) {
                q = dma_check_map(&m->table, m->ranges, m->n_ranges, m->page_size, iova, size,
                                  (uintptr_t)vaddr, ret_detail);
                if (q < 0)
                        return q;
        }
        q = m->ops->map(m, (uintptr_t)vaddr, iova, size, prot);
        if (q < 0)
                return kernel_refusal(m, q, iova, size, ret_detail);
        q = dma_table_append_fast(&m->table, &e) ? 0 : dma_table_insert(&m->table, &e);
        if (q < 0) {
                /* Keep the table the truth: undo what it cannot record. */
                (void)m->ops->unmap(m, iova, size, size);
                return detail_errno(ret_detail, q, "out of memory recording a mapping");
        }
        return 0;
}

static int refuse_noiommu(struct vfio_iommu *m, char **ret_detail)
{
        return detail_errno(ret_detail, -EOPNOTSUPP,
                            "no DMA mapping in vfio's no-IOMMU mode: there is no IOMMU, the "
                            "device sees physical memory and nothing restricts it");
}

int vfio_dma_map(struct vfio_iommu *m, void *vaddr, uint64_t iova, uint64_t size, unsigned prot,
                 char **ret_detail)
{
        int q;

        if (!m->ops->map)
                return refuse_noiommu(m, ret_detail);
        if (prot == 0 || (prot & ~(unsigned)VFIO_DMA_READ_WRITE))
                return detail_errno(ret_detail, -EINVAL, "invalid DMA access flags 0x%x", prot);
        q = refresh_ranges(m, ret_detail);
        if (q < 0)
                return q;
        return map_common(m, vaddr, iova, size, prot, NULL, 0, ret_detail);
}

int vfio_dma_map_memfd(struct vfio_iommu *m, int memfd, uint64_t offset, uint64_t iova,
                       uint64_t size, unsigned prot, void **ret_addr, char **ret_detail)
{
        long pg = sysconf(_SC_PAGESIZE);
        void *w;
        int q;

        if (!m->ops->map)
                return refuse_noiommu(m, ret_detail);
        if (prot == 0 || (prot & ~(unsigned)VFIO_DMA_READ_WRITE))
                return detail_errno(ret_detail, -EINVAL, "invalid DMA access flags 0x%x", prot);
        if (pg <= 0 || offset % (uint64_t)pg != 0)
                return detail_errno(ret_detail, -EINVAL,
                                    "file offset 0x%" PRIx64 " is not a multiple of the page "
                                    "size",
                                    offset);
        if (size > SIZE_MAX)
                return detail_errno(ret_detail, -ERANGE, "size 0x%" PRIx64 " is too large", size);
        q = refresh_ranges(m, ret_detail);
        if (q < 0)
                return q;
        /* Refuse before creating the window; the window's address is page aligned. */
        q = dma_check_map(&m->table, m->ranges, m->n_ranges, m->page_size, iova, size, 0,
                          ret_detail);
        if (q < 0)
                return q;
        w = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, (off_t)offset);
        if (w == MAP_FAILED)
                return detail_errno(ret_detail, negative_errno(),
                                    "cannot map %" PRIu64 " bytes of the file at offset 0x%" PRIx64
                                    ": %m",
                                    size, offset);
        q = map_common(m, w, iova, size, prot, w, (size_t)size, ret_detail);
        if (q < 0) {
                munmap(w, (size_t)size);
                return q;
        }
        if (ret_addr)
                *ret_addr = w;
        return 0;
}

int vfio_dma_unmap(struct vfio_iommu *m, uint64_t iova, uint64_t size, char **ret_detail)
{
        uint64_t expected = 0;
        size_t first, end;
        int q;

        if (!m->ops->unmap)
                return refuse_noiommu(m, ret_detail);
        if (dma_unmap_is_first(&m->table, iova, size)) {
                first = 0;
                end = 1;
        } else {
                q = dma_check_unmap(&m->table, m->page_size, iova, size, &first, &end, ret_detail);
                if (q < 0)
                        return q;
        }
        for (size_t i = first; i < end; i++)
                expected += m->table.v[i].size;
        q = m->ops->unmap(m, iova, size, expected);
        if (q < 0)
                return detail_errno(ret_detail, q,
                                    "unmapping IOVA 0x%" PRIx64 "+0x%" PRIx64 " failed: %s", iova,
                                    size, strerror(-q));
        for (size_t i = first; i < end; i++)
                if (m->table.v[i].window)
                        munmap(m->table.v[i].window, m->table.v[i].window_size);
        if (first == 0 && end == 1)
                dma_table_pop_first(&m->table);
        else
                dma_table_remove(&m->table, first, end);
        return 0;
}
