/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A method's parameters, read through a table: each entry names a parameter, its kind,
 * whether it is required and where its value goes in the method's own struct. One pass
 * over the call's parameter object reads them all, checks kinds and ranges, and refuses
 * any parameter the table does not name, so every method answers a bad or unknown
 * parameter the same way (org.varlink.service.InvalidParameter naming it; a malformed
 * address: io.vfiod.InvalidAddress). A null value is read as an absent one, as varlink
 * reads a null optional. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json-text.h"
#include "pci-addr.h"

struct conn;

enum param_kind {
        PARAM_STRING,    /* char[size]; absent: "" (an empty string is refused) */
        PARAM_BOOL,      /* int: 1, 0, or -1 when absent */
        PARAM_INT,       /* int64_t in [min, max] (min >= 0); absent: -1 */
        PARAM_ADDRESS,   /* struct pci_addr; always required */
        PARAM_ADDRESSES, /* struct pci_addrs: 1..max distinct addresses; absent: empty */
};

struct param {
        const char *name;
        enum param_kind kind;
        bool required;
        size_t offset; /* of the value in the method's struct */
        size_t size;   /* PARAM_STRING: the buffer's size, NUL included */
        int64_t min, max;
};

/* A list of addresses read from a parameter; the reader owns it. */
struct pci_addrs {
        struct pci_addr *v;
        size_t n;
};

void pci_addrs_done(struct pci_addrs *l);

#define PARAMS_MAX 32

/* Reads params (an object) into out as table[0..n) says. 0 when all were read (the lists
 * read are the caller's to free); 1 when the call was answered with an error, -errno when
 * it could not be answered (then nothing in out needs freeing). */
int params_read(struct conn *c, struct jspan params, const struct param *table, size_t n,
                void *out);

/* Answers org.varlink.service.InvalidParameter for name, for checks the table cannot
 * express (one parameter that needs another); returns what conn_errorf() returned. */
int params_invalid(struct conn *c, const char *name);
