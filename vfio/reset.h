/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include "root.h"
#include "topology.h"

/* Whether resetting d is safe: a function-level method (flr, pm, af, acpi,
 * device_specific) touches only d; a bus reset hits everything below d's parent bridge,
 * so it is refused when the host is using any of those devices. -ENOTTY when the kernel
 * offers no reset method at all. */
int vfio_reset_check(const struct topology *t, const struct pci_device *d, char **ret_detail);

/* vfio_reset_check(), then a reset through the device's sysfs "reset" file; -EBUSY
 * for a device bound to a driver other than vfio's. */
int vfio_device_reset(const struct root *root, const struct topology *t, const struct pci_device *d,
                      char **ret_detail);
