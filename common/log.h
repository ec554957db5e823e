/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Logging with structured fields. Modules other than daemon/ log only at
 * debug level (docs/CODING_STYLE.md); daemon/ installs a sink that writes
 * to journald when it is there. The default sink writes to stderr. */

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>

#include "common/macros.h"

struct log_fields {
        const char *workload_id; /* WORKLOAD_ID= journal field, or NULL */
        const char *domain;      /* DOMAIN= journal field, or NULL */
};

/* A sink receives the formatted message (with %m already expanded). */
typedef void log_sink_fn(int level, const struct log_fields *f, const char *msg);

void log_set_sink(log_sink_fn *sink);
void log_set_max_level(int level);
int log_get_max_level(void);
int log_level_from_string(const char *s);

/* Formats and emits a message when @level is enabled. @error (a -errno or
 * 0) is what %m prints. Returns @error, so callers can log-and-return. */
int log_internal(int level, int error, const struct log_fields *f, const char *fmt, ...)
        _printf_(4, 5);

#define log_full_errno(level, error, ...) log_internal(level, error, NULL, __VA_ARGS__)
#define log_debug(...)                    log_internal(LOG_DEBUG, 0, NULL, __VA_ARGS__)
#define log_info(...)                     log_internal(LOG_INFO, 0, NULL, __VA_ARGS__)
#define log_notice(...)                   log_internal(LOG_NOTICE, 0, NULL, __VA_ARGS__)
#define log_warning(...)                  log_internal(LOG_WARNING, 0, NULL, __VA_ARGS__)
#define log_error(...)                    log_internal(LOG_ERR, 0, NULL, __VA_ARGS__)
#define log_debug_errno(e, ...)           log_internal(LOG_DEBUG, e, NULL, __VA_ARGS__)
#define log_info_errno(e, ...)            log_internal(LOG_INFO, e, NULL, __VA_ARGS__)
#define log_warning_errno(e, ...)         log_internal(LOG_WARNING, e, NULL, __VA_ARGS__)
#define log_error_errno(e, ...)           log_internal(LOG_ERR, e, NULL, __VA_ARGS__)
/* With workload fields. */
#define log_wl(level, wlid, dom, ...)                                                              \
        log_internal(level, 0, &(struct log_fields){.workload_id = (wlid), .domain = (dom)},       \
                     __VA_ARGS__)

/* Rate limiting of repeated identical messages at one call site (what a
 * client, a backend or the bus can make us log over and over: undecodable
 * requests, drift repairs). The first message is logged; the same text
 * again within LOG_RATELIMIT_SEC is only counted; after the window, or
 * when another text comes from the same site, or at
 * log_ratelimit_flush(), the count is logged as "<text> (repeated N times)".
 * Not thread-safe: daemon/ uses it on its loop thread only. */
#define LOG_RATELIMIT_SEC  60
#define LOG_RATELIMIT_TEXT 240

struct log_ratelimit {
        struct log_ratelimit *next;    /* in the list of sites with a pending count */
        bool listed;                   /* on that list */
        int level;                     /* of the suppressed messages */
        uint64_t until_ns;             /* CLOCK_MONOTONIC end of the window */
        unsigned suppressed;           /* identical messages not logged since the last line */
        char last[LOG_RATELIMIT_TEXT]; /* the text logged last (truncated) */
};

int log_ratelimit_internal(struct log_ratelimit *rl, int level, int error,
                           const struct log_fields *f, const char *fmt, ...) _printf_(5, 6);
/* Log the pending counts of every site whose window ended (or of all of
 * them with @all, e.g. at exit). Returns how many lines were logged. */
unsigned log_ratelimit_flush(bool all);

#define log_ratelimit_warning_errno(e, ...)                                                        \
        ({                                                                                         \
                static struct log_ratelimit _rl_;                                                  \
                log_ratelimit_internal(&_rl_, LOG_WARNING, e, NULL, __VA_ARGS__);                  \
        })
#define log_ratelimit_warning(...) log_ratelimit_warning_errno(0, __VA_ARGS__)
