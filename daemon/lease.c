/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "lease.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "macro.h"
#include "strv.h"

void lease_done(struct lease *l)
{
        free(l->devices);
        l->devices = NULL;
        free(l->device_release);
        l->device_release = NULL;
        l->n_devices = 0;
        l->pidfd = safe_close(l->pidfd);
}

enum release_action lease_device_release(const struct lease *l, size_t i)
{
        return l->device_release && i < l->n_devices ? l->device_release[i] : l->on_release;
}

json_object *lease_to_json(const struct lease *l)
{
        json_object *o = json_object_new_object(), *devs = json_object_new_array();
        if (!o || !devs) {
                json_object_put(o);
                json_object_put(devs);
                return NULL;
        }
        json_object_object_add(o, "id", json_object_new_int64((int64_t)l->id));
        json_object_object_add(o, "uid", json_object_new_int64(l->uid));
        json_object_object_add(o, "pid", json_object_new_int64(l->pid));
        json_object_object_add(o, "starttime", json_object_new_int64((int64_t)l->starttime));
        json_object_object_add(o, "backend",
                               json_object_new_string(vfio_backend_to_string(l->backend)));
        json_object_object_add(o, "on_release",
                               json_object_new_string(release_action_to_string(l->on_release)));
        json_object_object_add(o, "devices", devs);
        for (size_t i = 0; i < l->n_devices; i++) {
                char buf[PCI_ADDR_STRLEN];
                json_object_array_add(devs,
                                      json_object_new_string(pci_addr_format(&l->devices[i], buf)));
        }
        if (l->device_release) {
                json_object *rel = json_object_new_array();
                if (!rel) {
                        json_object_put(o);
                        return NULL;
                }
                for (size_t i = 0; i < l->n_devices; i++)
                        json_object_array_add(rel, json_object_new_string(release_action_to_string(
                                                           l->device_release[i])));
                json_object_object_add(o, "device_release", rel);
        }
        json_object_object_add(o, "adopted", json_object_new_boolean(l->adopted));
        return o;
}

static int get_int(json_object *o, const char *key, int64_t min, int64_t *ret)
{
        json_object *v;
        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return -EBADMSG;
        int64_t x = json_object_get_int64(v);
        if (x < min)
                return -EBADMSG;
        *ret = x;
        return 0;
}

int lease_from_json(json_object *o, struct lease *ret)
{
        struct lease l = {.pidfd = -EBADF};
        int64_t id, uid, pid, start;
        json_object *devs, *v;
        if (!json_object_is_type(o, json_type_object) || get_int(o, "id", 1, &id) < 0 ||
            get_int(o, "uid", 0, &uid) < 0 || get_int(o, "pid", 1, &pid) < 0 ||
            get_int(o, "starttime", 0, &start) < 0 || uid >= UINT32_MAX || pid > INT32_MAX ||
            !json_object_object_get_ex(o, "devices", &devs) ||
            !json_object_is_type(devs, json_type_array) || json_object_array_length(devs) == 0)
                return -EBADMSG;
        l.id = (uint64_t)id;
        l.uid = (uid_t)uid;
        l.pid = (pid_t)pid;
        l.starttime = (uint64_t)start;
        l.backend = vfio_backend_from_string(
                json_object_object_get_ex(o, "backend", &v) ? json_object_get_string(v) : NULL);
        l.on_release = release_action_from_string(
                json_object_object_get_ex(o, "on_release", &v) ? json_object_get_string(v) : NULL);
        if (l.backend < 0 || l.on_release < 0)
                return -EBADMSG;
        size_t n = json_object_array_length(devs);
        l.devices = calloc(n, sizeof(*l.devices));
        if (!l.devices)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                const char *s = json_object_get_string(json_object_array_get_idx(devs, i));
                if (!s || pci_addr_parse(s, &l.devices[i]) < 0) {
                        free(l.devices);
                        return -EBADMSG;
                }
        }
        l.n_devices = n;
        json_object *rel;
        if (json_object_object_get_ex(o, "device_release", &rel)) {
                if (!json_object_is_type(rel, json_type_array) ||
                    json_object_array_length(rel) != n) {
                        free(l.devices);
                        return -EBADMSG;
                }
                l.device_release = calloc(n, sizeof(*l.device_release));
                if (!l.device_release) {
                        free(l.devices);
                        return -ENOMEM;
                }
                for (size_t i = 0; i < n; i++) {
                        l.device_release[i] = release_action_from_string(
                                json_object_get_string(json_object_array_get_idx(rel, i)));
                        if (l.device_release[i] < 0) {
                                lease_done(&l);
                                return -EBADMSG;
                        }
                }
        }
        *ret = l;
        return 0;
}

int process_starttime(const struct root *root, pid_t pid, uint64_t *ret)
{
        char path[64];
        snprintf(path, sizeof(path), "proc/%d/stat", (int)pid);
        /* One read: the line is far shorter than the buffer (and this runs on every
         * Acquire). */
        _cleanup_close_ int fd = root_openat(root, path, O_RDONLY | O_NOCTTY);
        if (fd == -ENOENT)
                return -ESRCH;
        if (fd < 0)
                return fd;
        char text[1024];
        ssize_t len = read(fd, text, sizeof(text) - 1);
        if (len < 0)
                return errno == ESRCH ? -ESRCH : negative_errno();
        if ((size_t)len >= sizeof(text) - 1)
                return -EBADMSG;
        text[len] = 0;
        /* The command name (field 2) may hold spaces and parentheses: count fields from
         * the last ')'. Field 22 is the 20th after it. */
        char *p = strrchr(text, ')');
        if (!p)
                return -EBADMSG;
        p++;
        for (int field = 3; field < 22; field++) {
                p = strchr(p + 1, ' ');
                if (!p)
                        return -EBADMSG;
        }
        char *end;
        errno = 0;
        unsigned long long v = strtoull(p + 1, &end, 10);
        if (errno || end == p + 1)
                return -EBADMSG;
        *ret = v;
        return 0;
}

int process_pidfd_verified(const struct root *root, pid_t pid, uint64_t starttime, int *ret)
{
        /* Open first, check second: if the start time still matches after the pidfd
         * exists, the pidfd is that process's. */
        _cleanup_close_ int fd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (fd < 0)
                return errno == ESRCH ? -ESRCH : negative_errno();
        uint64_t now;
        int r = process_starttime(root, pid, &now);
        if (r < 0)
                return r;
        if (now != starttime)
                return -ESRCH;
        *ret = TAKE_FD(fd);
        return 0;
}

static void lease_file_name(uint64_t id, char buf[static 32])
{
        snprintf(buf, 32, "%" PRIu64 ".lease", id);
}

int lease_save(int dirfd, const struct lease *l)
{
        json_object *o = lease_to_json(l);
        if (!o)
                return -ENOMEM;
        size_t len;
        const char *text = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
        char name[32];
        lease_file_name(l->id, name);
        /* The runtime directory is tmpfs and a lease only has to outlive the daemon, not
         * the machine: atomic, but no fsync. */
        int r = text ? dir_write_replace(dirfd, name, text, len, false) : -ENOMEM;
        json_object_put(o);
        return r;
}

int lease_remove(int dirfd, uint64_t id)
{
        char name[32];
        lease_file_name(id, name);
        if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
                return negative_errno();
        return 0;
}

int lease_load_all(int dirfd, struct lease **ret, size_t *ret_n, char ***ret_bad)
{
        _cleanup_close_ int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        DIR *d = fdopendir(fd);
        if (!d)
                return negative_errno();
        TAKE_FD(fd);

        struct lease *list = NULL;
        size_t n = 0;
        char **bad = NULL;
        size_t n_bad = 0;
        int r = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                size_t len = strlen(de->d_name);
                if (len <= 6 || strcmp(de->d_name + len - 6, ".lease") != 0)
                        continue;
                _cleanup_free_ char *text = NULL;
                size_t tlen;
                struct lease l;
                json_object *o = NULL;
                if (dir_read_file(dirfd, de->d_name, 65536, &text, &tlen) < 0 ||
                    !(o = json_tokener_parse(text)) || lease_from_json(o, &l) < 0) {
                        json_object_put(o);
                        if ((r = strv_push(&bad, &n_bad, de->d_name)) < 0)
                                break;
                        continue;
                }
                json_object_put(o);
                struct lease *p = reallocarray(list, n + 1, sizeof(*list));
                if (!p) {
                        lease_done(&l);
                        r = -ENOMEM;
                        break;
                }
                list = p;
                list[n++] = l;
        }
        closedir(d);
        if (r < 0) {
                for (size_t i = 0; i < n; i++)
                        lease_done(&list[i]);
                free(list);
                strv_free(bad);
                return r;
        }
        *ret = list;
        *ret_n = n;
        *ret_bad = bad;
        return 0;
}
