/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The bookkeeping behind DMA mapping: the sorted table of what a handle has mapped, and
 * the checks a map or unmap request must pass before the kernel is asked. Pure logic,
 * no system calls, so that every refusal can be unit tested. Ranges are inclusive, as
 * the kernel reports them. Errors: -EINVAL (zero size, misaligned, an unmap that would
 * split a mapping), -ERANGE (wraps around, or outside every usable IOVA range), -EEXIST
 * (overlaps a mapping), -ENOENT (an unmap that covers no mapping); the detail says
 * which addresses are involved. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format-util.h"

struct iova_range {
        uint64_t start, last;
};

struct dma_mapping {
        uint64_t iova, size;
        uint64_t vaddr;
        /* A region the handle mapped into the process on the caller's behalf (a memfd
         * window) and unmaps with the mapping; NULL when the caller owns the memory. */
        void *window;
        size_t window_size;
};

/* A sorted array with room kept at both ends: mappings made in ascending order and
 * unmapped oldest first (or newest first) cost O(1) each, any other order the move of
 * the shorter side. */
struct dma_table {
        struct dma_mapping *v; /* n entries, sorted by iova, never overlapping */
        size_t n;
        struct dma_mapping *buf; /* the allocation: v == buf + off */
        size_t off, cap;
        uint64_t bytes; /* sum of sizes: what the kernel has pinned for this table */
};

/* Frees the array (not the windows: those belong to the layer that made them). */
void dma_table_done(struct dma_table *t);

/* Index of the first mapping that ends at or after iova (t->n if none). */
size_t dma_table_lower_bound(const struct dma_table *t, uint64_t iova);

/* Checks a request to map [iova, iova + size) from vaddr: size non-zero, iova, size and
 * vaddr multiples of align (a power of two), no wrap-around, inside one of ranges (not
 * checked when n_ranges is 0: nothing known), no overlap with the table. */
int dma_check_map(const struct dma_table *t, const struct iova_range *ranges, size_t n_ranges,
                  uint64_t align, uint64_t iova, uint64_t size, uint64_t vaddr, char **ret_detail);

/* Inserts m at its place; the caller has run dma_check_map(). 0 or -ENOMEM. */
int dma_table_insert(struct dma_table *t, const struct dma_mapping *m);

/* Checks a request to unmap [iova, iova + size): it must cover at least one mapping and
 * only whole ones. On success the mappings concerned are [*ret_first, *ret_end). */
int dma_check_unmap(const struct dma_table *t, uint64_t align, uint64_t iova, uint64_t size,
                    size_t *ret_first, size_t *ret_end, char **ret_detail);

/* Drops the entries [first, end). */
void dma_table_remove(struct dma_table *t, size_t first, size_t end);

/* The common cases, inline, for callers' hot paths (every call and return costs, and
 * a map or unmap is one ioctl away from the kernel): when these say no, the full
 * functions above decide, and explain. */

/* True when dma_check_map() would accept the request and it lands after the last
 * mapping: the way mappings are usually made. */
static inline bool dma_map_is_plain_append(const struct dma_table *t,
                                           const struct iova_range *ranges, size_t n_ranges,
                                           uint64_t align, uint64_t iova, uint64_t size,
                                           uint64_t vaddr)
{
        uint64_t last;
        size_t i;

        if (size == 0 || align == 0 || (align & (align - 1)) ||
            ((iova | size | vaddr) & (align - 1)) || __builtin_add_overflow(iova, size - 1, &last))
                return false;
        if (t->n > 0 && t->v[t->n - 1].iova + (t->v[t->n - 1].size - 1) >= iova)
                return false;
        for (i = 0; i < n_ranges; i++)
                if (iova >= ranges[i].start && last <= ranges[i].last)
                        return true;
        return n_ranges == 0;
}

/* Appends m when it sorts last and there is room behind the entries; false when
 * dma_table_insert() has to do it. */
static inline bool dma_table_append_fast(struct dma_table *t, const struct dma_mapping *m)
{
        if (!t->buf || t->off + t->n >= t->cap || (t->n > 0 && t->v[t->n - 1].iova >= m->iova))
                return false;
        t->v[t->n++] = *m;
        t->bytes += m->size;
        return true;
}

/* True when [iova, iova + size) is exactly the first mapping: unmapping oldest first. */
static inline bool dma_unmap_is_first(const struct dma_table *t, uint64_t iova, uint64_t size)
{
        return t->n > 0 && t->v[0].iova == iova && t->v[0].size == size;
}

/* Drops the first mapping: dma_table_remove(t, 0, 1) without moving anything. */
static inline void dma_table_pop_first(struct dma_table *t)
{
        t->bytes -= t->v[0].size;
        t->v++;
        t->off++;
        t->n--;
}
