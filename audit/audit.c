/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The check registry, the report and its scope. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit-internal.h"
#include "persist.h"
#include "string-table.h"
#include "strv.h"

static const char *const audit_severity_table[_AUDIT_SEVERITY_MAX] = {
        [AUDIT_SEVERITY_INFO] = "info",         [AUDIT_SEVERITY_LOW] = "low",
        [AUDIT_SEVERITY_MEDIUM] = "medium",     [AUDIT_SEVERITY_HIGH] = "high",
        [AUDIT_SEVERITY_CRITICAL] = "critical",
};

DEFINE_STRING_TABLE_LOOKUP(audit_severity, enum audit_severity);

static const char *const audit_status_table[_AUDIT_STATUS_MAX] = {
        [AUDIT_STATUS_PASS] = "pass",
        [AUDIT_STATUS_FAIL] = "fail",
        [AUDIT_STATUS_SKIP] = "skip",
};

DEFINE_STRING_TABLE_TO_STRING(audit_status, enum audit_status);

static const struct audit_check_info check_table[_AUDIT_CHECK_MAX] = {
        [AUDIT_CHECK_IOMMU_PRESENT] =
                {"iommu.present", "An IOMMU translates device DMA",
                 "At least one IOMMU unit is registered in sys/class/iommu. Without one, any "
                 "device can read and write all of host memory, and nothing can be isolated.",
                 AUDIT_SEVERITY_CRITICAL},
        [AUDIT_CHECK_IOMMU_TRANSLATING] =
                {"iommu.translating", "Host devices get translated DMA domains",
                 "The default domain type of the IOMMU groups is a translating one (DMA, "
                 "DMA-FQ), not identity: in pass-through mode devices left to host drivers "
                 "reach all of memory. Assigned devices still get vfio's own domain.",
                 AUDIT_SEVERITY_MEDIUM},
        [AUDIT_CHECK_GROUP_DEFAULT_DOMAIN] =
                {"group.default-domain", "Each audited group has a strict translating domain",
                 "A group switched to identity on an otherwise translating host, or using lazy "
                 "IOTLB invalidation (DMA-FQ), per sys/kernel/iommu_groups/N/type.",
                 AUDIT_SEVERITY_MEDIUM},
        [AUDIT_CHECK_IRQ_REMAPPING] =
                {"irq.remapping", "Interrupt remapping is supported and enabled",
                 "Without interrupt remapping an assigned device can forge MSI writes and "
                 "inject interrupts into the host; vfio refuses such hosts unless told "
                 "otherwise. Read from the IOMMU units' registers and the IR- interrupt chips "
                 "of proc/interrupts.",
                 AUDIT_SEVERITY_HIGH},
        [AUDIT_CHECK_IRQ_POSTED] =
                {"irq.posted", "The IOMMU can post interrupts to vCPUs",
                 "Posted interrupts deliver a device's interrupts to a running vCPU without a "
                 "VM exit. Information only: it is about speed, not isolation.",
                 AUDIT_SEVERITY_INFO},
        [AUDIT_CHECK_VFIO_NOIOMMU] =
                {"vfio.noiommu", "vfio's unsafe no-IOMMU mode is off",
                 "vfio.enable_unsafe_noiommu_mode lets user space drive DMA-capable devices "
                 "with no IOMMU at all: the device can reach every byte of host memory.",
                 AUDIT_SEVERITY_CRITICAL},
        [AUDIT_CHECK_VFIO_UNSAFE_INTERRUPTS] =
                {"vfio.unsafe-interrupts", "vfio does not accept unsafe interrupts",
                 "vfio_iommu_type1.allow_unsafe_interrupts lets vfio assign devices on hosts "
                 "without interrupt remapping, where a guest can inject host interrupts.",
                 AUDIT_SEVERITY_HIGH},
        [AUDIT_CHECK_CMDLINE_HAZARD] =
                {"cmdline.hazard", "The kernel command line does not weaken DMA isolation",
                 "Words of proc/cmdline that turn the IOMMU off or to pass-through, override "
                 "ACS, disable interrupt remapping or relax vfio's safety checks.",
                 AUDIT_SEVERITY_CRITICAL},
        [AUDIT_CHECK_AUDIT_COVERAGE] =
                {"audit.coverage", "Everything the audit needs was readable",
                 "Configuration space past its first 64 bytes (root only) holds the PCIe port "
                 "types, ACS and ATS; where it could not be read those checks cannot vouch "
                 "for anything.",
                 AUDIT_SEVERITY_MEDIUM},
        [AUDIT_CHECK_GROUP_MISSING] =
                {"group.missing", "Each audited device is in an IOMMU group",
                 "A device without an IOMMU group on a host with an IOMMU is not translated "
                 "by any unit and cannot be assigned safely.",
                 AUDIT_SEVERITY_HIGH},
        [AUDIT_CHECK_GROUP_VIABLE] =
                {"group.viable", "The groups of the devices to assign can be given to vfio",
                 "vfio opens a group only when every member is on vfio-pci, pci-stub, "
                 "pcieport or no driver. Members not being assigned that sit on other drivers "
                 "block it; a device being assigned that the host is using is taken from it.",
                 AUDIT_SEVERITY_HIGH},
        [AUDIT_CHECK_GROUP_SHARED] =
                {"group.shared", "Each audited device is alone in its IOMMU group",
                 "Endpoints sharing a group are not isolated from each other: they can reach "
                 "each other by peer-to-peer DMA and must go to the same guest.",
                 AUDIT_SEVERITY_MEDIUM},
        [AUDIT_CHECK_ACS_PATH] =
                {"acs.path", "ACS isolates the path from each audited device to the root",
                 "Every root and downstream port above the device must enable ACS Source "
                 "Validation, P2P Request Redirect, P2P Completion Redirect and Upstream "
                 "Forwarding (bits the port does not implement count as hard-wired, as the "
                 "kernel counts them); otherwise peer-to-peer DMA can bypass the IOMMU. One "
                 "finding per port and bit; Egress Control is reported as information.",
                 AUDIT_SEVERITY_HIGH},
        [AUDIT_CHECK_ACS_MULTIFUNCTION] =
                {"acs.multifunction", "Functions of a multi-function device are isolated",
                 "The functions of one device can talk to each other inside it unless each "
                 "implements ACS with redirection enabled; conventional PCI functions never "
                 "can.",
                 AUDIT_SEVERITY_MEDIUM},
        [AUDIT_CHECK_PCI_BEHIND_BRIDGE] =
                {"pci.behind-bridge", "No audited device sits behind a PCI bridge",
                 "Behind a PCIe-to-PCI bridge every device's DMA carries the bridge's "
                 "requester ID: the IOMMU cannot tell them apart, and they share one group.",
                 AUDIT_SEVERITY_HIGH},
        [AUDIT_CHECK_PORT_EXTERNAL] =
                {"port.external", "No audited device is reachable from outside the machine",
                 "A device below an external-facing port (Thunderbolt, USB4: sysfs "
                 "'removable' reads 'removable') is untrusted by the kernel; a Thunderbolt "
                 "domain without iommu_dma_protection lets attached devices DMA freely.",
                 AUDIT_SEVERITY_HIGH},
        [AUDIT_CHECK_ATS_ENABLED] =
                {"ats.enabled", "Audited devices do not use Address Translation Services",
                 "A device with ATS enabled caches translations and sends pre-translated "
                 "requests, which the IOMMU does not check again: its firmware is trusted "
                 "with all of memory.",
                 AUDIT_SEVERITY_MEDIUM},
        [AUDIT_CHECK_RESET_CAPABILITY] =
                {"reset.capability", "Each audited device can be reset on its own",
                 "Without a reset a device keeps the previous user's state (DMA engines, "
                 "queues, keys) when it changes hands; a bus reset also resets every other "
                 "device on the bus.",
                 AUDIT_SEVERITY_MEDIUM},
        [AUDIT_CHECK_CARD_SPLIT] =
                {"card.split", "A display card is assigned with all its functions",
                 "A GPU's other functions (HDMI audio, USB-C controller) belong to the same "
                 "card: its guest driver expects them, a reset of the card resets them, and "
                 "one left with the host shares the card's state with it.",
                 AUDIT_SEVERITY_MEDIUM},
        [AUDIT_CHECK_DISPLAY_FRAMEBUFFER] =
                {"display.framebuffer",
                 "No firmware framebuffer holds an assigned display "
                 "device's memory",
                 "A framebuffer the firmware or early boot set up (efifb, vesafb, simplefb, "
                 "simpledrm) inside a BAR keeps vfio-pci from reserving that BAR (the guest's "
                 "start fails with 'BAR can't reserve') and lets the host console write into "
                 "memory the guest owns.",
                 AUDIT_SEVERITY_HIGH},
        [AUDIT_CHECK_DMA_FAULT_PROBE] =
                {"dma.fault-probe", "The IOMMU blocks a stray DMA (--probe)",
                 "Run only with --probe, on the live host: a device whose DMA engine vfiod can "
                 "drive (QEMU's edu) is opened through VFIO, moves a page through two mapped "
                 "IOVAs and back, then writes to an IOVA that was mapped and unmapped again. "
                 "The memory once behind it must not change and the kernel must log the "
                 "IOMMU's fault. A blocked write is reported as information with the kernel's "
                 "fault line as evidence.",
                 AUDIT_SEVERITY_CRITICAL},
};

const struct audit_check_info *audit_check_info(enum audit_check_id id)
{
        return id >= 0 && id < _AUDIT_CHECK_MAX ? &check_table[id] : NULL;
}

enum audit_check_id audit_check_from_string(const char *id)
{
        for (int i = 0; id && i < _AUDIT_CHECK_MAX; i++)
                if (strcmp(check_table[i].id, id) == 0)
                        return (enum audit_check_id)i;
        return _AUDIT_CHECK_INVALID;
}

const char *audit_device_path(const struct pci_device *d, const char *attr, char buf[static 128])
{
        snprintf(buf, 128, "sys/bus/pci/devices/%s%s%s", d->name, attr ? "/" : "",
                 attr ? attr : "");
        return buf;
}

static void finding_done(struct audit_finding *f)
{
        free(f->subject);
        free(f->detail);
        free(f->message);
        free(f->fix);
        for (size_t i = 0; i < f->n_evidence; i++) {
                free(f->evidence[i].path);
                free(f->evidence[i].value);
        }
        free(f->evidence);
        strv_free(f->devices);
}

struct audit_report *audit_report_free(struct audit_report *r)
{
        if (!r)
                return NULL;
        for (size_t i = 0; i < r->n_findings; i++)
                finding_done(&r->findings[i]);
        free(r->findings);
        for (size_t i = 0; i < _AUDIT_CHECK_MAX; i++)
                free(r->skip_reason[i]);
        strv_free(r->devices);
        strv_free(r->warnings);
        free(r);
        return NULL;
}

size_t audit_report_count(const struct audit_report *r, enum audit_severity at_least)
{
        size_t n = 0;

        for (size_t i = 0; i < r->n_findings; i++)
                n += r->findings[i].severity >= at_least;
        return n;
}

static char *strdup_or_null(const char *s, bool *oom)
{
        char *d;

        if (!s)
                return NULL;
        d = strdup(s);
        if (!d)
                *oom = true;
        return d;
}

int audit_add(struct audit_ctx *c, enum audit_check_id id, enum audit_severity sev,
              const char *subject, const char *detail, const char *fix, const char *fmt, ...)
{
        struct audit_report *r = c->report;
        struct audit_finding *nf, *f;
        bool oom = false;
        va_list ap;
        int k;

        nf = realloc(r->findings, (r->n_findings + 1) * sizeof(*nf));
        if (!nf)
                return -ENOMEM;
        r->findings = nf;
        f = &nf[r->n_findings];
        *f = (struct audit_finding){.check = id, .severity = sev};
        f->subject = strdup_or_null(subject, &oom);
        f->detail = strdup_or_null(detail, &oom);
        f->fix = strdup_or_null(fix, &oom);
        va_start(ap, fmt);
        k = vasprintf(&f->message, fmt, ap);
        va_end(ap);
        if (k < 0) {
                f->message = NULL;
                oom = true;
        }
        r->n_findings++; /* even half-built, so that it is freed with the report */
        return oom ? -ENOMEM : 0;
}

int audit_evidence(struct audit_ctx *c, const char *path, const char *fmt, ...)
{
        struct audit_finding *f = &c->report->findings[c->report->n_findings - 1];
        struct audit_evidence *ne;
        va_list ap;
        int k;

        ne = realloc(f->evidence, (f->n_evidence + 1) * sizeof(*ne));
        if (!ne)
                return -ENOMEM;
        f->evidence = ne;
        ne = &ne[f->n_evidence];
        *ne = (struct audit_evidence){.path = strdup(path)};
        va_start(ap, fmt);
        k = vasprintf(&ne->value, fmt, ap);
        va_end(ap);
        if (k < 0)
                ne->value = NULL;
        f->n_evidence++;
        return !ne->path || k < 0 ? -ENOMEM : 0;
}

int audit_device(struct audit_ctx *c, const char *address)
{
        struct audit_finding *f = &c->report->findings[c->report->n_findings - 1];
        size_t n = 0;

        STRV_FOREACH (s, f->devices) {
                if (strcmp(*s, address) == 0)
                        return 0;
                n++;
        }
        return strv_push(&f->devices, &n, address);
}

int audit_skip(struct audit_ctx *c, enum audit_check_id id, const char *reason)
{
        if (c->report->skip_reason[id])
                return 0;
        c->report->skip_reason[id] = strdup(reason);
        return c->report->skip_reason[id] ? 0 : -ENOMEM;
}

static int finding_compare(const void *a, const void *b)
{
        const struct audit_finding *x = a, *y = b;
        int k;

        if (x->severity != y->severity)
                return x->severity > y->severity ? -1 : 1;
        if (x->check != y->check)
                return x->check < y->check ? -1 : 1;
        k = strcmp(x->subject ? x->subject : "", y->subject ? y->subject : "");
        if (k != 0)
                return k;
        return strcmp(x->detail ? x->detail : "", y->detail ? y->detail : "");
}

/* The audited devices: the listed ones, or every function of the host that could be given
 * to a guest. Bridges of every kind (host, ISA, PCI-to-PCI) and the IOMMU's own PCI
 * function are infrastructure, not candidates. */
bool audit_device_is_candidate(const struct pci_device *d)
{
        return !pci_device_is_bridge(d) && !(d->have_ids && (d->class >> 8) == 0x0806);
}

static int scope_build(struct audit_ctx *c, const struct audit_scope *scope, char **ret_detail)
{
        const struct topology *t = c->t;
        size_t n = 0;

        c->in_scope = calloc(t->n_devices ? t->n_devices : 1, sizeof(bool));
        c->assigned = calloc(t->n_devices ? t->n_devices : 1, sizeof(bool));
        if (!c->in_scope || !c->assigned)
                return -ENOMEM;
        c->whole_host = !scope;
        if (c->whole_host) {
                for (size_t i = 0; i < t->n_devices; i++) {
                        c->in_scope[i] = audit_device_is_candidate(&t->devices[i]);
                        /* On the host as it is, the devices set aside for guests are those
                         * a vfio driver holds. */
                        c->assigned[i] = c->in_scope[i] && driver_is_vfio(t->devices[i].driver);
                }
        } else
                for (size_t k = 0; k < scope->n_devices; k++) {
                        const struct pci_device *d = topology_find_device(t, &scope->devices[k]);
                        char buf[PCI_ADDR_STRLEN];

                        if (!d) {
                                if (ret_detail &&
                                    asprintf(ret_detail, "%s: no such PCI device",
                                             pci_addr_format(&scope->devices[k], buf)) < 0)
                                        *ret_detail = NULL;
                                return -ENODEV;
                        }
                        size_t i = (size_t)(d - t->devices);
                        c->in_scope[i] = !scope->as_host || audit_device_is_candidate(d);
                        c->assigned[i] =
                                c->in_scope[i] && (!scope->as_host || driver_is_vfio(d->driver));
                }
        for (size_t i = 0; i < t->n_devices; i++) {
                c->n_in_scope += c->in_scope[i];
                c->n_assigned += c->assigned[i];
                if (c->in_scope[i] && strv_push(&c->report->devices, &n, t->devices[i].name) < 0)
                        return -ENOMEM;
        }
        c->report->n_devices = n;
        return 0;
}

int audit_run(const struct root *root, const struct topology *t, const struct audit_scope *scope,
              struct audit_report **ret, char **ret_detail)
{
        return audit_run_with_probe(root, t, scope, NULL, ret, ret_detail);
}

int audit_run_with_probe(const struct root *root, const struct topology *t,
                         const struct audit_scope *scope, const struct audit_probe *probe,
                         struct audit_report **ret, char **ret_detail)
{
        _cleanup_(audit_report_freep) struct audit_report *r = calloc(1, sizeof(*r));
        struct audit_ctx c = {.root = root, .t = t, .report = r};
        int k;

        if (!r)
                return -ENOMEM;
        k = scope_build(&c, scope, ret_detail);
        if (k < 0)
                goto out;
        r->whole_host = c.whole_host;
        k = audit_probe_validate(&c, probe, ret_detail);
        if (k < 0)
                goto out;
        STRV_FOREACH (w, t->warnings)
                if ((k = strv_push(&r->warnings, &r->n_warnings, *w)) < 0)
                        goto out;
        k = audit_checks_host(&c);
        if (k < 0)
                goto out;
        k = audit_checks_devices(&c);
        if (k < 0)
                goto out;
        k = audit_checks_probe(&c, probe);
        if (k < 0)
                goto out;

        if (r->n_findings > 1)
                qsort(r->findings, r->n_findings, sizeof(*r->findings), finding_compare);
        for (size_t i = 0; i < _AUDIT_CHECK_MAX; i++)
                r->status[i] = r->skip_reason[i] ? AUDIT_STATUS_SKIP : AUDIT_STATUS_PASS;
        for (size_t i = 0; i < r->n_findings; i++) {
                enum audit_check_id id = r->findings[i].check;
                r->status[id] = AUDIT_STATUS_FAIL;
                /* A check that found something was not skipped after all. */
                r->skip_reason[id] = (free(r->skip_reason[id]), NULL);
        }
        *ret = TAKE_PTR(r);
        k = 0;
out:
        free(c.in_scope);
        free(c.assigned);
        return k;
}

static int addr_compare(const void *a, const void *b)
{
        return pci_addr_compare(a, b);
}

static int scope_append(struct pci_addr **l, size_t *n, const char *word, const char *where,
                        char **ret_detail)
{
        struct pci_addr a, *nl;

        if (pci_addr_parse(word, &a) < 0) {
                if (ret_detail &&
                    asprintf(ret_detail, "%s'%.64s' is not a PCI address", where, word) < 0)
                        *ret_detail = NULL;
                return -EBADMSG;
        }
        for (size_t i = 0; i < *n; i++)
                if (pci_addr_equal(&(*l)[i], &a))
                        return 0;
        nl = realloc(*l, (*n + 1) * sizeof(*nl));
        if (!nl)
                return -ENOMEM;
        *l = nl;
        nl[(*n)++] = a;
        return 0;
}

int audit_scope_parse_config(const char *text, struct pci_addr **l, size_t *n, char **ret_detail)
{
        _cleanup_free_ struct persist_entry *e = NULL;
        size_t n_e = 0;
        int r;

        /* assign.conf's own reader: an address a line, maybe with the VFIO driver
         * --driver recorded for it (which does not change the isolation audited). */
        r = persist_parse(text, &e, &n_e, ret_detail);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n_e; i++) {
                char buf[PCI_ADDR_STRLEN];
                r = scope_append(l, n, pci_addr_format(&e[i].addr, buf), "", ret_detail);
                if (r < 0)
                        return r;
        }
        if (*n > 1)
                qsort(*l, *n, sizeof(**l), addr_compare);
        return 0;
}

int audit_scope_parse_list(const char *list, struct pci_addr **l, size_t *n, char **ret_detail)
{
        _cleanup_free_ char *copy = strdup(list);
        char *save = NULL;
        int r;

        if (!copy)
                return -ENOMEM;
        for (char *w = strtok_r(copy, ", \t", &save); w; w = strtok_r(NULL, ", \t", &save)) {
                r = scope_append(l, n, w, "", ret_detail);
                if (r < 0)
                        return r;
        }
        if (*n > 1)
                qsort(*l, *n, sizeof(**l), addr_compare);
        return 0;
}
