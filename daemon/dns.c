/* SPDX-License-Identifier: Apache-2.0 */
#include "daemon/dns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ares.h>

#include "common/list.h"
#include "common/macros.h"

#define MAX_SOCKETS 16

struct dns_sock {
        uv_poll_t poll;
        ares_socket_t fd;
        bool used;
        bool closing;
        struct gw_dns *dns;
};

struct gw_dns_query {
        struct gw_dns *dns;
        struct gw_dns_query *prev, *next;
        char *host;
        gw_dns_cb *cb;
        void *userdata;
        bool cancelled;
};

struct gw_dns {
        uv_loop_t *loop;
        ares_channel channel;
        char *server; /* for error texts */
        uv_timer_t timer;
        struct dns_sock socks[MAX_SOCKETS];
        unsigned open_handles;
        bool freeing;
        struct gw_dns_query *queries;
};

static void maybe_free(struct gw_dns *dns)
{
        if (!dns->freeing || dns->open_handles > 0)
                return;
        free(dns->server);
        free(dns);
}

static void on_closed(uv_handle_t *h)
{
        struct gw_dns *dns = h->data;

        dns->open_handles--;
        if (h != (uv_handle_t *)&dns->timer) {
                struct dns_sock *s = container_of((uv_poll_t *)h, struct dns_sock, poll);
                s->used = false;
                s->closing = false;
        }
        maybe_free(dns);
}

static void reschedule(struct gw_dns *dns);

static void on_poll(uv_poll_t *h, int status, int events)
{
        struct dns_sock *s = container_of(h, struct dns_sock, poll);
        struct gw_dns *dns = s->dns;
        ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;

        if (status < 0 || (events & UV_READABLE))
                rfd = s->fd;
        if (status < 0 || (events & UV_WRITABLE))
                wfd = s->fd;
        ares_process_fd(dns->channel, rfd, wfd);
        reschedule(dns);
}

static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
        struct gw_dns *dns = data;
        struct dns_sock *s = NULL, *free_slot = NULL;

        for (size_t i = 0; i < MAX_SOCKETS; i++) {
                if (dns->socks[i].used && !dns->socks[i].closing && dns->socks[i].fd == fd)
                        s = &dns->socks[i];
                else if (!dns->socks[i].used && !free_slot)
                        free_slot = &dns->socks[i];
        }
        if (!readable && !writable) {
                if (s) {
                        s->closing = true;
                        uv_poll_stop(&s->poll);
                        uv_close((uv_handle_t *)&s->poll, on_closed);
                }
                return;
        }
        if (!s) {
                if (!free_slot)
                        return; /* c-ares then times the query out */
                s = free_slot;
                if (uv_poll_init_socket(dns->loop, &s->poll, fd) < 0)
                        return;
                s->poll.data = dns;
                s->fd = fd;
                s->used = true;
                s->dns = dns;
                dns->open_handles++;
        }
        uv_poll_start(&s->poll, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0),
                      on_poll);
}

static void on_timer(uv_timer_t *t)
{
        struct gw_dns *dns = t->data;

        ares_process_fd(dns->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
        reschedule(dns);
}

static void reschedule(struct gw_dns *dns)
{
        struct timeval tv, *tvp;

        if (dns->freeing)
                return;
        tvp = ares_timeout(dns->channel, NULL, &tv);
        if (!tvp) {
                uv_timer_stop(&dns->timer);
                return;
        }
        uv_timer_start(&dns->timer, on_timer,
                       (uint64_t)tvp->tv_sec * 1000 + (uint64_t)tvp->tv_usec / 1000 + 1, 0);
}

int gw_dns_new(uv_loop_t *loop, const char *resolver, unsigned timeout_ms, struct gw_dns **ret)
{
        struct ares_options opts = {};
        struct gw_dns *dns;
        int r;

        r = ares_library_init(ARES_LIB_INIT_ALL);
        if (r != ARES_SUCCESS)
                return -ENOMEM;
        dns = calloc(1, sizeof(*dns));
        if (!dns)
                return -ENOMEM;
        dns->loop = loop;
        dns->server = strdup(resolver);
        if (!dns->server) {
                free(dns);
                return -ENOMEM;
        }
        opts.sock_state_cb = on_sock_state;
        opts.sock_state_cb_data = dns;
        opts.timeout = (int)MAX(timeout_ms / 2, 100u);
        opts.tries = 2;
        opts.flags = ARES_FLAG_NOSEARCH;
        /* Go's resolver reads /etc/hosts first too. */
        opts.lookups = (char *)"fb";
        r = ares_init_options(&dns->channel, &opts,
                              ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
                                      ARES_OPT_FLAGS | ARES_OPT_LOOKUPS);
        if (r != ARES_SUCCESS) {
                free(dns->server);
                free(dns);
                return r == ARES_ENOMEM ? -ENOMEM : -EINVAL;
        }
        r = ares_set_servers_ports_csv(dns->channel, resolver);
        if (r != ARES_SUCCESS) {
                ares_destroy(dns->channel);
                free(dns->server);
                free(dns);
                return -EINVAL;
        }
        uv_timer_init(loop, &dns->timer);
        dns->timer.data = dns;
        dns->open_handles = 1;
        *ret = dns;
        return 0;
}

static void query_unlink(struct gw_dns_query *q)
{
        struct gw_dns *dns = q->dns;

        LIST_REMOVE(dns->queries, q);
        q->prev = q->next = NULL;
}

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
        struct gw_dns_query *q = arg;
        struct gw_dns *dns = q->dns;
        char **addrs = NULL;
        size_t n = 0;
        char *err = NULL;

        query_unlink(q);
        if (q->cancelled)
                goto out;
        if (status == ARES_SUCCESS && res) {
                size_t cap = 0;
                for (struct ares_addrinfo_node *a = res->nodes; a; a = a->ai_next)
                        cap++;
                addrs = calloc(cap + 1, sizeof(char *));
                for (struct ares_addrinfo_node *a = res->nodes; addrs && a; a = a->ai_next) {
                        char buf[INET6_ADDRSTRLEN];
                        const void *src;

                        if (a->ai_family == AF_INET)
                                src = &((struct sockaddr_in *)a->ai_addr)->sin_addr;
                        else if (a->ai_family == AF_INET6)
                                src = &((struct sockaddr_in6 *)a->ai_addr)->sin6_addr;
                        else
                                continue;
                        if (inet_ntop(a->ai_family, src, buf, sizeof(buf)) &&
                            (addrs[n] = strdup(buf)))
                                n++;
                }
                if (!addrs && asprintf(&err, "lookup %s: out of memory", q->host) < 0)
                        err = NULL;
        } else {
                /* Go's texts: "no such host" for NXDOMAIN and empty answers,
                 * "i/o timeout", "server misbehaving". */
                const char *why;
                switch (status) {
                case ARES_ENOTFOUND:
                case ARES_ENODATA:
                case ARES_ENONAME:
                        why = "no such host";
                        break;
                case ARES_ETIMEOUT:
                        why = "i/o timeout";
                        break;
                case ARES_EDESTRUCTION:
                case ARES_ECANCELLED:
                        why = "operation was canceled";
                        break;
                case ARES_ECONNREFUSED:
                        why = "connection refused";
                        break;
                default:
                        why = "server misbehaving";
                        break;
                }
                if (asprintf(&err, "lookup %s on %s: %s", q->host, dns->server, why) < 0)
                        err = NULL;
        }
        q->cb(err ? err : (addrs ? NULL : "out of memory"), err ? NULL : addrs, n, q->userdata);
        for (size_t i = 0; addrs && i < n; i++)
                free(addrs[i]);
        free(addrs);
        free(err);
out:
        if (res)
                ares_freeaddrinfo(res);
        free(q->host);
        free(q);
}

int gw_dns_lookup(struct gw_dns *dns, const char *host, gw_dns_cb *cb, void *userdata,
                  struct gw_dns_query **ret)
{
        struct ares_addrinfo_hints hints = {.ai_family = AF_UNSPEC};
        struct gw_dns_query *q;

        if (dns->freeing)
                return -ECANCELED;
        q = calloc(1, sizeof(*q));
        if (!q)
                return -ENOMEM;
        q->host = strdup(host);
        if (!q->host) {
                free(q);
                return -ENOMEM;
        }
        q->dns = dns;
        q->cb = cb;
        q->userdata = userdata;
        LIST_PREPEND(dns->queries, q);
        if (ret)
                *ret = q;
        /* May complete synchronously (e.g. /etc/hosts); the caller was given
         * @ret first, and callers treat the callback as possibly immediate
         * only through this documented path. */
        ares_getaddrinfo(dns->channel, host, NULL, &hints, on_addrinfo, q);
        reschedule(dns);
        return 0;
}

void gw_dns_query_cancel(struct gw_dns_query *q)
{
        if (q)
                q->cancelled = true;
}

void gw_dns_free(struct gw_dns *dns)
{
        if (!dns)
                return;
        for (struct gw_dns_query *q = dns->queries; q; q = q->next)
                q->cancelled = true;
        dns->freeing = true;
        ares_destroy(dns->channel); /* runs callbacks with ARES_EDESTRUCTION */
        uv_timer_stop(&dns->timer);
        uv_close((uv_handle_t *)&dns->timer, on_closed);
        for (size_t i = 0; i < MAX_SOCKETS; i++)
                if (dns->socks[i].used && !dns->socks[i].closing) {
                        dns->socks[i].closing = true;
                        uv_poll_stop(&dns->socks[i].poll);
                        uv_close((uv_handle_t *)&dns->socks[i].poll, on_closed);
                }
}
