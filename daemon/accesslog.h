/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The access log's writer (issue 11): one ring per proxy worker (the
 * engine's side is proxy/access-log.h) and one thread that drains them to
 * the target: a file, stderr or the journal. See docs/internals/daemon.md,
 * "Access log".
 *
 * The writer wakes every GW_ACCESSLOG_TICK_MS, or at once when a worker's
 * ring passes half full (an eventfd), and writes each ring's queued lines
 * in one write (a file) or in whole-line chunks of at most PIPE_BUF (a
 * pipe, socket or terminal: stderr, a FIFO), each line once (the journal).
 * It never makes a worker wait: a full ring drops the line and counts it.
 * A target that fails keeps its lines queued and is retried every
 * GW_ACCESSLOG_RETRY_MS; a target that blocks (a FIFO nobody reads) is
 * polled, never written to blindly.
 *
 * Threading: everything here is called from the daemon's loop thread,
 * except gw_accesslog_stats() (any thread). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gw_daemon;
struct proxy_access_sink;
struct strbuf;

#define GW_ACCESSLOG_RING_SIZE       (1u << 20) /* bytes per worker: ~3000 lines */
#define GW_ACCESSLOG_TICK_MS         100u       /* longest wait for a line to be written */
#define GW_ACCESSLOG_RETRY_MS        1000u      /* after a write error */
#define GW_ACCESSLOG_STOP_TIMEOUT_MS 2000u      /* gw_accesslog_free() drains this long at most */

struct gw_accesslog;

struct gw_accesslog_stats {
        uint64_t written;      /* lines written to a target */
        uint64_t dropped;      /* lines lost: a worker's ring was full, or still queued when
                                * the stop timeout passed */
        uint64_t write_errors; /* failed writes (each is retried; the lines stay queued) */
};

/* Allocate the rings (@n_workers of @ring_size bytes, a power of two; pages
 * are resident only once written) and start the writer thread. The log is
 * off until gw_accesslog_set_target(). Returns 0, -EINVAL or another
 * -errno (eventfd, thread). */
int gw_accesslog_new(unsigned n_workers, size_t ring_size, struct gw_accesslog **ret);

/* Drain what is queued (for at most GW_ACCESSLOG_STOP_TIMEOUT_MS; the rest
 * counts as dropped), stop the thread, close the target, free. The engine
 * must be gone: nothing may push any more. Accepts NULL; returns NULL. */
struct gw_accesslog *gw_accesslog_free(struct gw_accesslog *al);

/* What the engine pushes into (proxy_config.access_log); owned by @al. */
struct proxy_access_sink *gw_accesslog_sink(struct gw_accesslog *al);

/* Switch to @target: NULL or "" (off), "stderr", "journal" or an absolute
 * path (opened O_APPEND, created 0640, here and synchronously, so that an
 * error is known at once), and whether the query string is logged. Lines
 * queued before the call are written to the old target first (one
 * attempt; what it does not take goes to the new one), later lines to the
 * new one; nothing queued is lost. The same target again reopens it
 * (logrotate). On failure the current target stays (a reopen keeps the old
 * descriptor) and the error is returned: -EINVAL (not a path, stderr or
 * journal), -EISDIR, -ENXIO (a FIFO without a reader), or open()'s -errno;
 * *reterr then says what failed (free()). */
int gw_accesslog_set_target(struct gw_accesslog *al, const char *target, bool keep_query,
                            char **reterr);

/* Wait until every line queued before the call is written (or @timeout_ms
 * passed: -ETIMEDOUT). For tests and the stop. */
int gw_accesslog_flush(struct gw_accesslog *al, unsigned timeout_ms);

void gw_accesslog_stats(const struct gw_accesslog *al, struct gw_accesslog_stats *ret);

/* ---- the daemon's glue (d->alog) ---- */

/* At start: rings for [proxy] workers (0: uv_available_parallelism(), as the
 * engine resolves it), then the configured target. A target that cannot be
 * opened is logged, not fatal (retried at the next SIGHUP/SIGUSR1).
 * Returns 0 or -errno (logged). */
int gw_accesslog_start(struct gw_daemon *d);

/* After a reload: apply a change of [log] access / access_query. */
void gw_accesslog_apply(struct gw_daemon *d);

/* SIGUSR1 and SIGHUP: reopen the file (logrotate moved it). */
void gw_accesslog_reopen(struct gw_daemon *d);

/* At exit, after the proxy is freed: drain and free d->alog. */
void gw_accesslog_stop(struct gw_daemon *d);

/* Prometheus text: lines written, dropped, write errors. */
int gw_accesslog_render_metrics(struct gw_daemon *d, struct strbuf *out);
