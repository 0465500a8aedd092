/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Points where a test may interrupt or disturb a kernel-changing operation. Every build
 * has them and, by default, they do nothing: only a test build of a program installs
 * hooks (test-hooks.c, which reads VFIOD_TEST_* from the environment), so the libraries
 * and the programs' own objects are the same in both builds. */

#include "pci-addr.h"
#include "root.h"

enum checkpoint_site {
        CHECKPOINT_BIND,  /* a step of binding or restoring a device (vfio/bind.c) */
        CHECKPOINT_SRIOV, /* a step of changing a PF's VF count (sriov/sriov.c) */
        _CHECKPOINT_SITE_MAX,
};

struct checkpoint_hooks {
        /* A step at site is done, for device a below root (a and root may be NULL). */
        void (*step)(enum checkpoint_site site, const struct root *root, const struct pci_addr *a);
        /* The VF count to write to sriov_numvfs when n is wanted. */
        int (*sriov_numvfs)(int n);
};

/* Installs hooks for the rest of the process (NULL removes them). */
void checkpoint_install(const struct checkpoint_hooks *h);

/* Marks that one kernel-facing step at site has been done; calls the installed hook, if
 * any. */
void checkpoint(enum checkpoint_site site, const struct root *root, const struct pci_addr *a);

/* n, unless an installed hook asks for another count (a PF driver that enables fewer VFs
 * than were written). */
int checkpoint_sriov_numvfs(int n);
