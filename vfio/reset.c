/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "reset.h"
#include "sysfs-pci.h"

static bool has_function_level_method(const char *methods)
{
        _cleanup_free_ char *copy = methods ? strdup(methods) : NULL;
        char *save = NULL;

        if (!copy)
                return false;
        for (char *m = strtok_r(copy, " ", &save); m; m = strtok_r(NULL, " ", &save))
                if (strcmp(m, "bus") != 0 && strcmp(m, "cxl_bus") != 0)
                        return true;
        return false;
}

/* Whether dev sits anywhere below the bridge with index p. */
static bool below(const struct topology *t, const struct pci_device *dev, int p)
{
        for (int q = dev->parent; q >= 0; q = t->devices[q].parent)
                if (q == p)
                        return true;
        return false;
}

int vfio_reset_check(const struct topology *t, const struct pci_device *d, char **ret_detail)
{
        if (!d->reset_method || !*d->reset_method) {
                if (ret_detail &&
                    asprintf(ret_detail, "%s: the kernel offers no reset method for it", d->name) <
                            0)
                        *ret_detail = NULL;
                return -ENOTTY;
        }
        if (has_function_level_method(d->reset_method))
                return 0;
        if (d->parent < 0) {
                if (ret_detail && asprintf(ret_detail,
                                           "%s: only a bus reset is available and the "
                                           "device is on a root bus",
                                           d->name) < 0)
                        *ret_detail = NULL;
                return -ENOTTY;
        }
        for (size_t i = 0; i < t->n_devices; i++) {
                const struct pci_device *o = &t->devices[i];
                if (o == d || !o->in_use || !below(t, o, d->parent))
                        continue;
                if (ret_detail && asprintf(ret_detail,
                                           "%s: only a bus reset is available, and it "
                                           "would also reset %s, which the host is "
                                           "using (%s)",
                                           d->name, o->name, o->in_use) < 0)
                        *ret_detail = NULL;
                return -EBUSY;
        }
        return 0;
}

int vfio_device_reset(const struct root *root, const struct topology *t, const struct pci_device *d,
                      char **ret_detail)
{
        _cleanup_free_ char *driver = NULL;
        int r = vfio_reset_check(t, d, ret_detail);

        if (r < 0)
                return r;
        /* Read now, not from the snapshot: a host driver would find its device reset
         * under it. */
        r = pci_sysfs_get_driver(root, &d->addr, &driver);
        if (r >= 0 && driver && !driver_is_vfio(driver)) {
                if (ret_detail && asprintf(ret_detail,
                                           "%s: not reset: it is bound to %s, not to "
                                           "vfio-pci",
                                           d->name, driver) < 0)
                        *ret_detail = NULL;
                return -EBUSY;
        }
        r = pci_sysfs_reset(root, &d->addr);
        if (r < 0 && ret_detail &&
            asprintf(ret_detail, "%s: reset failed: %s", d->name, strerror(-r)) < 0)
                *ret_detail = NULL;
        return r;
}
