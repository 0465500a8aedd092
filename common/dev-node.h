/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The names of the device nodes vfio makes, root-relative like every path below a root:
 * prefix "/" for the live host's name. */

#include <errno.h>
#include <stdio.h>

/* Room for "dev/vfio/devices/vfio" and any int, NUL included. */
#define VFIO_CDEV_PATH_MAX 40

/* "dev/vfio/devices/vfioN", the char device of the vfio device with cdev index n.
 * Returns buf. */
static inline char *vfio_cdev_path(int n, char buf[static VFIO_CDEV_PATH_MAX])
{
        snprintf(buf, VFIO_CDEV_PATH_MAX, "dev/vfio/devices/vfio%d", n);
        return buf;
}

/* The reverse: n of a path vfio_cdev_path() made; -EINVAL for any other path. */
static inline int vfio_cdev_path_index(const char *path, int *ret)
{
        int n, end = 0;
        if (sscanf(path, "dev/vfio/devices/vfio%d%n", &n, &end) != 1 || path[end] != '\0' || n < 0)
                return -EINVAL;
        *ret = n;
        return 0;
}
