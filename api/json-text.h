/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* JSON as text, for the varlink hot path: a strict (RFC 8259) validator and reader that
 * works on the message in place, with no allocation, and a writer that appends to a
 * buffer. An Acquire or Release goes through vfiod and its client without building a
 * json-c tree: json-c's tokener and object model cost tens of thousands of instructions
 * per small message, several times the rest of the call (measured under TCG, where the
 * daemon's share was six times the raw exchange). Everything that is not hot keeps
 * json-c. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A value's text: p[0..n). */
struct jspan {
        const char *p;
        size_t n;
};

enum jtype {
        JTYPE_INVALID,
        JTYPE_OBJECT,
        JTYPE_ARRAY,
        JTYPE_STRING,
        JTYPE_NUMBER,
        JTYPE_BOOL,
        JTYPE_NULL,
};

#define JSCAN_DEPTH_MAX 64

/* Checks that text[0..len) is one JSON value, whitespace around it allowed, nested at
 * most JSCAN_DEPTH_MAX deep; sets *ret to the value without the whitespace. 0 or
 * -EBADMSG. The readers below expect spans from a validated text. */
int jscan_validate(const char *text, size_t len, struct jspan *ret);

enum jtype jscan_type(struct jspan v);

/* The value of key in object obj; like json-c, the last one when a key repeats. */
bool jscan_member(struct jspan obj, const char *key, struct jspan *ret);

/* The values of several keys in one pass over obj: ret[i] for keys[i] (at most 32 keys);
 * returns the mask of the keys found, bit i for keys[i]. */
uint32_t jscan_members(struct jspan obj, const char *const *keys, size_t n_keys, struct jspan *ret);
/* The same, and *ret_other is set to the first key of obj (its text, quotes included) that
 * is none of keys, or to {NULL, 0} when there is none: for readers that refuse what they
 * do not know. */
uint32_t jscan_members_known(struct jspan obj, const char *const *keys, size_t n_keys,
                             struct jspan *ret, struct jspan *ret_other);

/* The elements of an array, one per call: *pos starts at 0; false after the last. */
bool jscan_next(struct jspan array, size_t *pos, struct jspan *ret);
size_t jscan_count(struct jspan array);

/* A string's value, unescaped, NUL-terminated: -EINVAL when v is not a string, -E2BIG
 * when it does not fit in size, -EILSEQ when it holds a NUL. */
int jscan_string(struct jspan v, char *buf, size_t size);
/* An integer (no fraction, no exponent) in int64_t: -EINVAL, -ERANGE. */
int jscan_int(struct jspan v, int64_t *ret);
/* true or false: -EINVAL for anything else. */
int jscan_bool(struct jspan v, bool *ret);

/* ---- writing ------------------------------------------------------------------------ */

struct jbuf {
        char *p;
        size_t len, alloc;
        bool oom; /* an append failed: the text is incomplete */
};

void jbuf_raw(struct jbuf *b, const char *s, size_t n);
/* s as a JSON string, quoted and escaped. */
void jbuf_str(struct jbuf *b, const char *s);
void jbuf_int(struct jbuf *b, int64_t v);
void jbuf_done(struct jbuf *b);

#define jbuf_lit(b, s) jbuf_raw(b, "" s, sizeof(s) - 1)
