/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>

#include "macro.h"
#include "root.h"
#include "topology.h"

#define EXIT_FAILED 1 /* the request was valid but could not be carried out */
#define EXIT_USAGE  2 /* bad usage, malformed input, or no such device */

/* Verb options; each verb lists the ones it takes. */
enum {
        OPT_GROUP = 1u << 0,
        OPT_DRY_RUN = 1u << 1,
        OPT_PERSIST = 1u << 2,
        OPT_FORCE = 1u << 3,
        OPT_ALL = 1u << 4,
        OPT_RESET = 1u << 5,
        OPT_STATE_DIR = 1u << 6,
        OPT_PERSISTED = 1u << 7,
};

struct cli {
        const char *root_path;
        const char *state_dir;
        bool json;
        bool help;
        unsigned opts; /* OPT_* given */
        char **args;   /* positional arguments after the verb */
        size_t n_args;
        struct root *root;
        struct topology *topology;
};

struct verb {
        const char *name;
        const char *synopsis;
        const char *summary;
        const char *help;
        int (*run)(struct cli *c);
        size_t min_args, max_args; /* SIZE_MAX: any number */
        unsigned opts;             /* OPT_* accepted */
};

/* Prints "vfioctl: <message> (see 'vfioctl --help')" and returns EXIT_USAGE. */
int usage_error(const char *fmt, ...) _printf_(1, 2);

/* Scans the topology once (on first use); prints the reason and returns EXIT_FAILED on
 * failure. */
int cli_topology(struct cli *c, struct topology **ret);

/* The same without the pci.ids name lookup, for verbs that print no names. */
int cli_topology_unnamed(struct cli *c, struct topology **ret);

/* Parses every positional argument as a PCI address; EXIT_USAGE with a message naming
 * the bad one. */
int cli_parse_addresses(struct cli *c, const char *verb, struct pci_addr **ret, size_t *ret_n);

/* A user-supplied string made safe for a one-line message: control and non-ASCII bytes
 * as \xNN, cut at 64 characters. Returns buf. */
const char *cli_quote(const char *s, char buf[static 300]);

/* Prints and releases o; EXIT_FAILED when o is NULL (allocation failed). */
int print_json(json_object *o, int flags);

int verb_list(struct cli *c);
int verb_groups(struct cli *c);
int verb_show(struct cli *c);
int verb_bind(struct cli *c);
int verb_unbind(struct cli *c);
int verb_restore(struct cli *c);
int verb_persisted(struct cli *c);
