/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The audit's verdicts: the key findings of each real-machine fixture (docs/audit.md
 * explains them), assignment plans, and a made-up host with every hazard the real
 * machines lack. Run as: test-audit MKFIXTURE FIXTURE_DIR */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audit.h"
#include "config-space.h"
#include "helpers.h"
#include "journal.h"
#include "macro.h"

/* Audits a tree; plan == NULL is the whole host. */
static struct audit_report *audit_tree(const char *path, const char *plan)
{
        _cleanup_(root_freep) struct root *root = NULL;
        _cleanup_(topology_freep) struct topology *t = NULL;
        _cleanup_free_ struct pci_addr *l = NULL;
        _cleanup_free_ char *detail = NULL;
        struct audit_scope scope = {0};
        struct audit_report *r = NULL;
        size_t n = 0;

        assert_int_equal(root_open(path, &root), 0);
        assert_int_equal(topology_scan(root, TOPOLOGY_SCAN_NO_NAMES, &t), 0);
        if (plan) {
                assert_int_equal(audit_scope_parse_list(plan, &l, &n, &detail), 0);
                scope.devices = l;
                scope.n_devices = n;
        }
        if (audit_run(root, t, plan ? &scope : NULL, &r, &detail) < 0)
                fail_msg("audit of %s failed: %s", path, strna(detail));
        return r;
}

static void dump(const struct audit_report *r)
{
        for (size_t i = 0; i < r->n_findings; i++) {
                const struct audit_finding *f = &r->findings[i];
                print_message("  %s %s %s %s\n", audit_severity_to_string(f->severity),
                              audit_check_info(f->check)->id, strna(f->subject), strna(f->detail));
        }
}

/* subject and detail NULL match anything. */
static const struct audit_finding *find(const struct audit_report *r, const char *id,
                                        const char *subject, const char *detail)
{
        for (size_t i = 0; i < r->n_findings; i++) {
                const struct audit_finding *f = &r->findings[i];
                if (strcmp(audit_check_info(f->check)->id, id) != 0)
                        continue;
                if (subject && (!f->subject || strcmp(f->subject, subject) != 0))
                        continue;
                if (detail && (!f->detail || strcmp(f->detail, detail) != 0))
                        continue;
                return f;
        }
        return NULL;
}

static void expect(const struct audit_report *r, const char *severity, const char *id,
                   const char *subject, const char *detail)
{
        const struct audit_finding *f = find(r, id, subject, detail);

        if (!f) {
                dump(r);
                fail_msg("expected %s %s %s %s", severity, id, strna(subject), strna(detail));
        }
        if (strcmp(audit_severity_to_string(f->severity), severity) != 0) {
                dump(r);
                fail_msg("%s %s %s: severity %s, expected %s", id, strna(subject), strna(detail),
                         audit_severity_to_string(f->severity), severity);
        }
}

static void expect_none(const struct audit_report *r, const char *id, const char *subject)
{
        if (find(r, id, subject, NULL)) {
                dump(r);
                fail_msg("unexpected %s %s", id, strna(subject));
        }
}

static size_t count(const struct audit_report *r, const char *id)
{
        size_t n = 0;

        for (size_t i = 0; i < r->n_findings; i++)
                n += strcmp(audit_check_info(r->findings[i].check)->id, id) == 0;
        return n;
}

static bool lists_device(const struct audit_finding *f, const char *address)
{
        for (char **d = f->devices; d && *d; d++)
                if (strcmp(*d, address) == 0)
                        return true;
        return false;
}

static enum audit_status status_of(const struct audit_report *r, const char *id)
{
        return r->status[audit_check_from_string(id)];
}

static void check_ids_and_severities_read_back(void **state)
{
        for (int i = 0; i < _AUDIT_CHECK_MAX; i++) {
                const struct audit_check_info *ci = audit_check_info(i);
                assert_non_null(ci);
                assert_int_equal(audit_check_from_string(ci->id), i);
                for (int k = 0; k < i; k++)
                        assert_string_not_equal(audit_check_info(k)->id, ci->id);
        }
        assert_null(audit_check_info(_AUDIT_CHECK_MAX));
        assert_int_equal(audit_check_from_string("acs.nonsense"), _AUDIT_CHECK_INVALID);
        for (int s = 0; s < _AUDIT_SEVERITY_MAX; s++)
                assert_int_equal(audit_severity_from_string(audit_severity_to_string(s)), s);
        assert_int_equal(audit_severity_from_string("Medium"), _AUDIT_SEVERITY_INVALID);
        assert_int_equal(audit_severity_from_string(NULL), _AUDIT_SEVERITY_INVALID);
        assert_true(AUDIT_SEVERITY_INFO < AUDIT_SEVERITY_LOW &&
                    AUDIT_SEVERITY_LOW < AUDIT_SEVERITY_MEDIUM &&
                    AUDIT_SEVERITY_MEDIUM < AUDIT_SEVERITY_HIGH &&
                    AUDIT_SEVERITY_HIGH < AUDIT_SEVERITY_CRITICAL);
}

static void assignment_plans_read_like_assign_conf(void **state)
{
        _cleanup_free_ struct pci_addr *l = NULL;
        _cleanup_free_ char *detail = NULL;
        char buf[PCI_ADDR_STRLEN];
        size_t n = 0;

        assert_int_equal(audit_scope_parse_config("# boot-time assignments\n"
                                                  "\n"
                                                  "0000:02:00.0   # the NIC\r\n"
                                                  "  01:00.1\n"
                                                  "0000:01:00.0 vfio-pci\n"
                                                  "0000:02:00.0\n",
                                                  &l, &n, &detail),
                         0);
        assert_int_equal(n, 3);
        assert_string_equal(pci_addr_format(&l[0], buf), "0000:01:00.0");
        assert_string_equal(pci_addr_format(&l[1], buf), "0000:01:00.1");
        assert_string_equal(pci_addr_format(&l[2], buf), "0000:02:00.0");

        /* --devices adds to the same list. */
        assert_int_equal(audit_scope_parse_list("0000:03:00.0,01:00.0", &l, &n, &detail), 0);
        assert_int_equal(n, 4);

        assert_int_equal(audit_scope_parse_config("01:00.0\n\n01:00.0 02:00.0\n", &l, &n, &detail),
                         -EBADMSG);
        assert_non_null(detail);
        assert_non_null(strstr(detail, "line 3"));
        free(detail);
        detail = NULL;
        assert_int_equal(audit_scope_parse_list("01:00.0,eth0", &l, &n, &detail), -EBADMSG);
        assert_non_null(strstr(detail, "'eth0'"));
}

/* Consumer desktop: the GPU on the CPU's x16 port, which has no ACS. */
static void desktop_gpu_shares_a_cpu_port_without_acs(void **state)
{
        char root[PATH_MAX];
        struct audit_report *r;
        const struct audit_finding *f;

        fixture_tree("machines/desktop-z370-gt1030.txt", "z370", root);
        r = audit_tree(root, NULL);
        expect(r, "high", "acs.path", "0000:00:01.0", "RR");
        expect(r, "medium", "acs.path", "0000:00:01.0", "SV");
        expect(r, "medium", "acs.path", "0000:00:01.0", "CR");
        expect(r, "medium", "acs.path", "0000:00:01.0", "UF");
        f = find(r, "acs.path", "0000:00:01.0", "RR");
        assert_true(lists_device(f, "0000:01:00.0") && lists_device(f, "0000:01:00.1"));
        expect(r, "medium", "group.shared", "group 2", NULL);
        expect(r, "medium", "acs.multifunction", "0000:01:00.0", NULL);
        expect(r, "medium", "acs.multifunction", "0000:01:00.1", NULL);
        /* The I219 is alone in its group next to grouped PCH functions: a quirk. */
        expect(r, "low", "acs.multifunction", "0000:00:1f.6", NULL);
        expect(r, "low", "reset.capability", "0000:01:00.0", NULL);
        expect(r, "info", "irq.posted", "host", NULL);
        /* The PCH ports have ACS; the host is otherwise sound. */
        expect_none(r, "acs.path", "0000:00:1c.0");
        expect_none(r, "acs.path", "0000:00:1d.0");
        expect_none(r, "iommu.present", NULL);
        expect_none(r, "irq.remapping", NULL);
        expect_none(r, "cmdline.hazard", NULL);
        expect_none(r, "iommu.translating", NULL);
        assert_int_equal(status_of(r, "group.viable"), AUDIT_STATUS_SKIP);
        assert_int_equal(audit_report_count(r, AUDIT_SEVERITY_CRITICAL), 0);
        audit_report_free(r);

        /* Assigning the GPU alone: its audio function stays on the host's driver. */
        r = audit_tree(root, "01:00.0");
        expect(r, "medium", "group.viable", "group 2", NULL);
        assert_non_null(strstr(find(r, "group.viable", NULL, NULL)->message, "0000:01:00.1"));
        assert_int_equal(r->n_devices, 1);
        expect_none(r, "acs.multifunction", "0000:01:00.1");
        audit_report_free(r);
        /* Both functions: the group can be opened. */
        r = audit_tree(root, "01:00.0,01:00.1");
        expect_none(r, "group.viable", NULL);
        assert_int_equal(status_of(r, "group.viable"), AUDIT_STATUS_PASS);
        audit_report_free(r);
}

/* Small server: NVMe on the CPU port without ACS, I350 ports and i210 on vfio-pci. */
static void server_nvme_shares_its_port_and_the_assigned_nics_are_isolated(void **state)
{
        char root[PATH_MAX];
        struct audit_report *r;

        fixture_tree("machines/server-c236-i350.txt", "c236", root);
        r = audit_tree(root, NULL);
        expect(r, "high", "acs.path", "0000:00:01.0", "RR");
        assert_true(lists_device(find(r, "acs.path", "0000:00:01.0", "RR"), "0000:01:00.0"));
        expect(r, "medium", "group.shared", "group 10", NULL); /* the BMC's two functions */
        /* The devices on vfio-pci sit alone in their groups. */
        assert_int_equal(status_of(r, "group.viable"), AUDIT_STATUS_PASS);
        /* The I350 enables what it implements (RR, CR): the kernel's reading. */
        expect_none(r, "acs.multifunction", "0000:05:00.0");
        expect_none(r, "acs.multifunction", "0000:05:00.1");
        expect_none(r, "group.shared", "group 13");
        expect_none(r, "reset.capability", "0000:05:00.0");
        expect_none(r, "irq.remapping", NULL);
        expect_none(r, "cmdline.hazard", NULL);
        audit_report_free(r);

        /* A plan to assign the boot NVMe: the host is using it. */
        r = audit_tree(root, "0000:01:00.0");
        expect(r, "high", "group.viable", "group 1", NULL);
        assert_non_null(strstr(find(r, "group.viable", NULL, NULL)->message, "mounted"));
        expect(r, "high", "acs.path", "0000:00:01.0", "RR");
        audit_report_free(r);
}

/* Workstation: a PLX switch with ACS, 82576 VFs each in a group of their own. */
static void workstation_switch_with_acs_and_vfs_isolates_everything(void **state)
{
        char root[PATH_MAX];
        struct audit_report *r;

        fixture_tree("machines/workstation-rpl-82576-sriov.txt", "rpl", root);
        r = audit_tree(root, NULL);
        assert_int_equal(count(r, "acs.path"), 0);
        assert_int_equal(count(r, "pci.behind-bridge"), 0);
        assert_int_equal(audit_report_count(r, AUDIT_SEVERITY_HIGH), 0);
        expect(r, "medium", "group.shared", "group 19", NULL); /* the RTX card's functions */
        expect(r, "medium", "acs.multifunction", "0000:01:00.0", NULL);
        expect_none(r, "group.shared", "group 37");          /* the first VF */
        expect_none(r, "acs.multifunction", "0000:07:00.0"); /* the PF: RR+CR */
        expect(r, "medium", "reset.capability", "0000:07:10.0", NULL);
        assert_int_equal(status_of(r, "group.viable"), AUDIT_STATUS_PASS); /* 00:02.0 */
        expect(r, "info", "irq.posted", "host", NULL);
        audit_report_free(r);

        /* Assigning one VF: nothing about the VF itself, only the host's information. */
        r = audit_tree(root, "0000:07:10.0,0000:07:10.2");
        for (size_t i = 0; i < r->n_findings; i++)
                if (r->findings[i].check != AUDIT_CHECK_IRQ_POSTED &&
                    r->findings[i].check != AUDIT_CHECK_RESET_CAPABILITY) {
                        dump(r);
                        fail_msg("unexpected finding for two VFs");
                }
        audit_report_free(r);
}

/* AMD desktop: iommu=pt, a chipset switch without ACS, functions without a group. */
static void amd_desktop_is_in_passthrough_behind_a_switch_without_acs(void **state)
{
        char root[PATH_MAX];
        struct audit_report *r;

        fixture_tree("machines/amd-b450m-raven.txt", "b450", root);
        r = audit_tree(root, NULL);
        expect(r, "medium", "iommu.translating", "host", NULL);
        expect(r, "medium", "cmdline.hazard", "iommu=pt", NULL);
        expect(r, "high", "acs.path", "0000:16:01.0", "RR");
        assert_true(lists_device(find(r, "acs.path", "0000:16:01.0", "RR"), "0000:18:00.0"));
        expect(r, "high", "acs.path", "0000:00:08.2", "RR");
        expect(r, "medium", "group.shared", "group 9", NULL);
        expect(r, "medium", "group.shared", "group 12", NULL);
        expect(r, "medium", "acs.multifunction", "0000:38:00.1", NULL);
        expect_none(r, "acs.multifunction", "0000:38:00.0"); /* RR+CR enabled */
        /* AMD-Vi always remaps; this EFR has GA and vAPIC guest mode. */
        expect_none(r, "irq.remapping", NULL);
        expect_none(r, "irq.posted", NULL);
        /* Only the root complex and the IOMMU itself are without a group: not audited. */
        expect_none(r, "group.missing", NULL);
        expect_none(r, "group.default-domain", NULL);
        audit_report_free(r);
}

static void noiommu_and_passthrough_hosts(void **state)
{
        char root[PATH_MAX];
        struct audit_report *r;

        fixture_tree("noiommu.txt", "noiommu", root);
        r = audit_tree(root, NULL);
        expect(r, "critical", "iommu.present", "host", NULL);
        expect(r, "critical", "vfio.noiommu", "host", NULL);
        expect(r, "critical", "cmdline.hazard", "intel_iommu=off", NULL);
        expect(r, "critical", "cmdline.hazard", "vfio.enable_unsafe_noiommu_mode=1", NULL);
        assert_int_equal(status_of(r, "acs.path"), AUDIT_STATUS_SKIP);
        assert_int_equal(status_of(r, "irq.remapping"), AUDIT_STATUS_SKIP);
        assert_non_null(strstr(r->skip_reason[AUDIT_CHECK_ACS_PATH], "iommu.present"));
        audit_report_free(r);

        fixture_tree("passthrough.txt", "passthrough", root);
        r = audit_tree(root, NULL);
        expect(r, "medium", "iommu.translating", "host", NULL);
        expect(r, "medium", "cmdline.hazard", "iommu=pt", NULL);
        /* The one DMA group is vfio's: not reported as a per-group hazard. */
        expect_none(r, "group.default-domain", NULL);
        expect_none(r, "iommu.present", NULL);
        audit_report_free(r);
}

static void a_damaged_tree_is_audited_with_what_it_has(void **state)
{
        char root[PATH_MAX];
        struct audit_report *r;

        fixture_tree("broken.txt", "broken", root);
        r = audit_tree(root, NULL);
        expect(r, "high", "group.missing", "0000:00:16.0", NULL); /* dangling group link */
        expect(r, "medium", "audit.coverage", "host", NULL);      /* short config spaces */
        assert_true(r->n_warnings > 0);
        audit_report_free(r);
}

static void write_file(const char *dir, const char *name, const char *content)
{
        char path[PATH_MAX + 256];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        f = fopen(path, "we");
        assert_non_null(f);
        fputs(content, f);
        assert_int_equal(fclose(f), 0);
}

/* Sets the Enable bit of the function's ATS Control register in its config file. */
static void enable_ats(const char *root, const char *address)
{
        char path[PATH_MAX + 128];
        uint8_t buf[4096];
        unsigned off = 0x100;
        ssize_t n;
        int fd;

        snprintf(path, sizeof(path), "%s/sys/bus/pci/devices/%s/config", root, address);
        fd = open(path, O_RDWR | O_CLOEXEC);
        assert_true(fd >= 0);
        n = pread(fd, buf, sizeof(buf), 0);
        assert_int_equal(n, 4096);
        for (int guard = 0; off >= 0x100 && guard < 64; guard++) {
                uint32_t hdr = buf[off] | buf[off + 1] << 8 | buf[off + 2] << 16 |
                               (uint32_t)buf[off + 3] << 24;
                if ((hdr & 0xffff) == PCI_EXT_CAP_ID_ATS) {
                        buf[off + 7] |= 0x80;
                        assert_int_equal(pwrite(fd, buf + off + 7, 1, off + 7), 1);
                        close(fd);
                        return;
                }
                off = (hdr >> 20) & 0xffc;
        }
        close(fd);
        fail_msg("%s has no ATS capability", address);
}

static void every_hazard_of_the_made_up_host_is_found(void **state)
{
        char root[PATH_MAX], dir[PATH_MAX + 64];
        struct audit_report *r;

        fixture_tree("audit-hazards.txt", "hazards", root);
        r = audit_tree(root, NULL);
        expect(r, "high", "irq.remapping", "host", NULL); /* supported, turned off */
        expect(r, "high", "vfio.unsafe-interrupts", "host", NULL);
        expect(r, "high", "cmdline.hazard", "intremap=off", NULL);
        expect(r, "high", "cmdline.hazard", "pcie_acs_override=downstream,multifunction", NULL);
        assert_int_equal(count(r, "cmdline.hazard"), 6); /* pcie_acs_override once */
        expect(r, "high", "cmdline.hazard", "pci=disable_acs_redir=0000:00:1c.0", NULL);
        expect(r, "low", "cmdline.hazard", "intel_iommu=on,igfx_off", "igfx_off");
        expect(r, "low", "cmdline.hazard", "iommu.strict=0", NULL);
        expect(r, "high", "group.missing", "0000:00:16.0", NULL);
        expect(r, "high", "group.viable", "group 4", NULL); /* e1000 with eth1 up */
        expect(r, "high", "acs.path", "0000:00:1c.0", "RR");
        expect(r, "info", "acs.path", "0000:00:1c.0", "EC");
        expect_none(r, "acs.path", "0000:00:1d.0");
        assert_null(find(r, "acs.path", "0000:00:1c.0", "SV"));
        expect(r, "high", "pci.behind-bridge", "0000:03:00.0", NULL);
        expect(r, "medium", "group.default-domain", "group 6", NULL); /* identity */
        expect(r, "info", "group.default-domain", "group 2", NULL);   /* DMA-FQ */
        expect(r, "low", "ats.enabled", "0000:01:00.0", NULL);        /* on attach */
        expect(r, "low", "reset.capability", "0000:03:00.0", NULL);
        expect(r, "medium", "reset.capability", "0000:04:00.0", NULL);
        expect_none(r, "port.external", NULL);
        audit_report_free(r);

        /* What the generator cannot write: ATS enabled now, a device below an
         * external-facing port, a Thunderbolt domain without DMA protection. */
        enable_ats(root, "0000:01:00.0");
        snprintf(dir, sizeof(dir), "%s/sys/bus/pci/devices/0000:04:00.0", root);
        write_file(dir, "removable", "removable\n");
        snprintf(dir, sizeof(dir), "%s/sys/devices/platform", root);
        assert_int_equal(mkdir(dir, 0755), 0);
        strcat(dir, "/domain0");
        assert_int_equal(mkdir(dir, 0755), 0);
        write_file(dir, "iommu_dma_protection", "0\n");
        snprintf(dir, sizeof(dir), "%s/sys/bus/thunderbolt", root);
        assert_int_equal(mkdir(dir, 0755), 0);
        strcat(dir, "/devices");
        assert_int_equal(mkdir(dir, 0755), 0);
        strcat(dir, "/domain0");
        assert_int_equal(symlink("../../../devices/platform/domain0", dir), 0);

        r = audit_tree(root, NULL);
        expect(r, "medium", "ats.enabled", "0000:01:00.0", NULL);
        expect(r, "medium", "port.external", "0000:04:00.0", NULL);
        expect(r, "high", "port.external", "thunderbolt domain0", NULL);
        audit_report_free(r);

        /* pci=noats keeps ATS off where it is not on yet. */
        write_file(root, "proc/cmdline", "ro intel_iommu=on pci=noats\n");
        r = audit_tree(root, "0000:02:00.0");
        expect_none(r, "ats.enabled", NULL);
        expect_none(r, "cmdline.hazard", NULL);
        expect(r, "high", "acs.path", "0000:00:1c.0", "RR");
        audit_report_free(r);
}

static void plans_must_name_existing_devices_and_may_be_empty(void **state)
{
        char root[PATH_MAX];
        _cleanup_(root_freep) struct root *rt = NULL;
        _cleanup_(topology_freep) struct topology *t = NULL;
        _cleanup_free_ char *detail = NULL;
        struct pci_addr missing = {.bus = 0x42};
        struct audit_scope scope = {.devices = &missing, .n_devices = 1};
        struct audit_report *r = NULL;

        fixture_tree("machines/server-c236-i350.txt", "c236-plan", root);
        assert_int_equal(root_open(root, &rt), 0);
        assert_int_equal(topology_scan(rt, TOPOLOGY_SCAN_NO_NAMES, &t), 0);
        assert_int_equal(audit_run(rt, t, &scope, &r, &detail), -ENODEV);
        assert_null(r);
        assert_string_equal(detail, "0000:42:00.0: no such PCI device");

        /* An empty plan: host-wide checks only; device checks do not apply. */
        scope = (struct audit_scope){0};
        assert_int_equal(audit_run(rt, t, &scope, &r, NULL), 0);
        assert_false(r->whole_host);
        assert_int_equal(r->n_devices, 0);
        assert_int_equal(r->status[AUDIT_CHECK_ACS_PATH], AUDIT_STATUS_SKIP);
        assert_int_equal(count(r, "acs.path"), 0);
        expect(r, "info", "irq.posted", "host", NULL);
        audit_report_free(r);
}

/* Audits a tree with the DMA fault probe asked for (no journal: nothing is ever bound). */
static int probe_tree(const char *path, const char *probe_list, struct audit_report **ret,
                      char **ret_detail)
{
        _cleanup_(root_freep) struct root *root = NULL;
        _cleanup_(topology_freep) struct topology *t = NULL;
        _cleanup_free_ struct pci_addr *l = NULL;
        struct audit_probe probe = {0};
        size_t n = 0;

        assert_int_equal(root_open(path, &root), 0);
        assert_int_equal(topology_scan(root, TOPOLOGY_SCAN_NO_NAMES, &t), 0);
        if (probe_list)
                assert_int_equal(audit_scope_parse_list(probe_list, &l, &n, NULL), 0);
        probe.devices = l;
        probe.n_devices = n;
        return audit_run_with_probe(root, t, NULL, &probe, ret, ret_detail);
}

static void the_dma_fault_probe_reports_what_it_could_not_prove(void **state)
{
        char root[PATH_MAX], desc[PATH_MAX], cmd[3 * PATH_MAX];
        _cleanup_free_ char *detail = NULL;
        struct audit_report *r = NULL;
        const struct audit_finding *f;

        /* Not asked for: skipped, and said why. */
        fixture_tree("machines/desktop-z370-gt1030.txt", "z370-probe", root);
        r = audit_tree(root, NULL);
        assert_int_equal(status_of(r, "dma.fault-probe"), AUDIT_STATUS_SKIP);
        assert_non_null(strstr(r->skip_reason[AUDIT_CHECK_DMA_FAULT_PROBE], "--probe"));
        audit_report_free(r);

        /* Asked for on a host without a device it can drive: unproven, medium. */
        assert_int_equal(probe_tree(root, NULL, &r, NULL), 0);
        expect(r, "medium", "dma.fault-probe", "host", NULL);
        assert_int_equal(status_of(r, "dma.fault-probe"), AUDIT_STATUS_FAIL);
        r = audit_report_free(r);

        /* Named devices must exist and be ones it can drive. */
        assert_int_equal(probe_tree(root, "0000:42:00.0", &r, &detail), -ENODEV);
        assert_null(r);
        assert_non_null(strstr(detail, "no such PCI device"));
        free(detail);
        detail = NULL;
        assert_int_equal(probe_tree(root, "0000:01:00.0", &r, &detail), -EOPNOTSUPP);
        assert_non_null(strstr(detail, "1234:11e8"));
        free(detail);
        detail = NULL;

        /* An edu on a host without an IOMMU: critical, and nothing is sent or bound. */
        snprintf(desc, sizeof(desc), "%s/noiommu-edu.txt", test_tmp);
        snprintf(cmd, sizeof(cmd),
                 "cat '%s/noiommu.txt' > '%s' && echo 'dev 0000:04:00.0 vendor=1234 "
                 "device=11e8 class=00ff00 rev=10' >> '%s'",
                 test_fixture_dir, desc, desc);
        assert_int_equal(system(cmd), 0);
        fixture_tree(desc, "noiommu-edu", root);
        assert_int_equal(probe_tree(root, NULL, &r, NULL), 0);
        expect(r, "critical", "dma.fault-probe", "0000:04:00.0", NULL);
        f = find(r, "dma.fault-probe", "0000:04:00.0", NULL);
        assert_true(lists_device(f, "0000:04:00.0"));
        assert_non_null(strstr(f->message, "did not send"));
        assert_int_equal(count(r, "dma.fault-probe"), 1);
        audit_report_free(r);
}

/* The probe binds a driverless edu to the VFIO driver a bind would choose: here a variant
 * that modules.alias names for 1234:11e8 (made up), and gives it back afterwards. The
 * fixture has no /dev/vfio to open, so the probe itself fails: what matters is where the
 * edu went for it, which the finding's evidence tells, and that it came back. */
static void the_probe_binds_an_edu_to_its_variant_driver(void **state)
{
        char root[PATH_MAX], desc[PATH_MAX], cmd[3 * PATH_MAX], link[PATH_MAX], path[PATH_MAX + 64];
        _cleanup_(root_freep) struct root *rt = NULL;
        _cleanup_(topology_freep) struct topology *t = NULL;
        _cleanup_(journal_freep) struct journal *j = NULL;
        _cleanup_free_ struct pci_addr *l = NULL;
        struct audit_probe probe = {0};
        struct audit_report *r = NULL;
        const struct audit_finding *f;
        size_t n = 0;

        snprintf(desc, sizeof(desc), "%s/variant-edu.txt", test_tmp);
        snprintf(cmd, sizeof(cmd),
                 "sed 's/^driver vfio-pci .*/& edu_vfio_pci/' '%s/vfio-variants.txt' > '%s' && "
                 "printf '%%s\\n' 'alias vfio_pci:v00001234d000011E8sv*sd*bc*sc*i* edu_vfio_pci' "
                 "'dev 0000:00:04.0 vendor=1b36 device=000c class=060400 group=8 driver=pcieport "
                 "bus=04 acs=1f/1d' 'dev 0000:04:00.0 vendor=1234 device=11e8 class=00ff00 "
                 "group=9 reset=flr' >> '%s'",
                 test_fixture_dir, desc, desc);
        assert_int_equal(system(cmd), 0);
        fixture_tree(desc, "variant-edu", root);
        assert_int_equal(root_open(root, &rt), 0);
        assert_int_equal(topology_scan(rt, TOPOLOGY_SCAN_NO_NAMES, &t), 0);
        assert_int_equal(journal_open(rt, NULL, &j), 0);
        assert_int_equal(audit_scope_parse_list("0000:04:00.0", &l, &n, NULL), 0);
        probe = (struct audit_probe){.devices = l, .n_devices = n, .journal = j};
        assert_int_equal(setenv("VFIOD_TEST_DRIVER_CORE", "0000:04:00.0=-", 1), 0);
        assert_int_equal(audit_run_with_probe(rt, t, NULL, &probe, &r, NULL), 0);
        assert_int_equal(unsetenv("VFIOD_TEST_DRIVER_CORE"), 0);
        /* The probe itself fails (no /dev/vfio in the tree): its message tells where the
         * edu went for it. */
        f = find(r, "dma.fault-probe", "0000:04:00.0", NULL);
        if (!f || !strstr(f->message, "(no driver: bound to edu_vfio_pci for the probe, then "
                                      "restored)")) {
                dump(r);
                fail_msg("the probe does not say the edu went to edu_vfio_pci: %s",
                         f ? f->message : "no finding");
        }
        snprintf(path, sizeof(path), "%s/sys/bus/pci/devices/0000:04:00.0/driver", root);
        assert_int_equal(readlink(path, link, sizeof(link)), -1); /* back to no driver */
        audit_report_free(r);
}

/* A stock distribution kernel's vfio is loaded without parameters (no CONFIG_VFIO_NOIOMMU):
 * that is not "vfio is not loaded", which only a host without any trace of vfio is. */
static void vfio_without_parameters_is_told_from_vfio_not_loaded(void **state)
{
        char root[PATH_MAX], cmd[3 * PATH_MAX];
        struct audit_report *r;

        fixture_tree("distro-modules.txt", "distro", root);
        r = audit_tree(root, NULL);
        assert_int_equal(status_of(r, "vfio.noiommu"), AUDIT_STATUS_SKIP);
        assert_string_equal(r->skip_reason[AUDIT_CHECK_VFIO_NOIOMMU],
                            "this kernel's vfio has no no-IOMMU mode (no parameter "
                            "enable_unsafe_noiommu_mode: built without CONFIG_VFIO_NOIOMMU), so "
                            "it cannot be on");
        assert_string_equal(r->skip_reason[AUDIT_CHECK_VFIO_UNSAFE_INTERRUPTS],
                            "vfio_iommu_type1 is not loaded (no sys/module/vfio_iommu_type1)");
        audit_report_free(r);

        /* Built in, so no sys/module/vfio: its class still shows it. */
        snprintf(cmd, sizeof(cmd), "rm -r '%s/sys/module/vfio' && mkdir -p '%s/sys/class/vfio'",
                 root, root);
        assert_int_equal(system(cmd), 0);
        r = audit_tree(root, NULL);
        assert_non_null(strstr(r->skip_reason[AUDIT_CHECK_VFIO_NOIOMMU], "has no no-IOMMU mode"));
        audit_report_free(r);

        snprintf(cmd, sizeof(cmd), "rmdir '%s/sys/class/vfio'", root);
        assert_int_equal(system(cmd), 0);
        r = audit_tree(root, NULL);
        assert_string_equal(r->skip_reason[AUDIT_CHECK_VFIO_NOIOMMU],
                            "vfio is not loaded (no sys/module/vfio, sys/class/vfio or /dev/vfio)");
        audit_report_free(r);
}

/* An 82576 behind a switch port without ACS: its VFs, carved onto vfio-pci, joined the
 * PF's group, where the PF's igb keeps vfio from opening them. */
static void vfs_in_the_group_of_their_pf_on_igb_are_named_as_such(void **state)
{
        char desc[PATH_MAX], root[PATH_MAX];
        const struct audit_finding *f;
        struct audit_report *r;
        FILE *out;

        snprintf(desc, sizeof(desc), "%s/vf-with-pf.txt", test_tmp);
        out = fopen(desc, "we");
        assert_non_null(out);
        fputs("cmdline ro intel_iommu=on\n"
              "iommu dmar0 intel cap=d2008c222f0686 ecap=f00f4a\n"
              "interrupts remap=on\n"
              "driver vfio-pci\n"
              "dev 0000:00:00.0 vendor=8086 device=29c0 class=060000 group=0\n"
              "dev 0000:00:05.0 vendor=1b36 device=000c class=060400 group=1 driver=pcieport "
              "bus=04-06 acs=1f/1d\n"
              "dev 0000:04:00.0 vendor=104c device=8232 class=060400 group=2 driver=pcieport "
              "pcie=upstream bus=05-06\n"
              "dev 0000:05:00.0 vendor=104c device=8233 class=060400 group=3 driver=pcieport "
              "pcie=downstream bus=06\n"
              "dev 0000:06:00.0 vendor=8086 device=10c9 class=020000 group=3 driver=igb "
              "net=eth1:down sriov=7,2,128,2,10ca vfgroups=3,3 vfdriver=vfio-pci\n",
              out);
        assert_int_equal(fclose(out), 0);
        fixture_tree(desc, "vf-with-pf", root);
        (void)state;

        /* The VFs on vfio-pci are what is assigned: the PF is named as theirs. */
        r = audit_tree(root, NULL);
        expect(r, "medium", "group.viable", "group 3", NULL);
        f = find(r, "group.viable", "group 3", NULL);
        assert_non_null(strstr(f->message, "VFs of 0000:06:00.0"));
        assert_non_null(strstr(f->message, "together with their PF, bound to igb"));
        assert_non_null(strstr(f->fix, "vfioctl bind PF"));
        audit_report_free(r);
}

/* The GT 1030's card: assigned without its audio function, with it, and with a firmware
 * framebuffer inside its BAR 1. */
static void display_cards_are_assigned_whole_and_free_of_framebuffers(void **state)
{
        char root[PATH_MAX], path[PATH_MAX + 64];
        struct audit_report *r;

        fixture_tree("machines/desktop-z370-gt1030.txt", "z370-card", root);
        /* The audio function shares the group on snd_hda_intel: the group check says so. */
        r = audit_tree(root, "0000:01:00.0");
        expect_none(r, "card.split", NULL);
        expect(r, "medium", "group.viable", "group 2", NULL);
        assert_int_equal(status_of(r, "display.framebuffer"), AUDIT_STATUS_SKIP);
        audit_report_free(r);

        /* Unbound, nothing else would name it. */
        snprintf(path, sizeof(path), "%s/sys/bus/pci/devices/0000:01:00.1/driver", root);
        assert_int_equal(unlink(path), 0);
        r = audit_tree(root, "0000:01:00.0");
        expect(r, "low", "card.split", "0000:01:00.1", NULL);
        assert_true(lists_device(find(r, "card.split", NULL, NULL), "0000:01:00.0"));
        audit_report_free(r);
        r = audit_tree(root, "0000:01:00.0,0000:01:00.1");
        expect_none(r, "card.split", NULL);
        audit_report_free(r);

        /* efifb inside BAR 1, as /proc/iomem shows it to root. */
        snprintf(path, sizeof(path), "%s/sys/bus/pci/devices/0000:01:00.0", root);
        write_file(path, "resource",
                   "0x00000000de000000 0x00000000deffffff 0x0000000000040200\n"
                   "0x00000000c0000000 0x00000000cfffffff 0x000000000014220c\n");
        write_file(root, "proc/iomem",
                   "c0000000-dfffffff : PCI Bus 0000:01\n"
                   "  c0000000-cfffffff : 0000:01:00.0\n"
                   "    c0000000-c02fffff : efifb\n");
        r = audit_tree(root, "0000:01:00.0,0000:01:00.1");
        expect(r, "high", "display.framebuffer", "0000:01:00.0", NULL);
        audit_report_free(r);
        /* Not to be assigned: none of its business. */
        r = audit_tree(root, "0000:01:00.1");
        expect_none(r, "display.framebuffer", NULL);
        audit_report_free(r);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(check_ids_and_severities_read_back),
                cmocka_unit_test(assignment_plans_read_like_assign_conf),
                cmocka_unit_test(desktop_gpu_shares_a_cpu_port_without_acs),
                cmocka_unit_test(server_nvme_shares_its_port_and_the_assigned_nics_are_isolated),
                cmocka_unit_test(workstation_switch_with_acs_and_vfs_isolates_everything),
                cmocka_unit_test(amd_desktop_is_in_passthrough_behind_a_switch_without_acs),
                cmocka_unit_test(noiommu_and_passthrough_hosts),
                cmocka_unit_test(a_damaged_tree_is_audited_with_what_it_has),
                cmocka_unit_test(every_hazard_of_the_made_up_host_is_found),
                cmocka_unit_test(plans_must_name_existing_devices_and_may_be_empty),
                cmocka_unit_test(the_dma_fault_probe_reports_what_it_could_not_prove),
                cmocka_unit_test(the_probe_binds_an_edu_to_its_variant_driver),
                cmocka_unit_test(vfio_without_parameters_is_told_from_vfio_not_loaded),
                cmocka_unit_test(vfs_in_the_group_of_their_pf_on_igb_are_named_as_such),
                cmocka_unit_test(display_cards_are_assigned_whole_and_free_of_framebuffers),
        };

        if (argc != 3) {
                fprintf(stderr, "usage: %s MKFIXTURE FIXTURE_DIR\n", argv[0]);
                return 2;
        }
        fixture_init(argv[1], argv[2]);
        return cmocka_run_group_tests(tests, test_tmp_setup, test_tmp_teardown);
}
