/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "json-text.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

static const char *skip_ws(const char *p, const char *end)
{
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
                p++;
        return p;
}

static int hex4(const char *p, const char *end)
{
        if (end - p < 4)
                return -1;
        int v = 0;
        for (int i = 0; i < 4; i++) {
                int d = unhexchar(p[i]);
                if (d < 0)
                        return -1;
                v = v * 16 + d;
        }
        return v;
}

/* p at the opening quote: just past the closing one, or NULL. */
static const char *scan_string(const char *p, const char *end)
{
        for (p++; p < end; p++) {
                unsigned char c = (unsigned char)*p;
                if (c == '"')
                        return p + 1;
                if (c < 0x20)
                        return NULL;
                if (c != '\\')
                        continue;
                if (++p >= end)
                        return NULL;
                switch (*p) {
                case '"':
                case '\\':
                case '/':
                case 'b':
                case 'f':
                case 'n':
                case 'r':
                case 't':
                        break;
                case 'u':
                        if (hex4(p + 1, end) < 0)
                                return NULL;
                        p += 4;
                        break;
                default:
                        return NULL;
                }
        }
        return NULL;
}

static const char *scan_digits(const char *p, const char *end)
{
        const char *s = p;
        while (p < end && *p >= '0' && *p <= '9')
                p++;
        return p > s ? p : NULL;
}

static const char *scan_number(const char *p, const char *end)
{
        if (p < end && *p == '-')
                p++;
        if (p < end && *p == '0')
                p++; /* no leading zeros */
        else if (!(p = scan_digits(p, end)))
                return NULL;
        if (p < end && *p == '.' && !(p = scan_digits(p + 1, end)))
                return NULL;
        if (p < end && (*p == 'e' || *p == 'E')) {
                p++;
                if (p < end && (*p == '+' || *p == '-'))
                        p++;
                if (!(p = scan_digits(p, end)))
                        return NULL;
        }
        return p;
}

static const char *scan_word(const char *p, const char *end, const char *w, size_t n)
{
        return (size_t)(end - p) >= n && memcmp(p, w, n) == 0 ? p + n : NULL;
}

/* p at a value (no whitespace before it): just past it, or NULL. */
static const char *scan_value(const char *p, const char *end, unsigned depth)
{
        if (p >= end)
                return NULL;
        switch (*p) {
        case '"':
                return scan_string(p, end);
        case 't':
                return scan_word(p, end, "true", 4);
        case 'f':
                return scan_word(p, end, "false", 5);
        case 'n':
                return scan_word(p, end, "null", 4);
        case '{':
        case '[': {
                bool object = *p == '{';
                char close = object ? '}' : ']';
                if (depth >= JSCAN_DEPTH_MAX)
                        return NULL;
                p = skip_ws(p + 1, end);
                if (p < end && *p == close)
                        return p + 1;
                for (;;) {
                        if (object) {
                                if (p >= end || *p != '"' || !(p = scan_string(p, end)))
                                        return NULL;
                                p = skip_ws(p, end);
                                if (p >= end || *p != ':')
                                        return NULL;
                                p = skip_ws(p + 1, end);
                        }
                        if (!(p = scan_value(p, end, depth + 1)))
                                return NULL;
                        p = skip_ws(p, end);
                        if (p >= end)
                                return NULL;
                        if (*p == close)
                                return p + 1;
                        if (*p != ',')
                                return NULL;
                        p = skip_ws(p + 1, end);
                }
        }
        default:
                return *p == '-' || (*p >= '0' && *p <= '9') ? scan_number(p, end) : NULL;
        }
}

int jscan_validate(const char *text, size_t len, struct jspan *ret)
{
        const char *end = text + len, *p = skip_ws(text, end);
        const char *v = scan_value(p, end, 0);
        if (!v || skip_ws(v, end) != end)
                return -EBADMSG;
        *ret = (struct jspan){p, (size_t)(v - p)};
        return 0;
}

enum jtype jscan_type(struct jspan v)
{
        if (v.n == 0)
                return JTYPE_INVALID;
        switch (v.p[0]) {
        case '{':
                return JTYPE_OBJECT;
        case '[':
                return JTYPE_ARRAY;
        case '"':
                return JTYPE_STRING;
        case 't':
        case 'f':
                return JTYPE_BOOL;
        case 'n':
                return JTYPE_NULL;
        default:
                return JTYPE_NUMBER;
        }
}

/* Past the value at p in text known to be valid: the readers walk with this, cheaper than
 * validating again (strings are skipped to their closing quote, containers by depth). */
static const char *skip_value(const char *p, const char *end)
{
        unsigned depth = 0;
        /* Bounded by end all the same: a span that was not validated must not make a
         * reader run off the text. */
        if (p >= end)
                return end;
        do {
                if (*p == '"') {
                        for (p++; p < end && *p != '"'; p++)
                                if (*p == '\\')
                                        p++;
                        p = p < end ? p + 1 : end;
                } else if (*p == '{' || *p == '[') {
                        depth++;
                        p++;
                } else if (*p == '}' || *p == ']') {
                        depth -= depth > 0;
                        p++;
                } else if (depth == 0) {
                        /* A scalar at the top: up to what ends it. */
                        while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' &&
                               *p != '\t' && *p != '\n' && *p != '\r')
                                p++;
                } else
                        p++;
        } while (depth > 0 && p < end);
        return p;
}

/* Whether the string token s (quotes included) says key. */
static bool key_equal(struct jspan s, const char *key)
{
        size_t n = strlen(key);
        if (!memchr(s.p, '\\', s.n))
                return s.n == n + 2 && memcmp(s.p + 1, key, n) == 0;
        char buf[256];
        return n < sizeof(buf) && jscan_string(s, buf, sizeof(buf)) == 0 && strcmp(buf, key) == 0;
}

uint32_t jscan_members_known(struct jspan obj, const char *const *keys, size_t n_keys,
                             struct jspan *ret, struct jspan *ret_other)
{
        if (ret_other)
                *ret_other = (struct jspan){NULL, 0};
        if (jscan_type(obj) != JTYPE_OBJECT || n_keys > 32)
                return 0;
        const char *end = obj.p + obj.n, *p = skip_ws(obj.p + 1, end);
        uint32_t found = 0;
        while (p < end && *p == '"') {
                const char *k = p;
                p = skip_value(p, end);
                struct jspan ks = {k, (size_t)(p - k)};
                p = skip_ws(p, end);
                p = skip_ws(p < end ? p + 1 : end, end); /* past the colon */
                const char *v = skip_value(p, end);
                bool known = false;
                for (size_t i = 0; i < n_keys; i++)
                        if (key_equal(ks, keys[i])) {
                                ret[i] = (struct jspan){p, (size_t)(v - p)};
                                found |= UINT32_C(1) << i;
                                known = true;
                        }
                if (!known && ret_other && !ret_other->p)
                        *ret_other = ks;
                p = skip_ws(v, end);
                if (p < end && *p == ',')
                        p = skip_ws(p + 1, end);
        }
        return found;
}

uint32_t jscan_members(struct jspan obj, const char *const *keys, size_t n_keys, struct jspan *ret)
{
        return jscan_members_known(obj, keys, n_keys, ret, NULL);
}

bool jscan_member(struct jspan obj, const char *key, struct jspan *ret)
{
        return jscan_members(obj, &key, 1, ret) != 0;
}

bool jscan_next(struct jspan array, size_t *pos, struct jspan *ret)
{
        if (jscan_type(array) != JTYPE_ARRAY)
                return false;
        const char *end = array.p + array.n;
        const char *p = skip_ws(array.p + (*pos ? *pos : 1), end);
        if (p < end && *p == ',')
                p = skip_ws(p + 1, end);
        if (p >= end || *p == ']')
                return false;
        const char *v = skip_value(p, end);
        *ret = (struct jspan){p, (size_t)(v - p)};
        *pos = (size_t)(v - array.p);
        return true;
}

size_t jscan_count(struct jspan array)
{
        size_t n = 0, pos = 0;
        struct jspan e;
        while (jscan_next(array, &pos, &e))
                n++;
        return n;
}

static size_t put_utf8(char *out, unsigned cp)
{
        if (cp < 0x80) {
                out[0] = (char)cp;
                return 1;
        }
        if (cp < 0x800) {
                out[0] = (char)(0xc0 | cp >> 6);
                out[1] = (char)(0x80 | (cp & 0x3f));
                return 2;
        }
        if (cp < 0x10000) {
                out[0] = (char)(0xe0 | cp >> 12);
                out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
                out[2] = (char)(0x80 | (cp & 0x3f));
                return 3;
        }
        out[0] = (char)(0xf0 | cp >> 18);
        out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
        out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[3] = (char)(0x80 | (cp & 0x3f));
        return 4;
}

int jscan_string(struct jspan v, char *buf, size_t size)
{
        if (jscan_type(v) != JTYPE_STRING || v.n < 2 || size == 0)
                return -EINVAL;
        const char *p = v.p + 1, *end = v.p + v.n - 1;
        size_t o = 0;
        while (p < end) {
                char tmp[4] = {};
                size_t k = 1;
                if (*p != '\\') {
                        tmp[0] = *p++;
                } else {
                        /* Pairs: the letter after the backslash, what it stands for. */
                        static const char simple[] = "\"\"\\\\//b\bf\fn\nr\rt\t";
                        char e = p[1];
                        p += 2;
                        if (e != 'u') {
                                for (const char *m = simple; *m; m += 2)
                                        if (*m == e)
                                                tmp[0] = m[1];
                        } else {
                                unsigned cp = (unsigned)hex4(p, end);
                                p += 4;
                                /* A surrogate pair is one code point; a lone half
                                 * stands for U+FFFD, as json-c does. */
                                if (cp >= 0xd800 && cp < 0xdc00 && end - p >= 6 && p[0] == '\\' &&
                                    p[1] == 'u') {
                                        int lo = hex4(p + 2, end);
                                        if (lo >= 0xdc00 && lo < 0xe000) {
                                                cp = 0x10000 + ((cp - 0xd800) << 10) +
                                                     (unsigned)(lo - 0xdc00);
                                                p += 6;
                                        }
                                }
                                if (cp >= 0xd800 && cp < 0xe000)
                                        cp = 0xfffd;
                                if (cp == 0)
                                        return -EILSEQ;
                                k = put_utf8(tmp, cp);
                        }
                }
                if (tmp[0] == 0)
                        return -EILSEQ;
                if (o + k >= size)
                        return -E2BIG;
                memcpy(buf + o, tmp, k);
                o += k;
        }
        buf[o] = 0;
        return 0;
}

int jscan_int(struct jspan v, int64_t *ret)
{
        if (jscan_type(v) != JTYPE_NUMBER || memchr(v.p, '.', v.n) || memchr(v.p, 'e', v.n) ||
            memchr(v.p, 'E', v.n))
                return -EINVAL;
        bool neg = v.p[0] == '-';
        uint64_t x = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        for (size_t i = neg; i < v.n; i++) {
                unsigned d = (unsigned)(v.p[i] - '0');
                if (x > (limit - d) / 10)
                        return -ERANGE;
                x = x * 10 + d;
        }
        *ret = neg ? (int64_t)(0 - x) : (int64_t)x;
        return 0;
}

int jscan_bool(struct jspan v, bool *ret)
{
        if (jscan_type(v) != JTYPE_BOOL)
                return -EINVAL;
        *ret = v.p[0] == 't';
        return 0;
}

/* ---- writing ------------------------------------------------------------------------ */

static bool reserve(struct jbuf *b, size_t n)
{
        if (b->oom)
                return false;
        if (b->len + n + 1 <= b->alloc)
                return true;
        size_t a = b->alloc ? b->alloc : 256;
        while (a < b->len + n + 1)
                a *= 2;
        char *p = realloc(b->p, a);
        if (!p) {
                b->oom = true;
                return false;
        }
        b->p = p;
        b->alloc = a;
        return true;
}

void jbuf_raw(struct jbuf *b, const char *s, size_t n)
{
        if (!reserve(b, n))
                return;
        memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = 0;
}

void jbuf_str(struct jbuf *b, const char *s)
{
        static const char hex[] = "0123456789abcdef";
        size_t n = strlen(s);
        /* At worst every byte takes six. */
        if (!reserve(b, n * 6 + 2))
                return;
        char *o = b->p + b->len;
        *o++ = '"';
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                if (*p == '"' || *p == '\\') {
                        *o++ = '\\';
                        *o++ = (char)*p;
                } else if (*p < 0x20) {
                        memcpy(o, "\\u00", 4);
                        o[4] = hex[*p >> 4];
                        o[5] = hex[*p & 15];
                        o += 6;
                } else
                        *o++ = (char)*p;
        }
        *o++ = '"';
        *o = 0;
        b->len = (size_t)(o - b->p);
}

void jbuf_int(struct jbuf *b, int64_t v)
{
        char tmp[24], *e = tmp + sizeof(tmp), *p = e;
        uint64_t x = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
        do
                *--p = (char)('0' + x % 10);
        while ((x /= 10));
        if (v < 0)
                *--p = '-';
        jbuf_raw(b, p, (size_t)(e - p));
}

void jbuf_done(struct jbuf *b)
{
        free(b->p);
        *b = (struct jbuf){};
}
