/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "cdi.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "detail.h"
#include "macro.h"

static int env_add(json_object *env, const char *key, const char *var, const char *value)
{
        _cleanup_free_ char *s = NULL;
        json_object *o;

        if (asprintf(&s, "VFIOD_PCI_%s_%s=%s", key, var, value) < 0)
                return -ENOMEM;
        o = json_object_new_string(s);
        if (!o || json_object_array_add(env, o) < 0) {
                json_object_put(o);
                return -ENOMEM;
        }
        return 0;
}

int cdi_device_env(const struct fleet_config *c, const struct fleet_device *d, json_object *env)
{
        char key[PCI_ADDR_STRLEN], numa[16];
        int q;

        memcpy(key, d->name, sizeof(key));
        for (char *p = key; *p; p++)
                if (*p == ':' || *p == '.')
                        *p = '_';
        if ((q = env_add(env, key, "ADDRESS", d->name)) < 0 ||
            (q = env_add(env, key, "POOL", c->pools[d->pool].name)) < 0 ||
            (q = env_add(env, key, "NODE", d->nodes[1])) < 0)
                return q;
        if (d->is_vf && (q = env_add(env, key, "PF", d->pf)) < 0)
                return q;
        snprintf(numa, sizeof(numa), "%d", d->numa_node);
        if (d->numa_node >= 0 && (q = env_add(env, key, "NUMA_NODE", numa)) < 0)
                return q;
        return 0;
}

/* Adds v under k to o; false (v released) when either is missing or the add fails. */
static bool put(json_object *o, const char *k, json_object *v)
{
        if (o && v && json_object_object_add(o, k, v) == 0)
                return true;
        json_object_put(v);
        return false;
}

static bool append(json_object *a, json_object *v)
{
        if (a && v && json_object_array_add(a, v) == 0)
                return true;
        json_object_put(v);
        return false;
}

static json_object *device_build(const struct fleet_config *c, const struct fleet_device *d)
{
        json_object *dev = json_object_new_object(), *edits = json_object_new_object(),
                    *env = json_object_new_array(), *nodes = json_object_new_array();
        bool ok = dev && edits && env && nodes;

        if (!ok) {
                json_object_put(dev);
                json_object_put(edits);
                json_object_put(env);
                json_object_put(nodes);
                return NULL;
        }
        /* From here on each object is owned by its parent, whatever happens. */
        ok = put(dev, "name", json_object_new_string(d->name));
        ok = put(dev, "containerEdits", edits) && ok;
        ok = put(edits, "env", env) && ok;
        ok = put(edits, "deviceNodes", nodes) && ok;

        for (size_t i = 0; ok && i < ELEMENTSOF(d->nodes); i++) {
                json_object *n = json_object_new_object();
                ok = append(nodes, n) && put(n, "path", json_object_new_string(d->nodes[i]));
        }
        ok = ok && cdi_device_env(c, d, env) == 0;
        if (!ok) {
                json_object_put(dev);
                return NULL;
        }
        return dev;
}

json_object *cdi_spec_build(const struct fleet_config *c, const struct fleet_inventory *inv)
{
        json_object *spec = json_object_new_object(), *devices = json_object_new_array();
        bool ok = spec && devices && put(spec, "cdiVersion", json_object_new_string(CDI_VERSION)) &&
                  put(spec, "kind", json_object_new_string(c->cdi_kind));

        if (!ok) {
                json_object_put(spec);
                json_object_put(devices);
                return NULL;
        }
        ok = put(spec, "devices", devices);
        for (size_t i = 0; ok && i < inv->n_devices; i++)
                ok = append(devices, device_build(c, &inv->devices[i]));
        if (!ok) {
                json_object_put(spec);
                return NULL;
        }
        return spec;
}

char *cdi_spec_file_name(const char *kind)
{
        char *s = NULL;
        if (asprintf(&s, "%s.json", kind) < 0)
                return NULL;
        for (char *p = s; *p; p++)
                if (*p == '/')
                        *p = '-';
        return s;
}

static const char *hint(int r)
{
        return r == -EACCES || r == -EPERM ? " (run as root, or give vfiod's user write access)"
               : r == -EROFS               ? " (a read-only file system: choose another directory)"
                                           : "";
}

/* An fd of dir that is a real directory, created when missing. */
static int spec_dir_open(const char *dir, char **ret_detail)
{
        struct stat st;
        int fd;

        if (lstat(dir, &st) < 0) {
                int r = negative_errno();
                if (r != -ENOENT)
                        return detail_errno(ret_detail, r, "CDI spec directory %s: %s", dir,
                                            strerror(-r));
                if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
                        r = negative_errno();
                        return detail_errno(ret_detail, r,
                                            "cannot create the CDI spec directory %s: %s%s", dir,
                                            strerror(-r), hint(r));
                }
        }
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                int r = negative_errno();
                if (r == -ELOOP || (r == -ENOTDIR && lstat(dir, &st) == 0 && S_ISLNK(st.st_mode)))
                        return detail_errno(ret_detail, -ELOOP,
                                            "CDI spec directory %s is a symbolic link: refusing to "
                                            "write through it (a link can send the spec anywhere); "
                                            "make it a real directory",
                                            dir);
                if (r == -ENOTDIR)
                        return detail_errno(ret_detail, r,
                                            "CDI spec directory %s is not a directory", dir);
                return detail_errno(ret_detail, r, "cannot open the CDI spec directory %s: %s%s",
                                    dir, strerror(-r), hint(r));
        }
        return fd;
}

static int write_all(int fd, const char *s, size_t n)
{
        while (n > 0) {
                ssize_t k = write(fd, s, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                s += k;
                n -= (size_t)k;
        }
        return 0;
}

int cdi_spec_write(const char *dir, const char *kind, const char *text, char **ret_path,
                   char **ret_detail)
{
        _cleanup_free_ char *name = cdi_spec_file_name(kind), *tmp = NULL, *path = NULL;
        _cleanup_close_ int dfd = -EBADF, fd = -EBADF;
        int r;

        if (!name || asprintf(&path, "%s/%s", dir, name) < 0)
                return -ENOMEM;
        dfd = spec_dir_open(dir, ret_detail);
        if (dfd < 0)
                return dfd;
        /* A dot name that does not end in .json: runtimes skip it while it is written. */
        for (unsigned i = 0; fd < 0; i++) {
                free(tmp);
                if (asprintf(&tmp, ".%s.%ld.%u.tmp", name, (long)getpid(), i) < 0)
                        return -ENOMEM;
                fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
                if (fd < 0 && (errno != EEXIST || i >= 100)) {
                        r = negative_errno();
                        return detail_errno(ret_detail, r,
                                            "cannot write a file in the CDI spec "
                                            "directory %s: %s%s",
                                            dir, strerror(-r), hint(r));
                }
        }
        r = write_all(fd, text, strlen(text));
        if (r >= 0 && fchmod(fd, 0644) < 0)
                r = negative_errno();
        if (r >= 0 && fsync(fd) < 0)
                r = negative_errno();
        if (r >= 0 && renameat(dfd, tmp, dfd, name) < 0)
                r = negative_errno();
        if (r < 0) {
                (void)unlinkat(dfd, tmp, 0);
                return detail_errno(ret_detail, r, "cannot write %s: %s", path, strerror(-r));
        }
        /* The rename itself is durable only once the directory is. */
        if (fsync(dfd) < 0) {
                r = negative_errno();
                return detail_errno(ret_detail, r, "cannot sync %s: %s", dir, strerror(-r));
        }
        if (ret_path)
                *ret_path = TAKE_PTR(path);
        return 0;
}

int cdi_spec_remove(const char *dir, const char *kind, char **ret_detail)
{
        _cleanup_free_ char *name = cdi_spec_file_name(kind);
        _cleanup_close_ int dfd = -EBADF;

        if (!name)
                return -ENOMEM;
        dfd = spec_dir_open(dir, ret_detail);
        if (dfd < 0)
                return dfd;
        if (unlinkat(dfd, name, 0) < 0) {
                int r = negative_errno();
                if (r == -ENOENT)
                        return 0;
                return detail_errno(ret_detail, r, "cannot remove %s/%s: %s%s", dir, name,
                                    strerror(-r), hint(r));
        }
        if (fsync(dfd) < 0) {
                int r = negative_errno();
                return detail_errno(ret_detail, r, "cannot sync %s: %s", dir, strerror(-r));
        }
        return 0;
}

int cdi_spec_publish(const char *dir, const struct fleet_config *c, const char *text,
                     size_t n_devices, char **ret_path, char **ret_detail)
{
        if (ret_path)
                *ret_path = NULL;
        if (n_devices == 0)
                return cdi_spec_remove(dir, c->cdi_kind, ret_detail);
        return cdi_spec_write(dir, c->cdi_kind, text, ret_path, ret_detail);
}
