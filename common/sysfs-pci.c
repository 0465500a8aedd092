/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "macro.h"
#include "sysfs-pci.h"

static bool driver_name_is_safe(const char *d)
{
        return d && *d && !strchr(d, '/') && strcmp(d, ".") != 0 && strcmp(d, "..") != 0 &&
               strlen(d) < 256;
}

static int device_path(const struct pci_addr *a, const char *attr, char *buf, size_t size)
{
        char addr[PCI_ADDR_STRLEN];

        if (snprintf(buf, size, "sys/bus/pci/devices/%s%s%s", pci_addr_format(a, addr),
                     attr ? "/" : "", attr ? attr : "") >= (int)size)
                return -ENAMETOOLONG;
        return 0;
}

int pci_sysfs_device_exists(const struct root *r, const struct pci_addr *a)
{
        char p[128];
        int fd;

        if (device_path(a, NULL, p, sizeof(p)) < 0)
                return -ENAMETOOLONG;
        fd = root_openat(r, p, O_PATH | O_DIRECTORY);
        if (fd < 0)
                return fd == -ENOENT ? -ENODEV : fd;
        close(fd);
        return 0;
}

int pci_sysfs_get_driver(const struct root *r, const struct pci_addr *a, char **ret)
{
        char p[128];
        _cleanup_close_ int fd = -EBADF;
        int k;

        if (device_path(a, NULL, p, sizeof(p)) < 0)
                return -ENAMETOOLONG;
        fd = root_openat(r, p, O_PATH | O_DIRECTORY);
        if (fd < 0)
                return fd == -ENOENT ? -ENODEV : fd;
        k = dir_readlink_basename(fd, "driver", ret);
        if (k == -ENOENT) {
                *ret = NULL;
                return 0;
        }
        return k;
}

int pci_sysfs_get_modalias(const struct root *r, const struct pci_addr *a, char **ret)
{
        char p[128];
        int k;

        if (device_path(a, "modalias", p, sizeof(p)) < 0)
                return -ENAMETOOLONG;
        k = root_read_line(r, p, ret);
        if (k == -ENOENT && pci_sysfs_device_exists(r, a) < 0)
                return -ENODEV;
        return k;
}

int pci_sysfs_get_override(const struct root *r, const struct pci_addr *a, char **ret)
{
        char p[128];
        char *s = NULL;
        int k;

        if (device_path(a, "driver_override", p, sizeof(p)) < 0)
                return -ENAMETOOLONG;
        k = root_read_line(r, p, &s);
        if (k == -ENODATA || (k >= 0 && strcmp(s, "(null)") == 0)) {
                free(s);
                *ret = NULL;
                return 0;
        }
        if (k == -ENOENT)
                return pci_sysfs_device_exists(r, a) < 0 ? -ENODEV : -ENOENT;
        if (k < 0)
                return k;
        *ret = s;
        return 0;
}

int pci_sysfs_set_override(const struct root *r, const struct pci_addr *a, const char *driver)
{
        char p[128];
        int k;

        if (driver && !driver_name_is_safe(driver))
                return -EINVAL;
        if (device_path(a, "driver_override", p, sizeof(p)) < 0)
                return -ENAMETOOLONG;
        k = root_write_string(r, p, driver ? driver : "\n");
        if (k == -ENOENT && pci_sysfs_device_exists(r, a) < 0)
                return -ENODEV;
        return k;
}

static int write_driver_file(const struct root *r, const struct pci_addr *a, const char *driver,
                             const char *file)
{
        char p[512], addr[PCI_ADDR_STRLEN];
        int k;

        if (!driver_name_is_safe(driver))
                return -EINVAL;
        snprintf(p, sizeof(p), "sys/bus/pci/drivers/%s/%s", driver, file);
        k = root_write_string(r, p, pci_addr_format(a, addr));
        if (k < 0 && pci_sysfs_device_exists(r, a) == -ENODEV)
                return -ENODEV;
        return k;
}

int pci_sysfs_unbind(const struct root *r, const struct pci_addr *a, const char *driver)
{
        return write_driver_file(r, a, driver, "unbind");
}

int pci_sysfs_bind(const struct root *r, const struct pci_addr *a, const char *driver)
{
        return write_driver_file(r, a, driver, "bind");
}

int pci_sysfs_probe(const struct root *r, const struct pci_addr *a)
{
        char addr[PCI_ADDR_STRLEN];
        int k = root_write_string(r, "sys/bus/pci/drivers_probe", pci_addr_format(a, addr));

        if (k < 0 && pci_sysfs_device_exists(r, a) == -ENODEV)
                return -ENODEV;
        return k;
}

int pci_sysfs_reset(const struct root *r, const struct pci_addr *a)
{
        char p[128];
        int k;

        if (device_path(a, "reset", p, sizeof(p)) < 0)
                return -ENAMETOOLONG;
        k = root_write_string(r, p, "1");
        if (k == -ENOENT)
                return pci_sysfs_device_exists(r, a) < 0 ? -ENODEV : -ENOTTY;
        return k;
}

int pci_sysfs_driver_exists(const struct root *r, const char *driver)
{
        char p[512];
        int fd;

        if (!driver_name_is_safe(driver))
                return -EINVAL;
        snprintf(p, sizeof(p), "sys/bus/pci/drivers/%s", driver);
        fd = root_openat(r, p, O_PATH | O_DIRECTORY);
        if (fd < 0)
                return fd;
        close(fd);
        return 0;
}
