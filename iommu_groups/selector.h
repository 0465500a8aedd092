/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Device selectors, the one syntax the policy and the exported pools use to name a set
 * of PCI functions: "0000:01:00.0" (an address), "8086:10ca" or "8086:*" (vendor and
 * device ids), "class:0200" (base and sub class) or "class:020000" (with prog-if),
 * "0000:02:00.0/vf*", "0000:02:00.0/vf0-3", "0000:02:00.0/vf2" (VFs of a PF by index). */

#include <stdbool.h>
#include <stdint.h>

#include "pci-addr.h"
#include "topology.h"

/* For messages about a selector that does not parse. */
#define PCI_SELECTOR_FORMS "address, vendor:device, class:CCSS, PF/vfN-M"

struct pci_selector {
        enum {
                SELECTOR_ADDRESS,
                SELECTOR_IDS,
                SELECTOR_CLASS,
                SELECTOR_VFS,
        } kind;
        struct pci_addr addr;
        uint16_t vendor, device;
        bool any_device;
        uint32_t class_value, class_mask;
        int vf_first, vf_last;
};

/* Parses one selector; -EINVAL when s is none of the forms above. */
int pci_selector_parse(const char *s, struct pci_selector *ret);

/* Whether d (a device of t) is one the selector names. */
bool pci_selector_matches(const struct pci_selector *s, const struct topology *t,
                          const struct pci_device *d);

/* The index of VF d below its PF, or -1 when d is not a VF of a PF in t. */
int pci_device_vf_index(const struct topology *t, const struct pci_device *d);
