/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fault injection for the lab, linked into test builds of programs only (never into a
 * library, never installed): linking this file arms the checkpoints. What each does is
 * chosen at run time, from the environment:
 *
 *   VFIOD_TEST_CRASH_AFTER=N        aborts after the Nth step of binding or restoring
 *                                   a device in this process (the crash sweep);
 *   VFIOD_TEST_REMOVE_AFTER=N       removes that device through sysfs after the Nth such
 *                                   step, so it vanishes in the middle of the operation;
 *   VFIOD_TEST_SRIOV_CRASH_AFTER=N  aborts after the Nth step of a carve (journal entry
 *                                   written, count set to 0, autoprobe set, count set,
 *                                   each VF bound), for the crash sweep;
 *   VFIOD_TEST_SRIOV_SHORT=1        asks the kernel for one VF fewer than wanted, once: what
 *                                   the kernel does when a PF driver's sriov_configure
 *                                   enables fewer VFs than were written (a partial enable). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"

/* Steps so far, counted per site: a carve's own steps and the binds of its VFs are two
 * sweeps. */
static unsigned steps[_CHECKPOINT_SITE_MAX];
static bool shortened;

static bool nth(const char *variable, unsigned step)
{
        const char *s = getenv(variable);
        return s && (unsigned)atoi(s) == step;
}

static void test_step(enum checkpoint_site site, const struct root *root, const struct pci_addr *a)
{
        unsigned step = ++steps[site];

        if (site == CHECKPOINT_SRIOV) {
                if (nth("VFIOD_TEST_SRIOV_CRASH_AFTER", step)) {
                        fprintf(stderr, "vfiod test hook: aborting after carve step %u\n", step);
                        abort();
                }
                return;
        }
        if (nth("VFIOD_TEST_CRASH_AFTER", step)) {
                fprintf(stderr, "vfiod test hook: aborting after step %u\n", step);
                abort();
        }
        if (nth("VFIOD_TEST_REMOVE_AFTER", step) && root && a) {
                char p[128], addr[PCI_ADDR_STRLEN];
                snprintf(p, sizeof(p), "sys/bus/pci/devices/%s/remove", pci_addr_format(a, addr));
                fprintf(stderr, "vfiod test hook: removing %s after step %u: %s\n", addr, step,
                        root_write_string(root, p, "1") < 0 ? "failed" : "done");
        }
}

static int test_sriov_numvfs(int n)
{
        const char *s = getenv("VFIOD_TEST_SRIOV_SHORT");

        if (n < 2 || shortened || !s || strcmp(s, "1") != 0)
                return n;
        shortened = true;
        fprintf(stderr, "vfiod test hook: writing %d to sriov_numvfs instead of %d\n", n - 1, n);
        return n - 1;
}

static const struct checkpoint_hooks test_hooks = {
        .step = test_step,
        .sriov_numvfs = test_sriov_numvfs,
};

/* Before main(): the program's own code never has to know it is a test build. */
__attribute__((constructor)) static void test_hooks_install(void)
{
        checkpoint_install(&test_hooks);
}
