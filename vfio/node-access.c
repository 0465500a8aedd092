/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "node-access.h"

#include <acl/libacl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/acl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "detail.h"
#include "macro.h"

static inline void acl_freep(acl_t *a)
{
        if (*a)
                acl_free(*a);
}
#define _cleanup_acl_ _cleanup_(acl_freep)

void node_access_done(struct node_access *a)
{
        free(a->acl);
        a->acl = NULL;
}

void node_grants_free(struct node_grant *g, size_t n)
{
        for (size_t i = 0; i < n; i++)
                node_access_done(&g[i].was);
        free(g);
}

static int json_uint(json_object *o, const char *key, int64_t max, int64_t *ret)
{
        json_object *v;
        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return -EBADMSG;
        int64_t x = json_object_get_int64(v);
        if (x < 0 || x > max)
                return -EBADMSG;
        *ret = x;
        return 0;
}

int node_grants_from_json(json_object *array, struct node_grant **ret, size_t *ret_n)
{
        size_t n = json_object_array_length(array);
        if (!json_object_is_type(array, json_type_array) || n == 0 || n > 4096)
                return -EBADMSG;
        struct node_grant *g = calloc(n, sizeof(*g));
        if (!g)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *o = json_object_array_get_idx(array, i), *acl;
                int64_t group, to, uid, gid, mode;
                if (!json_object_is_type(o, json_type_object) ||
                    json_uint(o, "group", INT32_MAX, &group) < 0 ||
                    json_uint(o, "to", UINT32_MAX - 1, &to) < 0 ||
                    json_uint(o, "uid", UINT32_MAX - 1, &uid) < 0 ||
                    json_uint(o, "gid", UINT32_MAX - 1, &gid) < 0 ||
                    json_uint(o, "mode", 07777, &mode) < 0 ||
                    (json_object_object_get_ex(o, "acl", &acl) &&
                     !json_object_is_type(acl, json_type_string))) {
                        node_grants_free(g, n);
                        return -EBADMSG;
                }
                g[i] = (struct node_grant){
                        .group = (int)group,
                        .to = (uid_t)to,
                        .was = {.uid = (uid_t)uid, .gid = (gid_t)gid, .mode = (mode_t)mode},
                };
                if (acl && !(g[i].was.acl = strdup(json_object_get_string(acl)))) {
                        node_grants_free(g, n);
                        return -ENOMEM;
                }
        }
        *ret = g;
        *ret_n = n;
        return 0;
}

bool node_access_equal(const struct node_access *a, const struct node_access *b)
{
        return a->uid == b->uid && a->gid == b->gid && a->mode == b->mode &&
               (a->acl && b->acl ? strcmp(a->acl, b->acl) == 0 : a->acl == b->acl);
}

/* The node as an O_PATH fd (no open of the group itself, which takes its one opener)
 * and the /proc/self/fd path through which ACL calls reach it. */
static int node_open(const struct root *root, int group, int *ret_fd, char path[static 64],
                     struct stat *ret_st)
{
        char rel[32];
        snprintf(rel, sizeof(rel), "dev/vfio/%d", group);
        int fd = root_openat(root, rel, O_PATH | O_NOFOLLOW);
        if (fd < 0)
                return fd;
        if (fstat(fd, ret_st) < 0) {
                int r = negative_errno();
                safe_close(fd);
                return r;
        }
        snprintf(path, 64, "/proc/self/fd/%d", fd);
        *ret_fd = fd;
        return 0;
}

/* The access ACL as text, or NULL when it says no more than the mode. */
static int acl_text(const char *path, char **ret)
{
        _cleanup_acl_ acl_t acl = acl_get_file(path, ACL_TYPE_ACCESS);
        if (!acl)
                return errno == ENOTSUP ? (*ret = NULL, 0) : negative_errno();
        int extended = acl_equiv_mode(acl, NULL);
        if (extended < 0)
                return negative_errno();
        if (extended == 0) {
                *ret = NULL;
                return 0;
        }
        char *t = acl_to_text(acl, NULL);
        if (!t)
                return negative_errno();
        *ret = strdup(t);
        acl_free(t);
        return *ret ? 0 : -ENOMEM;
}

int vfio_group_node_access(const struct root *root, int group, struct node_access *ret)
{
        _cleanup_close_ int fd = -EBADF;
        char path[64];
        struct stat st;
        int r = node_open(root, group, &fd, path, &st);
        if (r < 0)
                return r;
        struct node_access a = {.uid = st.st_uid, .gid = st.st_gid, .mode = st.st_mode & 07777};
        r = acl_text(path, &a.acl);
        if (r < 0)
                return r;
        *ret = a;
        return 0;
}

int vfio_group_node_grant(const struct root *root, int group, uid_t uid, char **ret_why)
{
        _cleanup_close_ int fd = -EBADF;
        char path[64];
        struct stat st;
        int r = node_open(root, group, &fd, path, &st);
        if (r < 0)
                return detail_errno(ret_why, r, "cannot open /dev/vfio/%d: %s", group,
                                    strerror(-r));
        if (!S_ISCHR(st.st_mode))
                return detail_errno(ret_why, -ENOTTY, "/dev/vfio/%d is not a device node", group);

        _cleanup_acl_ acl_t acl = acl_get_file(path, ACL_TYPE_ACCESS);
        if (!acl)
                return detail_errno(ret_why, negative_errno(),
                                    "cannot read the ACL of /dev/vfio/%d: %m", group);
        /* An entry the node already has for uid is widened, not doubled. */
        acl_entry_t e = NULL;
        for (int w = ACL_FIRST_ENTRY; acl_get_entry(acl, w, &e) == 1; w = ACL_NEXT_ENTRY) {
                acl_tag_t tag;
                if (acl_get_tag_type(e, &tag) < 0 || tag != ACL_USER)
                        continue;
                uid_t *who = acl_get_qualifier(e);
                bool mine = who && *who == uid;
                acl_free(who);
                if (mine)
                        break;
                e = NULL;
        }
        acl_permset_t perms;
        if ((!e && (acl_create_entry(&acl, &e) < 0 || acl_set_tag_type(e, ACL_USER) < 0 ||
                    acl_set_qualifier(e, &uid) < 0)) ||
            acl_get_permset(e, &perms) < 0 || acl_add_perm(perms, ACL_READ) < 0 ||
            acl_add_perm(perms, ACL_WRITE) < 0 || acl_calc_mask(&acl) < 0)
                return detail_errno(ret_why, negative_errno(),
                                    "cannot build the ACL of /dev/vfio/%d: %m", group);
        if (acl_set_file(path, ACL_TYPE_ACCESS, acl) < 0)
                return detail_errno(ret_why, negative_errno(),
                                    errno == ENOTSUP ? "cannot grant /dev/vfio/%d to uid %u: the "
                                                       "file system of /dev has no POSIX ACLs"
                                                     : "cannot grant /dev/vfio/%d to uid %u: %m",
                                    group, (unsigned)uid);
        return 0;
}

int vfio_group_node_restore(const struct root *root, int group, const struct node_access *was,
                            char **ret_why)
{
        _cleanup_close_ int fd = -EBADF;
        char path[64];
        struct stat st;
        int r = node_open(root, group, &fd, path, &st);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return detail_errno(ret_why, r, "cannot open /dev/vfio/%d: %s", group,
                                    strerror(-r));
        _cleanup_acl_ acl_t acl = was->acl ? acl_from_text(was->acl) : acl_from_mode(was->mode);
        if (!acl)
                return detail_errno(ret_why, negative_errno(),
                                    "cannot read the recorded ACL of /dev/vfio/%d: %m", group);
        /* The ACL first: it sets the group class bits of the mode, which chmod then puts
         * back exactly (for an extended ACL, chmod sets the mask from them). */
        if (acl_set_file(path, ACL_TYPE_ACCESS, acl) < 0 && (errno != ENOTSUP || was->acl))
                return detail_errno(ret_why, negative_errno(),
                                    "cannot put back the ACL of /dev/vfio/%d: %m", group);
        if ((st.st_uid != was->uid || st.st_gid != was->gid) &&
            fchownat(fd, "", was->uid, was->gid, AT_EMPTY_PATH) < 0)
                return detail_errno(ret_why, negative_errno(),
                                    "cannot put back the owner of /dev/vfio/%d: %m", group);
        if (chmod(path, was->mode) < 0)
                return detail_errno(ret_why, negative_errno(),
                                    "cannot put back the mode of /dev/vfio/%d: %m", group);
        return 0;
}
