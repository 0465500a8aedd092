/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "pci-addr.h"

static void full_and_short_forms_parse_to_the_same_address(void **state)
{
        struct pci_addr a, b;
        char buf[PCI_ADDR_STRLEN];

        assert_int_equal(pci_addr_parse("0000:01:00.0", &a), 0);
        assert_int_equal(pci_addr_parse("01:00.0", &b), 0);
        assert_true(pci_addr_equal(&a, &b));
        assert_string_equal(pci_addr_format(&a, buf), "0000:01:00.0");

        assert_int_equal(pci_addr_parse("10000:ff:1f.7", &a), 0);
        assert_int_equal(a.domain, 0x10000);
        assert_int_equal(a.bus, 0xff);
        assert_int_equal(a.dev, 0x1f);
        assert_int_equal(a.fn, 7);
        assert_string_equal(pci_addr_format(&a, buf), "10000:ff:1f.7");

        assert_int_equal(pci_addr_parse("0000:AB:0C.1", &a), 0);
        assert_string_equal(pci_addr_format(&a, buf), "0000:ab:0c.1");
}

static void malformed_addresses_are_refused(void **state)
{
        static const char *const bad[] = {
                "",
                "0000:zz:00.0",
                "../../etc",
                "0000:01:00.0/",
                "0000:01:00.8",
                "0000:01:20.0",
                "000:01:00.0",
                "0000:1:00.0",
                "0000:01:0.0",
                "0000:01:00.00",
                "0000:01:00",
                "01:00",
                "0000:01:00.0 ",
                " 0000:01:00.0",
                "0000:01:00.-1",
                "0x00:01:00.0",
                "0000::00.0",
                "0000:01:00.0:",
                "123456789:00:00.0",
                "0000:01:00.0\n",
                "+000:01:00.0",
                "0000:01:00..0",
                "0000/01:00.0",
                ".",
        };
        struct pci_addr a = {.domain = 0x55};

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                if (pci_addr_parse(bad[i], &a) != -EINVAL)
                        fail_msg("accepted '%s'", bad[i]);
                assert_int_equal(a.domain, 0x55); /* untouched on failure */
        }
        assert_int_equal(pci_addr_parse(NULL, &a), -EINVAL);
}

static void addresses_order_by_domain_bus_device_function(void **state)
{
        struct pci_addr a, b;

        assert_int_equal(pci_addr_parse("0000:01:00.1", &a), 0);
        assert_int_equal(pci_addr_parse("0000:01:01.0", &b), 0);
        assert_true(pci_addr_compare(&a, &b) < 0);
        assert_true(pci_addr_compare(&b, &a) > 0);
        assert_int_equal(pci_addr_parse("0001:00:00.0", &b), 0);
        assert_true(pci_addr_compare(&a, &b) < 0);
        assert_int_equal(pci_addr_compare(&a, &a), 0);
}

/* pci_addr_key() orders every pair as pci_addr_compare() does, a 32-bit domain included. */
static void keys_order_as_compare_does(void **state)
{
        static const char *const s[] = {"0000:00:00.0", "0000:00:00.7",  "0000:00:01.0",
                                        "0000:00:1f.7", "0000:01:00.0",  "0000:ff:1f.7",
                                        "0001:00:00.0", "10000:00:00.0", "ffffffff:ff:1f.7"};
        struct pci_addr a, b;

        (void)state;
        for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
                for (size_t j = 0; j < sizeof(s) / sizeof(s[0]); j++) {
                        uint64_t ka, kb;
                        int c;
                        assert_int_equal(pci_addr_parse(s[i], &a), 0);
                        assert_int_equal(pci_addr_parse(s[j], &b), 0);
                        ka = pci_addr_key(&a);
                        kb = pci_addr_key(&b);
                        c = pci_addr_compare(&a, &b);
                        if ((c < 0) != (ka < kb) || (c == 0) != (ka == kb))
                                fail_msg("%s vs %s: compare %d, keys %llx %llx", s[i], s[j], c,
                                         (unsigned long long)ka, (unsigned long long)kb);
                }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(full_and_short_forms_parse_to_the_same_address),
                cmocka_unit_test(malformed_addresses_are_refused),
                cmocka_unit_test(addresses_order_by_domain_bus_device_function),
                cmocka_unit_test(keys_order_as_compare_does),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
