/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzzes the JSON text reader the daemon runs on every call (api/json-text.c): arbitrary
 * bytes are validated, and whatever validates is walked with every reader, which must
 * stay inside the text; strings that decode are written back and must read the same. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "json-text.h"

static void walk(struct jspan v, unsigned depth)
{
        assert(depth <= JSCAN_DEPTH_MAX);
        struct jspan e;
        size_t pos = 0, n = 0;
        char buf[512];
        int64_t x;
        bool b;
        switch (jscan_type(v)) {
        case JTYPE_ARRAY:
                while (jscan_next(v, &pos, &e)) {
                        assert(e.p >= v.p && e.p + e.n <= v.p + v.n);
                        walk(e, depth + 1);
                        n++;
                }
                assert(n == jscan_count(v));
                break;
        case JTYPE_OBJECT: {
                /* Keys the daemon asks for, and one that is never there; asked one at a
                 * time and all at once, with the same answers. */
                static const char *const keys[] = {"method", "parameters", "a", "", "\xff"};
                struct jspan all[5];
                uint32_t found = jscan_members(v, keys, 5, all);
                for (size_t i = 0; i < 5; i++) {
                        bool one = jscan_member(v, keys[i], &e);
                        assert(one == !!(found & (1u << i)));
                        if (!one)
                                continue;
                        assert(e.p == all[i].p && e.n == all[i].n);
                        assert(e.p > v.p && e.p + e.n < v.p + v.n);
                        walk(e, depth + 1);
                }
                break;
        }
        case JTYPE_STRING:
                if (jscan_string(v, buf, sizeof(buf)) == 0) {
                        struct jbuf w = {};
                        struct jspan back;
                        char again[sizeof(buf)];
                        jbuf_str(&w, buf);
                        assert(!w.oom);
                        assert(jscan_validate(w.p, w.len, &back) == 0);
                        assert(jscan_string(back, again, sizeof(again)) == 0);
                        assert(strcmp(buf, again) == 0);
                        jbuf_done(&w);
                }
                break;
        case JTYPE_NUMBER:
                if (jscan_int(v, &x) == 0) {
                        struct jbuf w = {};
                        jbuf_int(&w, x);
                        /* Written back in the shortest form: equal unless the input had
                         * a leading minus zero. */
                        assert(w.len == v.n || (v.n == 2 && memcmp(v.p, "-0", 2) == 0));
                        jbuf_done(&w);
                }
                break;
        case JTYPE_BOOL:
                assert(jscan_bool(v, &b) == 0);
                break;
        case JTYPE_NULL:
                break;
        case JTYPE_INVALID:
                assert(!"a validated value has a type");
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size > 100000)
                return 0;
        /* A copy of exactly size bytes: reading past it is a heap overflow ASan sees. */
        char *text = malloc(size ? size : 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        struct jspan v;
        if (jscan_validate(text, size, &v) == 0) {
                assert(v.p >= text && v.p + v.n <= text + size);
                walk(v, 0);
        }
        free(text);
        return 0;
}
