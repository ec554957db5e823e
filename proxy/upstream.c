/* SPDX-License-Identifier: Apache-2.0 */
#include "proxy/upstream.h"

#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"
#include "proxy/routes.h"

#define POOL_BUCKETS0 64u

struct upstream_group {
        struct upstream_group *hnext;
        uint64_t hash;
        struct upstream *idle; /* most recently used first */
        unsigned n_idle;
        unsigned n_total; /* upstreams of this group, idle or busy */
        struct upstream_key key;
        char netns[]; /* "" when the route has none */
};

/* ---- the default socket factory ---- */

int proxy_socket_factory_default(void *ud, const struct proxy_route *r, const struct sockaddr *addr,
                                 socklen_t len, int *ret_fd)
{
        int fd;

        assert(addr && ret_fd);
        fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        *ret_fd = fd;
        return 0;
}

/* ---- keys and groups ---- */

void upstream_key_of(struct upstream_key *k, const struct sockaddr *sa, uint16_t port_override)
{
        memset(k, 0, sizeof(*k));
        k->family = sa->sa_family;
        if (sa->sa_family == AF_INET6) {
                const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;

                k->port = a->sin6_port;
                k->scope = a->sin6_scope_id;
                memcpy(k->addr, &a->sin6_addr, 16);
        } else {
                const struct sockaddr_in *a = (const struct sockaddr_in *)sa;

                k->port = a->sin_port;
                memcpy(k->addr, &a->sin_addr, 4);
        }
        if (port_override)
                k->port = htons(port_override);
}

static socklen_t key_sockaddr(const struct upstream_key *k, struct sockaddr_storage *ss)
{
        memset(ss, 0, sizeof(*ss));
        if (k->family == AF_INET6) {
                struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

                a->sin6_family = AF_INET6;
                a->sin6_port = k->port;
                a->sin6_scope_id = k->scope;
                memcpy(&a->sin6_addr, k->addr, 16);
                return sizeof(*a);
        }
        struct sockaddr_in *a = (struct sockaddr_in *)ss;

        a->sin_family = AF_INET;
        a->sin_port = k->port;
        memcpy(&a->sin_addr, k->addr, 4);
        return sizeof(*a);
}

static uint64_t key_hash(const struct upstream_pool *p, const struct upstream_key *k,
                         const char *netns)
{
        uint64_t h = siphash13(&p->hkey, k, sizeof(*k), false);

        if (netns && *netns)
                h ^= siphash13(&p->hkey, netns, strlen(netns), false) * 0x9e3779b97f4a7c15ull;
        return h;
}

static int pool_grow(struct upstream_pool *p)
{
        size_t n = p->n_buckets ? p->n_buckets * 2 : POOL_BUCKETS0;
        struct upstream_group **b = calloc(n, sizeof(*b));

        if (!b)
                return -ENOMEM;
        for (size_t i = 0; i < p->n_buckets; i++)
                for (struct upstream_group *g = p->buckets[i], *next; g; g = next) {
                        next = g->hnext;
                        g->hnext = b[g->hash & (n - 1)];
                        b[g->hash & (n - 1)] = g;
                }
        free(p->buckets);
        p->buckets = b;
        p->n_buckets = n;
        return 0;
}

static struct upstream_group *group_get(struct upstream_pool *p, const struct upstream_key *k,
                                        const char *netns, bool create)
{
        uint64_t h = key_hash(p, k, netns);
        const char *ns = netns ? netns : "";
        struct upstream_group *g;
        size_t len;

        if (p->n_buckets)
                for (g = p->buckets[h & (p->n_buckets - 1)]; g; g = g->hnext)
                        if (g->hash == h && memcmp(&g->key, k, sizeof(*k)) == 0 &&
                            streq(g->netns, ns))
                                return g;
        if (!create)
                return NULL;
        if (p->n_groups >= p->n_buckets && pool_grow(p) < 0)
                return NULL;
        len = strlen(ns);
        g = calloc(1, sizeof(*g) + len + 1);
        if (!g)
                return NULL;
        g->hash = h;
        g->key = *k;
        memcpy(g->netns, ns, len + 1);
        g->hnext = p->buckets[h & (p->n_buckets - 1)];
        p->buckets[h & (p->n_buckets - 1)] = g;
        p->n_groups++;
        return g;
}

static void group_maybe_free(struct upstream_pool *p, struct upstream_group *g)
{
        struct upstream_group **pp;

        if (g->n_total > 0)
                return;
        for (pp = &p->buckets[g->hash & (p->n_buckets - 1)]; *pp != g; pp = &(*pp)->hnext)
                ;
        *pp = g->hnext;
        p->n_groups--;
        free(g);
}

/* ---- upstream lifetime ---- */

static void pool_unlink(struct upstream *u)
{
        if (!u->gpprev)
                return;
        *u->gpprev = u->gnext;
        if (u->gnext)
                u->gnext->gpprev = u->gpprev;
        u->gnext = NULL;
        u->gpprev = NULL;
        u->grp->n_idle--;
        u->pool->n_idle--;
        sock_deadline(u->s, EV_TQ_NONE);
}

/* From the reap (or at once when there never was a socket). */
static void upstream_free(void *data)
{
        struct upstream *u = data;
        struct upstream_pool *p = u->pool;

        proxy_route_unref(u->route);
        free(u);
        p->n_open--;
        if (p->env.freed)
                p->env.freed(p->env.ud);
}

void upstream_close(struct upstream *u)
{
        if (!u || u->closing)
                return;
        u->closing = true;
        pool_unlink(u);
        if (u->grp) {
                u->grp->n_total--;
                group_maybe_free(u->pool, u->grp);
                u->grp = NULL;
        }
        /* The socket goes now, only the memory waits for the reap: the
         * engine's descriptor accounting (room(), upstream_pool_trim())
         * counts a closed connection as gone at once. */
        if (u->s) {
                /* Its user's object was the socket's data until now. */
                u->s->data = u;
                return sock_close(u->s, false, upstream_free);
        }
        upstream_free(u);
}

/* Idle in the pool: EOF, an error, unsolicited bytes or the idle deadline
 * all mean it cannot carry another request. */
static void on_idle_event(struct sock *s, unsigned events)
{
        upstream_close(s->data);
}

/* ---- the pool ---- */

int upstream_pool_init(struct upstream_pool *p, const struct upstream_pool_env *env)
{
        assert(env && env->ev && env->factory);
        *p = (struct upstream_pool){.env = *env};
        siphash_key_random(&p->hkey);
        return 0;
}

void upstream_pool_done(struct upstream_pool *p)
{
        assert(p->n_open == 0);
        for (size_t i = 0; i < p->n_buckets; i++)
                for (struct upstream_group *g = p->buckets[i], *next; g; g = next) {
                        next = g->hnext;
                        free(g);
                }
        p->buckets = mfree(p->buckets);
        p->n_buckets = p->n_groups = 0;
}

/* How many idle connections the pool may hold now. */
static unsigned pool_room(const struct upstream_pool *p)
{
        unsigned room = p->env.max_total;

        if (p->env.room)
                room = MIN(room, p->env.room(p->env.ud));
        return room;
}

/* At the bound, the connection idle the longest (the head of the pool's
 * deadline queue) makes room; with no room at all @u is closed. */
void upstream_release(struct upstream *u, bool reusable)
{
        struct upstream_pool *p = u->pool;
        struct upstream_group *g = u->grp;
        unsigned room;

        if (!reusable || p->closed || !g || (p->env.idle_max && g->n_idle >= p->env.idle_max) ||
            u->s->err || u->s->eof)
                return upstream_close(u);
        room = pool_room(p);
        if (room == 0)
                return upstream_close(u);
        upstream_pool_trim(p, room - 1);
        u->reused = false;
        u->s->wr_blocked = false;
        u->gnext = g->idle;
        u->gpprev = &g->idle;
        if (g->idle)
                g->idle->gpprev = &u->gnext;
        g->idle = u;
        g->n_idle++;
        p->n_idle++;
        sock_set_cb(u->s, on_idle_event, u);
        sock_deadline(u->s, p->env.tq_pool);
        /* Reading stays on: a close or stray bytes from the backend end it. */
        if (sock_want(u->s, true) < 0)
                upstream_close(u);
}

struct upstream *upstream_take(struct upstream_pool *p, const struct upstream_key *k,
                               const char *netns)
{
        struct upstream_group *g = group_get(p, k, netns, false);
        struct upstream *u;

        if (!g || !g->idle)
                return NULL;
        u = g->idle;
        pool_unlink(u);
        u->reused = true;
        return u;
}

int upstream_dial(struct upstream_pool *p, struct proxy_route *route, const struct upstream_key *k,
                  bool pooled, sock_cb *cb, void *data, struct upstream **ret,
                  bool *ret_factory_failed)
{
        struct sockaddr_storage ss;
        socklen_t len = key_sockaddr(k, &ss);
        struct upstream_group *g = NULL;
        struct upstream *u;
        int fd = -1, r, one = 1;

        *ret_factory_failed = false;
        if (pooled) {
                g = group_get(p, k, route->netns, true);
                if (!g)
                        return -ENOMEM;
        }
        u = calloc(1, sizeof(*u));
        if (!u) {
                if (g)
                        group_maybe_free(p, g);
                return -ENOMEM;
        }
        u->pool = p;
        u->grp = g;
        if (g)
                g->n_total++;
        u->route = proxy_route_ref(route);
        p->n_open++;

        r = p->env.factory(p->env.factory_ud, route, (const struct sockaddr *)&ss, len, &fd);
        if (r < 0) {
                *ret_factory_failed = true;
                upstream_close(u);
                return r;
        }
        r = sock_new(p->env.ev, fd, cb, data, &u->s);
        if (r < 0) {
                upstream_close(u);
                return r;
        }
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        r = sock_connect(u->s, (const struct sockaddr *)&ss, len);
        if (r < 0) {
                upstream_close(u);
                return r;
        }
        *ret = u;
        return 0;
}

static struct upstream *pool_oldest(struct upstream_pool *p)
{
        struct ev_link *l = ev_tq_first(p->env.ev, p->env.tq_pool);

        return l ? container_of(ev_handle_of(l), struct sock, h)->data : NULL;
}

void upstream_pool_trim(struct upstream_pool *p, unsigned keep)
{
        struct upstream *u;

        while (p->n_idle > keep && (u = pool_oldest(p)))
                upstream_close(u);
}

void upstream_pool_close_idle(struct upstream_pool *p)
{
        p->closed = true;
        upstream_pool_trim(p, 0);
}

/* Whether idle @u can still serve its route as the table has it now. */
static bool still_useful(const struct proxy_routes *snap, const struct upstream *u)
{
        const struct proxy_route *now = proxy_routes_lookup_id(snap, u->route->id);

        if (now == u->route)
                return true;
        if (!now || !proxy_route_still_current(snap, u->route) ||
            !streq_ptr(now->netns, u->route->netns))
                return false;
        for (size_t i = 0; i < now->n_backends; i++) {
                struct upstream_key k;

                upstream_key_of(&k, (const struct sockaddr *)&now->backends[i].addr, 0);
                if (memcmp(&k, &u->grp->key, sizeof(k)) == 0)
                        return true;
        }
        return false;
}

void upstream_pool_routes_changed(struct upstream_pool *p, const struct proxy_routes *snap)
{
        struct ev *ev = p->env.ev;
        unsigned tq = p->env.tq_pool;

        for (struct ev_link *l = ev_tq_first(ev, tq), *next; l; l = next) {
                struct upstream *u = container_of(ev_handle_of(l), struct sock, h)->data;

                next = ev_tq_next(ev, tq, l);
                if (!still_useful(snap, u))
                        upstream_close(u);
        }
}
