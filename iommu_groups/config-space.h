/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "topology.h"

/* What the snapshot takes from a function's configuration space. */
struct config_info {
        size_t len;
        bool have_ids; /* the header's ids are present and not all-ones (VFs read 0xffff) */
        uint16_t vendor, device, subsystem_vendor, subsystem_device;
        uint32_t class;
        uint8_t revision;
        uint8_t header_type; /* bits 6:0 of offset 0x0e */
        bool multifunction;  /* bit 7 of offset 0x0e */
        bool is_bridge;      /* header type 1 (PCI-to-PCI bridge) */
        enum pcie_type pcie_type;
        bool ext_known; /* extended space (0x100+) was present and walked */
        bool have_acs;
        uint16_t acs_cap, acs_ctrl;
        bool have_ats;
        bool have_sriov;
        uint16_t sriov_total, sriov_num, sriov_offset, sriov_stride, sriov_vf_device;
};

/* Parses len bytes of configuration space as read from sysfs "config". Tolerates every
 * short read and every malformed or looping capability list: what cannot be read stays
 * unknown. Never fails. */
void config_space_parse(const uint8_t *buf, size_t len, struct config_info *ret);

#define PCI_EXT_CAP_ID_ACS   0x000d
#define PCI_EXT_CAP_ID_ATS   0x000f
#define PCI_EXT_CAP_ID_SRIOV 0x0010
#define PCI_CAP_ID_EXP       0x10
#define PCI_CAP_ID_SSVID     0x0d
