/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the C tests share: one temporary directory per test program, fixture trees built
 * by tests/fixtures/mkfixture, and programs run with their output captured. A failure
 * here fails the cmocka test that is running. */

#include <limits.h>

/* The test program's temporary directory, made by test_tmp_make(). */
extern char test_tmp[PATH_MAX - 512];

/* Makes test_tmp as base/vfiod-test-NAME.XXXXXX; base NULL means $TMPDIR, else /tmp.
 * Returns 0 or -errno. */
int test_tmp_make(const char *base, const char *name);

/* Removes test_tmp and everything in it. Returns 0 or -errno. */
int test_tmp_remove(void);

/* The two as a cmocka group's setup and teardown: test_tmp named after the program. */
int test_tmp_setup(void **state);
int test_tmp_teardown(void **state);

/* Where mkfixture and the fixture descriptions are: the test program's arguments,
 * given to fixture_init(). */
extern const char *test_mkfixture, *test_fixture_dir;
void fixture_init(const char *mkfixture, const char *fixture_dir);

/* Builds the tree described by desc (a path below the fixture directory, or an absolute
 * one) at out; mkfixture's standard output is discarded, its errors go into the test's
 * failure message. */
void fixture_build(const char *desc, const char *out);

/* The same at test_tmp/name, which it returns in out. */
char *fixture_tree(const char *desc, const char *name, char out[static PATH_MAX]);

struct run {
        int status; /* exit status, or -1 if killed */
        char *out, *err;
};

void run_done(struct run *r);

/* The whole content of a file; "" when it cannot be read. Never NULL but on ENOMEM. */
char *slurp(const char *path);

/* The first line of root/relpath without its newline, or "(absent)". */
char *tree_read_line(const char *root, const char *relpath);

/* Runs argv (no shell: arguments go as given) with its standard output and error
 * captured in files below test_tmp. */
struct run run_argv(char *const argv[]);

/* Runs argv with standard output to /dev/null and standard error left as it is. Returns
 * its exit status, 128 when a signal ended it. */
int run_quiet(const char *const argv[]);
