/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "pci-addr.h"

static int hex_digit(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Consumes exactly n hex digits (n in [min, max]) up to the terminator; strtoul() is not
 * used because it accepts signs, spaces and "0x", none of which belong in an address. */
static int parse_hex_field(const char **p, char term, size_t min, size_t max, uint32_t *ret)
{
        uint32_t v = 0;
        size_t n = 0;

        for (; **p != term; (*p)++, n++) {
                int d = hex_digit(**p);
                if (d < 0 || n >= max)
                        return -EINVAL;
                v = v << 4 | (uint32_t)d;
        }
        if (n < min)
                return -EINVAL;
        *ret = v;
        return 0;
}

int pci_addr_parse(const char *s, struct pci_addr *ret)
{
        uint32_t domain = 0, bus, dev, fn;
        const char *p = s;
        size_t colons = 0;

        if (!s)
                return -EINVAL;
        for (const char *q = s; *q; q++)
                colons += *q == ':';
        if (colons == 2 && parse_hex_field(&p, ':', 4, 8, &domain) < 0)
                return -EINVAL;
        if (colons == 2)
                p++;
        else if (colons != 1)
                return -EINVAL;

        if (parse_hex_field(&p, ':', 2, 2, &bus) < 0)
                return -EINVAL;
        p++;
        if (parse_hex_field(&p, '.', 2, 2, &dev) < 0 || dev > 0x1f)
                return -EINVAL;
        p++;
        if (parse_hex_field(&p, '\0', 1, 1, &fn) < 0 || fn > 7)
                return -EINVAL;

        *ret = (struct pci_addr){
                .domain = domain, .bus = (uint8_t)bus, .dev = (uint8_t)dev, .fn = (uint8_t)fn};
        return 0;
}

/* Lowercase hex digits of v, at least width of them (a domain can have more than 4). */
static char *put_hex(char *p, uint32_t v, int width)
{
        static const char digits[] = "0123456789abcdef";
        int n = 1;
        while (n < 8 && v >> (4 * n))
                n++;
        if (n < width)
                n = width;
        for (int i = n - 1; i >= 0; i--)
                *p++ = digits[v >> (4 * i) & 15];
        return p;
}

char *pci_addr_format(const struct pci_addr *a, char buf[static PCI_ADDR_STRLEN])
{
        /* By hand: snprintf() cost two thousand instructions a call, and the daemon formats
         * addresses on every lease. */
        char *p = put_hex(buf, a->domain, 4);
        *p++ = ':';
        p = put_hex(p, a->bus, 2);
        *p++ = ':';
        p = put_hex(p, a->dev, 2);
        *p++ = '.';
        p = put_hex(p, a->fn, 1);
        *p = 0;
        return buf;
}

int pci_addr_compare(const struct pci_addr *a, const struct pci_addr *b)
{
        if (a->domain != b->domain)
                return a->domain < b->domain ? -1 : 1;
        if (a->bus != b->bus)
                return a->bus < b->bus ? -1 : 1;
        if (a->dev != b->dev)
                return a->dev < b->dev ? -1 : 1;
        if (a->fn != b->fn)
                return a->fn < b->fn ? -1 : 1;
        return 0;
}
