/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "job.h"
#include "cdi-export.h"
#include "json-text.h"
#include "macro.h"
#include "server.h"
#include "detail.h"

/* What a worker writes to its pipe before it exits: the result, then the sentence. The
 * pipe's buffer holds it whole, so the worker never waits for the daemon to read. */
struct job_result {
        int32_t r;
        uint32_t why_len;
};
#define JOB_WHY_MAX 2048

static const char *job_devices_text(const struct job *j, char *buf, size_t size)
{
        if (j->all_devices)
                return "all devices";
        size_t o = 0;
        buf[0] = 0;
        for (size_t i = 0; i < j->n_devices && o + PCI_ADDR_STRLEN + 8 < size; i++) {
                char a[PCI_ADDR_STRLEN];
                o += (size_t)snprintf(buf + o, size - o, "%s%s", i ? " " : "",
                                      pci_addr_format(&j->devices[i], a));
        }
        if (j->n_devices == 0)
                snprintf(buf, size, "no device");
        return buf;
}

static const char *format_time(uint64_t realtime_usec, char *buf, size_t size)
{
        time_t t = (time_t)(realtime_usec / 1000000u);
        struct tm tm;
        if (!gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                snprintf(buf, size, "?");
        return buf;
}

const char *job_describe(const struct job *j, char *buf, size_t size)
{
        char when[32];
        snprintf(buf, size, "%s in progress since %s%s", j->operation,
                 format_time(j->started_realtime_usec, when, sizeof(when)),
                 j->late ? ", past its deadline: waiting for the kernel" : "");
        return buf;
}

void job_write_json(const struct job *j, struct jbuf *b)
{
        char when[32];
        jbuf_lit(b, "{\"operation\":");
        jbuf_str(b, j->operation);
        jbuf_lit(b, ",\"since\":");
        jbuf_str(b, format_time(j->started_realtime_usec, when, sizeof(when)));
        jbuf_lit(b, ",\"late\":");
        if (j->late)
                jbuf_lit(b, "true");
        else
                jbuf_lit(b, "false");
        jbuf_lit(b, "}");
}

struct job *job_of_device(struct server *s, const struct pci_addr *a)
{
        for (struct job *j = s->jobs; j; j = j->next) {
                if (j->all_devices)
                        return j;
                for (size_t i = 0; i < j->n_devices; i++)
                        if (pci_addr_equal(&j->devices[i], a))
                                return j;
        }
        return NULL;
}

/* An event for each device of the job (one with no device for all of them). */
static void job_broadcast(struct server *s, const char *kind, const struct job *j)
{
        if (j->all_devices || j->n_devices == 0)
                server_broadcast(s, kind, NULL, 0);
        for (size_t i = 0; !j->all_devices && i < j->n_devices; i++)
                server_broadcast(s, kind, &j->devices[i], 0);
}

static void job_unpark(struct job *j)
{
        struct conn *c = j->conn;
        if (!c)
                return;
        j->conn = NULL;
        c->job = NULL;
        conn_resume(c);
}

void job_forget_conn(struct job *j)
{
        if (j->conn)
                j->conn->job = NULL;
        j->conn = NULL;
}

static void job_free(struct job *j)
{
        if (!j)
                return;
        sd_event_source_disable_unref(j->exit_source);
        sd_event_source_disable_unref(j->deadline);
        safe_close(j->pidfd);
        safe_close(j->result_fd);
        if (j->free_data)
                j->free_data(j->data);
        free(j->devices);
        free(j);
}

static void job_unlink(struct server *s, struct job *j)
{
        if (j->prev)
                j->prev->next = j->next;
        else
                s->jobs = j->next;
        if (j->next)
                j->next->prev = j->prev;
        j->prev = j->next = NULL;
        s->n_jobs--;
}

/* The worker's whole life, in the child process. Never returns. */
static _Noreturn void job_worker(struct server *s, const struct job_spec *spec, int result_fd)
{
        /* Everything the daemon has open but the root and the pipe is closed: a worker
         * that outlives the daemon must not keep its sockets (clients would wait on a
         * connection nobody serves) nor any other of its files. */
        int keep[] = {s->root->fd, result_fd};
        if (keep[0] > keep[1]) {
                int t = keep[0];
                keep[0] = keep[1];
                keep[1] = t;
        }
        unsigned from = 3;
        for (size_t i = 0; i < ELEMENTSOF(keep); i++) {
                if ((unsigned)keep[i] > from)
                        (void)close_range(from, (unsigned)keep[i] - 1, 0);
                if ((unsigned)keep[i] + 1 > from)
                        from = (unsigned)keep[i] + 1;
        }
        (void)close_range(from, ~0u, 0);

        char *why = NULL;
        int r = spec->work(s, spec->data, &why);
        struct job_result res = {.r = r};
        size_t len = why ? strnlen(why, JOB_WHY_MAX) : 0;
        res.why_len = (uint32_t)len;
        char buf[sizeof(res) + JOB_WHY_MAX];
        memcpy(buf, &res, sizeof(res));
        if (len)
                memcpy(buf + sizeof(res), why, len);
        /* The daemon may be gone (stopped while this waited for the kernel): then nobody
         * reads, SIGPIPE is ignored and the write fails; the journal says what was done. */
        (void)!write(result_fd, buf, sizeof(res) + len);
        _exit(0);
}

static int on_job_exit(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct job *j = userdata;
        struct server *s = j->server;
        siginfo_t si = {};
        if (waitid((idtype_t)P_PIDFD, (id_t)j->pidfd, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
                return 0; /* not yet (a spurious wakeup) */

        char buf[sizeof(struct job_result) + JOB_WHY_MAX + 1];
        ssize_t n = read(j->result_fd, buf, sizeof(buf) - 1);
        struct job_result res = {.r = -ECHILD};
        _cleanup_free_ char *why = NULL;
        if (n >= (ssize_t)sizeof(res)) {
                memcpy(&res, buf, sizeof(res));
                size_t len = (size_t)res.why_len < (size_t)n - sizeof(res)
                                     ? (size_t)res.why_len
                                     : (size_t)n - sizeof(res);
                if (len)
                        why = strndup(buf + sizeof(res), len);
        } else if (si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED) {
                if (asprintf(&why, "the worker was killed by signal %d", si.si_status) < 0)
                        why = NULL;
        } else
                why = strdup("the worker exited without a result");

        char devbuf[256];
        const char *devs = job_devices_text(j, devbuf, sizeof(devbuf));
        double took = (double)(clock_usec(CLOCK_MONOTONIC) - j->started_usec) / 1e6;
        if (j->late)
                log_msg(LOG_NOTICE, "%s of %s: done after %.1f s (late): %s", j->operation, devs,
                        took, res.r < 0 ? (detail_or_strerror(why, res.r)) : "succeeded");
        else
                log_msg(LOG_DEBUG, "%s of %s: done in %.3f s (%d)", j->operation, devs, took,
                        (int)res.r);

        job_unlink(s, j);
        if (j->late)
                job_broadcast(s, "operation-done", j);
        if (j->done)
                j->done(s, j, res.r, why);
        cdi_export_changed(s); /* its devices are free again */
        job_unpark(j);
        job_free(j);
        if (s->stopping && !s->jobs)
                sd_event_exit(s->event, 0);
        return 0;
}

static int on_job_deadline(sd_event_source *src, uint64_t usec, void *userdata)
{
        struct job *j = userdata;
        struct server *s = j->server;
        char buf[256], what[160];
        j->late = true;
        const char *devs = job_devices_text(j, buf, sizeof(buf));
        log_msg(LOG_WARNING,
                "%s of %s: not done after %" PRIu64 " s: still waiting for the kernel (worker pid "
                "%d); the devices stay busy until it returns",
                j->operation, devs, j->deadline_usec / 1000000u, (int)j->pid);
        job_broadcast(s, "operation-late", j);
        if (j->conn) {
                char since[32];
                format_time(j->started_realtime_usec, since, sizeof(since));
                char addr[PCI_ADDR_STRLEN];
                const char *first = j->n_devices ? pci_addr_format(&j->devices[0], addr) : NULL;
                job_describe(j, what, sizeof(what));
                (void)conn_errorf(j->conn, "io.vfiod.OperationPending", "operation", j->operation,
                                  "address", first, "since", since, "reason", what, NULL);
                job_unpark(j);
        }
        return 0;
}

int job_start(struct server *s, const struct job_spec *spec, struct job **ret)
{
        struct job *j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->pidfd = j->result_fd = -1;
        j->server = s;
        j->operation = spec->operation;
        j->all_devices = spec->all_devices;
        j->started_usec = clock_usec(CLOCK_MONOTONIC);
        j->started_realtime_usec = clock_usec(CLOCK_REALTIME);
        if (spec->n_devices) {
                j->devices = calloc(spec->n_devices, sizeof(*j->devices));
                if (!j->devices) {
                        free(j);
                        return -ENOMEM;
                }
                memcpy(j->devices, spec->devices, spec->n_devices * sizeof(*j->devices));
                j->n_devices = spec->n_devices;
        }

        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0) {
                int r = -errno;
                job_free(j);
                return r;
        }
        pid_t pid = fork();
        if (pid < 0) {
                int r = -errno;
                safe_close(p[0]);
                safe_close(p[1]);
                job_free(j);
                return r;
        }
        if (pid == 0)
                job_worker(s, spec, p[1]);
        safe_close(p[1]);
        j->result_fd = p[0];
        j->pid = pid;
        j->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        int r = j->pidfd < 0 ? -errno : 0;
        if (r >= 0)
                r = sd_event_add_io(s->event, &j->exit_source, j->pidfd, EPOLLIN, on_job_exit, j);
        uint64_t deadline =
                spec->deadline_usec ? spec->deadline_usec : s->cfg.operation_timeout_usec;
        j->deadline_usec = deadline;
        if (r >= 0 && deadline > 0)
                r = sd_event_add_time_relative(s->event, &j->deadline, CLOCK_MONOTONIC, deadline, 0,
                                               on_job_deadline, j);
        if (r < 0) {
                /* Cannot be followed: stopped before it changes anything it could not
                 * finish (the journal covers a kill at any step). */
                (void)kill(pid, SIGKILL);
                (void)waitpid(pid, NULL, 0);
                job_free(j);
                return r;
        }
        /* The data belongs to the job from here on. */
        j->done = spec->done;
        j->data = spec->data;
        j->free_data = spec->free_data;
        j->id = ++s->next_job_id;
        j->next = s->jobs;
        if (s->jobs)
                s->jobs->prev = j;
        s->jobs = j;
        s->n_jobs++;
        if (spec->conn) {
                j->conn = spec->conn;
                spec->conn->job = j;
        }
        char devs[256];
        log_msg(LOG_DEBUG, "%s of %s: worker pid %d", j->operation,
                job_devices_text(j, devs, sizeof(devs)), (int)pid);
        if (ret)
                *ret = j;
        return 0;
}

static int on_stop_timeout(sd_event_source *src, uint64_t usec, void *userdata)
{
        struct server *s = userdata;
        for (struct job *j = s->jobs; j; j = j->next) {
                char devs[256];
                log_msg(LOG_WARNING,
                        "stopping with %s of %s still running (worker pid %d): it finishes on "
                        "its own, or the next start finishes it from the journal",
                        j->operation, job_devices_text(j, devs, sizeof(devs)), (int)j->pid);
        }
        return sd_event_exit(s->event, 0);
}

void jobs_stop(struct server *s, uint64_t timeout_usec)
{
        if (s->stopping)
                return;
        s->stopping = true;
        if (!s->jobs) {
                sd_event_exit(s->event, 0);
                return;
        }
        log_msg(LOG_INFO, "waiting up to %" PRIu64 " ms for %u operation(s) to finish",
                timeout_usec / 1000u, s->n_jobs);
        if (sd_event_add_time_relative(s->event, &s->stop_timer, CLOCK_MONOTONIC, timeout_usec, 0,
                                       on_stop_timeout, s) < 0)
                sd_event_exit(s->event, 0);
}

void jobs_free(struct server *s)
{
        while (s->jobs) {
                struct job *j = s->jobs;
                job_forget_conn(j);
                job_unlink(s, j);
                job_free(j);
        }
}
