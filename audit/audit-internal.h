/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Shared by the files of the audit module; not part of its API. */

#include "audit.h"
#include "macro.h"

struct audit_ctx {
        const struct root *root;
        const struct topology *t;
        struct audit_report *report;
        bool whole_host;
        bool *in_scope; /* per device index: audited */
        bool *assigned; /* per device index: to be given to vfio (listed, or on vfio now) */
        size_t n_in_scope, n_assigned;
};

/* Appends a finding; the evidence and device helpers below then add to it. 0 or -ENOMEM. */
int audit_add(struct audit_ctx *c, enum audit_check_id id, enum audit_severity sev,
              const char *subject, const char *detail, const char *fix, const char *fmt, ...)
        _printf_(7, 8);
int audit_evidence(struct audit_ctx *c, const char *path, const char *fmt, ...) _printf_(3, 4);
int audit_device(struct audit_ctx *c, const char *address);

/* Marks a check as not applicable, with the reason. 0 or -ENOMEM. */
int audit_skip(struct audit_ctx *c, enum audit_check_id id, const char *reason);

int audit_checks_host(struct audit_ctx *c);
int audit_checks_devices(struct audit_ctx *c);
/* NULL probe: skipped, not asked for. */
int audit_checks_probe(struct audit_ctx *c, const struct audit_probe *probe);

/* Checks the devices named for the probe before anything runs (see
 * audit_run_with_probe()). */
int audit_probe_validate(const struct audit_ctx *c, const struct audit_probe *probe,
                         char **ret_detail);

/* A function that could be given to a guest: not a bridge of any kind (host, ISA,
 * PCI-to-PCI) and not the IOMMU itself. */
bool audit_device_is_candidate(const struct pci_device *d);

/* "sys/bus/pci/devices/ADDR/ATTR" into buf; the stable name of a device file. */
const char *audit_device_path(const struct pci_device *d, const char *attr, char buf[static 128]);
