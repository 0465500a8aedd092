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
 *                                   enables fewer VFs than were written (a partial enable);
 *   VFIOD_TEST_DRIVER_CORE=ADDR=DRIVER,...
 *                                   below a tree that is not the running system, plays the
 *                                   PCI driver core after each step of binding or restoring:
 *                                   what was written to drivers/NAME/unbind, drivers/NAME/bind
 *                                   and drivers_probe moves the device's driver link as the
 *                                   kernel would, driver_override honoured; each ADDR=DRIVER
 *                                   is the driver the kernel's own match gives that device
 *                                   when no override is set. Fixture tests of real binds. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "fd-util.h"
#include "macro.h"

/* Steps so far, counted per site: a carve's own steps and the binds of its VFs are two
 * sweeps. */
static unsigned steps[_CHECKPOINT_SITE_MAX];
static bool shortened;

static bool nth(const char *variable, unsigned step)
{
        const char *s = getenv(variable);
        return s && (unsigned)atoi(s) == step;
}

/* ---- the driver core stand-in (VFIOD_TEST_DRIVER_CORE) --------------------------------- */

/* The driver the kernel's own match gives addr, from the variable; NULL when none. */
static char *native_driver(const char *addr)
{
        const char *s = getenv("VFIOD_TEST_DRIVER_CORE");
        size_t n = strlen(addr);

        for (; s && *s; s += strcspn(s, ","), s += *s == ',')
                if (strncmp(s, addr, n) == 0 && s[n] == '=')
                        return strndup(s + n + 1, strcspn(s + n + 1, ","));
        return NULL;
}

/* The device's directory, root-relative ("sys/devices/pci0000:00/.../ADDR"). */
static char *device_dir(const struct root *root, const char *addr)
{
        char link[PATH_MAX], target[PATH_MAX];
        char *dir = NULL;
        ssize_t n;

        snprintf(link, sizeof(link), "sys/bus/pci/devices/%s", addr);
        n = readlinkat(root->fd, link, target, sizeof(target) - 1);
        if (n < 0)
                return NULL;
        target[n] = '\0';
        return path_resolve_link("sys/bus/pci/devices", target, &dir) < 0 ? NULL : dir;
}

/* "../" once per component of a root-relative directory: the way up to the root. */
static void up_to_root(const char *dir, char *buf, size_t size)
{
        buf[0] = '\0';
        for (const char *p = dir; p; p = strchr(p + 1, '/'))
                strncat(buf, "../", size - strlen(buf) - 1);
}

/* Moves the device's driver links: to driver, or away when driver is NULL. */
static void driver_link_set(const struct root *root, const char *addr, const char *driver)
{
        _cleanup_free_ char *dir = device_dir(root, addr), *old = NULL;
        char p[PATH_MAX], up[PATH_MAX], target[3 * PATH_MAX];
        int fd;

        if (!dir)
                return;
        fd = root_openat(root, dir, O_PATH | O_DIRECTORY);
        if (fd >= 0 && dir_readlink_basename(fd, "driver", &old) >= 0) {
                (void)unlinkat(fd, "driver", 0);
                snprintf(p, sizeof(p), "sys/bus/pci/drivers/%s/%s", old, addr);
                (void)unlinkat(root->fd, p, 0);
        }
        if (fd >= 0 && driver) {
                up_to_root(dir, up, sizeof(up));
                snprintf(target, sizeof(target), "%ssys/bus/pci/drivers/%s", up, driver);
                (void)symlinkat(target, fd, "driver");
                snprintf(p, sizeof(p), "sys/bus/pci/drivers/%s/%s", driver, addr);
                up_to_root("sys/bus/pci/drivers/x", up, sizeof(up));
                snprintf(target, sizeof(target), "%s%s", up, dir);
                (void)symlinkat(target, root->fd, p);
        }
        if (fd >= 0)
                close(fd);
}

static bool has_driver(const struct root *root, const char *addr)
{
        _cleanup_free_ char *dir = device_dir(root, addr);
        char p[PATH_MAX];

        snprintf(p, sizeof(p), "%s/driver", dir ? dir : "-");
        return dir && root_exists(root, p);
}

/* What the kernel would bind now: the override when set, else the native match. */
static char *match_driver(const struct root *root, const char *addr)
{
        char p[PATH_MAX], *override = NULL, *d;

        snprintf(p, sizeof(p), "sys/bus/pci/devices/%s/driver_override", addr);
        if (root_read_line(root, p, &override) >= 0 && strcmp(override, "(null)") != 0)
                d = override;
        else {
                free(override);
                d = native_driver(addr);
        }
        snprintf(p, sizeof(p), "sys/bus/pci/drivers/%s", d ? d : "-");
        if (d && root_exists(root, p))
                return d;
        free(d);
        return NULL;
}

/* The address written to relpath since the last step, the file emptied again. */
static char *take_written(const struct root *root, const char *relpath)
{
        char *s = NULL;

        if (root_read_line(root, relpath, &s) < 0)
                return NULL;
        (void)root_write_string(root, relpath, "");
        return s;
}

static void driver_core_step(const struct root *root)
{
        _cleanup_closedir_ DIR *d = NULL;
        _cleanup_free_ char *probe = NULL;

        if (!root || root->is_host || !getenv("VFIOD_TEST_DRIVER_CORE") ||
            root_opendir(root, "sys/bus/pci/drivers", &d) < 0)
                return;
        FOREACH_DIRENT (de, d) {
                char p[PATH_MAX];
                _cleanup_free_ char *gone = NULL, *wanted = NULL, *m = NULL;

                snprintf(p, sizeof(p), "sys/bus/pci/drivers/%s/unbind", de->d_name);
                gone = take_written(root, p);
                if (gone)
                        driver_link_set(root, gone, NULL);
                snprintf(p, sizeof(p), "sys/bus/pci/drivers/%s/bind", de->d_name);
                wanted = take_written(root, p);
                /* An explicit bind still needs the override, if any, to name the driver. */
                if (wanted && !has_driver(root, wanted) && (m = match_driver(root, wanted)) &&
                    strcmp(m, de->d_name) == 0)
                        driver_link_set(root, wanted, de->d_name);
        }
        probe = take_written(root, "sys/bus/pci/drivers_probe");
        if (probe && !has_driver(root, probe)) {
                _cleanup_free_ char *m = match_driver(root, probe);
                if (m)
                        driver_link_set(root, probe, m);
        }
}

static void test_step(enum checkpoint_site site, const struct root *root, const struct pci_addr *a)
{
        unsigned step = ++steps[site];

        driver_core_step(root);

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
