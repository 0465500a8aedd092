/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Live-migration readiness without the kernel (vfio/migration.c): what a device's driver,
 * or the VFIO driver a bind would give it, says, and the JSON every front end prints.
 * The kernel's own answer is asserted in the lab (tests/vm/scenarios/vfio.sh). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "migration.h"

static json_object *member(json_object *o, const char *key)
{
        json_object *v = NULL;
        assert_true(json_object_object_get_ex(o, key, &v));
        return v;
}

static void assert_json(const struct vfio_migration *mi, const char *capable, const char *driver)
{
        json_object *o = vfio_migration_to_json(mi);
        json_object *cap, *drv;

        assert_non_null(o);
        cap = member(o, "capable");
        drv = member(o, "driver");
        if (!capable)
                assert_null(cap);
        else
                assert_string_equal(json_object_to_json_string(cap), capable);
        if (!driver)
                assert_null(drv);
        else
                assert_string_equal(json_object_get_string(drv), driver);
        assert_string_equal(json_object_get_string(member(o, "source")), "driver");
        /* The driver alone never tells states or dirty tracking. */
        assert_null(member(o, "states"));
        assert_null(member(o, "dma_logging"));
        assert_null(member(o, "iommu_dirty_tracking"));
        assert_string_equal(json_object_get_string(member(o, "why")), mi->why);
        json_object_put(o);
}

static void bound_to_vfio_pci_is_no(void **state)
{
        struct vfio_migration mi;

        (void)state;
        vfio_migration_guess("vfio-pci", NULL, false, &mi);
        assert_int_equal(mi.capable, 0);
        assert_false(mi.from_kernel);
        assert_non_null(strstr(mi.why, "vfio-pci implements no migration"));
        assert_string_equal(vfio_migration_verdict(&mi), "no");
        assert_json(&mi, "false", "vfio-pci");
}

static void bound_to_a_variant_is_unknown(void **state)
{
        struct vfio_migration mi;

        (void)state;
        vfio_migration_guess("mlx5_vfio_pci", "mlx5_vfio_pci", false, &mi);
        assert_int_equal(mi.capable, -1);
        assert_non_null(strstr(mi.why, "mlx5_vfio_pci may implement migration"));
        assert_non_null(strstr(mi.why, "vfioctl probe"));
        assert_string_equal(vfio_migration_verdict(&mi), "unknown");
        assert_json(&mi, NULL, "mlx5_vfio_pci");
}

static void host_driver_goes_by_the_candidate(void **state)
{
        struct vfio_migration mi;

        (void)state;
        /* The driver a bind gives it decides, not the host driver it has now. */
        vfio_migration_guess("igb", "vfio-pci", false, &mi);
        assert_int_equal(mi.capable, 0);
        assert_non_null(strstr(mi.why, "a bind gives it vfio-pci"));
        assert_json(&mi, "false", "vfio-pci");

        vfio_migration_guess(NULL, "virtio_vfio_pci", false, &mi);
        assert_int_equal(mi.capable, -1);
        assert_non_null(strstr(mi.why, "variant driver virtio_vfio_pci"));
        assert_json(&mi, NULL, "virtio_vfio_pci");

        /* A list has no candidate: it cannot say. */
        vfio_migration_guess("nvme", NULL, false, &mi);
        assert_int_equal(mi.capable, -1);
        assert_non_null(strstr(mi.why, "on no VFIO driver"));
        assert_json(&mi, NULL, NULL);
}

static void a_bridge_is_no(void **state)
{
        struct vfio_migration mi;

        (void)state;
        vfio_migration_guess("pcieport", NULL, true, &mi);
        assert_int_equal(mi.capable, 0);
        assert_string_equal(mi.why, "a bridge stays with the host");
        assert_json(&mi, "false", NULL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(bound_to_vfio_pci_is_no),
                cmocka_unit_test(bound_to_a_variant_is_unknown),
                cmocka_unit_test(host_driver_goes_by_the_candidate),
                cmocka_unit_test(a_bridge_is_no),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
