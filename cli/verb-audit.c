/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfioctl audit: the DMA-isolation audit, on the live host, a sysfs tree or a snapshot,
 * with the DMA fault probe on the live host when asked (--probe). Exit status: 0 when
 * nothing is at or above --fail-on, 1 when something is, 2 when the audit could not run
 * (bad usage, an unreadable or incomplete snapshot, no PCI tree, a probe on a snapshot). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "detail.h"
#include "cli.h"
#include "journal.h"
#include "snapshot.h"
#include "strv.h"

#define AUDIT_EXIT_FINDINGS 1
#define AUDIT_EXIT_ERROR    2

static const char *const severity_labels[_AUDIT_SEVERITY_MAX] = {"INFO", "LOW", "MEDIUM", "HIGH",
                                                                 "CRITICAL"};

/* A user-named file (not below the root): the plan. An empty file is an empty plan. */
static int read_text_file(const char *path, char **ret)
{
        FILE *f = fopen(path, "re");
        char *s = NULL;
        size_t n = 0;
        ssize_t k;
        int r = 0;

        if (!f)
                return -errno;
        k = getdelim(&s, &n, '\0', f);
        if (k < 0 && ferror(f))
                r = negative_errno();
        fclose(f);
        if (r == 0 && k < 0) {
                free(s);
                s = strdup("");
                if (!s)
                        r = -ENOMEM;
        }
        if (r < 0) {
                free(s);
                return r;
        }
        *ret = s;
        return 0;
}

static int load_scope(struct cli *c, struct pci_addr **ret, size_t *ret_n, bool *ret_listed)
{
        _cleanup_free_ struct pci_addr *l = NULL;
        _cleanup_free_ char *detail = NULL;
        size_t n = 0;
        int r;

        *ret_listed = false;
        if (cli_has(c, OPT_DEVICES)) {
                r = audit_scope_parse_list(c->values[OPT_DEVICES], &l, &n, &detail);
                if (r < 0) {
                        char q[300];
                        fprintf(stderr,
                                "vfioctl: audit: --devices: %s (expected DDDD:BB:DD.F or "
                                "BB:DD.F in hexadecimal, separated by commas)\n",
                                detail ? cli_quote(detail, q) : strerror(-r));
                        return AUDIT_EXIT_ERROR;
                }
                *ret_listed = true;
        }
        if (cli_has(c, OPT_CONFIG)) {
                const char *path = c->values[OPT_CONFIG];
                _cleanup_free_ char *text = NULL;

                r = read_text_file(path, &text);
                if (r < 0) {
                        fprintf(stderr, "vfioctl: audit: cannot read %s: %s\n", path, strerror(-r));
                        return AUDIT_EXIT_ERROR;
                }
                r = audit_scope_parse_config(text, &l, &n, &detail);
                if (r < 0) {
                        char q[300];
                        fprintf(stderr, "vfioctl: audit: %s: %s\n", path,
                                detail ? cli_quote(detail, q) : strerror(-r));
                        return AUDIT_EXIT_ERROR;
                }
                *ret_listed = true;
        }
        *ret = TAKE_PTR(l);
        *ret_n = n;
        return 0;
}

/* The root to audit: --root may name a snapshot archive or directory, which is extracted
 * and checked against its manifest first. */
static int open_root(struct cli *c, struct snapshot **ret_snapshot)
{
        _cleanup_free_ char *detail = NULL;
        const char *path = c->root_path;
        int r;

        *ret_snapshot = NULL;
        if (path) {
                r = snapshot_open(path, NULL, ret_snapshot, &detail);
                if (r == 0)
                        path = (*ret_snapshot)->dir;
                else if (r != -ENOMSG) {
                        fprintf(stderr, "vfioctl: audit: snapshot %s: %s%s\n", path,
                                detail_or_strerror(detail, r),
                                r == -EUCLEAN || r == -EBADMSG ? "; take the snapshot again" : "");
                        return AUDIT_EXIT_ERROR;
                }
        }
        r = root_open(path, &c->root);
        if (r < 0) {
                fprintf(stderr, "vfioctl: audit: cannot open root directory %s: %s\n",
                        path ? path : "/", strerror(-r));
                return AUDIT_EXIT_ERROR;
        }
        return 0;
}

static void print_host_line(const struct topology *t)
{
        const struct host_facts *h = &t->host;

        printf("IOMMU: %s", iommu_mode_to_string(h->mode));
        if (t->n_units > 0) {
                printf(", %zu unit%s (", t->n_units, t->n_units == 1 ? "" : "s");
                for (size_t i = 0; i < t->n_units; i++)
                        printf("%s%s %s", i ? ", " : "", t->units[i].name,
                               iommu_kind_to_string(t->units[i].kind));
                printf(")");
        }
        printf("; interrupt remapping: %s\n",
               h->ir_enabled == TRI_YES ? "enabled"
               : h->ir_enabled == TRI_NO
                       ? (h->ir_supported == TRI_YES ? "supported, not enabled" : "not available")
                       : "unknown");
}

static void print_text(const struct audit_report *r, const struct audit_source *src,
                       const struct topology *t, enum audit_severity fail_on)
{
        size_t per[_AUDIT_SEVERITY_MAX] = {0}, n_pass = 0, n_fail = 0, n_skip = 0, failing;

        printf("DMA-isolation audit of %s%s%s: ", src->snapshot ? "snapshot " : "",
               src->snapshot ? src->snapshot : src->root, src->live ? " (this host)" : "");
        if (r->whole_host)
                printf("the whole host, %zu assignable device%s\n", r->n_devices,
                       r->n_devices == 1 ? "" : "s");
        else {
                printf("%zu device%s to assign%s", r->n_devices, r->n_devices == 1 ? "" : "s",
                       r->n_devices ? ":" : "");
                STRV_FOREACH (d, r->devices)
                        printf(" %s", *d);
                printf("\n");
        }
        if (src->snapshot_created)
                printf("Snapshot taken %s%s%s\n", src->snapshot_created,
                       src->snapshot_kernel ? " on " : "",
                       src->snapshot_kernel ? src->snapshot_kernel : "");
        print_host_line(t);

        for (size_t i = 0; i < r->n_findings; i++) {
                const struct audit_finding *f = &r->findings[i];

                per[f->severity]++;
                printf("\n%-9s %s %s%s%s\n", severity_labels[f->severity],
                       audit_check_info(f->check)->id, f->subject ? f->subject : "",
                       f->detail ? " " : "", f->detail ? f->detail : "");
                printf("          %s\n", f->message);
                if (f->devices) {
                        printf("          devices: ");
                        for (char **d = f->devices; *d; d++)
                                printf("%s%s", d == f->devices ? "" : " ", *d);
                        printf("\n");
                }
                for (size_t k = 0; k < f->n_evidence; k++)
                        printf("          evidence: %s: %s\n", f->evidence[k].path,
                               f->evidence[k].value);
                if (f->fix)
                        printf("          fix: %s\n", f->fix);
        }

        for (int i = 0; i < _AUDIT_CHECK_MAX; i++) {
                n_pass += r->status[i] == AUDIT_STATUS_PASS;
                n_fail += r->status[i] == AUDIT_STATUS_FAIL;
                n_skip += r->status[i] == AUDIT_STATUS_SKIP;
        }
        printf("\nChecks: %zu passed, %zu with findings, %zu not applicable\n", n_pass, n_fail,
               n_skip);
        for (int i = 0; i < _AUDIT_CHECK_MAX; i++)
                if (r->status[i] == AUDIT_STATUS_SKIP)
                        printf("  %-22s skipped: %s\n", audit_check_info(i)->id, r->skip_reason[i]);
        failing = audit_report_count(r, fail_on);
        printf("Verdict: %s: %zu finding%s at or above %s", failing ? "FAIL" : "PASS", failing,
               failing == 1 ? "" : "s", audit_severity_to_string(fail_on));
        if (r->n_findings > 0) {
                const char *sep = " (";
                for (int s = _AUDIT_SEVERITY_MAX - 1; s >= 0; s--)
                        if (per[s]) {
                                printf("%s%zu %s", sep, per[s], audit_severity_to_string(s));
                                sep = ", ";
                        }
                printf(" in all)");
        }
        printf("\n");
}

int verb_audit(struct cli *c)
{
        _cleanup_(snapshot_freep) struct snapshot *snap = NULL;
        _cleanup_(audit_report_freep) struct audit_report *report = NULL;
        _cleanup_free_ struct pci_addr *devices = NULL, *probe_devices = NULL;
        _cleanup_(journal_freep) struct journal *journal = NULL;
        _cleanup_free_ char *detail = NULL;
        struct audit_probe probe = {0};
        enum audit_severity fail_on = AUDIT_SEVERITY_MEDIUM;
        struct audit_source src = {.tool_version = VFIOD_VERSION};
        struct audit_scope scope = {0};
        struct topology *t;
        size_t n_devices = 0;
        bool listed;
        int r;

        if ((c->json + cli_has(c, OPT_JUNIT) + cli_has(c, OPT_SARIF)) > 1)
                return usage_error("audit: choose one of --json, --junit and --sarif");
        if (cli_has(c, OPT_FAIL_ON)) {
                char q[300];
                fail_on = audit_severity_from_string(c->values[OPT_FAIL_ON]);
                if (fail_on < 0)
                        return usage_error("audit: --fail-on '%s': expected info, low, medium, "
                                           "high or critical",
                                           cli_quote(c->values[OPT_FAIL_ON], q));
        }
        if (c->n_args > 0 && !cli_has(c, OPT_PROBE))
                return usage_error("audit: a DEVICE names what --probe probes; without --probe "
                                   "use --devices");
        if (cli_has(c, OPT_PROBE) &&
            (r = cli_parse_addresses(c, "audit --probe", &probe_devices, &probe.n_devices)))
                return r;
        probe.devices = probe_devices;
        r = load_scope(c, &devices, &n_devices, &listed);
        if (r)
                return r;
        scope.devices = devices;
        scope.n_devices = n_devices;

        r = open_root(c, &snap);
        if (r)
                return r;
        if (cli_topology_unnamed(c, &t))
                return AUDIT_EXIT_ERROR;
        if (cli_has(c, OPT_PROBE)) {
                /* The probe DMAs on this machine: a snapshot or another tree has no
                 * devices to drive, and a silently skipped probe would vouch for nothing. */
                if (!c->root->is_host) {
                        fputs("vfioctl: audit: --probe runs DMA on this host's devices; it "
                              "cannot run on a snapshot or a --root tree\n",
                              stderr);
                        return AUDIT_EXIT_ERROR;
                }
                r = journal_open(c->root, c->state_dir, &journal);
                if (r < 0) {
                        fprintf(stderr,
                                "vfioctl: audit: --probe: cannot open the journal in %s/journal "
                                "(devices without a driver are bound through it): %s%s\n",
                                c->state_dir ? c->state_dir : "/" VFIOD_STATE_DIR_DEFAULT,
                                strerror(-r), r == -EACCES || r == -EPERM ? " (run as root)" : "");
                        return AUDIT_EXIT_ERROR;
                }
                probe.journal = journal;
        }

        r = audit_run_with_probe(c->root, t, listed ? &scope : NULL,
                                 cli_has(c, OPT_PROBE) ? &probe : NULL, &report, &detail);
        if (r == -ENODEV || r == -EINVAL || r == -EOPNOTSUPP) {
                fprintf(stderr, "vfioctl: audit: %s\n", detail_or_strerror(detail, r));
                return AUDIT_EXIT_ERROR;
        }
        if (r < 0) {
                fprintf(stderr, "vfioctl: audit: %s\n", strerror(-r));
                return AUDIT_EXIT_ERROR;
        }

        src.root = c->root_path ? c->root_path : "/";
        src.live = c->root->is_host;
        if (snap) {
                src.snapshot = snap->path;
                src.snapshot_created = snap->created;
                src.snapshot_kernel = snap->kernel;
        }
        if (c->json || cli_has(c, OPT_SARIF)) {
                json_object *o = c->json ? audit_report_to_json(report, &src, fail_on)
                                         : audit_report_to_sarif(report, &src, fail_on);
                if (print_json(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED))
                        return AUDIT_EXIT_ERROR;
                putchar('\n');
        } else if (cli_has(c, OPT_JUNIT)) {
                _cleanup_free_ char *xml = NULL;
                if (audit_report_to_junit(report, &src, fail_on, &xml) < 0) {
                        fputs("vfioctl: out of memory\n", stderr);
                        return AUDIT_EXIT_ERROR;
                }
                fputs(xml, stdout);
        } else
                print_text(report, &src, t, fail_on);
        return audit_report_count(report, fail_on) > 0 ? AUDIT_EXIT_FINDINGS : 0;
}
