/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The read-only verbs: list, groups, show. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "strv.h"
#include "topology-json.h"
#include "format-util.h"
#include "variant.h"

int print_json(json_object *o, int flags)
{
        const char *s;

        if (!o) {
                fputs("vfioctl: out of memory\n", stderr);
                return EXIT_FAILED;
        }
        s = json_object_to_json_string_ext(o, flags | JSON_C_TO_STRING_NOSLASHESCAPE);
        fputs(s, stdout);
        json_object_put(o);
        return 0;
}

/* One document, streamed element by element so that a host with thousands of VFs does
 * not hold the whole tree of JSON objects in memory. */
static int print_json_stream(struct topology *t, const char *schema, const char *key, size_t n,
                             json_object *(*elem)(struct topology *, size_t))
{
        const int flags = JSON_C_TO_STRING_PLAIN;
        int r;

        printf("{\"schema\":\"%s\",\"host\":", schema);
        r = print_json(json_host_new(t), flags);
        if (r)
                return r;
        printf(",\"warnings\":");
        r = print_json(json_warnings_new(t), flags);
        if (r)
                return r;
        printf(",\"%s\":[", key);
        for (size_t i = 0; i < n; i++) {
                fputs(i ? ",\n" : "\n", stdout);
                r = print_json(elem(t, i), flags);
                if (r)
                        return r;
        }
        puts("\n]}");
        return 0;
}

static json_object *list_elem(struct topology *t, size_t i)
{
        return json_device_new(t, &t->devices[i], false);
}

static json_object *group_elem(struct topology *t, size_t i)
{
        return json_group_new(t, &t->groups[i]);
}

static void print_iommu_banner(const struct topology *t)
{
        const struct host_facts *h = &t->host;

        switch (h->mode) {
        case IOMMU_MODE_NONE:
                printf("No IOMMU is present: no device can be isolated for assignment, and the "
                       "host has no IOMMU groups.\n\n");
                break;
        case IOMMU_MODE_NOIOMMU:
                printf("No IOMMU is present; vfio runs in unsafe no-IOMMU mode: an assigned "
                       "device can DMA anywhere in host memory.\n\n");
                break;
        case IOMMU_MODE_PASSTHROUGH:
                printf("IOMMU present in pass-through mode: groups default to identity domains, "
                       "so host drivers' DMA is not translated.\n\n");
                break;
        default:
                break;
        }
}

static const char *class_short(const struct pci_device *d, char buf[8])
{
        if (!d->have_ids)
                return "?";
        snprintf(buf, 8, "%04x", (unsigned)(d->class >> 8));
        return buf;
}

int verb_list(struct cli *c)
{
        struct topology *t;
        int r = cli_topology(c, &t);

        if (r)
                return r;
        if (c->json)
                return print_json_stream(t, "vfiod.list/1", "devices", t->n_devices, list_elem);

        print_iommu_banner(t);
        printf("%-12s %-5s %-9s %-13s %-5s %-6s %-7s %-6s %s\n", "ADDRESS", "CLASS", "ID", "DRIVER",
               "GROUP", "VIABLE", "VFS", "IN-USE", "NAME");
        for (size_t i = 0; i < t->n_devices; i++) {
                const struct pci_device *d = &t->devices[i];
                const struct iommu_group *g = topology_find_group(t, d->iommu_group);
                char cls[8], id[16], grp[16], vfs[24];

                snprintf(id, sizeof(id), d->have_ids ? "%04x:%04x" : "?", d->vendor, d->device);
                snprintf(grp, sizeof(grp), d->iommu_group >= 0 ? "%d" : "-", d->iommu_group);
                if (d->sriov_totalvfs >= 0)
                        snprintf(vfs, sizeof(vfs), "%d/%d", d->sriov_numvfs, d->sriov_totalvfs);
                else if (d->physfn >= 0)
                        snprintf(vfs, sizeof(vfs), "vf");
                else
                        snprintf(vfs, sizeof(vfs), "-");
                printf("%-12s %-5s %-9s %-13s %-5s %-6s %-7s %-6s %s%s%s\n", d->name,
                       class_short(d, cls), id, d->driver ? d->driver : "-", grp,
                       g ? (g->viable ? "yes" : "no") : "-", vfs, d->in_use ? "yes" : "-",
                       d->vendor_name ? d->vendor_name : "", d->device_name ? " " : "",
                       d->device_name ? d->device_name : "");
        }
        for (size_t i = 0, n = 0; i < t->n_devices; i++)
                if (t->devices[i].in_use)
                        printf("%s%s in use: %s\n", n++ == 0 ? "\n" : "", t->devices[i].name,
                               t->devices[i].in_use);
        return 0;
}

int verb_groups(struct cli *c)
{
        struct topology *t;
        int r = cli_topology(c, &t);

        if (r)
                return r;
        if (c->json)
                return print_json_stream(t, "vfiod.groups/1", "groups", t->n_groups, group_elem);

        print_iommu_banner(t);
        if (t->n_groups == 0) {
                printf("No IOMMU groups.\n");
                return 0;
        }
        for (size_t i = 0; i < t->n_groups; i++) {
                const struct iommu_group *g = &t->groups[i];

                printf("group %d  %s  %s: %s\n", g->id, g->type ? g->type : "?",
                       g->viable ? "viable" : "not viable", g->verdict);
                if (g->in_use)
                        printf("  host is using %s\n", g->in_use);
                for (size_t k = 0; k < g->n_members; k++) {
                        const struct pci_device *d = &t->devices[g->members[k]];
                        printf("  %-12s %-6s %-13s %s%s%s\n", d->name, d->is_bridge ? "bridge" : "",
                               d->driver ? d->driver : "-", strna(d->vendor_name),
                               d->device_name ? " " : "", d->device_name ? d->device_name : "");
                }
        }
        return 0;
}

static void print_acs(const struct pci_device *d)
{
        static const char *const bits[] = {"SV", "TB", "RR", "CR", "UF", "EC", "DT"};

        if (d->pcie_type == PCIE_TYPE_NONE) {
                printf("not applicable (conventional PCI)");
                return;
        }
        if (!d->acs_known) {
                printf("unknown (extended config space not readable)");
                return;
        }
        if (!d->have_acs) {
                printf("not present");
                return;
        }
        printf("cap 0x%04x ctrl 0x%04x enabled:", d->acs_cap, d->acs_ctrl);
        for (size_t b = 0; b < ELEMENTSOF(bits); b++)
                if (d->acs_ctrl & (1u << b))
                        printf(" %s", bits[b]);
        printf((d->acs_ctrl & ACS_REQUIRED) == ACS_REQUIRED
                       ? " (isolating)"
                       : " (not isolating: needs SV RR CR UF)");
}

/* The other functions of the device's slot: a GPU's HDMI audio, USB-C controller. */
static void print_card(const struct topology *t, const struct pci_device *d)
{
        size_t idx[8], n = topology_card_functions(t, d, idx, ELEMENTSOF(idx));

        if (n < 2)
                return;
        printf("  card         %zu functions in the slot, assigned together:\n", n);
        for (size_t k = 0; k < n && k < ELEMENTSOF(idx); k++) {
                const struct pci_device *f = &t->devices[idx[k]];
                printf("    %s %s, %s%s\n", f->name, strna(f->class_name),
                       f->driver ? f->driver : "unbound", f == d ? " (this device)" : "");
        }
}

/* A reset method that reaches past the function: the card's other functions go with it. */
static void print_reset_reach(const struct topology *t, const struct pci_device *d)
{
        size_t idx[8], n = topology_card_functions(t, d, idx, ELEMENTSOF(idx));
        bool only_bus = d->reset_method && strcmp(d->reset_method, "bus") == 0;

        if (only_bus && n > 1)
                printf(" (a bus reset also resets the card's other %zu function%s)", n - 1,
                       n > 2 ? "s" : "");
        printf("\n");
}

static void print_rom(const struct pci_rom *rom)
{
        char size[FORMAT_SIZE_MAX], image[FORMAT_SIZE_MAX];

        if (!rom->present)
                return;
        printf("  rom          %s %s at 0x%llx", format_size(rom->bar_size, size),
               rom->shadow ? "shadow copy" : "ROM BAR", (unsigned long long)rom->start);
        if (rom->skipped)
                printf(", not read: %s", rom->skipped);
        else if (rom->read && rom->pcir)
                printf(", read %zu bytes: signature 55aa, PCIR %04x:%04x%s, %s image of %s",
                       rom->bytes, rom->pcir_vendor, rom->pcir_device,
                       rom->ids_match ? " (the device's)" : "",
                       pci_rom_code_type_to_string(rom->code_type),
                       format_size(rom->image_size, image));
        else if (rom->read)
                printf(", read %zu bytes", rom->bytes);
        printf("\n");
        if (rom->warning[0])
                printf("    warning: %s\n", rom->warning);
}

static void print_framebuffers(int r, const struct pci_framebuffer *fb, size_t n)
{
        if (r == -ENOTTY)
                return;
        if (r < 0) {
                if (r == -EPERM)
                        printf("  framebuffer  unknown: /proc/iomem shows addresses to root "
                               "only\n");
                else
                        printf("  framebuffer  unknown: cannot read /proc/iomem (%s)\n",
                               strerror(-r));
                return;
        }
        if (n == 0)
                printf("  framebuffer  none over its BARs\n");
        for (size_t k = 0; k < n; k++)
                printf("  framebuffer  %s at 0x%llx-0x%llx in BAR%d: vfio-pci cannot reserve the "
                       "BAR while it is there (the guest fails to start: \"BAR can't "
                       "reserve\"); release it first (video=efifb:off or "
                       "initcall_blacklist=sysfb_init on the kernel command line)\n",
                       fb[k].name, (unsigned long long)fb[k].start, (unsigned long long)fb[k].end,
                       fb[k].bar);
}

static void print_rebar(const struct pci_rebar *b, size_t n)
{
        char size[FORMAT_SIZE_MAX];

        for (size_t k = 0; k < n; k++) {
                printf("  resizable    BAR%d: %s now; can take", b[k].bar,
                       b[k].current ? format_size(b[k].current, size) : "unknown");
                for (int bit = 0; bit < 44; bit++)
                        if (b[k].sizes & (1ull << bit))
                                printf(" %s", format_size(1ull << (20 + bit), size));
                printf("\n");
        }
}

int verb_show(struct cli *c)
{
        struct topology *t;
        int r;
        const struct pci_device *d;
        const struct iommu_group *g;
        struct pci_addr a;
        const char *reason = NULL;
        _cleanup_(vfio_candidate_done) struct vfio_candidate cand = {0};
        struct device_preflight pf;
        enum tristate iso;

        if (pci_addr_parse(c->args[0], &a) < 0) {
                char q[300];
                fprintf(stderr,
                        "vfioctl: show: '%s' is not a PCI address (expected DDDD:BB:DD.F "
                        "or BB:DD.F in hexadecimal)\n",
                        cli_quote(c->args[0], q));
                return EXIT_USAGE;
        }
        r = cli_topology(c, &t);
        if (r)
                return r;
        d = topology_find_device(t, &a);
        if (!d) {
                char buf[PCI_ADDR_STRLEN];
                fprintf(stderr,
                        "vfioctl: show: no PCI device %s on this host (see 'vfioctl list')\n",
                        pci_addr_format(&a, buf));
                return EXIT_USAGE;
        }
        r = vfio_candidate_describe(c->root, d, &cand);
        if (r < 0) {
                fprintf(stderr, "vfioctl: show: %s\n", strerror(-r));
                return EXIT_FAILED;
        }
        r = device_preflight_gather(c->root, d, cand.driver, true, &pf);
        if (r < 0) {
                fprintf(stderr, "vfioctl: show: %s\n", strerror(-r));
                return EXIT_FAILED;
        }
        if (c->json) {
                json_object *o = json_device_new(t, d, true);
                if (o) {
                        json_object_object_add(o, "vfio_driver", vfio_candidate_to_json(&cand));
                        json_device_preflight_add(o, t, d, &pf);
                }
                return print_json(o, JSON_C_TO_STRING_PRETTY) || puts("") < 0;
        }

        g = topology_find_group(t, d->iommu_group);
        printf("%s  %s: %s %s\n", d->name, strna(d->class_name), strna(d->vendor_name),
               d->device_name ? d->device_name : "");
        if (d->have_ids)
                printf("  ids          %04x:%04x subsystem %04x:%04x class %06x rev %02x\n",
                       d->vendor, d->device, d->subsystem_vendor, d->subsystem_device, d->class,
                       d->revision);
        else
                printf("  ids          unknown (vendor, device or class not readable)\n");
        printf("  driver       %s%s%s\n", d->driver ? d->driver : "none",
               d->driver_override ? ", override " : "",
               d->driver_override ? d->driver_override : "");
        printf("  vfio driver  %s (%s)\n", cand.driver ? cand.driver : "none", cand.reason);
        printf("  migration    %s: %s\n", vfio_migration_verdict(&pf.migration), pf.migration.why);
        if (g) {
                printf("  iommu group  %d (%s), %s: %s\n", g->id, strna(g->type),
                       g->viable ? "viable" : "not viable", g->verdict);
                for (size_t k = 0; k < g->n_members; k++) {
                        const struct pci_device *m = &t->devices[g->members[k]];
                        printf("    %s %s%s%s\n", m->name, m->driver ? m->driver : "unbound",
                               m->is_bridge ? ", bridge" : "", m == d ? " (this device)" : "");
                }
        } else
                printf("  iommu group  none\n");
        printf("  iommu unit   %s\n", d->iommu_unit ? d->iommu_unit : "none");
        printf("  numa node    %d\n", d->numa_node);
        print_card(t, d);
        printf("  reset        %s", d->reset_method ? d->reset_method : "none reported");
        print_reset_reach(t, d);
        if (pci_reset_hint(d))
                printf("    hint: %s\n", pci_reset_hint(d));
        print_rom(&pf.rom);
        print_rebar(pf.rebar, pf.n_rebar);
        print_framebuffers(pf.fb_result, pf.fb, pf.n_fb);
        printf("  pcie         %s%s%s%s\n", pcie_type_to_string(d->pcie_type),
               d->multifunction ? ", multi-function" : "", d->is_bridge ? ", bridge" : "",
               d->have_ats ? ", ATS" : "");
        printf("  acs          ");
        print_acs(d);
        printf("\n");
        if (d->sriov_totalvfs >= 0) {
                printf("  sr-iov       %d of %d VFs enabled\n", d->sriov_numvfs, d->sriov_totalvfs);
                for (size_t k = 0; k < d->n_virtfn; k++) {
                        const struct pci_device *vf = &t->devices[d->virtfn[k]];
                        printf("    vf %zu %s %s group %d\n", k, vf->name,
                               vf->driver ? vf->driver : "unbound", vf->iommu_group);
                }
        }
        if (d->physfn >= 0)
                printf("  physfn       %s\n", t->devices[d->physfn].name);
        for (size_t i = 0; i < d->n_netdevs; i++) {
                const struct netdev_info *n = &d->netdevs[i];
                printf("  network      %s %s", n->name, n->up ? "up" : "down");
                STRV_FOREACH (s, n->addresses)
                        printf(" %s", *s);
                printf("\n");
        }
        for (size_t i = 0; i < d->n_blockdevs; i++) {
                const struct blockdev_info *b = &d->blockdevs[i];
                printf("  block        %s %u:%u%s%s%s\n", b->name, b->major, b->minor,
                       b->mounted ? " mounted on " : "", b->mounted ? strna(b->mountpoint) : "",
                       b->held ? " held" : "");
        }
        printf("  in use       %s\n", d->in_use ? d->in_use : "no");
        if (d->boot_vga)
                printf("  boot vga     yes\n");
        iso = topology_path_isolated(t, d, &reason);
        if (!t->host.iommu_present)
                printf("  isolation    none: no IOMMU\n");
        else
                printf("  isolation    ACS path %s%s%s%s\n", tristate_to_string(iso),
                       reason ? " (" : "", reason ? reason : "", reason ? ")" : "");
        printf("  upstream    ");
        if (d->parent < 0)
                printf(" none (on a root bus)\n");
        else
                printf("\n");
        for (int p = d->parent; p >= 0; p = t->devices[p].parent) {
                const struct pci_device *port = &t->devices[p];
                printf("    %s %s %s: ACS ", port->name, pcie_type_to_string(port->pcie_type),
                       port->driver ? port->driver : "unbound");
                print_acs(port);
                printf("\n");
        }
        return 0;
}
