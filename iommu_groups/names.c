/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Vendor, device, subsystem and class names from the pci.ids database, via libpci. */
#include <errno.h>
#include <pci/pci.h>
#include <stdarg.h>
#include <string.h>

#include "topology-internal.h"

/* libpci reports a malformed pci.ids through this hook; a name we cannot look up is only
 * a missing name, never a reason to stop (the default handler prints and exits). */
static void pci_warning_ignore(char *msg, ...)
{
        (void)msg;
}

static int dup_name(struct pci_access *pa, int flags, char **ret, ...)
{
        char buf[256];
        const char *name;
        va_list ap;

        /* pci_lookup_name() is variadic; forward the ids it expects for flags. */
        va_start(ap, ret);
        unsigned a = va_arg(ap, unsigned), b = va_arg(ap, unsigned), c = va_arg(ap, unsigned),
                 d = va_arg(ap, unsigned);
        va_end(ap);
        name = pci_lookup_name(pa, buf, sizeof(buf), flags | PCI_LOOKUP_NO_NUMBERS, a, b, c, d);
        if (!name) {
                *ret = NULL;
                return 0;
        }
        *ret = strdup(name);
        return *ret ? 0 : -ENOMEM;
}

int scan_names(struct scan_ctx *c)
{
        struct topology *t = c->t;
        struct pci_access *pa = pci_alloc();
        int r = 0;

        if (!pa)
                return -ENOMEM;
        pa->warning = pci_warning_ignore;
        /* Same answers on every machine: the database file, not the local udev hwdb. */
        pa->id_lookup_mode = PCI_LOOKUP_NO_HWDB;

        for (size_t i = 0; r >= 0 && i < t->n_devices; i++) {
                struct pci_device *d = &t->devices[i];
                const struct pci_device *prev = i > 0 ? &t->devices[i - 1] : NULL;

                if (!d->have_ids)
                        continue;
                /* Runs of VFs share ids: copy instead of asking again. */
                if (prev && prev->have_ids && prev->vendor == d->vendor &&
                    prev->device == d->device && prev->class == d->class &&
                    prev->subsystem_vendor == d->subsystem_vendor &&
                    prev->subsystem_device == d->subsystem_device) {
                        if ((prev->vendor_name && !(d->vendor_name = strdup(prev->vendor_name))) ||
                            (prev->device_name && !(d->device_name = strdup(prev->device_name))) ||
                            (prev->class_name && !(d->class_name = strdup(prev->class_name))) ||
                            (prev->subsystem_name &&
                             !(d->subsystem_name = strdup(prev->subsystem_name))))
                                r = -ENOMEM;
                        continue;
                }
                r = dup_name(pa, PCI_LOOKUP_VENDOR, &d->vendor_name, d->vendor, 0u, 0u, 0u);
                if (r >= 0)
                        r = dup_name(pa, PCI_LOOKUP_DEVICE, &d->device_name, d->vendor, d->device,
                                     0u, 0u);
                if (r >= 0)
                        r = dup_name(pa, PCI_LOOKUP_CLASS, &d->class_name, d->class >> 8, 0u, 0u,
                                     0u);
                if (r >= 0 && d->subsystem_vendor)
                        r = dup_name(pa, PCI_LOOKUP_SUBSYSTEM | PCI_LOOKUP_DEVICE,
                                     &d->subsystem_name, d->vendor, d->device, d->subsystem_vendor,
                                     d->subsystem_device);
        }
        pci_cleanup(pa);
        return r;
}
