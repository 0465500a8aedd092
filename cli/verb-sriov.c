/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfioctl sriov: show a PF, carve VFs, configure NIC VFs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli-route.h"
#include "detail.h"
#include "cli.h"
#include "journal.h"
#include "modules.h"
#include "sriov.h"
#include "strv.h"

static int parse_on_off(const char *opt, const char *v, bool *ret)
{
        if (v && strcmp(v, "on") == 0)
                *ret = true;
        else if (v && strcmp(v, "off") == 0)
                *ret = false;
        else {
                char q[300];
                return usage_error("sriov: %s takes on or off, not '%s'", opt,
                                   cli_quote(v ? v : "", q));
        }
        return 0;
}

static int parse_uint(const char *opt, const char *v, unsigned long max, unsigned long *ret)
{
        char *end;
        unsigned long n;

        errno = 0;
        n = v && *v && *v != '-' ? strtoul(v, &end, 10) : 0;
        if (!v || !*v || *v == '-' || errno || *end || n > max) {
                char q[300];
                return usage_error("sriov: %s takes a number from 0 to %lu, not '%s'", opt, max,
                                   cli_quote(v ? v : "", q));
        }
        *ret = n;
        return 0;
}

/* The VF settings given on the command line. */
static int parse_settings(struct cli *c, struct vf_config *want, unsigned *ret_fields)
{
        unsigned long n;
        unsigned fields = 0;
        int r;

        if (cli_has(c, OPT_MAC)) {
                if (vf_mac_parse(c->values[OPT_MAC], want->mac) < 0 || (want->mac[0] & 1)) {
                        char q[300];
                        return usage_error("sriov: --mac takes a unicast address like "
                                           "02:11:22:33:44:55, not '%s'",
                                           cli_quote(c->values[OPT_MAC], q));
                }
                fields |= VF_FIELD_MAC;
        }
        if (cli_has(c, OPT_VLAN)) {
                _cleanup_free_ char *v = strdup(c->values[OPT_VLAN]);
                char *comma = v ? strchr(v, ',') : NULL;
                if (!v)
                        return EXIT_FAILED;
                if (comma)
                        *comma = '\0';
                if ((r = parse_uint("--vlan", v, 4094, &n)))
                        return r;
                want->vlan = (uint16_t)n;
                if (comma) {
                        if ((r = parse_uint("--vlan QOS", comma + 1, 7, &n)))
                                return r;
                        want->qos = (uint8_t)n;
                }
                fields |= VF_FIELD_VLAN;
        }
        if (cli_has(c, OPT_TRUST)) {
                if ((r = parse_on_off("--trust", c->values[OPT_TRUST], &want->trust)))
                        return r;
                fields |= VF_FIELD_TRUST;
        }
        if (cli_has(c, OPT_SPOOFCHK)) {
                if ((r = parse_on_off("--spoofchk", c->values[OPT_SPOOFCHK], &want->spoofchk)))
                        return r;
                fields |= VF_FIELD_SPOOFCHK;
        }
        if (cli_has(c, OPT_LINK_STATE)) {
                int ls = vf_link_state_from_string(c->values[OPT_LINK_STATE]);
                if (ls < 0)
                        return usage_error("sriov: --link-state takes auto, enable or disable");
                want->link_state = (enum vf_link_state)ls;
                fields |= VF_FIELD_LINK_STATE;
        }
        if (cli_has(c, OPT_MAX_RATE) || cli_has(c, OPT_MIN_RATE)) {
                if (cli_has(c, OPT_MAX_RATE) &&
                    (r = parse_uint("--max-rate", c->values[OPT_MAX_RATE], UINT32_MAX, &n)))
                        return r;
                want->max_rate = cli_has(c, OPT_MAX_RATE) ? (uint32_t)n : 0;
                if (cli_has(c, OPT_MIN_RATE) &&
                    (r = parse_uint("--min-rate", c->values[OPT_MIN_RATE], UINT32_MAX, &n)))
                        return r;
                want->min_rate = cli_has(c, OPT_MIN_RATE) ? (uint32_t)n : 0;
                fields |= VF_FIELD_RATE;
        }
        *ret_fields = fields;
        return 0;
}

static void print_vf_config(const struct vf_config *v)
{
        printf("mac %02x:%02x:%02x:%02x:%02x:%02x", v->mac[0], v->mac[1], v->mac[2], v->mac[3],
               v->mac[4], v->mac[5]);
        if (v->have & VF_FIELD_VLAN)
                printf(", vlan %u qos %u", v->vlan, v->qos);
        if (v->have & VF_FIELD_TRUST)
                printf(", trust %s", v->trust ? "on" : "off");
        if (v->have & VF_FIELD_SPOOFCHK)
                printf(", spoofchk %s", v->spoofchk ? "on" : "off");
        if (v->have & VF_FIELD_LINK_STATE)
                printf(", link-state %s", vf_link_state_to_string(v->link_state));
        if (v->have & VF_FIELD_RATE)
                printf(", rate %u-%u Mbps", v->min_rate, v->max_rate);
}

static json_object *vf_config_json(const struct vf_config *v)
{
        json_object *o = json_object_new_object();
        char mac[18];

        snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", v->mac[0], v->mac[1], v->mac[2],
                 v->mac[3], v->mac[4], v->mac[5]);
        json_object_object_add(o, "mac", json_object_new_string(mac));
        json_object_object_add(o, "vlan",
                               (v->have & VF_FIELD_VLAN) ? json_object_new_int(v->vlan) : NULL);
        json_object_object_add(o, "qos",
                               (v->have & VF_FIELD_VLAN) ? json_object_new_int(v->qos) : NULL);
        json_object_object_add(
                o, "trust", (v->have & VF_FIELD_TRUST) ? json_object_new_boolean(v->trust) : NULL);
        json_object_object_add(o, "spoofchk",
                               (v->have & VF_FIELD_SPOOFCHK) ? json_object_new_boolean(v->spoofchk)
                                                             : NULL);
        json_object_object_add(
                o, "link_state",
                (v->have & VF_FIELD_LINK_STATE)
                        ? json_object_new_string(vf_link_state_to_string(v->link_state))
                        : NULL);
        json_object_object_add(o, "min_rate",
                               (v->have & VF_FIELD_RATE) ? json_object_new_int64(v->min_rate)
                                                         : NULL);
        json_object_object_add(o, "max_rate",
                               (v->have & VF_FIELD_RATE) ? json_object_new_int64(v->max_rate)
                                                         : NULL);
        return o;
}

/* A VF on vfio-pci can be opened only when every other member of its IOMMU group is on a
 * driver vfio accepts. Without ACS above the PF the kernel puts the VFs in the PF's group:
 * then the PF's host driver blocks them, and the PF cannot leave that driver without
 * taking its VFs away. One warning per such group, naming its first blocking member;
 * *ret_blocker[k] is that member for the k-th VF of pf, or NULL. */
static int vf_group_warnings(const struct topology *t, const struct pci_device *pf,
                             const struct pci_device **ret_blocker, char ***ret_warnings,
                             size_t *ret_n)
{
        for (size_t k = 0; k < pf->n_virtfn; k++) {
                const struct pci_device *vf = &t->devices[pf->virtfn[k]], *blocker = NULL;
                const struct iommu_group *g;
                _cleanup_free_ char *vfs = NULL;
                size_t len = 0;
                bool reported = false;
                FILE *f;
                int r;

                ret_blocker[k] = NULL;
                g = driver_is_vfio(vf->driver) ? topology_find_group(t, vf->iommu_group) : NULL;
                if (!g || g->viable)
                        continue;
                for (size_t m = 0; m < g->n_members && !blocker; m++)
                        if (!driver_is_vfio_compatible(t->devices[g->members[m]].driver))
                                blocker = &t->devices[g->members[m]];
                if (!blocker)
                        continue;
                ret_blocker[k] = blocker;
                for (size_t i = 0; i < k && !reported; i++)
                        reported = ret_blocker[i] &&
                                   t->devices[pf->virtfn[i]].iommu_group == vf->iommu_group;
                if (reported)
                        continue;
                f = open_memstream(&vfs, &len);
                if (!f)
                        return -ENOMEM;
                for (size_t i = k, n = 0; i < pf->n_virtfn; i++) {
                        const struct pci_device *o = &t->devices[pf->virtfn[i]];
                        if (o->iommu_group == vf->iommu_group && driver_is_vfio(o->driver))
                                fprintf(f, "%s%s", n++ ? " " : "", o->name);
                }
                if (fclose(f) != 0 || !vfs)
                        return -ENOMEM;
                if (blocker == pf)
                        r = strv_pushf(ret_warnings, ret_n,
                                       "%s: VFs %s are on vfio-pci in IOMMU group %d with their "
                                       "PF, which is bound to %s: vfio cannot open them while "
                                       "the PF keeps its driver, and the PF cannot leave it "
                                       "without removing them; carve them from the PF on "
                                       "vfio-pci instead (vfioctl bind %s, then vfioctl sriov %s "
                                       "--numvfs N) or move the PF behind a port with ACS",
                                       pf->name, vfs, g->id, blocker->driver, pf->name, pf->name);
                else
                        r = strv_pushf(ret_warnings, ret_n,
                                       "%s: VFs %s are on vfio-pci in IOMMU group %d with %s, "
                                       "which is bound to %s: vfio cannot open them until it "
                                       "is released or bound to vfio-pci as well",
                                       pf->name, vfs, g->id, blocker->name, blocker->driver);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* {"address", "driver", "is_pf"} of what keeps vf's group from vfio, or NULL. */
static json_object *vf_blocker_json(const struct topology *t, const struct pci_device *pf,
                                    const struct pci_device *vf,
                                    const struct pci_device *const *blockers)
{
        json_object *o;

        for (size_t k = 0; pf && vf && blockers && k < pf->n_virtfn; k++) {
                const struct pci_device *b = blockers[k];
                if (&t->devices[pf->virtfn[k]] != vf || !b)
                        continue;
                o = json_object_new_object();
                json_object_object_add(o, "address", json_object_new_string(b->name));
                json_object_object_add(o, "driver", json_object_new_string(b->driver));
                json_object_object_add(o, "is_pf", json_object_new_boolean(b == pf));
                return o;
        }
        return NULL;
}

/* The text line of VF k: its JSON entry e says what keeps its group from vfio. */
static void print_vf(int k, const char *addr, const struct pci_device *vf,
                     const struct vf_config *cfg, json_object *e)
{
        json_object *blk;

        printf("  vf %-3d %s %-10s group %-4s", k, addr, vf && vf->driver ? vf->driver : "-",
               vf && vf->iommu_group >= 0 ? "" : "-");
        if (vf && vf->iommu_group >= 0)
                printf("\b\b\b\b%-4d", vf->iommu_group);
        if (cfg) {
                printf(" ");
                print_vf_config(cfg);
        }
        if ((blk = json_object_object_get(e, "group_blocked_by")))
                printf(" (group blocked by %s%s on %s)",
                       json_object_get_boolean(json_object_object_get(blk, "is_pf")) ? "the PF "
                                                                                     : "",
                       json_object_get_string(json_object_object_get(blk, "address")),
                       json_object_get_string(json_object_object_get(blk, "driver")));
        printf("\n");
}

static int show(struct cli *c, const struct pci_addr *a)
{
        _cleanup_free_ char *token = NULL;
        _cleanup_free_ const struct pci_device **blockers = NULL;
        _cleanup_(strv_freep) char **warnings = NULL;
        size_t n_warnings = 0;
        struct topology *t;
        const struct pci_device *d;
        struct sriov_pf pf;
        json_object *doc, *vfs;
        int r;

        r = sriov_pf_read(c->root, a, &pf);
        if (r < 0) {
                char addr[PCI_ADDR_STRLEN];
                fprintf(stderr, "vfioctl: sriov: %s: %s\n", pci_addr_format(a, addr),
                        r == -ENODEV    ? "no such PCI device"
                        : r == -ENOTSUP ? "is not an SR-IOV physical function"
                                        : strerror(-r));
                return r == -ENODEV ? EXIT_USAGE : EXIT_FAILED;
        }
        r = cli_topology_unnamed(c, &t);
        if (r)
                return r;
        d = topology_find_device(t, a);
        if (d && driver_is_vfio(d->driver)) {
                /* The VF token vfiod holds for a PF on vfio-pci; only root can read it. */
                _cleanup_(journal_freep) struct journal *j = NULL;
                if (journal_open(c->root, c->state_dir, &j) >= 0)
                        (void)sriov_pf_vf_token(j, a, &token);
        }
        if (d && d->n_virtfn) {
                blockers = calloc(d->n_virtfn, sizeof(*blockers));
                if (!blockers || vf_group_warnings(t, d, blockers, &warnings, &n_warnings) < 0) {
                        fprintf(stderr, "vfioctl: sriov: out of memory\n");
                        return EXIT_FAILED;
                }
        }
        doc = json_object_new_object();
        vfs = json_object_new_array();
        if (!c->json)
                printf("%s: %d of %d VFs enabled, VF device %04x, offset %u, stride %u, "
                       "autoprobe %s%s%s\n",
                       d ? d->name : "?", pf.numvfs, pf.totalvfs, pf.vf_device, pf.offset,
                       pf.stride, pf.autoprobe ? "on" : "off",
                       d && d->n_netdevs ? ", interface " : "",
                       d && d->n_netdevs ? d->netdevs[0].name : "");
        if (!c->json && token)
                printf("  VF token %s (set by vfiod on the PF; open a VF with it)\n", token);
        for (int k = 0; k < pf.numvfs; k++) {
                struct pci_addr vfa;
                const struct pci_device *vf;
                struct vf_config cfg;
                bool have_cfg;
                json_object *e = json_object_new_object();
                char addr[PCI_ADDR_STRLEN];

                if (sriov_vf_address(&pf, k, &vfa) < 0)
                        continue;
                vf = topology_find_device(t, &vfa);
                have_cfg = d && d->n_netdevs && vf_netlink_get(d->netdevs[0].name, k, &cfg) >= 0;
                pci_addr_format(&vfa, addr);
                json_object_object_add(e, "index", json_object_new_int(k));
                json_object_object_add(e, "address", json_object_new_string(addr));
                json_object_object_add(
                        e, "driver", vf && vf->driver ? json_object_new_string(vf->driver) : NULL);
                json_object_object_add(
                        e, "iommu_group",
                        vf && vf->iommu_group >= 0 ? json_object_new_int(vf->iommu_group) : NULL);
                json_object_object_add(e, "settings", have_cfg ? vf_config_json(&cfg) : NULL);
                json_object_object_add(e, "group_blocked_by", vf_blocker_json(t, d, vf, blockers));
                json_object_array_add(vfs, e);
                if (!c->json)
                        print_vf(k, addr, vf, have_cfg ? &cfg : NULL, e);
        }
        if (!c->json) {
                STRV_FOREACH (w, warnings)
                        fprintf(stderr, "vfioctl: sriov: warning: %s\n", *w);
                json_object_put(doc);
                json_object_put(vfs);
                return 0;
        }
        {
                char addr[PCI_ADDR_STRLEN];
                json_object_object_add(doc, "schema", json_object_new_string("vfiod.sriov/1"));
                json_object_object_add(doc, "address",
                                       json_object_new_string(pci_addr_format(a, addr)));
                json_object_object_add(doc, "total_vfs", json_object_new_int(pf.totalvfs));
                json_object_object_add(doc, "num_vfs", json_object_new_int(pf.numvfs));
                json_object_object_add(doc, "vf_device", json_object_new_int((int)pf.vf_device));
                json_object_object_add(doc, "offset", json_object_new_int((int)pf.offset));
                json_object_object_add(doc, "stride", json_object_new_int((int)pf.stride));
                json_object_object_add(doc, "autoprobe", json_object_new_boolean(pf.autoprobe));
                json_object_object_add(
                        doc, "interface",
                        d && d->n_netdevs ? json_object_new_string(d->netdevs[0].name) : NULL);
                json_object_object_add(doc, "vf_token",
                                       token ? json_object_new_string(token) : NULL);
                json_object_object_add(doc, "vfs", vfs);
                json_object_object_add(doc, "warnings", json_object_new_array());
                STRV_FOREACH (w, warnings)
                        json_object_array_add(json_object_object_get(doc, "warnings"),
                                              json_object_new_string(*w));
                cli_json_add_modules(c, doc);
        }
        return print_json(doc, JSON_C_TO_STRING_PRETTY) || puts("") < 0;
}

int verb_sriov(struct cli *c)
{
        _cleanup_(journal_freep) struct journal *j = NULL;
        _cleanup_free_ char *why = NULL;
        struct pci_addr a;
        struct topology *t;
        bool settings = cli_has(c, OPT_MAC) || cli_has(c, OPT_VLAN) || cli_has(c, OPT_TRUST) ||
                        cli_has(c, OPT_SPOOFCHK) || cli_has(c, OPT_LINK_STATE) ||
                        cli_has(c, OPT_MAX_RATE) || cli_has(c, OPT_MIN_RATE);
        int r;

        if (pci_addr_parse(c->args[0], &a) < 0) {
                char q[300];
                fprintf(stderr, "vfioctl: sriov: '%s' is not a PCI address\n",
                        cli_quote(c->args[0], q));
                return EXIT_USAGE;
        }
        if (cli_has(c, OPT_GROUP))
                /* Taking the rest of the VFs' group would take the PF when it shares it,
                 * and a PF leaving its driver takes its VFs away. */
                return usage_error("sriov: --group does not apply: --numvfs binds only the "
                                   "VFs; when they share a group with their PF, bind the PF "
                                   "to vfio-pci first and carve from there");
        if (cli_has(c, OPT_NUMVFS) && (cli_has(c, OPT_VF) || settings || cli_has(c, OPT_RELEASE)))
                return usage_error("sriov: --numvfs does not combine with --vf and VF settings");
        if ((settings || cli_has(c, OPT_RELEASE)) && !cli_has(c, OPT_VF))
                return usage_error("sriov: VF settings need --vf I");
        if (cli_has(c, OPT_RELEASE) && settings)
                return usage_error("sriov: --release takes no settings");
        if (cli_has(c, OPT_DRIVER) && !cli_has(c, OPT_NUMVFS))
                return usage_error("sriov: --driver goes with --numvfs");
        if (cli_has(c, OPT_VF) && !settings && !cli_has(c, OPT_RELEASE))
                return usage_error("sriov: --vf needs settings (--mac, --vlan, ...) or --release");
        if (!cli_has(c, OPT_NUMVFS) && !cli_has(c, OPT_VF))
                return show(c, &a);

        if (cli_has(c, OPT_NUMVFS)) {
                unsigned long n;
                const char *dv = c->values[OPT_DRIVER];
                enum sriov_driver drv = dv ? sriov_driver_from_string(dv) : SRIOV_DRIVER_VFIO;

                if ((r = parse_uint("--numvfs", c->values[OPT_NUMVFS], 65535, &n)))
                        return r;
                if (drv < 0)
                        return usage_error("sriov: --driver takes vfio-pci or host");
                r = cli_route_sriov_numvfs(c, c->args[0], n, dv);
                if (r > 0)
                        return r;
                if (r == 0)
                        return show(c, &a);
                /* VFs for vfio-pci need it before the carve, which it would otherwise
                 * undo half way. */
                if (drv == SRIOV_DRIVER_VFIO && n > 0 &&
                    (r = cli_modules_need(c, VFIO_MODULE_BIT(VFIO_MODULE_VFIO_PCI), &why)) < 0) {
                        char addr[PCI_ADDR_STRLEN];
                        fprintf(stderr, "vfioctl: sriov: %s: %s\n", pci_addr_format(&a, addr),
                                detail_or_strerror(why, r));
                        return EXIT_FAILED;
                }
                r = cli_topology_unnamed(c, &t);
                if (!r)
                        r = journal_open(c->root, c->state_dir, &j) < 0 ? EXIT_FAILED : 0;
                if (r) {
                        if (!j)
                                fprintf(stderr, "vfioctl: sriov: cannot open the journal\n");
                        return r;
                }
                r = sriov_pf_set_numvfs(c->root, j, t, &a, (int)n, drv, &why);
                if (r < 0) {
                        fprintf(stderr, "vfioctl: sriov: %s\n", detail_or_strerror(why, r));
                        return r == -ENODEV ? EXIT_USAGE : EXIT_FAILED;
                }
                journal_free(TAKE_PTR(j));
                c->topology = topology_free(c->topology);
                return show(c, &a);
        }

        {
                unsigned long vf;
                struct vf_config want = {0};
                unsigned fields = 0;

                if ((r = parse_uint("--vf", c->values[OPT_VF], 65535, &vf)))
                        return r;
                want.vf = (int)vf;
                if ((r = parse_settings(c, &want, &fields)))
                        return r;
                r = cli_topology_unnamed(c, &t);
                if (r)
                        return r;
                if (journal_open(c->root, c->state_dir, &j) < 0) {
                        fprintf(stderr, "vfioctl: sriov: cannot open the journal\n");
                        return EXIT_FAILED;
                }
                if (cli_has(c, OPT_RELEASE))
                        r = sriov_vf_release(j, t, &a, (int)vf, &why);
                else
                        r = sriov_vf_configure(c->root, j, t, &a, &want, fields, &why);
                if (r < 0) {
                        fprintf(stderr, "vfioctl: sriov: %s\n", detail_or_strerror(why, r));
                        return r == -ENODEV ? EXIT_USAGE : EXIT_FAILED;
                }
                journal_free(TAKE_PTR(j));
                return show(c, &a);
        }
}
