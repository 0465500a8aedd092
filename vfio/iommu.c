/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "detail.h"
#include "dev-node.h"
#include "fd-util.h"
#include "iommu-internal.h"
#include "macro.h"
#include "request.h"
#include "string-table.h"
#include "sysfs-pci.h"
#include "topology.h"

static const char *const vfio_backend_table[_VFIO_BACKEND_MAX] = {
        [VFIO_BACKEND_TYPE1] = "type1",
        [VFIO_BACKEND_IOMMUFD] = "iommufd",
        [VFIO_BACKEND_NOIOMMU] = "noiommu",
};

DEFINE_STRING_TABLE_LOOKUP(vfio_backend, enum vfio_backend);

static const struct vfio_iommu_ops *backend_ops(enum vfio_backend b)
{
        switch (b) {
        case VFIO_BACKEND_TYPE1:
                return &vfio_iommu_type1_ops;
        case VFIO_BACKEND_IOMMUFD:
                return &vfio_iommu_iommufd_ops;
        case VFIO_BACKEND_NOIOMMU:
                return &vfio_iommu_noiommu_ops;
        default:
                return NULL;
        }
}

static int device_dir(const struct root *r, const struct pci_addr *a, int flags)
{
        char name[PCI_ADDR_STRLEN], path[64];

        snprintf(path, sizeof(path), "sys/bus/pci/devices/%s", pci_addr_format(a, name));
        return root_openat(r, path, flags | O_DIRECTORY);
}

int vfio_device_group_id(const struct root *r, const struct pci_addr *a, int *ret)
{
        _cleanup_close_ int dfd = device_dir(r, a, O_PATH);
        _cleanup_free_ char *base = NULL;
        char *end;
        long id;
        int q;

        if (dfd < 0)
                return dfd;
        q = dir_readlink_basename(dfd, "iommu_group", &base);
        if (q < 0)
                return q == -EINVAL ? -ENOENT : q;
        errno = 0;
        id = strtol(base, &end, 10);
        if (errno != 0 || *end || end == base || id < 0 || id > INT32_MAX)
                return -EINVAL;
        *ret = (int)id;
        return 0;
}

int vfio_device_cdev_index(const struct root *r, const struct pci_addr *a, int *ret)
{
        _cleanup_close_ int dfd = device_dir(r, a, O_PATH);
        _cleanup_closedir_ DIR *d = NULL;
        int q;

        if (dfd < 0)
                return dfd;
        q = dir_stream_open_at(dfd, "vfio-dev", &d);
        if (q < 0)
                return q;
        FOREACH_DIRENT (de, d) {
                unsigned n;
                char tail;
                /* Since 6.1 a vfio device has a vfio-dev/vfioN entry in sysfs, but only
                 * a kernel with vfio cdevs (6.6 on, CONFIG_VFIO_DEVICE_CDEV) gives it a
                 * character device, with its "dev" attribute. */
                if (sscanf(de->d_name, "vfio%u%c", &n, &tail) == 1 && n <= INT32_MAX) {
                        char dev[32];
                        snprintf(dev, sizeof(dev), "vfio%u/dev", n);
                        if (faccessat(dirfd(d), dev, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
                                continue;
                        *ret = (int)n;
                        return 0;
                }
        }
        return -ENOENT;
}

int vfio_backend_detect(const struct root *r, const struct pci_addr *a, enum vfio_backend *ret,
                        char **ret_detail)
{
        _cleanup_free_ char *driver = NULL;
        char name[PCI_ADDR_STRLEN], path[64];
        int q, group, cdev;

        pci_addr_format(a, name);
        if (pci_sysfs_device_exists(r, a) < 0)
                return detail_errno(ret_detail, -ENODEV, "%s: no such PCI device", name);
        q = pci_sysfs_get_driver(r, a, &driver);
        if (q < 0 && q != -ENOENT)
                return detail_errno(ret_detail, q, "%s: cannot read its driver: %s", name,
                                    strerror(-q));
        if (!driver || !driver_is_vfio(driver))
                return detail_errno(ret_detail, -EMEDIUMTYPE,
                                    "%s is not bound to vfio-pci (driver: %s): bind it first "
                                    "with 'vfioctl bind %s'",
                                    name, driver ? driver : "none", name);
        q = vfio_device_group_id(r, a, &group);
        if (q < 0)
                return detail_errno(ret_detail, -ENOENT,
                                    "%s is on %s but has no IOMMU group: vfio cannot open it", name,
                                    driver);

        snprintf(path, sizeof(path), "dev/vfio/noiommu-%d", group);
        if (root_exists(r, path)) {
                *ret = VFIO_BACKEND_NOIOMMU;
                return 0;
        }
        if (vfio_device_cdev_index(r, a, &cdev) >= 0 && root_exists(r, "dev/iommu")) {
                char node[VFIO_CDEV_PATH_MAX];
                if (root_exists(r, vfio_cdev_path(cdev, node))) {
                        *ret = VFIO_BACKEND_IOMMUFD;
                        return 0;
                }
        }
        snprintf(path, sizeof(path), "dev/vfio/%d", group);
        if (root_exists(r, path)) {
                *ret = VFIO_BACKEND_TYPE1;
                return 0;
        }
        return detail_errno(ret_detail, -ENOENT,
                            "%s: neither /dev/vfio/%d nor a vfio device cdev exists (is "
                            "devtmpfs mounted?)",
                            name, group);
}

int vfio_open_node(const struct root *r, const char *relpath, char **ret_detail)
{
        int fd = root_openat(r, relpath, O_RDWR | O_NOCTTY);

        if (fd < 0)
                return detail_errno(ret_detail, fd, "cannot open /%s: %s%s", relpath, strerror(-fd),
                                    fd == -EACCES || fd == -EPERM ? " (run as root, or be "
                                                                    "given the file descriptor)"
                                                                  : "");
        return fd;
}

static const char *raw_node(enum vfio_backend b)
{
        return b == VFIO_BACKEND_IOMMUFD ? "dev/iommu" : "dev/vfio/vfio";
}

static int iommu_make(const struct root *r, int fd, enum vfio_backend b, unsigned flags,
                      struct vfio_iommu **ret, char **ret_detail)
{
        _cleanup_close_ int owned = fd;
        const struct vfio_iommu_ops *ops = backend_ops(b);
        struct vfio_iommu *m;
        int q;

        if (!ops)
                return detail_errno(ret_detail, -EINVAL, "unknown VFIO backend %d", (int)b);
        if (b == VFIO_BACKEND_NOIOMMU && !(flags & VFIO_IOMMU_ALLOW_NOIOMMU))
                return detail_errno(ret_detail, -EPERM,
                                    "refusing vfio's no-IOMMU mode without an explicit request: "
                                    "a device opened there can read and write all memory");
        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        *m = (struct vfio_iommu){
                .ops = ops,
                .root = r,
                .flags = flags,
                .fd = TAKE_FD(owned),
                .ranges_stale = true,
                .dma_avail = UINT32_MAX,
        };
        q = ops->setup(m, ret_detail);
        if (q < 0) {
                vfio_iommu_free(m);
                return q;
        }
        *ret = m;
        return 0;
}

int vfio_iommu_new(const struct root *r, enum vfio_backend b, unsigned flags,
                   struct vfio_iommu **ret, char **ret_detail)
{
        int fd;

        if (!backend_ops(b))
                return detail_errno(ret_detail, -EINVAL, "unknown VFIO backend %d", (int)b);
        fd = vfio_open_node(r, raw_node(b), ret_detail);
        if (fd < 0)
                return fd;
        return iommu_make(r, fd, b, flags, ret, ret_detail);
}

int vfio_iommu_new_from_fd(const struct root *r, int fd, enum vfio_backend b, unsigned flags,
                           struct vfio_iommu **ret, char **ret_detail)
{
        return iommu_make(r, fd, b, flags, ret, ret_detail);
}

int vfio_iommu_open_raw(const struct root *r, enum vfio_backend b, unsigned flags, int *ret_fd,
                        bool *ret_process_accounting, char **ret_detail)
{
        bool process_accounting = b != VFIO_BACKEND_IOMMUFD;
        int fd;

        if (!backend_ops(b))
                return detail_errno(ret_detail, -EINVAL, "unknown VFIO backend %d", (int)b);
        if (b == VFIO_BACKEND_NOIOMMU && !(flags & VFIO_IOMMU_ALLOW_NOIOMMU))
                return detail_errno(ret_detail, -EPERM,
                                    "refusing vfio's no-IOMMU mode without an explicit request");
        fd = vfio_open_node(r, raw_node(b), ret_detail);
        if (fd < 0)
                return fd;
        if (b == VFIO_BACKEND_IOMMUFD && (flags & VFIO_IOMMU_PROCESS_ACCOUNTING))
                process_accounting = vfio_iommufd_set_process_accounting(fd) >= 0;
        *ret_fd = fd;
        if (ret_process_accounting)
                *ret_process_accounting = process_accounting;
        return 0;
}

struct vfio_iommu *vfio_iommu_free(struct vfio_iommu *m)
{
        if (!m)
                return NULL;
        /* Closing the handle makes the kernel drop every mapping and unpin its pages;
         * only the windows this object mapped into the process are left to undo. */
        for (size_t i = 0; i < m->table.n; i++)
                if (m->table.v[i].window)
                        munmap(m->table.v[i].window, m->table.v[i].window_size);
        dma_table_done(&m->table);
        for (size_t i = 0; i < m->n_groups; i++)
                safe_close(m->groups[i].fd);
        free(m->groups);
        free(m->ranges);
        safe_close(m->fd);
        free(m);
        return NULL;
}

enum vfio_backend vfio_iommu_backend(const struct vfio_iommu *m)
{
        return m->ops->backend;
}

int vfio_iommu_fd(const struct vfio_iommu *m)
{
        return m->fd;
}

uint32_t vfio_iommu_ioas(const struct vfio_iommu *m)
{
        return m->ioas_id;
}

bool vfio_iommu_process_accounting(const struct vfio_iommu *m)
{
        return m->ops->backend != VFIO_BACKEND_IOMMUFD || m->process_accounting;
}

int vfio_device_open_by(const struct root *r, const struct pci_addr *a, int *ret_pid)
{
        struct vfio_device_file f;
        int k = vfio_device_file_find(r, a, 0, &f);
        if (k > 0 && ret_pid)
                *ret_pid = (int)f.pid;
        return k;
}

int vfio_group_busy(const struct root *r, int group)
{
        char node[32];
        snprintf(node, sizeof(node), "dev/vfio/%d", group);
        int fd = root_openat(r, node, O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd == -EBUSY)
                return 1;
        if (fd < 0)
                return fd;
        safe_close(fd);
        return 0;
}

int vfio_device_group_busy(const struct root *r, const struct pci_addr *a)
{
        int group;
        int k = vfio_device_group_id(r, a, &group);
        return k < 0 ? k : vfio_group_busy(r, group);
}
