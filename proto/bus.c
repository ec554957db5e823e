/* SPDX-License-Identifier: Apache-2.0 */
#include "proto/bus.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "common/list.h"
#include "common/log.h"
#include "common/macros.h"
#include "proto/bus-url.h"
#include "proto/bus-uv.h"

#define BACKOFF_MIN_MS    100
#define BACKOFF_MAX_MS    5000
#define POP_TIMEOUT_SEC   10   /* zbus server: BLPOP ... 10 */
#define WAIT_TIMEOUT_SEC  1    /* zbus client: BLPOP <id> 1 */
#define REPLY_TTL_SEC     300  /* zbus redisResponseTTL */
#define MAX_PENDING_CALLS 32   /* outgoing calls in flight */
#define STOP_FLUSH_MS     2000 /* how long stop waits to flush replies */
#define RECOVER_MAX       4096 /* inflight requests re-handled at start */

enum conn_role {
        CONN_CMD,    /* non-blocking commands: replies, RPUSH of outgoing calls, LRANGE */
        CONN_POP,    /* BLMOVE/BLPOP on the object queue */
        CONN_STATUS, /* BLPOP on the status queue */
        CONN_WAIT,   /* BLPOP <uuid> for one outgoing call */
};

struct bus_conn {
        struct proto_bus *bus;
        enum conn_role role;
        redisAsyncContext *ac; /* NULL while down */
        bool connected;        /* connect callback said OK */
        bool blocked;          /* a blocking command is outstanding */
        bool timer_open;
        uv_timer_t retry;
        unsigned backoff_ms;
        struct proto_bus_pending *pending; /* CONN_WAIT only */
};

struct reply_item {
        struct reply_item *next;
        char *key; /* ReplyTo */
        size_t key_len;
        char *payload; /* encoded response */
        size_t payload_len;
        char *inflight; /* request payload to LREM, or NULL */
        size_t inflight_len;
        bool sent; /* commands issued, confirmation outstanding */
};

struct worker {
        bool busy;
        int64_t since_sec;
        uint32_t since_nsec;
        char action[256];
};

struct proto_bus_call {
        struct proto_bus *bus;
        struct proto_request req;
        char *payload; /* raw request, for LREM from the inflight list */
        size_t payload_len;
        bool in_inflight;
        bool recovered;
        unsigned worker;
};

struct backlog_item {
        struct backlog_item *next;
        char *payload;
        size_t len;
};

struct proto_bus_pending {
        struct proto_bus *bus;
        struct proto_bus_pending *prev, *next;
        char uuid[37];
        proto_bus_reply_cb *cb;
        void *userdata;
        uv_timer_t timer;
        struct bus_conn conn;
        int result; /* set when finishing */
        bool finished;
        bool pushed;       /* the request was RPUSHed */
        bool push_pending; /* the RPUSH's reply (hiredis privdata = @p) has not come */
        bool timer_closed; /* the timer is closed: free @p once push_pending clears */
        bool cancelled;    /* cancelled: the callback gets -ECANCELED whatever happens */
        struct proto_response resp;
        bool has_resp;
};

struct proto_bus {
        uv_loop_t *loop;
        struct proto_broker broker;
        char *module, *object_name, *object_version;
        char *queue;         /* <module>.<object>@<version> */
        char *inflight;      /* <queue>:inflight */
        char *status_queue;  /* <module>.zbus@1.0 */
        char object_id[128]; /* "<object>@<version>" */
        unsigned n_workers;
        unsigned busy;
        struct worker *workers;
        size_t max_payload;
        size_t max_pending_replies;
        bool serve;
        proto_bus_request_cb *on_request;
        proto_bus_state_cb *on_state;
        proto_bus_garbage_cb *on_garbage;
        void *userdata;

        struct bus_conn cmd, pop, status;
        bool use_blmove;
        bool recovery_done;
        bool recovery_started;
        bool was_connected;
        bool in_backlog; /* run_backlog() is on the stack */
        bool paused;     /* serving requests waits for proto_bus_resume() */
        struct backlog_item *backlog, **backlog_tail;

        struct reply_item *replies, **replies_tail;
        size_t n_replies;

        struct proto_bus_pending *pendings;
        unsigned n_pendings;

        bool stopping;
        unsigned open_handles;
        uv_timer_t stop_timer;
        void (*stop_cb)(struct proto_bus *bus, void *ud);
        void *stop_ud;
        bool stop_done;

        struct proto_bus_stats stats;
};

static void conn_connect(struct bus_conn *c);
static void conn_schedule_retry(struct bus_conn *c);
static void pop_next(struct proto_bus *bus);
static void status_next(struct proto_bus *bus);
static void flush_replies(struct proto_bus *bus);
static void maybe_stop_done(struct proto_bus *bus);
static void pending_finish(struct proto_bus_pending *p, int r);
static void wait_next(struct proto_bus_pending *p);

static void now_realtime(int64_t *sec, uint32_t *nsec)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        *sec = ts.tv_sec;
        *nsec = (uint32_t)ts.tv_nsec;
}

/* ======================================================================
 * Connections
 * ====================================================================== */

static void on_handle_closed(uv_handle_t *h)
{
        struct proto_bus *bus = h->data;

        assert(bus->open_handles > 0);
        bus->open_handles--;
        maybe_stop_done(bus);
}

static void pending_fail_async(struct proto_bus_pending *p, int r);
static void start_recovery(struct proto_bus *bus);

static void conn_init(struct proto_bus *bus, struct bus_conn *c, enum conn_role role)
{
        c->bus = bus;
        c->role = role;
        c->backoff_ms = BACKOFF_MIN_MS;
        uv_timer_init(bus->loop, &c->retry);
        c->retry.data = bus;
        c->timer_open = true;
        bus->open_handles++;
}

static void conn_close_timer(struct bus_conn *c)
{
        if (!c->timer_open)
                return;
        c->timer_open = false;
        uv_timer_stop(&c->retry);
        uv_close((uv_handle_t *)&c->retry, on_handle_closed);
}

/* Drop the hiredis context now (pending callbacks run with a NULL reply). */
static void conn_drop(struct bus_conn *c)
{
        redisAsyncContext *ac = c->ac;

        if (!ac)
                return;
        c->ac = NULL;
        c->connected = false;
        c->blocked = false;
        ac->data = NULL;
        /* on_disconnect will not run for it: replies handed to this
         * connection but not confirmed must be sent again. */
        if (c->role == CONN_CMD)
                for (struct reply_item *it = c->bus->replies; it; it = it->next)
                        it->sent = false;
        redisAsyncFree(ac);
}

static bool server_connected(const struct proto_bus *bus)
{
        if (!bus->cmd.connected)
                return false;
        if (!bus->serve)
                return true;
        return bus->pop.connected && bus->status.connected;
}

static void report_state(struct proto_bus *bus, const char *reason)
{
        bool now = server_connected(bus);

        if (now == bus->was_connected || bus->stopping)
                return;
        bus->was_connected = now;
        if (!now)
                bus->stats.reconnects++;
        if (bus->on_state)
                bus->on_state(bus, now, reason, bus->userdata);
}

static void on_connected(struct bus_conn *c)
{
        struct proto_bus *bus = c->bus;

        c->backoff_ms = BACKOFF_MIN_MS;
        switch (c->role) {
        case CONN_CMD:
                flush_replies(bus);
                start_recovery(bus);
                break;
        case CONN_POP:
                pop_next(bus);
                break;
        case CONN_STATUS:
                status_next(bus);
                break;
        case CONN_WAIT:
                wait_next(c->pending);
                break;
        }
        report_state(bus, NULL);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
        struct bus_conn *c = ac->data;

        if (!c)
                return;
        if (status != REDIS_OK) {
                /* hiredis frees the context after this callback. */
                c->ac = NULL;
                c->connected = false;
                c->blocked = false;
                if (c->role == CONN_WAIT) {
                        pending_finish(c->pending, -ECONNREFUSED);
                        return;
                }
                report_state(c->bus, ac->errstr);
                conn_schedule_retry(c);
                return;
        }
        c->connected = true;
        /* Half-open TCP connections would leave a BLPOP waiting forever. */
        if (!c->bus->broker.is_unix)
                (void)redisEnableKeepAlive((redisContext *)&ac->c);
        log_debug("bus: connection %d up", (int)c->role);
        on_connected(c);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
        struct bus_conn *c = ac->data;

        if (!c)
                return;
        c->ac = NULL;
        c->connected = false;
        c->blocked = false;
        log_debug("bus: connection %d closed", (int)c->role);
        if (c->role == CONN_WAIT) {
                pending_finish(c->pending, -ECONNRESET);
                return;
        }
        if (c->bus->stopping) {
                maybe_stop_done(c->bus);
                return;
        }
        report_state(c->bus, status == REDIS_OK ? "connection closed" : ac->errstr);
        if (c->role == CONN_CMD) {
                /* Replies issued but not confirmed are sent again. */
                for (struct reply_item *it = c->bus->replies; it; it = it->next)
                        it->sent = false;
        }
        conn_schedule_retry(c);
}

static void on_auth(redisAsyncContext *ac, void *r, void *privdata)
{
        redisReply *reply = r;
        struct bus_conn *c = ac->data;

        if (!c || !reply)
                return;
        if (reply->type == REDIS_REPLY_ERROR) {
                log_debug("bus: AUTH failed: %s", reply->str);
                report_state(c->bus, reply->str);
                conn_drop(c);
                if (c->role == CONN_WAIT)
                        pending_finish(c->pending, -EACCES);
                else
                        conn_schedule_retry(c);
        }
}

static void conn_connect(struct bus_conn *c)
{
        struct proto_bus *bus = c->bus;
        redisAsyncContext *ac;

        if (c->ac || bus->stopping)
                return;
        if (bus->broker.is_unix)
                ac = redisAsyncConnectUnix(bus->broker.path);
        else
                ac = redisAsyncConnect(bus->broker.host, bus->broker.port);
        if (!ac) {
                conn_schedule_retry(c);
                return;
        }
        if (ac->err) {
                log_debug("bus: connect failed: %s", ac->errstr);
                report_state(bus, ac->errstr);
                redisAsyncFree(ac);
                if (c->role == CONN_WAIT) {
                        pending_fail_async(c->pending, -ECONNREFUSED);
                        return;
                }
                conn_schedule_retry(c);
                return;
        }
        ac->data = c;
        if (proto_bus_uv_attach(ac, bus->loop) < 0) {
                redisAsyncFree(ac);
                if (c->role == CONN_WAIT) {
                        pending_fail_async(c->pending, -ENOMEM);
                        return;
                }
                conn_schedule_retry(c);
                return;
        }
        redisAsyncSetConnectCallback(ac, on_connect);
        redisAsyncSetDisconnectCallback(ac, on_disconnect);
        c->ac = ac;
        if (bus->broker.password)
                redisAsyncCommand(ac, on_auth, NULL, "AUTH %s", bus->broker.password);
}

static void on_retry(uv_timer_t *t)
{
        struct bus_conn *c = container_of(t, struct bus_conn, retry);

        conn_connect(c);
}

static void conn_schedule_retry(struct bus_conn *c)
{
        if (c->bus->stopping || !c->timer_open)
                return;
        uv_timer_start(&c->retry, on_retry, c->backoff_ms, 0);
        c->backoff_ms = MIN(c->backoff_ms * 2, BACKOFF_MAX_MS);
}

/* ======================================================================
 * Replies
 * ====================================================================== */

static void reply_item_free(struct reply_item *it)
{
        free(it->key);
        free(it->payload);
        free(it->inflight);
        free(it);
}

static void on_reply_confirmed(redisAsyncContext *ac, void *r, void *privdata)
{
        struct proto_bus *bus;
        struct reply_item *it = privdata, **pp;

        if (!r || !ac->data)
                return; /* disconnected: on_disconnect marks it unsent */
        bus = ((struct bus_conn *)ac->data)->bus;
        for (pp = &bus->replies; *pp; pp = &(*pp)->next)
                if (*pp == it) {
                        *pp = it->next;
                        if (!*pp)
                                bus->replies_tail = pp;
                        bus->n_replies--;
                        reply_item_free(it);
                        break;
                }
        maybe_stop_done(bus);
}

static void flush_replies(struct proto_bus *bus)
{
        redisAsyncContext *ac = bus->cmd.ac;

        if (!bus->cmd.connected || !ac)
                return;
        for (struct reply_item *it = bus->replies; it; it = it->next) {
                if (it->sent)
                        continue;
                it->sent = true;
                /* Pipelined like zbus: RPUSH then EXPIRE; then drop the
                 * request from the inflight list. Confirmation on the last. */
                redisAsyncCommand(ac, NULL, NULL, "RPUSH %b %b", it->key, it->key_len, it->payload,
                                  it->payload_len);
                if (it->inflight) {
                        redisAsyncCommand(ac, NULL, NULL, "EXPIRE %b %d", it->key, it->key_len,
                                          REPLY_TTL_SEC);
                        redisAsyncCommand(ac, on_reply_confirmed, it, "LREM %s 1 %b", bus->inflight,
                                          it->inflight, it->inflight_len);
                } else {
                        redisAsyncCommand(ac, on_reply_confirmed, it, "EXPIRE %b %d", it->key,
                                          it->key_len, REPLY_TTL_SEC);
                }
        }
}

static int queue_reply(struct proto_bus *bus, const struct proto_str *reply_to, struct strbuf *resp,
                       const char *inflight, size_t inflight_len)
{
        struct reply_item *it;

        if (bus->n_replies >= bus->max_pending_replies) {
                /* Bounded: drop the oldest reply not yet handed to Redis. Its
                 * request stays in the inflight list and is handled again
                 * after the next start. */
                struct reply_item **pp;

                for (pp = &bus->replies; *pp && (*pp)->sent; pp = &(*pp)->next)
                        ;
                if (*pp) {
                        struct reply_item *old = *pp;

                        *pp = old->next;
                        if (!*pp)
                                bus->replies_tail = pp;
                        bus->n_replies--;
                        bus->stats.replies_dropped++;
                        reply_item_free(old);
                }
        }
        it = calloc(1, sizeof(*it));
        if (!it)
                return -ENOMEM;
        it->key = malloc(reply_to->n + 1);
        if (!it->key) {
                free(it);
                return -ENOMEM;
        }
        memcpy(it->key, reply_to->s, reply_to->n);
        it->key_len = reply_to->n;
        it->payload_len = resp->len;
        it->payload = strbuf_steal(resp);
        if (inflight) {
                it->inflight = malloc(inflight_len ? inflight_len : 1);
                if (!it->inflight) {
                        reply_item_free(it);
                        return -ENOMEM;
                }
                memcpy(it->inflight, inflight, inflight_len);
                it->inflight_len = inflight_len;
        }
        *bus->replies_tail = it;
        bus->replies_tail = &it->next;
        bus->n_replies++;
        flush_replies(bus);
        return 0;
}

/* ======================================================================
 * Serving requests
 * ====================================================================== */

static void inflight_remove(struct proto_bus *bus, const char *payload, size_t len)
{
        if (bus->cmd.connected && bus->cmd.ac)
                redisAsyncCommand(bus->cmd.ac, NULL, NULL, "LREM %s 1 %b", bus->inflight, payload,
                                  len);
}

static int reply_direct(struct proto_bus *bus, const struct proto_request *req, const char *payload,
                        size_t len, bool in_inflight, const char *error)
{
        _cleanup_strbuf_ struct strbuf out = STRBUF_INIT;
        int r;

        r = proto_response_encode(&out, &req->id, NULL, 0, error, NULL);
        if (r < 0)
                return r;
        return queue_reply(bus, &req->reply_to, &out, in_inflight ? payload : NULL, len);
}

static void dispatch(struct proto_bus *bus, const char *payload, size_t len, bool in_inflight,
                     bool recovered)
{
        struct proto_request req = {};
        struct proto_bus_call *call;
        unsigned w;
        int r;

        if (len > bus->max_payload) {
                bus->stats.garbage++;
                if (bus->on_garbage)
                        bus->on_garbage(bus, len, -E2BIG, bus->userdata);
                if (in_inflight)
                        inflight_remove(bus, payload, len);
                return;
        }
        r = proto_request_decode(payload, len, &req);
        if (r >= 0 && req.reply_to.n == 0)
                r = -EDESTADDRREQ; /* nowhere to answer: dropped */
        if (r < 0) {
                proto_request_done(&req);
                bus->stats.garbage++;
                if (bus->on_garbage)
                        bus->on_garbage(bus, len, r, bus->userdata);
                if (in_inflight)
                        inflight_remove(bus, payload, len);
                return;
        }
        if (!proto_str_eq(&req.object_name, bus->object_name) ||
            !proto_str_eq(&req.object_version, bus->object_version)) {
                /* zbus answers this as a top-level protocol error, which makes
                 * Go stubs dereference a nil response; Output.Error is safe. */
                reply_direct(bus, &req, payload, len, in_inflight, "unknown object");
                proto_request_done(&req);
                return;
        }

        call = calloc(1, sizeof(*call));
        if (!call) {
                proto_request_done(&req);
                return; /* stays in the inflight list, handled after restart */
        }
        call->bus = bus;
        call->req = req;
        call->in_inflight = in_inflight;
        call->recovered = recovered;
        call->payload = malloc(len ? len : 1);
        if (!call->payload) {
                proto_request_done(&call->req);
                free(call);
                return;
        }
        memcpy(call->payload, payload, len);
        call->payload_len = len;

        for (w = 0; w < bus->n_workers && bus->workers[w].busy; w++)
                ;
        assert(w < bus->n_workers);
        call->worker = w;
        bus->workers[w].busy = true;
        now_realtime(&bus->workers[w].since_sec, &bus->workers[w].since_nsec);
        snprintf(bus->workers[w].action, sizeof(bus->workers[w].action), "[%s].%.*s()",
                 bus->object_id, (int)MIN(req.method.n, 64), req.method.s);
        bus->busy++;
        if (recovered)
                bus->stats.recovered++;
        else
                bus->stats.requests++;
        bus->on_request(bus, call, bus->userdata);
}

static void run_backlog(struct proto_bus *bus)
{
        /* No recursion: replies from inside dispatch() call pop_next(). */
        if (bus->in_backlog)
                return;
        bus->in_backlog = true;
        while (bus->backlog && bus->busy < bus->n_workers && !bus->stopping) {
                struct backlog_item *it = bus->backlog;

                bus->backlog = it->next;
                if (!bus->backlog)
                        bus->backlog_tail = &bus->backlog;
                dispatch(bus, it->payload, it->len, true, true);
                free(it->payload);
                free(it);
        }
        bus->in_backlog = false;
}

static void on_pop(redisAsyncContext *ac, void *r, void *privdata)
{
        struct bus_conn *c = ac->data;
        struct proto_bus *bus;
        redisReply *reply = r;

        if (!c || !reply)
                return;
        bus = c->bus;
        c->blocked = false;
        if (reply->type == REDIS_REPLY_ERROR) {
                if (bus->use_blmove && strstr(reply->str, "unknown command")) {
                        /* Redis < 6.2: no BLMOVE; plain BLPOP as zbus does. */
                        bus->use_blmove = false;
                        pop_next(bus);
                        return;
                }
                log_debug("bus: pop failed: %s", reply->str);
                /* zbus: log and sleep 1 s. */
                conn_drop(c);
                c->backoff_ms = 1000;
                conn_schedule_retry(c);
                return;
        }
        if (reply->type == REDIS_REPLY_STRING)
                dispatch(bus, reply->str, reply->len, true, false);
        else if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
                 reply->element[1]->type == REDIS_REPLY_STRING)
                dispatch(bus, reply->element[1]->str, reply->element[1]->len, false, false);
        pop_next(bus);
}

static void pop_next(struct proto_bus *bus)
{
        struct bus_conn *c = &bus->pop;

        if (!bus->serve || bus->stopping || bus->paused || !c->connected || !c->ac || c->blocked)
                return;
        if (!bus->recovery_done) {
                log_debug("bus: pop waits for recovery");
                return;
        }
        run_backlog(bus);
        /* A backlog call answered synchronously re-entered pop_next(): it may
         * have issued the pop already, or the connection may be gone. */
        if (bus->stopping || !c->connected || !c->ac || c->blocked)
                return;
        if (bus->busy >= bus->n_workers)
                return;
        c->blocked = true;
        log_debug("bus: waiting for a request on %s", bus->queue);
        if (bus->use_blmove)
                redisAsyncCommand(c->ac, on_pop, NULL, "BLMOVE %s %s LEFT RIGHT %d", bus->queue,
                                  bus->inflight, POP_TIMEOUT_SEC);
        else
                redisAsyncCommand(c->ac, on_pop, NULL, "BLPOP %s %d", bus->queue, POP_TIMEOUT_SEC);
}

static void on_recover(redisAsyncContext *ac, void *r, void *privdata)
{
        struct bus_conn *c = ac->data;
        redisReply *reply = r;
        struct proto_bus *bus;

        if (!c || !reply) {
                log_debug("bus: recovery interrupted (c=%p)", (void *)c);
                if (c)
                        c->bus->recovery_started = false;
                return;
        }
        bus = c->bus;
        if (reply->type == REDIS_REPLY_ARRAY) {
                for (size_t i = 0; i < reply->elements; i++) {
                        redisReply *e = reply->element[i];
                        struct backlog_item *it;

                        if (e->type != REDIS_REPLY_STRING)
                                continue;
                        it = calloc(1, sizeof(*it));
                        if (!it)
                                break;
                        it->payload = malloc(e->len ? e->len : 1);
                        if (!it->payload) {
                                free(it);
                                break;
                        }
                        memcpy(it->payload, e->str, e->len);
                        it->len = e->len;
                        *bus->backlog_tail = it;
                        bus->backlog_tail = &it->next;
                }
        }
        bus->recovery_done = true;
        log_debug("bus: recovered %zu request(s) from %s",
                  reply->type == REDIS_REPLY_ARRAY ? reply->elements : 0, bus->inflight);
        pop_next(bus);
}

static void start_recovery(struct proto_bus *bus)
{
        if (bus->recovery_done || bus->recovery_started || !bus->cmd.connected)
                return;
        bus->recovery_started = true;
        /* Bounded: more than this many unanswered requests are picked up by
         * later starts (each is removed from the list once answered). */
        redisAsyncCommand(bus->cmd.ac, on_recover, NULL, "LRANGE %s 0 %d", bus->inflight,
                          RECOVER_MAX - 1);
}

static void on_status_request(redisAsyncContext *ac, void *r, void *privdata)
{
        _cleanup_strbuf_ struct strbuf data = STRBUF_INIT, out = STRBUF_INIT;
        struct proto_worker_status ws[64];
        struct bus_conn *c = ac->data;
        struct proto_request req = {};
        redisReply *reply = r;
        struct proto_bus *bus;
        size_t n;

        if (!c || !reply)
                return;
        bus = c->bus;
        c->blocked = false;
        if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
            reply->element[1]->type == REDIS_REPLY_STRING &&
            reply->element[1]->len <= bus->max_payload &&
            proto_request_decode(reply->element[1]->str, reply->element[1]->len, &req) >= 0 &&
            req.reply_to.n > 0) {
                n = MIN(bus->n_workers, ELEMENTSOF(ws));
                for (size_t i = 0; i < n; i++)
                        ws[i] = (struct proto_worker_status){
                                .busy = bus->workers[i].busy,
                                .start_sec = bus->workers[i].since_sec,
                                .start_nsec = bus->workers[i].since_nsec,
                                .action = bus->workers[i].busy ? bus->workers[i].action : "",
                        };
                if (proto_status_encode(&data, bus->object_name, bus->object_version, ws, n) >= 0 &&
                    proto_response_encode(&out, &req.id, data.data, data.len, NULL, NULL) >= 0)
                        queue_reply(bus, &req.reply_to, &out, NULL, 0);
                bus->stats.status_requests++;
        } else if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2) {
                bus->stats.garbage++;
                if (bus->on_garbage)
                        bus->on_garbage(bus, reply->element[1]->len, -EBADMSG, bus->userdata);
        }
        proto_request_done(&req);
        status_next(bus);
}

static void status_next(struct proto_bus *bus)
{
        struct bus_conn *c = &bus->status;

        if (!bus->serve || bus->stopping || !c->connected || !c->ac || c->blocked)
                return;
        c->blocked = true;
        redisAsyncCommand(c->ac, on_status_request, NULL, "BLPOP %s %d", bus->status_queue,
                          POP_TIMEOUT_SEC);
}

const struct proto_request *proto_bus_call_request(const struct proto_bus_call *call)
{
        return &call->req;
}

unsigned proto_bus_call_worker(const struct proto_bus_call *call)
{
        return call->worker;
}

bool proto_bus_call_recovered(const struct proto_bus_call *call)
{
        return call->recovered;
}

static void call_free(struct proto_bus_call *call)
{
        struct proto_bus *bus = call->bus;
        struct worker *w = &bus->workers[call->worker];

        w->busy = false;
        w->action[0] = 0;
        now_realtime(&w->since_sec, &w->since_nsec);
        bus->busy--;
        proto_request_done(&call->req);
        free(call->payload);
        free(call);
}

int proto_bus_call_reply(struct proto_bus_call *call, const void *data, size_t data_len,
                         const char *error)
{
        _cleanup_strbuf_ struct strbuf out = STRBUF_INIT;
        struct proto_bus *bus = call->bus;
        int r = 0;

        if (!bus->stopping) {
                r = proto_response_encode(&out, &call->req.id, data, data_len, error, NULL);
                if (r >= 0)
                        r = queue_reply(bus, &call->req.reply_to, &out,
                                        call->in_inflight ? call->payload : NULL,
                                        call->payload_len);
        }
        /* When stopping, the request stays in the inflight list and is
         * handled again after the restart. */
        call_free(call);
        pop_next(bus);
        maybe_stop_done(bus);
        return r;
}

/* ======================================================================
 * Outgoing calls
 * ====================================================================== */

static void on_pending_timer_closed(uv_handle_t *h)
{
        struct proto_bus_pending *p = h->data;
        struct proto_bus *bus = p->bus;

        /* hiredis still holds @p as the RPUSH's privdata: free it there. */
        p->timer_closed = true;
        if (!p->push_pending) {
                proto_response_done(&p->resp);
                free(p);
        }
        assert(bus->open_handles > 0);
        bus->open_handles--;
        maybe_stop_done(bus);
}

static void pending_finish(struct proto_bus_pending *p, int r)
{
        struct proto_bus *bus = p->bus;

        if (p->finished)
                return;
        if (p->cancelled)
                r = -ECANCELED;
        p->finished = true;
        p->result = r;
        conn_drop(&p->conn);
        LIST_REMOVE(bus->pendings, p);
        bus->n_pendings--;
        uv_timer_stop(&p->timer);
        /* The close callback runs on a later loop iteration and frees @p. */
        uv_close((uv_handle_t *)&p->timer, on_pending_timer_closed);
        p->cb(r, r >= 0 ? &p->resp : NULL, p->userdata);
}

static void on_pending_timeout(uv_timer_t *t);

/* Fail from the loop, never from inside the caller's frame. */
static void pending_fail_async(struct proto_bus_pending *p, int r)
{
        if (p->finished)
                return;
        p->result = r;
        uv_timer_start(&p->timer, on_pending_timeout, 0, 0);
}

static void on_wait_reply(redisAsyncContext *ac, void *r, void *privdata)
{
        struct bus_conn *c = ac->data;
        struct proto_bus_pending *p;
        redisReply *reply = r;

        if (!c || !reply)
                return;
        p = c->pending;
        c->blocked = false;
        if (p->finished)
                return;
        if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
            reply->element[1]->type == REDIS_REPLY_STRING) {
                int k = proto_response_decode(reply->element[1]->str, reply->element[1]->len,
                                              &p->resp);
                pending_finish(p, k < 0 ? -EBADMSG : 0);
                return;
        }
        if (reply->type == REDIS_REPLY_ERROR) {
                pending_finish(p, -EIO);
                return;
        }
        wait_next(p);
}

static void wait_next(struct proto_bus_pending *p)
{
        struct bus_conn *c = &p->conn;

        if (p->finished || !c->connected || !c->ac || c->blocked || !p->pushed)
                return;
        c->blocked = true;
        redisAsyncCommand(c->ac, on_wait_reply, NULL, "BLPOP %s %d", p->uuid, WAIT_TIMEOUT_SEC);
}

static void on_pushed(redisAsyncContext *ac, void *r, void *privdata)
{
        struct proto_bus_pending *p = privdata;
        redisReply *reply = r;

        p->push_pending = false;
        if (p->timer_closed) {
                /* The call ended (timeout, cancel) before this reply. */
                proto_response_done(&p->resp);
                free(p);
                return;
        }
        if (p->finished)
                return;
        if (!reply) {
                pending_finish(p, -ECONNRESET);
                return;
        }
        if (reply->type == REDIS_REPLY_ERROR) {
                pending_finish(p, -EIO);
                return;
        }
        p->pushed = true;
        wait_next(p);
}

static void on_pending_timeout(uv_timer_t *t)
{
        struct proto_bus_pending *p = t->data;

        pending_finish(p, p->result ? p->result : -ETIMEDOUT);
}

int proto_bus_request(struct proto_bus *bus, const char *module, const char *object,
                      const char *version, const char *method, const struct proto_str *inputs,
                      size_t n_inputs, unsigned timeout_ms, proto_bus_reply_cb *cb, void *userdata,
                      struct proto_bus_pending **ret)
{
        _cleanup_strbuf_ struct strbuf payload = STRBUF_INIT;
        struct proto_bus_pending *p;
        char queue[256];
        int r;

        if (bus->stopping)
                return -ECANCELED;
        if (bus->n_pendings >= MAX_PENDING_CALLS)
                return -EBUSY;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        r = proto_uuid4(p->uuid);
        if (r >= 0)
                r = proto_request_encode(&payload, p->uuid, object, version, p->uuid, method,
                                         inputs, n_inputs);
        if (r < 0) {
                free(p);
                return r;
        }
        snprintf(queue, sizeof(queue), "%s.%s@%s", module, object, version);
        p->bus = bus;
        p->cb = cb;
        p->userdata = userdata;
        p->conn.bus = bus;
        p->conn.role = CONN_WAIT;
        p->conn.pending = p;
        uv_timer_init(bus->loop, &p->timer);
        p->timer.data = p;
        bus->open_handles++;
        LIST_PREPEND(bus->pendings, p);
        bus->n_pendings++;

        if (!bus->cmd.connected || !bus->cmd.ac) {
                /* Fail asynchronously: the callback must not run in here. */
                p->result = -ECONNREFUSED;
                uv_timer_start(&p->timer, on_pending_timeout, 0, 0);
        } else {
                if (redisAsyncCommand(bus->cmd.ac, on_pushed, p, "RPUSH %s %b", queue, payload.data,
                                      payload.len) == REDIS_OK)
                        p->push_pending = true;
                uv_timer_start(&p->timer, on_pending_timeout, timeout_ms, 0);
                conn_connect(&p->conn);
        }
        if (ret)
                *ret = p;
        return 0;
}

static void on_cancel_timer(uv_timer_t *t)
{
        struct proto_bus_pending *p = t->data;

        pending_finish(p, -ECANCELED);
}

void proto_bus_request_cancel(struct proto_bus_pending *p)
{
        if (!p || p->finished)
                return;
        p->cancelled = true;
        conn_drop(&p->conn);
        uv_timer_start(&p->timer, on_cancel_timer, 0, 0);
}

/* ======================================================================
 * Life cycle
 * ====================================================================== */

int proto_bus_new(uv_loop_t *loop, const struct proto_bus_options *o, struct proto_bus **ret,
                  char **reterr)
{
        struct proto_bus *bus;
        int r;

        assert(o->workers >= 1);
        bus = calloc(1, sizeof(*bus));
        if (!bus)
                return -ENOMEM;
        r = proto_broker_parse(o->broker, &bus->broker, reterr);
        if (r < 0) {
                free(bus);
                return r;
        }
        bus->loop = loop;
        bus->serve = o->serve;
        bus->n_workers = o->workers;
        bus->max_payload = o->max_payload ? o->max_payload : 1024 * 1024;
        bus->max_pending_replies = o->max_pending_replies ? o->max_pending_replies : 4096;
        bus->on_request = o->on_request;
        bus->on_state = o->on_state;
        bus->on_garbage = o->on_garbage;
        bus->userdata = o->userdata;
        bus->use_blmove = true;
        bus->backlog_tail = &bus->backlog;
        bus->replies_tail = &bus->replies;
        bus->module = strdup(o->module);
        bus->object_name = strdup(o->object_name);
        bus->object_version = strdup(o->object_version);
        bus->workers = calloc(o->workers, sizeof(*bus->workers));
        if (!bus->module || !bus->object_name || !bus->object_version || !bus->workers ||
            asprintf(&bus->queue, "%s.%s@%s", o->module, o->object_name, o->object_version) < 0 ||
            asprintf(&bus->inflight, "%s:inflight", bus->queue) < 0 ||
            asprintf(&bus->status_queue, "%s.zbus@1.0", o->module) < 0) {
                bus->stop_done = true;
                proto_bus_free(bus);
                return -ENOMEM;
        }
        snprintf(bus->object_id, sizeof(bus->object_id), "%s@%s", o->object_name,
                 o->object_version);
        for (unsigned i = 0; i < bus->n_workers; i++)
                now_realtime(&bus->workers[i].since_sec, &bus->workers[i].since_nsec);
        if (!bus->serve)
                bus->recovery_done = true;
        *ret = bus;
        return 0;
}

int proto_bus_start(struct proto_bus *bus)
{
        conn_init(bus, &bus->cmd, CONN_CMD);
        if (bus->serve) {
                conn_init(bus, &bus->pop, CONN_POP);
                conn_init(bus, &bus->status, CONN_STATUS);
        }
        conn_connect(&bus->cmd);
        if (bus->serve) {
                conn_connect(&bus->pop);
                conn_connect(&bus->status);
        }
        return 0;
}

void proto_bus_pause(struct proto_bus *bus)
{
        bus->paused = true;
}

void proto_bus_resume(struct proto_bus *bus)
{
        if (!bus->paused)
                return;
        bus->paused = false;
        pop_next(bus);
}

bool proto_bus_connected(const struct proto_bus *bus)
{
        return server_connected(bus);
}

const char *proto_bus_queue(const struct proto_bus *bus)
{
        return bus->queue;
}

void proto_bus_get_stats(const struct proto_bus *bus, struct proto_bus_stats *ret)
{
        *ret = bus->stats;
}

static bool replies_flushed(const struct proto_bus *bus)
{
        return !bus->replies || !bus->cmd.connected;
}

static void maybe_stop_done(struct proto_bus *bus)
{
        if (!bus->stopping || bus->stop_done)
                return;
        if (bus->cmd.timer_open) {
                /* Phase 1: wait for replies to flush (or the deadline). */
                if (!replies_flushed(bus))
                        return;
                uv_timer_stop(&bus->stop_timer);
                conn_drop(&bus->cmd);
                conn_close_timer(&bus->cmd);
                uv_close((uv_handle_t *)&bus->stop_timer, on_handle_closed);
                return;
        }
        if (bus->open_handles > 0)
                return;
        bus->stop_done = true;
        if (bus->stop_cb)
                bus->stop_cb(bus, bus->stop_ud);
}

static void on_stop_deadline(uv_timer_t *t)
{
        struct proto_bus *bus = t->data;

        /* Give up flushing: drop the command connection now. */
        conn_drop(&bus->cmd);
        maybe_stop_done(bus);
}

void proto_bus_stop(struct proto_bus *bus, void (*done_cb)(struct proto_bus *bus, void *ud),
                    void *ud)
{
        if (bus->stopping)
                return;
        bus->stopping = true;
        bus->stop_cb = done_cb;
        bus->stop_ud = ud;
        conn_drop(&bus->pop);
        conn_drop(&bus->status);
        conn_close_timer(&bus->pop);
        conn_close_timer(&bus->status);
        for (struct proto_bus_pending *p = bus->pendings, *next; p; p = next) {
                next = p->next;
                proto_bus_request_cancel(p);
        }
        uv_timer_init(bus->loop, &bus->stop_timer);
        bus->stop_timer.data = bus;
        bus->open_handles++;
        if (!bus->cmd.timer_open) {
                /* Never started. */
                uv_close((uv_handle_t *)&bus->stop_timer, on_handle_closed);
                return;
        }
        uv_timer_start(&bus->stop_timer, on_stop_deadline, STOP_FLUSH_MS, 0);
        maybe_stop_done(bus);
}

struct proto_bus *proto_bus_free(struct proto_bus *bus)
{
        if (!bus)
                return NULL;
        assert(bus->stop_done || !bus->cmd.timer_open);
        while (bus->replies) {
                struct reply_item *it = bus->replies;
                bus->replies = it->next;
                reply_item_free(it);
        }
        while (bus->backlog) {
                struct backlog_item *it = bus->backlog;
                bus->backlog = it->next;
                free(it->payload);
                free(it);
        }
        proto_broker_done(&bus->broker);
        free(bus->module);
        free(bus->object_name);
        free(bus->object_version);
        free(bus->queue);
        free(bus->inflight);
        free(bus->status_queue);
        free(bus->workers);
        free(bus);
        return NULL;
}
