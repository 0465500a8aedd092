/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fd-util.h"
#include "macro.h"
#include "root.h"

int root_open(const char *path, struct root **ret)
{
        _cleanup_close_ int fd = -EBADF;
        struct stat st_root, st;
        struct root *r;

        if (!path || !*path)
                path = "/";
        fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0 || stat("/", &st_root) < 0)
                return negative_errno();

        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->path = strdup(path);
        if (!r->path) {
                free(r);
                return -ENOMEM;
        }
        r->is_host = st.st_dev == st_root.st_dev && st.st_ino == st_root.st_ino;
        r->fd = TAKE_FD(fd);
        *ret = r;
        return 0;
}

struct root *root_free(struct root *r)
{
        if (!r)
                return NULL;
        safe_close(r->fd);
        free(r->path);
        free(r);
        return NULL;
}

bool path_is_safe_relative(const char *p)
{
        if (!p || !*p || *p == '/')
                return false;
        for (const char *c = p; *c;) {
                size_t n = strcspn(c, "/");
                if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
                        return false;
                c += n;
                if (*c == '/')
                        c++;
                if (*c == '\0' && c[-1] == '/')
                        return false;
        }
        return true;
}

int root_openat(const struct root *r, const char *relpath, int flags)
{
        struct open_how how = {
                .flags = (uint64_t)(flags | O_CLOEXEC),
                .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        };
        int fd;

        if (!path_is_safe_relative(relpath))
                return -EINVAL;
        if (r->is_host) /* no tree to stay inside of: save the slower resolution */
                fd = openat(r->fd, relpath, flags | O_CLOEXEC);
        else {
                fd = (int)syscall(SYS_openat2, r->fd, relpath, &how, sizeof(how));
                if (fd < 0 && errno == ENOSYS)
                        fd = openat(r->fd, relpath, flags | O_CLOEXEC);
        }
        return fd < 0 ? negative_errno() : fd;
}

int root_opendir(const struct root *r, const char *relpath, DIR **ret)
{
        return dir_stream_from_fd(root_openat(r, relpath, O_RDONLY | O_DIRECTORY), ret);
}

bool root_exists(const struct root *r, const char *relpath)
{
        _cleanup_close_ int fd = root_openat(r, relpath, O_PATH);
        return fd >= 0;
}

int fd_read_all(int fd, size_t max, char **ret, size_t *ret_len)
{
        size_t len = 0, cap = 4096 < max + 1 ? 4096 : max + 1;
        _cleanup_free_ char *buf = malloc(cap);

        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t n;

                if (len + 1 >= cap) {
                        if (cap > max)
                                return -EFBIG;
                        size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
                        char *nbuf = realloc(buf, ncap);
                        if (!nbuf)
                                return -ENOMEM;
                        buf = nbuf;
                        cap = ncap;
                }
                n = read(fd, buf + len, cap - 1 - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        break;
                len += (size_t)n;
        }
        buf[len] = '\0';
        if (ret_len)
                *ret_len = len;
        *ret = TAKE_PTR(buf);
        return 0;
}

int dir_read_file(int dirfd, const char *name, size_t max, char **ret, size_t *ret_len)
{
        _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        char small[4096];
        ssize_t n;
        char *s;

        if (fd < 0)
                return negative_errno();
        /* A sysfs attribute is produced whole by the first read (at most a page), and a
         * regular file read short is at its end: a read that does not fill the buffer is
         * the whole file, which spares the read that would return 0. */
        do
                n = read(fd, small, sizeof(small));
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return negative_errno();
        if ((size_t)n >= sizeof(small)) {
                if (lseek(fd, 0, SEEK_SET) < 0)
                        return negative_errno();
                return fd_read_all(fd, max, ret, ret_len);
        }
        if ((size_t)n > max)
                return -EFBIG;
        s = malloc((size_t)n + 1);
        if (!s)
                return -ENOMEM;
        memcpy(s, small, (size_t)n);
        s[n] = '\0';
        if (ret_len)
                *ret_len = (size_t)n;
        *ret = s;
        return 0;
}

int root_read_file(const struct root *r, const char *relpath, size_t max, char **ret,
                   size_t *ret_len)
{
        _cleanup_close_ int fd = root_openat(r, relpath, O_RDONLY | O_NOCTTY);

        if (fd < 0)
                return fd;
        return fd_read_all(fd, max, ret, ret_len);
}

static int first_line(char *s, char **ret)
{
        size_t n = strcspn(s, "\n");

        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
                n--;
        s[n] = '\0';
        if (n == 0) {
                free(s);
                return -ENODATA;
        }
        *ret = s;
        return 0;
}

int dir_read_line(int dirfd, const char *name, char **ret)
{
        char *s;
        int r = dir_read_file(dirfd, name, 64 * 1024, &s, NULL);

        return r < 0 ? r : first_line(s, ret);
}

int root_read_line(const struct root *r, const char *relpath, char **ret)
{
        char *s;
        int k = root_read_file(r, relpath, 64 * 1024, &s, NULL);

        return k < 0 ? k : first_line(s, ret);
}

int root_kernel_release(const struct root *r, char **ret)
{
        char *s = NULL;
        int k = root_read_line(r, "proc/sys/kernel/osrelease", &s);

        if (k < 0)
                return k;
        /* It names a directory below lib/modules: one component, nothing else. */
        if (!s[0] || strchr(s, '/') || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) {
                free(s);
                return -EBADMSG;
        }
        *ret = s;
        return 0;
}

int dir_read_int(int dirfd, const char *name, int64_t *ret)
{
        _cleanup_free_ char *s = NULL;
        char *end;
        long long v;
        int r = dir_read_line(dirfd, name, &s);

        if (r < 0)
                return r;
        errno = 0;
        v = strtoll(s, &end, 0);
        if (errno != 0 || end == s || *end != '\0')
                return -EINVAL;
        *ret = v;
        return 0;
}

int dir_read_hex(int dirfd, const char *name, uint64_t *ret)
{
        _cleanup_free_ char *s = NULL;
        char *end;
        unsigned long long v;
        int r = dir_read_line(dirfd, name, &s);

        if (r < 0)
                return r;
        if (s[0] == '-' || s[0] == '+' || s[0] == ' ')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 16);
        if (errno != 0 || end == s || *end != '\0')
                return -EINVAL;
        *ret = v;
        return 0;
}

int dir_readlink(int dirfd, const char *name, char **ret)
{
        char buf[PATH_MAX];
        ssize_t n = readlinkat(dirfd, name, buf, sizeof(buf) - 1);
        char *s;

        if (n < 0)
                return negative_errno();
        buf[n] = '\0';
        s = strdup(buf);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int dir_readlink_basename(int dirfd, const char *name, char **ret)
{
        _cleanup_free_ char *target = NULL;
        const char *base;
        int r = dir_readlink(dirfd, name, &target);

        if (r < 0)
                return r;
        base = strrchr(target, '/');
        base = base ? base + 1 : target;
        if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
                return -EINVAL;
        *ret = strdup(base);
        return *ret ? 0 : -ENOMEM;
}

int parse_boolean(const char *s, bool *ret)
{
        if (!s)
                return -EINVAL;
        if (strcmp(s, "Y") == 0 || strcmp(s, "y") == 0 || strcmp(s, "1") == 0) {
                *ret = true;
                return 0;
        }
        if (strcmp(s, "N") == 0 || strcmp(s, "n") == 0 || strcmp(s, "0") == 0) {
                *ret = false;
                return 0;
        }
        return -EINVAL;
}

bool str_is_decimal(const char *s)
{
        if (!s || !*s)
                return false;
        for (; *s; s++)
                if (*s < '0' || *s > '9')
                        return false;
        return true;
}

int path_resolve_link(const char *linkdir, const char *target, char **ret)
{
        size_t cap = strlen(linkdir) + strlen(target) + 2, len = 0;
        _cleanup_free_ char *out = malloc(cap);

        if (!out)
                return -ENOMEM;
        out[0] = '\0';
        if (target[0] != '/') {
                memcpy(out, linkdir, strlen(linkdir) + 1);
                len = strlen(out);
        }
        for (const char *c = target; *c;) {
                size_t n = strcspn(c, "/");

                if (n == 2 && c[0] == '.' && c[1] == '.') {
                        char *slash;
                        while (len > 0 && out[len - 1] == '/')
                                len--;
                        slash = len > 0 ? memrchr(out, '/', len) : NULL;
                        len = slash ? (size_t)(slash - out) : 0;
                        out[len] = '\0';
                } else if (n > 0 && !(n == 1 && c[0] == '.')) {
                        if (len > 0)
                                out[len++] = '/';
                        memcpy(out + len, c, n);
                        len += n;
                        out[len] = '\0';
                }
                c += n;
                if (*c == '/')
                        c++;
        }
        if (len == 0)
                return -EINVAL;
        *ret = TAKE_PTR(out);
        return 0;
}

int root_write_string(const struct root *r, const char *relpath, const char *s)
{
        /* O_TRUNC as a shell's '>' has it: sysfs ignores it, and a tree of plain files
         * then holds exactly the last value written, as the attribute would read. */
        _cleanup_close_ int fd = root_openat(r, relpath, O_WRONLY | O_TRUNC | O_NOCTTY);
        size_t len = strlen(s);
        ssize_t n;

        if (fd < 0)
                return fd;
        n = write(fd, s, len);
        if (n < 0)
                return negative_errno();
        return (size_t)n == len ? 0 : -EIO;
}

int root_mkdir_p(const struct root *r, const char *relpath)
{
        _cleanup_free_ char *p = strdup(relpath);
        int fd;

        if (!p)
                return -ENOMEM;
        if (!path_is_safe_relative(relpath))
                return -EINVAL;
        fd = root_openat(r, p, O_RDONLY | O_DIRECTORY);
        if (fd >= 0 || fd != -ENOENT)
                return fd;
        /* Create each missing component in turn, below the root. */
        for (char *slash = p;; slash++) {
                _cleanup_close_ int parent = -EBADF;
                const char *base;

                slash = strchr(slash, '/');
                if (slash)
                        *slash = '\0';
                base = strrchr(p, '/');
                if (base) {
                        char *cut = (char *)base;
                        *cut = '\0';
                        parent = root_openat(r, p, O_RDONLY | O_DIRECTORY);
                        *cut = '/';
                        base++;
                } else {
                        parent = fcntl(r->fd, F_DUPFD_CLOEXEC, 3);
                        base = p;
                }
                if (parent < 0)
                        return parent;
                if (mkdirat(parent, base, 0700) < 0 && errno != EEXIST)
                        return negative_errno();
                if (!slash)
                        break;
                *slash = '/';
        }
        return root_openat(r, p, O_RDONLY | O_DIRECTORY);
}

int dir_write_atomic(int dirfd, const char *name, const char *data, size_t len)
{
        return dir_write_replace(dirfd, name, data, len, true);
}

int dir_write_replace(int dirfd, const char *name, const char *data, size_t len, bool durable)
{
        char tmp[NAME_MAX + 1];
        _cleanup_close_ int fd = -EBADF;
        int r = 0;

        if (snprintf(tmp, sizeof(tmp), ".%s.tmp", name) >= (int)sizeof(tmp))
                return -ENAMETOOLONG;
        fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return negative_errno();
        for (size_t off = 0; off < len;) {
                ssize_t n = write(fd, data + off, len - off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = negative_errno();
                        break;
                }
                off += (size_t)n;
        }
        if (r == 0 && durable && fsync(fd) < 0)
                r = negative_errno();
        if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
                r = negative_errno();
        if (r < 0) {
                (void)unlinkat(dirfd, tmp, 0);
                return r;
        }
        return durable && fsync(dirfd) < 0 ? negative_errno() : 0;
}
