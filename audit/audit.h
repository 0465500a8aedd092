/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The DMA-isolation audit: a fixed set of checks, each with a stable id, run over one
 * topology snapshot (and a few more files below the same root) for the whole host or for
 * the devices a configuration will assign. The result is a list of findings, each with a
 * severity, the evidence it rests on and a hint for fixing it. Formatting (JSON, JUnit,
 * SARIF) is separate from judging; docs/audit.md is the reference. */

#include <errno.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "pci-addr.h"
#include "root.h"
#include "topology.h"

enum audit_severity {
        AUDIT_SEVERITY_INFO,
        AUDIT_SEVERITY_LOW,
        AUDIT_SEVERITY_MEDIUM,
        AUDIT_SEVERITY_HIGH,
        AUDIT_SEVERITY_CRITICAL,
        _AUDIT_SEVERITY_MAX,
        _AUDIT_SEVERITY_INVALID = -EINVAL,
};

const char *audit_severity_to_string(enum audit_severity s);
enum audit_severity audit_severity_from_string(const char *s);

/* The order here is the order of the report: host-wide checks first. */
enum audit_check_id {
        AUDIT_CHECK_IOMMU_PRESENT,
        AUDIT_CHECK_IOMMU_TRANSLATING,
        AUDIT_CHECK_GROUP_DEFAULT_DOMAIN,
        AUDIT_CHECK_IRQ_REMAPPING,
        AUDIT_CHECK_IRQ_POSTED,
        AUDIT_CHECK_VFIO_NOIOMMU,
        AUDIT_CHECK_VFIO_UNSAFE_INTERRUPTS,
        AUDIT_CHECK_CMDLINE_HAZARD,
        AUDIT_CHECK_AUDIT_COVERAGE,
        AUDIT_CHECK_GROUP_MISSING,
        AUDIT_CHECK_GROUP_VIABLE,
        AUDIT_CHECK_GROUP_SHARED,
        AUDIT_CHECK_ACS_PATH,
        AUDIT_CHECK_ACS_MULTIFUNCTION,
        AUDIT_CHECK_PCI_BEHIND_BRIDGE,
        AUDIT_CHECK_PORT_EXTERNAL,
        AUDIT_CHECK_ATS_ENABLED,
        AUDIT_CHECK_RESET_CAPABILITY,
        AUDIT_CHECK_CARD_SPLIT,
        AUDIT_CHECK_DISPLAY_FRAMEBUFFER,
        AUDIT_CHECK_DMA_FAULT_PROBE, /* runs only when asked: it opens devices and DMAs */
        _AUDIT_CHECK_MAX,
        _AUDIT_CHECK_INVALID = -EINVAL,
};

struct audit_check_info {
        const char *id;               /* "acs.path": stable, never reused */
        const char *title;            /* one line */
        const char *description;      /* what it reads and why it matters */
        enum audit_severity severity; /* the highest severity it can report */
};

/* NULL for an out-of-range id. */
const struct audit_check_info *audit_check_info(enum audit_check_id id);
enum audit_check_id audit_check_from_string(const char *id);

enum audit_status {
        AUDIT_STATUS_PASS, /* ran and found nothing */
        AUDIT_STATUS_FAIL, /* reported findings, of any severity */
        AUDIT_STATUS_SKIP, /* does not apply here (the reason says why) */
        _AUDIT_STATUS_MAX,
        _AUDIT_STATUS_INVALID = -EINVAL,
};

const char *audit_status_to_string(enum audit_status s);

struct audit_evidence {
        char *path;  /* root-relative file the value was read from, e.g. "proc/cmdline" */
        char *value; /* what was read, or what its absence means */
};

struct audit_finding {
        enum audit_check_id check;
        enum audit_severity severity;
        char *subject; /* a PCI address, "group N", "host", a command-line word, ... */
        char *detail;  /* acs.path: the ACS bit ("RR"); NULL for other checks */
        char *message;
        char *fix;
        struct audit_evidence *evidence;
        size_t n_evidence;
        char **devices; /* the audited devices it concerns, NULL-terminated, or NULL */
};

struct audit_report {
        struct audit_finding *findings; /* by severity (highest first), check, subject */
        size_t n_findings;
        enum audit_status status[_AUDIT_CHECK_MAX];
        char *skip_reason[_AUDIT_CHECK_MAX];
        bool whole_host;
        char **devices; /* the audited devices, canonical addresses, NULL-terminated */
        size_t n_devices;
        char **warnings; /* the snapshot's warnings: what could not be read */
        size_t n_warnings;
};

/* What to audit: the devices a configuration will assign (none is allowed: an empty
 * plan). audit_run() takes NULL for the whole host. */
struct audit_scope {
        const struct pci_addr *devices;
        size_t n_devices;
        /* The listed devices as the host has them, a part of the whole-host audit: those
         * that are no candidates (audit_device_is_candidate()) are left out, and only
         * those a vfio driver holds count as assigned. */
        bool as_host;
};

/* Runs every check. -ENODEV when a device of the scope does not exist (*ret_detail names
 * it); -ENOMEM. Files the snapshot lacks make findings or skips, never a failure. */
int audit_run(const struct root *root, const struct topology *t, const struct audit_scope *scope,
              struct audit_report **ret, char **ret_detail);

struct journal;

/* The DMA fault probe (dma.fault-probe): vfio/probe.h's stray write, on the live host. */
struct audit_probe {
        /* The devices to probe, which must be audited devices the probe can drive; none:
         * every audited device it can drive. */
        const struct pci_addr *devices;
        size_t n_devices;
        /* A device with no driver is bound for the probe through this journal, to the
         * VFIO driver a bind would choose (a variant where modules.alias names one), and
         * restored afterwards; NULL: such devices are not probed. */
        struct journal *journal;
};

/* audit_run(), and with probe the DMA fault probe on the running system below root:
 * devices already on a vfio driver are probed as they are, devices without a driver are
 * bound for the probe and restored, devices on any other driver are not taken from it.
 * Without probe the check is skipped. Also -ENODEV / -EINVAL / -EOPNOTSUPP when a named
 * probe device does not exist / is not audited / cannot be driven by the probe. */
int audit_run_with_probe(const struct root *root, const struct topology *t,
                         const struct audit_scope *scope, const struct audit_probe *probe,
                         struct audit_report **ret, char **ret_detail);

/* Accepts NULL; returns NULL. */
struct audit_report *audit_report_free(struct audit_report *r);

static inline void audit_report_freep(struct audit_report **r)
{
        audit_report_free(*r);
}

/* Findings at or above a severity. */
size_t audit_report_count(const struct audit_report *r, enum audit_severity at_least);

/* A list of devices to assign, in the /etc/vfiod/assign.conf form: one PCI address per
 * line, '#' starts a comment, blank lines ignored. Appends to *l (sorted, duplicates
 * dropped). -EBADMSG names the first bad line in *ret_detail. */
int audit_scope_parse_config(const char *text, struct pci_addr **l, size_t *n, char **ret_detail);

/* The same for "ADDR,ADDR,...", as --devices takes it. */
int audit_scope_parse_list(const char *list, struct pci_addr **l, size_t *n, char **ret_detail);

/* Where the audited tree came from, for the reports. */
struct audit_source {
        const char *root;     /* the root as given ("/" for the live host) */
        bool live;            /* the running system */
        const char *snapshot; /* the snapshot archive or directory, or NULL */
        const char *snapshot_created;
        const char *snapshot_kernel;
        const char *tool_version;
};

/* vfiod.audit/1 (docs/audit.md). NULL without memory. */
json_object *audit_report_to_json(const struct audit_report *r, const struct audit_source *src,
                                  enum audit_severity fail_on);

/* SARIF 2.1.0: one rule per check, one result per finding. NULL without memory. */
json_object *audit_report_to_sarif(const struct audit_report *r, const struct audit_source *src,
                                   enum audit_severity fail_on);

/* JUnit XML: a test case per finding and per check without findings; findings at or above
 * fail_on are failures. A NUL-terminated document in *ret. */
int audit_report_to_junit(const struct audit_report *r, const struct audit_source *src,
                          enum audit_severity fail_on, char **ret);
