/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzzes the varlink framing the daemon applies to every byte a client sends: arbitrary
 * bytes go through a real socket into a varlink_stream with a small message limit; each
 * message that comes out is checked as the daemon does (json-text.h), and what that
 * accepts as an object json-c's strict parser must accept too. */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "json-text.h"
#include "varlink.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        int sv[2];
        if (size > 100000 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return 0;
        /* The socket buffer holds far more than 100 kB: the write never blocks. */
        size_t off = 0;
        while (off < size) {
                ssize_t n = write(sv[1], data + off, size - off);
                if (n <= 0)
                        break;
                off += (size_t)n;
        }
        close(sv[1]);

        struct varlink_stream s;
        varlink_stream_init(&s, sv[0], 4096);
        for (;;) {
                const char *text;
                size_t len, n_fds = 0;
                int fds[VARLINK_FDS_MAX];
                int r = varlink_stream_next_text(&s, &text, &len, fds, &n_fds);
                if (r > 0) {
                        assert(n_fds == 0);
                        assert(strlen(text) <= len && len <= 4096);
                        struct jspan v;
                        bool ours =
                                jscan_validate(text, len, &v) == 0 && jscan_type(v) == JTYPE_OBJECT;
                        json_tokener *tok = json_tokener_new_ex(JSCAN_DEPTH_MAX + 1);
                        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
                        json_object *o = json_tokener_parse_ex(tok, text, (int)len);
                        bool theirs = o && json_tokener_get_parse_end(tok) == len &&
                                      json_object_is_type(o, json_type_object);
                        /* Never laxer than json-c's strict mode (which takes raw control
                         * characters in strings: RFC 8259 and vfiod do not). A NUL inside
                         * the text ends json-c's view of it early. */
                        if (strlen(text) == len && ours)
                                assert(theirs);
                        json_object_put(o);
                        json_tokener_free(tok);
                        continue;
                }
                if (r < 0 && r != -EMSGSIZE)
                        break;
                if (r < 0)
                        continue; /* a bad message is consumed; go on */
                r = varlink_stream_read(&s);
                if (r <= 0)
                        break; /* end of input, or over the limit */
        }
        varlink_stream_done(&s);
        close(sv[0]);
        return 0;
}
