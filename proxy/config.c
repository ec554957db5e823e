/* SPDX-License-Identifier: Apache-2.0 */
/* struct proxy_config: the bounds every field must keep, its defaults, and
 * the descriptor share of each worker. Every timeout and limit of the
 * engine is a field of that one struct, resolved here once. */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <sys/resource.h>

#include <uv.h>

#include "common/macros.h"
#include "proxy/tls-hello.h"
#include "proxy/worker.h"

#define DEFAULT_HANDSHAKE_MS 10000u
#define DEFAULT_CONNECT_MS   5000u
#define DEFAULT_IDLE_MS      300000u
#define DEFAULT_STOP_MS      30000u
#define DEFAULT_RELAY_BUF    16384u
#define MIN_RELAY_BUF        1024u
#define MAX_RELAY_BUF        (1u << 20)
#define MAX_WORKERS          1024u
#define DEFAULT_MAX_HEAD     16384u
#define MIN_MAX_HEAD         1024u
#define MAX_MAX_HEAD         (1u << 20)
#define DEFAULT_MAX_HEADERS  100u
#define MAX_MAX_HEADERS      4096u
#define DEFAULT_REQUEST_MS   30000u
#define DEFAULT_KEEPALIVE_MS 60000u
#define DEFAULT_UPSTREAM_MS  60000u
#define DEFAULT_POOL_IDLE_MS 30000u
#define DEFAULT_CHECK_MIN_MS 1000u
#define DEFAULT_CHECK_MAX_MS 10000u
#define MAX_CHECK_MS         3600000u
#define DEFAULT_PER_CLIENT   1024u
#define DEFAULT_CONN_RATE    256u
#define DEFAULT_BODY_MS      30000u
#define DEFAULT_BODY_RATE    256u
#define DEFAULT_SEND_MS      60000u
#define DEFAULT_SEND_RATE    256u
#define MAX_TIMEOUT_MS       (7ull * 24 * 3600 * 1000) /* a week: beyond, a typo */

static const char *const close_reason_names[_PROXY_CLOSE_MAX] = {
        [PROXY_CLOSE_DONE] = "done",
        [PROXY_CLOSE_CLIENT_EOF] = "client-eof",
        [PROXY_CLOSE_CLIENT_ERROR] = "client-error",
        [PROXY_CLOSE_UPSTREAM_ERROR] = "upstream-error",
        [PROXY_CLOSE_BAD_HELLO] = "bad-hello",
        [PROXY_CLOSE_HELLO_TIMEOUT] = "hello-timeout",
        [PROXY_CLOSE_NO_SNI] = "no-sni",
        [PROXY_CLOSE_UNKNOWN_SNI] = "unknown-sni",
        [PROXY_CLOSE_NO_TLS] = "no-tls",
        [PROXY_CLOSE_CONNECT_FAILED] = "connect-failed",
        [PROXY_CLOSE_IDLE_TIMEOUT] = "idle-timeout",
        [PROXY_CLOSE_ROUTE_REMOVED] = "route-removed",
        [PROXY_CLOSE_STOP] = "stop",
        [PROXY_CLOSE_NOMEM] = "nomem",
        [PROXY_CLOSE_TLS_HANDSHAKE] = "tls-handshake",
        [PROXY_CLOSE_BAD_REQUEST] = "bad-request",
        [PROXY_CLOSE_KEEPALIVE_DONE] = "keepalive-done",
        [PROXY_CLOSE_REQUEST_TIMEOUT] = "request-timeout",
        [PROXY_CLOSE_BAD_RESPONSE] = "bad-response",
        [PROXY_CLOSE_BODY_TOO_SLOW] = "body-too-slow",
        [PROXY_CLOSE_SEND_TOO_SLOW] = "send-too-slow",
};

static const char *const limit_reason_names[_PROXY_LIMIT_MAX] = {
        [PROXY_LIMIT_PER_CLIENT] = "per_client",
        [PROXY_LIMIT_RATE] = "rate",
        [PROXY_LIMIT_TOTAL] = "total",
};

const char *proxy_limit_reason_str(enum proxy_limit_reason r)
{
        if ((unsigned)r >= _PROXY_LIMIT_MAX)
                return NULL;
        return limit_reason_names[r];
}

const char *proxy_close_reason_str(enum proxy_close_reason r)
{
        if ((unsigned)r >= _PROXY_CLOSE_MAX)
                return NULL;
        return close_reason_names[r];
}

/* Resolve @c->max_fds (0: from RLIMIT_NOFILE) and @c->max_conns_per_worker
 * for @c->workers workers; the descriptors each worker's connections may
 * claim go to @ret_worker_fds (see proxy_worker_pool_room()). */
static int resolve_fds(struct proxy_config *c, unsigned *ret_worker_fds)
{
        unsigned share, worker_fds;

        if (!c->max_fds) {
                struct rlimit rl;
                uint64_t cur;

                if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                        return -errno;
                cur = rl.rlim_cur == RLIM_INFINITY ? UINT_MAX : MIN(rl.rlim_cur, UINT_MAX);
                c->max_fds = cur > PROXY_ENGINE_FD_RESERVE ? cur - PROXY_ENGINE_FD_RESERVE : 0;
        }
        share = c->max_fds / c->workers;
        if (share < PROXY_ENGINE_MIN_WORKER_FDS)
                return -EMFILE;
        worker_fds = share - PROXY_ENGINE_WORKER_FDS;
        if (!c->max_conns_per_worker || c->max_conns_per_worker > worker_fds / 2)
                c->max_conns_per_worker = worker_fds / 2;
        *ret_worker_fds = worker_fds;
        return 0;
}

/* The most max_connections may be. With several workers, one less than
 * their shares together: while the total is at its cap at least one worker
 * still has room to accept, and refuses at once (a worker at its own share
 * stops accepting instead, issue 10). With one worker, its share: at the
 * cap it stops accepting, and connections wait in the kernel's queue. */
static unsigned max_total(const struct proxy_config *c)
{
        uint64_t n = (uint64_t)c->workers * c->max_conns_per_worker;

        if (c->workers > 1)
                n--;
        return n > UINT_MAX - 1 ? UINT_MAX - 1 : (unsigned)n;
}

int proxy_config_resolve_live(const struct proxy_config *in, struct proxy_config *c)
{
        const uint64_t timeouts[] = {
                in->handshake_timeout_ms, in->connect_timeout_ms, in->idle_timeout_ms,
                in->stop_timeout_ms,      in->request_timeout_ms, in->keepalive_timeout_ms,
                in->upstream_timeout_ms,  in->body_timeout_ms,    in->send_timeout_ms,
        };

        for (unsigned i = 0; i < ELEMENTSOF(timeouts); i++)
                if (timeouts[i] > MAX_TIMEOUT_MS)
                        return -EINVAL;
        if (in->new_conns_per_sec > 1000000u && in->new_conns_per_sec != PROXY_LIMIT_OFF)
                return -EINVAL;
        c->handshake_timeout_ms = in->handshake_timeout_ms ?: DEFAULT_HANDSHAKE_MS;
        c->connect_timeout_ms = in->connect_timeout_ms ?: DEFAULT_CONNECT_MS;
        c->idle_timeout_ms = in->idle_timeout_ms ?: DEFAULT_IDLE_MS;
        c->stop_timeout_ms = in->stop_timeout_ms ?: DEFAULT_STOP_MS;
        c->request_timeout_ms = in->request_timeout_ms ?: DEFAULT_REQUEST_MS;
        c->keepalive_timeout_ms = in->keepalive_timeout_ms ?: DEFAULT_KEEPALIVE_MS;
        c->upstream_timeout_ms = in->upstream_timeout_ms ?: DEFAULT_UPSTREAM_MS;
        c->body_timeout_ms = in->body_timeout_ms ?: DEFAULT_BODY_MS;
        c->body_min_rate = in->body_min_rate ?: DEFAULT_BODY_RATE;
        c->send_timeout_ms = in->send_timeout_ms ?: DEFAULT_SEND_MS;
        c->send_min_rate = in->send_min_rate ?: DEFAULT_SEND_RATE;
        c->max_conns_per_client = in->max_conns_per_client ?: DEFAULT_PER_CLIENT;
        c->new_conns_per_sec = in->new_conns_per_sec ?: DEFAULT_CONN_RATE;
        c->max_connections = in->max_connections && in->max_connections < max_total(c)
                                     ? in->max_connections
                                     : max_total(c);
        return 0;
}

int proxy_config_resolve(const struct proxy_config *cfg, struct proxy_config *ret,
                         unsigned *ret_worker_fds)
{
        struct proxy_config c;
        unsigned n;
        int r;

        assert(cfg && ret && ret_worker_fds);
        c = *cfg;
        if (c.https_fd < 0 && c.http_fd < 0)
                return -EINVAL;
        if (c.hello_max > PROXY_TLS_HELLO_MAX_LIMIT || c.workers > MAX_WORKERS)
                return -EINVAL;
        if (c.relay_buf_size &&
            (c.relay_buf_size < MIN_RELAY_BUF || c.relay_buf_size > MAX_RELAY_BUF))
                return -EINVAL;
        if (c.max_head && (c.max_head < MIN_MAX_HEAD || c.max_head > MAX_MAX_HEAD))
                return -EINVAL;
        if (c.max_headers > MAX_MAX_HEADERS)
                return -EINVAL;
        if (!c.max_head)
                c.max_head = DEFAULT_MAX_HEAD;
        if (!c.max_headers)
                c.max_headers = DEFAULT_MAX_HEADERS;
        if (!c.request_timeout_ms)
                c.request_timeout_ms = DEFAULT_REQUEST_MS;
        if (!c.keepalive_timeout_ms)
                c.keepalive_timeout_ms = DEFAULT_KEEPALIVE_MS;
        if (!c.upstream_timeout_ms)
                c.upstream_timeout_ms = DEFAULT_UPSTREAM_MS;
        if (!c.upstream_idle_timeout_ms)
                c.upstream_idle_timeout_ms = DEFAULT_POOL_IDLE_MS;
        if (!c.hello_max)
                c.hello_max = PROXY_TLS_HELLO_MAX_DEFAULT;
        if (!c.relay_buf_size)
                c.relay_buf_size = DEFAULT_RELAY_BUF;
        if (!c.socket_factory)
                c.socket_factory = proxy_socket_factory_default;
        if (!c.backend_check_min_ms)
                c.backend_check_min_ms = DEFAULT_CHECK_MIN_MS;
        if (!c.backend_check_max_ms)
                c.backend_check_max_ms = MAX(DEFAULT_CHECK_MAX_MS, c.backend_check_min_ms);
        if (c.backend_check_min_ms > c.backend_check_max_ms ||
            c.backend_check_max_ms > MAX_CHECK_MS)
                return -EINVAL;

        n = c.workers ? c.workers : MIN(uv_available_parallelism(), MAX_WORKERS);
        if (n == 0)
                n = 1;
        c.workers = n;

        r = resolve_fds(&c, ret_worker_fds);
        if (r < 0)
                return r;
        /* 0 stays 0: per backend, the pool keeps what demand left idle, as
         * far as the worker's descriptors allow (its total bound is
         * max_conns_per_worker, see proxy_worker_pool_room()). A configured
         * bound above that total would never bind. */
        if (c.upstream_idle_max > c.max_conns_per_worker)
                c.upstream_idle_max = c.max_conns_per_worker;
        /* After the descriptors: max_connections is bounded by them. */
        r = proxy_config_resolve_live(cfg, &c);
        if (r < 0)
                return r;
        *ret = c;
        return 0;
}
