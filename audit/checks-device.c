/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Checks of the audited devices, their IOMMU groups and the PCIe path above them. */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit-internal.h"
#include "card.h"
#include "config-space.h"
#include "strv.h"

#define NO_IOMMU_REASON "no IOMMU (see iommu.present)"
#define NO_DEVICES      "no devices audited"

static const struct {
        unsigned bit;
        const char *name;
        const char *what;
} acs_bits[] = {
        {ACS_SV, "SV", "Source Validation"},       {ACS_RR, "RR", "P2P Request Redirect"},
        {ACS_CR, "CR", "P2P Completion Redirect"}, {ACS_UF, "UF", "Upstream Forwarding"},
        {ACS_EC, "EC", "P2P Egress Control"},
};

static bool port_is_acs_port(const struct pci_device *p)
{
        return p->pcie_type == PCIE_TYPE_ROOT_PORT || p->pcie_type == PCIE_TYPE_DOWNSTREAM;
}

static bool bridge_is_conventional(const struct pci_device *p)
{
        return p->pcie_type == PCIE_TYPE_PCIE_TO_PCI || p->pcie_type == PCIE_TYPE_PCI_TO_PCIE ||
               (p->is_bridge && p->pcie_type == PCIE_TYPE_NONE);
}

/* The required ACS bits a function leaves off. As the kernel reads the capability, a bit
 * the function does not implement is hard-wired on; no capability at all enables nothing. */
static unsigned acs_missing(const struct pci_device *d)
{
        if (!d->have_acs)
                return ACS_REQUIRED;
        return ACS_REQUIRED & d->acs_cap & ~d->acs_ctrl;
}

static bool is_below(const struct topology *t, const struct pci_device *d, int ancestor)
{
        for (int p = d->parent; p >= 0; p = t->devices[p].parent)
                if (p == ancestor)
                        return true;
        return false;
}

static bool cmdline_has(const struct topology *t, const char *prefix, const char *option)
{
        STRV_FOREACH (w, t->host.cmdline_flags) {
                if (strncmp(*w, prefix, strlen(prefix)) != 0)
                        continue;
                if (!option)
                        return true;
                for (const char *o = *w + strlen(prefix); o && *o;) {
                        size_t n = strcspn(o, ",");
                        if (n == strlen(option) && strncmp(o, option, n) == 0)
                                return true;
                        o = o[n] ? o + n + 1 : NULL;
                }
        }
        return false;
}

static int evidence_acs(struct audit_ctx *c, const struct pci_device *d)
{
        char path[128];

        audit_device_path(d, "config", path);
        if (!d->have_acs)
                return audit_evidence(c, path, "no ACS capability (%s)",
                                      pcie_type_to_string(d->pcie_type));
        return audit_evidence(c, path, "ACS capability 0x%04x, control 0x%04x", d->acs_cap,
                              d->acs_ctrl);
}

/* Whether the checks that read configuration space can judge the function: its header
 * and PCIe capability were read, and for PCI Express its extended space. Conventional PCI
 * has 256 bytes and nothing more to read. */
static bool config_incomplete(const struct pci_device *d)
{
        return d->config_len < 256 || d->pcie_type == PCIE_TYPE_UNKNOWN ||
               (d->pcie_type != PCIE_TYPE_NONE && !d->acs_known);
}

/* audit.coverage: what the checks below could not read. */
static int check_coverage(struct audit_ctx *c)
{
        const struct topology *t = c->t;
        bool *seen = calloc(t->n_devices ? t->n_devices : 1, sizeof(bool));
        size_t n = 0, shown = 0;
        int r = 0;

        if (!seen)
                return -ENOMEM;
        /* The audited devices and every port above them. */
        for (size_t i = 0; i < t->n_devices; i++) {
                if (!c->in_scope[i])
                        continue;
                for (int p = (int)i; p >= 0; p = t->devices[p].parent)
                        if (config_incomplete(&t->devices[p]) && !seen[p]) {
                                seen[p] = true;
                                n++;
                        }
        }
        if (n == 0)
                goto out;
        r = audit_add(c, AUDIT_CHECK_AUDIT_COVERAGE, AUDIT_SEVERITY_MEDIUM, "host", NULL,
                      "Run the audit (or take the snapshot) as root: the kernel shows only the "
                      "first 64 bytes of configuration space to other users. As root, the "
                      "scan's warnings name the files that could not be read.",
                      "The configuration space of %zu device%s could not be read in full: "
                      "PCIe port types, ACS and ATS are unknown there, and the checks that "
                      "need them vouch for nothing",
                      n, n == 1 ? "" : "s");
        for (size_t i = 0; r >= 0 && i < t->n_devices; i++) {
                char path[128];

                if (!seen[i])
                        continue;
                if (c->in_scope[i])
                        r = audit_device(c, t->devices[i].name);
                if (r >= 0 && shown++ < 8)
                        r = audit_evidence(c, audit_device_path(&t->devices[i], "config", path),
                                           "%zu bytes readable", t->devices[i].config_len);
        }
out:
        free(seen);
        return r;
}

static int check_group_missing(struct audit_ctx *c)
{
        const struct topology *t = c->t;
        int r = 0;

        if (!t->host.iommu_present)
                return audit_skip(c, AUDIT_CHECK_GROUP_MISSING, NO_IOMMU_REASON);
        for (size_t i = 0; r >= 0 && i < t->n_devices; i++) {
                const struct pci_device *d = &t->devices[i];
                char path[128];

                if (!c->in_scope[i] || d->iommu_group >= 0)
                        continue;
                r = audit_add(c, AUDIT_CHECK_GROUP_MISSING, AUDIT_SEVERITY_HIGH, d->name, NULL,
                              "Look for DMAR or AMD-Vi messages about the device in the kernel "
                              "log: a device outside every IOMMU unit's scope (the firmware's "
                              "DMAR or IVRS table) cannot be isolated.",
                              "%s is in no IOMMU group: no IOMMU unit translates its DMA", d->name);
                if (r >= 0)
                        r = audit_device(c, d->name);
                if (r >= 0)
                        r = audit_evidence(c, audit_device_path(d, "iommu_group", path), "%s",
                                           d->group_link_bad ? "unreadable" : "absent");
        }
        return r;
}

static int check_group_default_domain(struct audit_ctx *c, const struct iommu_group *g)
{
        const struct topology *t = c->t;
        enum audit_severity sev;
        char subject[32], path[64];
        const char *why;
        int r;

        if (!g->type)
                return 0;
        if (strcmp(g->type, "identity") == 0 && t->host.mode == IOMMU_MODE_TRANSLATED) {
                sev = AUDIT_SEVERITY_MEDIUM;
                why = "has an identity (pass-through) domain on a host that otherwise "
                      "translates: its devices DMA untranslated while host drivers hold them";
        } else if (strcmp(g->type, "DMA-FQ") == 0) {
                sev = AUDIT_SEVERITY_INFO;
                why = "uses lazy IOTLB invalidation (DMA-FQ): host drivers' freed buffers stay "
                      "reachable for a few milliseconds; a domain vfio sets up is strict";
        } else
                return 0;
        snprintf(subject, sizeof(subject), "group %d", g->id);
        r = audit_add(c, AUDIT_CHECK_GROUP_DEFAULT_DOMAIN, sev, subject, NULL,
                      "Write DMA to the group's type file while its devices are unbound (or "
                      "boot with iommu.strict=1 for DMA-FQ).",
                      "IOMMU group %d %s", g->id, why);
        if (r < 0)
                return r;
        for (size_t k = 0; r >= 0 && k < g->n_members; k++)
                if (c->in_scope[g->members[k]])
                        r = audit_device(c, t->devices[g->members[k]].name);
        snprintf(path, sizeof(path), "sys/kernel/iommu_groups/%d/type", g->id);
        return r < 0 ? r : audit_evidence(c, path, "%s", g->type);
}

static int group_members_string(const struct topology *t, const struct iommu_group *g,
                                bool endpoints_only, char **ret)
{
        char *s = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&s, &len);

        if (!f)
                return -ENOMEM;
        for (size_t k = 0, n = 0; k < g->n_members; k++) {
                const struct pci_device *m = &t->devices[g->members[k]];
                if (endpoints_only && !audit_device_is_candidate(m))
                        continue;
                fprintf(f, "%s%s", n++ ? " " : "", m->name);
        }
        if (fclose(f) != 0 || !s) {
                free(s);
                return -ENOMEM;
        }
        *ret = s;
        return 0;
}

static int check_group_shared(struct audit_ctx *c, const struct iommu_group *g)
{
        const struct topology *t = c->t;
        _cleanup_free_ char *members = NULL;
        char subject[32], path[64];
        size_t endpoints = 0;
        int r;

        for (size_t k = 0; k < g->n_members; k++)
                endpoints += audit_device_is_candidate(&t->devices[g->members[k]]);
        if (endpoints < 2)
                return 0;
        r = group_members_string(t, g, true, &members);
        if (r < 0)
                return r;
        snprintf(subject, sizeof(subject), "group %d", g->id);
        r = audit_add(c, AUDIT_CHECK_GROUP_SHARED, AUDIT_SEVERITY_MEDIUM, subject, NULL,
                      "Give the whole group to one guest, or move the device behind a port with "
                      "ACS (acs.path and acs.multifunction say why the kernel grouped them).",
                      "IOMMU group %d holds %zu devices that could be assigned (%s): they are "
                      "not isolated from each other and can only go to one guest together",
                      g->id, endpoints, members);
        for (size_t k = 0; r >= 0 && k < g->n_members; k++)
                if (c->in_scope[g->members[k]])
                        r = audit_device(c, t->devices[g->members[k]].name);
        snprintf(path, sizeof(path), "sys/kernel/iommu_groups/%d/devices", g->id);
        free(members);
        members = NULL;
        if (r >= 0)
                r = group_members_string(t, g, false, &members);
        return r < 0 ? r : audit_evidence(c, path, "%s", members);
}

/* Whether a member of g to be assigned is a VF of pf. */
static bool group_holds_vf_of(const struct audit_ctx *c, const struct iommu_group *g,
                              const struct pci_device *pf)
{
        for (size_t k = 0; k < g->n_members; k++) {
                int i = g->members[k];
                const struct pci_device *m = &c->t->devices[i];
                if (c->assigned[i] && m->physfn >= 0 && &c->t->devices[m->physfn] == pf)
                        return true;
        }
        return false;
}

static int check_group_viable(struct audit_ctx *c, const struct iommu_group *g)
{
        const struct topology *t = c->t;
        const struct pci_device *blocker = NULL, *taken = NULL;
        enum audit_severity sev = AUDIT_SEVERITY_MEDIUM;
        bool any = false;
        char subject[32], path[128];
        int r;

        for (size_t k = 0; k < g->n_members; k++) {
                int i = g->members[k];
                const struct pci_device *m = &t->devices[i];

                if (c->assigned[i]) {
                        any = true;
                        if (m->in_use && !taken)
                                taken = m;
                } else if (!driver_is_vfio_compatible(m->driver) && !blocker)
                        blocker = m;
        }
        if (!any || (!blocker && !taken))
                return 0;
        if (taken || blocker->in_use)
                sev = AUDIT_SEVERITY_HIGH;
        snprintf(subject, sizeof(subject), "group %d", g->id);
        if (blocker && group_holds_vf_of(c, g, blocker))
                /* No ACS above the PF: its VFs joined its group, and the PF cannot leave
                 * its driver without taking them away, so --group is no way out. */
                r = audit_add(c, AUDIT_CHECK_GROUP_VIABLE, sev, subject, NULL,
                              "Carve the VFs from the PF bound to vfio-pci (vfioctl bind PF, "
                              "then vfioctl sriov PF --numvfs N), or move the PF behind a port "
                              "with ACS.",
                              "IOMMU group %d holds VFs of %s to be assigned together with "
                              "their PF, bound to %s%s%s%s: vfio cannot open them while the PF "
                              "keeps its driver, and the PF cannot leave it without removing "
                              "them",
                              g->id, blocker->name, blocker->driver, blocker->in_use ? " (" : "",
                              blocker->in_use ? blocker->in_use : "", blocker->in_use ? ")" : "");
        else if (blocker)
                r = audit_add(c, AUDIT_CHECK_GROUP_VIABLE, sev, subject, NULL,
                              "Assign the group's other endpoints too (vfioctl bind --group), "
                              "unbind them from their drivers, or leave this group on the host.",
                              "IOMMU group %d also holds %s, bound to %s and not being "
                              "assigned%s%s%s: vfio cannot open the group while it is there",
                              g->id, blocker->name, blocker->driver, blocker->in_use ? " (" : "",
                              blocker->in_use ? blocker->in_use : "", blocker->in_use ? ")" : "");
        else
                r = audit_add(c, AUDIT_CHECK_GROUP_VIABLE, sev, subject, NULL,
                              "Stop the host's use of the device first, or do not assign it.",
                              "%s is to be assigned but the host is using it (%s)", taken->name,
                              taken->in_use);
        for (size_t k = 0; r >= 0 && k < g->n_members; k++)
                if (c->assigned[g->members[k]])
                        r = audit_device(c, t->devices[g->members[k]].name);
        if (r >= 0 && blocker)
                r = audit_evidence(c, audit_device_path(blocker, "driver", path), "%s",
                                   blocker->driver);
        if (r >= 0 && taken)
                r = audit_evidence(c, audit_device_path(taken, NULL, path), "%s", taken->in_use);
        return r;
}

static int check_groups(struct audit_ctx *c)
{
        const struct topology *t = c->t;
        int r = 0;

        if (!t->host.iommu_present) {
                r = audit_skip(c, AUDIT_CHECK_GROUP_DEFAULT_DOMAIN, NO_IOMMU_REASON);
                if (r >= 0)
                        r = audit_skip(c, AUDIT_CHECK_GROUP_SHARED, NO_IOMMU_REASON);
                if (r >= 0)
                        r = audit_skip(c, AUDIT_CHECK_GROUP_VIABLE, NO_IOMMU_REASON);
                return r;
        }
        if (c->n_assigned == 0)
                r = audit_skip(c, AUDIT_CHECK_GROUP_VIABLE,
                               "no device is bound to a vfio driver; audit an assignment plan "
                               "with --devices or --config");
        for (size_t i = 0; r >= 0 && i < t->n_groups; i++) {
                const struct iommu_group *g = &t->groups[i];
                bool audited = false;

                for (size_t k = 0; k < g->n_members; k++)
                        audited = audited || c->in_scope[g->members[k]];
                if (!audited)
                        continue;
                r = check_group_default_domain(c, g);
                if (r >= 0)
                        r = check_group_shared(c, g);
                if (r >= 0)
                        r = check_group_viable(c, g);
        }
        return r;
}

/* Whether the kernel grouped the devices below a port apart from it although the port's
 * registers show no isolation: a device-specific ACS quirk, or pcie_acs_override. */
static bool kernel_isolates_below(struct audit_ctx *c, int port)
{
        const struct topology *t = c->t;
        const struct pci_device *p = &t->devices[port];
        bool any = false;

        if (p->iommu_group < 0)
                return false;
        for (size_t i = 0; i < t->n_devices; i++) {
                const struct pci_device *d = &t->devices[i];
                if (d->iommu_group < 0 || !is_below(t, d, port))
                        continue;
                if (d->iommu_group == p->iommu_group)
                        return false;
                any = true;
        }
        return any;
}

static enum audit_severity acs_bit_severity(unsigned bit)
{
        return bit == ACS_RR ? AUDIT_SEVERITY_HIGH : AUDIT_SEVERITY_MEDIUM;
}

static const char *acs_bit_effect(unsigned bit)
{
        switch (bit) {
        case ACS_SV:
                return "devices below it can send requests under another device's requester ID";
        case ACS_RR:
                return "a request from a device below it to a peer's address goes straight to "
                       "the peer and never reaches the IOMMU";
        case ACS_CR:
                return "completions for peer-to-peer requests are not sent up through the IOMMU";
        default:
                return "requests redirected upstream can be forwarded back down without "
                       "translation";
        }
}

static int acs_port_findings(struct audit_ctx *c, int port)
{
        const struct topology *t = c->t;
        const struct pci_device *p = &t->devices[port];
        unsigned missing = acs_missing(p);
        bool quirk = kernel_isolates_below(c, port);
        bool override = cmdline_has(t, "pcie_acs_override=", NULL);
        int r = 0;

        for (size_t b = 0; r >= 0 && b < ELEMENTSOF(acs_bits); b++) {
                unsigned bit = acs_bits[b].bit;
                enum audit_severity sev;
                char note[200] = "";

                if (bit == ACS_EC) {
                        /* Egress control is optional and the kernel never enables it; it is
                         * worth a note only where it could stand in for missing redirects. */
                        if (!missing || !p->have_acs || !(p->acs_cap & ACS_EC) ||
                            (p->acs_ctrl & ACS_EC))
                                continue;
                        sev = AUDIT_SEVERITY_INFO;
                } else if (!(missing & bit))
                        continue;
                else
                        sev = acs_bit_severity(bit);
                if (quirk && bit != ACS_EC) {
                        if (override)
                                snprintf(note, sizeof(note),
                                         "; the kernel grouped the devices below apart from it "
                                         "only because of pcie_acs_override");
                        else {
                                sev = AUDIT_SEVERITY_LOW;
                                snprintf(note, sizeof(note),
                                         "; the kernel groups the devices below apart from it "
                                         "all the same (a device-specific ACS quirk)");
                        }
                }
                if (bit == ACS_EC)
                        r = audit_add(c, AUDIT_CHECK_ACS_PATH, sev, p->name, acs_bits[b].name,
                                      "Nothing the kernel does by itself: egress control needs "
                                      "a vector set by hand (pci=config_acs=).",
                                      "%s %s implements ACS P2P Egress Control but does not "
                                      "enable it; it could block the peer-to-peer traffic its "
                                      "missing redirects let through",
                                      pcie_type_to_string(p->pcie_type), p->name);
                else
                        r = audit_add(c, AUDIT_CHECK_ACS_PATH, sev, p->name, acs_bits[b].name,
                                      p->have_acs && (p->acs_cap & bit)
                                              ? "The port implements it but it is off: look "
                                                "for pci=disable_acs_redir= or pci=config_acs= "
                                                "on the command line, or firmware that turns it "
                                                "off."
                                              : "No setting fixes a port's hardware: move the "
                                                "device behind a port that implements ACS, or "
                                                "give every device below this port to one "
                                                "guest. pcie_acs_override only hides the "
                                                "problem.",
                                      "%s %s does not enable ACS %s (%s): %s%s",
                                      pcie_type_to_string(p->pcie_type), p->name, acs_bits[b].what,
                                      acs_bits[b].name, acs_bit_effect(bit), note);
                for (size_t i = 0; r >= 0 && i < t->n_devices; i++)
                        if (c->in_scope[i] && is_below(t, &t->devices[i], port))
                                r = audit_device(c, t->devices[i].name);
                if (r >= 0)
                        r = evidence_acs(c, p);
        }
        return r;
}

static int check_acs_path(struct audit_ctx *c)
{
        const struct topology *t = c->t;
        bool *flagged = calloc(t->n_devices ? t->n_devices : 1, sizeof(bool));
        int r = 0;

        if (!flagged)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_devices; i++) {
                if (!c->in_scope[i])
                        continue;
                for (int p = t->devices[i].parent; p >= 0; p = t->devices[p].parent) {
                        const struct pci_device *port = &t->devices[p];
                        if (port_is_acs_port(port) && port->acs_known && acs_missing(port))
                                flagged[p] = true;
                }
        }
        for (size_t p = 0; r >= 0 && p < t->n_devices; p++)
                if (flagged[p])
                        r = acs_port_findings(c, (int)p);
        free(flagged);
        return r;
}

static const char *bits_string(unsigned bits, char buf[static 32])
{
        size_t n = 0;

        buf[0] = '\0';
        for (size_t b = 0; b < ELEMENTSOF(acs_bits); b++)
                if (bits & acs_bits[b].bit)
                        n += (size_t)snprintf(buf + n, 32 - n, "%s%s", n ? " " : "",
                                              acs_bits[b].name);
        return buf;
}

static bool same_slot(const struct pci_device *a, const struct pci_device *b)
{
        return a->addr.domain == b->addr.domain && a->addr.bus == b->addr.bus &&
               a->addr.dev == b->addr.dev;
}

/* Another physical function in the same slot: with none, nothing inside the device can be
 * reached, whatever the header's multi-function bit says. */
static bool has_sibling_function(const struct topology *t, const struct pci_device *d)
{
        for (size_t i = 0; i < t->n_devices; i++) {
                const struct pci_device *o = &t->devices[i];
                if (o != d && o->physfn < 0 && same_slot(o, d))
                        return true;
        }
        return false;
}

/* Whether the kernel put this function in a group of its own among its slot's functions
 * although its registers show no isolation: a multi-function ACS quirk. */
static bool kernel_isolates_function(const struct topology *t, const struct pci_device *d)
{
        if (d->iommu_group < 0)
                return false;
        for (size_t i = 0; i < t->n_devices; i++) {
                const struct pci_device *o = &t->devices[i];
                if (o != d && o->physfn < 0 && same_slot(o, d) && o->iommu_group == d->iommu_group)
                        return false;
        }
        return true;
}

static int check_acs_multifunction(struct audit_ctx *c)
{
        const struct topology *t = c->t;
        int r = 0;

        for (size_t i = 0; r >= 0 && i < t->n_devices; i++) {
                const struct pci_device *d = &t->devices[i];
                enum audit_severity sev = AUDIT_SEVERITY_MEDIUM;
                bool quirk;
                char bits[32];
                unsigned missing;

                if (!c->in_scope[i] || !d->multifunction || d->physfn >= 0 ||
                    !has_sibling_function(t, d))
                        continue;
                quirk = t->host.iommu_present && kernel_isolates_function(t, d);
                if (quirk)
                        sev = AUDIT_SEVERITY_LOW;
                if (d->pcie_type == PCIE_TYPE_NONE)
                        r = audit_add(c, AUDIT_CHECK_ACS_MULTIFUNCTION, sev, d->name, NULL,
                                      "Give all functions of the device to one guest.",
                                      "%s is a function of a conventional PCI multi-function "
                                      "device: nothing isolates it from the other functions%s",
                                      d->name,
                                      quirk ? "; the kernel groups it apart all the same (a "
                                              "device-specific quirk)"
                                            : "");
                else if (d->acs_known && d->pcie_type != PCIE_TYPE_UNKNOWN &&
                         (missing = acs_missing(d)) != 0)
                        r = audit_add(c, AUDIT_CHECK_ACS_MULTIFUNCTION, sev, d->name, NULL,
                                      "Give all functions of the device to one guest; "
                                      "pcie_acs_override only hides the problem.",
                                      "%s is a function of a multi-function device %s%s: the "
                                      "functions can reach each other inside the device, past "
                                      "the IOMMU%s",
                                      d->name,
                                      d->have_acs ? "that leaves ACS off: "
                                                  : "without an ACS capability",
                                      d->have_acs ? bits_string(missing, bits) : "",
                                      quirk ? "; the kernel groups it apart all the same (a "
                                              "device-specific quirk)"
                                            : "");
                else
                        continue;
                if (r >= 0)
                        r = audit_device(c, d->name);
                if (r >= 0)
                        r = evidence_acs(c, d);
        }
        return r;
}

static int check_behind_bridge(struct audit_ctx *c)
{
        const struct topology *t = c->t;
        int r = 0;

        for (size_t i = 0; r >= 0 && i < t->n_devices; i++) {
                const struct pci_device *d = &t->devices[i];
                _cleanup_free_ char *others = NULL;
                size_t n_others = 0, len = 0;
                int b = -1;
                char path[128];
                FILE *f;

                if (!c->in_scope[i])
                        continue;
                for (int p = d->parent; p >= 0; p = t->devices[p].parent)
                        if (bridge_is_conventional(&t->devices[p])) {
                                b = p;
                                break;
                        }
                if (b < 0)
                        continue;
                f = open_memstream(&others, &len);
                if (!f)
                        return -ENOMEM;
                for (size_t k = 0; k < t->n_devices; k++)
                        if (k != i && !t->devices[k].is_bridge && is_below(t, &t->devices[k], b))
                                fprintf(f, "%s%s", n_others++ ? " " : "", t->devices[k].name);
                if (fclose(f) != 0 || !others)
                        return -ENOMEM;
                r = audit_add(c, AUDIT_CHECK_PCI_BEHIND_BRIDGE,
                              n_others ? AUDIT_SEVERITY_HIGH : AUDIT_SEVERITY_MEDIUM, d->name, NULL,
                              "Conventional PCI cannot be isolated: use a PCI Express device, or "
                              "give every device behind the bridge to one guest.",
                              "%s sits behind %s %s: its DMA carries the bridge's requester ID%s%s",
                              d->name, pcie_type_to_string(t->devices[b].pcie_type),
                              t->devices[b].name,
                              n_others ? ", so the IOMMU cannot tell it from " : "", others);
                if (r >= 0)
                        r = audit_device(c, d->name);
                if (r >= 0)
                        r = audit_evidence(c, audit_device_path(&t->devices[b], "config", path),
                                           "PCIe type %s",
                                           pcie_type_to_string(t->devices[b].pcie_type));
        }
        return r;
}

static int check_external(struct audit_ctx *c)
{
        const struct topology *t = c->t;
        int r = 0;

        for (size_t i = 0; r >= 0 && i < t->n_devices; i++) {
                const struct pci_device *d = &t->devices[i];
                _cleanup_free_ char *v = NULL;
                char path[128];

                if (!c->in_scope[i])
                        continue;
                audit_device_path(d, "removable", path);
                if (root_read_line(c->root, path, &v) < 0 || strcmp(v, "removable") != 0)
                        continue;
                r = audit_add(c, AUDIT_CHECK_PORT_EXTERNAL, AUDIT_SEVERITY_MEDIUM, d->name, NULL,
                              "Assign only devices inside the machine, or make sure the "
                              "external port is physically controlled.",
                              "%s is below an external-facing port (Thunderbolt, USB4): anyone "
                              "with access to the port can attach or swap it, and the kernel "
                              "treats it as untrusted",
                              d->name);
                if (r >= 0)
                        r = audit_device(c, d->name);
                if (r >= 0)
                        r = audit_evidence(c, path, "%s", v);
        }
        return r;
}

/* The ATS Control register of a function, from its configuration space file. */
static int read_ats_control(struct audit_ctx *c, const struct pci_device *d, uint16_t *ret)
{
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        uint8_t buf[4096];
        ssize_t n;
        unsigned off = 0x100;

        if (asprintf(&path, "%s/config", d->sysfs_path) < 0)
                return -ENOMEM;
        fd = root_openat(c->root, path, O_RDONLY);
        if (fd < 0)
                return fd;
        n = pread(fd, buf, sizeof(buf), 0);
        if (n < 0)
                return negative_errno();
        /* A capability list can be malformed or loop: at most one header per dword. */
        for (int guard = 0; guard < 1024 && off >= 0x100 && off + 8 <= (size_t)n; guard++) {
                uint32_t hdr = (uint32_t)buf[off] | (uint32_t)buf[off + 1] << 8 |
                               (uint32_t)buf[off + 2] << 16 | (uint32_t)buf[off + 3] << 24;
                if ((hdr & 0xffff) == PCI_EXT_CAP_ID_ATS) {
                        *ret = (uint16_t)(buf[off + 6] | buf[off + 7] << 8);
                        return 0;
                }
                off = (hdr >> 20) & 0xffc;
        }
        return -ENOENT;
}

static int check_ats(struct audit_ctx *c)
{
        const struct topology *t = c->t;
        bool noats = cmdline_has(t, "pci=", "noats");
        int r = 0;

        if (!t->host.iommu_present)
                return audit_skip(c, AUDIT_CHECK_ATS_ENABLED, NO_IOMMU_REASON);
        for (size_t i = 0; r >= 0 && i < t->n_devices; i++) {
                const struct pci_device *d = &t->devices[i];
                const struct iommu_unit *u =
                        d->iommu_unit ? topology_find_unit(t, d->iommu_unit) : NULL;
                uint16_t ctrl;
                bool enabled;
                char path[128];

                if (!c->in_scope[i] || !d->have_ats || read_ats_control(c, d, &ctrl) < 0)
                        continue;
                enabled = ctrl & 0x8000;
                if (!enabled && (noats || !u || !u->device_tlb))
                        continue;
                r = audit_add(c, AUDIT_CHECK_ATS_ENABLED,
                              enabled ? AUDIT_SEVERITY_MEDIUM : AUDIT_SEVERITY_LOW, d->name, NULL,
                              "Boot with pci=noats where devices' firmware is not trusted; ATS "
                              "costs only IOTLB-miss latency.",
                              enabled ? "%s has Address Translation Services enabled: it sends "
                                        "pre-translated requests that the IOMMU does not check "
                                        "again"
                                      : "%s implements Address Translation Services and its "
                                        "IOMMU unit honours them: the kernel enables ATS when "
                                        "it attaches a DMA domain, and the device then sends "
                                        "pre-translated requests the IOMMU does not check",
                              d->name);
                if (r >= 0)
                        r = audit_device(c, d->name);
                if (r >= 0)
                        r = audit_evidence(c, audit_device_path(d, "config", path),
                                           "ATS control 0x%04x (Enable %s)", ctrl,
                                           enabled ? "set" : "clear");
        }
        return r;
}

static bool method_listed(const char *methods, const char *m)
{
        size_t n = strlen(m);

        for (const char *p = methods; p && *p;) {
                size_t k = strcspn(p, " ");
                if (k == n && strncmp(p, m, n) == 0)
                        return true;
                p += k;
                p += strspn(p, " ");
        }
        return false;
}

static int check_reset(struct audit_ctx *c)
{
        const struct topology *t = c->t;
        int r = 0;

        for (size_t i = 0; r >= 0 && i < t->n_devices; i++) {
                const struct pci_device *d = &t->devices[i];
                _cleanup_free_ char *others = NULL;
                char path[128];
                size_t n_others = 0, len = 0;
                FILE *f;

                if (!c->in_scope[i])
                        continue;
                if (!d->reset_method) {
                        _cleanup_close_ int fd = -EBADF;
                        _cleanup_free_ char *p = NULL;

                        /* Kernels before 5.15 have no reset_method file but a reset file
                         * whenever some reset works. */
                        if (asprintf(&p, "%s/reset", d->sysfs_path) < 0)
                                return -ENOMEM;
                        fd = root_openat(c->root, p, O_PATH);
                        if (fd >= 0)
                                continue;
                        r = audit_add(c, AUDIT_CHECK_RESET_CAPABILITY, AUDIT_SEVERITY_MEDIUM,
                                      d->name, NULL,
                                      "Give the device to one guest for good and do not hand it "
                                      "back to the host, or use hardware with Function Level "
                                      "Reset.",
                                      "%s has no reset method: it keeps its state, including "
                                      "DMA set up by its last user, when it changes hands",
                                      d->name);
                        if (r >= 0)
                                r = audit_device(c, d->name);
                        if (r >= 0)
                                r = audit_evidence(c, audit_device_path(d, "reset_method", path),
                                                   "absent");
                        continue;
                }
                if (method_listed(d->reset_method, "flr") || method_listed(d->reset_method, "pm") ||
                    method_listed(d->reset_method, "af") ||
                    method_listed(d->reset_method, "device_specific"))
                        continue;
                /* Only a bus reset is left: it resets everything else on the bus too. */
                f = open_memstream(&others, &len);
                if (!f)
                        return -ENOMEM;
                for (size_t k = 0; k < t->n_devices; k++) {
                        const struct pci_device *o = &t->devices[k];
                        if (k != i && o->physfn != (int)i && o->addr.domain == d->addr.domain &&
                            o->addr.bus == d->addr.bus)
                                fprintf(f, "%s%s", n_others++ ? " " : "", o->name);
                }
                if (fclose(f) != 0 || !others)
                        return -ENOMEM;
                if (n_others == 0)
                        continue;
                r = audit_add(c, AUDIT_CHECK_RESET_CAPABILITY, AUDIT_SEVERITY_LOW, d->name, NULL,
                              "Assign the devices that share the bus together, or accept that "
                              "resetting this one resets them too.",
                              "%s can only be reset with a secondary bus reset, which also "
                              "resets %s",
                              d->name, others);
                if (r >= 0)
                        r = audit_device(c, d->name);
                if (r >= 0)
                        r = audit_evidence(c, audit_device_path(d, "reset_method", path), "%s",
                                           d->reset_method);
        }
        return r;
}

static bool is_display(const struct pci_device *d)
{
        return d->have_ids && (d->class >> 16) == 0x03;
}

/* The functions of an assigned display device's card that are not assigned with it.
 * One the group check already reports (in the same group, on a host driver) is left to
 * it. */
static int check_card_split(struct audit_ctx *c)
{
        const struct topology *t = c->t;
        int r = 0;

        for (size_t i = 0; r >= 0 && i < t->n_devices; i++) {
                const struct pci_device *d = &t->devices[i];
                size_t idx[16], n;

                if (!c->assigned[i] || !is_display(d) || d->physfn >= 0)
                        continue;
                n = topology_card_functions(t, d, idx, ELEMENTSOF(idx));
                for (size_t k = 0; r >= 0 && k < n && k < ELEMENTSOF(idx); k++) {
                        const struct pci_device *o = &t->devices[idx[k]];
                        bool host = o->driver && !driver_is_vfio(o->driver);
                        bool same_group = o->iommu_group >= 0 && o->iommu_group == d->iommu_group;
                        char path[128];

                        if (idx[k] == i || c->assigned[idx[k]] || (host && same_group))
                                continue;
                        r = audit_add(c, AUDIT_CHECK_CARD_SPLIT,
                                      host ? AUDIT_SEVERITY_MEDIUM : AUDIT_SEVERITY_LOW, o->name,
                                      NULL,
                                      "Assign the card's functions together (vfioctl bind --group, "
                                      "or name each).",
                                      "%s is a function of %s's card and is not assigned with "
                                      "it: %s%s",
                                      o->name, d->name,
                                      host ? "it stays on the host's driver " : "it has no driver",
                                      host ? o->driver : "");
                        if (r >= 0)
                                r = audit_device(c, d->name);
                        if (r >= 0)
                                r = audit_device(c, o->name);
                        if (r >= 0)
                                r = audit_evidence(c, audit_device_path(o, "driver", path), "%s",
                                                   o->driver ? o->driver : "absent");
                }
        }
        return r;
}

/* A framebuffer in /proc/iomem inside the BARs of an assigned display device. */
static int check_display_framebuffer(struct audit_ctx *c)
{
        const struct topology *t = c->t;
        int r = 0;

        for (size_t i = 0; r >= 0 && i < t->n_devices; i++) {
                const struct pci_device *d = &t->devices[i];
                struct pci_framebuffer fb[4];
                size_t n = 0;
                int q;

                if (!c->assigned[i] || !is_display(d))
                        continue;
                q = pci_framebuffers(c->root, d, fb, ELEMENTSOF(fb), &n);
                if (q == -ENOMEM)
                        return q;
                if (q < 0)
                        return audit_skip(c, AUDIT_CHECK_DISPLAY_FRAMEBUFFER,
                                          q == -EPERM ? "proc/iomem hides its addresses (not "
                                                        "root)"
                                                      : "proc/iomem cannot be read");
                for (size_t k = 0; r >= 0 && k < n && k < ELEMENTSOF(fb); k++) {
                        r = audit_add(c, AUDIT_CHECK_DISPLAY_FRAMEBUFFER, AUDIT_SEVERITY_HIGH,
                                      d->name, NULL,
                                      "Boot with video=efifb:off (or initcall_blacklist="
                                      "sysfb_init), or let the host's DRM driver take the device "
                                      "and unbind it before assigning it.",
                                      "a %s framebuffer holds BAR %d of %s "
                                      "(%#" PRIx64 "-%#" PRIx64 ")",
                                      fb[k].name, fb[k].bar, d->name, fb[k].start, fb[k].end);
                        if (r >= 0)
                                r = audit_device(c, d->name);
                        if (r >= 0)
                                r = audit_evidence(c, "proc/iomem", "%" PRIx64 "-%" PRIx64 " : %s",
                                                   fb[k].start, fb[k].end, fb[k].name);
                }
        }
        return r;
}

int audit_checks_devices(struct audit_ctx *c)
{
        const struct topology *t = c->t;
        int (*const checks[])(struct audit_ctx *) = {
                check_coverage,
                check_group_missing,
                check_groups,
                check_acs_path,
                check_acs_multifunction,
                check_behind_bridge,
                check_external,
                check_ats,
                check_reset,
                check_card_split,
                check_display_framebuffer,
        };
        static const enum audit_check_id device_checks[] = {
                AUDIT_CHECK_GROUP_MISSING,
                AUDIT_CHECK_GROUP_VIABLE,
                AUDIT_CHECK_GROUP_SHARED,
                AUDIT_CHECK_GROUP_DEFAULT_DOMAIN,
                AUDIT_CHECK_ACS_PATH,
                AUDIT_CHECK_ACS_MULTIFUNCTION,
                AUDIT_CHECK_PCI_BEHIND_BRIDGE,
                AUDIT_CHECK_ATS_ENABLED,
                AUDIT_CHECK_RESET_CAPABILITY,
                AUDIT_CHECK_CARD_SPLIT,
                AUDIT_CHECK_DISPLAY_FRAMEBUFFER,
        };
        int r;

        if (c->n_in_scope == 0)
                for (size_t i = 0; i < ELEMENTSOF(device_checks); i++) {
                        r = audit_skip(c, device_checks[i], NO_DEVICES);
                        if (r < 0)
                                return r;
                }
        /* Without an IOMMU nothing is isolated anyway: ACS and bridges change nothing. */
        if (!t->host.iommu_present) {
                r = audit_skip(c, AUDIT_CHECK_ACS_PATH, NO_IOMMU_REASON);
                if (r >= 0)
                        r = audit_skip(c, AUDIT_CHECK_ACS_MULTIFUNCTION, NO_IOMMU_REASON);
                if (r >= 0)
                        r = audit_skip(c, AUDIT_CHECK_PCI_BEHIND_BRIDGE, NO_IOMMU_REASON);
                if (r >= 0)
                        r = audit_skip(c, AUDIT_CHECK_AUDIT_COVERAGE, NO_IOMMU_REASON);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < ELEMENTSOF(checks); i++) {
                if (!t->host.iommu_present &&
                    (checks[i] == check_acs_path || checks[i] == check_acs_multifunction ||
                     checks[i] == check_behind_bridge || checks[i] == check_coverage))
                        continue;
                r = checks[i](c);
                if (r < 0)
                        return r;
        }
        return 0;
}
