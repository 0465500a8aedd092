/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Benchmark helper: runs a command with stdout discarded and prints
 * "<wall ns> <peak RSS KiB> <exit status>". A small process of its own forks the child,
 * so the child's peak RSS is its own: a child forked or vforked from a large process
 * (an interpreter) inherits that process's high-water mark through exec. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
        struct timespec a, b;
        struct rusage ru;
        pid_t pid;
        int st;

        if (argc < 2) {
                fprintf(stderr, "usage: measure COMMAND [ARGS...]\n");
                return 2;
        }
        clock_gettime(CLOCK_MONOTONIC, &a);
        pid = fork();
        if (pid < 0) {
                perror("measure: fork");
                return 1;
        }
        if (pid == 0) {
                int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
                if (null < 0 || dup2(null, STDOUT_FILENO) < 0)
                        _exit(127);
                execvp(argv[1], argv + 1);
                perror("measure: exec");
                _exit(127);
        }
        if (wait4(pid, &st, 0, &ru) != pid) {
                perror("measure: wait4");
                return 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        printf("%lld %ld %d\n",
               (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec),
               ru.ru_maxrss, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
        return 0;
}
