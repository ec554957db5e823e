/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP/2 server: the connection (nghttp2 session, callbacks, the step
 * driver, the worker's view). Streams: h2-stream.c. */
#include "proxy/h2-server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/macros.h"
#include "proxy/h2-internal.h"
#include "proxy/routes.h"

void h2__glitch(struct h2c *c)
{
        if (++c->glitches <= H2_GLITCH_MAX || c->calm)
                return;
        log_debug("proxy: h2 %p: too many protocol errors", (void *)c);
        c->calm = true;
        (void)nghttp2_session_terminate_session(c->ng, NGHTTP2_ENHANCE_YOUR_CALM);
}

/* ---- nghttp2 callbacks: record, never close ---- */

static int on_begin_frame(nghttp2_session *ng, const nghttp2_frame_hd *hd, void *ud)
{
        struct h2c *c = ud;
        struct h2s *st = h2__stream_of(c, hd->stream_id);

        (void)ng;
        if (st)
                st->req_bytes += H2_FRAME_HD + hd->length;
        else if (hd->type == NGHTTP2_HEADERS)
                c->hdr_pending = H2_FRAME_HD + (uint32_t)hd->length;
        return 0;
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *ud)
{
        struct h2c *c = ud;
        struct h2s *st;

        if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
                return 0;
        st = h2__stream_new(c, frame->hd.stream_id);
        if (!st)
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        st->req_bytes = c->hdr_pending;
        c->hdr_pending = 0;
        nghttp2_session_set_stream_user_data(ng, st->id, st);
        /* The header block must end within request_timeout_ms. */
        ev_deadline(c->s->ev, &st->h, PROXY_TQ_REQUEST);
        if (++c->n_requests == H2_MAX_REQUESTS)
                /* This one is served; later streams are refused. */
                (void)nghttp2_submit_goaway(ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR, NULL,
                                            0);
        return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *ud)
{
        struct h2c *c = ud;
        struct h2s *st = h2__stream_of(c, frame->hd.stream_id);

        (void)ng;
        if (!st)
                return 0;
        if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_HEADERS)
                st->trailers = true;
        if ((frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) &&
            (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
                st->req_eof = true;
        st->dirty = true;
        if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST &&
            st->state == ST_HEADERS) {
                ev_deadline(c->s->ev, &st->h, EV_TQ_NONE);
                h2__stream_dispatch(st);
        }
        return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *ud)
{
        struct h2c *c = ud;
        struct h2s *st = h2__stream_of(c, id);

        (void)flags;
        if (!st || (st->state != ST_CONNECT && st->state != ST_PROXY) || st->ex.req_sent_all ||
            (st->resp_eof && !st->ex.up)) {
                /* Nobody takes these bytes: give the window back now. */
                (void)nghttp2_session_consume(ng, id, len);
                return 0;
        }
        if (!st->body) {
                st->body = malloc(H2_STREAM_WINDOW);
                if (!st->body)
                        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
        /* Flow control: unconsumed bytes never exceed the stream window. */
        if (len > H2_STREAM_WINDOW - st->blen)
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        memcpy(st->body + st->blen, data, len);
        st->blen += (uint32_t)len;
        st->progress = true;
        st->dirty = true;
        return 0;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *frame, void *ud)
{
        struct h2c *c = ud;
        struct h2s *st = h2__stream_of(c, frame->hd.stream_id);

        if (frame->hd.type == NGHTTP2_RST_STREAM &&
            frame->rst_stream.error_code != NGHTTP2_NO_ERROR)
                h2__glitch(c);
        if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR)
                /* A connection error (ours: glitches; nghttp2's: rapid
                 * reset, a protocol error): the close is the client's. */
                c->proto_err = true;
        if (!st)
                return 0;
        st->resp_bytes += H2_FRAME_HD + frame->hd.length;
        if (frame->hd.type == NGHTTP2_DATA)
                st->progress = true;
        if ((frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) &&
            (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && !st->req_eof)
                /* Answered before the request ended: the client may stop
                 * sending (RFC 9113 §8.1). */
                (void)nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
        return 0;
}

static int on_invalid_frame(nghttp2_session *ng, const nghttp2_frame *frame, int err, void *ud)
{
        (void)ng;
        (void)frame;
        (void)err;
        h2__glitch(ud);
        return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
        struct h2c *c = ud;
        struct h2s *st = h2__stream_of(c, id);

        (void)code;
        if (!st)
                return 0;
        nghttp2_session_set_stream_user_data(ng, id, NULL);
        h2__stream_finish(st, true);
        return 0;
}

/* ---- the connection ---- */

static void on_h2_freed(void *data)
{
        struct h2c *c = data;

        proxy_route_unref(c->sni_route);
        free(c->obuf);
        proxy_conn_freed(&c->base, c->reason);
        free(c);
}

/* Lend the socket its TLS buffers while the connection is busy: one read()
 * serves several records, frames are gathered into one record. */
static void tls_lend(struct h2c *c)
{
        if (c->tb)
                return;
        c->tb = malloc(sizeof(*c->tb) + SOCK_TLS_RIN_CAP + SOCK_TLS_TX_CAP);
        if (!c->tb)
                return; /* it works without them */
        c->tb->rin = (uint8_t *)(c->tb + 1);
        c->tb->tx = c->tb->rin + SOCK_TLS_RIN_CAP;
        sock_tls_lend(c->s, c->tb);
}

/* Take them back once idle (or closing): nothing read ahead, nothing to
 * write again. */
static void tls_unlend(struct h2c *c, bool closing)
{
        if (!c->tb)
                return;
        if (!closing &&
            (c->n_streams > 0 || c->oq.left > 0 || sock_buffered(c->s) || c->tb->tx_len > 0))
                return;
        sock_tls_lend(c->s, NULL);
        c->tb = mfree(c->tb);
}

static void h2_end_session(struct h2c *c)
{
        while (c->streams)
                h2__stream_finish(c->streams, false);
        nghttp2_session_del(c->ng);
        c->ng = NULL;
        tls_unlend(c, true);
}

static void h2_close(struct h2c *c, enum proxy_close_reason reason)
{
        if (c->closing)
                return;
        log_debug("proxy: h2 %p: closing: %s", (void *)c, proxy_close_reason_str(reason));
        c->closing = true;
        c->reason = (uint8_t)reason;
        h2_end_session(c);
        sock_close(c->s,
                   reason == PROXY_CLOSE_DONE || reason == PROXY_CLOSE_KEEPALIVE_DONE ||
                           reason == PROXY_CLOSE_IDLE_TIMEOUT || reason == PROXY_CLOSE_STOP,
                   on_h2_freed);
}

/* The session ended with everything written (GOAWAY last): half-close and
 * wait (bounded) for the client's EOF. Frames it sent meanwhile (a
 * WINDOW_UPDATE, a PING) are unread; closing now would make the kernel
 * reset the connection and drop the tail of the last response. */
static void h2_linger(struct h2c *c, enum proxy_close_reason reason)
{
        if (c->closing || c->lingering)
                return;
        if (c->s->eof || c->s->err || c->oq.left > 0)
                return h2_close(c, reason);
        log_debug("proxy: h2 %p: lingering: %s", (void *)c, proxy_close_reason_str(reason));
        h2_end_session(c);
        sock_shutdown(c->s);
        c->lingering = true;
        c->reason = (uint8_t)reason;
        c->linger_bytes = 0;
        sock_deadline(c->s, PROXY_TQ_LINGER);
        if (sock_want(c->s, true) < 0)
                h2_close(c, reason);
}

static void step_linger(struct h2c *c)
{
        if (c->ev_timeout || sock_linger(c->s, c->base.w->scratch, PROXY_SCRATCH_SIZE,
                                         &c->linger_bytes, PROXY_LINGER_MAX) == 0)
                h2_close(c, (enum proxy_close_reason)c->reason);
}

/* Let nghttp2 produce frames while the socket takes them. Returns 0
 * (wr_blocked set if the socket is full) or -errno. */
static int h2_send(struct h2c *c)
{
        for (;;) {
                size_t before;
                int r;

                if (c->oq.left == 0) {
                        c->olen = 0;
                        c->pend = NULL;
                        while (!c->pend && c->olen < H2_OUT_CAP) {
                                const uint8_t *p;
                                ssize_t n = nghttp2_session_mem_send(c->ng, &p);

                                if (n < 0)
                                        return -EPROTO;
                                if (n == 0)
                                        break;
                                if (!c->obuf) {
                                        c->obuf = malloc(H2_OUT_CAP);
                                        if (!c->obuf)
                                                return -ENOMEM;
                                }
                                if ((size_t)n <= H2_OUT_CAP - c->olen) {
                                        memcpy(c->obuf + c->olen, p, (size_t)n);
                                        c->olen += (uint32_t)n;
                                } else {
                                        c->pend = p;
                                        c->pend_len = (size_t)n;
                                }
                        }
                        iovq_reset(&c->oq);
                        iovq_add(&c->oq, c->obuf, c->olen);
                        if (c->pend)
                                iovq_add(&c->oq, c->pend, c->pend_len);
                        if (c->oq.left == 0) {
                                if (c->n_streams == 0)
                                        c->obuf = mfree(c->obuf);
                                return 0;
                        }
                }
                before = c->oq.left;
                r = sock_write(c->s, &c->oq, NULL);
                if (r < 0)
                        return r;
                if (c->oq.left < before)
                        c->progress = true;
                if (c->oq.left > 0)
                        return 0;
        }
}

/* Read what the socket has and feed nghttp2. Returns 1 when bytes came,
 * 0 when none, -1 after closing the connection. */
static int h2_recv(struct h2c *c)
{
        uint8_t *buf = c->base.w->scratch;
        int got = 0;

        for (unsigned i = 0; i < H2_READS_PER_STEP; i++) {
                ssize_t k, rv;

                /* A client that does not read what we send is not read
                 * either (its PINGs and SETTINGS wait in the kernel). */
                if (c->s->wr_blocked || !sock_can_read(c->s) || !nghttp2_session_want_read(c->ng))
                        break;
                k = sock_read(c->s, buf, PROXY_SCRATCH_SIZE);
                if (k == -EAGAIN)
                        break;
                if (k == 0) {
                        h2_close(c, c->n_streams ? PROXY_CLOSE_CLIENT_EOF
                                                 : PROXY_CLOSE_KEEPALIVE_DONE);
                        return -1;
                }
                if (k < 0) {
                        c->s->err = (int)k;
                        h2_close(c, PROXY_CLOSE_CLIENT_ERROR);
                        return -1;
                }
                c->progress = true;
                got = 1;
                rv = nghttp2_session_mem_recv(c->ng, buf, (size_t)k);
                if (rv < 0 || c->fatal) {
                        log_debug("proxy: h2 %p: %s", (void *)c,
                                  rv < 0 ? nghttp2_strerror((int)rv) : "deadline");
                        if (c->fatal) {
                                h2_close(c, (enum proxy_close_reason)c->reason);
                                return -1;
                        }
                        /* A protocol error left a GOAWAY queued: try it. */
                        (void)h2_send(c);
                        h2_linger(c, PROXY_CLOSE_BAD_REQUEST);
                        return -1;
                }
        }
        return got;
}

void h2__step(struct h2c *c)
{
        unsigned tq;
        int r;

        if (c->closing || c->lingering)
                return;
        c->woken = false;
        tls_lend(c);
        for (;;) {
                c->progress = false;
                if (c->ev_timeout) {
                        c->ev_timeout = false;
                        if (c->n_streams == 0) {
                                (void)nghttp2_submit_goaway(
                                        c->ng, NGHTTP2_FLAG_NONE,
                                        nghttp2_session_get_last_proc_stream_id(c->ng),
                                        NGHTTP2_NO_ERROR, NULL, 0);
                                (void)h2_send(c);
                                return h2_linger(c, PROXY_CLOSE_KEEPALIVE_DONE);
                        }
                }
                if (c->s->err)
                        return h2_close(c, PROXY_CLOSE_CLIENT_ERROR);
                if (h2_recv(c) < 0)
                        return;
                for (struct h2s *st = c->streams; st; st = st->next)
                        if (st->dirty && h2__stream_step(st))
                                c->progress = true;
                if (c->fatal)
                        return h2_close(c, (enum proxy_close_reason)c->reason);
                r = h2_send(c);
                if (r < 0) {
                        c->s->err = r;
                        return h2_close(c, r == -EPROTO ? PROXY_CLOSE_BAD_REQUEST
                                                        : PROXY_CLOSE_CLIENT_ERROR);
                }
                if (!c->progress)
                        break;
        }
        if (!nghttp2_session_want_read(c->ng) && !nghttp2_session_want_write(c->ng) &&
            c->oq.left == 0)
                return h2_linger(c, c->proto_err ? PROXY_CLOSE_BAD_REQUEST
                                                 : PROXY_CLOSE_KEEPALIVE_DONE);

        /* Deadlines: between streams the keep-alive one; while streams are
         * open each has its own, and the socket none. */
        tq = c->n_streams ? EV_TQ_NONE : PROXY_TQ_KEEPALIVE;
        if (tq != c->s->h.tq || c->timer_reset)
                sock_deadline(c->s, tq);
        c->timer_reset = false;
        c->progress = false;
        for (struct h2s *st = c->streams; st; st = st->next)
                if (h2__stream_poll(st) < 0)
                        h2__stream_reset(st, NGHTTP2_INTERNAL_ERROR);
        tls_unlend(c, false);
        r = sock_want(c->s, !c->s->wr_blocked && nghttp2_session_want_read(c->ng));
        if (r < 0)
                h2_close(c, PROXY_CLOSE_CLIENT_ERROR);
}

static void on_h2_event(struct sock *s, unsigned events)
{
        struct h2c *c = s->data;

        if (c->closing)
                return;
        /* A stream's backend woke us during the batch (on_exch_wake), and
         * no step since took care of it. */
        if (events == EV_DEFER && (!c->woken || c->lingering))
                return;
        if (events & EV_TIMEOUT)
                c->ev_timeout = true;
        if (c->lingering)
                return step_linger(c);
        h2__step(c);
}

/* ---- the worker's view: route changes and stop ---- */

static void on_routes_changed(struct proxy_conn *pc)
{
        struct h2c *c = container_of(pc, struct h2c, base);
        const struct proxy_routes *snap = c->base.w->snap;

        if (c->closing || c->lingering)
                return;
        if (!proxy_route_still_current(snap, c->sni_route))
                return h2_close(c, PROXY_CLOSE_ROUTE_REMOVED);
        for (struct h2s *st = c->streams; st; st = st->next)
                if (st->route && !proxy_route_still_current(snap, st->route))
                        h2__stream_reset(st, NGHTTP2_REFUSED_STREAM);
        h2__step(c);
}

static void on_stop(struct proxy_conn *pc, bool now)
{
        struct h2c *c = container_of(pc, struct h2c, base);

        if (c->closing)
                return;
        if (now || c->lingering)
                return h2_close(c, PROXY_CLOSE_STOP);
        /* Streams begun finish; no new ones (RFC 9113 §6.8). */
        (void)nghttp2_submit_goaway(c->ng, NGHTTP2_FLAG_NONE,
                                    nghttp2_session_get_last_proc_stream_id(c->ng),
                                    NGHTTP2_NO_ERROR, NULL, 0);
        if (c->n_streams == 0) {
                (void)h2_send(c);
                return h2_close(c, PROXY_CLOSE_STOP);
        }
        h2__step(c);
}

static const struct proxy_conn_ops h2_ops = {
        .name = "h2",
        .routes_changed = on_routes_changed,
        .stop = on_stop,
};

/* ---- public API ---- */

static int h2_session_new(struct h2c *c)
{
        const struct proxy_config *cfg = c->base.w->cfg;
        nghttp2_session_callbacks *cb;
        nghttp2_option *opt;
        nghttp2_settings_entry iv[] = {
                {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_MAX_STREAMS},
                {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_STREAM_WINDOW},
                {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, cfg->max_head},
                {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        };
        int r;

        if (nghttp2_session_callbacks_new(&cb) != 0)
                return -ENOMEM;
        nghttp2_session_callbacks_set_on_begin_frame_callback(cb, on_begin_frame);
        nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
        nghttp2_session_callbacks_set_on_header_callback(cb, h2__on_header);
        nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
        nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
        nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cb, on_invalid_frame);
        nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
        if (nghttp2_option_new(&opt) != 0) {
                nghttp2_session_callbacks_del(cb);
                return -ENOMEM;
        }
        /* Request DATA is acknowledged only once the backend took it. */
        nghttp2_option_set_no_auto_window_update(opt, 1);
        nghttp2_option_set_max_outbound_ack(opt, H2_MAX_OUTBOUND_ACK);
        nghttp2_option_set_max_settings(opt, H2_MAX_SETTINGS);
        nghttp2_option_set_stream_reset_rate_limit(opt, H2_RESET_BURST, H2_RESET_RATE);
        /* A header list of max_head bytes fits in HEADERS and one
         * CONTINUATION of the default frame size; two more for clients
         * that split differently (nghttp2's own default is 8). */
        nghttp2_option_set_max_continuations(opt, cfg->max_head / 16384 + 2);
        r = nghttp2_session_server_new2(&c->ng, cb, c, opt);
        nghttp2_option_del(opt);
        nghttp2_session_callbacks_del(cb);
        if (r != 0)
                return -ENOMEM;
        if (nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, ELEMENTSOF(iv)) != 0 ||
            nghttp2_session_set_local_window_size(c->ng, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW) !=
                    0) {
                nghttp2_session_del(TAKE_PTR(c->ng));
                return -ENOMEM;
        }
        return 0;
}

int h2_conn_start(struct proxy_worker *w, struct sock *s, struct proxy_route *sni_route,
                  struct proxy_conn *from)
{
        const struct proxy_config *cfg = w->cfg;
        struct h2c *c;

        assert(w && s && sni_route && from);
        if (w->stopping)
                return -ESHUTDOWN;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->base.w = w;
        c->s = s;
        /* Two more fields than a client may send: Host from :authority and
         * our framing. */
        c->req_limits = (struct proxy_h1_limits){.max_head = cfg->max_head + H2_HEAD_SLACK,
                                                 .max_headers = cfg->max_headers + 2,
                                                 .max_target = cfg->max_head};
        c->resp_limits = (struct proxy_h1_limits){.max_head = cfg->max_head,
                                                  .max_headers = cfg->max_headers,
                                                  .max_target = cfg->max_head};
        c->hb_cap = c->req_limits.max_head;
        c->hout_cap = cfg->max_head + H2_HEAD_SLACK + H2_HOUT_SLACK;
        c->uin_cap = cfg->max_head + H2_UIN_EXTRA;
        c->exch_env = (struct exch_env){
                .pool = &w->pool,
                .tq_connect = PROXY_TQ_CONNECT,
                .tq_upstream = PROXY_TQ_UPSTREAM,
                .limits = &c->resp_limits,
                .st_connects = &w->stats.upstream_connects,
                .st_reused = &w->stats.upstream_reused,
                .st_connect_errors = &w->stats.connect_errors,
        };
        if (h2_session_new(c) < 0) {
                free(c);
                return -ENOMEM;
        }
        c->sni_route = proxy_route_ref(sni_route);
        proxy_conn_switch(from, &c->base, &h2_ops);
        sock_set_cb(s, on_h2_event, c);
        /* The preface usually came with the handshake's last flight. */
        s->rd_ready = true;
        c->timer_reset = true;
        h2__step(c);
        return 0;
}
