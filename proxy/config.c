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
#define DEFAULT_STOP_MS      5000u
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
#define DEFAULT_POOL_MAX     512u
#define DEFAULT_POOL_IDLE_MS 30000u

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
};

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
        if (!c.upstream_idle_max)
                c.upstream_idle_max = DEFAULT_POOL_MAX;
        if (!c.upstream_idle_timeout_ms)
                c.upstream_idle_timeout_ms = DEFAULT_POOL_IDLE_MS;
        if (!c.hello_max)
                c.hello_max = PROXY_TLS_HELLO_MAX_DEFAULT;
        if (!c.handshake_timeout_ms)
                c.handshake_timeout_ms = DEFAULT_HANDSHAKE_MS;
        if (!c.connect_timeout_ms)
                c.connect_timeout_ms = DEFAULT_CONNECT_MS;
        if (!c.idle_timeout_ms)
                c.idle_timeout_ms = DEFAULT_IDLE_MS;
        if (!c.stop_timeout_ms)
                c.stop_timeout_ms = DEFAULT_STOP_MS;
        if (!c.relay_buf_size)
                c.relay_buf_size = DEFAULT_RELAY_BUF;
        if (!c.socket_factory)
                c.socket_factory = proxy_socket_factory_default;

        n = c.workers ? c.workers : MIN(uv_available_parallelism(), MAX_WORKERS);
        if (n == 0)
                n = 1;
        c.workers = n;

        r = resolve_fds(&c, ret_worker_fds);
        if (r < 0)
                return r;
        *ret = c;
        return 0;
}
