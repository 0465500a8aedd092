/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The words vfioctl prints for a lease's RLIMIT_MEMLOCK: the syntax a policy's "memlock"
 * and --memlock take, so that what is shown is what one would write. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>

#include "cli-daemon.h"

/* cli/daemon.c's error sentences quote with vfioctl.c's cli_quote(); none is asked for
 * here, so the test's own plain copy links in its place. */
const char *cli_quote(const char *s, char buf[static 300])
{
        snprintf(buf, 300, "%s", s);
        return buf;
}

static void memlock_reads_as_policy_syntax(void **state)
{
        char b[FORMAT_SIZE_MAX];

        (void)state;
        assert_string_equal(cli_memlock_text(-1, b), "unlimited");
        assert_string_equal(cli_memlock_text(-2, b), "left as it was");
        assert_string_equal(cli_memlock_text(8 << 20, b), "8M");
        assert_string_equal(cli_memlock_text(1536ll << 20, b), "1536M");
        assert_string_equal(cli_memlock_text(16ll << 30, b), "16G");
        assert_string_equal(cli_memlock_text(0, b), "0G");
        assert_string_equal(cli_memlock_text(65536, b), "65536");
        assert_string_equal(cli_memlock_text(INT64_MAX, b), "9223372036854775807");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(memlock_reads_as_policy_syntax),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
