/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "migration.h"
#include "topology.h"
#include "vfio-uapi.h"

#define VFIO_PCI "vfio-pci"

static void set(struct vfio_migration *mi, int capable, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void set(struct vfio_migration *mi, int capable, const char *fmt, ...)
{
        va_list ap;

        mi->capable = capable;
        va_start(ap, fmt);
        vsnprintf(mi->why, sizeof(mi->why), fmt, ap);
        va_end(ap);
}

void vfio_migration_guess(const char *driver, const char *candidate, bool bridge,
                          struct vfio_migration *ret)
{
        *ret = (struct vfio_migration){.dma_logging = -1, .iommu_dirty = -1};
        if (bridge)
                return set(ret, 0, "a bridge stays with the host");
        if (driver && driver_is_vfio(driver)) {
                snprintf(ret->driver, sizeof(ret->driver), "%s", driver);
                if (strcmp(driver, VFIO_PCI) == 0)
                        return set(ret, 0,
                                   "vfio-pci implements no migration (only a vendor's variant "
                                   "driver does)");
                return set(ret, -1,
                           "the variant driver %s may implement migration; the kernel tells on "
                           "the opened device (vfioctl probe)",
                           driver);
        }
        if (!candidate)
                return set(ret, -1,
                           "on no VFIO driver; the VFIO driver a bind chooses decides (vfioctl "
                           "show)");
        snprintf(ret->driver, sizeof(ret->driver), "%s", candidate);
        if (strcmp(candidate, VFIO_PCI) == 0)
                return set(ret, 0, "a bind gives it vfio-pci, which implements no migration");
        set(ret, -1,
            "a bind gives it the variant driver %s, which may implement migration; once bound, "
            "vfioctl probe asks the kernel",
            candidate);
}

/* "stop-copy, p2p, pre-copy": the states a migration driver offers. */
static void states_text(uint64_t states, char *buf, size_t size)
{
        snprintf(buf, size, "%s%s%s", states & VFIO_MIGRATION_STOP_COPY ? "stop-copy" : "",
                 states & VFIO_MIGRATION_P2P ? ", p2p" : "",
                 states & VFIO_MIGRATION_PRE_COPY ? ", pre-copy" : "");
}

void vfio_migration_ask(struct vfio_iommu *m, struct vfio_device *d, const char *driver,
                        struct vfio_migration *ret)
{
        /* struct vfio_device_feature, then struct vfio_device_feature_migration */
        uint64_t buf[(sizeof(struct vfio_device_feature) +
                      sizeof(struct vfio_device_feature_migration) + 7) /
                     8] = {0};
        struct vfio_device_feature *f = (struct vfio_device_feature *)buf;
        struct vfio_device_feature probe = {
                .argsz = sizeof(probe),
                .flags = VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET |
                         VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
        };
        bool iommufd = vfio_iommu_backend(m) == VFIO_BACKEND_IOMMUFD;
        const char *name = driver ? driver : "its driver";
        char states[48];
        int mig_err = 0;

        *ret = (struct vfio_migration){.from_kernel = true, .dma_logging = -1, .iommu_dirty = -1};
        snprintf(ret->driver, sizeof(ret->driver), "%s", driver ? driver : "");

        f->argsz = sizeof(buf);
        f->flags = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION;
        if (ioctl(vfio_device_fd(d), VFIO_DEVICE_FEATURE, f) < 0)
                mig_err = errno;
        else
                ret->states = ((struct vfio_device_feature_migration *)f->data)->flags;

        /* PROBE answers 0 when the driver logs its DMA, ENOTTY when it cannot (and on
         * kernels before 6.2, which know no such feature). */
        if (ioctl(vfio_device_fd(d), VFIO_DEVICE_FEATURE, &probe) == 0)
                ret->dma_logging = 1;
        else if (errno == ENOTTY)
                ret->dma_logging = 0;

        if (iommufd) {
                struct vfiod_iommu_hw_info hw = {
                        .size = sizeof(hw),
                        .dev_id = vfio_device_devid(d),
                };
                if (ioctl(vfio_iommu_fd(m), VFIOD_IOMMU_GET_HW_INFO, &hw) == 0)
                        ret->iommu_dirty =
                                !!(hw.out_capabilities & VFIOD_IOMMU_HW_CAP_DIRTY_TRACKING);
                else if (errno == ENOTTY) /* before 6.6: no dirty tracking either */
                        ret->iommu_dirty = 0;
        }

        if (mig_err == ENOTTY)
                return set(ret, 0,
                           "the kernel: %s implements no migration (VFIO_DEVICE_FEATURE_MIGRATION: "
                           "ENOTTY)",
                           name);
        if (mig_err)
                return set(ret, -1, "the kernel did not answer VFIO_DEVICE_FEATURE_MIGRATION: %s",
                           strerror(mig_err));
        if (!(ret->states & VFIO_MIGRATION_STOP_COPY))
                return set(ret, 0,
                           "the kernel: %s offers no STOP_COPY, the one state a migration needs",
                           name);
        states_text(ret->states, states, sizeof(states));
        if (ret->dma_logging == 1 || ret->iommu_dirty == 1)
                return set(ret, 1,
                           "the kernel: %s migrates (%s); the %s tracks the pages it writes", name,
                           states, ret->dma_logging == 1 ? "device" : "IOMMU");
        if (!iommufd)
                return set(ret, -1,
                           "the kernel: %s migrates (%s), but the device does not track the pages "
                           "it writes and a type1 container can only report every pinned page "
                           "dirty: open it through iommufd to ask the IOMMU",
                           name, states);
        set(ret, 0,
            "the kernel: %s migrates (%s), but neither the device nor the IOMMU tracks the pages "
            "it writes; QEMU refuses such a migration unless forced",
            name, states);
}

static json_object *tri(int v)
{
        return v < 0 ? NULL : json_object_new_boolean(v);
}

json_object *vfio_migration_to_json(const struct vfio_migration *mi)
{
        json_object *o = json_object_new_object(), *states = NULL;

        if (!o)
                return NULL;
        if (mi->from_kernel) {
                states = json_object_new_array();
                if (mi->states & VFIO_MIGRATION_STOP_COPY)
                        json_object_array_add(states, json_object_new_string("stop-copy"));
                if (mi->states & VFIO_MIGRATION_P2P)
                        json_object_array_add(states, json_object_new_string("p2p"));
                if (mi->states & VFIO_MIGRATION_PRE_COPY)
                        json_object_array_add(states, json_object_new_string("pre-copy"));
        }
        json_object_object_add(o, "capable", tri(mi->capable));
        json_object_object_add(o, "source",
                               json_object_new_string(mi->from_kernel ? "kernel" : "driver"));
        json_object_object_add(o, "driver",
                               mi->driver[0] ? json_object_new_string(mi->driver) : NULL);
        json_object_object_add(o, "states", states);
        json_object_object_add(o, "dma_logging", tri(mi->dma_logging));
        json_object_object_add(o, "iommu_dirty_tracking", tri(mi->iommu_dirty));
        json_object_object_add(o, "why", json_object_new_string(mi->why));
        return o;
}

json_object *vfio_migration_to_json_brief(const struct vfio_migration *mi)
{
        json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        json_object_object_add(o, "capable", tri(mi->capable));
        json_object_object_add(o, "source",
                               json_object_new_string(mi->from_kernel ? "kernel" : "driver"));
        json_object_object_add(o, "driver",
                               mi->driver[0] ? json_object_new_string(mi->driver) : NULL);
        return o;
}

const char *vfio_migration_verdict(const struct vfio_migration *mi)
{
        return mi->capable > 0 ? "yes" : mi->capable == 0 ? "no" : "unknown";
}
