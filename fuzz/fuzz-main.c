/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Runs a fuzz harness over files and directories of inputs: how the seed corpus serves as
 * a regression test in builds without libFuzzer. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

static int run_file(const char *path)
{
        FILE *f = fopen(path, "rbe");
        if (!f) {
                fprintf(stderr, "fuzz: %s: %s\n", path, strerror(errno));
                return -1;
        }
        static uint8_t buf[1 << 20];
        size_t n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        LLVMFuzzerTestOneInput(buf, n);
        return 0;
}

int main(int argc, char **argv)
{
        size_t ran = 0;
        for (int i = 1; i < argc; i++) {
                struct stat st;
                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "fuzz: %s: %s\n", argv[i], strerror(errno));
                        return 1;
                }
                if (!S_ISDIR(st.st_mode)) {
                        if (run_file(argv[i]) < 0)
                                return 1;
                        ran++;
                        continue;
                }
                DIR *d = opendir(argv[i]);
                if (!d)
                        return 1;
                struct dirent *de;
                while ((de = readdir(d))) {
                        if (de->d_name[0] == '.')
                                continue;
                        char path[4096];
                        snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
                        if (run_file(path) < 0) {
                                closedir(d);
                                return 1;
                        }
                        ran++;
                }
                closedir(d);
        }
        printf("fuzz: %zu input(s) ran cleanly\n", ran);
        return ran ? 0 : 1;
}
