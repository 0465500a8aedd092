/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfiod: the device-passthrough daemon. See vfiod --help and docs/vfiod.8. */

#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "macro.h"
#include "server.h"

static void help(void)
{
        printf("Usage: vfiod [OPTIONS]\n"
               "\n"
               "Owns the host's assignable PCI devices and hands VFIO file descriptors to VMMs\n"
               "over a varlink socket (interface io.vfiod), under a policy, as leases that are\n"
               "undone when the VMM exits.\n"
               "\n"
               "  --socket PATH             public socket (default %s)\n"
               "  --admin-socket PATH       root-only socket (default %s)\n"
               "  --policy FILE             policy (default /etc/vfiod/policy.json)\n"
               "  --state-dir DIR           binding journal, below the root (default "
               "/var/lib/vfiod)\n"
               "  --runtime-dir DIR         lease records (default /run/vfiod)\n"
               "  --root DIR                read sys/, dev/, proc/ below DIR (tests)\n"
               "  --max-message BYTES       largest call accepted (default 65536)\n"
               "  --max-connections-per-uid N  (default 128)\n"
               "  --max-connections N       (default 4096)\n"
               "  --idle-timeout SECONDS    close connections idle this long, 0 never (default "
               "60)\n"
               "  --call-timeout SECONDS    close a connection whose call is not whole this long\n"
               "                            after its first byte (default 5)\n"
               "  --request-rate N          calls per second per uid, 0 no limit (default 1000);\n"
               "                            a reply costs one more call per 16 KiB\n"
               "  --max-output-per-uid BYTES  replies and events queued for one uid's\n"
               "                            connections, 0 no limit (default 8M): past it their\n"
               "                            calls wait and its slowest Monitor is ended\n"
               "  --max-output BYTES        the same for all uids together (default 64M)\n"
               "  --operation-timeout SECONDS  a kernel operation (bind, unbind, restore, SR-IOV)\n"
               "                            not done this long is reported late and its call\n"
               "                            answered OperationPending; it goes on (default 10)\n"
               "  --stop-timeout SECONDS    on SIGTERM, wait this long for running operations,\n"
               "                            then exit and leave them to finish (default 3)\n"
               "  --cdi-dir DIR             keep the CDI spec of the exported pools in DIR\n"
               "                            (/var/run/cdi for podman, CRI-O, containerd), a\n"
               "                            device taken out before it changes hands (default:\n"
               "                            no spec)\n"
               "  --pools FILE              the exported pools (default /etc/vfiod/pools.json)\n"
               "  -v, --verbose             log each call\n"
               "  -h, --help, --version\n"
               "\n"
               "With systemd socket activation (vfiod.socket) the sockets come from systemd;\n"
               "without it vfiod binds them itself and runs in the foreground. SIGTERM and\n"
               "SIGINT stop it; leases stay recorded and are adopted at the next start, and an\n"
               "operation still waiting for the kernel is finished from the journal.\n",
               VFIOD_SOCKET_PATH_DEFAULT, VFIOD_ADMIN_PATH_DEFAULT);
}

static int parse_unsigned(const char *s, const char *opt, uint64_t max, uint64_t *ret)
{
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (!*s || *end || errno || v > max || s[0] == '-') {
                fprintf(stderr, "vfiod: %s wants a number up to %llu, not '%s'\n", opt,
                        (unsigned long long)max, s);
                return -EINVAL;
        }
        *ret = v;
        return 0;
}

/* A byte count, with an optional K, M or G (powers of 1024). */
static int parse_size(const char *s, const char *opt, uint64_t max, uint64_t *ret)
{
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        unsigned shift = *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : 0;
        if (shift)
                end++;
        if (!*s || *end || errno || s[0] == '-' || v > (max >> shift)) {
                fprintf(stderr,
                        "vfiod: %s wants a size up to %llu bytes (K, M, G allowed), not '%s'\n",
                        opt, (unsigned long long)max, s);
                return -EINVAL;
        }
        *ret = (uint64_t)v << shift;
        return 0;
}

static int on_signal(sd_event_source *src, const struct signalfd_siginfo *si, void *userdata)
{
        struct server *s = userdata;
        log_msg(LOG_INFO, "stopping on signal %u; leases stay recorded", si->ssi_signo);
        jobs_stop(s, s->cfg.stop_timeout_usec);
        return 0;
}

int main(int argc, char **argv)
{
        enum {
                ARG_SOCKET = 0x100,
                ARG_ADMIN,
                ARG_POLICY,
                ARG_STATE,
                ARG_RUNTIME,
                ARG_ROOT,
                ARG_MAX_MESSAGE,
                ARG_MAX_CONN_UID,
                ARG_MAX_CONN,
                ARG_IDLE,
                ARG_CALL_TIMEOUT,
                ARG_RATE,
                ARG_MAX_OUTPUT_UID,
                ARG_MAX_OUTPUT,
                ARG_OPERATION_TIMEOUT,
                ARG_STOP_TIMEOUT,
                ARG_CDI_DIR,
                ARG_POOLS,
                ARG_VERSION,
        };
        static const struct option options[] = {
                {"socket", required_argument, NULL, ARG_SOCKET},
                {"admin-socket", required_argument, NULL, ARG_ADMIN},
                {"policy", required_argument, NULL, ARG_POLICY},
                {"state-dir", required_argument, NULL, ARG_STATE},
                {"runtime-dir", required_argument, NULL, ARG_RUNTIME},
                {"root", required_argument, NULL, ARG_ROOT},
                {"max-message", required_argument, NULL, ARG_MAX_MESSAGE},
                {"max-connections-per-uid", required_argument, NULL, ARG_MAX_CONN_UID},
                {"max-connections", required_argument, NULL, ARG_MAX_CONN},
                {"idle-timeout", required_argument, NULL, ARG_IDLE},
                {"call-timeout", required_argument, NULL, ARG_CALL_TIMEOUT},
                {"request-rate", required_argument, NULL, ARG_RATE},
                {"max-output-per-uid", required_argument, NULL, ARG_MAX_OUTPUT_UID},
                {"max-output", required_argument, NULL, ARG_MAX_OUTPUT},
                {"operation-timeout", required_argument, NULL, ARG_OPERATION_TIMEOUT},
                {"stop-timeout", required_argument, NULL, ARG_STOP_TIMEOUT},
                {"cdi-dir", required_argument, NULL, ARG_CDI_DIR},
                {"pools", required_argument, NULL, ARG_POOLS},
                {"verbose", no_argument, NULL, 'v'},
                {"help", no_argument, NULL, 'h'},
                {"version", no_argument, NULL, ARG_VERSION},
                {},
        };
        struct server_config cfg = {
                .socket_path = VFIOD_SOCKET_PATH_DEFAULT,
                .admin_path = VFIOD_ADMIN_PATH_DEFAULT,
                .policy_path = "/etc/vfiod/policy.json",
                .state_dir = NULL,
                .runtime_dir = "/run/vfiod",
                .max_message = 65536,
                .max_conn_per_uid = 128,
                .max_conn_total = 4096,
                .max_fds_in_flight = SERVER_FDS_IN_FLIGHT_MAX,
                .idle_timeout_usec = 60u * 1000000u,
                .call_timeout_usec = 5u * 1000000u,
                .request_rate = 1000,
                .max_output_per_uid = SERVER_OUTPUT_PER_UID_MAX,
                .max_output = SERVER_OUTPUT_MAX,
                .operation_timeout_usec = SERVER_OPERATION_TIMEOUT_USEC,
                .stop_timeout_usec = SERVER_STOP_TIMEOUT_USEC,
                .pools_path = "/etc/vfiod/pools.json",
        };
        int c;
        uint64_t v;
        while ((c = getopt_long(argc, argv, "vh", options, NULL)) >= 0) {
                switch (c) {
                case ARG_SOCKET:
                        cfg.socket_path = optarg;
                        break;
                case ARG_ADMIN:
                        cfg.admin_path = optarg;
                        break;
                case ARG_POLICY:
                        cfg.policy_path = optarg;
                        break;
                case ARG_STATE:
                        cfg.state_dir = optarg;
                        break;
                case ARG_RUNTIME:
                        cfg.runtime_dir = optarg;
                        break;
                case ARG_ROOT:
                        cfg.root = optarg;
                        break;
                case ARG_MAX_MESSAGE:
                        if (parse_unsigned(optarg, "--max-message", 64u * 1024 * 1024, &v) < 0 ||
                            v < 256)
                                return 2;
                        cfg.max_message = v;
                        break;
                case ARG_MAX_CONN_UID:
                        if (parse_unsigned(optarg, "--max-connections-per-uid", 1000000, &v) < 0)
                                return 2;
                        cfg.max_conn_per_uid = (unsigned)v;
                        break;
                case ARG_MAX_CONN:
                        if (parse_unsigned(optarg, "--max-connections", 1000000, &v) < 0)
                                return 2;
                        cfg.max_conn_total = (unsigned)v;
                        break;
                case ARG_IDLE:
                        if (parse_unsigned(optarg, "--idle-timeout", 86400, &v) < 0)
                                return 2;
                        cfg.idle_timeout_usec = v * 1000000u;
                        break;
                case ARG_CALL_TIMEOUT:
                        if (parse_unsigned(optarg, "--call-timeout", 3600, &v) < 0)
                                return 2;
                        if (v == 0) {
                                fprintf(stderr, "vfiod: --call-timeout wants at least 1 second\n");
                                return 2;
                        }
                        cfg.call_timeout_usec = v * 1000000u;
                        break;
                case ARG_RATE:
                        if (parse_unsigned(optarg, "--request-rate", 1000000, &v) < 0)
                                return 2;
                        cfg.request_rate = (unsigned)v;
                        break;
                case ARG_MAX_OUTPUT_UID:
                        if (parse_size(optarg, "--max-output-per-uid", SIZE_MAX / 2, &v) < 0)
                                return 2;
                        cfg.max_output_per_uid = (size_t)v;
                        break;
                case ARG_MAX_OUTPUT:
                        if (parse_size(optarg, "--max-output", SIZE_MAX / 2, &v) < 0)
                                return 2;
                        cfg.max_output = (size_t)v;
                        break;
                case ARG_OPERATION_TIMEOUT:
                        if (parse_unsigned(optarg, "--operation-timeout", 3600, &v) < 0)
                                return 2;
                        if (v == 0) {
                                fprintf(stderr,
                                        "vfiod: --operation-timeout wants at least 1 second\n");
                                return 2;
                        }
                        cfg.operation_timeout_usec = v * 1000000u;
                        break;
                case ARG_STOP_TIMEOUT:
                        if (parse_unsigned(optarg, "--stop-timeout", 300, &v) < 0)
                                return 2;
                        cfg.stop_timeout_usec = v * 1000000u;
                        break;
                case ARG_CDI_DIR:
                        cfg.cdi_dir = optarg;
                        break;
                case ARG_POOLS:
                        cfg.pools_path = optarg;
                        break;
                case 'v':
                        cfg.verbose++;
                        log_max_level = LOG_DEBUG;
                        break;
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("vfiod %s\n", VFIOD_VERSION);
                        return 0;
                default:
                        fprintf(stderr, "vfiod: see --help\n");
                        return 2;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "vfiod: unexpected argument '%s' (see --help)\n", argv[optind]);
                return 2;
        }
        if (cfg.runtime_dir[0] != '/' || cfg.policy_path[0] != '/') {
                fprintf(stderr, "vfiod: --runtime-dir and --policy want absolute paths\n");
                return 2;
        }

        /* Blocks of 128 KiB and more (a large reply, a list's text) are mapped on their
         * own and unmapped when freed, whatever was freed before: by default the threshold
         * rises with each such block freed, and later ones stay on the heap. */
        (void)mallopt(M_MMAP_THRESHOLD, 128 * 1024);

        /* Each connection takes fds: make room for the limit, or lower it. */
        server_fit_fd_limit(&cfg);
        signal(SIGPIPE, SIG_IGN);
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);

        struct server *s = NULL;
        int r = server_new(&cfg, &s);
        if (r < 0) {
                fprintf(stderr, "vfiod: cannot start: %s\n", strerror(-r));
                return 1;
        }
        r = server_start(s);
        if (r >= 0)
                r = sd_event_add_signal(s->event, NULL, SIGTERM, on_signal, s);
        if (r >= 0)
                r = sd_event_add_signal(s->event, NULL, SIGINT, on_signal, s);
        if (r < 0) {
                log_msg(LOG_ERR, "cannot start: %s", strerror(-r));
                server_free(s);
                return 1;
        }
        log_msg(LOG_INFO, "ready: %s%s%s, %zu lease(s) adopted", cfg.socket_path,
                cfg.admin_path ? " and " : "", cfg.admin_path ? cfg.admin_path : "", s->n_leases);
        (void)sd_notify(0, "READY=1\nSTATUS=Serving");
        r = sd_event_loop(s->event);
        (void)sd_notify(0, "STOPPING=1");
        server_free(s);
        return r < 0 ? 1 : 0;
}
