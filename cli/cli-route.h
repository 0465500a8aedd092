/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pci-addr.h"
#include "vfiod-client.h"

#include "cli.h"

/* Connects to a running vfiod when it should do the work: 1 and *ret set; 0 to work
 * directly (none running, --no-daemon, --root/--state-dir, or one of direct_only_opts,
 * options only the direct path has); or -(exit status) when the socket exists but
 * cannot be used (said on stderr). */
int cli_route_connect(struct cli *c, uint64_t direct_only_opts, struct vfiod_client **ret);

/* bind (or unbind, bind == false) of req by the daemon: 0 with the devices it moved
 * (with --group, the group mates it took too), or the exit status when it refused or
 * failed (said on stderr). */
int cli_route_bind(struct cli *c, struct vfiod_client *client, bool bind,
                   const struct pci_addr *req, size_t n_req, struct pci_addr **ret_moved,
                   size_t *ret_n);

/* sriov PF --numvfs N [--driver D] through a running vfiod: -1 when not used, else the
 * exit status (the caller then shows the PF). */
int cli_route_sriov_numvfs(struct cli *c, const char *pf, unsigned long n, const char *driver);
