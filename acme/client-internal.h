/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Shared by client.c (the client, its directory, account, nonce pool and
 * the request layer), order.c (the order state machine), ari.c and wire.c
 * (pure helpers for what the server sends). Not part of the module's API. */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "acme/client.h"
#include "acme/http.h"

#define ACME_NONCE_POOL_MAX    8    /* nonces kept; the oldest is dropped beyond */
#define ACME_NONCE_MAX         256  /* bytes of one Replay-Nonce */
#define ACME_URL_MAX           2048 /* bytes of any URL the server hands out */
#define ACME_BAD_NONCE_RETRIES 5    /* resends of one request after badNonce */
#define ACME_NONCE_FETCHES     3    /* HEAD newNonce per request without a nonce */
#define ACME_BUSY_RETRIES      3    /* resends of one request after 503 + Retry-After */
#define ACME_BUSY_WAIT_MAX_S   60   /* a longer 503 Retry-After fails the request */
#define ACME_TRANSPORT_RETRIES 2    /* resends of an idempotent request after a transport error */
#define ACME_DIR_MAX_AGE_S     (24 * 3600)
#define ACME_PROFILES_MAX      32  /* meta.profiles entries kept */
#define ACME_PROFILE_NAME_MAX  64  /* bytes of a profile name */
#define ACME_ORDERS_MAX        64  /* orders in flight per client */
#define ACME_ARI_MAX           64  /* ARI requests in flight per client */
#define ACME_ORDER_NAMES_MAX   100 /* identifiers per order */
#define ACME_POLLS_MAX         128 /* authorization + order polls per order */
#define ACME_FINALIZES_MAX     2   /* finalize POSTs per order (orderNotReady once) */
#define ACME_DETAIL_MAX        1024
#define ACME_TYPE_MAX          256
#define ACME_SUBPROBLEMS_MAX   10
#define ACME_RETRY_AFTER_MAX_S (7 * 24 * 3600) /* larger values are clamped */
#define ACME_CERT_ID_MAX       512

#define ACME_ERROR_URN "urn:ietf:params:acme:error:"

/* ---- timers ---------------------------------------------------------- */

/* A deadline on the client's single uv timer (so orders and requests own
 * no libuv handles and can be freed synchronously). */
struct acme__wake {
        struct acme__wake *prev, *next; /* in client->wakes, sorted by @at */
        uint64_t at;                    /* loop time in ms */
        uint64_t seq;                   /* arming order: one timer run fires only older wakes */
        bool armed;                     /* in the list */
        void (*fire)(struct acme__wake *w);
};

/* Fire @w after @delay_ms of loop time (re-arms if armed). */
void acme__wake_arm(struct acme_client *c, struct acme__wake *w, uint64_t delay_ms);
void acme__wake_disarm(struct acme_client *c, struct acme__wake *w);

/* ---- the request layer ------------------------------------------------ */

enum acme__call_state {
        ACME_CALL_ST_IDLE,         /* not started, finished or cancelled */
        ACME_CALL_ST_WAIT_DIR,     /* parked until the directory is known */
        ACME_CALL_ST_WAIT_ACCOUNT, /* parked until the account URL is known */
        ACME_CALL_ST_NONCE,        /* HEAD newNonce in flight */
        ACME_CALL_ST_SEND,         /* the request in flight */
        ACME_CALL_ST_BACKOFF,      /* waiting before a resend (503 Retry-After, transport) */
        ACME_CALL_ST_FAILING,      /* failed; done runs from the next loop turn */
        _ACME_CALL_ST_MAX,
};
const char *acme__call_state_str(enum acme__call_state s);

enum acme__call_auth {
        ACME_CALL_GET,      /* unauthenticated GET (directory, renewalInfo) */
        ACME_CALL_POST_JWK, /* JWS with the account's jwk (newAccount) */
        ACME_CALL_POST_KID, /* JWS with the account URL as kid */
};

struct acme__call;
/* r = 0: a 2xx answer, @resp valid for the call, @json the parsed object
 * (owned by the callee: json_decref it) unless the call wants the raw
 * body. r < 0: call->problem says why (take it), @resp and @json NULL. The
 * owner may free the call (and anything) from here. */
typedef void acme__call_done_cb(struct acme__call *call, int r,
                                const struct acme_http_response *resp, json_t *json);
/* Runs once the directory (and account, for kid) is known, before each
 * send: fill in url/payload. Returns 0 or -errno, after acme__call_fail()
 * for a precise problem. */
typedef int acme__call_prepare_fn(struct acme__call *call);

struct acme__call {
        struct acme_client *c;
        enum acme__call_state state;
        struct acme__call *prev, *next; /* in a client waiter list */
        /* What to send (the owner sets these before acme__call_start). */
        enum acme__call_auth auth;
        bool needs_dir;                 /* false only for the directory itself */
        bool raw;                       /* 2xx body is not JSON (the certificate) */
        bool idempotent;                /* may be resent after a transport error */
        char *url;                      /* owned */
        char *payload;                  /* owned; "" for POST-as-GET, NULL for GET */
        char *where;                    /* owned; names the step in problems */
        const char *accept;             /* Accept header, static */
        acme__call_prepare_fn *prepare; /* NULL: url/payload already set */
        acme__call_done_cb *done;
        /* Progress of one request. */
        unsigned bad_nonces, nonce_fetches, busy_retries, transport_retries;
        bool reregistered;           /* accountDoesNotExist handled once */
        char *nonce;                 /* the nonce to use next, from a badNonce answer */
        char *kid;                   /* the account URL the request in flight was signed with */
        void *http;                  /* transport handle in flight */
        int fail_r;                  /* FAILING: what done gets */
        struct acme__wake wake;      /* BACKOFF and FAILING */
        struct acme_problem problem; /* on failure */
};

void acme__call_init(struct acme__call *call, struct acme_client *c, acme__call_done_cb *done);
/* Cancel (done will not run) and free the strings; the call is reusable. */
void acme__call_clear(struct acme__call *call);
/* Set the target: @url and @payload copied (either may be NULL), @where
 * printf-formatted. Resets the progress counters. -ENOMEM. */
int acme__call_target(struct acme__call *call, const char *url, const char *payload,
                      const char *where_fmt, ...) __attribute__((format(printf, 4, 5)));
/* Start: done runs later, exactly once, unless cancelled (acme__call_clear). */
void acme__call_start(struct acme__call *call);
/* Record the problem of a failure found by the owner or prepare (the
 * detail printf-formatted). Returns @r. */
int acme__call_fail(struct acme__call *call, int r, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* ---- the client ------------------------------------------------------- */

struct acme__directory {
        bool loaded;        /* the fields below are valid */
        bool stale;         /* refetch before the next request */
        int64_t fetched_at; /* cfg->now() when loaded */
        char *new_nonce;    /* required */
        char *new_account;  /* required */
        char *new_order;    /* required */
        char *renewal_info; /* NULL: no ARI */
        char **profiles;    /* meta.profiles names */
        size_t n_profiles;  /* their number */
        bool eab_required;  /* meta.externalAccountRequired */
};

struct acme_client {
        uv_loop_t *loop;
        const struct acme_http_ops *http;
        void *transport;
        char *directory_url;
        struct acme_key *account_key; /* borrowed */
        char *account_url;            /* the kid; NULL until known */
        char *email;                  /* NULL: no contact */
        int64_t (*now)(void *now_ud);
        void *now_ud;
        void (*on_account)(void *ud, const char *account_url);
        void *ud;
        uint64_t order_timeout_ms, poll_min_ms, poll_max_ms;

        struct acme__directory dir;
        struct acme__call dir_call; /* the directory GET, when fetching */
        bool dir_fetching;
        struct acme__call *dir_waiters; /* calls parked on the directory */
        struct acme__call acct_call;    /* newAccount, when registering */
        bool acct_registering;
        struct acme__call *acct_waiters; /* calls parked on the account */

        char *nonces[ACME_NONCE_POOL_MAX]; /* oldest first */
        size_t n_nonces;

        struct acme_order *orders; /* in flight */
        size_t n_orders;
        struct acme_ari_req *aris; /* in flight */
        size_t n_aris;

        uv_timer_t timer;         /* drives every acme__wake */
        struct acme__wake *wakes; /* armed, soonest first */
        uint64_t wake_seq;        /* last acme__wake.seq handed out */
        bool freed;               /* acme_client_free ran; memory goes with the timer */
};

int64_t acme__now(const struct acme_client *c);

/* ---- wire.c: pure helpers -------------------------------------------- */

/* Case-insensitive lookup of the first header @name; NULL if absent. */
const char *acme__header(const struct acme_http_response *resp, const char *name);
/* Retry-After (RFC 9110 §10.2.3) as delta-seconds or an IMF-fixdate
 * relative to @now (the obsolete RFC 850 and asctime forms are refused).
 * Returns 0 with the delay in seconds (0 for a past date; clamped to
 * ACME_RETRY_AFTER_MAX_S), -ENOENT when absent, -EINVAL when malformed. */
int acme__retry_after(const struct acme_http_response *resp, int64_t now, uint64_t *ret);
int acme__parse_http_date(const char *s, int64_t *ret);
/* RFC 3339 date-time ("2025-01-02T03:04:05Z", fraction and offset allowed). */
int acme__parse_rfc3339(const char *s, int64_t *ret);
/* An https:// URL of at most ACME_URL_MAX printable bytes. */
bool acme__url_ok(const char *s);
/* A Replay-Nonce: base64url, 1..ACME_NONCE_MAX bytes (RFC 8555 §6.5.1). */
bool acme__nonce_ok(const char *s);
/* An ARI certificate identifier: "<base64url>.<base64url>", at most
 * ACME_CERT_ID_MAX bytes (RFC 9773 §4.1). */
bool acme__cert_id_ok(const char *s);
/* A copy of @s with control bytes as ' ', cut to at most @max bytes on a
 * UTF-8 boundary. NULL on ENOMEM (or @s NULL). */
char *acme__sanitize(const char *s, size_t max);
/* The string member @key of @o, or NULL. */
const char *acme__json_str(const json_t *o, const char *key);
/* Fill @p (type, detail with subproblems) from a problem object. */
int acme__problem_from_json(struct acme_problem *p, const json_t *o);
/* Fill @p from an error response: status, the problem document if the
 * body is one (else a detail naming the status), Retry-After. */
int acme__problem_from_response(struct acme_problem *p, const struct acme_http_response *resp,
                                int64_t now);
/* Deep copy. -ENOMEM. */
int acme__problem_copy(struct acme_problem *dst, const struct acme_problem *src);
/* Is @p of the ACME error type @short_type ("badNonce")? */
bool acme__problem_is(const struct acme_problem *p, const char *name);

enum acme__status {
        ACME_STATUS_UNKNOWN, /* missing or not one of the below */
        ACME_STATUS_PENDING,
        ACME_STATUS_READY,
        ACME_STATUS_PROCESSING,
        ACME_STATUS_VALID,
        ACME_STATUS_INVALID,
        ACME_STATUS_DEACTIVATED,
        ACME_STATUS_EXPIRED,
        ACME_STATUS_REVOKED,
};
enum acme__status acme__status_of(const json_t *o);
const char *acme__status_str(enum acme__status s);
