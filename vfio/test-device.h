/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Test devices: PCI functions with a DMA engine and an interrupt source that the DMA
 * fault probe (probe.h) and the self-test (selftest.h) know how to drive. Each has a
 * file of its own in drivers/ that fills in the table of operations below; nothing else
 * in vfiod reads or writes a test device's registers. Internal to libvfio, with the
 * small helpers the probe, the self-test and the drivers share. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct irq_set;
struct vfio_selftest;

/* A test device being driven: BAR0 mapped, memory decoding and bus mastering on. */
struct vfio_test_device {
        const struct vfio_test_driver_ops *ops;
        volatile void *bar;
        uint64_t bar_size;
};

struct vfio_test_driver_ops {
        const char *name;        /* names its checks ("edu.id") and it in check details */
        const char *description; /* for people: "QEMU's edu" */
        uint16_t vendor, device;
        uint64_t bar_min; /* the smallest BAR0 that holds every register used here */
        /* Records the checks of its own registers (identification, a scratch register)
         * in st. */
        void (*check_registers)(const struct vfio_test_device *t, struct vfio_selftest *st);
        /* Raises its interrupt on demand; irq_ack clears that interrupt's condition. */
        void (*irq_raise)(const struct vfio_test_device *t);
        void (*irq_ack)(const struct vfio_test_device *t);
        /* Moves n bytes (at most VFIO_PROBE_BYTES) between its own buffer and iova: into
         * memory when to_ram, out of it otherwise; raises its interrupt at the end when
         * irq. Waits for the end: false when the DMA did not finish in time. */
        bool (*dma)(const struct vfio_test_device *t, uint64_t iova, size_t n, bool to_ram,
                    bool irq);
        /* Clears the interrupt condition of a finished DMA. */
        void (*dma_irq_ack)(const struct vfio_test_device *t);
};

extern const struct vfio_test_driver_ops vfio_test_driver_edu;

/* The driver for a device with these ids, or NULL. */
const struct vfio_test_driver_ops *vfio_test_driver_find(uint16_t vendor, uint16_t device);

/* "QEMU's edu, 1234:11e8" for every driver (separated by "; "), into buf. Returns buf. */
const char *vfio_test_drivers_describe(char *buf, size_t size);

static inline uint32_t mmio_read32(volatile void *bar, size_t off)
{
        return *(volatile uint32_t *)((volatile char *)bar + off);
}

static inline void mmio_write32(volatile void *bar, size_t off, uint32_t v)
{
        *(volatile uint32_t *)((volatile char *)bar + off) = v;
}

static inline uint64_t mmio_read64(volatile void *bar, size_t off)
{
        return *(volatile uint64_t *)((volatile char *)bar + off);
}

static inline void mmio_write64(volatile void *bar, size_t off, uint64_t v)
{
        *(volatile uint64_t *)((volatile char *)bar + off) = v;
}

/* Sleeps ms milliseconds, through signals. */
void vfio_test_sleep_ms(long ms);

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t vfio_test_now_ms(void);

/* n bytes of private anonymous memory (page-aligned, zeroed), or NULL; munmap() it. */
void *vfio_test_anon_pages(size_t n);

/* How many times the vector of s fired: waits for a first interrupt (0 when none comes
 * in time), then watches briefly for a spurious second one. */
uint64_t vfio_test_irq_count(struct irq_set *s, uint32_t vector);
