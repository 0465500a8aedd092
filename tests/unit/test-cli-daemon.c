/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfioctl exec and qemu-attach against a vfiod daemon serving a fixture tree: usage
 * errors, an unreachable daemon and every refusal the daemon can give on a machine
 * without VFIO come out as one clear line with the right exit status, and neither the
 * VMM runs nor QEMU receives anything. Acquiring for real is proven in the lab.
 * Run as: test-cli-daemon MKFIXTURE FIXTURE_DIR VFIOCTL VFIOD */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "macro.h"

static const char *vfioctl, *vfiod;
/* test_tmp, which is short here: socket paths must fit sun_path. */
static char tmp[64], root[300], sock[300], marker[300];
static pid_t daemon_pid = -1;

/* Everything readable from fd until end of file, as a string; "" on errors. */
static char *read_all(int fd)
{
        size_t n = 0, cap = 4096;
        char *s = malloc(cap);
        ssize_t k;

        assert_non_null(s);
        while (fd >= 0 && (k = read(fd, s + n, cap - n - 1)) > 0) {
                n += (size_t)k;
                if (cap - n < 2) {
                        cap *= 2;
                        s = realloc(s, cap);
                        assert_non_null(s);
                }
        }
        s[n] = '\0';
        return s;
}

static void copy_file(const char *from, const char *to)
{
        char *text = slurp(from);
        int fd = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        close(fd);
        free(text);
}

/* The daemon reads the caller's proc/PID files below its root: put this process's there
 * (the pid and start time stay the same across execve()). */
static void enter_fixture_proc(void)
{
        char dir[400], path[450];

        snprintf(dir, sizeof(dir), "%s/proc/%d", root, (int)getpid());
        mkdir(dir, 0755);
        snprintf(path, sizeof(path), "%s/stat", dir);
        copy_file("/proc/self/stat", path);
        snprintf(path, sizeof(path), "%s/status", dir);
        copy_file("/proc/self/status", path);
}

/* Runs vfioctl ARGS with $VFIOD_SOCKET set; its standard error comes back through a
 * pipe. */
static struct run run_vfioctl(const char *socket_path, const char *const *args)
{
        char *argv[32] = {(char *)vfioctl};
        struct run r = {.status = -1};
        size_t n = 1;
        int p[2], st;

        for (; args[n - 1] && n < ELEMENTSOF(argv) - 1; n++)
                argv[n] = (char *)args[n - 1];
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                if (!freopen("/dev/null", "w", stdout) || dup2(p[1], STDERR_FILENO) < 0)
                        _exit(127);
                setenv("VFIOD_SOCKET", socket_path, 1);
                enter_fixture_proc();
                execv(argv[0], argv);
                _exit(127);
        }
        close(p[1]);
        r.err = read_all(p[0]);
        close(p[0]);
        assert_int_equal(waitpid(pid, &st, 0), pid);
        if (WIFEXITED(st))
                r.status = WEXITSTATUS(st);
        return r;
}

static bool vmm_ran(void)
{
        return access(marker, F_OK) == 0;
}

/* Runs "vfioctl exec ARGS -- /bin/sh -c 'touch MARKER'" and checks the status, that the
 * message is on stderr, and that the "VMM" did not run. */
static void exec_fails(const char *socket_path, int status, const char *message, ...)
{
        const char *args[24] = {"exec"};
        char script[400];
        size_t n = 1;
        va_list ap;

        va_start(ap, message);
        for (const char *a; (a = va_arg(ap, const char *)) && n < 18;)
                args[n++] = a;
        va_end(ap);
        snprintf(script, sizeof(script), "touch %s", marker);
        args[n++] = "--";
        args[n++] = "/bin/sh";
        args[n++] = "-c";
        args[n++] = script;
        args[n] = NULL;

        unlink(marker);
        struct run r = run_vfioctl(socket_path, args);
        if (!strstr(r.err, message) || r.status != status)
                fail_msg("expected exit %d and '%s', got exit %d and: %s", status, message,
                         r.status, r.err);
        /* One line: the reason, nothing else. */
        assert_non_null(strchr(r.err, '\n'));
        assert_string_equal(strchr(r.err, '\n'), "\n");
        assert_false(vmm_ran());
        free(r.err);
}

static void exec_without_a_daemon_names_the_socket_and_exits_1(void **state)
{
        char none[400], msg[500];

        (void)state;
        snprintf(none, sizeof(none), "%s/no-such-socket", tmp);
        snprintf(msg, sizeof(msg), "vfioctl: exec: cannot reach the vfiod daemon at %s: ", none);
        exec_fails(none, 1, msg, "--device", "02:00.0", NULL);
}

static void exec_usage_errors_exit_2_before_asking_the_daemon(void **state)
{
        (void)state;
        exec_fails(sock, 2, "exec: name the devices to acquire with --device DEVICE", NULL);
        exec_fails(sock, 2, "exec: 'zz' is not a PCI address", "--device", "02:00.0,zz", NULL);
        exec_fails(sock, 2, "exec: 0000:02:00.0 is given twice", "--device", "02:00.0", "--device",
                   "0000:02:00.0", NULL);
        exec_fails(sock, 2, "exec: --backend takes iommufd or type1, not 'vfio'", "--device",
                   "02:00.0", "--backend", "vfio", NULL);

        /* qemu-attach checks its --backend before it talks to QEMU or the daemon. */
        const char *attach[] = {"qemu-attach", "--qmp", "/nonexistent", "--backend", "vfio",
                                "02:00.0",     NULL};
        struct run r = run_vfioctl(sock, attach);
        assert_int_equal(r.status, 2);
        assert_non_null(strstr(r.err, "qemu-attach: --backend takes iommufd or type1, not 'vfio'"));
        free(r.err);
}

static void exec_refused_by_the_policy_names_the_device_and_the_uid(void **state)
{
        char msg[200];

        (void)state;
        snprintf(msg, sizeof(msg),
                 "vfioctl: exec: 0000:02:00.0: the daemon's policy does not allow uid %u to "
                 "acquire it",
                 (unsigned)geteuid());
        exec_fails(sock, 1, msg, "--device", "02:00.0", NULL);
}

static void exec_of_an_unknown_device_exits_2(void **state)
{
        (void)state;
        exec_fails(sock, 2, "vfioctl: exec: 0000:7f:00.0: no such PCI device on the daemon's host",
                   "--device", "7f:00.0", NULL);
}

static void exec_gives_the_daemons_reason_for_a_busy_device(void **state)
{
        (void)state;
        exec_fails(sock, 1,
                   "vfioctl: exec: 0000:00:01.0: not available: a bridge (PCI bridge, class 0604): "
                   "bridges stay with the host",
                   "--device", "00:01.0", NULL);
}

static void qemu_attach_without_a_qmp_socket_exits_1(void **state)
{
        char none[400];

        (void)state;
        snprintf(none, sizeof(none), "%s/no-such-qmp", tmp);
        const char *args[] = {"qemu-attach", "--qmp", none, "02:00.0", NULL};
        struct run r = run_vfioctl(sock, args);
        assert_int_equal(r.status, 1);
        assert_non_null(strstr(r.err, "vfioctl: qemu-attach: cannot talk QMP on "));
        assert_non_null(strstr(r.err, "start QEMU with -qmp unix:SOCKET,server=on,wait=off"));
        free(r.err);

        const char *usage[] = {"qemu-attach", "02:00.0", NULL};
        r = run_vfioctl(sock, usage);
        assert_int_equal(r.status, 2);
        free(r.err);
}

/* A QMP server that answers every command with success and logs each command's name,
 * one per line, to log. */
static void fake_qmp(int listener, const char *log)
{
        FILE *out = fopen(log, "we");
        int fd = accept(listener, NULL, NULL);
        char line[4096];

        if (!out || fd < 0)
                _exit(1);
        FILE *in = fdopen(fd, "r");
        const char *greeting = "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n";
        if (!in || write(fd, greeting, strlen(greeting)) < 0)
                _exit(1);
        while (fgets(line, sizeof(line), in)) {
                char *e = strstr(line, "\"execute\":\""), *id = strstr(line, "\"id\":\"");
                char reply[300];
                if (!e || !id)
                        _exit(1);
                e += 11;
                id += 6;
                fprintf(out, "%.*s\n", (int)strcspn(e, "\""), e);
                fflush(out);
                snprintf(reply, sizeof(reply), "{\"return\": {}, \"id\": \"%.*s\"}\r\n",
                         (int)strcspn(id, "\""), id);
                if (write(fd, reply, strlen(reply)) < 0)
                        _exit(1);
        }
        _exit(0);
}

static void qemu_attach_refused_by_the_daemon_hands_qemu_nothing(void **state)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        char log[400], msg[200];
        int st;

        (void)state;
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/qmp", tmp);
        snprintf(log, sizeof(log), "%s/qmp.log", tmp);
        int ready[2];
        assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
        unlink(sa.sun_path);
        /* QEMU listens itself: the peer credentials name the process that called listen(). */
        pid_t qemu = fork();
        assert_true(qemu >= 0);
        if (qemu == 0) {
                int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 1) < 0)
                        _exit(1);
                enter_fixture_proc(); /* the daemon looks at the lease holder */
                close(ready[0]);
                close(ready[1]);
                fake_qmp(l, log);
        }
        char c;
        close(ready[1]);
        assert_int_equal(read(ready[0], &c, 1), 0);
        close(ready[0]);

        const char *args[] = {"qemu-attach", "--qmp", sa.sun_path, "02:00.0", NULL};
        struct run r = run_vfioctl(sock, args);
        snprintf(msg, sizeof(msg),
                 "vfioctl: qemu-attach: 0000:02:00.0: the daemon's policy does not allow uid %u "
                 "to acquire it\n",
                 (unsigned)geteuid());
        assert_string_equal(r.err, msg);
        assert_int_equal(r.status, 1);
        free(r.err);

        assert_int_equal(waitpid(qemu, &st, 0), qemu);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        char *got = slurp(log);
        assert_string_equal(got, "qmp_capabilities\n");
        free(got);
}

static int start_daemon(void **state)
{
        char policy[400], runtime[400], admin[400];

        (void)state;
        /* Below /tmp whatever $TMPDIR says: socket paths must stay short. */
        assert_int_equal(test_tmp_make("/tmp", "cli-daemon"), 0);
        assert_true(snprintf(tmp, sizeof(tmp), "%s", test_tmp) < (int)sizeof(tmp));
        snprintf(root, sizeof(root), "%s/root", tmp);
        snprintf(sock, sizeof(sock), "%s/s", tmp);
        snprintf(admin, sizeof(admin), "%s/a", tmp);
        snprintf(runtime, sizeof(runtime), "%s/run", tmp);
        snprintf(marker, sizeof(marker), "%s/vmm-ran", tmp);
        snprintf(policy, sizeof(policy), "%s/policy.json", tmp);
        fixture_build("machines/workstation-rpl-82576-sriov.txt", root);

        /* Anyone may list; only the bridge 00:01.0 may be acquired (and is then refused
         * as busy). */
        FILE *f = fopen(policy, "we");
        assert_non_null(f);
        fputs("{\"rules\": [{\"users\": [\"*\"], \"operations\": [\"list\"]},"
              " {\"users\": [\"*\"], \"operations\": [\"acquire\"],"
              "  \"devices\": [\"0000:00:01.0\"]}]}\n",
              f);
        fclose(f);

        daemon_pid = fork();
        assert_true(daemon_pid >= 0);
        if (daemon_pid == 0) {
                if (!freopen("/dev/null", "w", stderr))
                        _exit(127);
                execl(vfiod, vfiod, "--root", root, "--socket", sock, "--admin-socket", admin,
                      "--runtime-dir", runtime, "--policy", policy, (char *)NULL);
                _exit(127);
        }
        for (int i = 0; i < 500 && access(sock, F_OK) < 0; i++)
                usleep(10 * 1000);
        assert_int_equal(access(sock, F_OK), 0);
        return 0;
}

static int stop_daemon(void **state)
{
        (void)state;
        if (daemon_pid > 0) {
                kill(daemon_pid, SIGTERM);
                waitpid(daemon_pid, NULL, 0);
        }
        return test_tmp_remove() < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(exec_without_a_daemon_names_the_socket_and_exits_1),
                cmocka_unit_test(exec_usage_errors_exit_2_before_asking_the_daemon),
                cmocka_unit_test(exec_refused_by_the_policy_names_the_device_and_the_uid),
                cmocka_unit_test(exec_of_an_unknown_device_exits_2),
                cmocka_unit_test(exec_gives_the_daemons_reason_for_a_busy_device),
                cmocka_unit_test(qemu_attach_without_a_qmp_socket_exits_1),
                cmocka_unit_test(qemu_attach_refused_by_the_daemon_hands_qemu_nothing),
        };

        if (argc != 5) {
                fprintf(stderr, "usage: %s MKFIXTURE FIXTURE_DIR VFIOCTL VFIOD\n", argv[0]);
                return 2;
        }
        fixture_init(argv[1], argv[2]);
        vfioctl = argv[3];
        vfiod = argv[4];
        return cmocka_run_group_tests(tests, start_daemon, stop_daemon);
}
