/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Option ROM images (iommu_groups/card.c): the 0x55aa signature, the PCI data structure
 * it points to, and the warnings a guest's firmware would otherwise find out at boot.
 * The kernel's ROMs (a shadowed boot VGA and a ROM BAR) are read in the lab
 * (tests/vm/scenarios/gpu.sh). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "card.h"

static const struct pci_device vga = {.vendor = 0x1234, .device = 0x1111, .have_ids = true};

/* A ROM of n bytes with its PCIR at off naming vendor:device, a 39936-byte x86 image. */
static void make_rom(uint8_t *p, size_t n, size_t off, uint16_t vendor, uint16_t device)
{
        memset(p, 0, n);
        p[0] = 0x55;
        p[1] = 0xaa;
        p[2] = 78;
        p[0x18] = (uint8_t)off;
        p[0x19] = (uint8_t)(off >> 8);
        memcpy(p + off, "PCIR", 4);
        p[off + 4] = (uint8_t)vendor;
        p[off + 5] = (uint8_t)(vendor >> 8);
        p[off + 6] = (uint8_t)device;
        p[off + 7] = (uint8_t)(device >> 8);
        p[off + 0x10] = 78; /* 78 x 512 bytes */
        p[off + 0x14] = 0;  /* x86 BIOS */
        p[off + 0x15] = 0x80;
}

static void a_good_rom(void **state)
{
        uint8_t p[4096];
        struct pci_rom rom = {0};

        (void)state;
        make_rom(p, sizeof(p), 0x1dc, 0x1234, 0x1111);
        pci_rom_parse(p, sizeof(p), &vga, &rom);
        assert_true(rom.signature);
        assert_true(rom.pcir);
        assert_true(rom.ids_match);
        assert_int_equal(rom.pcir_vendor, 0x1234);
        assert_int_equal(rom.pcir_device, 0x1111);
        assert_int_equal(rom.image_size, 39936);
        assert_string_equal(pci_rom_code_type_to_string(rom.code_type), "x86 BIOS");
        assert_true(rom.last_image);
        assert_int_equal(rom.bytes, sizeof(p));
        assert_string_equal(rom.warning, "");
}

static void a_shadow_copy_is_warned(void **state)
{
        uint8_t p[4096];
        struct pci_rom rom = {.shadow = true, .start = 0xc0000};

        (void)state;
        make_rom(p, sizeof(p), 0x1dc, 0x1234, 0x1111);
        pci_rom_parse(p, sizeof(p), &vga, &rom);
        assert_true(rom.pcir);
        assert_non_null(strstr(rom.warning, "shadow copy at 0xc0000"));
        assert_non_null(strstr(rom.warning, "romfile"));
}

static void a_blank_rom_is_warned(void **state)
{
        uint8_t p[4096] = {0};
        struct pci_rom rom = {0};

        (void)state;
        memset(p, 0xff, sizeof(p));
        pci_rom_parse(p, sizeof(p), &vga, &rom);
        assert_false(rom.signature);
        assert_false(rom.pcir);
        assert_non_null(strstr(rom.warning, "no 0x55aa signature in the 4096 bytes read"));
}

static void a_pcir_outside_the_image_is_damage(void **state)
{
        uint8_t p[4096];
        struct pci_rom rom = {0};

        (void)state;
        make_rom(p, sizeof(p), 0x1dc, 0x1234, 0x1111);
        /* Cut before the PCIR ends, and a pointer past the end: never read past n. */
        pci_rom_parse(p, 0x1dc + 8, &vga, &rom);
        assert_true(rom.signature);
        assert_false(rom.pcir);
        assert_non_null(strstr(rom.warning, "no PCI data structure (PCIR) at offset 0x1dc"));
        p[0x18] = 0xff;
        p[0x19] = 0xff;
        rom = (struct pci_rom){0};
        pci_rom_parse(p, sizeof(p), &vga, &rom);
        assert_false(rom.pcir);
        /* Too short for a header at all. */
        rom = (struct pci_rom){0};
        pci_rom_parse(p, 2, &vga, &rom);
        assert_false(rom.signature);
}

static void another_devices_rom_is_warned(void **state)
{
        uint8_t p[4096];
        struct pci_rom rom = {0};

        (void)state;
        make_rom(p, sizeof(p), 0x200, 0x10de, 0x2204);
        pci_rom_parse(p, sizeof(p), &vga, &rom);
        assert_true(rom.pcir);
        assert_false(rom.ids_match);
        assert_non_null(strstr(rom.warning, "names 10de:2204, not the device's 1234:1111"));
}

/* /proc/iomem as a UEFI host with efifb on its boot GPU shows it (BAR1 of 01:00.0). */
static const char iomem[] = "00000000-00000fff : Reserved\n"
                            "00001000-0009efff : System RAM\n"
                            "c0000000-dfffffff : PCI Bus 0000:01\n"
                            "  c0000000-cfffffff : 0000:01:00.0\n"
                            "    c0000000-c02fffff : efifb\n"
                            "  de000000-deffffff : 0000:01:00.0\n"
                            "e0000000-efffffff : PCI MMCONFIG 0000 [bus 00-ff]\n"
                            "fd000000-fdffffff : BOOTFB\n";

static void a_framebuffer_in_a_bar_is_found(void **state)
{
        const uint64_t bars[6][2] = {{0xde000000, 0xdeffffff}, {0xc0000000, 0xcfffffff}};
        struct pci_framebuffer fb[2];
        size_t n = 99;

        (void)state;
        assert_int_equal(pci_framebuffers_in(iomem, bars, fb, 2, &n), 0);
        /* BOOTFB lies in no BAR of this device. */
        assert_int_equal(n, 1);
        assert_string_equal(fb[0].name, "efifb");
        assert_int_equal(fb[0].bar, 1);
        assert_true(fb[0].start == 0xc0000000 && fb[0].end == 0xc02fffff);
}

static void no_framebuffer_and_hidden_addresses(void **state)
{
        const uint64_t other[6][2] = {{0xa0000000, 0xa0ffffff}};
        struct pci_framebuffer fb[2];
        size_t n = 99;

        (void)state;
        assert_int_equal(pci_framebuffers_in(iomem, other, fb, 2, &n), 0);
        assert_int_equal(n, 0);
        /* What users other than root read: every address zero. */
        assert_int_equal(pci_framebuffers_in("00000000-00000000 : Reserved\n"
                                             "00000000-00000000 : efifb\n",
                                             other, fb, 2, &n),
                         -EPERM);
}

static void amd_gpus_get_a_reset_hint(void **state)
{
        const struct pci_device rx580 = {
                .vendor = 0x1002, .device = 0x67df, .class = 0x030000, .have_ids = true};
        const struct pci_device hdmi = {
                .vendor = 0x1002, .device = 0xaaf0, .class = 0x040300, .have_ids = true};

        (void)state;
        assert_non_null(strstr(pci_reset_hint(&rx580), "AMD reset bug"));
        assert_null(pci_reset_hint(&hdmi));
        assert_null(pci_reset_hint(&vga));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(a_good_rom),
                cmocka_unit_test(a_shadow_copy_is_warned),
                cmocka_unit_test(a_blank_rom_is_warned),
                cmocka_unit_test(a_pcir_outside_the_image_is_damage),
                cmocka_unit_test(another_devices_rom_is_warned),
                cmocka_unit_test(a_framebuffer_in_a_bar_is_found),
                cmocka_unit_test(no_framebuffer_and_hidden_addresses),
                cmocka_unit_test(amd_gpus_get_a_reset_hint),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
