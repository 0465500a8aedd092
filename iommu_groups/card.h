/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What GPU passthrough fails on and a tool can see beforehand: the card's other
 * functions (its HDMI audio, USB-C controller) that must go with it, its option ROM (a
 * guest's firmware runs it; a missing, damaged or shadow-only ROM hangs the guest at
 * boot unless it is given a romfile), and its resizable BARs. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "root.h"
#include "topology.h"

/* The indices (into t->devices) of every function in d's slot, d included, in address
 * order; at most max. Returns how many there are (which may exceed max). */
size_t topology_card_functions(const struct topology *t, const struct pci_device *d, size_t *idx,
                               size_t max);

struct pci_rom {
        bool present;        /* the device has a ROM resource */
        bool shadow;         /* it is the firmware's shadow copy (IORESOURCE_ROM_SHADOW) */
        uint64_t start;      /* where the kernel reads it: the ROM BAR, or 0xc0000 */
        uint64_t bar_size;   /* the size of that window */
        bool read;           /* the sysfs rom file was read */
        int read_errno;      /* why not (0: not tried, see skipped) */
        const char *skipped; /* why it was not tried */
        size_t bytes;        /* what the kernel returned */
        bool signature;      /* 0x55 0xaa at offset 0 */
        bool pcir;           /* a "PCIR" data structure where offset 0x18 points */
        uint16_t pcir_vendor, pcir_device;
        bool ids_match;      /* the PCIR ids are the device's */
        uint32_t image_size; /* the first image's length from its PCIR, in bytes */
        uint8_t code_type;   /* 0 x86 BIOS, 3 UEFI, ... */
        bool last_image;     /* the first image is the last one */
        char warning[256];   /* for people; empty when the ROM looks usable */
};

/* Inspects d's option ROM: the ROM resource from sysfs, and with content, unless d is
 * on a VFIO driver (its holder may be using the ROM BAR), what it holds through the
 * sysfs rom file (enabled for the read and disabled again: root only). A ROM that cannot
 * be read is a warning in ret, never an error: fails only with -ENOMEM. */
int pci_rom_inspect(const struct root *r, const struct pci_device *d, bool content,
                    struct pci_rom *ret);

/* The same from a ROM image already read: fills the signature and PCIR fields. */
void pci_rom_parse(const uint8_t *p, size_t n, const struct pci_device *d, struct pci_rom *ret);

/* "x86 BIOS", "UEFI", ...: the PCIR code type. */
const char *pci_rom_code_type_to_string(uint8_t t);

struct pci_rebar {
        int bar;          /* 0..5 */
        uint64_t sizes;   /* bit n: 1 MiB << n is a size the BAR can take */
        uint64_t current; /* the BAR's present size in bytes, 0 when unknown */
};

/* The BARs of d that are resizable (sysfs resourceN_resize), at most 6. */
size_t pci_rebar_list(const struct root *r, const struct pci_device *d, struct pci_rebar *ret);

/* A firmware or early framebuffer (efifb, vesafb, simplefb, simpledrm, BOOTFB) that
 * /proc/iomem shows inside one of the device's BARs: it keeps vfio-pci from reserving
 * the BAR ("BAR can't reserve" when the guest starts) until it is let go. */
struct pci_framebuffer {
        char name[48];
        uint64_t start, end;
        int bar;
};

/* The framebuffers inside d's BARs, at most max (the count may exceed it). -EPERM when
 * /proc/iomem hides its addresses (not root), other -errno when it cannot be read. */
int pci_framebuffers(const struct root *r, const struct pci_device *d, struct pci_framebuffer *ret,
                     size_t max, size_t *ret_n);

/* The same from /proc/iomem's text and the device's BARs (start/end pairs, 0 for none):
 * for tests. */
int pci_framebuffers_in(const char *iomem, const uint64_t bars[6][2], struct pci_framebuffer *ret,
                        size_t max, size_t *ret_n);

/* A hint for devices whose resets are known not to work, for people; NULL for others. */
const char *pci_reset_hint(const struct pci_device *d);
