/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The exported pools: which devices this host offers to container runtimes (as a CDI
 * spec) and to kubelet (one extended resource per pool). One JSON file, by default
 * /etc/vfiod/pools.json, documented in vfiod(8):
 *
 *   {"cdi_kind": "vfiod.io/pci",
 *    "pools": [{"name": "igb-vf", "devices": ["0000:01:00.0/vf*"]},
 *              {"name": "edu", "resource": "vfiod.io/edu", "backend": "type1",
 *               "devices": ["1234:11e8"]}]}
 *
 * Devices are named with the policy's selectors (selector.h). A device that two pools
 * select belongs to the first. */

#include <errno.h>
#include <stddef.h>

#include "selector.h"
#include "topology.h"

#define FLEET_POOLS_PATH_DEFAULT "/etc/vfiod/pools.json"
#define FLEET_CDI_KIND_DEFAULT   "vfiod.io/pci"
#define FLEET_RESOURCE_DOMAIN    "vfiod.io"

/* Which VFIO nodes a pool's devices carry. */
enum fleet_pool_backend {
        FLEET_POOL_BACKEND_AUTO,    /* iommufd where the kernel has it, else type1 */
        FLEET_POOL_BACKEND_IOMMUFD, /* only devices with a vfio cdev and /dev/iommu */
        FLEET_POOL_BACKEND_TYPE1,   /* the group nodes, for programs that use only them */
        _FLEET_POOL_BACKEND_MAX,
        _FLEET_POOL_BACKEND_INVALID = -EINVAL,
};

/* "auto", "iommufd", "type1", as a pool's "backend" spells them. */
const char *fleet_pool_backend_to_string(enum fleet_pool_backend b);
/* The reverse; _FLEET_POOL_BACKEND_INVALID for any other name, or NULL. */
enum fleet_pool_backend fleet_pool_backend_from_string(const char *s);

struct fleet_pool {
        char *name;     /* a DNS label: "igb-vf" */
        char *resource; /* kubelet's extended resource name: "vfiod.io/igb-vf" */
        enum fleet_pool_backend backend;
        struct pci_selector *selectors;
        size_t n_selectors;
};

struct fleet_config {
        char *cdi_kind; /* "vendor/class" */
        struct fleet_pool *pools;
        size_t n_pools;
};

/* Parses the configuration text; a clear one-line reason in *ret_detail otherwise
 * (-EBADMSG for JSON that does not parse, -EINVAL for content that is wrong). */
int fleet_config_parse(const char *text, struct fleet_config **ret, char **ret_detail);

/* Reads and parses a file; -ENOENT (no detail) when it does not exist. */
int fleet_config_load(const char *path, struct fleet_config **ret, char **ret_detail);

struct fleet_config *fleet_config_free(struct fleet_config *c);

static inline void fleet_config_freep(struct fleet_config **c)
{
        fleet_config_free(*c);
}

/* The pool d (a device of t) belongs to, or NULL. Bridges belong to none. */
const struct fleet_pool *fleet_config_pool_of(const struct fleet_config *c,
                                              const struct topology *t, const struct pci_device *d);

/* Whether s is a valid CDI kind ("vendor/class", vendor a domain name). */
bool fleet_cdi_kind_is_valid(const char *s);
