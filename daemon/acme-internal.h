/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The certificate manager's shared parts (daemon/acme*.c): its types and
 * the functions one of its files gives the others. acme.c decides (which
 * names, orders, the scheduling pass, lifecycle); acme-client.c holds the
 * account and the ACME client; acme-state.c the backoff state file;
 * acme-tokens.c the HTTP-01 token store; acme-report.c what the operator
 * sees. Everything but the token store runs on the daemon's loop thread. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "acme/client.h"
#include "acme/schedule.h"

struct gw_daemon;
struct gw_acme_tokens;
struct resolve_req;
struct strbuf;

#define ORDERS_MAX     4    /* orders in flight at once (rate limits, memory) */
#define TOKENS_MAX     256  /* HTTP-01 challenges installed at once */
#define STATE_SAVE_MS  5000 /* backoff state written at most this often */
#define STATE_FILE_MAX (64u << 20)
#define ERROR_TEXT_MAX 512   /* bytes of a problem kept per certificate */
#define ARI_OFF_SEC    86400 /* after "no renewalInfo": ask the directory again in a day */
#define ARI_SAVE_SEC   3600  /* state.json written this late when only ARI times changed */
#define PASS_MIN_MS    1000  /* timer granularity for future events */
#define PASS_DELAY_MS  10    /* from a change to its scheduling pass */

/* ======================================================================
 * Managed certificates
 * ====================================================================== */

enum mcert_state {
        MC_SELF_SIGNED, /* no issued certificate, no order yet (or ACME off) */
        MC_PENDING,     /* first order in flight */
        MC_VALID,       /* issued and not due */
        MC_RENEWING,    /* issued, renewal order in flight */
        MC_FAILED,      /* the last order failed; the next attempt is scheduled */
        _MC_STATE_MAX,
};

extern const char *const gw_acme__state_names[_MC_STATE_MAX];

struct mcert {
        struct gw_acme *m;
        char *key;      /* "*.d" or the FQDN, lower-case: the hashmap key */
        char *names[2]; /* what the order asks for: [key] or ["*.d", "d"] */
        size_t n_names;
        enum acme_challenge_type type; /* http-01 for an FQDN, dns-01 for a wildcard */
        unsigned refs;                 /* terminated workloads served with it */
        uint64_t seed;                 /* spreads this certificate's times */

        bool has_cert;      /* an issued, unexpired certificate is stored */
        int64_t not_before; /* its validity */
        int64_t not_after;
        char *issuer;      /* short printable issuer */
        char *ari_id;      /* ARI certificate ID, or NULL */
        int64_t renew_at;  /* when the renewal order is due */
        int64_t ari_next;  /* when to ask the server's renewalInfo again (0: now) */
        bool ari_window;   /* renew_at comes from an ARI window */
        int64_t issued_at; /* when this process installed it (0: loaded) */

        struct acme_sched_backoff backoff; /* failed orders in a row, and when to try again */
        char *last_error;                  /* "<type>: <detail>" of the last failure, or NULL */
        int64_t last_error_at;

        struct acme_order *order; /* in flight */
        struct acme_ari_req *ari; /* in flight */
        bool order_is_renewal;    /* the order replaces a valid certificate */
        bool refused;             /* never ordered: the store could not keep it (last_error) */
        const char *held; /* gw_acme__challenge_blocked()'s reason last logged (static), or NULL */
        char *dns_values[2]; /* dns-01 values installed for the order */
};

struct gw_acme {
        struct gw_daemon *d;
        struct hashmap *certs; /* key -> struct mcert */
        char *dir;             /* <root>/acme */
        char *state_path;      /* <dir>/state.json */

        struct acme_key *account_key;
        char *account_url; /* for account_dir */
        char *account_dir; /* the directory URL the account belongs to */
        struct acme_http *http;
        struct acme_client *client;
        char *client_sig;             /* directory|email|ca_file the client was made for */
        struct resolve_req *resolves; /* the HTTPS client's lookups in flight */

        uv_timer_t timer;      /* next scheduling pass */
        uv_timer_t save_timer; /* debounced state.json write */
        bool timer_init, save_pending, pass_queued, stopped;
        unsigned in_flight;   /* orders */
        int64_t no_ari_until; /* the directory has no renewalInfo: not before this */

        /* Counters for Prometheus. */
        uint64_t orders_valid, orders_invalid, orders_rate_limited, orders_error;
        uint64_t ari_fetches, ari_errors;
};

/* acme.c */
int64_t gw_acme__now(void);
const char *gw_acme__fmt_time(int64_t t, char buf[static 32]);
enum mcert_state gw_acme__state(const struct mcert *c);
bool gw_acme__on(const struct gw_daemon *d);
void gw_acme__queue_pass(struct gw_acme *m);
struct mcert *gw_acme__get(struct gw_acme *m, const char *key);
/* When @c next needs something (INT64_MAX: nothing); *ret_ari: an ARI check. */
int64_t gw_acme__due(const struct gw_acme *m, const struct mcert *c, bool *ret_ari);
/* Why @c's challenge cannot be answered now (NULL: it can); *ret_wait:
 * it will be soon (a listener opening), else the configuration holds it. */
const char *gw_acme__challenge_blocked(const struct gw_acme *m, const struct mcert *c,
                                       bool *ret_wait);

/* acme-state.c: <root>/acme/state.json */
void gw_acme__load_state(struct gw_acme *m);
/* Write within @ms (an earlier pending write stays earlier). */
void gw_acme__save_within(struct gw_acme *m, uint64_t ms);
void gw_acme__save_soon(struct gw_acme *m);
/* Write now if a write is pending (at stop). */
void gw_acme__save_now(struct gw_acme *m);

/* acme-client.c: the account key and URL, the ACME client and its resolver */
int gw_acme__load_account(struct gw_acme *m);
int gw_acme__client_open(struct gw_acme *m);
void gw_acme__client_close(struct gw_acme *m);
/* The resolver was replaced: ask the new one what the old one was asked. */
void gw_acme__resolves_retry(struct gw_acme *m);

/* acme-tokens.c: add/remove an HTTP-01 answer (loop thread; the engine's
 * workers read them with gw_acme_token_lookup()). */
int gw_acme__tokens_add(struct gw_acme_tokens *t, const char *host, const char *token,
                        const char *keyauth);
void gw_acme__tokens_remove(struct gw_acme_tokens *t, const char *host, const char *token);
