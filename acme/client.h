/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The ACME v2 protocol client (RFC 8555), on the caller's libuv loop.
 *
 * One struct acme_client per (directory URL, account key). It fetches the
 * directory lazily (and again after 24 h or after a request to a stale URL
 * failed), keeps a bounded pool of nonces (Replay-Nonce of every response;
 * HEAD newNonce when empty), retries a request that failed with badNonce
 * with the nonce of that error response (at most 5 times), honours
 * Retry-After, and registers the account on first use (newAccount with
 * termsOfServiceAgreed and the contact; the Location becomes the `kid` of
 * every later JWS; an account URL known from an earlier run skips it).
 *
 * An order walks: newOrder (identifiers, optional profile and ARI
 * `replaces`) → each authorization (POST-as-GET) → for every pending one,
 * the challenge of the requested type is installed through the owner's
 * hook (all of them before the first is POSTed: `*.d` and `d` need two
 * TXT values at `_acme-challenge.d` at once) → POST {} to each challenge
 * URL → poll each authorization until valid/invalid (Retry-After, else
 * 1 s doubling to 10 s; at most 128 polls per order; bounded by the order
 * deadline) → remove the challenges → finalize with a CSR for the names
 * (new P-256 key unless one is given; an orderNotReady answer is polled
 * until ready) → poll the order until valid → download the chain
 * (Accept: application/pem-certificate-chain), checked to parse and to
 * belong to the key → done. Any error ends the order with an RFC 7807
 * problem (or a transport error) in the result; installed challenges are
 * always removed. If the server rejects newOrder while `replaces` was
 * sent (alreadyReplaced, malformed or 409), the order is retried once
 * without it.
 *
 * Requests that failed with 503 and a Retry-After of at most 60 s are
 * resent (3 times at most); POST-as-GETs that failed in transport are
 * resent twice. 429 (rateLimited) is never retried: it ends the order
 * with the problem and its retry_after_s.
 *
 * Nothing here logs above debug, reads the wall clock except through
 * cfg->now (delays use the loop's monotonic time), or touches files: the
 * owner persists keys, the account URL and certificates, and decides when
 * to order. Callbacks never run from inside the call that started the
 * work (acme_order_start, acme_ari_fetch). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct acme_client;
struct acme_order;
struct acme_ari_req;
struct acme_http_ops;
struct acme_key; /* acme/jws.h: a P-256 key */

enum acme_challenge_type {
        ACME_CHALLENGE_HTTP01, /* "http-01" */
        ACME_CHALLENGE_DNS01,  /* "dns-01" */
        _ACME_CHALLENGE_MAX,
};

const char *acme_challenge_type_str(enum acme_challenge_type t);

/* A problem document (RFC 7807 / RFC 8555 §6.7) or a transport failure.
 * Strings are owned by the struct (acme_problem_done frees them). */
struct acme_problem {
        int error;              /* -errno for transport/internal errors (-ETIMEDOUT: the order
                                 * deadline; -EBADMSG: a malformed answer), else 0 */
        int status;             /* HTTP status of the failing response; 0: none */
        char *type;             /* e.g. "urn:ietf:params:acme:error:rateLimited"; may be NULL */
        char *detail;           /* human text, subproblems summarised in; control bytes
                                 * replaced, at most ~1 KiB; may be NULL */
        char *where;            /* the step: "newOrder", "challenge example.com", ... */
        uint64_t retry_after_s; /* from Retry-After; 0: none */
};
void acme_problem_done(struct acme_problem *p);
/* "rateLimited" etc.: the type without the ACME URN prefix, or the whole type. */
const char *acme_problem_short_type(const struct acme_problem *p);

struct acme_client_config {
        uv_loop_t *loop;                  /* borrowed */
        const struct acme_http_ops *http; /* borrowed; acme_http_ops_default() in the daemon */
        void *http_transport;             /* the struct acme_http (or a fake) */
        const char *directory_url;        /* copied */
        struct acme_key *account_key;     /* borrowed; outlives the client */
        const char *account_url;          /* known from an earlier run, or NULL; copied */
        const char *email;                /* contact "mailto:<email>"; NULL or "": none */
        /* Unix time in seconds (for Retry-After dates); NULL: time(). */
        int64_t (*now)(void *now_ud);
        void *now_ud;
        /* Called once the account URL is known (newAccount answered), so the
         * owner can store it; may be NULL. */
        void (*on_account)(void *ud, const char *account_url);
        void *ud;                  /* for on_account */
        uint64_t order_timeout_ms; /* whole order deadline; 0: 10 min */
        /* Poll delay when the server sends no Retry-After: starts at
         * poll_min_ms and doubles up to poll_max_ms (0: 1 s and 10 s). Also
         * the delay before resending after a transport error. */
        uint64_t poll_min_ms;
        uint64_t poll_max_ms;
};

/* Returns 0, -EINVAL (no loop, http ops or key; a directory or account URL
 * that is not https://) or -ENOMEM. No I/O happens until the first order
 * or ARI request. */
int acme_client_new(const struct acme_client_config *cfg, struct acme_client **ret);
/* Cancels every order and ARI request (their done callbacks do not run;
 * installed challenges are removed through their hooks). The client's
 * memory is released from its timer's close callback, so the loop must
 * run afterwards. May be called from any of the client's callbacks.
 * Accepts NULL. */
void acme_client_free(struct acme_client *c);

/* What the directory said, once fetched (else false / NULL). */
bool acme_client_has_ari(const struct acme_client *c);
/* Does the directory's meta.profiles list @profile? */
bool acme_client_has_profile(const struct acme_client *c, const char *profile);

/* The challenge the owner must make answerable before the client tells the
 * server to validate it. All strings are borrowed for the call. */
struct acme_challenge {
        enum acme_challenge_type type;
        const char *identifier;        /* the DNS name of the authorization (no "*.") */
        bool wildcard;                 /* the authorization is for "*.<identifier>" */
        const char *token;             /* http-01: served at /.well-known/acme-challenge/<token> */
        const char *key_authorization; /* http-01: the response body */
        const char *dns_value;         /* dns-01: the TXT value at _acme-challenge.<identifier> */
};

struct acme_order_result {
        char *chain_pem;  /* leaf first; owned (free()) — NULL on failure */
        size_t chain_len; /* its length */
        char *key_pem;    /* the certificate's private key, PKCS#8 PEM; owned — NULL on failure */
        size_t key_len;   /* its length */
        struct acme_problem problem; /* on failure */
};

struct acme_order_hooks {
        /* Make @ch answerable (HTTP-01 token store, DNS TXT record). Return 0,
         * or -errno to fail the order. Called on the loop. Must not cancel
         * the order or free the client. */
        int (*install)(void *ud, const struct acme_challenge *ch);
        /* Undo an install (once every authorization is valid, or on failure
         * or cancel). Same restrictions as install. */
        void (*remove)(void *ud, const struct acme_challenge *ch);
        /* Exactly once unless cancelled: r = 0 and res->chain_pem/key_pem, or
         * r < 0 and res->problem: -EPROTO when the server said no (a problem
         * document, an invalid authorization or order; problem.type set),
         * -ETIMEDOUT (order deadline), -EBADMSG (malformed answer),
         * -EOPNOTSUPP (no challenge of the type offered, or the CA needs
         * external account binding), a transport error, or the install
         * hook's error. The owner takes the strings (sets them NULL or frees
         * them); the client frees what is left after the call. The order is
         * gone when done runs; done may free the client. */
        void (*done)(void *ud, int r, struct acme_order_result *res);
};

struct acme_order_params {
        const char *const *names;      /* DNS names, "*.d" allowed; 1..100 */
        size_t n_names;                /* their number */
        enum acme_challenge_type type; /* one type for every authorization */
        const char *profile;           /* NULL: none; ignored unless the directory lists it */
        const char *replaces;          /* ARI certificate ID of the one being renewed; NULL: none */
        const struct acme_key *cert_key; /* the certificate's key (the order keeps its own
                                          * reference; free yours any time); NULL: a new
                                          * P-256 key */
};

/* Start an order. Returns 0 (handle in *ret, may be NULL), -EINVAL (no or
 * more than 100 names, a name that is not a DNS name or "*.<name>",
 * duplicate names, a challenge type out of range, a wildcard with http-01
 * (RFC 8555 §7.1.3: wildcards are validated by dns-01 only)), -EAGAIN (64
 * orders in flight) or -ENOMEM; then no hook runs. */
int acme_order_start(struct acme_client *c, const struct acme_order_params *p,
                     const struct acme_order_hooks *hooks, void *ud, struct acme_order **ret);
/* Stop an order: installed challenges are removed, done does not run.
 * Accepts NULL. Not from inside the order's own install/remove hooks. */
void acme_order_cancel(struct acme_order *o);

/* ARI (RFC 9773): the renewal window the server suggests for a certificate. */
struct acme_renewal_info {
        int64_t start;          /* suggestedWindow.start, Unix seconds */
        int64_t end;            /* suggestedWindow.end */
        char *explanation_url;  /* owned; may be NULL */
        uint64_t retry_after_s; /* when to ask again (Retry-After; 0: none given) */
};
void acme_renewal_info_done(struct acme_renewal_info *ri);
/* r = 0 with @ri (the callee frees what the owner did not take), or r < 0 with @problem
 * (-EOPNOTSUPP when the directory has no renewalInfo, also when that was
 * known before acme_ari_fetch; -EPROTO for a problem document, e.g. 404
 * for a certificate the CA does not know; -EBADMSG for a malformed
 * window). The request is gone when the callback runs. */
typedef void acme_ari_cb(void *ud, int r, struct acme_renewal_info *ri,
                         const struct acme_problem *problem);
/* GET <renewalInfo>/<cert_id>. Returns 0, -EINVAL (@cert_id not
 * "<base64url>.<base64url>"), -EAGAIN (64 requests in flight) or -ENOMEM;
 * then @cb never runs. */
int acme_ari_fetch(struct acme_client *c, const char *cert_id, acme_ari_cb *cb, void *ud,
                   struct acme_ari_req **ret);
/* The callback will not run. Accepts NULL. */
void acme_ari_cancel(struct acme_ari_req *r);
