/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "detail.h"
#include "fd-util.h"
#include "kmod-dlopen.h"
#include "modules.h"
#include "strv.h"
#include "sysfs-pci.h"

static const struct {
        const char *name;       /* for people */
        const char *what;       /* in "... is not loaded" */
        const char *kmod;       /* as libkmod looks it up */
        const char *markers[3]; /* any of these below the root: present */
} modules[_VFIO_MODULE_MAX] = {
        [VFIO_MODULE_VFIO] = {"vfio",
                              "vfio",
                              "vfio",
                              {"sys/module/vfio", "sys/class/vfio", "dev/vfio"}},
        [VFIO_MODULE_VFIO_PCI] = {"vfio-pci",
                                  "the vfio-pci driver",
                                  "vfio_pci",
                                  {"sys/bus/pci/drivers/vfio-pci", "sys/module/vfio_pci"}},
        [VFIO_MODULE_TYPE1] = {"vfio_iommu_type1",
                               "the vfio_iommu_type1 module",
                               "vfio_iommu_type1",
                               {"sys/module/vfio_iommu_type1"}},
        [VFIO_MODULE_IOMMUFD] = {"iommufd",
                                 "iommufd",
                                 "iommufd",
                                 {"sys/module/iommufd", "dev/iommu"}},
};

/* At most a module, its dependencies and theirs: vfio-pci pulls four. */
#define TRACKED_MAX 32

const char *vfio_module_to_string(enum vfio_module m)
{
        return m >= 0 && m < _VFIO_MODULE_MAX ? modules[m].name : NULL;
}

unsigned vfio_modules_for_backend(enum vfio_backend b)
{
        return b == VFIO_BACKEND_TYPE1     ? VFIO_MODULE_BIT(VFIO_MODULE_TYPE1)
               : b == VFIO_BACKEND_IOMMUFD ? VFIO_MODULE_BIT(VFIO_MODULE_IOMMUFD)
                                           : 0;
}

bool vfio_module_present(const struct root *root, enum vfio_module m)
{
        for (size_t i = 0; i < ELEMENTSOF(modules[m].markers) && modules[m].markers[i]; i++) {
                int fd = root_openat(root, modules[m].markers[i], O_PATH);
                if (fd >= 0) {
                        close(fd);
                        return true;
                }
        }
        return false;
}

/* libkmod logs its errors to stderr by default; a library leaves the words to its caller. */
static void kmod_log_quiet(void *data, int priority, const char *file, int line, const char *fn,
                           const char *format, va_list args)
{
}

static void kmod_ctx_unrefp(struct kmod_ctx **c)
{
        if (*c)
                sym_kmod_unref(*c);
}

static void kmod_list_unrefp(struct kmod_list **l)
{
        if (*l)
                sym_kmod_module_unref_list(*l);
}

static bool in_kernel(struct kmod_module *mod)
{
        return sym_kmod_module_get_initstate(mod) >= 0;
}

/* What an insert's errno means to someone who wants the module in. */
static const char *insert_hint(int r)
{
        switch (r) {
        case -EPERM:
        case -EACCES:
                return " (run as root; or module loading is off: "
                       "/proc/sys/kernel/modules_disabled)";
        case -EKEYREJECTED:
        case -ENOKEY:
        case -EBADMSG:
                return " (its signature is not accepted: Secure Boot or module.sig_enforce)";
        case -ENOEXEC:
                return " (it was built for another kernel)";
        default:
                return "";
        }
}

struct tracked {
        struct kmod_module *mods[TRACKED_MAX];
        size_t n;
};

/* Remembers mod if it is not in the kernel yet; a copy of the reference. */
static void track(struct tracked *t, struct kmod_module *mod)
{
        if (t->n < TRACKED_MAX && !in_kernel(mod))
                t->mods[t->n++] = sym_kmod_module_ref(mod);
}

/* Removes what was inserted since track(): a module that others still use refuses
 * until they are gone, so passes repeat while one succeeds. */
static void tracked_undo(struct tracked *t)
{
        bool progress = true;

        while (progress) {
                progress = false;
                for (size_t i = 0; i < t->n; i++)
                        if (in_kernel(t->mods[i]) &&
                            sym_kmod_module_remove_module(t->mods[i], 0) >= 0)
                                progress = true;
        }
}

static void tracked_done(struct tracked *t)
{
        for (size_t i = 0; i < t->n; i++)
                sym_kmod_module_unref(t->mods[i]);
        t->n = 0;
}

/* The module libkmod knows as kmod (name: how people know it), not in the kernel, with
 * every file it and its dependencies need in place; records them in t. 0 with *ret NULL:
 * built in, nothing to load. */
static int resolve(struct kmod_ctx *ctx, const char *kmod, const char *name, struct tracked *t,
                   struct kmod_module **ret, char **ret_detail)
{
        _cleanup_(kmod_list_unrefp) struct kmod_list *found = NULL, *deps = NULL;
        struct kmod_list *i;
        struct kmod_module *mod;
        const char *dir = sym_kmod_get_dirname(ctx);
        int r;

        *ret = NULL;
        r = sym_kmod_module_new_from_lookup(ctx, kmod, &found);
        if (r < 0)
                return detail_errno(ret_detail, r,
                                    "cannot load kernel module %s: cannot look it up in %s: %s",
                                    name, dir, strerror(-r));
        if (!found)
                return detail_errno(ret_detail, -ENOENT,
                                    "cannot load kernel module %s: it is not in %s (this kernel "
                                    "has no such module, or its modules are not installed)",
                                    name, dir);
        mod = sym_kmod_module_get_module(found);
        if (sym_kmod_module_get_initstate(mod) == KMOD_MODULE_BUILTIN) {
                sym_kmod_module_unref(mod);
                return 0;
        }
        deps = sym_kmod_module_get_dependencies(mod);
        track(t, mod);
        for (i = deps; i; i = sym_kmod_list_next(deps, i)) {
                struct kmod_module *dep = sym_kmod_module_get_module(i);
                track(t, dep);
                sym_kmod_module_unref(dep);
        }
        for (size_t k = 0; k < t->n; k++) {
                const char *path = sym_kmod_module_get_path(t->mods[k]);
                if (!path || access(path, R_OK) < 0) {
                        r = path ? -errno : -ENOENT;
                        detail_errno(ret_detail, r, "cannot load kernel module %s: %s%s%s: %s",
                                     name, path ? path : sym_kmod_module_get_name(t->mods[k]),
                                     path ? "" : " in ", path ? "" : dir, strerror(-r));
                        sym_kmod_module_unref(mod);
                        return r;
                }
        }
        *ret = mod;
        return 0;
}

/* A libkmod context for loading modules, first the one named first. libkmod itself is
 * loaded here, the first time a module is missing; when it cannot be, the detail names
 * that module, as vfio_modules_check() does, and what the loader said. */
static int kmod_start(const char *first, struct kmod_ctx **ret, char **ret_detail)
{
        _cleanup_free_ char *why = NULL;
        struct kmod_ctx *ctx;
        int r = kmod_dlopen(&why);

        if (r < 0)
                return detail_errno(ret_detail, r,
                                    "cannot load kernel module %s: %s (install libkmod, or "
                                    "modprobe %s)",
                                    first, detail_or_strerror(why, r), first);
        ctx = sym_kmod_new(NULL, NULL);
        if (!ctx)
                return detail_errno(ret_detail, -ENOMEM,
                                    "cannot load kernel modules: libkmod could not start");
        sym_kmod_set_log_fn(ctx, kmod_log_quiet, NULL);
        *ret = ctx;
        return 0;
}

static int load_on_host(const struct root *root, unsigned absent, char ***ret_loaded,
                        char **ret_detail)
{
        _cleanup_(kmod_ctx_unrefp) struct kmod_ctx *ctx = NULL;
        _cleanup_(strv_freep) char **loaded = NULL;
        struct kmod_module *mods[_VFIO_MODULE_MAX] = {0};
        struct tracked t = {0};
        size_t n_loaded = 0;
        bool inserting = false;
        int r = kmod_start(modules[__builtin_ctz(absent)].name, &ctx, ret_detail);

        if (r < 0)
                return r;
        /* Every module found, with all its files, before anything goes in. */
        for (int m = 0; m < _VFIO_MODULE_MAX && r >= 0; m++)
                if (absent & VFIO_MODULE_BIT(m))
                        r = resolve(ctx, modules[m].kmod, modules[m].name, &t, &mods[m],
                                    ret_detail);

        for (int m = 0; m < _VFIO_MODULE_MAX && r >= 0; m++) {
                if (!mods[m])
                        continue;
                inserting = true;
                r = sym_kmod_module_probe_insert_module(mods[m], 0, NULL, NULL, NULL, NULL);
                if (r == -EEXIST) /* loaded by someone else meanwhile */
                        r = 0;
                if (r < 0) {
                        detail_errno(ret_detail, r, "cannot load kernel module %s: %s%s",
                                     modules[m].name, strerror(-r), insert_hint(r));
                        break;
                }
                if (!vfio_module_present(root, m)) {
                        r = detail_errno(ret_detail, -EIO,
                                         "kernel module %s was loaded, but /%s did not appear",
                                         modules[m].name, modules[m].markers[0]);
                        break;
                }
                r = strv_push(&loaded, &n_loaded, modules[m].name);
        }
        if (r < 0 && inserting)
                tracked_undo(&t);
        tracked_done(&t);
        for (int m = 0; m < _VFIO_MODULE_MAX; m++)
                if (mods[m])
                        sym_kmod_module_unref(mods[m]);
        if (r < 0)
                return r;
        if (ret_loaded)
                *ret_loaded = TAKE_PTR(loaded);
        return 0;
}

int vfio_modules_check(const struct root *root, unsigned want, char **ret_detail)
{
        for (int m = 0; m < _VFIO_MODULE_MAX; m++)
                if ((want & VFIO_MODULE_BIT(m)) && !vfio_module_present(root, m))
                        return detail_errno(ret_detail, -ENOENT, "%s is not loaded (modprobe %s)",
                                            modules[m].what, modules[m].name);
        return 0;
}

int vfio_modules_need(const struct root *root, unsigned want, char ***ret_loaded, char **ret_detail)
{
        unsigned absent = 0;

        for (int m = 0; m < _VFIO_MODULE_MAX; m++)
                if ((want & VFIO_MODULE_BIT(m)) && !vfio_module_present(root, m))
                        absent |= VFIO_MODULE_BIT(m);
        if (ret_loaded)
                *ret_loaded = NULL;
        if (!absent)
                return 0;
        /* A tree that is not the running system: its kernel is not ours to change. */
        if (!root->is_host)
                return vfio_modules_check(root, absent, ret_detail);
        return load_on_host(root, absent, ret_loaded, ret_detail);
}

int vfio_module_pci_driver(const struct root *root, const char *module, char **ret)
{
        _cleanup_closedir_ DIR *d = NULL;
        char p[512];
        int r;

        if (!module || !*module || strchr(module, '/') || strlen(module) > 255)
                return -EINVAL;
        snprintf(p, sizeof(p), "sys/module/%s/drivers", module);
        r = root_opendir(root, p, &d);
        if (r < 0)
                return r;
        FOREACH_DIRENT (de, d) {
                if (strncmp(de->d_name, "pci:", 4) != 0 || !de->d_name[4])
                        continue;
                *ret = strdup(de->d_name + 4);
                return *ret ? 0 : -ENOMEM;
        }
        return -ENOENT;
}

int vfio_driver_module(const struct root *root, const char *driver, char **ret)
{
        _cleanup_free_ char *link = NULL;
        _cleanup_close_ int fd = -EBADF;
        char p[512];

        if (strcmp(driver, VFIO_PCI_DRIVER) == 0)
                return (*ret = strdup(modules[VFIO_MODULE_VFIO_PCI].kmod)) ? 0 : -ENOMEM;
        if (pci_sysfs_driver_exists(root, driver) == 0) {
                snprintf(p, sizeof(p), "sys/bus/pci/drivers/%s", driver);
                fd = root_openat(root, p, O_PATH | O_DIRECTORY);
                if (fd >= 0 && dir_readlink_basename(fd, "module", &link) >= 0) {
                        *ret = TAKE_PTR(link);
                        return 0;
                }
        }
        /* Not loaded, or built in: module names spell '-' as '_', as modprobe reads them. */
        *ret = strdup(driver);
        if (!*ret)
                return -ENOMEM;
        for (char *c = *ret; *c; c++)
                if (*c == '-')
                        *c = '_';
        return 0;
}

int vfio_driver_check(const struct root *root, const char *driver, const char *module,
                      char **ret_detail)
{
        if (strcmp(driver, VFIO_PCI_DRIVER) == 0)
                return vfio_modules_check(root, VFIO_MODULE_BIT(VFIO_MODULE_VFIO_PCI), ret_detail);
        if (pci_sysfs_driver_exists(root, driver) == 0)
                return 0;
        return detail_errno(ret_detail, -ENOENT, "the %s driver is not loaded (modprobe %s)",
                            driver, module ? module : driver);
}

/* Loads module on the running host for driver, as load_on_host() does for vfio's own. */
static int load_driver_on_host(const struct root *root, const char *driver, const char *module,
                               char ***ret_loaded, char **ret_detail)
{
        _cleanup_(kmod_ctx_unrefp) struct kmod_ctx *ctx = NULL;
        _cleanup_(strv_freep) char **loaded = NULL;
        struct kmod_module *mod = NULL;
        struct tracked t = {0};
        size_t n_loaded = 0;
        int r = kmod_start(module, &ctx, ret_detail);

        if (r < 0)
                return r;
        r = resolve(ctx, module, module, &t, &mod, ret_detail);
        if (r >= 0 && !mod)
                r = detail_errno(ret_detail, -ENOENT,
                                 "kernel module %s is built in, but no PCI driver %s is "
                                 "registered",
                                 module, driver);
        else if (r >= 0) {
                r = sym_kmod_module_probe_insert_module(mod, 0, NULL, NULL, NULL, NULL);
                if (r == -EEXIST) /* loaded by someone else meanwhile */
                        r = 0;
                if (r < 0)
                        detail_errno(ret_detail, r, "cannot load kernel module %s: %s%s", module,
                                     strerror(-r), insert_hint(r));
                else if (pci_sysfs_driver_exists(root, driver) < 0)
                        r = detail_errno(ret_detail, -EIO,
                                         "kernel module %s was loaded, but "
                                         "/sys/bus/pci/drivers/%s did not appear",
                                         module, driver);
                else
                        r = strv_push(&loaded, &n_loaded, module);
                if (r < 0)
                        tracked_undo(&t);
        }
        tracked_done(&t);
        if (mod)
                sym_kmod_module_unref(mod);
        if (r < 0)
                return r;
        if (ret_loaded)
                *ret_loaded = TAKE_PTR(loaded);
        return 0;
}

int vfio_driver_need(const struct root *root, const char *driver, const char *module,
                     char ***ret_loaded, char **ret_detail)
{
        if (strcmp(driver, VFIO_PCI_DRIVER) == 0)
                return vfio_modules_need(root, VFIO_MODULE_BIT(VFIO_MODULE_VFIO_PCI), ret_loaded,
                                         ret_detail);
        if (ret_loaded)
                *ret_loaded = NULL;
        if (pci_sysfs_driver_exists(root, driver) == 0)
                return 0;
        if (!root->is_host)
                return vfio_driver_check(root, driver, module, ret_detail);
        return load_driver_on_host(root, driver, module, ret_loaded, ret_detail);
}
