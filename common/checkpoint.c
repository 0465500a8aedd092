/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stddef.h>

#include "checkpoint.h"

static const struct checkpoint_hooks *hooks;

void checkpoint_install(const struct checkpoint_hooks *h)
{
        hooks = h;
}

void checkpoint(enum checkpoint_site site, const struct root *root, const struct pci_addr *a)
{
        if (hooks && hooks->step)
                hooks->step(site, root, a);
}

int checkpoint_sriov_numvfs(int n)
{
        return hooks && hooks->sriov_numvfs ? hooks->sriov_numvfs(n) : n;
}
