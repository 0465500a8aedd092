/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What this host exports to fleets right now: every device of an exported pool that a
 * container can be given, with the nodes it needs and where it sits (PF, NUMA node,
 * PCIe root complex). The CDI spec and the kubelet device plugin are both made from it. */

#include <stdbool.h>
#include <stddef.h>

#include "pci-addr.h"
#include "pools.h"
#include "root.h"
#include "topology.h"

enum fleet_backend {
        FLEET_BACKEND_IOMMUFD, /* /dev/iommu and the device's /dev/vfio/devices/vfioN */
        FLEET_BACKEND_TYPE1,   /* /dev/vfio/vfio and its group's /dev/vfio/N */
};

struct fleet_device {
        struct pci_addr addr;
        char name[PCI_ADDR_STRLEN];
        size_t pool; /* index into the configuration's pools */
        enum fleet_backend backend;
        char *nodes[2]; /* container paths: "/dev/iommu", "/dev/vfio/devices/vfio3" */
        int numa_node;  /* -1: unknown */
        bool is_vf;
        char pf[PCI_ADDR_STRLEN]; /* the VF's PF; the device itself when not a VF */
        char *pcie_root;          /* "pci0000:00": the root complex above it */
};

struct fleet_inventory {
        struct fleet_device *devices; /* sorted by address */
        size_t n_devices;
};

/* The devices of t that the configuration's pools export and that vfio-pci holds with a
 * node a container can open: on vfio-pci (or a variant), in an IOMMU group, not in
 * vfio's no-IOMMU mode, not a bridge. A device has the iommufd pair when /dev/iommu
 * exists and its vfio cdev node does, else the type1 pair; never both. A pool's
 * "backend" narrows that: "type1" takes the group nodes even where iommufd is there,
 * "iommufd" leaves out devices without a cdev. */
int fleet_inventory_build(const struct root *r, const struct topology *t,
                          const struct fleet_config *c, struct fleet_inventory **ret);

struct fleet_inventory *fleet_inventory_free(struct fleet_inventory *inv);

static inline void fleet_inventory_freep(struct fleet_inventory **inv)
{
        fleet_inventory_free(*inv);
}

/* A device by address, or NULL. */
const struct fleet_device *fleet_inventory_find(const struct fleet_inventory *inv,
                                                const char *name);
