/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* zbus over Redis on a libuv loop (hiredis async): a server for one
 * object plus its status object, and a client for outgoing calls.
 *
 * Server (protocol-zbus-gateway.md §1.2-§1.3): requests are taken from
 * <module>.<object>@<version> only while one of the N "workers" is free,
 * so at most N calls are in flight; the rest wait in Redis, as in zbus. The
 * status object <module>.zbus@1.0 is served on its own connection and
 * answers at once, whatever the workers are doing.
 *
 * Durability: when the server supports BLMOVE (Redis >= 6.2) a request is
 * moved atomically into <queue>:inflight and removed from there only after
 * its reply has been pushed; requests found there at start-up (the daemon
 * died in between) are handled again first. Replies that cannot be sent
 * while Redis is away are kept (bounded) and sent after the reconnect.
 * Every connection reconnects with exponential backoff.
 *
 * Threading: everything runs on the loop thread; no locks. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "proto/codec.h"

struct proto_bus;
struct proto_bus_call;
struct proto_bus_pending;

/* A request popped from the queue. The handler must call
 * proto_bus_call_reply() exactly once, now or later. */
typedef void proto_bus_request_cb(struct proto_bus *bus, struct proto_bus_call *call,
                                  void *userdata);
/* Connection state changes of the server side (for logs and sd_notify). */
typedef void proto_bus_state_cb(struct proto_bus *bus, bool connected, const char *reason,
                                void *userdata);
/* A payload that was dropped (logged by the owner; no reply is possible, as
 * in zbus): @error is -E2BIG (over max_payload), -EDESTADDRREQ (decoded, but
 * without ReplyTo) or the decoder's error (-EBADMSG, -EDOM, ...). Every
 * dropped request is freed and removed from the inflight list. */
typedef void proto_bus_garbage_cb(struct proto_bus *bus, size_t len, int error, void *userdata);

struct proto_bus_options {
        const char *broker;         /* unix:///path or tcp://[pass@]host:port */
        const char *module;         /* "gateway" */
        const char *object_name;    /* "manager" */
        const char *object_version; /* "0.0.1" */
        unsigned workers;           /* >= 1 */
        size_t max_payload;         /* larger requests are dropped and reported */
        size_t max_pending_replies; /* replies kept while Redis is away */
        bool serve;                 /* false: client only (no queue, no status) */
        proto_bus_request_cb *on_request;
        proto_bus_state_cb *on_state;
        proto_bus_garbage_cb *on_garbage;
        void *userdata;
};

/* Returns 0, -EINVAL with *reterr for a bad broker URL, or -ENOMEM. */
int proto_bus_new(uv_loop_t *loop, const struct proto_bus_options *o, struct proto_bus **ret,
                  char **reterr);
/* Connect and start serving. Connection failures are retried, not returned. */
int proto_bus_start(struct proto_bus *bus);
/* Stop taking new requests; calls in flight may still reply. Pending
 * outgoing calls fail with -ECANCELED. @done_cb runs once every connection
 * is closed and all replies that could be flushed were. */
void proto_bus_stop(struct proto_bus *bus, void (*done_cb)(struct proto_bus *bus, void *ud),
                    void *ud);
/* Free after stop has completed. Accepts NULL. */
struct proto_bus *proto_bus_free(struct proto_bus *bus);
bool proto_bus_connected(const struct proto_bus *bus);
/* Hold off taking requests from the object queue (the status object and
 * outgoing calls keep working); resume takes them again. */
void proto_bus_pause(struct proto_bus *bus);
void proto_bus_resume(struct proto_bus *bus);
const char *proto_bus_queue(const struct proto_bus *bus); /* "gateway.manager@0.0.1" */

/* Counters for logs and metrics. */
struct proto_bus_stats {
        uint64_t requests;        /* popped from the object queue */
        uint64_t recovered;       /* re-handled from the inflight list */
        uint64_t status_requests; /* served by the status object */
        uint64_t garbage;         /* undecodable or oversized payloads */
        uint64_t replies_dropped; /* pending replies dropped at the limit */
        uint64_t reconnects;
};
void proto_bus_get_stats(const struct proto_bus *bus, struct proto_bus_stats *ret);

/* ---- a call being handled ---- */
const struct proto_request *proto_bus_call_request(const struct proto_bus_call *call);
unsigned proto_bus_call_worker(const struct proto_bus_call *call);
bool proto_bus_call_recovered(const struct proto_bus_call *call);
/* Send the reply: Output.Data = @data (a msgpack document; NULL -> nil),
 * Output.Error = @error (NULL -> nil). Frees @call. Returns 0 or -ENOMEM
 * (the call is freed and its worker released in either case). */
int proto_bus_call_reply(struct proto_bus_call *call, const void *data, size_t data_len,
                         const char *error);

/* ---- outgoing calls (client) ---- */
typedef void proto_bus_reply_cb(int r, const struct proto_response *resp, void *userdata);
/* Call @method on <module>.<object>@<version> like the Go client: RPUSH the
 * request, then BLPOP <uuid> 1 until the reply or @timeout_ms. @cb gets 0
 * and the response, -ETIMEDOUT, -ECONNREFUSED/-ECONNRESET (Redis
 * unavailable), -EBADMSG (undecodable reply) or -ECANCELED. Returns 0 (then
 * @cb runs exactly once, never from inside this call), -EBUSY when too many
 * calls are pending, or -ENOMEM. @ret (may be NULL) allows cancellation. */
int proto_bus_request(struct proto_bus *bus, const char *module, const char *object,
                      const char *version, const char *method, const struct proto_str *inputs,
                      size_t n_inputs, unsigned timeout_ms, proto_bus_reply_cb *cb, void *userdata,
                      struct proto_bus_pending **ret);
/* Cancel: @cb runs with -ECANCELED (asynchronously). */
void proto_bus_request_cancel(struct proto_bus_pending *p);

/* Set the worker's displayed action (status object), e.g. while a call is
 * handled the bus sets "[manager@0.0.1].<Method>()" by itself. */
