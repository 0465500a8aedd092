/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* QEMU's edu device (docs/specs/edu.rst in QEMU): a 4 KiB DMA engine with a 28-bit DMA
 * mask and an interrupt source, behind BAR0. */
#include <inttypes.h>

#include "selftest.h"
#include "test-device.h"

#define EDU_REG_ID        0x00
#define EDU_REG_LIVENESS  0x04
#define EDU_REG_IRQ_RAISE 0x60
#define EDU_REG_IRQ_ACK   0x64
#define EDU_REG_DMA_SRC   0x80
#define EDU_REG_DMA_DST   0x88
#define EDU_REG_DMA_COUNT 0x90
#define EDU_REG_DMA_CMD   0x98
#define EDU_DMA_START     0x1
#define EDU_DMA_TO_RAM    0x2
#define EDU_DMA_IRQ       0x4
#define EDU_IRQ_DMA       0x100
/* The status bit the self-test raises: any but EDU_IRQ_DMA would do. */
#define EDU_IRQ_TEST 0x1
/* Its buffer, in the device's own address space. */
#define EDU_BUFFER  0x40000
#define EDU_BAR_MIN 0x100
/* The identification register's low half. */
#define EDU_ID_MAGIC 0x00ed
/* The liveness register reads back the complement of what was written. */
#define EDU_LIVENESS_PATTERN 0x5aa5c33cu

/* DMA completes on a QEMU timer (100 ms of virtual time) and TCG is slow: be patient. */
#define EDU_DMA_TIMEOUT_MS 5000

static void edu_check_registers(const struct vfio_test_device *t, struct vfio_selftest *st)
{
        uint32_t id = mmio_read32(t->bar, EDU_REG_ID), live;

        vfio_selftest_check(st, "edu.id", (id & 0xffff) == EDU_ID_MAGIC,
                            "identification register 0x%08x", id);
        mmio_write32(t->bar, EDU_REG_LIVENESS, EDU_LIVENESS_PATTERN);
        live = mmio_read32(t->bar, EDU_REG_LIVENESS);
        vfio_selftest_check(st, "edu.liveness", live == (uint32_t)~EDU_LIVENESS_PATTERN,
                            "wrote 0x%08x, read back 0x%08x", EDU_LIVENESS_PATTERN, live);
}

static void edu_irq_raise(const struct vfio_test_device *t)
{
        mmio_write32(t->bar, EDU_REG_IRQ_RAISE, EDU_IRQ_TEST);
}

static void edu_irq_ack(const struct vfio_test_device *t)
{
        mmio_write32(t->bar, EDU_REG_IRQ_ACK, EDU_IRQ_TEST);
}

static bool edu_dma(const struct vfio_test_device *t, uint64_t iova, size_t n, bool to_ram,
                    bool irq)
{
        uint64_t deadline = vfio_test_now_ms() + EDU_DMA_TIMEOUT_MS;
        uint32_t cmd = (to_ram ? EDU_DMA_TO_RAM : 0) | (irq ? EDU_DMA_IRQ : 0);

        mmio_write64(t->bar, EDU_REG_DMA_SRC, to_ram ? EDU_BUFFER : iova);
        mmio_write64(t->bar, EDU_REG_DMA_DST, to_ram ? iova : EDU_BUFFER);
        mmio_write64(t->bar, EDU_REG_DMA_COUNT, n);
        mmio_write64(t->bar, EDU_REG_DMA_CMD, cmd | EDU_DMA_START);
        while (mmio_read64(t->bar, EDU_REG_DMA_CMD) & EDU_DMA_START) {
                if (vfio_test_now_ms() > deadline)
                        return false;
                vfio_test_sleep_ms(1);
        }
        return true;
}

static void edu_dma_irq_ack(const struct vfio_test_device *t)
{
        mmio_write32(t->bar, EDU_REG_IRQ_ACK, EDU_IRQ_DMA);
}

const struct vfio_test_driver_ops vfio_test_driver_edu = {
        .name = "edu",
        .description = "QEMU's edu",
        .vendor = 0x1234,
        .device = 0x11e8,
        .bar_min = EDU_BAR_MIN,
        .check_registers = edu_check_registers,
        .irq_raise = edu_irq_raise,
        .irq_ack = edu_irq_ack,
        .dma = edu_dma,
        .dma_irq_ack = edu_dma_irq_ack,
};
