/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The device request: who has a device open, and asking that process to let it go. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "detail.h"
#include "dev-node.h"
#include "fd-util.h"
#include "iommu.h"
#include "macro.h"
#include "request.h"
#include "sysfs-pci.h"

/* The paths its nodes' fd links show: "" where it has none. */
static void device_node_paths(const struct root *r, const struct pci_addr *a, char cdev[static 64],
                              char group[static 64])
{
        char node[VFIO_CDEV_PATH_MAX];
        int n;
        cdev[0] = group[0] = 0;
        if (vfio_device_cdev_index(r, a, &n) == 0)
                snprintf(cdev, 64, "/%s", vfio_cdev_path(n, node));
        if (vfio_device_group_id(r, a, &n) == 0) {
                snprintf(group, 64, "/dev/vfio/%d", n);
                /* A no-IOMMU group's node has its own name. */
                char noiommu[48];
                snprintf(noiommu, sizeof(noiommu), "dev/vfio/noiommu-%d", n);
                _cleanup_close_ int fd = root_openat(r, noiommu, O_PATH | O_CLOEXEC);
                if (fd >= 0)
                        snprintf(group, 64, "/%s", noiommu);
        }
}

/* Looks through the fds of the process whose proc directory is pid (a name under
 * proc/): 1 and *ret when one is a node of the device. */
static int process_find(int procfd, const char *pid, const char *cdev, const char *group,
                        struct vfio_device_file *ret)
{
        _cleanup_closedir_ DIR *fds = NULL;
        char path[300];
        snprintf(path, sizeof(path), "%s/fd", pid);
        if (dir_stream_open_at(procfd, path, &fds) < 0)
                return 0; /* gone, or a kernel thread */
        FOREACH_DIRENT (fe, fds) {
                char target[300];
                if (!str_is_decimal(fe->d_name))
                        continue;
                ssize_t k = readlinkat(dirfd(fds), fe->d_name, target, sizeof(target) - 1);
                if (k <= 0)
                        continue;
                target[k] = 0;
                bool is_cdev = cdev[0] && strcmp(target, cdev) == 0;
                if (is_cdev || (group[0] && strcmp(target, group) == 0)) {
                        *ret = (struct vfio_device_file){
                                .pid = atoi(pid), .fd = atoi(fe->d_name), .group = !is_cdev};
                        return 1;
                }
        }
        return 0;
}

int vfio_device_file_find(const struct root *r, const struct pci_addr *a, pid_t pid,
                          struct vfio_device_file *ret)
{
        char cdev[64], group[64];
        device_node_paths(r, a, cdev, group);
        if (!cdev[0] && !group[0])
                return 0;
        _cleanup_closedir_ DIR *proc = NULL;
        int q = dir_stream_from_fd(root_openat(r, "proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC),
                                   &proc);
        if (q < 0)
                return q;
        if (pid > 0) {
                char name[24];
                snprintf(name, sizeof(name), "%d", (int)pid);
                return process_find(dirfd(proc), name, cdev, group, ret);
        }
        FOREACH_DIRENT (de, proc)
                if (str_is_decimal(de->d_name) &&
                    process_find(dirfd(proc), de->d_name, cdev, group, ret) > 0)
                        return 1;
        return 0;
}

/* Whether fd, taken from another process, is the device's node itself: the path its fd
 * link shows names nothing for sure (a file of that name in another mount namespace
 * reads the same), and an ioctl of the daemon's goes to whatever driver fd has. */
static int is_device_node(const struct root *r, const struct pci_addr *a, bool group, int fd)
{
        char cdev[64], grp[64];
        struct stat want, got;

        device_node_paths(r, a, cdev, grp);
        const char *node = group ? grp : cdev;
        _cleanup_close_ int nfd = node[0] ? root_openat(r, node + 1, O_PATH | O_CLOEXEC) : -ENOENT;
        if (nfd < 0)
                return nfd;
        if (fstat(nfd, &want) < 0 || fstat(fd, &got) < 0)
                return negative_errno();
        return S_ISCHR(want.st_mode) && S_ISCHR(got.st_mode) && want.st_rdev == got.st_rdev;
}

/* Triggers the request through a file of the device itself. */
static int trigger_request(int device_fd)
{
        struct vfio_irq_set set = {
                .argsz = sizeof(set),
                .flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
                .index = VFIO_PCI_REQ_IRQ_INDEX,
                .start = 0,
                .count = 1,
        };
        return ioctl(device_fd, VFIO_DEVICE_SET_IRQS, &set) < 0 ? negative_errno() : 0;
}

int vfio_device_request(const struct root *r, const struct pci_addr *a, pid_t pid, pid_t *ret_pid,
                        char **ret_detail)
{
        char name[PCI_ADDR_STRLEN];
        pci_addr_format(a, name);
        struct vfio_device_file f;
        int k = pid > 0 ? vfio_device_file_find(r, a, pid, &f) : 0;
        if (k == 0)
                k = vfio_device_file_find(r, a, 0, &f);
        if (k < 0)
                return detail_errno(ret_detail, k,
                                    "cannot look for the processes that have %s "
                                    "open: %s",
                                    name, strerror(-k));
        if (k == 0)
                return detail_errno(ret_detail, -ENOENT, "no process has %s open", name);
        *ret_pid = f.pid;

        _cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, f.pid, 0);
        if (pidfd < 0)
                return detail_errno(ret_detail, negative_errno(), "pid %d: %s", (int)f.pid,
                                    strerror(errno));
        _cleanup_close_ int copy = (int)syscall(SYS_pidfd_getfd, pidfd, f.fd, 0);
        if (copy < 0)
                return detail_errno(ret_detail, negative_errno(),
                                    "cannot take a copy of pid %d's file of %s: %s", (int)f.pid,
                                    name, strerror(errno));
        int k2 = is_device_node(r, a, f.group, copy);
        if (k2 <= 0)
                return detail_errno(ret_detail, -ESTALE,
                                    "pid %d's file %d is not %s's VFIO node%s%s", (int)f.pid, f.fd,
                                    name, k2 < 0 ? ": " : "", k2 < 0 ? strerror(-k2) : "");
        _cleanup_close_ int opened = -EBADF;
        int device_fd = copy;
        if (f.group) {
                /* The group's file: the device is opened through it once more. Where the
                 * holder has not opened the device itself, this is its first open, and the
                 * close resets it: the holder was not using it. */
                opened = ioctl(copy, VFIO_GROUP_GET_DEVICE_FD, name);
                if (opened < 0) {
                        int e = errno;
                        return detail_errno(ret_detail, e == EINVAL ? -ENOTCONN : -e,
                                            "pid %d has the group of %s open, not the device "
                                            "(%s)",
                                            (int)f.pid, name, strerror(e));
                }
                device_fd = opened;
        }
        int q = trigger_request(device_fd);
        if (q == -EINVAL)
                return detail_errno(ret_detail, -ENOTCONN,
                                    "pid %d does not listen for %s's device request (it set no "
                                    "eventfd for it, or has not bound its file)",
                                    (int)f.pid, name);
        if (q < 0)
                return detail_errno(ret_detail, q, "cannot send %s's device request to pid %d: %s",
                                    name, (int)f.pid, strerror(-q));
        return 0;
}
