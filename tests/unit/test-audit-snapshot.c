/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfioctl snapshot and vfioctl audit as a CI job runs them: a snapshot audited offline
 * says what the tree it was taken from says; truncated, pruned, tampered and hostile
 * archives are refused with exit 2 and a message; exit statuses follow --fail-on.
 * Run as: test-audit-snapshot MKFIXTURE FIXTURE_DIR VFIOCTL */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "macro.h"

static const char *vfioctl;

/* vfioctl with the given arguments. */
static struct run vfioctl_argv(const char *const *args)
{
        char *argv[16] = {(char *)vfioctl};
        size_t n = 1;

        for (; args[n - 1]; n++) {
                assert_true(n < ELEMENTSOF(argv) - 1);
                argv[n] = (char *)args[n - 1];
        }
        argv[n] = NULL;
        return run_argv(argv);
}

#define vfioctl_run(...) vfioctl_argv((const char *const[]){__VA_ARGS__, NULL})

static void snapshot(const char *root, const char *out)
{
        struct run r = vfioctl_run("--root", root, "snapshot", out);

        if (r.status != 0)
                fail_msg("vfioctl snapshot %s exited %d: %s", out, r.status, r.err);
        run_done(&r);
}

/* The parts of two audit documents that must agree whatever the source. */
static void assert_same_audit(const char *a, const char *b)
{
        json_object *x = json_tokener_parse(a), *y = json_tokener_parse(b);
        static const char *const keys[] = {"findings", "checks",   "summary",
                                           "scope",    "warnings", "verdict"};

        assert_non_null(x);
        assert_non_null(y);
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                json_object *u, *v;
                assert_true(json_object_object_get_ex(x, keys[i], &u));
                assert_true(json_object_object_get_ex(y, keys[i], &v));
                if (!json_object_equal(u, v))
                        fail_msg("audits differ in %s", keys[i]);
        }
        json_object_put(x);
        json_object_put(y);
}

static void every_machine_audits_the_same_from_its_snapshot(void **state)
{
        static const char *const machines[] = {
                "machines/desktop-z370-gt1030.txt",
                "machines/server-c236-i350.txt",
                "machines/workstation-rpl-82576-sriov.txt",
                "machines/amd-b450m-raven.txt",
                "noiommu.txt",
                "passthrough.txt",
                "broken.txt",
        };

        for (size_t i = 0; i < ELEMENTSOF(machines); i++) {
                char root[PATH_MAX], tar[PATH_MAX + 16], tgz[PATH_MAX + 16];
                struct run live, offline, compressed;
                const char *name = strrchr(machines[i], '/');

                name = name ? name + 1 : machines[i];
                fixture_tree(machines[i], name, root);
                snprintf(tar, sizeof(tar), "%s.tar", root);
                snprintf(tgz, sizeof(tgz), "%s.tar.gz", root);
                snapshot(root, tar);
                snapshot(root, tgz);
                live = vfioctl_run("audit", "--json", "--root", root);
                offline = vfioctl_run("audit", "--json", "--root", tar);
                compressed = vfioctl_run("audit", "--json", "--root", tgz);
                if (offline.status != live.status || compressed.status != live.status)
                        fail_msg("%s: exit %d live, %d and %d from snapshots: %s", name,
                                 live.status, offline.status, compressed.status, offline.err);
                assert_true(live.status == 0 || live.status == 1);
                assert_same_audit(live.out, offline.out);
                assert_same_audit(live.out, compressed.out);
                assert_non_null(strstr(offline.out, "\"snapshot\": {"));
                run_done(&live);
                run_done(&offline);
                run_done(&compressed);
        }
}

/* The report line counts the content in KiB, rounded up, as it always has: scripts
 * parse it. */
static void the_report_counts_content_in_kib(void **state)
{
        char root[PATH_MAX], tar[PATH_MAX + 16];
        size_t files, links, dirs, kib;
        int n = 0;
        struct run r;

        (void)state;
        fixture_tree("passthrough.txt", "report", root);
        snprintf(tar, sizeof(tar), "%s.tar", root);
        r = vfioctl_run("--root", root, "snapshot", tar);
        assert_int_equal(r.status, 0);
        assert_int_equal(strncmp(r.out, tar, strlen(tar)), 0);
        assert_int_equal(sscanf(r.out + strlen(tar),
                                ": %zu files, %zu links, %zu directories, %zu KiB of content\n%n",
                                &files, &links, &dirs, &kib, &n),
                         4);
        if ((size_t)n != strlen(r.out + strlen(tar)))
                fail_msg("the report is not one line in the old words: %s", r.out);
        assert_true(files > 0 && dirs > 0 && kib > 0);
        run_done(&r);
}

static void expect_refused(const char *root, const char *what, const char *words)
{
        struct run r = vfioctl_run("audit", "--root", root);

        if (r.status != 2)
                fail_msg("%s: exit %d, expected 2: %s", what, r.status, r.err);
        if (!strstr(r.err, words))
                fail_msg("%s: the message does not say '%s': %s", what, words, r.err);
        /* One line, naming the snapshot. */
        assert_non_null(strstr(r.err, root));
        assert_int_equal(strchr(r.err, '\n') - r.err + 1, (long)strlen(r.err));
        assert_string_equal(r.out, "");
        run_done(&r);
}

static void cut(const char *from, const char *to, off_t size)
{
        char cmd[3 * PATH_MAX];

        snprintf(cmd, sizeof(cmd), "head -c %lld '%s' > '%s'", (long long)size, from, to);
        assert_int_equal(system(cmd), 0);
}

static void truncated_and_pruned_snapshots_are_refused(void **state)
{
        char root[PATH_MAX], tar[PATH_MAX + 16], part[PATH_MAX + 16], dir[PATH_MAX + 16];
        char cmd[3 * PATH_MAX], victim[2 * PATH_MAX];
        struct stat st;

        fixture_tree("machines/server-c236-i350.txt", "cut", root);
        snprintf(tar, sizeof(tar), "%s.tar", root);
        snprintf(part, sizeof(part), "%s-part.tar", root);
        snapshot(root, tar);
        assert_int_equal(stat(tar, &st), 0);

        /* At a block boundary tar itself sees a clean end: only the manifest knows. */
        cut(tar, part, st.st_size / 1024 * 512);
        expect_refused(part, "cut at a block boundary", "truncated");
        /* In the middle of a member, and inside the manifest. */
        cut(tar, part, st.st_size / 2 + 700);
        expect_refused(part, "cut inside a member", "truncated");
        cut(tar, part, 1000);
        expect_refused(part, "cut inside the manifest", "truncated");
        cut(tar, part, 0);
        expect_refused(part, "an empty file", "not a readable tar archive");

        /* An extracted snapshot that lost a file, or whose file changed size. */
        snprintf(dir, sizeof(dir), "%s-dir", root);
        assert_int_equal(mkdir(dir, 0755), 0);
        snprintf(cmd, sizeof(cmd), "tar -xf '%s' -C '%s'", tar, dir);
        assert_int_equal(system(cmd), 0);
        {
                struct run r = vfioctl_run("audit", "--root", dir);
                assert_true(r.status == 0 || r.status == 1);
                run_done(&r);
        }
        snprintf(victim, sizeof(victim),
                 "%s/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/config", dir);
        assert_int_equal(truncate(victim, 64), 0);
        expect_refused(dir, "a config file cut short",
                       "sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/config: wrong size");
        assert_int_equal(unlink(victim), 0);
        expect_refused(dir, "a config file removed",
                       "sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/config: missing");
        snprintf(victim, sizeof(victim), "%s/vfiod-snapshot.manifest", dir);
        assert_int_equal(truncate(victim, 300), 0);
        expect_refused(dir, "a manifest cut short", "truncated or damaged");
}

/* An archive with the given members: name, type ('f', 'l', 'h' hard link), content. */
static void write_archive(const char *path, const char *const *members)
{
        struct archive *a = archive_write_new();

        assert_non_null(a);
        archive_write_set_format_pax_restricted(a);
        assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
        for (size_t i = 0; members[i]; i += 3) {
                struct archive_entry *e = archive_entry_new();
                const char *name = members[i], *type = members[i + 1], *data = members[i + 2];

                archive_entry_set_pathname(e, name);
                if (type[0] == 'l') {
                        archive_entry_set_filetype(e, AE_IFLNK);
                        archive_entry_set_perm(e, 0777);
                        archive_entry_set_symlink(e, data);
                } else if (type[0] == 'h') {
                        archive_entry_set_filetype(e, AE_IFREG);
                        archive_entry_set_perm(e, 0644);
                        archive_entry_set_hardlink(e, data);
                } else {
                        archive_entry_set_filetype(e, AE_IFREG);
                        archive_entry_set_perm(e, 0644);
                        archive_entry_set_size(e, (la_int64_t)strlen(data));
                }
                assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
                if (type[0] == 'f')
                        assert_int_equal(archive_write_data(a, data, strlen(data)),
                                         (la_ssize_t)strlen(data));
                archive_entry_free(e);
        }
        assert_int_equal(archive_write_close(a), ARCHIVE_OK);
        archive_write_free(a);
}

static void hostile_archives_write_nothing_outside_their_directory(void **state)
{
        char path[PATH_MAX], outside[PATH_MAX];
        static const char manifest[] = "vfiod-snapshot 1\nentries 0\nend 0\n";

        snprintf(outside, sizeof(outside), "%s/escaped", test_tmp);

        snprintf(path, sizeof(path), "%s/dotdot.tar", test_tmp);
        write_archive(path, (const char *const[]){"vfiod-snapshot.manifest", "f", manifest,
                                                  "../escaped", "f", "x", NULL});
        expect_refused(path, "a member named ../", "not a safe relative path");

        snprintf(path, sizeof(path), "%s/absolute.tar", test_tmp);
        write_archive(path, (const char *const[]){"/tmp/escaped", "f", "x", NULL});
        expect_refused(path, "an absolute member", "not a safe relative path");

        /* A link to the outside, then a file through it: the file lands inside. */
        snprintf(path, sizeof(path), "%s/through-link.tar", test_tmp);
        write_archive(path, (const char *const[]){"vfiod-snapshot.manifest", "f", manifest, "sys",
                                                  "l", test_tmp, "sys/escaped", "f", "x", NULL});
        {
                struct run r = vfioctl_run("audit", "--root", path);
                assert_int_equal(r.status, 2); /* no sys/bus/pci: cannot be audited */
                run_done(&r);
        }
        assert_int_equal(access(outside, F_OK), -1);

        snprintf(path, sizeof(path), "%s/hardlink.tar", test_tmp);
        write_archive(path, (const char *const[]){"vfiod-snapshot.manifest", "f", manifest,
                                                  "passwd", "h", "/etc/passwd", NULL});
        expect_refused(path, "a hard link", "hard link");

        snprintf(path, sizeof(path), "%s/no-manifest.tar", test_tmp);
        write_archive(path, (const char *const[]){"proc/cmdline", "f", "ro\n", NULL});
        expect_refused(path, "no manifest", "no vfiod-snapshot.manifest");

        snprintf(path, sizeof(path), "%s/twice.tar", test_tmp);
        write_archive(path, (const char *const[]){"vfiod-snapshot.manifest", "f", manifest,
                                                  "proc/cmdline", "f", "a\n", "proc/cmdline", "f",
                                                  "b\n", NULL});
        expect_refused(path, "a member twice", "appears twice");
}

static void exit_statuses_follow_fail_on_and_usage(void **state)
{
        char root[PATH_MAX], conf[PATH_MAX + 16];
        struct run r;
        FILE *f;

        fixture_tree("machines/server-c236-i350.txt", "exits", root);
        r = vfioctl_run("audit", "--root", root);
        assert_int_equal(r.status, 1); /* medium and high findings */
        assert_non_null(strstr(r.out, "Verdict: FAIL"));
        run_done(&r);
        r = vfioctl_run("audit", "--root", root, "--fail-on", "critical");
        assert_int_equal(r.status, 0);
        assert_non_null(strstr(r.out, "Verdict: PASS"));
        run_done(&r);
        r = vfioctl_run("audit", "--root", root, "--fail-on=info", "--json");
        assert_int_equal(r.status, 1);
        run_done(&r);
        /* A plan of two isolated I350 ports on vfio-pci: information only. */
        r = vfioctl_run("audit", "--root", root, "--devices", "05:00.0,05:00.1");
        assert_int_equal(r.status, 0);
        run_done(&r);
        snprintf(conf, sizeof(conf), "%s/assign.conf", test_tmp);
        f = fopen(conf, "we");
        assert_non_null(f);
        fputs("# the two I350 ports\n0000:05:00.0\n0000:05:00.1  # second port\n", f);
        fclose(f);
        r = vfioctl_run("audit", "--root", root, "--config", conf, "--json");
        assert_int_equal(r.status, 0);
        assert_non_null(strstr(r.out, "\"kind\": \"devices\""));
        run_done(&r);

        /* Could not run: 2. */
        r = vfioctl_run("audit", "--root", root, "--devices", "0000:42:00.0");
        assert_int_equal(r.status, 2);
        assert_non_null(strstr(r.err, "0000:42:00.0: no such PCI device"));
        run_done(&r);
        r = vfioctl_run("audit", "--root", root, "--devices", "eth0");
        assert_int_equal(r.status, 2);
        run_done(&r);
        r = vfioctl_run("audit", "--root", root, "--config", "/nonexistent/assign.conf");
        assert_int_equal(r.status, 2);
        assert_non_null(strstr(r.err, "/nonexistent/assign.conf"));
        run_done(&r);
        r = vfioctl_run("audit", "--root", root, "--fail-on", "severe");
        assert_int_equal(r.status, 2);
        run_done(&r);
        r = vfioctl_run("audit", "--root", root, "--json", "--sarif");
        assert_int_equal(r.status, 2);
        run_done(&r);
        /* The probe DMAs on the live host's devices, never on a tree. */
        r = vfioctl_run("audit", "--root", root, "--probe");
        assert_int_equal(r.status, 2);
        assert_non_null(strstr(r.err, "cannot run on a snapshot or a --root tree"));
        run_done(&r);
        r = vfioctl_run("audit", "--root", root, "0000:00:02.0");
        assert_int_equal(r.status, 2);
        assert_non_null(strstr(r.err, "without --probe"));
        run_done(&r);
        r = vfioctl_run("audit", "--root", test_tmp); /* no sys/bus/pci */
        assert_int_equal(r.status, 2);
        run_done(&r);
        r = vfioctl_run("--root", root, "snapshot", "/nonexistent/dir/x.tar");
        assert_int_equal(r.status, 1);
        assert_non_null(strstr(r.err, "/nonexistent/dir/x.tar"));
        run_done(&r);
}

/* Runs last: every audit above removed what it extracted. */
static void no_extraction_is_left_behind(void **state)
{
        char cmd[PATH_MAX + 64];

        snprintf(cmd, sizeof(cmd), "! ls -d '%s'/vfiod-snapshot.* 2>/dev/null", test_tmp);
        assert_int_equal(system(cmd), 0);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(every_machine_audits_the_same_from_its_snapshot),
                cmocka_unit_test(truncated_and_pruned_snapshots_are_refused),
                cmocka_unit_test(hostile_archives_write_nothing_outside_their_directory),
                cmocka_unit_test(exit_statuses_follow_fail_on_and_usage),
                cmocka_unit_test(the_report_counts_content_in_kib),
                cmocka_unit_test(no_extraction_is_left_behind),
        };
        int r;

        if (argc != 4) {
                fprintf(stderr, "usage: %s MKFIXTURE FIXTURE_DIR VFIOCTL\n", argv[0]);
                return 2;
        }
        fixture_init(argv[1], argv[2]);
        vfioctl = argv[3];
        if (test_tmp_make(NULL, "audit-snapshot") < 0)
                return 1;
        /* Extractions go below the test's own directory, checked empty at the end. */
        setenv("TMPDIR", test_tmp, 1);
        r = cmocka_run_group_tests(tests, NULL, NULL);
        (void)test_tmp_remove();
        return r;
}
