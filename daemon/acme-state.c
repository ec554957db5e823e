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
 * Backoff state (state.json): survives restarts so that a failing name
 * does not hit the server again at every start.
 * ====================================================================== */

static void on_save_timer(uv_timer_t *t)
{
        struct gw_acme *m = t->data;
        json_t *o = json_object();
        size_t state = 0;
        const char *key;
        char *text;
        void *v;
        int r = -ENOMEM;

        m->save_pending = false;
        if (!o)
                goto fail;
        while (hashmap_iterate(m->certs, &state, &key, &v)) {
                const struct mcert *c = v;
                json_t *e;

                if (c->backoff.failures == 0 && c->ari_next == 0)
                        continue;
                e = json_pack("{s:I, s:I, s:s?, s:I, s:I}", "failures",
                              (json_int_t)c->backoff.failures, "next_attempt",
                              (json_int_t)c->backoff.next, "last_error", c->last_error,
                              "last_error_at", (json_int_t)c->last_error_at, "ari_next",
                              (json_int_t)c->ari_next);
                if (!e || json_object_set_new(o, key, e) < 0)
                        goto fail;
        }
        text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(o);
        o = NULL;
        if (!text)
                goto fail;
        r = write_file_atomic(m->dir, "state.json", text, strlen(text), 0600);
        free(text);
        if (r >= 0)
                return;
fail:
        json_decref(o);
        log_warning_errno(r, "Failed to save the ACME backoff state to %s: %m", m->state_path);
}

/* Write state.json within @ms, or when an earlier write is already due. */
void gw_acme__save_within(struct gw_acme *m, uint64_t ms)
{
        if (!m->timer_init || (m->save_pending && uv_timer_get_due_in(&m->save_timer) <= ms))
                return;
        m->save_pending = true;
        uv_timer_start(&m->save_timer, on_save_timer, ms, 0);
}

void gw_acme__save_soon(struct gw_acme *m)
{
        gw_acme__save_within(m, STATE_SAVE_MS);
}

void gw_acme__load_state(struct gw_acme *m)
{
        int64_t now = gw_acme__now();
        _cleanup_free_ char *text = NULL;
        json_t *o, *v;
        const char *key;
        size_t len;
        int r;

        r = read_file_full(m->state_path, STATE_FILE_MAX, &text, &len);
        if (r == -ENOENT)
                return;
        if (r < 0) {
                log_warning_errno(r, "Failed to read %s (backoff state starts afresh): %m",
                                  m->state_path);
                return;
        }
        o = json_loadb(text, len, 0, NULL);
        if (!json_is_object(o)) {
                _cleanup_free_ char *aside = NULL;

                json_decref(o);
                /* Kept for a look; the next save writes a new one. */
                if (asprintf(&aside, "%s.corrupt-%lld", m->state_path, (long long)now) >= 0 &&
                    rename(m->state_path, aside) >= 0)
                        log_warning("%s is not a JSON object; moved aside to %s, the backoff "
                                    "state starts afresh",
                                    m->state_path, aside);
                else
                        log_warning("%s is not a JSON object; the backoff state starts afresh",
                                    m->state_path);
                return;
        }
        json_object_foreach(o, key, v)
        {
                struct mcert *c = gw_acme__get(m, key);
                json_int_t failures = 0, next = 0, at = 0, ari = 0;
                json_t *jerr = NULL;
                const char *err;

                /* "last_error" is null for a certificate without one (most
                 * of them): "s" would refuse the entry, ARI times and all. */
                if (!c || c->refused ||
                    json_unpack(v, "{s?I, s?I, s?o, s?I, s?I}", "failures", &failures,
                                "next_attempt", &next, "last_error", &jerr, "last_error_at", &at,
                                "ari_next", &ari) < 0)
                        continue;
                err = json_string_value(jerr);
                c->backoff.failures = failures > 0 && failures < 1000 ? (unsigned)failures : 0;
                /* Nothing further ahead than the scheduler ever sets (a
                 * Retry-After is honoured up to 7 days, ARI re-checked at
                 * least daily): a damaged value must not stop a name's
                 * orders for good (or overflow the timer's milliseconds). */
                c->backoff.next = MAX(MIN(next, now + ACME_SCHED_RETRY_AFTER_MAX), 0);
                c->last_error_at = at;
                c->ari_next = MAX(MIN(ari, now + MAX(ARI_OFF_SEC, ACME_SCHED_ARI_MAX)), 0);
                if (err && !(c->last_error = strndup(err, ERROR_TEXT_MAX)))
                        continue;
        }
        json_decref(o);
}

void gw_acme__save_now(struct gw_acme *m)
{
        if (!m->save_pending)
                return;
        uv_timer_stop(&m->save_timer);
        on_save_timer(&m->save_timer);
}
