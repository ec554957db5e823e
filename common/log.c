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

int log_internal(int level, int error, const struct log_fields *f, const char *fmt, ...)
{
        char msg[2048];
        va_list ap;
        int saved = errno;

        if (level > max_level)
                return error;
        /* %m in glibc prints strerror(errno): make it print the passed error. */
        errno = error < 0 ? -error : error;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        /* Never let control characters from remote input into the log line. */
        for (char *p = msg; *p; p++)
                if ((unsigned char)*p < 0x20 && *p != '\t')
                        *p = ' ';
        sink(level, f, msg);
        errno = saved;
        return error;
}
