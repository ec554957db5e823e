/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* An in-process ACME server for the client's unit tests. It implements
 * struct acme_http_ops (answers arrive on the next loop turn, like the
 * real transport's), verifies every JWS it receives against the account
 * key (protected header alg/nonce/url/kid-or-jwk, ES256 signature), every
 * CSR (signature, names), and that challenges were published before they
 * were POSTed. Anything the client got wrong is recorded in errors[].
 * Knobs below inject the server behaviours the tests need. */

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "acme/client.h"
#include "acme/http.h"

#define FAKE_BASE       "https://ca.test"
#define FAKE_DIR_URL    FAKE_BASE "/dir"
#define FAKE_MAX_ERRORS 32
#define FAKE_MAX_PUB    16
#define FAKE_MAX_POLLS  256

struct acme_key;

enum fake_mutation {
        FAKE_MUT_NONE,
        FAKE_MUT_TRUNCATE,    /* the body cut in half */
        FAKE_MUT_GARBAGE,     /* binary garbage */
        FAKE_MUT_EMPTY,       /* no body */
        FAKE_MUT_NOT_OBJECT,  /* "[1,2]" */
        FAKE_MUT_MEMBER,      /* JSON member number mutate_member (depth first) gets value
                               * mutate_value */
        FAKE_MUT_NO_HEADERS,  /* no Location, no Replay-Nonce, no Retry-After */
        FAKE_MUT_BAD_HEADERS, /* Location "ftp://x", Replay-Nonce "a b", Retry-After "soon" */
        FAKE_MUT_STATUS_500,  /* status 500 with the same body */
        _FAKE_MUT_MAX,
};

struct fake_published {
        enum acme_challenge_type type;
        char *identifier;
        bool wildcard;
        char *token;
        char *key_auth;
        char *dns_value;
};

struct fake_acme {
        uv_loop_t *loop;
        int64_t *clock; /* the test's Unix time, for Retry-After dates */

        /* The directory. */
        bool ari;                /* renewalInfo listed */
        const char *profiles[4]; /* meta.profiles names, NULL-terminated */
        bool eab_required;       /* meta.externalAccountRequired */

        /* Behaviour. Ordinals count from 1; 0 means never. */
        unsigned bad_nonce_at[8];           /* signed-request ordinals answered badNonce */
        unsigned bad_nonce_always;          /* from this signed-request ordinal on: badNonce */
        bool nonce_less_new_nonce;          /* HEAD newNonce answers without Replay-Nonce */
        bool nonce_on_get;                  /* GET answers carry a Replay-Nonce too */
        bool dir_without_new_order;         /* the directory lacks newOrder */
        unsigned new_order_404;             /* newOrder answers 404 this many times */
        unsigned authz_pending_polls;       /* an authorization stays pending for this many polls */
        unsigned order_processing_polls;    /* the order stays processing for this many polls */
        const char *retry_after;            /* Retry-After on pending/processing; NULL: none */
        int retry_after_date_s;             /* > 0: Retry-After as an HTTP-date, clock + this */
        bool rate_limited;                  /* newOrder answers 429 rateLimited */
        bool invalid_challenge;             /* validation fails with incorrectResponse */
        int replaces_reject;                /* 400 (malformed) or 409 (alreadyReplaced) */
        unsigned forget_account_at;         /* signed-request ordinal: accountDoesNotExist */
        unsigned busy_at;                   /* request ordinal answered 503, Retry-After: 0 */
        unsigned hold_at;                   /* request ordinal never answered */
        const char *hold_prefix;            /* the first request to a path with this prefix: held */
        unsigned transport_error_at;        /* request ordinal failing with transport_error */
        const char *transport_error_prefix; /* the first request to such a path: likewise */
        int transport_error;
        unsigned mutate_at; /* request ordinal whose answer is mutated */
        enum fake_mutation mutation;
        unsigned mutate_member;    /* FAKE_MUT_MEMBER: which member */
        unsigned mutate_value;     /* 0 null, 1 integer, 2 string, 3 array, 4 object, 5 huge */
        bool mutated;              /* the mutation was applied */
        bool finalize_not_ready;   /* the first finalize answers 403 orderNotReady */
        bool new_order_ready;      /* newOrder answers an order whose authorizations are valid */
        bool cert_wrong_key;       /* issue the certificate for another key */
        bool cert_missing_name;    /* issue it without the last name */
        bool cert_bad_point;       /* issue it with a public key that does not decode */
        bool no_http01;            /* offer dns-01 only */
        const char *ari_window[2]; /* suggestedWindow start/end (RFC 3339) */

        /* What happened. */
        unsigned n_requests, n_signed, n_cancelled, n_held, n_transport_errors;
        unsigned n_dir, n_nonce, n_new_account, n_new_order, n_challenge_posts, n_authz_polls,
                n_order_polls, n_finalize, n_cert, n_ari;
        char *new_order_profile;  /* "profile" of the last newOrder, or NULL */
        char *new_order_replaces; /* "replaces" of the last newOrder, or NULL */
        unsigned new_orders_with_replaces;
        char *errors[FAKE_MAX_ERRORS]; /* what the client did wrong */
        unsigned n_errors;
        uint64_t poll_times[FAKE_MAX_POLLS]; /* loop ms of every authz/order poll */
        unsigned n_poll_times;
        char *issued_cert_id; /* ARI ID of the last certificate issued */
        char *account_url;    /* the registered account, NULL when forgotten */
        unsigned accounts;    /* accounts created */

        /* Published challenges (the test's hooks call fake_publish/unpublish). */
        struct fake_published pub[FAKE_MAX_PUB];
        unsigned n_pub, max_pub;
        unsigned n_pub_at_finalize; /* challenges still published when finalize came */

        struct fake_private *priv;
};

extern const struct acme_http_ops fake_acme_ops;

struct fake_acme *fake_acme_new(uv_loop_t *loop, const struct acme_key *account_key,
                                int64_t *clock);
/* Closes its timer: run the loop afterwards. */
void fake_acme_free(struct fake_acme *f);

int fake_publish(struct fake_acme *f, const struct acme_challenge *ch);
void fake_unpublish(struct fake_acme *f, const struct acme_challenge *ch);
/* The expected dns-01 value and thumbprint, computed independently of
 * acme/jws.c (from the key's public point with BoringSSL). */
const char *fake_thumbprint(const struct fake_acme *f);
