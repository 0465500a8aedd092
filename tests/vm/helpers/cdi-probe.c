/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The program the lab's cdi scenario runs inside a container: for every device the CDI
 * spec gave it (a VFIOD_PCI_<ADDR>_NODE variable), it opens the nodes it was handed and
 * asks the kernel about them, printing one line per answer:
 *   iommufd: IOMMU_IOAS_ALLOC on /dev/iommu, then VFIO_DEVICE_BIND_IOMMUFD of the
 *            device's cdev to it;
 *   type1:   VFIO_GET_API_VERSION on /dev/vfio/vfio and VFIO_GROUP_GET_STATUS on the
 *            group's node, which must say viable.
 * Built static: the container's root file system holds nothing but this program.
 * Exit 0 when every device answered as it should, 1 otherwise (2: no device given). */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vfio-uapi.h"

extern char **environ;

/* The iommufd path: a fresh IOAS on /dev/iommu, and the device's cdev bound to it. */
static int probe_iommufd(const char *addr, const char *node)
{
        struct iommu_ioas_alloc alloc = {.size = sizeof(alloc)};
        struct vfio_device_bind_iommufd bind = {.argsz = sizeof(bind)};
        int iommufd, dev, ok = 0;

        iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
        if (iommufd < 0) {
                printf("FAIL %s: open /dev/iommu: %s\n", addr, strerror(errno));
                return -1;
        }
        if (ioctl(iommufd, IOMMU_IOAS_ALLOC, &alloc) < 0) {
                printf("FAIL %s: IOMMU_IOAS_ALLOC: %s\n", addr, strerror(errno));
                ok = -1;
        } else
                printf("PASS %s: IOMMU_IOAS_ALLOC gave IOAS %u\n", addr, alloc.out_ioas_id);
        dev = open(node, O_RDWR | O_CLOEXEC);
        if (dev < 0) {
                printf("FAIL %s: open %s: %s\n", addr, node, strerror(errno));
                close(iommufd);
                return -1;
        }
        bind.iommufd = iommufd;
        if (ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &bind) < 0) {
                printf("FAIL %s: VFIO_DEVICE_BIND_IOMMUFD of %s: %s\n", addr, node,
                       strerror(errno));
                ok = -1;
        } else
                printf("PASS %s: VFIO_DEVICE_BIND_IOMMUFD of %s gave devid %u\n", addr, node,
                       bind.out_devid);
        close(dev);
        close(iommufd);
        return ok;
}

/* The type1 path: the container's API version, and the group's viability. */
static int probe_type1(const char *addr, const char *node)
{
        struct vfio_group_status status = {.argsz = sizeof(status)};
        int container, group, version, ok = 0;

        container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
        if (container < 0) {
                printf("FAIL %s: open /dev/vfio/vfio: %s\n", addr, strerror(errno));
                return -1;
        }
        version = ioctl(container, VFIO_GET_API_VERSION);
        if (version != VFIO_API_VERSION) {
                printf("FAIL %s: VFIO_GET_API_VERSION gave %d (%s)\n", addr, version,
                       version < 0 ? strerror(errno) : "unexpected");
                ok = -1;
        } else
                printf("PASS %s: VFIO_GET_API_VERSION gave %d\n", addr, version);
        close(container);
        group = open(node, O_RDWR | O_CLOEXEC);
        if (group < 0) {
                printf("FAIL %s: open %s: %s\n", addr, node, strerror(errno));
                return -1;
        }
        if (ioctl(group, VFIO_GROUP_GET_STATUS, &status) < 0) {
                printf("FAIL %s: VFIO_GROUP_GET_STATUS on %s: %s\n", addr, node, strerror(errno));
                ok = -1;
        } else if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
                printf("FAIL %s: VFIO_GROUP_GET_STATUS on %s: flags %#x, not viable\n", addr, node,
                       status.flags);
                ok = -1;
        } else
                printf("PASS %s: VFIO_GROUP_GET_STATUS on %s: viable (flags %#x)\n", addr, node,
                       status.flags);
        close(group);
        return ok;
}

int main(void)
{
        static const char prefix[] = "VFIOD_PCI_", suffix[] = "_NODE=";
        int n = 0, failed = 0;

        for (char **e = environ; *e; e++) {
                const char *eq = strchr(*e, '='), *node;
                char addr[64];
                size_t keylen;

                if (strncmp(*e, prefix, strlen(prefix)) != 0 || !eq)
                        continue;
                keylen = (size_t)(eq - *e) + 1;
                if (keylen < strlen(prefix) + strlen(suffix) ||
                    strncmp(eq + 1 - strlen(suffix), suffix, strlen(suffix)) != 0)
                        continue;
                /* The address as the variable spells it (0000_01_00_0). */
                snprintf(addr, sizeof(addr), "%.*s",
                         (int)(keylen - strlen(prefix) - strlen(suffix)), *e + strlen(prefix));
                node = eq + 1;
                n++;
                if (strncmp(node, "/dev/vfio/devices/", strlen("/dev/vfio/devices/")) == 0)
                        failed |= probe_iommufd(addr, node) < 0;
                else
                        failed |= probe_type1(addr, node) < 0;
        }
        if (n == 0) {
                printf("FAIL no VFIOD_PCI_*_NODE variable: the container was given no device\n");
                return 2;
        }
        return failed ? 1 : 0;
}
