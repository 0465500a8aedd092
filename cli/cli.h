/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "macro.h"
#include "root.h"
#include "topology.h"

#define EXIT_FAILED 1 /* the request was valid but could not be carried out */
#define EXIT_USAGE  2 /* bad usage, malformed input, or no such device */

/* Verb options; each verb lists the ones it takes (OPT_BIT). To add one: an id here,
 * a row in the options table of vfioctl.c. */
enum opt_id {
        OPT_GROUP,
        OPT_DRY_RUN,
        OPT_PERSIST,
        OPT_FORCE,
        OPT_ALL,
        OPT_RESET,
        OPT_STATE_DIR, /* value */
        OPT_PERSISTED,
        OPT_NUMVFS,     /* value */
        OPT_DRIVER,     /* value */
        OPT_VF,         /* value */
        OPT_MAC,        /* value */
        OPT_VLAN,       /* value */
        OPT_TRUST,      /* value */
        OPT_SPOOFCHK,   /* value */
        OPT_LINK_STATE, /* value */
        OPT_MAX_RATE,   /* value */
        OPT_MIN_RATE,   /* value */
        OPT_RELEASE,
        OPT_DEVICES, /* value */
        OPT_CONFIG,  /* value */
        OPT_JUNIT,
        OPT_SARIF,
        OPT_FAIL_ON, /* value */
        OPT_PROBE,
        OPT_BACKEND, /* value */
        OPT_ALLOW_UNSAFE_INTERRUPTS,
        OPT_NOIOMMU,
        OPT_MEMLOCK, /* value */
        OPT_FDS,     /* value */
        OPT_DEVICE,  /* value, repeatable */
        OPT_QMP,     /* value */
        OPT_ID,      /* value */
        OPT_BUS,     /* value */
        OPT_NO_DAEMON,
        OPT_OUTPUT, /* value */
        OPT_OPEN_NODES,
        OPT_TIMEOUT, /* value */
        _OPT_MAX,
};

#define OPT_BIT(id) (1ull << (id))

struct cli {
        const char *root_path;
        const char *state_dir;
        bool json;
        bool help;
        uint64_t opts;                /* OPT_BIT()s given */
        const char *values[_OPT_MAX]; /* the values of options that take one */
        char **lists[_OPT_MAX];       /* every value of a repeatable option, in order */
        size_t n_lists[_OPT_MAX];
        char **args; /* positional arguments after the verb */
        size_t n_args;
        struct root *root;
        struct topology *topology;
        json_object *modules_loaded; /* names of the kernel modules this run loaded, or NULL */
};

static inline bool cli_has(const struct cli *c, enum opt_id id)
{
        return c->opts & OPT_BIT(id);
}

struct verb {
        const char *name;
        const char *synopsis;
        const char *summary;
        const char *help;
        int (*run)(struct cli *c);
        size_t min_args, max_args; /* SIZE_MAX: any number */
        uint64_t opts;             /* OPT_BIT()s accepted */
        bool opens_root;           /* the verb opens --root itself (it may be an archive) */
};

/* Prints "vfioctl: <message> (see 'vfioctl --help')" and returns EXIT_USAGE. */
int usage_error(const char *fmt, ...) _printf_(1, 2);

/* Scans the topology once (on first use); prints the reason and returns EXIT_FAILED on
 * failure. */
int cli_topology(struct cli *c, struct topology **ret);

/* The same without the pci.ids name lookup, for verbs that print no names. */
int cli_topology_unnamed(struct cli *c, struct topology **ret);

/* The same, unnamed and scoped to the devices in want (topology_scan_scoped()): for the
 * verbs that decide about those devices only. */
int cli_topology_scoped(struct cli *c, const struct pci_addr *want, size_t n_want,
                        struct topology **ret);

/* Parses every positional argument as a PCI address; EXIT_USAGE with a message naming
 * the bad one. */
int cli_parse_addresses(struct cli *c, const char *verb, struct pci_addr **ret, size_t *ret_n);

/* A user-supplied string made safe for a one-line message: control and non-ASCII bytes
 * as \xNN, cut at 64 characters. Returns buf. */
const char *cli_quote(const char *s, char buf[static 300]);

/* Loads the kernel modules in want (VFIO_MODULE_BIT()s) that are absent
 * (vfio_modules_need()), printing "vfioctl: loaded kernel module NAME" on stderr for each
 * and keeping its name for cli_json_add_modules(). -errno with the detail otherwise. */
int cli_modules_need(struct cli *c, unsigned want, char **ret_detail);

/* The same report for modules some other call loaded (names, NULL-terminated, or NULL). */
int cli_modules_loaded(struct cli *c, char **loaded);

/* Adds "modules_loaded": [names] (possibly empty) to a verb's JSON document. */
void cli_json_add_modules(struct cli *c, json_object *doc);

/* Prints and releases o; EXIT_FAILED when o is NULL (allocation failed). */
int print_json(json_object *o, int flags);

int verb_list(struct cli *c);
int verb_groups(struct cli *c);
int verb_show(struct cli *c);
int verb_bind(struct cli *c);
int verb_unbind(struct cli *c);
int verb_restore(struct cli *c);
int verb_persisted(struct cli *c);
int verb_sriov(struct cli *c);
int verb_audit(struct cli *c);
int verb_snapshot(struct cli *c);
int verb_probe(struct cli *c);
int verb_exec(struct cli *c);
int verb_qemu_attach(struct cli *c);
int verb_leases(struct cli *c);
int verb_release(struct cli *c);
int verb_reclaim(struct cli *c);
int verb_cdi(struct cli *c);
