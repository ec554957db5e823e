/* SPDX-License-Identifier: Apache-2.0 */
#include "proto/bus-sync.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "common/macros.h"
#include "common/strbuf.h"
#include "proto/bus-url.h"

/* Connect and per-command socket timeouts. A BLPOP blocks for one second
 * on the server, so a command that takes longer than this means the
 * broker is gone, not that the callee is slow. */
#define CONNECT_TIMEOUT_MS 5000
#define COMMAND_TIMEOUT_MS 5000

struct proto_sync_client {
        redisContext *ctx;
};

static inline void freereplyp(redisReply **r)
{
        if (*r)
                freeReplyObject(*r);
}
#define _cleanup_reply_ _cleanup_(freereplyp)

static int set_err(char **reterr, const char *fmt, ...) _printf_(2, 3);
static int set_err(char **reterr, const char *fmt, ...)
{
        va_list ap;

        if (!reterr)
                return 0;
        free(*reterr);
        va_start(ap, fmt);
        if (vasprintf(reterr, fmt, ap) < 0)
                *reterr = NULL;
        va_end(ap);
        return 0;
}

static struct timeval ms_to_tv(unsigned ms)
{
        return (struct timeval){.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
}

/* hiredis reports I/O errors in ctx->errstr and leaves the context
 * unusable; map its error classes onto -errno once, here. */
static int ctx_errno(const redisContext *ctx)
{
        switch (ctx->err) {
        case REDIS_ERR_IO:
                return errno > 0 ? -errno : -EIO;
        case REDIS_ERR_EOF:
                return -ECONNRESET;
        case REDIS_ERR_PROTOCOL:
                return -EPROTO;
        case REDIS_ERR_OOM:
                return -ENOMEM;
        default:
                return -EIO;
        }
}

/* Run a command whose reply must not be an error. On failure *reterr is
 * "<what>: <reason>". */
static int command_checked(redisContext *ctx, redisReply **ret, char **reterr, const char *what,
                           const char *fmt, ...)
{
        redisReply *reply;
        va_list ap;

        va_start(ap, fmt);
        reply = redisvCommand(ctx, fmt, ap);
        va_end(ap);
        if (!reply) {
                int r = ctx_errno(ctx);

                set_err(reterr, "%s: %s", what, ctx->errstr[0] ? ctx->errstr : strerror(-r));
                return r;
        }
        if (reply->type == REDIS_REPLY_ERROR) {
                set_err(reterr, "%s: %s", what, reply->str);
                freeReplyObject(reply);
                return -EIO;
        }
        *ret = reply;
        return 0;
}

struct proto_sync_client *proto_sync_client_free(struct proto_sync_client *c)
{
        if (!c)
                return NULL;
        if (c->ctx)
                redisFree(c->ctx);
        free(c);
        return NULL;
}

static inline void proto_sync_client_freep(struct proto_sync_client **c)
{
        proto_sync_client_free(*c);
}

static inline void proto_broker_donep(struct proto_broker *b)
{
        proto_broker_done(b);
}

/* -EINVAL is reserved for a malformed URL (callers report it as a usage
 * error); a failure to connect to a well-formed address is never that. */
static int conn_errno(const redisContext *ctx)
{
        int r = ctx_errno(ctx);

        return r == -EINVAL ? -EIO : r;
}

int proto_sync_client_new(const char *broker_url, struct proto_sync_client **ret, char **reterr)
{
        _cleanup_(proto_sync_client_freep) struct proto_sync_client *c = NULL;
        _cleanup_(proto_broker_donep) struct proto_broker b = {};
        _cleanup_reply_ redisReply *reply = NULL;
        _cleanup_free_ char *perr = NULL;
        int r;

        assert(broker_url && ret);

        r = proto_broker_parse(broker_url, &b, &perr);
        if (r < 0) {
                if (r == -ENOMEM)
                        return r;
                /* zbus returns the URL error as is, without the connection prefix. */
                set_err(reterr, "%s", perr ? perr : "invalid broker URL");
                return -EINVAL;
        }

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        if (b.is_unix)
                c->ctx = redisConnectUnixWithTimeout(b.path, ms_to_tv(CONNECT_TIMEOUT_MS));
        else
                c->ctx = redisConnectWithTimeout(b.host, b.port, ms_to_tv(CONNECT_TIMEOUT_MS));
        if (!c->ctx)
                return -ENOMEM;
        if (c->ctx->err) {
                bool v6 = !b.is_unix && strchr(b.host, ':');

                /* Worded like Go's net.Dial errors, which zbus passes on. */
                if (b.is_unix)
                        set_err(reterr, "could not establish connection: dial unix %s: %s", b.path,
                                c->ctx->errstr);
                else
                        set_err(reterr, "could not establish connection: dial tcp %s%s%s:%d: %s",
                                v6 ? "[" : "", b.host, v6 ? "]" : "", b.port, c->ctx->errstr);
                return conn_errno(c->ctx);
        }
        /* Without this a broker that accepts but never answers would hang us. */
        if (redisSetTimeout(c->ctx, ms_to_tv(COMMAND_TIMEOUT_MS)) != REDIS_OK) {
                set_err(reterr, "could not establish connection: %s", c->ctx->errstr);
                return conn_errno(c->ctx);
        }

        /* zbus sends the URL's user name as the password (§1.1). */
        if (b.password) {
                r = command_checked(c->ctx, &reply, reterr, "could not establish connection",
                                    "AUTH %s", b.password);
                if (r < 0)
                        return r == -EINVAL ? -EIO : r;
                freeReplyObject(TAKE_PTR(reply));
        }

        /* The Go server PINGs at start with the same error text; doing it
         * here turns "wrong socket" into a clear message before any RPUSH. */
        r = command_checked(c->ctx, &reply, reterr, "could not establish connection", "PING");
        if (r < 0)
                return r == -EINVAL ? -EIO : r;

        *ret = TAKE_PTR(c);
        return 0;
}

static int64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int proto_sync_call(struct proto_sync_client *c, const char *module, const char *object,
                    const char *version, const char *method, const struct proto_str *inputs,
                    size_t n_inputs, unsigned timeout_ms, struct proto_response *ret, char **reterr)
{
        _cleanup_strbuf_ struct strbuf payload = STRBUF_INIT;
        _cleanup_free_ char *queue = NULL;
        char id[37];
        int64_t deadline;
        int r;

        assert(c && c->ctx && module && object && version && method && ret);
        assert(inputs || n_inputs == 0);

        if (c->ctx->err) {
                set_err(reterr, "connection to the broker is broken: %s", c->ctx->errstr);
                return -ENOTCONN;
        }

        /* ObjectID.String() omits "@" when the version is empty (§1.2). */
        if (asprintf(&queue, "%s.%s%s%s", module, object, version[0] ? "@" : "", version) < 0)
                return -ENOMEM;

        r = proto_uuid4(id);
        if (r < 0)
                return r;
        /* The Go client uses one fresh uuid as both the request ID and the
         * reply list (§1.2). */
        r = proto_request_encode(&payload, id, object, version, id, method, inputs, n_inputs);
        if (r < 0)
                return r;

        {
                _cleanup_reply_ redisReply *reply = NULL;

                r = command_checked(c->ctx, &reply, reterr, "could not send request", "RPUSH %s %b",
                                    queue, payload.data, payload.len);
                if (r < 0)
                        return r;
        }

        deadline = now_ms() + timeout_ms;
        for (;;) {
                _cleanup_reply_ redisReply *reply = NULL;
                redisReply *v;

                /* BLPOP <id> 1, as the Go client polls; the deadline is
                 * checked between polls, so it is honoured to within ~1 s. */
                r = command_checked(c->ctx, &reply, reterr, "could not receive reply", "BLPOP %s 1",
                                    id);
                if (r < 0)
                        return r;
                if (reply->type == REDIS_REPLY_NIL) {
                        if (now_ms() < deadline)
                                continue;
                        break;
                }
                if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
                    reply->element[1]->type != REDIS_REPLY_STRING) {
                        set_err(reterr, "could not receive reply: unexpected BLPOP reply type %d",
                                reply->type);
                        return -EPROTO;
                }
                v = reply->element[1];
                r = proto_response_decode(v->str, v->len, ret);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        set_err(reterr, "invalid reply to %s() from %s (%zu bytes): %s", method,
                                queue, (size_t)v->len,
                                r == -EBADMSG ? "malformed msgpack" : "not a zbus response");
                        return r;
                }
                return 0;
        }

        /* Timed out. Withdraw the request if nobody has taken it yet, so a
         * call the caller has given up on cannot run later, when the
         * daemon comes back. The Go client leaves it queued. */
        {
                _cleanup_reply_ redisReply *reply = NULL;
                bool withdrawn = false;

                if (command_checked(c->ctx, &reply, NULL, "", "LREM %s 1 %b", queue, payload.data,
                                    payload.len) >= 0)
                        withdrawn = reply->type == REDIS_REPLY_INTEGER && reply->integer > 0;
                if (withdrawn)
                        set_err(reterr, "the request was withdrawn from %s", queue);
                else
                        set_err(reterr, "a server took the request from %s; it may still complete",
                                queue);
        }
        return -ETIMEDOUT;
}
