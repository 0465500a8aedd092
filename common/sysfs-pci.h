/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The PCI driver-binding files of sysfs, below a root. Each reads or writes exactly one
 * file and returns the kernel's errno; -ENODEV when the device itself is gone. */

#include "pci-addr.h"
#include "root.h"

/* The driver bound now (NULL when none). */
int pci_sysfs_get_driver(const struct root *r, const struct pci_addr *a, char **ret);

/* modalias: "pci:v00008086d000010CAsv...bc02sc00i00", what module aliases match. */
int pci_sysfs_get_modalias(const struct root *r, const struct pci_addr *a, char **ret);

/* driver_override (NULL when none). */
int pci_sysfs_get_override(const struct root *r, const struct pci_addr *a, char **ret);

/* Sets driver_override; NULL clears it (the kernel takes a lone newline as "none"). */
int pci_sysfs_set_override(const struct root *r, const struct pci_addr *a, const char *driver);

/* Writes the address to drivers/DRIVER/unbind, or drivers/DRIVER/bind. */
int pci_sysfs_unbind(const struct root *r, const struct pci_addr *a, const char *driver);
int pci_sysfs_bind(const struct root *r, const struct pci_addr *a, const char *driver);

/* Writes the address to bus/pci/drivers_probe: the kernel matches it against drivers,
 * honouring driver_override. */
int pci_sysfs_probe(const struct root *r, const struct pci_addr *a);

/* Resets the function through its "reset" file, by the kernel's chosen method. */
int pci_sysfs_reset(const struct root *r, const struct pci_addr *a);

/* 0 when the device directory exists, -ENODEV when it does not. */
int pci_sysfs_device_exists(const struct root *r, const struct pci_addr *a);

/* 0 when the driver is registered on the PCI bus, -ENOENT otherwise. */
int pci_sysfs_driver_exists(const struct root *r, const char *driver);
