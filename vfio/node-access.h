/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Access to a VFIO group node (dev/vfio/N) for one more user, for the life of a type1
 * lease: a VMM that opens the node itself (QEMU's -device vfio-pci,host=) needs it, and
 * the node is root's 0600. The grant is an entry in the node's POSIX access ACL, as
 * logind's uaccess does for seat devices: the owner, group and mode stay as they are,
 * several ACL entries can stand side by side, and removing the entry is exact. What the
 * node had before is taken first, so that it can be recorded (the lease log) before the
 * node changes and put back afterwards byte for byte. */

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "root.h"

struct node_access {
        uid_t uid;
        gid_t gid;
        mode_t mode; /* permission bits only */
        char *acl;   /* the access ACL in long text form; NULL: none beyond the mode */
};

void node_access_done(struct node_access *a);

/* A group node opened to a uid, and what the node was before (a type1 lease's record). */
struct node_grant {
        int group;
        uid_t to;
        struct node_access was;
};

void node_grants_free(struct node_grant *g, size_t n);

/* Reads a record's "grants" array ({"group","to","uid","gid","mode","acl"?} objects):
 * -EBADMSG for anything that does not say all of what to put back. */
int node_grants_from_json(json_object *array, struct node_grant **ret, size_t *ret_n);

/* Whether two states are the same (what put back must reach). */
bool node_access_equal(const struct node_access *a, const struct node_access *b);

/* The owner, mode and access ACL of dev/vfio/<group> below root. -ENOENT when the node
 * does not exist. */
int vfio_group_node_access(const struct root *root, int group, struct node_access *ret);

/* Gives uid read and write access to dev/vfio/<group> through an ACL entry (the mask
 * widened to let it through). The caller records the node's state first. A node the
 * daemon does not own as the kernel made it (not a character device) is refused. */
int vfio_group_node_grant(const struct root *root, int group, uid_t uid, char **ret_why);

/* Puts dev/vfio/<group> back to was: its ACL, owner and mode. A node that is gone is
 * not an error (its device left vfio-pci: the kernel made a new node or none). */
int vfio_group_node_restore(const struct root *root, int group, const struct node_access *was,
                            char **ret_why);
