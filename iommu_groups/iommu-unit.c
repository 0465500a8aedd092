/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fd-util.h"
#include "macro.h"
#include "string-table.h"
#include "strv.h"
#include "topology-internal.h"

/* Intel VT-d (Architecture Specification, "Capability Register" and "Extended
 * Capability Register"). */
#define VTD_CAP_PI    (1ull << 59) /* posted interrupts */
#define VTD_ECAP_DT   (1ull << 2)  /* device TLB: ATS honoured */
#define VTD_ECAP_IR   (1ull << 3)  /* interrupt remapping */
#define VTD_ECAP_EIM  (1ull << 4)  /* extended interrupt mode: x2APIC */
#define VTD_ECAP_PT   (1ull << 6)  /* pass-through translation type */
#define VTD_ECAP_NEST (1ull << 26) /* nested translation */
#define VTD_ECAP_SMTS (1ull << 43) /* scalable mode translation */

/* AMD I/O Virtualization Technology, Extended Feature Register. */
#define AMD_EFR_XT        (1ull << 2)  /* x2APIC */
#define AMD_EFR_GT        (1ull << 4)  /* guest translation */
#define AMD_EFR_GA        (1ull << 7)  /* guest virtual APIC */
#define AMD_EFR_GAM_VAPIC (1ull << 21) /* virtual APIC guest mode: posting to vCPUs */

static const char *const iommu_kind_table[] = {
        [IOMMU_KIND_INTEL_VTD] = "intel-vtd",
        [IOMMU_KIND_AMD_VI] = "amd-vi",
        [IOMMU_KIND_OTHER] = "other",
};

DEFINE_STRING_TABLE_TO_STRING_FALLBACK(iommu_kind, enum iommu_kind, "other");

void iommu_unit_decode(struct iommu_unit *u)
{
        switch (u->kind) {
        case IOMMU_KIND_INTEL_VTD:
                u->interrupt_remapping = u->ecap & VTD_ECAP_IR;
                u->posted_interrupts = u->cap & VTD_CAP_PI;
                u->pass_through = u->ecap & VTD_ECAP_PT;
                u->scalable_mode = u->ecap & VTD_ECAP_SMTS;
                u->x2apic = u->ecap & VTD_ECAP_EIM;
                u->device_tlb = u->ecap & VTD_ECAP_DT;
                u->nested = u->ecap & VTD_ECAP_NEST;
                break;
        case IOMMU_KIND_AMD_VI:
                /* AMD-Vi remaps interrupts through the device table on every
                 * implementation, and always offers identity (pass-through) domains. */
                u->interrupt_remapping = true;
                u->pass_through = true;
                u->posted_interrupts = (u->ecap & AMD_EFR_GA) && (u->ecap & AMD_EFR_GAM_VAPIC);
                u->x2apic = u->ecap & AMD_EFR_XT;
                u->nested = u->ecap & AMD_EFR_GT;
                u->device_tlb = true;
                u->scalable_mode = false;
                break;
        default:
                break;
        }
}

/* The features file reads "efr" on old kernels and "a:b" on newer ones, where the order
 * of EFR and EFR2 changed between releases. EFR is never zero on real parts and EFR2
 * usually is, so take the non-zero half, and the first when both are set (the current
 * order). */
static int parse_amd_features(const char *s, uint64_t *ret)
{
        unsigned long long a, b;
        char tail;

        if (sscanf(s, "%llx:%llx%c", &a, &b, &tail) == 2) {
                *ret = a == 0 ? b : a;
                return 0;
        }
        if (sscanf(s, "%llx%c", &a, &tail) == 1) {
                *ret = a;
                return 0;
        }
        return -EINVAL;
}

static size_t count_entries(int dirfd, const char *name)
{
        _cleanup_closedir_ DIR *d = NULL;
        size_t n = 0;

        if (dir_stream_open_at(dirfd, name, &d) < 0)
                return 0;
        FOREACH_DIRENT (de, d)
                if (de->d_name[0] != '.')
                        n++;
        return n;
}

static int unit_compare(const void *a, const void *b)
{
        return strcmp(((const struct iommu_unit *)a)->name, ((const struct iommu_unit *)b)->name);
}

static int scan_one_unit(struct scan_ctx *c, const char *name, struct iommu_unit *u)
{
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *features = NULL;
        int r;

        if (asprintf(&path, "sys/class/iommu/%s", name) < 0)
                return -ENOMEM;
        *u = (struct iommu_unit){.kind = IOMMU_KIND_OTHER};
        u->name = strdup(name);
        if (!u->name)
                return -ENOMEM;
        fd = root_openat(c->root, path, O_PATH | O_DIRECTORY);
        if (fd < 0)
                return scan_warn(c, r = fd, "IOMMU unit %s: cannot open %s", name, path);

        if (faccessat(fd, "intel-iommu", F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
                u->kind = IOMMU_KIND_INTEL_VTD;
                r = dir_read_hex(fd, "intel-iommu/cap", &u->cap);
                if (r < 0)
                        scan_warn(c, r, "IOMMU unit %s: cannot read intel-iommu/cap", name);
                u->have_cap = r >= 0;
                r = dir_read_hex(fd, "intel-iommu/ecap", &u->ecap);
                if (r < 0)
                        scan_warn(c, r, "IOMMU unit %s: cannot read intel-iommu/ecap", name);
                u->have_ecap = r >= 0;
                (void)dir_read_line(fd, "intel-iommu/version", &u->version);
        } else if (faccessat(fd, "amd-iommu", F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
                u->kind = IOMMU_KIND_AMD_VI;
                r = dir_read_hex(fd, "amd-iommu/cap", &u->cap);
                if (r < 0)
                        scan_warn(c, r, "IOMMU unit %s: cannot read amd-iommu/cap", name);
                u->have_cap = r >= 0;
                r = dir_read_line(fd, "amd-iommu/features", &features);
                if (r >= 0)
                        r = parse_amd_features(features, &u->ecap);
                if (r < 0)
                        scan_warn(c, r, "IOMMU unit %s: cannot read amd-iommu/features", name);
                u->have_ecap = r >= 0;
        }
        u->n_devices = count_entries(fd, "devices");
        iommu_unit_decode(u);
        return 0;
}

int scan_iommu_units(struct scan_ctx *c)
{
        struct topology *t = c->t;
        _cleanup_closedir_ DIR *d = NULL;
        int r = scan_opendir(c, "sys/class/iommu", &d);

        if (r < 0 || !d)
                return r;
        FOREACH_DIRENT (de, d) {
                struct iommu_unit *nu;

                if (de->d_name[0] == '.')
                        continue;
                nu = realloc(t->units, (t->n_units + 1) * sizeof(*nu));
                if (!nu) {
                        r = -ENOMEM;
                        break;
                }
                t->units = nu;
                r = scan_one_unit(c, de->d_name, &t->units[t->n_units]);
                if (r == -ENOMEM) {
                        free(t->units[t->n_units].name);
                        break;
                }
                t->n_units++;
                r = 0;
        }
        if (t->n_units > 1)
                qsort(t->units, t->n_units, sizeof(*t->units), unit_compare);
        return r;
}
