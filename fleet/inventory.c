/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "inventory.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dev-node.h"
#include "iommu.h"
#include "macro.h"

static void device_done(struct fleet_device *d)
{
        free(d->nodes[0]);
        free(d->nodes[1]);
        free(d->pcie_root);
}

struct fleet_inventory *fleet_inventory_free(struct fleet_inventory *inv)
{
        if (!inv)
                return NULL;
        for (size_t i = 0; i < inv->n_devices; i++)
                device_done(&inv->devices[i]);
        free(inv->devices);
        free(inv);
        return NULL;
}

/* "sys/devices/pci0000:00/0000:00:01.0/..." -> "pci0000:00". */
static char *root_complex(const struct pci_device *d)
{
        const char *p = d->sysfs_path, *prefix = "sys/devices/";
        if (!p || strncmp(p, prefix, strlen(prefix)) != 0)
                return strdup("");
        p += strlen(prefix);
        return strndup(p, strcspn(p, "/"));
}

static int device_fill(const struct root *r, const struct topology *t, const struct pci_device *d,
                       size_t pool, enum fleet_pool_backend want, struct fleet_device *ret)
{
        enum vfio_backend b;
        char group_node[32];
        int n, q;

        if (!driver_is_vfio(d->driver) || d->iommu_group < 0)
                return -ENODEV;
        q = vfio_backend_detect(r, &d->addr, &b, NULL);
        if (q == -ENOMEM)
                return q;
        if (q < 0 || b == VFIO_BACKEND_NOIOMMU)
                return -ENODEV;

        struct fleet_device f = {
                .addr = d->addr,
                .pool = pool,
                .numa_node = d->numa_node,
                .is_vf = d->physfn >= 0,
        };
        memcpy(f.name, d->name, sizeof(f.name));
        memcpy(f.pf, f.is_vf ? topology_device(t, d->physfn)->name : d->name, sizeof(f.pf));
        if (b == VFIO_BACKEND_IOMMUFD && want != FLEET_POOL_BACKEND_TYPE1 &&
            vfio_device_cdev_index(r, &d->addr, &n) >= 0) {
                f.backend = FLEET_BACKEND_IOMMUFD;
                f.nodes[0] = strdup("/dev/iommu");
                char node[VFIO_CDEV_PATH_MAX];
                q = asprintf(&f.nodes[1], "/%s", vfio_cdev_path(n, node));
        } else {
                /* Detection prefers iommufd: the group node may be absent (a kernel built
                 * without the legacy container), and a pool may want only cdevs. */
                snprintf(group_node, sizeof(group_node), "dev/vfio/%d", d->iommu_group);
                if (want == FLEET_POOL_BACKEND_IOMMUFD || !root_exists(r, group_node))
                        return -ENODEV;
                f.backend = FLEET_BACKEND_TYPE1;
                f.nodes[0] = strdup("/dev/vfio/vfio");
                q = asprintf(&f.nodes[1], "/dev/vfio/%d", d->iommu_group);
        }
        if (q < 0)
                f.nodes[1] = NULL;
        f.pcie_root = root_complex(d);
        if (!f.nodes[0] || !f.nodes[1] || !f.pcie_root) {
                device_done(&f);
                return -ENOMEM;
        }
        *ret = f;
        return 0;
}

int fleet_inventory_build(const struct root *r, const struct topology *t,
                          const struct fleet_config *c, struct fleet_inventory **ret)
{
        _cleanup_(fleet_inventory_freep) struct fleet_inventory *inv = calloc(1, sizeof(*inv));

        if (!inv)
                return -ENOMEM;
        inv->devices = calloc(t->n_devices ? t->n_devices : 1, sizeof(*inv->devices));
        if (!inv->devices)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_devices; i++) {
                const struct pci_device *d = &t->devices[i];
                const struct fleet_pool *p = fleet_config_pool_of(c, t, d);
                if (!p)
                        continue;
                int q = device_fill(r, t, d, (size_t)(p - c->pools), p->backend,
                                    &inv->devices[inv->n_devices]);
                if (q == -ENODEV)
                        continue;
                if (q < 0)
                        return q;
                inv->n_devices++;
        }
        *ret = TAKE_PTR(inv);
        return 0;
}

const struct fleet_device *fleet_inventory_find(const struct fleet_inventory *inv, const char *name)
{
        struct pci_addr a;
        size_t lo = 0, hi = inv->n_devices;

        if (pci_addr_parse(name, &a) < 0)
                return NULL;
        /* Sorted by address (the topology's order): kubelet's requests name every device
         * of a pool, so a linear search would make them quadratic. */
        uint64_t want = pci_addr_key(&a);
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                uint64_t k = pci_addr_key(&inv->devices[mid].addr);
                if (k == want)
                        return &inv->devices[mid];
                if (k < want)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}
