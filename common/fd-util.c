/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fd-util.h"

int dir_stream_from_fd(int fd, DIR **ret)
{
        DIR *d;

        if (fd < 0)
                return fd;
        d = fdopendir(fd);
        if (!d) {
                int r = negative_errno();
                safe_close(fd);
                return r;
        }
        *ret = d;
        return 0;
}

int dir_stream_open_at(int dirfd, const char *name, DIR **ret)
{
        int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

        if (fd < 0)
                return negative_errno();
        return dir_stream_from_fd(fd, ret);
}

int dir_stream_dup(int dirfd, DIR **ret)
{
        /* A fresh open rather than dup(): a dup shares the file offset, and the stream
         * would start wherever another reader of dirfd left it. */
        return dir_stream_open_at(dirfd, ".", ret);
}

int rm_rf_children(int dirfd)
{
        _cleanup_closedir_ DIR *d = NULL;
        int r = dir_stream_dup(dirfd, &d);

        if (r < 0)
                return r;
        FOREACH_DIRENT (de, d) {
                struct stat st;
                int k = 0;

                if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue; /* gone meanwhile */
                if (S_ISDIR(st.st_mode)) {
                        k = rm_rf_at(dirfd, de->d_name);
                } else if (unlinkat(dirfd, de->d_name, 0) < 0)
                        k = negative_errno();
                if (k < 0 && r == 0)
                        r = k;
        }
        return r;
}

int rm_rf_at(int dirfd, const char *name)
{
        int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

        if (fd < 0) {
                /* Not a directory (or a symlink to one): a single unlink does. */
                if (errno == ENOTDIR || errno == ELOOP)
                        return unlinkat(dirfd, name, 0) < 0 ? negative_errno() : 0;
                return negative_errno();
        }
        (void)rm_rf_children(fd);
        safe_close(fd);
        return unlinkat(dirfd, name, AT_REMOVEDIR) < 0 ? negative_errno() : 0;
}
