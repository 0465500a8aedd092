/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dma.fault-probe: the audit's one check that acts instead of reading. It proves, on the
 * running kernel, that the IOMMU stops a device's DMA to an address nothing is mapped at
 * (vfio/probe.h), which no register or sysfs file can show. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit-internal.h"
#include "bind.h"
#include "probe.h"
#include "detail.h"

#define CHECK AUDIT_CHECK_DMA_FAULT_PROBE

static bool can_drive(const struct pci_device *d)
{
        return d->have_ids && vfio_probe_can_drive(d->vendor, d->device);
}

int audit_probe_validate(const struct audit_ctx *c, const struct audit_probe *probe,
                         char **ret_detail)
{
        for (size_t i = 0; probe && i < probe->n_devices; i++) {
                const struct pci_device *d = topology_find_device(c->t, &probe->devices[i]);
                char name[PCI_ADDR_STRLEN];
                int r = 0;

                pci_addr_format(&probe->devices[i], name);
                if (!d)
                        r = -ENODEV;
                else if (!c->in_scope[d - c->t->devices])
                        r = -EINVAL;
                else if (!can_drive(d))
                        r = -EOPNOTSUPP;
                if (r == 0)
                        continue;
                if (ret_detail &&
                    asprintf(ret_detail, "--probe %s: %s", name,
                             r == -ENODEV   ? "no such PCI device"
                             : r == -EINVAL ? "not one of the audited devices"
                                            : "the probe can drive only the DMA engine of QEMU's "
                                              "edu device (1234:11e8)") < 0)
                        *ret_detail = NULL;
                return r;
        }
        return 0;
}

static int not_probed(struct audit_ctx *c, const struct pci_device *d, const char *why,
                      const char *fix)
{
        int r = audit_add(c, CHECK, AUDIT_SEVERITY_MEDIUM, d->name, NULL, fix,
                          "The DMA fault probe could not run on %s: %s; the IOMMU's blocking of "
                          "stray DMA is unproven",
                          d->name, why);
        if (r >= 0)
                r = audit_device(c, d->name);
        if (r >= 0) {
                char path[128];
                r = audit_evidence(c, audit_device_path(d, "driver", path), "%s",
                                   d->driver ? d->driver : "no driver");
        }
        return r;
}

static const char *backend_node(enum vfio_backend b)
{
        return b == VFIO_BACKEND_IOMMUFD ? "dev/iommu" : "dev/vfio/vfio";
}

/* The finding for a probe that ran: severity by what it saw. */
static int judge(struct audit_ctx *c, const struct pci_device *d, enum vfio_backend b,
                 const struct vfio_probe_result *res, const char *how)
{
        enum audit_severity sev;
        const char *fix = NULL;
        char iova[32];
        int r;

        snprintf(iova, sizeof(iova), "0x%x", VFIO_PROBE_IOVA_FAULT);
        if (res->stop != VFIO_PROBE_RAN)
                return not_probed(c, d, res->stop_detail ? res->stop_detail : "setup failed",
                                  "look at the detail, then run 'vfioctl probe' on the device "
                                  "for every step");
        if (!res->to_device || !res->to_ram || !res->round_trip)
                return not_probed(c, d,
                                  "its DMA through mapped IOVAs did not return the data, so "
                                  "an unchanged page after the stray write proves nothing",
                                  "run 'vfioctl probe' on the device to see which step fails");
        if (!res->fault_done)
                return not_probed(c, d, "the stray DMA did not complete",
                                  "run 'vfioctl probe' on the device to see which step fails");

        if (res->fault_changed > 0) {
                sev = AUDIT_SEVERITY_CRITICAL;
                fix = "assign no device on this host: check that the IOMMU translates for vfio "
                      "(intel_iommu=on or amd_iommu=on, no pass-through for assigned groups) "
                      "and that the kernel is not patched to skip unmaps";
                r = audit_add(c, CHECK, sev, d->name, NULL, fix,
                              "The IOMMU did not block a stray DMA: %s wrote to the unmapped "
                              "IOVA %s and %zu of the %d bytes once mapped there changed",
                              d->name, iova, res->fault_changed, VFIO_PROBE_BYTES);
        } else if (!res->kmsg) {
                sev = AUDIT_SEVERITY_MEDIUM;
                fix = "run the audit as root with dev/kmsg readable, or look for the fault in "
                      "dmesg";
                r = audit_add(c, CHECK, sev, d->name, NULL, fix,
                              "A stray DMA of %s to the unmapped IOVA %s changed nothing, but "
                              "the kernel log could not be read to confirm the IOMMU's fault",
                              d->name, iova);
        } else if (!res->fault_line) {
                sev = AUDIT_SEVERITY_HIGH;
                fix = "treat the device as not isolated until the IOMMU reports the fault: "
                      "check dmesg and the IOMMU's setup (pass-through, a disabled unit)";
                r = audit_add(c, CHECK, sev, d->name, NULL, fix,
                              "A stray DMA of %s to the unmapped IOVA %s changed nothing there, "
                              "but the IOMMU reported no fault: the write went somewhere "
                              "unchecked",
                              d->name, iova);
        } else {
                sev = AUDIT_SEVERITY_INFO;
                r = audit_add(c, CHECK, sev, d->name, NULL, NULL,
                              "The IOMMU blocked a stray DMA of %s to the unmapped IOVA %s and "
                              "reported the fault",
                              d->name, iova);
        }
        if (r >= 0)
                r = audit_device(c, d->name);
        if (r >= 0)
                r = audit_evidence(c, backend_node(b),
                                   "%s: IOVA %s mapped and unmapped, then a %d-byte DMA to it: "
                                   "%zu bytes changed; round trip through 0x%x and 0x%x intact",
                                   vfio_backend_to_string(b), iova, VFIO_PROBE_BYTES,
                                   res->fault_changed, VFIO_PROBE_IOVA_SRC, VFIO_PROBE_IOVA_DST);
        if (r >= 0 && res->kmsg)
                r = audit_evidence(c, "dev/kmsg", "%s%s",
                                   res->fault_line ? res->fault_line
                                                   : "no IOMMU fault naming the device and the "
                                                     "IOVA",
                                   res->fault_retried ? " (on a second DMA: the kernel "
                                                        "rate-limits fault reports)"
                                                      : "");
        if (r >= 0) {
                char path[128];
                r = audit_evidence(c, audit_device_path(d, "driver", path), "%s", how);
        }
        return r;
}

/* Binds a device without a driver for the probe, probes it, and restores it. */
static int probe_one(struct audit_ctx *c, const struct pci_device *d, struct journal *j)
{
        _cleanup_(vfio_probe_result_done) struct vfio_probe_result res = {0};
        _cleanup_free_ char *why = NULL, *restore_why = NULL, *how = NULL, *bound_to = NULL;
        enum vfio_backend b = _VFIO_BACKEND_INVALID;
        bool bound = false;
        int r, k;

        if (d->driver && !driver_is_vfio(d->driver)) {
                _cleanup_free_ char *text = NULL;
                if (asprintf(&text,
                             "it is on the host driver %s, which the probe does not take "
                             "it from",
                             d->driver) < 0)
                        return -ENOMEM;
                return not_probed(c, d, text,
                                  "bind it to vfio-pci first ('vfioctl bind'), then audit "
                                  "again");
        }
        if (!d->driver) {
                struct bind_plan plan = {0};

                if (!j)
                        return not_probed(c, d,
                                          "it has no driver and no journal was given to "
                                          "bind it with",
                                          "run the audit as root");
                /* The binding engine's own rules: whole groups, no host use, and the VFIO
                 * driver a bind would choose (a variant where modules.alias names one). */
                r = bind_plan_build(c->t, &d->addr, 1, 0, &plan, &why);
                if (r >= 0 && plan.n_devices != 1)
                        r = -EBUSY;
                if (r >= 0)
                        r = bind_plan_choose_drivers(c->root, &plan, NULL, &why);
                if (r >= 0)
                        r = bind_plan_need_drivers(c->root, &plan, NULL, &why);
                if (r >= 0 && !(bound_to = strdup(bind_plan_driver(&plan, 0))))
                        r = -ENOMEM;
                if (r >= 0)
                        r = vfio_bind_plan(c->root, j, &plan, false, &why);
                bind_plan_done(&plan);
                if (r < 0)
                        return not_probed(c, d, detail_or_strerror(why, r),
                                          "bind its IOMMU group to vfio-pci first ('vfioctl bind "
                                          "--group'), then audit again");
                bound = true;
        }

        r = vfio_probe_device(c->root, &d->addr, _VFIO_BACKEND_INVALID, &res, &b, &why);

        if (bound) {
                k = vfio_device_restore(c->root, j, &d->addr, &restore_why);
                if (k < 0 && !restore_why)
                        restore_why = strdup(strerror(-k));
        }
        if (asprintf(&how, "%s%s%s%s%s%s", bound ? "no driver: bound to " : d->driver,
                     bound ? bound_to : "", bound ? " for the probe, " : "",
                     bound ? (restore_why ? "NOT restored: " : "then restored") : "",
                     restore_why ? restore_why : "",
                     restore_why ? " (run 'vfioctl restore --all')" : "") < 0)
                return -ENOMEM;

        if (r == -EPERM) {
                r = audit_add(c, CHECK, AUDIT_SEVERITY_CRITICAL, d->name, NULL,
                              "use a host with an IOMMU, and turn vfio's no-IOMMU mode off",
                              "No IOMMU translates the DMA of %s: nothing would stop a stray "
                              "write, so the probe did not send one (%s)",
                              d->name, strna(why));
                if (r >= 0)
                        r = audit_device(c, d->name);
                if (r >= 0) {
                        char path[128];
                        r = audit_evidence(c, audit_device_path(d, "driver", path), "%s", how);
                }
                return r;
        }
        if (r < 0) {
                _cleanup_free_ char *text = NULL;
                /* Where it went for the probe, and that it came back, or not. */
                if (asprintf(&text, "%s%s%s%s", detail_or_strerror(why, r), bound ? " (" : "",
                             bound ? how : "", bound ? ")" : "") < 0)
                        return -ENOMEM;
                return not_probed(c, d, text,
                                  r == -EBUSY ? "stop the program that holds the device open, "
                                                "then audit again"
                                              : "run 'vfioctl probe' on the device for details");
        }
        r = judge(c, d, b, &res, how);
        if (r >= 0 && restore_why)
                r = not_probed(c, d, how, "run 'vfioctl restore --all'");
        return r;
}

int audit_checks_probe(struct audit_ctx *c, const struct audit_probe *probe)
{
        const struct topology *t = c->t;
        size_t n = 0;
        int r;

        if (!probe)
                return audit_skip(c, CHECK, "not requested (--probe)");

        for (size_t i = 0; i < t->n_devices; i++) {
                const struct pci_device *d = &t->devices[i];
                bool named = probe->n_devices == 0;

                for (size_t k = 0; !named && k < probe->n_devices; k++)
                        named = pci_addr_equal(&probe->devices[k], &d->addr);
                if (!named || !c->in_scope[i] || !can_drive(d))
                        continue;
                n++;
                if (!t->host.iommu_present) {
                        /* A stray write with nothing to stop it lands in physical memory:
                         * the host's. Not even the binding (which would taint a no-IOMMU
                         * kernel) is done. */
                        r = audit_add(c, CHECK, AUDIT_SEVERITY_CRITICAL, d->name, NULL,
                                      "use a host with an IOMMU (see iommu.present)",
                                      "No IOMMU translates the DMA of %s: nothing would stop a "
                                      "stray write, so the probe did not send one",
                                      d->name);
                        if (r >= 0)
                                r = audit_device(c, d->name);
                        if (r >= 0)
                                r = audit_evidence(c, "sys/class/iommu", "no IOMMU unit");
                } else
                        r = probe_one(c, d, probe->journal);
                if (r < 0)
                        return r;
        }
        if (n > 0)
                return 0;
        r = audit_add(c, CHECK, AUDIT_SEVERITY_MEDIUM, "host", NULL,
                      "add a device the probe can drive (an emulated edu in a test machine with "
                      "the same kernel and IOMMU setup), or run the audit without --probe",
                      "No audited device has a DMA engine the probe can drive (QEMU's edu, "
                      "1234:11e8): the IOMMU's blocking of stray DMA is unproven");
        if (r >= 0)
                r = audit_evidence(c, "sys/bus/pci/devices", "%zu audited device%s, no 1234:11e8",
                                   c->n_in_scope, c->n_in_scope == 1 ? "" : "s");
        return r;
}
