/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dma-ranges.h"
#include "format-util.h"

#define PG 0x1000ull

/* Two usable ranges with the x86 MSI window between them, as VT-d reports. */
static const struct iova_range ranges[] = {
        {0x0, 0xfedfffff},
        {0xfef00000, 0xffffffffffffull},
};

static int map(struct dma_table *t, uint64_t iova, uint64_t size, char **why)
{
        int r = dma_check_map(t, ranges, 2, PG, iova, size, 0x7f0000000000ull + iova, why);

        if (r < 0)
                return r;
        return dma_table_insert(t, &(struct dma_mapping){.iova = iova, .size = size});
}

static void aligned_requests_inside_a_range_are_accepted_and_kept_sorted(void **state)
{
        struct dma_table t = {0};

        assert_int_equal(map(&t, 0x300000, PG, NULL), 0);
        assert_int_equal(map(&t, 0x100000, 2 * PG, NULL), 0);
        assert_int_equal(map(&t, 0x200000, PG, NULL), 0);
        assert_int_equal(map(&t, 0xfef00000, PG, NULL), 0);
        assert_int_equal(t.n, 4);
        assert_int_equal(t.bytes, 5 * PG);
        for (size_t i = 1; i < t.n; i++)
                assert_true(t.v[i - 1].iova < t.v[i].iova);
        dma_table_done(&t);
}

static void adjacent_mappings_do_not_overlap(void **state)
{
        struct dma_table t = {0};

        assert_int_equal(map(&t, 0x10000, PG, NULL), 0);
        assert_int_equal(map(&t, 0x10000 + PG, PG, NULL), 0);
        assert_int_equal(map(&t, 0x10000 - PG, PG, NULL), 0);
        assert_int_equal(t.n, 3);
        dma_table_done(&t);
}

static void overlaps_of_every_shape_are_eexist_with_both_ranges_named(void **state)
{
        struct dma_table t = {0};
        char *why = NULL;

        assert_int_equal(map(&t, 0x400000, 4 * PG, NULL), 0);
        /* Starting inside, ending inside, covering, inside. */
        assert_int_equal(map(&t, 0x3ff000, 2 * PG, &why), -EEXIST);
        assert_non_null(strstr(why, "0x3ff000-0x400fff"));
        assert_non_null(strstr(why, "0x400000-0x403fff"));
        assert_int_equal(map(&t, 0x403000, 2 * PG, &why), -EEXIST);
        assert_int_equal(map(&t, 0x3f0000, 0x20000, &why), -EEXIST);
        assert_int_equal(map(&t, 0x401000, PG, &why), -EEXIST);
        assert_int_equal(t.n, 1);
        free(why);
        dma_table_done(&t);
}

static void misaligned_iova_size_or_address_is_einval(void **state)
{
        struct dma_table t = {0};
        char *why = NULL;

        assert_int_equal(dma_check_map(&t, ranges, 2, PG, 0x1800, PG, 0x10000, &why), -EINVAL);
        assert_non_null(strstr(why, "multiples of the IOMMU page size (4 KiB)"));
        assert_int_equal(dma_check_map(&t, ranges, 2, PG, 0x1000, 0x800, 0x10000, &why), -EINVAL);
        assert_int_equal(dma_check_map(&t, ranges, 2, PG, 0x1000, PG, 0x10010, &why), -EINVAL);
        assert_int_equal(dma_check_map(&t, ranges, 2, PG, 0x1000, 0, 0x10000, &why), -EINVAL);
        assert_non_null(strstr(why, "0 bytes"));
        assert_int_equal(dma_check_map(&t, ranges, 2, 3000, 0, PG, 0, &why), -EINVAL);
        free(why);
}

static void requests_outside_the_ranges_or_wrapping_are_erange(void **state)
{
        struct dma_table t = {0};
        char *why = NULL;

        /* In the MSI window, straddling into it, past the last range, wrapping. */
        assert_int_equal(dma_check_map(&t, ranges, 2, PG, 0xfee00000, PG, 0, &why), -ERANGE);
        assert_non_null(strstr(why, "nearest 0x0-0xfedfffff"));
        assert_int_equal(dma_check_map(&t, ranges, 2, PG, 0xfedff000, 2 * PG, 0, &why), -ERANGE);
        assert_int_equal(dma_check_map(&t, ranges, 2, PG, 0x1000000000000ull, PG, 0, &why),
                         -ERANGE);
        assert_non_null(strstr(why, "nearest 0xfef00000-0xffffffffffff"));
        assert_int_equal(dma_check_map(&t, ranges, 2, PG, 0xfffffffffffff000ull, 2 * PG, 0, &why),
                         -ERANGE);
        assert_non_null(strstr(why, "wraps"));
        /* With no ranges known, only the arithmetic is checked. */
        assert_int_equal(dma_check_map(&t, NULL, 0, PG, 0xfee00000, PG, 0, &why), 0);
        free(why);
}

static void unmapping_nothing_is_enoent(void **state)
{
        struct dma_table t = {0};
        size_t first, end;
        char *why = NULL;

        assert_int_equal(dma_check_unmap(&t, PG, 0x1000, PG, &first, &end, &why), -ENOENT);
        assert_int_equal(map(&t, 0x10000, PG, NULL), 0);
        assert_int_equal(dma_check_unmap(&t, PG, 0x20000, PG, &first, &end, &why), -ENOENT);
        assert_non_null(strstr(why, "nothing is mapped at IOVA 0x20000-0x20fff"));
        free(why);
        dma_table_done(&t);
}

static void unmapping_part_of_a_mapping_is_einval_and_keeps_it(void **state)
{
        struct dma_table t = {0};
        size_t first, end;
        char *why = NULL;

        assert_int_equal(map(&t, 0x10000, 4 * PG, NULL), 0);
        assert_int_equal(dma_check_unmap(&t, PG, 0x10000, PG, &first, &end, &why), -EINVAL);
        assert_non_null(strstr(why, "split the mapping 0x10000-0x13fff"));
        assert_int_equal(dma_check_unmap(&t, PG, 0x13000, 2 * PG, &first, &end, &why), -EINVAL);
        assert_int_equal(dma_check_unmap(&t, PG, 0x10800, PG, &first, &end, &why), -EINVAL);
        assert_int_equal(t.n, 1);
        free(why);
        dma_table_done(&t);
}

static void one_unmap_takes_whole_mappings_across_gaps(void **state)
{
        struct dma_table t = {0};
        size_t first, end;

        assert_int_equal(map(&t, 0x10000, PG, NULL), 0);
        assert_int_equal(map(&t, 0x20000, PG, NULL), 0);
        assert_int_equal(map(&t, 0x30000, 2 * PG, NULL), 0);
        assert_int_equal(map(&t, 0x40000, PG, NULL), 0);
        assert_int_equal(dma_check_unmap(&t, PG, 0x20000, 0x12000, &first, &end, NULL), 0);
        assert_int_equal(first, 1);
        assert_int_equal(end, 3);
        dma_table_remove(&t, first, end);
        assert_int_equal(t.n, 2);
        assert_int_equal(t.bytes, 2 * PG);
        assert_int_equal(t.v[0].iova, 0x10000);
        assert_int_equal(t.v[1].iova, 0x40000);
        /* What was unmapped can be mapped again. */
        assert_int_equal(map(&t, 0x30000, 2 * PG, NULL), 0);
        dma_table_done(&t);
}

static void the_lower_bound_finds_the_first_mapping_ending_at_or_after(void **state)
{
        struct dma_table t = {0};

        assert_int_equal(dma_table_lower_bound(&t, 0), 0);
        assert_int_equal(map(&t, 0x10000, PG, NULL), 0);
        assert_int_equal(map(&t, 0x20000, PG, NULL), 0);
        assert_int_equal(dma_table_lower_bound(&t, 0), 0);
        assert_int_equal(dma_table_lower_bound(&t, 0x10fff), 0);
        assert_int_equal(dma_table_lower_bound(&t, 0x11000), 1);
        assert_int_equal(dma_table_lower_bound(&t, 0x21000), 2);
        dma_table_done(&t);
}

static void many_mappings_in_any_order_stay_consistent(void **state)
{
        struct dma_table t = {0};
        size_t first, end;

        /* A permutation of 0..999 (7 is coprime with 1000). */
        for (uint64_t i = 0; i < 1000; i++)
                assert_int_equal(map(&t, ((i * 7) % 1000) * 2 * PG, PG, NULL), 0);
        assert_int_equal(t.n, 1000);
        for (size_t i = 0; i < t.n; i++)
                assert_int_equal(t.v[i].iova, i * 2 * PG);
        for (uint64_t i = 0; i < 1000; i += 2) {
                assert_int_equal(dma_check_unmap(&t, PG, i * 2 * PG, PG, &first, &end, NULL), 0);
                dma_table_remove(&t, first, end);
        }
        assert_int_equal(t.n, 500);
        assert_int_equal(t.bytes, 500 * PG);
        dma_table_done(&t);
}

static void mapping_in_order_and_unmapping_oldest_first_keeps_the_table_exact(void **state)
{
        struct dma_table t = {0};
        uint64_t next = 0, oldest = 0;
        size_t first, end;

        /* A sliding window: the pattern of a streaming user, which must stay cheap. */
        for (int round = 0; round < 200; round++) {
                for (int k = 0; k < 7; k++, next++)
                        assert_int_equal(map(&t, next * PG, PG, NULL), 0);
                for (int k = 0; k < 5; k++, oldest++) {
                        assert_int_equal(
                                dma_check_unmap(&t, PG, oldest * PG, PG, &first, &end, NULL), 0);
                        assert_int_equal(first, 0);
                        dma_table_remove(&t, first, end);
                }
                assert_int_equal(t.n, next - oldest);
                assert_int_equal(t.v[0].iova, oldest * PG);
                assert_int_equal(t.v[t.n - 1].iova, (next - 1) * PG);
                assert_true(t.v >= t.buf && t.v + t.n <= t.buf + t.cap);
        }
        /* Newest first, and into the middle. */
        while (t.n > 10) {
                assert_int_equal(dma_check_unmap(&t, PG, t.v[t.n - 1].iova, PG, &first, &end, NULL),
                                 0);
                dma_table_remove(&t, first, end);
        }
        assert_int_equal(dma_check_unmap(&t, PG, t.v[4].iova, PG, &first, &end, NULL), 0);
        dma_table_remove(&t, first, end);
        assert_int_equal(map(&t, oldest * PG + 4 * PG, PG, NULL), 0);
        assert_int_equal(map(&t, (oldest - 1) * PG, PG, NULL), 0);
        for (size_t i = 1; i < t.n; i++)
                assert_true(t.v[i - 1].iova < t.v[i].iova);
        assert_int_equal(t.bytes, t.n * PG);
        dma_table_done(&t);
}

static void the_inline_fast_paths_agree_with_the_full_checks(void **state)
{
        struct dma_table fast = {0}, full = {0};
        uint64_t seed = 12345;

        for (int i = 0; i < 3000; i++) {
                /* A small pseudo-random walk of requests around a few pages. */
                seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                uint64_t iova = ((seed >> 33) % 64) * (PG / 2) + 0xfed00000 * ((seed >> 20) & 1);
                uint64_t size = (((seed >> 40) % 4) + 1) * PG;
                uint64_t va = ((seed >> 50) & 1) ? 0x10800 : 0x10000;
                size_t first, end;

                if ((seed >> 60) & 1) {
                        bool plain = dma_map_is_plain_append(&fast, ranges, 2, PG, iova, size, va);
                        int r = dma_check_map(&full, ranges, 2, PG, iova, size, va, NULL);
                        /* The fast path may decline what is fine, never accept what is not. */
                        if (plain)
                                assert_int_equal(r, 0);
                        if (r == 0) {
                                struct dma_mapping m = {.iova = iova, .size = size};
                                if (!dma_table_append_fast(&fast, &m))
                                        assert_int_equal(dma_table_insert(&fast, &m), 0);
                                assert_int_equal(dma_table_insert(&full, &m), 0);
                        }
                } else if (dma_check_unmap(&full, PG, iova, size, &first, &end, NULL) == 0) {
                        if (dma_unmap_is_first(&fast, iova, size))
                                dma_table_pop_first(&fast);
                        else
                                dma_table_remove(&fast, first, end);
                        dma_table_remove(&full, first, end);
                } else
                        assert_false(dma_unmap_is_first(&fast, iova, size));
                assert_int_equal(fast.n, full.n);
                assert_int_equal(fast.bytes, full.bytes);
                for (size_t k = 0; k < fast.n; k++)
                        assert_int_equal(fast.v[k].iova, full.v[k].iova);
        }
        dma_table_done(&fast);
        dma_table_done(&full);
}

static void sizes_are_formatted_in_binary_units(void **state)
{
        char b[32];

        assert_string_equal(format_size(0, b), "0 B");
        assert_string_equal(format_size(1000, b), "1000 B");
        assert_string_equal(format_size(4096, b), "4 KiB");
        assert_string_equal(format_size(8 << 20, b), "8 MiB");
        assert_string_equal(format_size(1536ull << 20, b), "1.5 GiB");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(aligned_requests_inside_a_range_are_accepted_and_kept_sorted),
                cmocka_unit_test(adjacent_mappings_do_not_overlap),
                cmocka_unit_test(overlaps_of_every_shape_are_eexist_with_both_ranges_named),
                cmocka_unit_test(misaligned_iova_size_or_address_is_einval),
                cmocka_unit_test(requests_outside_the_ranges_or_wrapping_are_erange),
                cmocka_unit_test(unmapping_nothing_is_enoent),
                cmocka_unit_test(unmapping_part_of_a_mapping_is_einval_and_keeps_it),
                cmocka_unit_test(one_unmap_takes_whole_mappings_across_gaps),
                cmocka_unit_test(the_lower_bound_finds_the_first_mapping_ending_at_or_after),
                cmocka_unit_test(many_mappings_in_any_order_stay_consistent),
                cmocka_unit_test(mapping_in_order_and_unmapping_oldest_first_keeps_the_table_exact),
                cmocka_unit_test(the_inline_fast_paths_agree_with_the_full_checks),
                cmocka_unit_test(sizes_are_formatted_in_binary_units),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
