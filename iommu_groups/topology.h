/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The topology snapshot: one scan of sysfs (and a little of /proc) turned into an
 * immutable picture of PCI devices, IOMMU groups, IOMMU units, upstream paths and the
 * host settings that decide whether assignment is safe. Every other module reads it. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pci-addr.h"
#include "root.h"

/* PCI Express Device/Port Type (PCIe Capabilities register bits 7:4), or no PCIe cap. */
enum pcie_type {
        PCIE_TYPE_ENDPOINT = 0x0,
        PCIE_TYPE_LEGACY_ENDPOINT = 0x1,
        PCIE_TYPE_ROOT_PORT = 0x4,
        PCIE_TYPE_UPSTREAM = 0x5,
        PCIE_TYPE_DOWNSTREAM = 0x6,
        PCIE_TYPE_PCIE_TO_PCI = 0x7,
        PCIE_TYPE_PCI_TO_PCIE = 0x8,
        PCIE_TYPE_RC_INTEGRATED = 0x9,
        PCIE_TYPE_RC_EVENT_COLLECTOR = 0xa,
        PCIE_TYPE_NONE = 0x10,    /* conventional PCI: no PCIe capability */
        PCIE_TYPE_UNKNOWN = 0x11, /* config space could not be read far enough */
};

const char *pcie_type_to_string(enum pcie_type t);

/* ACS capability and control bits (PCIe base spec, ACS Extended Capability). */
enum {
        ACS_SV = 1u << 0, /* source validation */
        ACS_TB = 1u << 1, /* translation blocking */
        ACS_RR = 1u << 2, /* P2P request redirect */
        ACS_CR = 1u << 3, /* P2P completion redirect */
        ACS_UF = 1u << 4, /* upstream forwarding */
        ACS_EC = 1u << 5, /* P2P egress control */
        ACS_DT = 1u << 6, /* direct translated P2P */
        /* What the kernel requires along a path before it separates groups. */
        ACS_REQUIRED = ACS_SV | ACS_RR | ACS_CR | ACS_UF,
};

enum tristate {
        TRI_UNKNOWN = -1,
        TRI_NO = 0,
        TRI_YES = 1,
};

struct netdev_info {
        char *name;
        bool up;          /* IFF_UP in the interface flags */
        char **addresses; /* NULL-terminated; only known on the live host */
        bool addresses_known;
};

struct blockdev_info {
        char *name;
        unsigned major, minor;
        bool mounted; /* it or a partition is in mountinfo or /proc/swaps */
        bool held;    /* it or a partition has holders (dm, md, ...) */
        char *mountpoint;
};

struct pci_device {
        struct pci_addr addr;
        char name[PCI_ADDR_STRLEN]; /* canonical address string */
        char *sysfs_path;           /* root-relative real directory, "sys/devices/..." */

        uint16_t vendor, device, subsystem_vendor, subsystem_device;
        uint32_t class; /* 24 bits: base, sub, prog-if */
        uint8_t revision;
        bool have_ids;    /* vendor/device/class were all readable */
        bool ids_from_pf; /* a VF: vendor and device come from its PF's SR-IOV capability */

        char *vendor_name, *device_name, *subsystem_name, *class_name;

        char *driver;          /* NULL when unbound */
        char *driver_override; /* NULL when none */
        int iommu_group;       /* -1 when the device has no group (or no known one) */
        bool group_link_bad;   /* the iommu_group link exists but could not be read */
        char *iommu_unit;      /* "dmar0", from the iommu link; NULL if none */
        int numa_node;
        char *reset_method; /* space-separated, as sysfs has it; NULL if absent */
        bool boot_vga;

        /* Hierarchy: indices into topology->devices, -1 for none. */
        int parent;  /* the upstream bridge or port */
        int physfn;  /* for a VF: its PF */
        int *virtfn; /* for a PF: its VFs, ordered by VF index */
        size_t n_virtfn;
        int sriov_totalvfs, sriov_numvfs; /* -1 unless an SR-IOV PF */

        /* From config space. */
        size_t config_len; /* bytes readable (64 unprivileged, 256 or 4096 as root) */
        uint8_t header_type;
        bool multifunction;
        bool is_bridge;
        enum pcie_type pcie_type;
        bool have_acs;
        uint16_t acs_cap, acs_ctrl;
        bool acs_known; /* extended config space was readable */
        bool have_ats;
        bool have_sriov_cap; /* SR-IOV capability seen in config space */
        uint16_t sriov_cfg_numvfs, sriov_offset, sriov_stride, sriov_vf_device;

        struct netdev_info *netdevs;
        size_t n_netdevs;
        struct blockdev_info *blockdevs;
        size_t n_blockdevs;

        /* Why the host is using the device right now, or NULL. */
        char *in_use;
};

struct iommu_group {
        int id;
        char *type;   /* "DMA", "DMA-FQ", "identity", "blocked", "unmanaged", ... or NULL */
        int *members; /* indices into topology->devices, sorted by address */
        size_t n_members;
        bool viable;   /* every member is in a state vfio accepts right now */
        char *verdict; /* one line explaining viable / not viable */
        char *in_use;  /* the first member the host is using, with why; NULL if none */
};

enum iommu_kind {
        IOMMU_KIND_INTEL_VTD,
        IOMMU_KIND_AMD_VI,
        IOMMU_KIND_OTHER,
};

const char *iommu_kind_to_string(enum iommu_kind k);

struct iommu_unit {
        char *name;
        enum iommu_kind kind;
        uint64_t cap, ecap; /* VT-d: cap/ecap; AMD-Vi: cap header / features (EFR) */
        bool have_cap, have_ecap;
        char *version;
        size_t n_devices;
        /* Decoded. */
        bool interrupt_remapping;
        bool posted_interrupts;
        bool pass_through;
        bool scalable_mode;
        bool x2apic;
        bool device_tlb; /* ATS */
        bool nested;
};

enum iommu_mode {
        IOMMU_MODE_NONE,        /* no IOMMU at all */
        IOMMU_MODE_NOIOMMU,     /* vfio's unsafe no-IOMMU mode */
        IOMMU_MODE_PASSTHROUGH, /* IOMMU present, identity default domains */
        IOMMU_MODE_TRANSLATED,  /* IOMMU present and translating */
};

const char *iommu_mode_to_string(enum iommu_mode m);

struct host_facts {
        bool iommu_present;
        enum iommu_mode mode;
        char *default_domain_type;  /* the most common group type, or NULL */
        enum tristate ir_supported; /* every unit implements interrupt remapping */
        enum tristate ir_enabled;   /* remapped interrupt chips are live */
        enum tristate posted_interrupts;
        enum tristate noiommu_mode;
        enum tristate allow_unsafe_interrupts;
        char *cmdline;
        char **cmdline_flags; /* IOMMU-relevant words of the command line, NULL-terminated */
        bool unprivileged;    /* config space beyond 64 bytes was not readable */
};

struct topology {
        struct pci_device *devices; /* sorted by address */
        size_t n_devices;
        struct iommu_group *groups; /* sorted by id */
        size_t n_groups;
        struct iommu_unit *units; /* sorted by name */
        size_t n_units;
        struct host_facts host;
        char **warnings; /* what could not be read, NULL-terminated; never fatal */
        size_t n_warnings;
};

enum {
        TOPOLOGY_SCAN_NO_NAMES = 1u << 0, /* skip the pci.ids lookup */
};

/* Scans the tree below root. A missing or unreadable file of one device becomes a
 * warning and an unknown field, never a failure; fails only without memory or when the
 * root has no sys/bus/pci at all (-ENOENT). */
int topology_scan(const struct root *root, unsigned flags, struct topology **ret);

/* topology_scan() of only what a decision about the devices in want needs: each of
 * them, the other members of their IOMMU groups, every device below their parent
 * bridges (what a bus reset reaches), the other functions of each slot, the bridges
 * above all of these, and the host's use of each. Devices and groups outside that are
 * absent, so lookups of them return NULL; what is present is exactly as topology_scan()
 * has it. An address the host does not have is ignored, as a whole scan would not
 * find it either. */
int topology_scan_scoped(const struct root *root, unsigned flags, const struct pci_addr *want,
                         size_t n_want, struct topology **ret);

/* Accepts NULL; returns NULL. */
struct topology *topology_free(struct topology *t);

static inline void topology_freep(struct topology **t)
{
        topology_free(*t);
}

/* Lookups return NULL when absent. */
const struct pci_device *topology_find_device(const struct topology *t, const struct pci_addr *a);
const struct iommu_group *topology_find_group(const struct topology *t, int id);
const struct iommu_unit *topology_find_unit(const struct topology *t, const char *name);

static inline const struct pci_device *topology_device(const struct topology *t, int idx)
{
        return idx >= 0 && (size_t)idx < t->n_devices ? &t->devices[idx] : NULL;
}

/* Whether ACS along the path from dev up to its root port separates it from its peers:
 * every downstream and root port above it enables ACS_REQUIRED, and a multi-function
 * device does the same itself. TRI_UNKNOWN when config space was not readable. A
 * PCIe-to-PCI bridge on the path makes it TRI_NO: devices behind it share requester IDs. */
enum tristate topology_path_isolated(const struct topology *t, const struct pci_device *dev,
                                     const char **ret_reason);

/* Whether the driver (NULL for unbound) lets vfio use the group: vfio-pci and its variant
 * drivers, pci-stub, pcieport (which manages DMA ownership itself), or none. */
bool driver_is_vfio_compatible(const char *driver);
bool driver_is_vfio(const char *driver);

/* Whether the function is a bridge of any kind: a type 1 header (PCI-to-PCI, root and
 * downstream ports) or a bridge class (06xx: host, ISA, PCI-to-PCI, CardBus, ...). A
 * host bridge has a type 0 header, so the header alone misses it. Bridges are the
 * host's plumbing: nothing binds them to vfio-pci or hands them out. */
bool pci_device_is_bridge(const struct pci_device *d);
/* For messages: "host bridge, class 0600", "PCI bridge, class 0604", "PCI bridge,
 * header type 1" (class unreadable), written to buf. */
const char *pci_device_bridge_kind(const struct pci_device *d, char *buf, size_t size);

/* Decoders shared with interrupt_remap/ and the audit. */
void iommu_unit_decode(struct iommu_unit *u);
