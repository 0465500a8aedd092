/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "config-space.h"

static uint16_t rd16(const uint8_t *b, size_t off)
{
        return (uint16_t)(b[off] | b[off + 1] << 8);
}

static uint32_t rd32(const uint8_t *b, size_t off)
{
        return (uint32_t)b[off] | (uint32_t)b[off + 1] << 8 | (uint32_t)b[off + 2] << 16 |
               (uint32_t)b[off + 3] << 24;
}

static void parse_standard_caps(const uint8_t *buf, size_t len, struct config_info *ci)
{
        uint8_t ptr;

        /* Capabilities sit past the 64-byte header: an unprivileged read stops before them. */
        if (len < 0x100 || !(rd16(buf, 0x06) & 0x10))
                return;
        ptr = ci->header_type == 2 ? buf[0x14] : buf[0x34];
        /* 48 = the most 4-byte capabilities that fit in 0x40..0xff: a longer walk loops. */
        for (int guard = 0; guard < 48 && ptr >= 0x40 && (size_t)ptr + 4 <= len; guard++) {
                ptr &= 0xfc;
                if (buf[ptr] == PCI_CAP_ID_EXP)
                        ci->pcie_type = (enum pcie_type)((rd16(buf, ptr + 2) >> 4) & 0xf);
                else if (buf[ptr] == PCI_CAP_ID_SSVID && ci->is_bridge && (size_t)ptr + 8 <= len) {
                        /* Bridges carry subsystem ids in this capability, not at 0x2c. */
                        ci->subsystem_vendor = rd16(buf, ptr + 4);
                        ci->subsystem_device = rd16(buf, ptr + 6);
                }
                ptr = buf[ptr + 1];
        }
}

static void parse_extended_caps(const uint8_t *buf, size_t len, struct config_info *ci)
{
        size_t off = 0x100;

        if (len < 0x1000)
                return;
        ci->ext_known = true;
        for (int guard = 0; guard < (0x1000 - 0x100) / 4 && off >= 0x100 && off + 4 <= len;
             guard++) {
                uint32_t hdr = rd32(buf, off);
                uint16_t id = hdr & 0xffff;

                if (hdr == 0 || hdr == 0xffffffff)
                        return;
                switch (id) {
                case PCI_EXT_CAP_ID_ACS:
                        if (off + 8 <= len) {
                                ci->have_acs = true;
                                ci->acs_cap = rd16(buf, off + 4);
                                ci->acs_ctrl = rd16(buf, off + 6);
                        }
                        break;
                case PCI_EXT_CAP_ID_ATS:
                        ci->have_ats = true;
                        break;
                case PCI_EXT_CAP_ID_SRIOV:
                        if (off + 0x20 <= len) {
                                ci->have_sriov = true;
                                ci->sriov_total = rd16(buf, off + 0x0e);
                                ci->sriov_num = rd16(buf, off + 0x10);
                                ci->sriov_offset = rd16(buf, off + 0x14);
                                ci->sriov_stride = rd16(buf, off + 0x16);
                                ci->sriov_vf_device = rd16(buf, off + 0x1a);
                        }
                        break;
                default:
                        break;
                }
                off = (hdr >> 20) & 0xffc;
        }
}

void config_space_parse(const uint8_t *buf, size_t len, struct config_info *ret)
{
        struct config_info ci = {
                .len = len,
                .pcie_type = PCIE_TYPE_UNKNOWN,
        };

        if (len >= 0x40) {
                ci.vendor = rd16(buf, 0x00);
                ci.device = rd16(buf, 0x02);
                ci.revision = buf[0x08];
                ci.class = (uint32_t)buf[0x0b] << 16 | (uint32_t)buf[0x0a] << 8 | buf[0x09];
                ci.header_type = buf[0x0e] & 0x7f;
                ci.multifunction = buf[0x0e] & 0x80;
                ci.is_bridge = ci.header_type == 1;
                if (ci.header_type == 0) {
                        ci.subsystem_vendor = rd16(buf, 0x2c);
                        ci.subsystem_device = rd16(buf, 0x2e);
                }
                ci.have_ids = ci.vendor != 0xffff && ci.device != 0xffff;
        }
        if (len >= 0x100) {
                ci.pcie_type = PCIE_TYPE_NONE;
                parse_standard_caps(buf, len, &ci);
        }
        if (ci.pcie_type != PCIE_TYPE_NONE && ci.pcie_type != PCIE_TYPE_UNKNOWN)
                parse_extended_caps(buf, len, &ci);
        *ret = ci;
}
