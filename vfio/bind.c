/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bind.h"
#include "checkpoint.h"
#include "detail.h"
#include "macro.h"
#include "modules.h"
#include "strv.h"
#include "sysfs-pci.h"
#include "variant.h"

void bind_plan_done(struct bind_plan *p)
{
        free(p->devices);
        strv_free(p->notes);
        strv_free(p->drivers);
        strv_free(p->modules);
        *p = (struct bind_plan){0};
}

static bool plan_has(const struct bind_plan *p, const struct pci_addr *a)
{
        for (size_t i = 0; i < p->n_devices; i++)
                if (pci_addr_equal(&p->devices[i], a))
                        return true;
        return false;
}

static int plan_add(struct bind_plan *p, const struct pci_addr *a)
{
        struct pci_addr *n;

        if (plan_has(p, a))
                return 0;
        n = realloc(p->devices, (p->n_devices + 1) * sizeof(*n));
        if (!n)
                return -ENOMEM;
        p->devices = n;
        p->devices[p->n_devices++] = *a;
        return 0;
}

static const char *driver_or_none(const struct pci_device *d)
{
        return d->driver ? d->driver : "no driver";
}

/* Two physical functions of one slot: one card. VFs share slots without being one. */
static bool same_card(const struct pci_device *a, const struct pci_device *b)
{
        return a->physfn < 0 && b->physfn < 0 && a->addr.domain == b->addr.domain &&
               a->addr.bus == b->addr.bus && a->addr.dev == b->addr.dev;
}

static bool requested(const struct pci_addr *req, size_t n_req, const struct pci_device *d)
{
        for (size_t i = 0; i < n_req; i++)
                if (pci_addr_equal(&req[i], &d->addr))
                        return true;
        return false;
}

int bind_plan_build(const struct topology *t, const struct pci_addr *req, size_t n_req,
                    unsigned flags, struct bind_plan *ret, char **ret_detail)
{
        struct bind_plan p = {0};
        int r = 0;

        for (size_t i = 0; i < n_req && r >= 0; i++) {
                const struct pci_device *d = topology_find_device(t, &req[i]);
                const struct iommu_group *g;
                char addr[PCI_ADDR_STRLEN];

                if (!d) {
                        r = detail_errno(ret_detail, -ENODEV, "%s: no such PCI device",
                                         pci_addr_format(&req[i], addr));
                        break;
                }
                if (pci_device_is_bridge(d)) {
                        char kind[64];
                        r = detail_errno(
                                ret_detail, -EINVAL,
                                "%s: is a bridge (%s, %s); bridges stay with the host and are "
                                "never bound to vfio-pci",
                                d->name, pci_device_bridge_kind(d, kind, sizeof(kind)),
                                driver_or_none(d));
                        break;
                }
                g = topology_find_group(t, d->iommu_group);
                if (!g && t->host.noiommu_mode != TRI_YES) {
                        r = detail_errno(
                                ret_detail, -EINVAL,
                                "%s: has no IOMMU group, so vfio cannot isolate it (%s)", d->name,
                                t->host.iommu_present ? "the IOMMU does not cover it"
                                                      : "no IOMMU is present; vfio's no-IOMMU "
                                                        "mode is off");
                        break;
                }
                r = plan_add(&p, &d->addr);
                for (size_t k = 0; g && r >= 0 && k < g->n_members; k++) {
                        const struct pci_device *m = &t->devices[g->members[k]];

                        if (m == d || pci_device_is_bridge(m))
                                continue;
                        /* The kernel lets a group member without a driver stay behind,
                         * but not a function of the same card: a GPU's audio function
                         * goes to the guest with it, and a bus reset takes both. */
                        if (!m->driver && same_card(d, m) && !requested(req, n_req, m)) {
                                if (!(flags & BIND_GROUP)) {
                                        char what[96];
                                        if (m->class_name)
                                                snprintf(what, sizeof(what), "%s", m->class_name);
                                        else
                                                snprintf(what, sizeof(what), "class %04x",
                                                         m->class >> 8);
                                        r = detail_errno(
                                                ret_detail, -EBUSY,
                                                "%s: its card's function %s (%s, no driver) "
                                                "shares IOMMU group %d and goes with it: pass "
                                                "--group, or name it too",
                                                d->name, m->name, what, g->id);
                                        break;
                                }
                                r = plan_add(&p, &m->addr);
                                if (r >= 0)
                                        r = strv_pushf(&p.notes, &p.n_notes,
                                                       "%s: taken with %s, the same card (--group)",
                                                       m->name, d->name);
                                continue;
                        }
                        if (driver_is_vfio_compatible(m->driver))
                                continue;
                        if (!(flags & BIND_GROUP)) {
                                r = detail_errno(
                                        ret_detail, -EBUSY,
                                        "%s: IOMMU group %d also holds %s (%s%s%s): release "
                                        "it or pass --group",
                                        d->name, g->id, m->name, driver_or_none(m),
                                        m->in_use ? ", " : "", m->in_use ? m->in_use : "");
                                break;
                        }
                        r = plan_add(&p, &m->addr);
                        if (r >= 0)
                                r = strv_pushf(&p.notes, &p.n_notes,
                                               "%s: taken with %s, IOMMU group %d (--group)",
                                               m->name, d->name, g->id);
                }
        }
        /* Host use is checked over the whole plan, group members included. */
        for (size_t i = 0; r >= 0 && i < p.n_devices; i++) {
                const struct pci_device *d = topology_find_device(t, &p.devices[i]);

                if (!d->in_use)
                        continue;
                if (!(flags & BIND_FORCE)) {
                        r = detail_errno(
                                ret_detail, -EBUSY,
                                "%s: in use by the host: %s; stop using it or pass --force",
                                d->name, d->in_use);
                        break;
                }
                r = strv_pushf(&p.notes, &p.n_notes, "%s: taken although in use (--force): %s",
                               d->name, d->in_use);
        }
        if (r < 0) {
                if (r == -ENOMEM)
                        detail_errno(ret_detail, r, "out of memory");
                bind_plan_done(&p);
                return r;
        }
        *ret = p;
        return 0;
}

static bool streq_ptr(const char *a, const char *b)
{
        return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* The driver device a goes to, its module, and why, into c. */
static int choose_one(const struct root *root, const struct vfio_aliases *al,
                      const struct pci_addr *a, const struct vfio_candidate *forced,
                      struct vfio_candidate *c, char **ret_detail)
{
        _cleanup_free_ char *now = NULL;
        char addr[PCI_ADDR_STRLEN];
        int r;

        if (forced) {
                *c = (struct vfio_candidate){.driver = strdup(forced->driver),
                                             .module = strdup(forced->module)};
                return c->driver && c->module ? 0 : -ENOMEM;
        }
        r = pci_sysfs_get_driver(root, a, &now);
        if (r < 0)
                return detail_errno(ret_detail, r, "%s: cannot read its driver: %s",
                                    pci_addr_format(a, addr),
                                    r == -ENODEV ? "the device is gone" : strerror(-r));
        if (driver_is_vfio(now)) {
                *c = (struct vfio_candidate){.driver = TAKE_PTR(now)};
                return vfio_driver_module(root, c->driver, &c->module);
        }
        return vfio_candidate_find(root, al, a, c, ret_detail);
}

int bind_plan_choose_drivers(const struct root *root, struct bind_plan *p, const char *forced,
                             char **ret_detail)
{
        _cleanup_(vfio_aliases_freep) struct vfio_aliases *al = NULL;
        _cleanup_(strv_freep) char **drivers = NULL, **modules = NULL;
        struct vfio_candidate named = {0};
        size_t n_drivers = 0, n_modules = 0;
        int r = 0;

        if (forced)
                r = vfio_candidate_named(root, forced, &named, ret_detail);
        else
                r = vfio_aliases_load(root, &al, ret_detail);
        for (size_t i = 0; r >= 0 && i < p->n_devices; i++) {
                struct vfio_candidate c = {0};
                char addr[PCI_ADDR_STRLEN];

                r = choose_one(root, al, &p->devices[i], forced ? &named : NULL, &c, ret_detail);
                if (r >= 0)
                        r = strv_push(&drivers, &n_drivers, c.driver);
                if (r >= 0)
                        r = strv_push(&modules, &n_modules, c.module);
                if (r >= 0 && c.alias)
                        r = strv_pushf(&p->notes, &p->n_notes, "%s: to %s, by %s",
                                       pci_addr_format(&p->devices[i], addr), c.driver, c.reason);
                vfio_candidate_done(&c);
        }
        vfio_candidate_done(&named);
        if (r < 0)
                return r == -ENOMEM ? detail_errno(ret_detail, r, "out of memory") : r;
        strv_free(p->drivers);
        strv_free(p->modules);
        p->drivers = TAKE_PTR(drivers);
        p->modules = TAKE_PTR(modules);
        return 0;
}

int bind_plan_force_driver(const struct root *root, struct bind_plan *p, const struct pci_addr *a,
                           const char *driver, char **ret_detail)
{
        struct vfio_candidate named = {0};
        int r;

        for (size_t i = 0; p->drivers && i < p->n_devices; i++) {
                if (!pci_addr_equal(&p->devices[i], a))
                        continue;
                r = vfio_candidate_named(root, driver, &named, ret_detail);
                if (r < 0)
                        return r;
                free(p->drivers[i]);
                free(p->modules[i]);
                p->drivers[i] = TAKE_PTR(named.driver);
                p->modules[i] = TAKE_PTR(named.module);
                vfio_candidate_done(&named);
                return 0;
        }
        return 0;
}

const char *bind_plan_driver(const struct bind_plan *p, size_t i)
{
        return p->drivers ? p->drivers[i] : VFIO_PCI_DRIVER;
}

int bind_plan_need_drivers(const struct root *root, const struct bind_plan *p, char ***ret_loaded,
                           char **ret_detail)
{
        _cleanup_(strv_freep) char **all = NULL;
        size_t n_all = 0;
        int r;

        if (ret_loaded)
                *ret_loaded = NULL;
        if (!p->drivers)
                return vfio_modules_need(root, VFIO_MODULE_BIT(VFIO_MODULE_VFIO_PCI), ret_loaded,
                                         ret_detail);
        for (size_t i = 0; i < p->n_devices; i++) {
                _cleanup_(strv_freep) char **loaded = NULL;
                char addr[PCI_ADDR_STRLEN];

                r = vfio_driver_need(root, p->drivers[i], p->modules[i], &loaded, ret_detail);
                if (r < 0) {
                        /* Modules loaded for the devices before stay: loading one is no
                         * change to any device, and the next bind wants them again. */
                        if (ret_detail && *ret_detail) {
                                char *d = NULL;
                                if (asprintf(&d, "%s: %s", pci_addr_format(&p->devices[i], addr),
                                             *ret_detail) >= 0) {
                                        free(*ret_detail);
                                        *ret_detail = d;
                                }
                        }
                        return r;
                }
                STRV_FOREACH (m, loaded)
                        if (strv_push(&all, &n_all, *m) < 0)
                                return -ENOMEM;
        }
        if (ret_loaded)
                *ret_loaded = TAKE_PTR(all);
        return 0;
}

/* Puts a device back on `driver` (NULL: leave it unbound) with `override` restored. */
static int put_back(const struct root *root, const struct pci_addr *a, const char *driver,
                    const char *override, char **ret_detail)
{
        _cleanup_free_ char *now = NULL;
        char addr[PCI_ADDR_STRLEN];
        int r;

        _cleanup_free_ char *cur_override = NULL;

        pci_addr_format(a, addr);
        /* Write only what differs: an undo after a write the kernel refused must not
         * fail on the same refusal when nothing needs changing. */
        r = pci_sysfs_get_override(root, a, &cur_override);
        if (r < 0 || !streq_ptr(cur_override, override)) {
                r = pci_sysfs_set_override(root, a, override);
                if (r < 0)
                        return detail_errno(ret_detail, r, "%s: cannot restore driver_override: %s",
                                            addr, strerror(-r));
                checkpoint(CHECKPOINT_BIND, root, a);
        }
        r = pci_sysfs_get_driver(root, a, &now);
        if (r < 0)
                return detail_errno(ret_detail, r, "%s: cannot read its driver: %s", addr,
                                    strerror(-r));
        if (streq_ptr(now, driver))
                return 0;
        if (now) {
                r = pci_sysfs_unbind(root, a, now);
                if (r < 0)
                        return detail_errno(ret_detail, r, "%s: cannot unbind from %s: %s", addr,
                                            now, strerror(-r));
                checkpoint(CHECKPOINT_BIND, root, a);
        }
        if (driver) {
                /* drivers_probe picks the best match, which is the original driver unless
                 * another has appeared; an explicit bind settles it. */
                r = pci_sysfs_probe(root, a);
                checkpoint(CHECKPOINT_BIND, root, a);
                free(now);
                now = NULL;
                if (r >= 0)
                        r = pci_sysfs_get_driver(root, a, &now);
                if (r >= 0 && !streq_ptr(now, driver)) {
                        if (now)
                                (void)pci_sysfs_unbind(root, a, now);
                        r = pci_sysfs_bind(root, a, driver);
                        checkpoint(CHECKPOINT_BIND, root, a);
                }
                if (r < 0 && r != -ENODEV) {
                        /* Probe errors (-EINVAL, -ENODEV from no match) say little; the
                         * read-back below decides. */
                        r = 0;
                }
        }
        free(now);
        now = NULL;
        r = pci_sysfs_get_driver(root, a, &now);
        if (r < 0)
                return detail_errno(ret_detail, r, "%s: cannot read its driver: %s", addr,
                                    strerror(-r));
        if (!streq_ptr(now, driver))
                return detail_errno(ret_detail, -EIO, "%s: expected %s after restore, found %s",
                                    addr, driver ? driver : "no driver", now ? now : "no driver");
        return 0;
}

int vfio_device_bind(const struct root *root, struct journal *j, const struct pci_addr *a,
                     const char *target, bool persist, char **ret_detail)
{
        _cleanup_free_ char *driver = NULL, *override = NULL, *now = NULL, *absent = NULL;
        struct journal_entry e = {.addr = *a};
        char addr[PCI_ADDR_STRLEN];
        int r, k;

        pci_addr_format(a, addr);
        if (!target)
                target = VFIO_PCI_DRIVER;
        if (!driver_is_vfio(target))
                return detail_errno(ret_detail, -EINVAL,
                                    "%s: %s is not vfio-pci or a variant of it", addr, target);
        r = pci_sysfs_get_driver(root, a, &driver);
        if (r >= 0)
                r = pci_sysfs_get_override(root, a, &override);
        if (r < 0)
                return detail_errno(ret_detail, r, "%s: cannot read its driver: %s", addr,
                                    r == -ENODEV ? "the device is gone" : strerror(-r));
        if (streq_ptr(driver, target) && streq_ptr(override, target))
                return 0; /* already assigned: nothing to do, nothing to journal */
        /* Loading it is the caller's step (vfio_driver_need()), before any device is
         * touched; this is the last word for a caller that did not. */
        r = vfio_driver_check(root, target, NULL, &absent);
        if (r < 0)
                return detail_errno(ret_detail, r, "%s: %s", addr, strna(absent));

        /* What it was, on disk, before anything changes. An existing entry (a bind that
         * was interrupted) already holds the true original. */
        k = journal_get(j, a, &e);
        if (k < 0) {
                /* An override of vfio-pci (or a variant) is vfiod's own, set by the
                 * boot-time rule (dist/90-vfiod-assign.rules) or an earlier bind: put back,
                 * it would keep the original driver away from the device for good. */
                bool keep_override = override && !driver_is_vfio(override);

                e = (struct journal_entry){.addr = *a,
                                           .original_driver = driver ? strdup(driver) : NULL,
                                           .original_override =
                                                   keep_override ? strdup(override) : NULL};
                if ((driver && !e.original_driver) || (keep_override && !e.original_override)) {
                        journal_entry_done(&e);
                        return -ENOMEM;
                }
        }
        e.state = JOURNAL_BINDING;
        e.persist = persist;
        free(e.driver);
        e.driver = strdup(target);
        if (!e.driver) {
                journal_entry_done(&e);
                return -ENOMEM;
        }
        r = journal_put(j, &e);
        if (r < 0) {
                journal_entry_done(&e);
                return detail_errno(ret_detail, r, "%s: cannot write the journal in %s: %s", addr,
                                    j->path, strerror(-r));
        }
        checkpoint(CHECKPOINT_BIND, root, a);

        r = pci_sysfs_set_override(root, a, target);
        if (r < 0) {
                detail_errno(ret_detail, r, "%s: cannot set driver_override: %s", addr,
                             r == -ENODEV ? "the device is gone" : strerror(-r));
                goto undo;
        }
        checkpoint(CHECKPOINT_BIND, root, a);
        if (driver && strcmp(driver, target) != 0) {
                r = pci_sysfs_unbind(root, a, driver);
                if (r < 0) {
                        detail_errno(ret_detail, r, "%s: cannot unbind from %s: %s", addr, driver,
                                     r == -ENODEV ? "the device is gone" : strerror(-r));
                        goto undo;
                }
                checkpoint(CHECKPOINT_BIND, root, a);
        }
        if (!streq_ptr(driver, target)) {
                r = pci_sysfs_probe(root, a);
                checkpoint(CHECKPOINT_BIND, root, a);
                if (r == -ENODEV) {
                        detail_errno(ret_detail, r, "%s: the device is gone", addr);
                        goto undo;
                }
        }
        r = pci_sysfs_get_driver(root, a, &now);
        if (r < 0 || !streq_ptr(now, target)) {
                r = detail_errno(ret_detail, r < 0 ? r : -EIO,
                                 "%s: %s did not take the device (driver is now %s)%s", addr,
                                 target,
                                 r < 0 ? "unreadable"
                                 : now ? now
                                       : "none",
                                 r == -ENODEV ? ": the device is gone" : "");
                goto undo;
        }
        e.state = JOURNAL_ASSIGNED;
        r = journal_put(j, &e);
        if (r < 0) {
                detail_errno(ret_detail, r, "%s: cannot write the journal in %s: %s", addr, j->path,
                             strerror(-r));
                goto undo;
        }
        checkpoint(CHECKPOINT_BIND, root, a);
        journal_entry_done(&e);
        return 0;

undo : {
        _cleanup_free_ char *why = NULL;
        k = put_back(root, a, e.original_driver, e.original_override, &why);
        if (k >= 0)
                (void)journal_remove(j, a);
        else if (ret_detail && *ret_detail && why) {
                char *both = NULL;
                if (asprintf(&both,
                             "%s; undoing failed too: %s (kept in the journal for "
                             "'vfioctl restore --all')",
                             *ret_detail, why) >= 0) {
                        free(*ret_detail);
                        *ret_detail = both;
                }
        }
}
        journal_entry_done(&e);
        return r;
}

int vfio_device_restore(const struct root *root, struct journal *j, const struct pci_addr *a,
                        char **ret_detail)
{
        struct journal_entry e = {0};
        char addr[PCI_ADDR_STRLEN];
        _cleanup_free_ char *why = NULL;
        int r, k;

        pci_addr_format(a, addr);
        k = journal_get(j, a, &e);
        if (k == -ENOENT) {
                /* Not ours: give it back to whatever driver matches. */
                _cleanup_free_ char *driver = NULL;
                r = pci_sysfs_get_driver(root, a, &driver);
                if (r < 0)
                        return detail_errno(ret_detail, r, "%s: cannot read its driver: %s", addr,
                                            r == -ENODEV ? "the device is gone" : strerror(-r));
                if (!driver_is_vfio(driver))
                        return 0; /* not assigned: nothing to restore */
                r = pci_sysfs_set_override(root, a, NULL);
                if (r >= 0)
                        r = pci_sysfs_unbind(root, a, driver);
                if (r >= 0)
                        (void)pci_sysfs_probe(root, a);
                if (r < 0)
                        return detail_errno(ret_detail, r, "%s: cannot release from %s: %s", addr,
                                            driver, strerror(-r));
                return 0;
        }
        if (k == -EBADMSG || k == -EFBIG) {
                /* Corrupt entry: the original driver is unknown. Clear the override and let
                 * the kernel choose, which is what the original binding came from. */
                r = put_back(root, a, NULL, NULL, &why);
                if (r >= 0)
                        (void)pci_sysfs_probe(root, a);
                if (r >= 0)
                        (void)journal_remove(j, a);
                return detail_errno(ret_detail, r < 0 ? r : -EBADMSG,
                                    "%s: journal entry is corrupt; released to the "
                                    "kernel's driver match%s%s",
                                    addr, r < 0 ? ": " : "", r < 0 ? why : "");
        }
        if (k < 0)
                return detail_errno(ret_detail, k, "%s: cannot read the journal: %s", addr,
                                    strerror(-k));

        e.state = JOURNAL_RESTORING;
        r = journal_put(j, &e);
        if (r < 0) {
                journal_entry_done(&e);
                return detail_errno(ret_detail, r, "%s: cannot write the journal: %s", addr,
                                    strerror(-r));
        }
        checkpoint(CHECKPOINT_BIND, root, a);
        r = put_back(root, a, e.original_driver, e.original_override, &why);
        if (r == -ENODEV) {
                /* Gone: nothing left to restore; the entry would only mislead. */
                (void)journal_remove(j, a);
                journal_entry_done(&e);
                return detail_errno(ret_detail, r, "%s: the device is gone; journal entry dropped",
                                    addr);
        }
        if (r < 0) {
                journal_entry_done(&e);
                return detail_errno(ret_detail, r, "%s", why ? why : "restore failed");
        }
        r = journal_remove(j, a);
        checkpoint(CHECKPOINT_BIND, root, a);
        journal_entry_done(&e);
        if (r < 0)
                return detail_errno(ret_detail, r,
                                    "%s: restored, but cannot remove its journal entry: %s", addr,
                                    strerror(-r));
        return 0;
}

int vfio_bind_plan(const struct root *root, struct journal *j, const struct bind_plan *p,
                   bool persist, char **ret_detail)
{
        for (size_t i = 0; i < p->n_devices; i++) {
                int r = vfio_device_bind(root, j, &p->devices[i], bind_plan_driver(p, i), persist,
                                         ret_detail);
                if (r >= 0)
                        continue;
                /* All or nothing: return the ones already moved, newest first. */
                while (i-- > 0) {
                        _cleanup_free_ char *why = NULL;
                        (void)vfio_device_restore(root, j, &p->devices[i], &why);
                }
                return r;
        }
        return 0;
}
