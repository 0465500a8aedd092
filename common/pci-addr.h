/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* A PCI function address: domain:bus:device.function. */
struct pci_addr {
        uint32_t domain; /* 16 bits on most hosts; VMD and Hyper-V use up to 32 */
        uint8_t bus;
        uint8_t dev; /* 0..31 */
        uint8_t fn;  /* 0..7 */
};

/* "dddd:bb:dd.f" plus NUL; domains above 0xffff format with more digits. */
#define PCI_ADDR_STRLEN 24

/* Parses "0000:01:00.0" or "01:00.0" (domain 0) exactly: hex digits only, fixed field
 * widths (domain 4 to 8 digits, bus 2, device 2, function 1), device <= 0x1f, function
 * <= 7, nothing before or after. Returns 0 or -EINVAL; *ret written only on success. */
int pci_addr_parse(const char *s, struct pci_addr *ret);

/* Writes the canonical "dddd:bb:dd.f" form into buf (PCI_ADDR_STRLEN bytes); returns buf. */
char *pci_addr_format(const struct pci_addr *a, char buf[static PCI_ADDR_STRLEN]);

/* Orders by domain, bus, device, function (qsort/bsearch-style result). */
int pci_addr_compare(const struct pci_addr *a, const struct pci_addr *b);

/* The address as one number in pci_addr_compare()'s order, for searches that compare
 * many times (a device plugin's request names a whole pool). */
static inline uint64_t pci_addr_key(const struct pci_addr *a)
{
        return (uint64_t)a->domain << 16 | (uint64_t)a->bus << 8 | (uint64_t)a->dev << 3 | a->fn;
}

static inline bool pci_addr_equal(const struct pci_addr *a, const struct pci_addr *b)
{
        return pci_addr_compare(a, b) == 0;
}
