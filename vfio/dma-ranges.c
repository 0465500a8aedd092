/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detail.h"
#include "dma-ranges.h"

void dma_table_done(struct dma_table *t)
{
        free(t->buf);
        *t = (struct dma_table){0};
}

/* Makes one free slot in front of the entries (front) or behind them: recentre when
 * the allocation is at most half full, else double it, entries in the middle. */
static int table_make_room(struct dma_table *t, bool front)
{
        size_t ncap, noff;
        struct dma_mapping *nb;

        if (front ? t->off > 0 : t->off + t->n < t->cap)
                return 0;
        if (t->cap >= 16 && t->n + 1 <= t->cap / 2) {
                noff = (t->cap - t->n) / 2;
                if (t->n)
                        memmove(t->buf + noff, t->buf + t->off, t->n * sizeof(*t->buf));
                t->off = noff;
        } else {
                ncap = t->cap ? t->cap * 2 : 16;
                nb = calloc(ncap, sizeof(*nb));
                if (!nb)
                        return -ENOMEM;
                noff = (ncap - t->n) / 2;
                if (t->n)
                        memcpy(nb + noff, t->buf + t->off, t->n * sizeof(*nb));
                free(t->buf);
                t->buf = nb;
                t->cap = ncap;
                t->off = noff;
        }
        t->v = t->buf + t->off;
        return 0;
}

static uint64_t mapping_last(const struct dma_mapping *m)
{
        return m->iova + (m->size - 1);
}

size_t dma_table_lower_bound(const struct dma_table *t, uint64_t iova)
{
        size_t lo = 0, hi = t->n;

        /* Entries never overlap, so their ends are sorted like their starts. */
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (mapping_last(&t->v[mid]) < iova)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

static bool aligned(uint64_t v, uint64_t align)
{
        return (v & (align - 1)) == 0;
}

int dma_check_map(const struct dma_table *t, const struct iova_range *ranges, size_t n_ranges,
                  uint64_t align, uint64_t iova, uint64_t size, uint64_t vaddr, char **ret_detail)
{
        char a[FORMAT_SIZE_MAX];
        uint64_t last;
        size_t i;

        if (size == 0)
                return detail_errno(ret_detail, -EINVAL, "cannot map 0 bytes at IOVA 0x%" PRIx64,
                                    iova);
        if (align == 0 || (align & (align - 1)) != 0)
                return detail_errno(ret_detail, -EINVAL,
                                    "the IOMMU page size 0x%" PRIx64 " is not a power of two",
                                    align);
        if (!aligned(iova, align) || !aligned(size, align) || !aligned(vaddr, align))
                return detail_errno(ret_detail, -EINVAL,
                                    "IOVA 0x%" PRIx64 ", size 0x%" PRIx64 " and address 0x%" PRIx64
                                    " must all be multiples of the IOMMU page size (%s)",
                                    iova, size, vaddr, format_size(align, a));
        if (__builtin_add_overflow(iova, size - 1, &last))
                return detail_errno(ret_detail, -ERANGE,
                                    "IOVA 0x%" PRIx64 " plus size 0x%" PRIx64
                                    " wraps around the address space",
                                    iova, size);

        if (n_ranges > 0) {
                for (i = 0; i < n_ranges; i++)
                        if (iova >= ranges[i].start && last <= ranges[i].last)
                                break;
                if (i == n_ranges) {
                        /* Name the range the request starts in or the nearest below it,
                         * the likeliest intent. */
                        const struct iova_range *near = NULL;
                        for (size_t k = 0; k < n_ranges; k++)
                                if (ranges[k].start <= iova &&
                                    (!near || ranges[k].start > near->start))
                                        near = &ranges[k];
                        if (!near)
                                near = &ranges[0];
                        return detail_errno(
                                ret_detail, -ERANGE,
                                "IOVA 0x%" PRIx64 "-0x%" PRIx64
                                " is not inside one usable IOVA range (%zu range%s; nearest "
                                "0x%" PRIx64 "-0x%" PRIx64 ")",
                                iova, last, n_ranges, n_ranges == 1 ? "" : "s", near->start,
                                near->last);
                }
        }

        /* Past the last mapping (the common, ascending case): nothing to search. */
        if (t->n == 0 || mapping_last(&t->v[t->n - 1]) < iova)
                return 0;
        i = dma_table_lower_bound(t, iova);
        if (i < t->n && t->v[i].iova <= last) {
                const struct dma_mapping *m = &t->v[i];
                return detail_errno(ret_detail, -EEXIST,
                                    "IOVA 0x%" PRIx64 "-0x%" PRIx64
                                    " overlaps the existing mapping 0x%" PRIx64 "-0x%" PRIx64,
                                    iova, last, m->iova, mapping_last(m));
        }
        return 0;
}

int dma_table_insert(struct dma_table *t, const struct dma_mapping *m)
{
        size_t i;
        bool front;
        int r;

        /* Mappings are usually made in ascending order: append without a search. */
        if (t->n == 0 || t->v[t->n - 1].iova < m->iova)
                i = t->n;
        else
                i = dma_table_lower_bound(t, m->iova);
        front = i < t->n - i;
        r = table_make_room(t, front);
        if (r < 0)
                return r;
        if (front) {
                if (i)
                        memmove(t->v - 1, t->v, i * sizeof(*t->v));
                t->off--;
                t->v--;
        } else if (i < t->n)
                memmove(t->v + i + 1, t->v + i, (t->n - i) * sizeof(*t->v));
        t->v[i] = *m;
        t->n++;
        t->bytes += m->size;
        return 0;
}

int dma_check_unmap(const struct dma_table *t, uint64_t align, uint64_t iova, uint64_t size,
                    size_t *ret_first, size_t *ret_end, char **ret_detail)
{
        uint64_t last;
        size_t first, end;

        if (size == 0)
                return detail_errno(ret_detail, -EINVAL, "cannot unmap 0 bytes at IOVA 0x%" PRIx64,
                                    iova);
        if (align > 0 && (!aligned(iova, align) || !aligned(size, align)))
                return detail_errno(ret_detail, -EINVAL,
                                    "IOVA 0x%" PRIx64 " and size 0x%" PRIx64
                                    " must be multiples of the IOMMU page size 0x%" PRIx64,
                                    iova, size, align);
        if (__builtin_add_overflow(iova, size - 1, &last))
                return detail_errno(ret_detail, -ERANGE,
                                    "IOVA 0x%" PRIx64 " plus size 0x%" PRIx64
                                    " wraps around the address space",
                                    iova, size);

        /* The oldest mapping exactly: the common streaming case needs no search. */
        if (t->n > 0 && t->v[0].iova == iova && t->v[0].size == size) {
                *ret_first = 0;
                *ret_end = 1;
                return 0;
        }
        first = dma_table_lower_bound(t, iova);
        end = first;
        while (end < t->n && t->v[end].iova <= last)
                end++;
        if (first == end)
                return detail_errno(ret_detail, -ENOENT,
                                    "nothing is mapped at IOVA 0x%" PRIx64 "-0x%" PRIx64, iova,
                                    last);
        /* The kernel cannot unmap part of a mapping (type1v2 and iommufd both refuse):
         * only the first and the last entries can stick out. */
        if (t->v[first].iova < iova || mapping_last(&t->v[end - 1]) > last) {
                const struct dma_mapping *m =
                        t->v[first].iova < iova ? &t->v[first] : &t->v[end - 1];
                return detail_errno(ret_detail, -EINVAL,
                                    "IOVA 0x%" PRIx64 "-0x%" PRIx64
                                    " would split the mapping 0x%" PRIx64 "-0x%" PRIx64
                                    ": unmap whole mappings",
                                    iova, last, m->iova, mapping_last(m));
        }
        *ret_first = first;
        *ret_end = end;
        return 0;
}

void dma_table_remove(struct dma_table *t, size_t first, size_t end)
{
        size_t k = end - first;

        for (size_t i = first; i < end; i++)
                t->bytes -= t->v[i].size;
        /* Close the gap from the shorter side. */
        if (first < t->n - end) {
                if (first)
                        memmove(t->v + k, t->v, first * sizeof(*t->v));
                t->off += k;
                t->v += k;
        } else if (end < t->n)
                memmove(t->v + first, t->v + end, (t->n - end) * sizeof(*t->v));
        t->n -= k;
}
