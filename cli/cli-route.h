/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include "cli.h"

/* bind (or unbind, bind == false) of c->args through a running vfiod. Returns -1 when
 * the daemon is not to be used (none running, --no-daemon, --root/--state-dir, or
 * options only the direct path has: --dry-run, --persist, --persisted, --reset); else
 * the verb's exit status, its output printed. */
int cli_route_bind(struct cli *c, bool bind);

/* sriov PF --numvfs N [--driver D] through a running vfiod: -1 when not used, else the
 * exit status (the caller then shows the PF). */
int cli_route_sriov_numvfs(struct cli *c, const char *pf, unsigned long n, const char *driver);
