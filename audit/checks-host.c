/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Host-wide checks: the IOMMU, interrupt remapping, vfio's module parameters and the
 * kernel command line. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "audit-internal.h"
#include "fd-util.h"
#include "modules.h"
#include "strv.h"

#define NO_IOMMU_REASON "no IOMMU (see iommu.present)"

static int unit_register_path(const struct iommu_unit *u, bool ext, char buf[static 128])
{
        const char *file;

        if (u->kind == IOMMU_KIND_INTEL_VTD)
                file = ext ? "intel-iommu/ecap" : "intel-iommu/cap";
        else
                file = ext ? "amd-iommu/features" : "amd-iommu/cap";
        snprintf(buf, 128, "sys/class/iommu/%s/%s", u->name, file);
        return 0;
}

static int check_iommu_present(struct audit_ctx *c)
{
        const struct host_facts *h = &c->t->host;
        int r;

        if (h->iommu_present)
                return 0;
        r = audit_add(c, AUDIT_CHECK_IOMMU_PRESENT, AUDIT_SEVERITY_CRITICAL, "host", NULL,
                      "Enable VT-d (Intel) or AMD-Vi/IOMMU (AMD) in the firmware setup, remove "
                      "intel_iommu=off or amd_iommu=off from the kernel command line (add "
                      "intel_iommu=on where the kernel does not enable it by default), and "
                      "look for DMAR or AMD-Vi errors in the kernel log.",
                      h->mode == IOMMU_MODE_NOIOMMU
                              ? "No IOMMU unit is registered and vfio runs in no-IOMMU mode: a "
                                "device given to user space can read and write all of host "
                                "memory"
                              : "No IOMMU unit is registered: every device can read and write "
                                "all of host memory, and none can be isolated for assignment");
        if (r < 0)
                return r;
        return audit_evidence(c, "sys/class/iommu", "no IOMMU units");
}

static int check_iommu_translating(struct audit_ctx *c)
{
        const struct topology *t = c->t;
        size_t identity = 0;
        int r;

        if (!t->host.iommu_present)
                return audit_skip(c, AUDIT_CHECK_IOMMU_TRANSLATING, NO_IOMMU_REASON);
        if (t->host.mode != IOMMU_MODE_PASSTHROUGH)
                return 0;
        for (size_t i = 0; i < t->n_groups; i++)
                identity += t->groups[i].type && strcmp(t->groups[i].type, "identity") == 0;
        r = audit_add(c, AUDIT_CHECK_IOMMU_TRANSLATING, AUDIT_SEVERITY_MEDIUM, "host", NULL,
                      "Remove iommu=pt and iommu.passthrough=1 from the kernel command line (or "
                      "set iommu.passthrough=0) so that host devices get translated domains.",
                      "The IOMMU is in pass-through mode: devices left to host drivers DMA "
                      "untranslated and can reach all of memory (devices given to vfio still "
                      "get a domain of their own)");
        if (r < 0)
                return r;
        return audit_evidence(c, "sys/kernel/iommu_groups/*/type", "identity in %zu of %zu groups",
                              identity, t->n_groups);
}

static int check_irq_remapping(struct audit_ctx *c)
{
        const struct topology *t = c->t;
        const struct host_facts *h = &t->host;
        char path[128];
        int r;

        if (!h->iommu_present)
                return audit_skip(c, AUDIT_CHECK_IRQ_REMAPPING, NO_IOMMU_REASON);
        if (h->ir_supported == TRI_YES && h->ir_enabled == TRI_YES)
                return 0;
        if (h->ir_supported == TRI_NO) {
                r = audit_add(c, AUDIT_CHECK_IRQ_REMAPPING, AUDIT_SEVERITY_HIGH, "host", NULL,
                              "Use a platform whose IOMMU implements interrupt remapping (and "
                              "enable it in the firmware); do not work around it with "
                              "vfio_iommu_type1.allow_unsafe_interrupts=1.",
                              "The IOMMU does not implement interrupt remapping: a device "
                              "given to a guest can forge MSI writes and inject interrupts "
                              "into the host");
                if (r < 0)
                        return r;
                for (size_t i = 0; i < t->n_units; i++) {
                        const struct iommu_unit *u = &t->units[i];
                        if (u->kind != IOMMU_KIND_INTEL_VTD || u->interrupt_remapping)
                                continue;
                        unit_register_path(u, true, path);
                        r = audit_evidence(c, path, "%llx (IR, bit 3, clear)",
                                           (unsigned long long)u->ecap);
                        if (r < 0)
                                return r;
                }
                return 0;
        }
        if (h->ir_enabled == TRI_NO) {
                r = audit_add(c, AUDIT_CHECK_IRQ_REMAPPING, AUDIT_SEVERITY_HIGH, "host", NULL,
                              "Remove intremap=off from the kernel command line and look for "
                              "DMAR-IR or AMD-Vi messages in the kernel log (firmware opt-outs, "
                              "x2APIC).",
                              "The IOMMU supports interrupt remapping but the kernel does not "
                              "use it: no remapped interrupt chips are in use");
                if (r < 0)
                        return r;
                return audit_evidence(c, "proc/interrupts", "no IR- interrupt chips");
        }
        r = audit_add(c, AUDIT_CHECK_IRQ_REMAPPING, AUDIT_SEVERITY_MEDIUM, "host", NULL,
                      "Run the audit as root on the host itself, or take the snapshot as root.",
                      "Whether interrupts are remapped could not be determined");
        if (r < 0)
                return r;
        return audit_evidence(c,
                              h->ir_enabled == TRI_UNKNOWN ? "proc/interrupts" : "sys/class/iommu",
                              "not readable or not decodable");
}

static int check_irq_posted(struct audit_ctx *c)
{
        const struct topology *t = c->t;
        char path[128];
        int r;

        if (!t->host.iommu_present)
                return audit_skip(c, AUDIT_CHECK_IRQ_POSTED, NO_IOMMU_REASON);
        if (t->host.posted_interrupts == TRI_UNKNOWN)
                return audit_skip(c, AUDIT_CHECK_IRQ_POSTED,
                                  "the IOMMU units' registers could not be read or decoded");
        if (t->host.posted_interrupts == TRI_YES)
                return 0;
        r = audit_add(c, AUDIT_CHECK_IRQ_POSTED, AUDIT_SEVERITY_INFO, "host", NULL,
                      "Nothing to fix for isolation. For interrupt latency in guests, use a "
                      "platform with posted interrupts (VT-d CAP.PI, AMD-Vi GA).",
                      "The IOMMU cannot post interrupts to vCPUs: a device's interrupts reach "
                      "a guest through the host");
        for (size_t i = 0; r >= 0 && i < t->n_units; i++) {
                const struct iommu_unit *u = &t->units[i];
                if (u->posted_interrupts || u->kind == IOMMU_KIND_OTHER)
                        continue;
                unit_register_path(u, u->kind == IOMMU_KIND_AMD_VI, path);
                if (u->kind == IOMMU_KIND_INTEL_VTD)
                        r = audit_evidence(c, path, "%llx (PI, bit 59, clear)",
                                           (unsigned long long)u->cap);
                else
                        r = audit_evidence(c, path,
                                           "%llx (GASup bit 7 and GAMSup bit 21 not both set)",
                                           (unsigned long long)u->ecap);
        }
        return r;
}

#define NOIOMMU_PARAM           "sys/module/vfio/parameters/enable_unsafe_noiommu_mode"
#define UNSAFE_INTERRUPTS_PARAM "sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts"

/* Why a module parameter's value is unknown: the module is not loaded (absent), this
 * kernel's module has no such parameter (no_param), or its file could not be read. */
static const char *param_unknown_reason(struct audit_ctx *c, enum vfio_module m, const char *path,
                                        const char *absent, const char *no_param,
                                        char buf[static 256])
{
        int fd;

        if (!vfio_module_present(c->root, m))
                return absent;
        fd = root_openat(c->root, path, O_PATH);
        if (fd < 0)
                return no_param;
        close(fd);
        snprintf(buf, 256, "%s could not be read or holds no boolean", path);
        return buf;
}

static int check_vfio_noiommu(struct audit_ctx *c)
{
        const struct host_facts *h = &c->t->host;
        char buf[256];
        int r;

        if (h->noiommu_mode == TRI_UNKNOWN)
                return audit_skip(
                        c, AUDIT_CHECK_VFIO_NOIOMMU,
                        param_unknown_reason(c, VFIO_MODULE_VFIO, NOIOMMU_PARAM,
                                             "vfio is not loaded (no sys/module/vfio, "
                                             "sys/class/vfio or /dev/vfio)",
                                             "this kernel's vfio has no no-IOMMU mode (no "
                                             "parameter enable_unsafe_noiommu_mode: built "
                                             "without CONFIG_VFIO_NOIOMMU), so it cannot be on",
                                             buf));
        if (h->noiommu_mode == TRI_NO)
                return 0;
        r = audit_add(
                c, AUDIT_CHECK_VFIO_NOIOMMU,
                h->iommu_present ? AUDIT_SEVERITY_HIGH : AUDIT_SEVERITY_CRITICAL, "host", NULL,
                "Turn the mode off (vfio.enable_unsafe_noiommu_mode=0 on the command line "
                "or in modprobe.d, or write N to the parameter) outside of disposable "
                "test machines.",
                h->iommu_present ? "vfio's unsafe no-IOMMU mode is on: any device without an IOMMU "
                                   "group can be given to user space with unrestricted DMA"
                                 : "vfio's unsafe no-IOMMU mode is on: devices given to user space "
                                   "have unrestricted DMA to all of host memory");
        if (r < 0)
                return r;
        return audit_evidence(c, NOIOMMU_PARAM, "Y");
}

static int check_vfio_unsafe_interrupts(struct audit_ctx *c)
{
        const struct host_facts *h = &c->t->host;
        char buf[256];
        bool effective = h->ir_enabled != TRI_YES;
        int r;

        if (h->allow_unsafe_interrupts == TRI_UNKNOWN)
                return audit_skip(c, AUDIT_CHECK_VFIO_UNSAFE_INTERRUPTS,
                                  param_unknown_reason(c, VFIO_MODULE_TYPE1,
                                                       UNSAFE_INTERRUPTS_PARAM,
                                                       "vfio_iommu_type1 is not loaded (no "
                                                       "sys/module/vfio_iommu_type1)",
                                                       "this kernel's vfio_iommu_type1 has no "
                                                       "allow_unsafe_interrupts parameter",
                                                       buf));
        if (h->allow_unsafe_interrupts == TRI_NO)
                return 0;
        r = audit_add(c, AUDIT_CHECK_VFIO_UNSAFE_INTERRUPTS,
                      effective ? AUDIT_SEVERITY_HIGH : AUDIT_SEVERITY_LOW, "host", NULL,
                      "Set vfio_iommu_type1.allow_unsafe_interrupts=0 (command line or "
                      "modprobe.d) and use a host with interrupt remapping.",
                      effective ? "vfio accepts unsafe interrupts and this host does not remap "
                                  "them: a guest can inject interrupts into the host"
                                : "vfio is set to accept unsafe interrupts; it has no effect "
                                  "while interrupts are remapped, but would silently allow "
                                  "assignment if remapping were lost");
        if (r < 0)
                return r;
        return audit_evidence(c, UNSAFE_INTERRUPTS_PARAM, "Y");
}

struct hazard {
        enum audit_severity severity;
        const char *why;
        const char *fix;
        bool whole; /* the parameter itself is the hazard, whatever its options */
};

/* A kernel boolean parameter value, as kstrtobool reads it. */
static bool value_is_true(const char *v)
{
        return strcmp(v, "1") == 0 || strcasecmp(v, "y") == 0 || strcasecmp(v, "yes") == 0 ||
               strcasecmp(v, "on") == 0 || strcasecmp(v, "true") == 0;
}

static bool value_is_false(const char *v)
{
        return strcmp(v, "0") == 0 || strcasecmp(v, "n") == 0 || strcasecmp(v, "no") == 0 ||
               strcasecmp(v, "off") == 0 || strcasecmp(v, "false") == 0;
}

/* Judges one option of a command-line parameter ("pt" of "iommu=pt,..."). */
static bool hazard_of(const char *key, const char *opt, struct hazard *ret)
{
        static const char remove[] = "Remove it from the kernel command line.";

        if (strcmp(key, "iommu") == 0 && strcmp(opt, "pt") == 0)
                *ret = (struct hazard){AUDIT_SEVERITY_MEDIUM,
                                       "puts the IOMMU in pass-through mode: host devices DMA "
                                       "untranslated",
                                       remove};
        else if (strcmp(key, "iommu") == 0 && strcmp(opt, "off") == 0)
                *ret = (struct hazard){AUDIT_SEVERITY_CRITICAL, "turns the IOMMU off", remove};
        else if (strcmp(key, "iommu.passthrough") == 0 && value_is_true(opt))
                *ret = (struct hazard){AUDIT_SEVERITY_MEDIUM,
                                       "makes identity (pass-through) the default domain: host "
                                       "devices DMA untranslated",
                                       "Remove it, or set iommu.passthrough=0."};
        else if (strcmp(key, "iommu.strict") == 0 && value_is_false(opt))
                *ret = (struct hazard){AUDIT_SEVERITY_LOW,
                                       "defers IOTLB invalidation: host devices can reach freed "
                                       "buffers for a few milliseconds",
                                       remove};
        else if ((strcmp(key, "intel_iommu") == 0 || strcmp(key, "amd_iommu") == 0) &&
                 strcmp(opt, "off") == 0)
                *ret = (struct hazard){AUDIT_SEVERITY_CRITICAL, "turns the IOMMU off",
                                       "Remove it (on Intel, use intel_iommu=on)."};
        else if (strcmp(key, "intel_iommu") == 0 && strcmp(opt, "igfx_off") == 0)
                *ret = (struct hazard){AUDIT_SEVERITY_LOW,
                                       "leaves the integrated graphics device untranslated",
                                       remove};
        else if (strcmp(key, "intremap") == 0 && strcmp(opt, "off") == 0)
                *ret = (struct hazard){AUDIT_SEVERITY_HIGH,
                                       "turns interrupt remapping off: guests can inject host "
                                       "interrupts",
                                       remove};
        else if (strcmp(key, "intremap") == 0 && strcmp(opt, "nosid") == 0)
                *ret = (struct hazard){AUDIT_SEVERITY_MEDIUM,
                                       "stops checking the source ID of remapped interrupts",
                                       remove};
        else if (strcmp(key, "pcie_acs_override") == 0)
                *ret = (struct hazard){AUDIT_SEVERITY_HIGH,
                                       "makes the kernel pretend that devices without ACS are "
                                       "isolated: IOMMU groups no longer show real isolation",
                                       "Remove it; assign whole groups instead, or move devices "
                                       "behind ports with ACS.",
                                       true};
        else if (strcmp(key, "pci") == 0 && strncmp(opt, "disable_acs_redir", 17) == 0)
                *ret = (struct hazard){AUDIT_SEVERITY_HIGH,
                                       "turns ACS redirection off on the listed ports: their "
                                       "peer-to-peer traffic bypasses the IOMMU",
                                       remove};
        else if (strcmp(key, "pci") == 0 && strncmp(opt, "config_acs", 10) == 0)
                *ret = (struct hazard){AUDIT_SEVERITY_MEDIUM,
                                       "sets ACS bits by hand: the ports' isolation is what it "
                                       "says, not what the kernel would choose",
                                       "Check it against acs.path findings, or remove it."};
        else if (strcmp(key, "vfio.enable_unsafe_noiommu_mode") == 0 && value_is_true(opt))
                *ret = (struct hazard){AUDIT_SEVERITY_CRITICAL,
                                       "lets vfio give devices to user space without an IOMMU",
                                       remove};
        else if (strcmp(key, "vfio_iommu_type1.allow_unsafe_interrupts") == 0 && value_is_true(opt))
                *ret = (struct hazard){AUDIT_SEVERITY_HIGH,
                                       "lets vfio assign devices without interrupt remapping",
                                       remove};
        else
                return false;
        return true;
}

static int check_cmdline(struct audit_ctx *c)
{
        const struct host_facts *h = &c->t->host;

        if (!h->cmdline)
                return audit_skip(c, AUDIT_CHECK_CMDLINE_HAZARD, "proc/cmdline is not readable");
        STRV_FOREACH (w, h->cmdline_flags) {
                _cleanup_free_ char *copy = strdup(*w);
                char *eq, *save = NULL;

                if (!copy)
                        return -ENOMEM;
                eq = strchr(copy, '=');
                if (!eq)
                        continue;
                *eq = '\0';
                /* The kernel treats '-' and '_' in parameter names alike. */
                for (char *p = copy; *p; p++)
                        if (*p == '-')
                                *p = '_';
                for (char *opt = strtok_r(eq + 1, ",", &save); opt;
                     opt = strtok_r(NULL, ",", &save)) {
                        struct hazard hz;
                        int r;

                        if (!hazard_of(copy, opt, &hz))
                                continue;
                        r = audit_add(c, AUDIT_CHECK_CMDLINE_HAZARD, hz.severity, *w,
                                      hz.whole || strcmp(opt, eq + 1) == 0 ? NULL : opt, hz.fix,
                                      "The kernel command line has %s, which %s", *w, hz.why);
                        if (r < 0)
                                return r;
                        r = audit_evidence(c, "proc/cmdline", "%s", *w);
                        if (r < 0)
                                return r;
                        if (hz.whole)
                                break;
                }
        }
        return 0;
}

static int check_thunderbolt(struct audit_ctx *c)
{
        _cleanup_closedir_ DIR *d = NULL;
        int r = root_opendir(c->root, "sys/bus/thunderbolt/devices", &d);

        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return 0; /* no Thunderbolt or USB4 controller */
        FOREACH_DIRENT (de, d) {
                _cleanup_free_ char *v = NULL;
                char path[512];

                if (strncmp(de->d_name, "domain", 6) != 0 || !str_is_decimal(de->d_name + 6))
                        continue;
                snprintf(path, sizeof(path), "sys/bus/thunderbolt/devices/%s/iommu_dma_protection",
                         de->d_name);
                if (root_read_line(c->root, path, &v) < 0 || strcmp(v, "0") != 0)
                        continue;
                snprintf(path, sizeof(path), "thunderbolt %s", de->d_name);
                r = audit_add(c, AUDIT_CHECK_PORT_EXTERNAL, AUDIT_SEVERITY_HIGH, path, NULL,
                              "Enable the IOMMU and the firmware's kernel DMA protection "
                              "(Thunderbolt security level, pre-boot DMA protection).",
                              "Thunderbolt/USB4 %s has no IOMMU DMA protection: a device "
                              "plugged into it can read and write host memory",
                              de->d_name);
                if (r >= 0) {
                        snprintf(path, sizeof(path),
                                 "sys/bus/thunderbolt/devices/%s/iommu_dma_protection", de->d_name);
                        r = audit_evidence(c, path, "0");
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

int audit_checks_host(struct audit_ctx *c)
{
        int (*const checks[])(struct audit_ctx *) = {
                check_iommu_present, check_iommu_translating, check_irq_remapping,
                check_irq_posted,    check_vfio_noiommu,      check_vfio_unsafe_interrupts,
                check_cmdline,       check_thunderbolt,
        };

        for (size_t i = 0; i < ELEMENTSOF(checks); i++) {
                int r = checks[i](c);
                if (r < 0)
                        return r;
        }
        return 0;
}
