/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The kernel modules vfio's operations need: whether each is in the kernel below a
 * root, and loading the absent ones on the running host (libkmod, as modprobe would,
 * with the host's modprobe.d options). Distribution kernels ship vfio-pci,
 * vfio_iommu_type1 and iommufd as modules that nothing loads at boot. */

#include "iommu.h"
#include "root.h"

enum vfio_module {
        VFIO_MODULE_VFIO,     /* vfio itself: only ever looked at, never loaded alone */
        VFIO_MODULE_VFIO_PCI, /* the driver devices are bound to */
        VFIO_MODULE_TYPE1,    /* vfio_iommu_type1: the legacy container's IOMMU driver */
        VFIO_MODULE_IOMMUFD,  /* /dev/iommu */
        _VFIO_MODULE_MAX,
};

#define VFIO_MODULE_BIT(m) (1u << (m))

/* The driver name the vfio_pci module registers (what driver_override names). */
#define VFIO_PCI_DRIVER "vfio-pci"

/* What opening a device through backend b needs besides vfio-pci: vfio_iommu_type1 for
 * type1, iommufd for iommufd, nothing for the no-IOMMU group path. */
unsigned vfio_modules_for_backend(enum vfio_backend b);

/* The name people know it by: "vfio-pci", "vfio_iommu_type1", "iommufd", "vfio". */
const char *vfio_module_to_string(enum vfio_module m);

/* Whether the module's work is in the kernel below root, from sysfs and /dev alone:
 * vfio-pci by its driver directory (sys/bus/pci/drivers/vfio-pci) or sys/module/vfio_pci,
 * vfio by sys/module/vfio, sys/class/vfio or dev/vfio, vfio_iommu_type1 by
 * sys/module/vfio_iommu_type1, iommufd by sys/module/iommufd or dev/iommu. A built-in
 * module shows the same way. */
bool vfio_module_present(const struct root *root, enum vfio_module m);

/* 0 when every module in want (VFIO_MODULE_BIT()s) is present; else -ENOENT, the detail
 * naming the first absent one: "the vfio-pci driver is not loaded (modprobe vfio-pci)". */
int vfio_modules_check(const struct root *root, unsigned want, char **ret_detail);

/* The one decision before an operation that needs the modules in want (VFIO_MODULE_BIT()s):
 * those present are left alone; on the running host (root->is_host) the others are
 * loaded, a module listed in modules.builtin counting as present; below any other root
 * nothing is ever loaded: vfio_modules_check()'s error. A module that is not in
 * /lib/modules/$(uname -r) (-ENOENT), or one of whose files is missing there, fails before anything
 * is inserted; an insert that fails removes what this call had inserted. libkmod is loaded
 * only when a module has to be, and its absence is -EOPNOTSUPP. *ret_loaded (when not
 * NULL) gets the names of the modules this call loaded, NULL-terminated, or NULL when it loaded
 * none; the detail names the module and the reason. */
int vfio_modules_need(const struct root *root, unsigned want, char ***ret_loaded,
                      char **ret_detail);

/* The other VFIO drivers: vfio-pci's vendor variants (mlx5_vfio_pci, ...), each in a module
 * of its own (vfio/variant.h chooses one). */

/* The PCI driver module registers, from sys/module/MODULE/drivers/pci:NAME below root:
 * -ENOENT when the module is not loaded or registers none. */
int vfio_module_pci_driver(const struct root *root, const char *module, char **ret);

/* The module that registers driver: its sys/bus/pci/drivers/DRIVER/module link when it is
 * loaded; else the name with '-' as '_' ("vfio-pci" -> "vfio_pci"), as modprobe reads it. */
int vfio_driver_module(const struct root *root, const char *driver, char **ret);

/* 0 when the PCI driver is registered below root (vfio-pci: vfio_modules_check()); else
 * -ENOENT, the detail "the mlx5_vfio_pci driver is not loaded (modprobe MODULE)" (module
 * NULL: the driver's name). */
int vfio_driver_check(const struct root *root, const char *driver, const char *module,
                      char **ret_detail);

/* vfio_modules_need() for any VFIO driver: nothing when it is registered; on the running
 * host its module is loaded by name (libkmod, with its dependencies, as modprobe would)
 * and must register the driver (-EIO if it does not; what was inserted is removed again);
 * below any other root vfio_driver_check()'s error. vfio-pci goes through
 * vfio_modules_need(). *ret_loaded as there. */
int vfio_driver_need(const struct root *root, const char *driver, const char *module,
                     char ***ret_loaded, char **ret_detail);
