/* SPDX-License-Identifier: Apache-2.0 */
#include "proto/bus-url.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/macros.h"

_printf_(2, 3) static int fail(char **reterr, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        if (reterr && vasprintf(reterr, fmt, ap) < 0)
                *reterr = NULL;
        va_end(ap);
        return -EINVAL;
}

void proto_broker_done(struct proto_broker *b)
{
        b->path = mfree(b->path);
        b->host = mfree(b->host);
        b->password = mfree(b->password);
}

int proto_broker_parse(const char *url, struct proto_broker *ret, char **reterr)
{
        _cleanup_free_ char *scheme = NULL, *rest = NULL;
        struct proto_broker b = {};
        const char *sep, *at, *hostport, *colon;
        char *end;
        long port;

        sep = strstr(url, "://");
        if (!sep)
                return fail(reterr, "invalid broker URL '%s': expected <scheme>://...", url);
        scheme = strndup(url, (size_t)(sep - url));
        rest = strdup(sep + 3);
        if (!scheme || !rest)
                return -ENOMEM;
        if (streq(scheme, "unix")) {
                if (rest[0] != '/')
                        return fail(reterr, "invalid broker URL '%s': expected unix:///path", url);
                b.is_unix = true;
                b.path = strdup(rest);
                if (!b.path)
                        return -ENOMEM;
                *ret = b;
                return 0;
        }
        if (!streq(scheme, "tcp"))
                return fail(reterr, "unknown scheme '%s' expecting tcp or unix", scheme);

        /* Strip a path, then userinfo. */
        end = strchr(rest, '/');
        if (end)
                *end = 0;
        at = strrchr(rest, '@');
        hostport = rest;
        if (at) {
                const char *c = memchr(rest, ':', (size_t)(at - rest));
                size_t ulen = c ? (size_t)(c - rest) : (size_t)(at - rest);

                b.password = strndup(rest, ulen);
                if (!b.password)
                        return -ENOMEM;
                hostport = at + 1;
        }
        if (hostport[0] == '[') {
                const char *close = strchr(hostport, ']');

                if (!close) {
                        proto_broker_done(&b);
                        return fail(reterr, "invalid broker URL '%s': missing ']'", url);
                }
                b.host = strndup(hostport + 1, (size_t)(close - hostport - 1));
                colon = close[1] == ':' ? close + 1 : NULL;
        } else {
                colon = strrchr(hostport, ':');
                b.host = colon ? strndup(hostport, (size_t)(colon - hostport)) : strdup(hostport);
        }
        if (!b.host) {
                proto_broker_done(&b);
                return -ENOMEM;
        }
        if (!colon || !colon[1]) {
                proto_broker_done(&b);
                return fail(reterr, "invalid broker URL '%s': missing port", url);
        }
        errno = 0;
        port = strtol(colon + 1, &end, 10);
        if (errno || *end || port <= 0 || port > 65535 || !*b.host) {
                proto_broker_done(&b);
                return fail(reterr, "invalid broker URL '%s': bad host or port", url);
        }
        b.port = (int)port;
        *ret = b;
        return 0;
}

int proto_uuid4(char *ret)
{
        uint8_t u[16];
        ssize_t n;

        do
                n = getrandom(u, sizeof(u), 0);
        while (n < 0 && errno == EINTR);
        if (n != (ssize_t)sizeof(u))
                return -EIO;
        u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
        u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
        snprintf(ret, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
                 u[13], u[14], u[15]);
        return 0;
}
