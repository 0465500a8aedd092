/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A device's interrupts delivered to eventfds: INTx, MSI or MSI-X vectors of one vfio
 * device fd, wired with VFIO_DEVICE_SET_IRQS (DATA_EVENTFD | ACTION_TRIGGER). The
 * kernel's rules are kept here: an index is enabled with all its vectors at once and
 * disabled with DATA_NONE and count 0; only one index is enabled at a time; MSI, and
 * MSI-X without dynamic allocation (VFIO_IRQ_INFO_NORESIZE), change their vector count
 * only by disabling and enabling again; INTx is masked by the kernel on every interrupt
 * and must be unmasked once handled. Errors are -errno with a one-line detail. */

#include <stdbool.h>
#include <stdint.h>

struct irq_set;

/* The name of a VFIO PCI interrupt index: "INTx", "MSI", "MSI-X", "error", "request";
 * "unknown" for any other. */
const char *irq_index_to_string(unsigned index);

/* Enables count vectors of index (VFIO_PCI_INTX_IRQ_INDEX, _MSI_, _MSIX_) of the device
 * fd (borrowed: it must outlive the set), each with a new non-blocking eventfd. */
int irq_set_enable(int device_fd, unsigned index, uint32_t count, struct irq_set **ret,
                   char **ret_detail);

/* Changes the number of vectors. In place when the kernel allows (*ret_in_place true):
 * new vectors get new eventfds, dropped ones are released; otherwise by disabling and
 * enabling again, which gives every vector a new eventfd. */
int irq_set_resize(struct irq_set *s, uint32_t count, bool *ret_in_place, char **ret_detail);

/* Disables the index (DATA_NONE, count 0) and closes the eventfds; irq_set_resize()
 * enables it again. */
int irq_set_disable(struct irq_set *s, char **ret_detail);

/* Unmasks INTx after the device's interrupt condition has been cleared. */
int irq_set_unmask(struct irq_set *s, char **ret_detail);

/* Disables (errors ignored) and frees. Accepts NULL; returns NULL. */
struct irq_set *irq_set_free(struct irq_set *s);

static inline void irq_set_freep(struct irq_set **s)
{
        irq_set_free(*s);
}

uint32_t irq_set_count(const struct irq_set *s);
/* The info flags of the index (VFIO_IRQ_INFO_*) and its maximum vector count. */
uint32_t irq_set_info_flags(const struct irq_set *s);
uint32_t irq_set_max(const struct irq_set *s);
/* The eventfd of a vector, or -EBADF. */
int irq_set_eventfd(const struct irq_set *s, uint32_t vector);

/* Waits up to timeout_ms for the vector to fire and returns how many times it fired
 * since the last call (the eventfd counter, which reading resets); 0 on timeout. */
int irq_set_wait(struct irq_set *s, uint32_t vector, int timeout_ms, uint64_t *ret_count);
