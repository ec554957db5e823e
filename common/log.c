/* SPDX-License-Identifier: Apache-2.0 */
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int max_level = LOG_INFO;

static void sink_stderr(int level, const struct log_fields *f, const char *msg)
{
        static const char *const names[] = {"emerg", "alert", "crit", "error",
                                            "warn",  "note",  "info", "debug"};
        struct timespec ts;
        struct tm tm;
        char when[32];

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(when, sizeof(when), "%H:%M:%S", &tm);
        if (f && (f->workload_id || f->domain))
                fprintf(stderr, "%s.%03ld %s: %s [workload=%s domain=%s]\n", when,
                        ts.tv_nsec / 1000000, names[level & 7], msg, strempty(f->workload_id),
                        strempty(f->domain));
        else
                fprintf(stderr, "%s.%03ld %s: %s\n", when, ts.tv_nsec / 1000000, names[level & 7],
                        msg);
}

static log_sink_fn *sink = sink_stderr;

void log_set_sink(log_sink_fn *s)
{
        sink = s ? s : sink_stderr;
}

void log_set_max_level(int level)
{
        max_level = level;
}

int log_get_max_level(void)
{
        return max_level;
}

int log_level_from_string(const char *s)
{
        static const char *const names[] = {"emerg",   "alert",  "crit", "err",
                                            "warning", "notice", "info", "debug"};
        for (int i = 0; i < 8; i++)
                if (streq(s, names[i]))
                        return i;
        if (streq(s, "error"))
                return LOG_ERR;
        if (streq(s, "warn"))
                return LOG_WARNING;
        return -EINVAL;
}

/* Format into @msg (%m prints @error) with control characters blanked. */
_printf_(4, 0) static void format_msg(char *msg, size_t size, int error, const char *fmt,
                                      va_list ap)
{
        /* %m in glibc prints strerror(errno): make it print the passed error. */
        errno = error < 0 ? -error : error;
        vsnprintf(msg, size, fmt, ap);
        /* Never let control characters from remote input into the log line. */
        for (char *p = msg; *p; p++)
                if ((unsigned char)*p < 0x20 && *p != '\t')
                        *p = ' ';
}

int log_internal(int level, int error, const struct log_fields *f, const char *fmt, ...)
{
        char msg[2048];
        va_list ap;
        int saved = errno;

        if (level > max_level)
                return error;
        va_start(ap, fmt);
        format_msg(msg, sizeof(msg), error, fmt, ap);
        va_end(ap);
        sink(level, f, msg);
        errno = saved;
        return error;
}

/* ======================================================================
 * Rate-limited messages
 * ====================================================================== */

static struct log_ratelimit *pending; /* sites with suppressed > 0 */

static uint64_t now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void emit_repeated(struct log_ratelimit *rl)
{
        char msg[LOG_RATELIMIT_TEXT + 48];

        if (!rl->suppressed)
                return;
        snprintf(msg, sizeof(msg), "%s (repeated %u times)", rl->last, rl->suppressed);
        rl->suppressed = 0;
        if (rl->level <= max_level)
                sink(rl->level, NULL, msg);
}

static void unlist(struct log_ratelimit *rl)
{
        for (struct log_ratelimit **p = &pending; *p; p = &(*p)->next)
                if (*p == rl) {
                        *p = rl->next;
                        break;
                }
        rl->next = NULL;
        rl->listed = false;
}

int log_ratelimit_internal(struct log_ratelimit *rl, int level, int error,
                           const struct log_fields *f, const char *fmt, ...)
{
        char msg[2048];
        uint64_t now;
        va_list ap;
        int saved = errno;

        if (level > max_level)
                return error;
        va_start(ap, fmt);
        format_msg(msg, sizeof(msg), error, fmt, ap);
        va_end(ap);
        errno = saved;

        now = now_ns();
        if (rl->until_ns && now < rl->until_ns &&
            strncmp(msg, rl->last, sizeof(rl->last) - 1) == 0) {
                rl->suppressed++;
                rl->level = level;
                if (!rl->listed) {
                        rl->next = pending;
                        pending = rl;
                        rl->listed = true;
                }
                return error;
        }
        /* Another text, or the window is over: the count first, then this. */
        emit_repeated(rl);
        if (rl->listed)
                unlist(rl);
        sink(level, f, msg);
        /* Truncated on purpose: only the start is compared and repeated. */
        strncpy(rl->last, msg, sizeof(rl->last) - 1);
        rl->last[sizeof(rl->last) - 1] = 0;
        rl->level = level;
        rl->until_ns = now + (uint64_t)LOG_RATELIMIT_SEC * 1000000000u;
        return error;
}

unsigned log_ratelimit_flush(bool all)
{
        uint64_t now = now_ns();
        unsigned n = 0;

        for (struct log_ratelimit **p = &pending; *p;) {
                struct log_ratelimit *rl = *p;

                if (!all && now < rl->until_ns) {
                        p = &rl->next;
                        continue;
                }
                *p = rl->next;
                rl->next = NULL;
                rl->listed = false;
                emit_repeated(rl);
                /* A new window starts with the next message. */
                rl->until_ns = 0;
                n++;
        }
        return n;
}
