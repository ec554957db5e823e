/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include <openssl/mem.h>

#include "acme/cert.h"
#include "acme/client.h"
#include "acme/http.h"
#include "acme/jws.h"
#include "acme/schedule.h"
#include "common/fileio.h"
#include "common/hashmap.h"
#include "common/list.h"
#include "common/log.h"
#include "common/macros.h"
#include "common/siphash.h"
#include "common/strbuf.h"
#include "daemon/acme-internal.h"
#include "daemon/acme.h"
#include "daemon/certs.h"
#include "daemon/daemon.h"
#include "daemon/dns.h"
#include "daemon/dnsd.h"
#include "gw-version.h"
#include "proto/codec.h"
#include "workloads/workloads.h"

/* ======================================================================
 * HTTP-01 token store (the only part used from other threads)
 * ====================================================================== */

struct token {
        char *host;    /* identifier, lower-case */
        char *token;   /* as the server gave it */
        char *keyauth; /* the response body */
};

struct gw_acme_tokens {
        pthread_mutex_t lock; /* guards n and entries */
        size_t n;
        struct token entries[TOKENS_MAX];
};

int gw_acme_tokens_new(struct gw_acme_tokens **ret)
{
        struct gw_acme_tokens *t = calloc(1, sizeof(*t));

        if (!t)
                return -ENOMEM;
        pthread_mutex_init(&t->lock, NULL);
        *ret = t;
        return 0;
}

static void token_done(struct token *e)
{
        free(e->host);
        free(e->token);
        if (e->keyauth)
                OPENSSL_cleanse(e->keyauth, strlen(e->keyauth));
        free(e->keyauth);
        *e = (struct token){};
}

struct gw_acme_tokens *gw_acme_tokens_free(struct gw_acme_tokens *t)
{
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n; i++)
                token_done(&t->entries[i]);
        pthread_mutex_destroy(&t->lock);
        free(t);
        return NULL;
}

int gw_acme__tokens_add(struct gw_acme_tokens *t, const char *host, const char *token,
                        const char *keyauth)
{
        struct token e = {strdup(host), strdup(token), strdup(keyauth)};
        int r = 0;

        if (!e.host || !e.token || !e.keyauth) {
                token_done(&e);
                return -ENOMEM;
        }
        for (char *p = e.host; *p; p++)
                *p = (char)ascii_tolower((unsigned char)*p);
        pthread_mutex_lock(&t->lock);
        if (t->n < TOKENS_MAX)
                t->entries[t->n++] = e;
        else
                r = -ENOSPC;
        pthread_mutex_unlock(&t->lock);
        if (r < 0)
                token_done(&e);
        return r;
}

void gw_acme__tokens_remove(struct gw_acme_tokens *t, const char *host, const char *token)
{
        pthread_mutex_lock(&t->lock);
        for (size_t i = 0; i < t->n; i++)
                if (strcasecmp(t->entries[i].host, host) == 0 &&
                    streq(t->entries[i].token, token)) {
                        token_done(&t->entries[i]);
                        t->entries[i] = t->entries[--t->n];
                        t->entries[t->n] = (struct token){};
                        break;
                }
        pthread_mutex_unlock(&t->lock);
}

int gw_acme_token_lookup(void *ud, const char *host, const char *token, char *out, size_t size)
{
        struct gw_acme_tokens *t = ud;
        int r = -ENOENT;

        if (!t)
                return -ENOENT;
        pthread_mutex_lock(&t->lock);
        for (size_t i = 0; i < t->n; i++) {
                const struct token *e = &t->entries[i];
                size_t n;

                /* The token must have been given for this very name: a
                 * token of one identifier is not served under another. */
                if (strcasecmp(e->host, host) != 0 || !streq(e->token, token))
                        continue;
                n = strlen(e->keyauth);
                if (n >= size) {
                        r = -ENOBUFS;
                        break;
                }
                memcpy(out, e->keyauth, n + 1);
                r = (int)n;
                break;
        }
        pthread_mutex_unlock(&t->lock);
        return r;
}
