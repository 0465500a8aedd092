/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "selector.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

static int parse_hex(const char *s, size_t digits, uint32_t *ret)
{
        if (strlen(s) != digits)
                return -EINVAL;
        uint32_t v = 0;
        for (size_t i = 0; i < digits; i++) {
                int d = unhexchar(s[i]);
                if (d < 0)
                        return -EINVAL;
                v = v << 4 | (uint32_t)d;
        }
        *ret = v;
        return 0;
}

/* "0000:01:00.0", "8086:10ca", "8086:*", "class:0200", "class:020000",
 * "0000:02:00.0/vf*", "0000:02:00.0/vf0-3", "0000:02:00.0/vf2". */
int pci_selector_parse(const char *s, struct pci_selector *ret)
{
        struct pci_selector sel = {};
        uint32_t v;

        if (strncmp(s, "class:", 6) == 0) {
                const char *c = s + 6;
                sel.kind = SELECTOR_CLASS;
                if (parse_hex(c, 4, &v) == 0) {
                        sel.class_value = v << 8;
                        sel.class_mask = 0xffff00;
                } else if (parse_hex(c, 6, &v) == 0) {
                        sel.class_value = v;
                        sel.class_mask = 0xffffff;
                } else
                        return -EINVAL;
                *ret = sel;
                return 0;
        }

        const char *slash = strchr(s, '/');
        if (slash) {
                char addr[PCI_ADDR_STRLEN];
                if ((size_t)(slash - s) >= sizeof(addr))
                        return -EINVAL;
                memcpy(addr, s, (size_t)(slash - s));
                addr[slash - s] = 0;
                if (pci_addr_parse(addr, &sel.addr) < 0 || strncmp(slash + 1, "vf", 2) != 0)
                        return -EINVAL;
                sel.kind = SELECTOR_VFS;
                const char *range = slash + 3;
                if (strcmp(range, "*") == 0) {
                        sel.vf_first = 0;
                        sel.vf_last = INT_MAX;
                } else {
                        char *end;
                        errno = 0;
                        long a = strtol(range, &end, 10), b = a;
                        if (end == range || a < 0 || a > 65535 || errno)
                                return -EINVAL;
                        if (*end == '-') {
                                const char *second = end + 1;
                                b = strtol(second, &end, 10);
                                if (end == second || b < a || b > 65535 || errno)
                                        return -EINVAL;
                        }
                        if (*end)
                                return -EINVAL;
                        sel.vf_first = (int)a;
                        sel.vf_last = (int)b;
                }
                *ret = sel;
                return 0;
        }

        if (pci_addr_parse(s, &sel.addr) == 0) {
                sel.kind = SELECTOR_ADDRESS;
                *ret = sel;
                return 0;
        }

        /* vendor:device */
        if (strlen(s) < 6 || s[4] != ':')
                return -EINVAL;
        char vendor[5];
        memcpy(vendor, s, 4);
        vendor[4] = 0;
        if (parse_hex(vendor, 4, &v) < 0)
                return -EINVAL;
        sel.kind = SELECTOR_IDS;
        sel.vendor = (uint16_t)v;
        if (strcmp(s + 5, "*") == 0)
                sel.any_device = true;
        else if (parse_hex(s + 5, 4, &v) == 0)
                sel.device = (uint16_t)v;
        else
                return -EINVAL;
        *ret = sel;
        return 0;
}

int pci_device_vf_index(const struct topology *t, const struct pci_device *d)
{
        if (d->physfn < 0)
                return -1;
        const struct pci_device *pf = topology_device(t, d->physfn);
        for (size_t i = 0; i < pf->n_virtfn; i++)
                if (pf->virtfn[i] >= 0 && topology_device(t, pf->virtfn[i]) == d)
                        return (int)i;
        return -1;
}

bool pci_selector_matches(const struct pci_selector *s, const struct topology *t,
                          const struct pci_device *d)
{
        switch (s->kind) {
        case SELECTOR_ADDRESS:
                return pci_addr_equal(&s->addr, &d->addr);
        case SELECTOR_IDS:
                return d->have_ids && d->vendor == s->vendor &&
                       (s->any_device || d->device == s->device);
        case SELECTOR_CLASS:
                return d->have_ids && (d->class & s->class_mask) == s->class_value;
        case SELECTOR_VFS: {
                if (d->physfn < 0 ||
                    !pci_addr_equal(&topology_device(t, d->physfn)->addr, &s->addr))
                        return false;
                int i = pci_device_vf_index(t, d);
                return i >= s->vf_first && i <= s->vf_last;
        }
        }
        return false;
}
