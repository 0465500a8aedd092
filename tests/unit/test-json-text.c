/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <json-c/json.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json-text.h"

static struct jspan valid(const char *text)
{
        struct jspan v = {};
        assert_int_equal(jscan_validate(text, strlen(text), &v), 0);
        return v;
}

static void rfc_8259_values_validate_and_others_do_not(void **state)
{
        const char *good[] = {
                "{}",
                " [ ] ",
                "\"\"",
                "0",
                "-0",
                "1.5e-3",
                "-12E+2",
                "true",
                "false",
                "null",
                "{\"a\":[1,{\"b\":null}],\"c\":\"\\u00e9\\n\\\"\"}",
                "\t\r\n[1, 2 ,3]\n",
        };
        const char *bad[] = {
                "",           " ",         "{",           "}",        "[1,]",
                "{\"a\":1,}", "{\"a\" 1}", "{a:1}",       "01",       "1.",
                ".5",         "1e",        "-",           "+1",       "tru",
                "nul",        "\"\\x\"",   "\"\\u12G4\"", "\"a\nb\"", "\"open",
                "{} {}",      "[1] x",     "'a'",         "NaN",      "[\"a\"\"b\"]",
        };
        struct jspan v;
        for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
                assert_int_equal(jscan_validate(good[i], strlen(good[i]), &v), 0);
        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
                assert_int_equal(jscan_validate(bad[i], strlen(bad[i]), &v), -EBADMSG);
        /* The length counts, not a NUL: a value cut short is incomplete. */
        assert_int_equal(jscan_validate("[1,2]", 4, &v), -EBADMSG);
        /* Whitespace around the value is not part of it. */
        v = valid("  {\"a\":1}  ");
        assert_int_equal(v.n, 7);
}

static void nesting_is_limited(void **state)
{
        char deep[2 * (JSCAN_DEPTH_MAX + 2) + 1];
        struct jspan v;
        for (size_t n = JSCAN_DEPTH_MAX; n <= JSCAN_DEPTH_MAX + 1; n++) {
                memset(deep, '[', n);
                memset(deep + n, ']', n);
                assert_int_equal(jscan_validate(deep, 2 * n, &v),
                                 n <= JSCAN_DEPTH_MAX ? 0 : -EBADMSG);
        }
}

static void members_are_found_the_last_one_wins_and_nulls_are_there(void **state)
{
        struct jspan o = valid("{\"method\":\"x\",\"parameters\":{\"devices\":[\"a\",\"b\"]},"
                               "\"more\":true,\"more\":false,\"n\":null,\"k\\u0065y\":7}"),
                     v, p, e;
        char buf[16];
        bool b = true;
        int64_t x;
        assert_true(jscan_member(o, "method", &v));
        assert_int_equal(jscan_string(v, buf, sizeof(buf)), 0);
        assert_string_equal(buf, "x");
        assert_true(jscan_member(o, "more", &v));
        assert_int_equal(jscan_bool(v, &b), 0);
        assert_false(b);
        assert_true(jscan_member(o, "n", &v));
        assert_int_equal(jscan_type(v), JTYPE_NULL);
        assert_true(jscan_member(o, "key", &v)); /* an escaped key */
        assert_int_equal(jscan_int(v, &x), 0);
        assert_int_equal(x, 7);
        assert_false(jscan_member(o, "devices", &v)); /* nested, not a member here */
        assert_false(jscan_member(o, "metho", &v));
        assert_true(jscan_member(o, "parameters", &p));
        assert_true(jscan_member(p, "devices", &v));
        assert_int_equal(jscan_count(v), 2);
        size_t pos = 0;
        assert_true(jscan_next(v, &pos, &e));
        assert_int_equal(jscan_string(e, buf, sizeof(buf)), 0);
        assert_string_equal(buf, "a");
        assert_true(jscan_next(v, &pos, &e));
        assert_int_equal(jscan_string(e, buf, sizeof(buf)), 0);
        assert_string_equal(buf, "b");
        assert_false(jscan_next(v, &pos, &e));
        assert_int_equal(jscan_count(valid("[]")), 0);

        /* Several keys in one pass: the same answers, and a mask of what was there. */
        static const char *const keys[] = {"more", "absent", "method", "key", "parameters"};
        struct jspan vs[5];
        assert_int_equal(jscan_members(o, keys, 5, vs), 1u << 0 | 1u << 2 | 1u << 3 | 1u << 4);
        assert_int_equal(jscan_bool(vs[0], &b), 0);
        assert_false(b); /* the last "more" */
        assert_int_equal(jscan_string(vs[2], buf, sizeof(buf)), 0);
        assert_string_equal(buf, "x");
        assert_int_equal(jscan_int(vs[3], &x), 0);
        assert_int_equal(x, 7);
        assert_int_equal(vs[4].n, p.n);
        assert_int_equal(jscan_members(valid("[1]"), keys, 5, vs), 0); /* not an object */
        assert_int_equal(jscan_members(valid("{}"), keys, 5, vs), 0);
        /* The first key that is none of those asked for, for readers that refuse it. */
        struct jspan other;
        static const char *const two[] = {"method", "more"};
        assert_int_equal(jscan_members_known(o, two, 2, vs, &other), 1u << 0 | 1u << 1);
        assert_non_null(other.p);
        assert_int_equal(jscan_string(other, buf, sizeof(buf)), 0);
        assert_string_equal(buf, "parameters");
        assert_int_equal(jscan_members_known(o, keys, 5, vs, &other), 0x1du);
        assert_int_equal(jscan_string(other, buf, sizeof(buf)), 0);
        assert_string_equal(buf, "n"); /* a null is a key all the same */
        static const char *const all[] = {"more", "n", "method", "key", "parameters"};
        assert_int_equal(jscan_members_known(o, all, 5, vs, &other), 0x1fu);
        assert_null(other.p);
        assert_int_equal(jscan_members_known(valid("{}"), keys, 5, vs, &other), 0);
        assert_null(other.p);
        /* Readers refuse the wrong type. */
        assert_int_equal(jscan_string(p, buf, sizeof(buf)), -EINVAL);
        assert_int_equal(jscan_int(valid("\"1\""), &x), -EINVAL);
        assert_int_equal(jscan_bool(valid("1"), &b), -EINVAL);
        assert_false(jscan_member(valid("[1]"), "a", &v));

        /* Spans that were never validated stay inside their bytes (ASan watches: each is
         * copied to a buffer of exactly its size). */
        const char *cut[] = {"{\"a\":\"open", "{\"a\":[1,{\"b\":", "{\"a\\", "[\"x", "{"};
        for (size_t i = 0; i < sizeof(cut) / sizeof(*cut); i++) {
                size_t len = strlen(cut[i]);
                char *copy = malloc(len);
                assert_non_null(copy);
                memcpy(copy, cut[i], len);
                struct jspan bad = {copy, len};
                (void)jscan_member(bad, "a", &v);
                pos = 0;
                while (jscan_next(bad, &pos, &e) && pos <= len)
                        ;
                free(copy);
        }
}

static void strings_unescape_like_json_c(void **state)
{
        const char *texts[] = {
                "\"plain\"",          "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
                "\"\\u00e9\\u20ac\"", "\"\\ud83d\\ude00\"",
                "\"\\udc00 lone\"",   "\"\\ud800\"",
                "\"caf\xc3\xa9\"",
        };
        for (size_t i = 0; i < sizeof(texts) / sizeof(*texts); i++) {
                char buf[64];
                assert_int_equal(jscan_string(valid(texts[i]), buf, sizeof(buf)), 0);
                json_object *o = json_tokener_parse(texts[i]);
                assert_non_null(o);
                assert_string_equal(buf, json_object_get_string(o));
                json_object_put(o);
        }
        char small[4];
        assert_int_equal(jscan_string(valid("\"abcd\""), small, sizeof(small)), -E2BIG);
        assert_int_equal(jscan_string(valid("\"abc\""), small, sizeof(small)), 0);
        assert_int_equal(jscan_string(valid("\"a\\u0000b\""), small, sizeof(small)), -EILSEQ);
}

static void integers_are_exact_and_bounded(void **state)
{
        int64_t x;
        assert_int_equal(jscan_int(valid("9223372036854775807"), &x), 0);
        assert_true(x == INT64_MAX);
        assert_int_equal(jscan_int(valid("-9223372036854775808"), &x), 0);
        assert_true(x == INT64_MIN);
        assert_int_equal(jscan_int(valid("9223372036854775808"), &x), -ERANGE);
        assert_int_equal(jscan_int(valid("-9223372036854775809"), &x), -ERANGE);
        assert_int_equal(jscan_int(valid("1.0"), &x), -EINVAL);
        assert_int_equal(jscan_int(valid("1e3"), &x), -EINVAL);
        assert_int_equal(jscan_int(valid("-0"), &x), 0);
        assert_int_equal(x, 0);
}

static void written_text_reads_back(void **state)
{
        struct jbuf b = {};
        const char *s = "quote\" back\\ nl\n tab\t bell\a \xc3\xa9";
        jbuf_lit(&b, "{\"s\":");
        jbuf_str(&b, s);
        jbuf_lit(&b, ",\"n\":[");
        jbuf_int(&b, INT64_MIN);
        jbuf_lit(&b, ",");
        jbuf_int(&b, 0);
        jbuf_lit(&b, ",");
        jbuf_int(&b, 4242);
        jbuf_lit(&b, "]}");
        assert_false(b.oom);
        assert_int_equal(strlen(b.p), b.len);

        json_object *o = json_tokener_parse(b.p);
        assert_non_null(o);
        json_object *v;
        assert_true(json_object_object_get_ex(o, "s", &v));
        assert_string_equal(json_object_get_string(v), s);
        assert_true(json_object_object_get_ex(o, "n", &v));
        assert_true(json_object_get_int64(json_object_array_get_idx(v, 0)) == INT64_MIN);
        assert_int_equal(json_object_get_int64(json_object_array_get_idx(v, 2)), 4242);
        json_object_put(o);

        char buf[64];
        struct jspan t = valid(b.p), e;
        assert_true(jscan_member(t, "s", &e));
        assert_int_equal(jscan_string(e, buf, sizeof(buf)), 0);
        assert_string_equal(buf, s);
        jbuf_done(&b);
        assert_null(b.p);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(rfc_8259_values_validate_and_others_do_not),
                cmocka_unit_test(nesting_is_limited),
                cmocka_unit_test(members_are_found_the_last_one_wins_and_nulls_are_there),
                cmocka_unit_test(strings_unescape_like_json_c),
                cmocka_unit_test(integers_are_exact_and_bounded),
                cmocka_unit_test(written_text_reads_back),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
