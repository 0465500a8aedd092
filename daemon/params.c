/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "params.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "server.h"

#define ERR_INVALID_PARAMETER "org.varlink.service.InvalidParameter"

void pci_addrs_done(struct pci_addrs *l)
{
        free(l->v);
        *l = (struct pci_addrs){};
}

int params_invalid(struct conn *c, const char *name)
{
        return conn_errorf(c, ERR_INVALID_PARAMETER, "parameter", name, NULL);
}

/* Answers the call about one parameter and returns 1, the reader's "answered". */
static int invalid(struct conn *c, const char *name)
{
        int r = params_invalid(c, name);
        return r < 0 ? r : 1;
}

static int read_address(struct conn *c, struct jspan v, const char *name, struct pci_addr *ret)
{
        char buf[128];
        if (jscan_string(v, buf, sizeof(buf)) < 0)
                return invalid(c, name);
        if (pci_addr_parse(buf, ret) < 0) {
                int r = conn_errorf(c, "io.vfiod.InvalidAddress", "address", buf, NULL);
                return r < 0 ? r : 1;
        }
        return 0;
}

static int read_addresses(struct conn *c, struct jspan v, const struct param *p,
                          struct pci_addrs *ret)
{
        size_t n = jscan_type(v) == JTYPE_ARRAY ? jscan_count(v) : 0;
        if (n == 0 || (int64_t)n > p->max)
                return invalid(c, p->name);
        ret->v = calloc(n, sizeof(*ret->v));
        if (!ret->v)
                return -ENOMEM;
        size_t pos = 0;
        struct jspan e;
        for (ret->n = 0; ret->n < n && jscan_next(v, &pos, &e); ret->n++) {
                struct pci_addr *a = &ret->v[ret->n];
                int r = read_address(c, e, p->name, a);
                if (r != 0)
                        return r;
                for (size_t k = 0; k < ret->n; k++)
                        if (pci_addr_equal(&ret->v[k], a))
                                return invalid(c, p->name);
        }
        return 0;
}

static int read_one(struct conn *c, const struct param *p, struct jspan v, void *out)
{
        void *field = (char *)out + p->offset;
        switch (p->kind) {
        case PARAM_STRING:
                return jscan_string(v, field, p->size) == 0 && *(char *)field != '\0'
                               ? 0
                               : invalid(c, p->name);
        case PARAM_BOOL: {
                bool b;
                if (jscan_bool(v, &b) < 0)
                        return invalid(c, p->name);
                *(int *)field = b;
                return 0;
        }
        case PARAM_INT: {
                int64_t x;
                if (jscan_int(v, &x) < 0 || x < p->min || x > p->max)
                        return invalid(c, p->name);
                *(int64_t *)field = x;
                return 0;
        }
        case PARAM_ADDRESS:
                return read_address(c, v, p->name, field);
        case PARAM_ADDRESSES:
                return read_addresses(c, v, p, field);
        }
        return -EINVAL;
}

/* What an absent parameter reads as. */
static void set_absent(const struct param *p, void *out)
{
        void *field = (char *)out + p->offset;
        switch (p->kind) {
        case PARAM_STRING:
                *(char *)field = '\0';
                break;
        case PARAM_BOOL:
                *(int *)field = -1;
                break;
        case PARAM_INT:
                *(int64_t *)field = -1;
                break;
        case PARAM_ADDRESS:
                break;
        case PARAM_ADDRESSES:
                *(struct pci_addrs *)field = (struct pci_addrs){};
                break;
        }
}

int params_read(struct conn *c, struct jspan params, const struct param *table, size_t n, void *out)
{
        assert(n <= PARAMS_MAX);
        const char *keys[PARAMS_MAX] = {};
        struct jspan v[PARAMS_MAX], other;
        for (size_t i = 0; i < n; i++) {
                /* The conventions set_absent() relies on. */
                assert(table[i].kind != PARAM_INT || table[i].min >= 0);
                assert(table[i].kind != PARAM_ADDRESS || table[i].required);
                keys[i] = table[i].name;
                set_absent(&table[i], out);
        }
        uint32_t found = jscan_members_known(params, keys, n, v, &other);
        if (other.p) {
                char name[128];
                if (jscan_string(other, name, sizeof(name)) < 0)
                        strcpy(name, "?");
                return invalid(c, name);
        }
        int r = 0;
        for (size_t i = 0; i < n && r == 0; i++) {
                if ((found & UINT32_C(1) << i) && jscan_type(v[i]) != JTYPE_NULL)
                        r = read_one(c, &table[i], v[i], out);
                else if (table[i].required)
                        r = invalid(c, table[i].name);
        }
        if (r != 0)
                /* Nothing read is the caller's when the call was not: no lists to free. */
                for (size_t i = 0; i < n; i++)
                        if (table[i].kind == PARAM_ADDRESSES)
                                pci_addrs_done((struct pci_addrs *)((char *)out + table[i].offset));
        return r;
}
