/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "interrupt-remap.h"

/* A host with one IOMMU unit and one device behind it, shaped by each test. */
struct host {
        char dir[64];
        struct root *root;
        struct iommu_unit unit;
        struct pci_device dev;
        struct topology t;
};

static int host_setup(void **state)
{
        struct host *h = calloc(1, sizeof(*h));

        assert_non_null(h);
        snprintf(h->dir, sizeof(h->dir), "/tmp/vfiod-test-ir-XXXXXX");
        assert_non_null(mkdtemp(h->dir));
        assert_int_equal(root_open(h->dir, &h->root), 0);
        h->unit = (struct iommu_unit){
                .name = (char *)"dmar0",
                .kind = IOMMU_KIND_INTEL_VTD,
                .have_cap = true,
                .have_ecap = true,
                /* QEMU's VT-d with intremap=on: ecap IR (bit 3), no posted interrupts. */
                .cap = 0xd2008c222f0686ull,
                .ecap = 0xf00f4aull,
        };
        iommu_unit_decode(&h->unit);
        h->dev = (struct pci_device){.iommu_unit = (char *)"dmar0", .iommu_group = 9};
        h->t = (struct topology){
                .devices = &h->dev,
                .n_devices = 1,
                .units = &h->unit,
                .n_units = 1,
                .host = {.iommu_present = true,
                         .ir_enabled = TRI_YES,
                         .allow_unsafe_interrupts = TRI_NO},
        };
        *state = h;
        return 0;
}

static void write_file(const char *path, const char *s)
{
        FILE *f = fopen(path, "we");
        assert_non_null(f);
        fputs(s, f);
        fclose(f);
}

static int host_teardown(void **state)
{
        static const char *const made[] = {
                "sys/module/iommufd/parameters/allow_unsafe_interrupts",
                "sys/module/iommufd/parameters",
                "sys/module/iommufd",
                "sys/module",
                "sys",
        };
        struct host *h = *state;
        char p[160];

        /* Deepest first; what a test did not make is simply absent. */
        for (size_t i = 0; i < sizeof(made) / sizeof(made[0]); i++) {
                snprintf(p, sizeof(p), "%s/%s", h->dir, made[i]);
                if (unlink(p) < 0)
                        rmdir(p);
        }
        rmdir(h->dir);
        root_free(h->root);
        free(h);
        return 0;
}

static void a_unit_that_remaps_with_remapping_on_is_safe(void **state)
{
        struct host *h = *state;
        struct interrupt_remap_status s;
        char *why = NULL;

        interrupt_remap_status_get(h->root, &h->t, &h->dev, &s);
        assert_int_equal(s.isolation, IRQ_ISOLATION_REMAPPED);
        assert_string_equal(s.unit, "dmar0");
        assert_true(s.unit_remaps);
        assert_false(s.posted);
        assert_int_equal(interrupt_remap_check_assignment(&s, "0000:01:00.0", false, false, &why),
                         0);
        assert_null(why);
}

static void posted_interrupts_are_reported(void **state)
{
        struct host *h = *state;
        struct interrupt_remap_status s;

        h->unit.cap |= 1ull << 59;
        iommu_unit_decode(&h->unit);
        interrupt_remap_status_get(h->root, &h->t, &h->dev, &s);
        assert_int_equal(s.isolation, IRQ_ISOLATION_REMAPPED);
        assert_true(s.posted);
        assert_non_null(strstr(s.why, "posts"));
}

static void a_unit_without_remapping_is_refused_with_what_to_do(void **state)
{
        struct host *h = *state;
        struct interrupt_remap_status s;
        char *why = NULL;

        h->unit.ecap &= ~(1ull << 3);
        iommu_unit_decode(&h->unit);
        interrupt_remap_status_get(h->root, &h->t, &h->dev, &s);
        assert_int_equal(s.isolation, IRQ_ISOLATION_NONE);
        assert_int_equal(interrupt_remap_check_assignment(&s, "0000:01:00.0", false, false, &why),
                         -EPERM);
        assert_non_null(strstr(why, "0000:01:00.0: refusing"));
        assert_non_null(strstr(why, "does not implement interrupt remapping"));
        assert_non_null(strstr(why, "--allow-unsafe-interrupts"));
        assert_non_null(strstr(why, "vfio_iommu_type1.allow_unsafe_interrupts=1"));
        assert_int_equal(interrupt_remap_check_assignment(&s, "0000:01:00.0", true, false, &why),
                         -EPERM);
        assert_non_null(strstr(why, "iommufd.allow_unsafe_interrupts=1"));
        free(why);
}

static void remapping_switched_off_counts_as_none(void **state)
{
        struct host *h = *state;
        struct interrupt_remap_status s;

        h->t.host.ir_enabled = TRI_NO;
        interrupt_remap_status_get(h->root, &h->t, &h->dev, &s);
        assert_int_equal(s.isolation, IRQ_ISOLATION_NONE);
        assert_non_null(strstr(s.why, "switched off"));
        h->t.host.ir_enabled = TRI_UNKNOWN;
        interrupt_remap_status_get(h->root, &h->t, &h->dev, &s);
        assert_int_equal(s.isolation, IRQ_ISOLATION_UNKNOWN);
}

static void explicit_permission_passes_with_a_warning(void **state)
{
        struct host *h = *state;
        struct interrupt_remap_status s;
        char *why = NULL, p[160];

        h->t.host.ir_enabled = TRI_NO;
        interrupt_remap_status_get(h->root, &h->t, &h->dev, &s);
        /* The caller's permission, while the kernel still forbids it: a warning that
         * says the kernel will refuse. */
        assert_int_equal(interrupt_remap_check_assignment(&s, "0000:01:00.0", false, true, &why),
                         0);
        assert_non_null(strstr(why, "WARNING"));
        assert_non_null(strstr(why, "the kernel refuses unless"));
        /* The kernel's own switch counts as permission. */
        h->t.host.allow_unsafe_interrupts = TRI_YES;
        interrupt_remap_status_get(h->root, &h->t, &h->dev, &s);
        assert_int_equal(interrupt_remap_check_assignment(&s, "0000:01:00.0", false, false, &why),
                         0);
        assert_non_null(strstr(why, "vfio_iommu_type1.allow_unsafe_interrupts is on"));
        /* iommufd's switch is read below the root. */
        assert_int_equal(interrupt_remap_check_assignment(&s, "0000:01:00.0", true, false, &why),
                         -EPERM);
        snprintf(p, sizeof(p), "%s/sys", h->dir);
        mkdir(p, 0755);
        snprintf(p, sizeof(p), "%s/sys/module", h->dir);
        mkdir(p, 0755);
        snprintf(p, sizeof(p), "%s/sys/module/iommufd", h->dir);
        mkdir(p, 0755);
        snprintf(p, sizeof(p), "%s/sys/module/iommufd/parameters", h->dir);
        mkdir(p, 0755);
        snprintf(p, sizeof(p), "%s/sys/module/iommufd/parameters/allow_unsafe_interrupts", h->dir);
        write_file(p, "Y\n");
        interrupt_remap_status_get(h->root, &h->t, &h->dev, &s);
        assert_int_equal(s.iommufd_allows_unsafe, TRI_YES);
        assert_int_equal(interrupt_remap_check_assignment(&s, "0000:01:00.0", true, false, &why),
                         0);
        free(why);
}

static void no_iommu_means_no_isolation(void **state)
{
        struct host *h = *state;
        struct interrupt_remap_status s;

        h->t.n_units = 0;
        h->t.host.iommu_present = false;
        h->dev.iommu_unit = NULL;
        interrupt_remap_status_get(h->root, &h->t, &h->dev, &s);
        assert_int_equal(s.isolation, IRQ_ISOLATION_NONE);
        assert_null(s.unit);
        assert_string_equal(s.why, "there is no IOMMU");
}

static void an_undecodable_iommu_leaves_it_to_the_kernel(void **state)
{
        struct host *h = *state;
        struct interrupt_remap_status s;
        char *why = NULL;

        h->unit.kind = IOMMU_KIND_OTHER;
        interrupt_remap_status_get(h->root, &h->t, &h->dev, &s);
        assert_int_equal(s.isolation, IRQ_ISOLATION_UNKNOWN);
        assert_int_equal(interrupt_remap_check_assignment(&s, "0000:01:00.0", false, false, &why),
                         0);
        assert_non_null(strstr(why, "the kernel will decide"));
        free(why);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, host_setup, host_teardown)
        const struct CMUnitTest tests[] = {
                T(a_unit_that_remaps_with_remapping_on_is_safe),
                T(posted_interrupts_are_reported),
                T(a_unit_without_remapping_is_refused_with_what_to_do),
                T(remapping_switched_off_counts_as_none),
                T(explicit_permission_passes_with_a_warning),
                T(no_iommu_means_no_isolation),
                T(an_undecodable_iommu_leaves_it_to_the_kernel),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
