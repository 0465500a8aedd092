/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "string-table.h"
#include "strv.h"
#include "topology-json.h"

static const char *const tristate_table[] = {
        [TRI_NO] = "no",
        [TRI_YES] = "yes",
};

/* TRI_UNKNOWN, below the table, reads "unknown". */
DEFINE_STRING_TABLE_TO_STRING_FALLBACK(tristate, enum tristate, "unknown");

/* A NULL value is JSON null. json-c reports allocation failure as NULL too, so add()
 * refuses to add onto a missing parent (json-c would assert) and drops the child. */
static json_object *jstr(const char *s)
{
        return s ? json_object_new_string(s) : NULL;
}

static json_object *jhex(unsigned long long v, int width)
{
        static const char digits[] = "0123456789abcdef";
        char buf[24];
        int n = 0;

        /* Fixed-width "0x..." without printf, which showed up in profiles of big lists. */
        buf[n++] = '0';
        buf[n++] = 'x';
        for (int i = width - 1; i >= 0 && n < (int)sizeof(buf) - 1; i--)
                buf[n++] = digits[(v >> (4 * i)) & 0xf];
        buf[n] = '\0';
        return json_object_new_string_len(buf, n);
}

static json_object *jtri(enum tristate v)
{
        return v == TRI_UNKNOWN ? NULL : json_object_new_boolean(v == TRI_YES);
}

static json_object *jstrv(char **l)
{
        json_object *a = json_object_new_array();
        STRV_FOREACH (s, l)
                json_object_array_add(a, json_object_new_string(*s));
        return a;
}

/* Keys are literals and each is added once: telling json-c so spares a lookup and a
 * copy per key, which is most of the cost of listing thousands of VFs. */
static void add(json_object *o, const char *k, json_object *v)
{
        if (o)
                json_object_object_add_ex(
                        o, k, v, JSON_C_OBJECT_ADD_KEY_IS_NEW | JSON_C_OBJECT_KEY_IS_CONSTANT);
        else
                json_object_put(v);
}

json_object *json_unit_new(const struct iommu_unit *u)
{
        json_object *o = json_object_new_object();

        add(o, "name", jstr(u->name));
        add(o, "kind", jstr(iommu_kind_to_string(u->kind)));
        add(o, "cap", u->have_cap ? jhex(u->cap, 16) : NULL);
        add(o, u->kind == IOMMU_KIND_AMD_VI ? "features" : "ecap",
            u->have_ecap ? jhex(u->ecap, 16) : NULL);
        add(o, "version", jstr(u->version));
        add(o, "devices", json_object_new_int64((int64_t)u->n_devices));
        add(o, "interrupt_remapping", json_object_new_boolean(u->interrupt_remapping));
        add(o, "posted_interrupts", json_object_new_boolean(u->posted_interrupts));
        add(o, "pass_through", json_object_new_boolean(u->pass_through));
        add(o, "scalable_mode", json_object_new_boolean(u->scalable_mode));
        add(o, "x2apic", json_object_new_boolean(u->x2apic));
        add(o, "device_tlb", json_object_new_boolean(u->device_tlb));
        add(o, "nested", json_object_new_boolean(u->nested));
        return o;
}

json_object *json_host_new(const struct topology *t)
{
        const struct host_facts *h = &t->host;
        json_object *o = json_object_new_object();
        json_object *iommu = json_object_new_object();
        json_object *units = json_object_new_array();
        json_object *ir = json_object_new_object();
        json_object *vfio = json_object_new_object();

        for (size_t i = 0; i < t->n_units; i++)
                json_object_array_add(units, json_unit_new(&t->units[i]));
        add(iommu, "present", json_object_new_boolean(h->iommu_present));
        add(iommu, "mode", jstr(iommu_mode_to_string(h->mode)));
        add(iommu, "default_domain_type", jstr(h->default_domain_type));
        add(iommu, "units", units);
        add(o, "iommu", iommu);

        add(ir, "supported", jtri(h->ir_supported));
        add(ir, "enabled", jtri(h->ir_enabled));
        add(ir, "posted_interrupts", jtri(h->posted_interrupts));
        add(o, "interrupt_remapping", ir);

        add(vfio, "noiommu_mode", jtri(h->noiommu_mode));
        add(vfio, "allow_unsafe_interrupts", jtri(h->allow_unsafe_interrupts));
        add(o, "vfio", vfio);

        add(o, "cmdline", jstr(h->cmdline));
        add(o, "cmdline_flags", jstrv(h->cmdline_flags));
        add(o, "config_space_complete", json_object_new_boolean(!h->unprivileged));
        return o;
}

json_object *json_group_new(const struct topology *t, const struct iommu_group *g)
{
        json_object *o = json_object_new_object();
        json_object *devs = json_object_new_array();

        for (size_t k = 0; k < g->n_members; k++) {
                const struct pci_device *d = &t->devices[g->members[k]];
                json_object *m = json_object_new_object();
                add(m, "address", jstr(d->name));
                add(m, "driver", jstr(d->driver));
                add(m, "bridge", json_object_new_boolean(d->is_bridge));
                add(m, "in_use", jstr(d->in_use));
                json_object_array_add(devs, m);
        }
        add(o, "id", json_object_new_int(g->id));
        add(o, "type", jstr(g->type));
        add(o, "viable", json_object_new_boolean(g->viable));
        add(o, "verdict", jstr(g->verdict));
        add(o, "in_use", jstr(g->in_use));
        add(o, "devices", devs);
        return o;
}

static json_object *json_acs_new(const struct pci_device *d)
{
        json_object *o;

        if (!d->acs_known)
                return NULL;
        o = json_object_new_object();
        add(o, "present", json_object_new_boolean(d->have_acs));
        add(o, "cap", d->have_acs ? jhex(d->acs_cap, 4) : NULL);
        add(o, "ctrl", d->have_acs ? jhex(d->acs_ctrl, 4) : NULL);
        add(o, "required_enabled",
            json_object_new_boolean(d->have_acs && (d->acs_ctrl & ACS_REQUIRED) == ACS_REQUIRED));
        return o;
}

static json_object *json_path_new(const struct topology *t, const struct pci_device *d)
{
        json_object *a = json_object_new_array();

        for (int p = d->parent; p >= 0; p = t->devices[p].parent) {
                const struct pci_device *port = &t->devices[p];
                json_object *o = json_object_new_object();
                add(o, "address", jstr(port->name));
                add(o, "pcie_type", jstr(pcie_type_to_string(port->pcie_type)));
                add(o, "driver", jstr(port->driver));
                add(o, "acs", json_acs_new(port));
                json_object_array_add(a, o);
        }
        return a;
}

json_object *json_device_new(const struct topology *t, const struct pci_device *d, bool detail)
{
        const struct iommu_group *g = topology_find_group(t, d->iommu_group);
        json_object *o = json_object_new_object();
        json_object *net = json_object_new_array(), *blk = json_object_new_array();
        json_object *iso = json_object_new_object();
        const char *reason = NULL;
        enum tristate path_ok = topology_path_isolated(t, d, &reason);
        size_t endpoints = 0;

        add(o, "address", jstr(d->name));
        add(o, "vendor_id", d->have_ids ? jhex(d->vendor, 4) : NULL);
        add(o, "device_id", d->have_ids ? jhex(d->device, 4) : NULL);
        add(o, "subsystem_vendor_id", jhex(d->subsystem_vendor, 4));
        add(o, "subsystem_device_id", jhex(d->subsystem_device, 4));
        add(o, "class", d->have_ids ? jhex(d->class, 6) : NULL);
        add(o, "revision", jhex(d->revision, 2));
        add(o, "vendor", jstr(d->vendor_name));
        add(o, "device", jstr(d->device_name));
        add(o, "subsystem", jstr(d->subsystem_name));
        add(o, "class_name", jstr(d->class_name));
        add(o, "driver", jstr(d->driver));
        add(o, "driver_override", jstr(d->driver_override));
        if (!detail) {
                /* From the driver alone, the short form: a list is sent whole to every
                 * client that asks. show and ShowDevice add the long one with the
                 * candidate a bind would choose (json_device_preflight_add()), vfioctl
                 * probe the kernel's own answer. */
                struct vfio_migration mi;
                vfio_migration_guess(d->driver, NULL, pci_device_is_bridge(d), &mi);
                add(o, "live_migration", vfio_migration_to_json_brief(&mi));
        }
        add(o, "iommu_group", d->iommu_group >= 0 ? json_object_new_int(d->iommu_group) : NULL);
        add(o, "group_viable", g ? json_object_new_boolean(g->viable) : NULL);
        add(o, "iommu_unit", jstr(d->iommu_unit));
        add(o, "numa_node", json_object_new_int(d->numa_node));
        add(o, "reset_method", jstr(d->reset_method));
        add(o, "boot_vga", json_object_new_boolean(d->boot_vga));
        add(o, "pcie_type", jstr(pcie_type_to_string(d->pcie_type)));
        add(o, "bridge", json_object_new_boolean(d->is_bridge));
        add(o, "multifunction", json_object_new_boolean(d->multifunction));
        add(o, "ats", d->acs_known ? json_object_new_boolean(d->have_ats) : NULL);
        add(o, "acs", json_acs_new(d));
        add(o, "physfn", d->physfn >= 0 ? jstr(t->devices[d->physfn].name) : NULL);
        if (d->sriov_totalvfs >= 0) {
                json_object *s = json_object_new_object();
                add(s, "total_vfs", json_object_new_int(d->sriov_totalvfs));
                add(s, "num_vfs", json_object_new_int(d->sriov_numvfs));
                if (detail) {
                        json_object *vfs = json_object_new_array();
                        for (size_t k = 0; k < d->n_virtfn; k++)
                                json_object_array_add(vfs, jstr(t->devices[d->virtfn[k]].name));
                        add(s, "vfs", vfs);
                }
                add(o, "sriov", s);
        } else
                add(o, "sriov", NULL);

        for (size_t i = 0; i < d->n_netdevs; i++) {
                const struct netdev_info *n = &d->netdevs[i];
                json_object *e = json_object_new_object();
                add(e, "name", jstr(n->name));
                add(e, "up", json_object_new_boolean(n->up));
                add(e, "addresses", n->addresses_known ? jstrv(n->addresses) : NULL);
                json_object_array_add(net, e);
        }
        add(o, "net", net);
        for (size_t i = 0; i < d->n_blockdevs; i++) {
                const struct blockdev_info *b = &d->blockdevs[i];
                json_object *e = json_object_new_object();
                char dev[32];
                snprintf(dev, sizeof(dev), "%u:%u", b->major, b->minor);
                add(e, "name", jstr(b->name));
                add(e, "dev", jstr(dev));
                add(e, "mounted", json_object_new_boolean(b->mounted));
                add(e, "mountpoint", jstr(b->mountpoint));
                add(e, "held", json_object_new_boolean(b->held));
                json_object_array_add(blk, e);
        }
        add(o, "block", blk);
        add(o, "in_use", jstr(d->in_use));

        if (g)
                for (size_t k = 0; k < g->n_members; k++)
                        endpoints += !t->devices[g->members[k]].is_bridge;
        add(iso, "acs_path", jtri(path_ok));
        add(iso, "reason", jstr(reason));
        add(iso, "group_endpoints", g ? json_object_new_int64((int64_t)endpoints) : NULL);
        add(iso, "alone_in_group", g ? json_object_new_boolean(endpoints <= 1) : NULL);
        add(o, "isolation", iso);
        if (detail)
                add(o, "upstream", json_path_new(t, d));
        return o;
}

json_object *json_warnings_new(const struct topology *t)
{
        return jstrv(t->warnings);
}

json_object *json_address_array_new(const struct pci_addr *l, size_t n)
{
        json_object *a = json_object_new_array();
        for (size_t i = 0; a && i < n; i++) {
                char buf[PCI_ADDR_STRLEN];
                json_object_array_add(a, json_object_new_string(pci_addr_format(&l[i], buf)));
        }
        return a;
}

static json_object *json_card_new(const struct topology *t, const struct pci_device *d)
{
        size_t idx[8], n = topology_card_functions(t, d, idx, ELEMENTSOF(idx));
        json_object *a;

        if (n < 2)
                return NULL;
        a = json_object_new_array();
        for (size_t k = 0; k < n && k < ELEMENTSOF(idx) && a; k++) {
                const struct pci_device *f = &t->devices[idx[k]];
                json_object *e = json_object_new_object();
                add(e, "address", jstr(f->name));
                add(e, "class_name", jstr(f->class_name));
                add(e, "driver", jstr(f->driver));
                json_object_array_add(a, e);
        }
        return a;
}

static json_object *json_rom_new(const struct pci_rom *rom)
{
        json_object *o;

        if (!rom->present)
                return NULL;
        o = json_object_new_object();
        add(o, "shadow", json_object_new_boolean(rom->shadow));
        char window[24];
        snprintf(window, sizeof(window), "0x%llx", (unsigned long long)rom->start);
        add(o, "window", jstr(window));
        add(o, "window_size", json_object_new_int64((int64_t)rom->bar_size));
        add(o, "read", json_object_new_boolean(rom->read));
        add(o, "error", rom->read_errno ? jstr(strerror(rom->read_errno)) : jstr(rom->skipped));
        add(o, "bytes", rom->read ? json_object_new_int64((int64_t)rom->bytes) : NULL);
        add(o, "signature", rom->read ? json_object_new_boolean(rom->signature) : NULL);
        add(o, "pcir", rom->read ? json_object_new_boolean(rom->pcir) : NULL);
        add(o, "vendor_id", rom->pcir ? jhex(rom->pcir_vendor, 4) : NULL);
        add(o, "device_id", rom->pcir ? jhex(rom->pcir_device, 4) : NULL);
        add(o, "ids_match", rom->pcir ? json_object_new_boolean(rom->ids_match) : NULL);
        add(o, "image_size", rom->pcir ? json_object_new_int64(rom->image_size) : NULL);
        add(o, "code_type", rom->pcir ? jstr(pci_rom_code_type_to_string(rom->code_type)) : NULL);
        add(o, "warning", rom->warning[0] ? jstr(rom->warning) : NULL);
        return o;
}

static json_object *json_rebar_new(const struct pci_rebar *b, size_t n)
{
        json_object *a = json_object_new_array();

        for (size_t k = 0; k < n && a; k++) {
                json_object *e = json_object_new_object(), *sizes = json_object_new_array();
                for (int bit = 0; bit < 64 && sizes; bit++)
                        if (b[k].sizes & (1ull << bit) && bit < 44)
                                json_object_array_add(
                                        sizes, json_object_new_int64((int64_t)1 << (20 + bit)));
                add(e, "bar", json_object_new_int(b[k].bar));
                add(e, "sizes", sizes);
                add(e, "current",
                    b[k].current ? json_object_new_int64((int64_t)b[k].current) : NULL);
                json_object_array_add(a, e);
        }
        return a;
}

static json_object *json_framebuffers_new(const struct pci_framebuffer *fb, size_t n)
{
        json_object *a = json_object_new_array();

        for (size_t k = 0; k < n && a; k++) {
                json_object *e = json_object_new_object();
                char addr[24];
                add(e, "name", jstr(fb[k].name));
                snprintf(addr, sizeof(addr), "0x%llx", (unsigned long long)fb[k].start);
                add(e, "start", jstr(addr));
                snprintf(addr, sizeof(addr), "0x%llx", (unsigned long long)fb[k].end);
                add(e, "end", jstr(addr));
                add(e, "bar", json_object_new_int(fb[k].bar));
                json_object_array_add(a, e);
        }
        return a;
}

int device_preflight_gather(const struct root *r, const struct pci_device *d, const char *candidate,
                            bool read_rom, struct device_preflight *ret)
{
        int q;

        *ret = (struct device_preflight){.fb_result = -ENOTTY};
        vfio_migration_guess(d->driver, candidate, pci_device_is_bridge(d), &ret->migration);
        q = pci_rom_inspect(r, d, read_rom, &ret->rom);
        if (q < 0)
                return q;
        ret->n_rebar = pci_rebar_list(r, d, ret->rebar);
        if (d->have_ids && (d->class >> 16) == 0x03) {
                ret->fb_result = pci_framebuffers(r, d, ret->fb, ELEMENTSOF(ret->fb), &ret->n_fb);
                if (ret->fb_result == -ENOMEM)
                        return -ENOMEM;
                if (ret->n_fb > ELEMENTSOF(ret->fb))
                        ret->n_fb = ELEMENTSOF(ret->fb);
        }
        return 0;
}

void json_device_preflight_add(json_object *o, const struct topology *t, const struct pci_device *d,
                               const struct device_preflight *p)
{
        add(o, "live_migration", vfio_migration_to_json(&p->migration));
        add(o, "card", json_card_new(t, d));
        add(o, "rom", json_rom_new(&p->rom));
        add(o, "resizable_bars", json_rebar_new(p->rebar, p->n_rebar));
        add(o, "reset_hint", jstr(pci_reset_hint(d)));
        add(o, "framebuffers", p->fb_result >= 0 ? json_framebuffers_new(p->fb, p->n_fb) : NULL);
}
