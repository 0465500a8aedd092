/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The DMA fault probe: proof, on the running kernel, that the IOMMU confines a device's
 * DMA to what is mapped for it. The device first moves a page through two mapped IOVAs
 * and back (which shows that its DMA engine and the mappings work), then writes to an
 * IOVA that was mapped and unmapped again: the memory that was behind it must stay as it
 * was, and the kernel must log the IOMMU's fault naming the device and the address. A
 * probe needs a DMA engine it knows how to drive: a test device (test-device.h; QEMU's
 * edu first). Errors are -errno with a one-line detail. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iommu.h"

/* The probe's IOVAs: below edu's 28-bit DMA mask, apart from each other. */
#define VFIO_PROBE_IOVA_SRC   0x100000
#define VFIO_PROBE_IOVA_DST   0x200000
#define VFIO_PROBE_IOVA_FAULT 0x300000
/* What each DMA moves: one page, which every test device's buffer holds. */
#define VFIO_PROBE_BYTES 4096

struct irq_set;
struct vfio_test_device;

/* Whether the probe can drive a device with these ids. */
bool vfio_probe_can_drive(uint16_t vendor, uint16_t device);

/* Where a probe stopped before its end. */
enum vfio_probe_stop {
        VFIO_PROBE_RAN,            /* every step ran (what it found is in the other fields) */
        VFIO_PROBE_STOP_SETUP,     /* the test buffers could not be allocated */
        VFIO_PROBE_STOP_MAP_USER,  /* mapping anonymous memory at IOVA_SRC failed */
        VFIO_PROBE_STOP_MAP_MEMFD, /* mapping a memfd page at IOVA_DST failed */
};

struct vfio_probe_result {
        enum vfio_probe_stop stop;
        char *stop_detail;       /* why it stopped */
        bool to_device, to_ram;  /* the two DMAs of the round trip completed */
        bool round_trip;         /* the page came back intact */
        bool memfd_backing;      /* and the memfd holds it at its offset */
        char *fault_setup_error; /* NULL when IOVA_FAULT was mapped and unmapped again */
        bool fault_done;         /* the stray DMA completed, as far as the device knows */
        size_t fault_changed;    /* bytes of the memory once behind IOVA_FAULT that changed */
        bool kmsg;               /* the kernel log could be read */
        char *fault_line;        /* the IOMMU's report naming the device and IOVA, or NULL */
        bool fault_retried;      /* found on a second DMA, after the kernel's rate limit */
        bool irqs;               /* interrupts were counted (msi[] is meaningful) */
        uint64_t msi[3];         /* interrupts per DMA: to device, to RAM, stray */
};

void vfio_probe_result_done(struct vfio_probe_result *r);

/* The verdict: the round trip worked, the stray write changed nothing and the kernel
 * logged the fault. */
bool vfio_probe_result_blocked(const struct vfio_probe_result *r);

/* Runs the probe's DMA on a test device t already opened into m (which must translate:
 * not the no-IOMMU backend) and set up for driving. msi is the device's enabled MSI
 * (each DMA then raises an interrupt on vector 0, and they are counted), or NULL. a
 * names the device in the kernel's fault report; the kernel log is read from dev/kmsg
 * below root. Whatever happens is in *ret. */
void vfio_probe_dma(const struct root *root, struct vfio_iommu *m, const struct vfio_test_device *t,
                    struct irq_set *msi, const struct pci_addr *a, struct vfio_probe_result *ret);

/* The whole probe on device a, which must be bound to a vfio driver: opens it through
 * backend want (or the automatic choice for _VFIO_BACKEND_INVALID), checks that it is a
 * test device, maps BAR0, turns on bus mastering, runs vfio_probe_dma() without interrupts
 * and closes it again. *ret_backend is the backend used. -ENODEV: no such device;
 * -EMEDIUMTYPE: not on a vfio driver; -EOPNOTSUPP: a device the probe cannot drive;
 * -EPERM: a no-IOMMU group, where the stray write would land in physical memory, so it
 * is never sent; any other -errno: the device could not be opened (-EBUSY: in use). */
int vfio_probe_device(const struct root *root, const struct pci_addr *a, enum vfio_backend want,
                      struct vfio_probe_result *ret, enum vfio_backend *ret_backend,
                      char **ret_detail);
