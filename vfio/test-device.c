/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <sys/mman.h>
#include <time.h>

#include "irq.h"
#include "macro.h"
#include "test-device.h"

/* How long a raised interrupt may take to reach its eventfd. */
#define IRQ_TIMEOUT_MS 2000
/* After an interrupt arrives, how long to watch for a spurious second one. */
#define IRQ_SETTLE_MS 50

static const struct vfio_test_driver_ops *const drivers[] = {
        &vfio_test_driver_edu,
};

const struct vfio_test_driver_ops *vfio_test_driver_find(uint16_t vendor, uint16_t device)
{
        for (size_t i = 0; i < ELEMENTSOF(drivers); i++)
                if (drivers[i]->vendor == vendor && drivers[i]->device == device)
                        return drivers[i];
        return NULL;
}

const char *vfio_test_drivers_describe(char *buf, size_t size)
{
        size_t n = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < ELEMENTSOF(drivers) && n < size; i++) {
                int k = snprintf(buf + n, size - n, "%s%s, %04x:%04x", i ? "; " : "",
                                 drivers[i]->description, drivers[i]->vendor, drivers[i]->device);
                if (k < 0)
                        break;
                n += (size_t)k;
        }
        return buf;
}

void vfio_test_sleep_ms(long ms)
{
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

uint64_t vfio_test_now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void *vfio_test_anon_pages(size_t n)
{
        void *b = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

        return b == MAP_FAILED ? NULL : b;
}

uint64_t vfio_test_irq_count(struct irq_set *s, uint32_t vector)
{
        uint64_t n = 0, more = 0;

        if (irq_set_wait(s, vector, IRQ_TIMEOUT_MS, &n) < 0)
                return 0;
        if (n > 0) {
                vfio_test_sleep_ms(IRQ_SETTLE_MS);
                if (irq_set_wait(s, vector, 0, &more) == 0)
                        n += more;
        }
        return n;
}
