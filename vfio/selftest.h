/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The self-test of a device opened through VFIO (vfioctl probe). After its function
 * reset and its IOVA ranges, a test device (test-device.h: QEMU's edu first) is driven
 * through its registers: its own checks, an MSI and an INTx it raises, and behind an
 * IOMMU the DMA fault probe (probe.h). Any other device gets its MSI-X vectors enabled,
 * resized and disabled. Behind an IOMMU, bad DMA requests are made on purpose: each must
 * be refused with its errno and leave nothing mapped.
 *
 * The outcome is data: results in the order they were made, each a check {id, ok,
 * detail} or a warning, and the figures of the DMA and of the bad requests. Showing them
 * is the caller's business; the library never prints. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "device.h"
#include "dma-ranges.h"
#include "iommu.h"
#include "macro.h"
#include "probe.h"

enum vfio_selftest_kind {
        VFIO_SELFTEST_CHECK,
        VFIO_SELFTEST_WARNING, /* something that could not be checked, or a hazard */
};

struct vfio_selftest_result {
        enum vfio_selftest_kind kind;
        char id[48];  /* "dma.round_trip"; empty for a warning */
        bool ok;      /* false for a warning */
        char *detail; /* what was seen; NULL only when memory ran out */
};

/* One bad (or, around them, good) DMA request and the errno it got. */
struct vfio_selftest_input {
        const char *id; /* "input.overlap" */
        int got;        /* 0 or -errno */
        int want;
        char *message; /* the library's detail for it, or NULL */
};

struct vfio_selftest {
        /* What is tested, set by the caller (vfio_selftest_run() and the steps need them;
         * vfio_selftest_check() and _warn() do not). The caller keeps them alive. */
        const struct root *root;
        struct vfio_iommu *m;
        struct vfio_device *d;
        struct pci_addr addr;
        bool noiommu; /* m is the no-IOMMU backend: no DMA is attempted */
        /* Called with each result as it is recorded, to show progress (optional). */
        void (*observe)(const struct vfio_selftest_result *r, void *userdata);
        void *userdata;

        /* What was found. n_checks and n_failed count every check, even one that could
         * not be stored for lack of memory. */
        struct vfio_selftest_result *results;
        size_t n_results, n_checks, n_failed;
        uint32_t ids; /* config space at 0: vendor | device << 16 (0 if unreadable) */
        bool dma_ran; /* the DMA fault probe ran: dma is its outcome */
        struct vfio_probe_result dma;
        bool inputs_ran; /* the bad requests were tried (inputs may be empty: no setup) */
        struct vfio_selftest_input *inputs;
        size_t n_inputs;
};

/* Frees what was found and clears st. */
void vfio_selftest_done(struct vfio_selftest *st);

/* Records a check and shows it to the observer. */
void vfio_selftest_check(struct vfio_selftest *st, const char *id, bool ok, const char *fmt, ...)
        _printf_(4, 5);

/* Records a warning; nothing when the text cannot be formatted. */
void vfio_selftest_warn(struct vfio_selftest *st, const char *fmt, ...) _printf_(2, 3);

/* VFIO_DEVICE_RESET, recorded as the check device.reset (its result returned). -ENOTTY
 * with *ret_detail saying so, and nothing recorded, when the device has no function
 * reset. */
int vfio_selftest_reset(struct vfio_selftest *st, char **ret_detail);

/* The usable IOVA ranges of st->m and its page size (vfio_dma_get_ranges()); when they
 * cannot be read, the check iommu.ranges fails with why and the -errno is returned. */
int vfio_selftest_ranges(struct vfio_selftest *st, const struct iova_range **ret, size_t *ret_n,
                         uint64_t *ret_page_size);

/* The device's tests: reads its ids, then drives it as a test device or, for any other,
 * tests MSI-X; behind an IOMMU tries the bad requests; on the no-IOMMU backend checks
 * that a DMA mapping is refused without asking the kernel. */
void vfio_selftest_run(struct vfio_selftest *st);

/* "EEXIST" for EEXIST, "0" for 0, "?" when unknown: how errnos are named in results. */
const char *vfio_selftest_errno_name(int e);
