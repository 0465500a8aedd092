/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzzes the policy parser: any text is a policy or an error with a detail, never a
 * crash, and a parsed policy answers checks. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size > 65536)
                return 0;
        char *text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = 0;

        struct policy *p = NULL;
        char *detail = NULL;
        int r = policy_parse(text, &p, &detail);
        if (r < 0)
                assert(!p);
        else {
                struct policy_client c = {.uid = 65534, .gid = 65534};
                for (int op = 0; op < _POLICY_OP_MAX; op++)
                        (void)policy_check(p, &c, op, NULL, NULL);
                policy_free(p);
        }
        free(detail);
        free(text);
        return 0;
}
