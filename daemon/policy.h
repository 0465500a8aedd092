/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Who may do what to which device. The policy is a JSON file (docs/vfiod.md): an
 * ordered list of rules, each naming users and/or groups, the operations it grants and
 * the devices they apply to. Anything no rule grants is denied. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "pci-addr.h"
#include "selector.h"
#include "topology.h"

enum policy_op {
        POLICY_OP_LIST,    /* ListDevices, ListGroups, ShowDevice */
        POLICY_OP_BIND,    /* Bind, Unbind */
        POLICY_OP_SRIOV,   /* SetNumVFs, ConfigureVF (device: the PF) */
        POLICY_OP_ACQUIRE, /* Acquire, Release */
        POLICY_OP_AUDIT,   /* Audit */
        POLICY_OP_MONITOR, /* Monitor */
        _POLICY_OP_MAX,
        _POLICY_OP_INVALID = -22,
};

const char *policy_op_to_string(enum policy_op op);
enum policy_op policy_op_from_string(const char *s);

enum release_action {
        RELEASE_POOL,    /* reset, stay on vfio-pci for the next lease */
        RELEASE_RESTORE, /* reset, back to the driver it had before */
        _RELEASE_ACTION_MAX,
        _RELEASE_ACTION_INVALID = -22,
};

const char *release_action_to_string(enum release_action a);
enum release_action release_action_from_string(const char *s);

#define POLICY_MEMLOCK_UNSET     (-2)
#define POLICY_MEMLOCK_UNLIMITED (-1)

struct policy_rule {
        bool any_user;
        uid_t *uids;
        size_t n_uids;
        gid_t *gids;
        size_t n_gids;
        unsigned ops; /* 1u << enum policy_op */
        bool all_devices;
        struct pci_selector *selectors;
        size_t n_selectors;
        enum release_action on_release;
        int64_t memlock; /* bytes, POLICY_MEMLOCK_UNLIMITED or POLICY_MEMLOCK_UNSET */
};

struct policy {
        struct policy_rule *rules;
        size_t n_rules;
};

/* The caller as the kernel named it at accept time (SO_PEERCRED, SO_PEERGROUPS). */
struct policy_client {
        uid_t uid;
        gid_t gid;
        const gid_t *groups;
        size_t n_groups;
};

/* Parses policy text. User and group names are looked up now (getpwnam/getgrnam); an
 * unknown name, operation or selector is an error naming it in *ret_detail. */
int policy_parse(const char *text, struct policy **ret, char **ret_detail);

/* Reads and parses a file; -ENOENT when it does not exist. */
int policy_load(const char *path, struct policy **ret, char **ret_detail);

struct policy *policy_free(struct policy *p);

static inline void policy_freep(struct policy **p)
{
        policy_free(*p);
}

/* The first rule that grants op to the client on device d (in topology t), or on no
 * device in particular when d is NULL (then only rules' users and operations count:
 * whether the client may make the call at all). NULL: denied. Bind and acquire are
 * never granted on a bridge (pci_device_is_bridge()), whatever the rules say. */
const struct policy_rule *policy_check(const struct policy *p, const struct policy_client *c,
                                       enum policy_op op, const struct topology *t,
                                       const struct pci_device *d);

/* Whether a rule grants op to the client on every device ("*" or no "devices" key).
 * When none does but policy_check(..., NULL) grants op, the client's view is scoped:
 * list, audit and monitor then cover only the devices policy_check() grants one by
 * one. */
bool policy_grants_every_device(const struct policy *p, const struct policy_client *c,
                                enum policy_op op);
