/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfioctl: the command-line front end. Read-only verbs scan sysfs directly and need
 * neither the daemon nor root (config space past 64 bytes does need root). */
#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "pci-addr.h"
#include "root.h"
#include "strv.h"
#include "topology-json.h"
#include "topology.h"

#define EXIT_FAILED 1 /* the request was valid but could not be carried out */
#define EXIT_USAGE  2 /* bad usage, malformed input, or no such device */

struct cli {
        const char *root_path;
        bool json;
        bool help;
        char **args; /* positional arguments after the verb */
        size_t n_args;
};

struct verb {
        const char *name;
        const char *synopsis;
        const char *summary;
        const char *help;
        int (*run)(struct cli *c, struct topology *t);
        size_t min_args, max_args;
};

static int verb_list(struct cli *c, struct topology *t);
static int verb_groups(struct cli *c, struct topology *t);
static int verb_show(struct cli *c, struct topology *t);

static const struct verb verbs[] = {
        {"list", "list", "List PCI devices with their IOMMU group, driver and assignability",
         "Prints one row per PCI function: address, class, vendor:device ids, driver, IOMMU\n"
         "group, whether that group is viable for vfio right now, SR-IOV VFs (enabled/total),\n"
         "and whether the host is using the device (an interface that is up with addresses, a\n"
         "mounted or held block device, the boot VGA device). The last column is the device\n"
         "name from the pci.ids database.\n",
         verb_list, 0, 0},
        {"groups", "groups", "List IOMMU groups with their members and a verdict",
         "Prints each IOMMU group with its domain type (DMA, DMA-FQ, identity, blocked), its\n"
         "members and a verdict. A group is viable when every member is unbound or bound to a\n"
         "driver vfio accepts (vfio-pci and its variants, pci-stub, pcieport for bridges):\n"
         "that is the kernel's condition for opening it. A group that holds a device the host\n"
         "is using is flagged with the device and the reason.\n",
         verb_groups, 0, 0},
        {"show", "show DEVICE", "Show everything known about one device",
         "DEVICE is a PCI address, DDDD:BB:DD.F or BB:DD.F (domain 0000). Prints the ids and\n"
         "names, driver and driver_override, IOMMU group and its other members, IOMMU unit,\n"
         "NUMA node, reset methods, PCIe port type, ACS, SR-IOV (PF and VFs), network\n"
         "interfaces and block devices below it, host use, and the upstream path to the root\n"
         "port with each port's ACS capability and control bits.\n",
         verb_show, 1, 1},
};

static const struct verb *verb_find(const char *name)
{
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (strcmp(verbs[i].name, name) == 0)
                        return &verbs[i];
        return NULL;
}

static void print_main_help(FILE *f)
{
        fprintf(f, "Usage: vfioctl [OPTIONS] VERB [ARGS...]\n"
                   "\n"
                   "Inspect PCI devices, IOMMU groups and IOMMU units for VFIO device assignment.\n"
                   "\n"
                   "Verbs:\n");
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                fprintf(f, "  %-14s %s\n", verbs[i].synopsis, verbs[i].summary);
        fprintf(f, "  %-14s %s\n", "help [VERB]", "Show this help, or a verb's");
        fprintf(f,
                "\n"
                "Options (accepted before or after the verb):\n"
                "  --json         Print JSON (one document; schema in docs/json.md)\n"
                "  --root DIR     Read sys/, proc/ and dev/ below DIR instead of the running\n"
                "                 system; also taken from $VFIOD_ROOT. For snapshots and tests.\n"
                "  -h, --help     Show help (with a verb: that verb's help)\n"
                "  --version      Show the version\n"
                "\n"
                "Exit status: 0 on success, 1 when the host could not be read, 2 for bad usage,\n"
                "a malformed device address, or a device that does not exist.\n"
                "\n"
                "Reading config space past its first 64 bytes (capabilities, ACS) needs root;\n"
                "without it those fields are reported as unknown.\n");
}

static void print_verb_help(const struct verb *v)
{
        printf("Usage: vfioctl [--json] [--root DIR] %s\n\n%s.\n\n%s", v->synopsis, v->summary,
               v->help);
}

static _printf_(1, 2) int usage_error(const char *fmt, ...)
{
        va_list ap;

        fputs("vfioctl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputs(" (see 'vfioctl --help')\n", stderr);
        return EXIT_USAGE;
}

/* Options may stand anywhere; "--" ends them. Fills c and returns the verb name, or
 * NULL after printing the reason (exit status in *ret_exit). */
static const char *parse_args(int argc, char **argv, struct cli *c, int *ret_exit)
{
        const char *verb = NULL;
        bool dashdash = false;

        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];

                if (!dashdash && a[0] == '-' && a[1] != '\0') {
                        if (strcmp(a, "--") == 0)
                                dashdash = true;
                        else if (strcmp(a, "--json") == 0)
                                c->json = true;
                        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
                                c->help = true;
                        else if (strcmp(a, "--version") == 0) {
                                printf("vfioctl %s\n", VFIOD_VERSION);
                                *ret_exit = 0;
                                return NULL;
                        } else if (strcmp(a, "--root") == 0) {
                                if (++i >= argc) {
                                        *ret_exit = usage_error("--root needs a directory");
                                        return NULL;
                                }
                                c->root_path = argv[i];
                        } else if (strncmp(a, "--root=", 7) == 0)
                                c->root_path = a + 7;
                        else {
                                *ret_exit = usage_error("unknown option '%s'", a);
                                return NULL;
                        }
                        continue;
                }
                if (!verb)
                        verb = a;
                else if (strv_push(&c->args, &c->n_args, a) < 0) {
                        fputs("vfioctl: out of memory\n", stderr);
                        *ret_exit = EXIT_FAILED;
                        return NULL;
                }
        }
        if (!verb) {
                if (c->help) {
                        print_main_help(stdout);
                        *ret_exit = 0;
                } else {
                        print_main_help(stderr);
                        *ret_exit = EXIT_USAGE;
                }
                return NULL;
        }
        return verb;
}

static int print_json(json_object *o, int flags)
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
                printf("IOMMU present in pass-through mode (identity domains, %s): host drivers "
                       "are not translated.\n\n",
                       strna(h->default_domain_type));
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

static int verb_list(struct cli *c, struct topology *t)
{
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

static int verb_groups(struct cli *c, struct topology *t)
{
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

static int verb_show(struct cli *c, struct topology *t)
{
        const struct pci_device *d;
        const struct iommu_group *g;
        struct pci_addr a;
        const char *reason = NULL;
        enum tristate iso;

        if (pci_addr_parse(c->args[0], &a) < 0) {
                fprintf(stderr,
                        "vfioctl: show: '%s' is not a PCI address (expected DDDD:BB:DD.F "
                        "or BB:DD.F in hexadecimal)\n",
                        c->args[0]);
                return EXIT_USAGE;
        }
        d = topology_find_device(t, &a);
        if (!d) {
                char buf[PCI_ADDR_STRLEN];
                fprintf(stderr,
                        "vfioctl: show: no PCI device %s on this host (see 'vfioctl list')\n",
                        pci_addr_format(&a, buf));
                return EXIT_USAGE;
        }
        if (c->json)
                return print_json(json_device_new(t, d, true), JSON_C_TO_STRING_PRETTY) ||
                       puts("") < 0;

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
        printf("  reset        %s\n", d->reset_method ? d->reset_method : "none reported");
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

int main(int argc, char **argv)
{
        _cleanup_(topology_freep) struct topology *t = NULL;
        _cleanup_(root_freep) struct root *root = NULL;
        struct cli c = {0};
        const struct verb *v;
        const char *name;
        int r, exit_code = 0;

        name = parse_args(argc, argv, &c, &exit_code);
        if (!name)
                goto out;
        if (strcmp(name, "help") == 0) {
                if (c.n_args > 0 && (v = verb_find(c.args[0])))
                        print_verb_help(v);
                else if (c.n_args > 0)
                        exit_code = usage_error("unknown verb '%s'", c.args[0]);
                else
                        print_main_help(stdout);
                goto out;
        }
        v = verb_find(name);
        if (!v) {
                exit_code = usage_error("unknown verb '%s'", name);
                goto out;
        }
        if (c.help) {
                print_verb_help(v);
                goto out;
        }
        if (c.n_args < v->min_args || c.n_args > v->max_args) {
                exit_code = usage_error("%s: expected %s", v->name, v->synopsis);
                goto out;
        }

        if (!c.root_path)
                c.root_path = getenv("VFIOD_ROOT");
        r = root_open(c.root_path, &root);
        if (r < 0) {
                fprintf(stderr, "vfioctl: cannot open root directory %s: %s\n",
                        c.root_path ? c.root_path : "/", strerror(-r));
                exit_code = EXIT_USAGE;
                goto out;
        }
        r = topology_scan(root, 0, &t);
        if (r < 0) {
                fprintf(stderr, "vfioctl: cannot scan PCI devices below %s: %s%s\n", root->path,
                        strerror(-r),
                        r == -ENOENT ? " (no sys/bus/pci there: is this a sysfs tree?)" : "");
                exit_code = EXIT_FAILED;
                goto out;
        }
        STRV_FOREACH (w, t->warnings)
                fprintf(stderr, "vfioctl: warning: %s\n", *w);
        exit_code = v->run(&c, t);
        if (fflush(stdout) != 0 && exit_code == 0) {
                fprintf(stderr, "vfioctl: cannot write output: %s\n", strerror(errno));
                exit_code = EXIT_FAILED;
        }
out:
        strv_free(c.args);
        return exit_code;
}
