/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "helpers.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fd-util.h"
#include "macro.h"

char test_tmp[PATH_MAX - 512];
const char *test_mkfixture, *test_fixture_dir;

int test_tmp_make(const char *base, const char *name)
{
        if (!base)
                base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        snprintf(test_tmp, sizeof(test_tmp), "%s/vfiod-test-%s.XXXXXX", base, name);
        return mkdtemp(test_tmp) ? 0 : negative_errno();
}

int test_tmp_remove(void)
{
        return rm_rf_at(AT_FDCWD, test_tmp);
}

int test_tmp_setup(void **state)
{
        const char *name = program_invocation_short_name;

        if (strncmp(name, "test-", 5) == 0)
                name += 5;
        return test_tmp_make(NULL, name) < 0 ? -1 : 0;
}

int test_tmp_teardown(void **state)
{
        return test_tmp_remove() < 0 ? -1 : 0;
}

void fixture_init(const char *mkfixture, const char *fixture_dir)
{
        test_mkfixture = mkfixture;
        test_fixture_dir = fixture_dir;
}

void fixture_build(const char *desc, const char *out)
{
        char path[PATH_MAX];
        char *argv[] = {(char *)"/usr/bin/python3", (char *)test_mkfixture, path, (char *)out,
                        NULL};
        struct run r;

        if (desc[0] == '/')
                snprintf(path, sizeof(path), "%s", desc);
        else
                snprintf(path, sizeof(path), "%s/%s", test_fixture_dir, desc);
        r = run_argv(argv);
        if (r.status != 0)
                fail_msg("mkfixture %s failed (%d): %s", desc, r.status, r.err);
        run_done(&r);
}

char *fixture_tree(const char *desc, const char *name, char out[static PATH_MAX])
{
        snprintf(out, PATH_MAX, "%s/%s", test_tmp, name);
        fixture_build(desc, out);
        return out;
}

void run_done(struct run *r)
{
        free(r->out);
        free(r->err);
}

char *tree_read_line(const char *root, const char *relpath)
{
        char path[2 * PATH_MAX];
        char *s;

        snprintf(path, sizeof(path), "%s/%s", root, relpath);
        if (access(path, F_OK) < 0)
                return strdup("(absent)");
        s = slurp(path);
        s[strcspn(s, "\n")] = '\0';
        return s;
}

char *slurp(const char *path)
{
        FILE *f = fopen(path, "re");
        char *s = NULL;
        size_t n = 0;

        if (!f)
                return strdup("");
        if (getdelim(&s, &n, '\0', f) < 0) {
                free(s);
                s = strdup("");
        }
        fclose(f);
        return s;
}

struct run run_argv(char *const argv[])
{
        char out[PATH_MAX], err[PATH_MAX];
        struct run r = {.status = -1};
        pid_t pid;
        int st;

        snprintf(out, sizeof(out), "%s/stdout", test_tmp);
        snprintf(err, sizeof(err), "%s/stderr", test_tmp);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                if (!freopen(out, "w", stdout) || !freopen(err, "w", stderr))
                        _exit(127);
                execv(argv[0], argv);
                _exit(127);
        }
        assert_int_equal(waitpid(pid, &st, 0), pid);
        if (WIFEXITED(st))
                r.status = WEXITSTATUS(st);
        r.out = slurp(out);
        r.err = slurp(err);
        return r;
}

int run_quiet(const char *const argv[])
{
        pid_t pid = fork();
        int st;

        assert_true(pid >= 0);
        if (pid == 0) {
                if (!freopen("/dev/null", "w", stdout))
                        _exit(127);
                execv(argv[0], (char *const *)argv);
                _exit(127);
        }
        assert_int_equal(waitpid(pid, &st, 0), pid);
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}
