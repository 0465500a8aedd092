/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "config-space.h"

static uint8_t cfg[4096];

static void w16(size_t off, uint16_t v)
{
        cfg[off] = v & 0xff;
        cfg[off + 1] = v >> 8;
}

static void w32(size_t off, uint32_t v)
{
        w16(off, v & 0xffff);
        w16(off + 2, v >> 16);
}

/* A downstream switch port: PCIe cap at 0x40 (type 6), ACS at 0x100, ATS at 0x140. */
static void build_port(void)
{
        memset(cfg, 0, sizeof(cfg));
        w16(0x00, 0x10b5);
        w16(0x02, 0x8747);
        cfg[0x0e] = 0x01;
        w16(0x06, 0x0010);
        cfg[0x34] = 0x40;
        cfg[0x40] = 0x10;
        cfg[0x41] = 0x00;
        w16(0x42, 0x0062); /* version 2, type 6 */
        w32(0x100, 0x000d | 1u << 16 | 0x140u << 20);
        w16(0x104, 0x005f);
        w16(0x106, 0x001d);
        w32(0x140, 0x000f | 1u << 16);
}

static void a_port_reports_type_acs_and_ats(void **state)
{
        struct config_info ci;

        build_port();
        config_space_parse(cfg, sizeof(cfg), &ci);
        assert_true(ci.is_bridge);
        assert_false(ci.multifunction);
        assert_int_equal(ci.pcie_type, PCIE_TYPE_DOWNSTREAM);
        assert_true(ci.ext_known);
        assert_true(ci.have_acs);
        assert_int_equal(ci.acs_cap, 0x005f);
        assert_int_equal(ci.acs_ctrl, 0x001d);
        assert_true(ci.have_ats);
}

static void an_unprivileged_read_leaves_capabilities_unknown(void **state)
{
        struct config_info ci;

        build_port();
        config_space_parse(cfg, 64, &ci);
        assert_true(ci.is_bridge);
        assert_int_equal(ci.pcie_type, PCIE_TYPE_UNKNOWN);
        assert_false(ci.ext_known);
        assert_false(ci.have_acs);

        config_space_parse(cfg, 256, &ci); /* no ECAM: extended space missing */
        assert_int_equal(ci.pcie_type, PCIE_TYPE_DOWNSTREAM);
        assert_false(ci.ext_known);

        config_space_parse(cfg, 3, &ci);
        assert_int_equal(ci.pcie_type, PCIE_TYPE_UNKNOWN);
}

static void looping_capability_lists_terminate(void **state)
{
        struct config_info ci;

        build_port();
        cfg[0x40] = 0x05; /* MSI, pointing at itself */
        cfg[0x41] = 0x40;
        w32(0x100, 0x0001 | 0x100u << 20); /* AER, pointing at itself */
        config_space_parse(cfg, sizeof(cfg), &ci);
        assert_int_equal(ci.pcie_type, PCIE_TYPE_NONE);
        assert_false(ci.have_acs);

        build_port();
        w32(0x100, 0xffffffff);
        config_space_parse(cfg, sizeof(cfg), &ci);
        assert_false(ci.have_acs);
        assert_true(ci.ext_known);
}

static void sriov_capability_fields_are_read(void **state)
{
        struct config_info ci;

        build_port();
        cfg[0x0e] = 0x80; /* endpoint, multi-function */
        w16(0x42, 0x0002);
        w32(0x100, 0x0010 | 1u << 16);
        w16(0x10e, 7);
        w16(0x110, 3);
        w16(0x114, 0x80);
        w16(0x116, 2);
        w16(0x11a, 0x10ca);
        config_space_parse(cfg, sizeof(cfg), &ci);
        assert_true(ci.multifunction);
        assert_false(ci.is_bridge);
        assert_int_equal(ci.pcie_type, PCIE_TYPE_ENDPOINT);
        assert_true(ci.have_sriov);
        assert_int_equal(ci.sriov_total, 7);
        assert_int_equal(ci.sriov_num, 3);
        assert_int_equal(ci.sriov_offset, 0x80);
        assert_int_equal(ci.sriov_stride, 2);
        assert_int_equal(ci.sriov_vf_device, 0x10ca);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(a_port_reports_type_acs_and_ats),
                cmocka_unit_test(an_unprivileged_read_leaves_capabilities_unknown),
                cmocka_unit_test(looping_capability_lists_terminate),
                cmocka_unit_test(sriov_capability_fields_are_read),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
