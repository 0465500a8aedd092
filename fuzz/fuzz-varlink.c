/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzzes the varlink framing and JSON decoding the daemon applies to every byte a client
 * sends: arbitrary bytes go through a real socket into a varlink_stream with a small
 * message limit, and every message that comes out must be a JSON object. */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
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
                json_object *msg = NULL;
                int fds[VARLINK_FDS_MAX];
                size_t n_fds = 0;
                int r = varlink_stream_next(&s, &msg, fds, &n_fds);
                if (r > 0) {
                        assert(json_object_is_type(msg, json_type_object));
                        assert(n_fds == 0);
                        json_object_put(msg);
                        continue;
                }
                if (r < 0 && r != -EBADMSG && r != -EMSGSIZE)
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
