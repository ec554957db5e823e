/* SPDX-License-Identifier: Apache-2.0 */
/* The _acme-challenge responder on sockets (acme/dns-server.h). */
#include "acme/dns-server.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "acme/dns.h"
#include "common/list.h"
#include "common/macros.h"

#define DEFAULT_MAX_TCP_CONNS   64u
#define DEFAULT_TCP_IDLE_MS     10000u
#define DEFAULT_TCP_MAX_PENDING 16384u
#define UDP_BATCH               64u  /* datagrams per socket per wakeup */
#define ACCEPT_BATCH            16u  /* connections per listener per wakeup */
#define PAUSE_MS                100u /* polling stopped after EMFILE & co. */
#define LISTEN_BACKLOG          64

struct listener {
        struct acme_dns_server *s;
        struct listener *prev, *next;
        uv_poll_t poll;
        int fd;
        int family;   /* AF_INET or AF_INET6 */
        bool udp;     /* else TCP */
        bool paused;  /* polling stopped until the pause timer fires */
        bool owns_fd; /* the fd is closed with the handle (after set_sockets succeeded) */
        bool closing; /* uv_close() issued */
};

struct conn {
        struct acme_dns_server *s;
        struct conn *prev, *next;
        uv_tcp_t tcp;
        uv_timer_t idle;
        unsigned handles; /* open handles: freed when the last one has closed */
        size_t pending;   /* answer bytes handed to uv_write() and not yet written */
        size_t in_len;    /* bytes in @in */
        bool reading;     /* uv_read_start() in effect */
        bool eof;         /* the client shut down its side: close once answered */
        bool closing;     /* uv_close() issued */
        uint8_t in[2 + ACME_DNS_QUERY_MAX]; /* one length prefix and the largest message */
};

struct wreq {
        uv_write_t req;
        struct conn *c;
        size_t len;
        uint8_t data[]; /* length prefix and answer */
};

struct acme_dns_server {
        uv_loop_t *loop;
        unsigned max_tcp_conns;
        uint64_t tcp_idle_ms;
        size_t tcp_max_pending;
        struct acme_dns_zones *zones;
        struct listener *listeners;
        struct conn *conns;
        unsigned n_conns;
        unsigned handles; /* the pause timer and every listener not yet closed */
        uv_timer_t pause;
        bool freeing;
        struct acme_dns_stats st;
        uint8_t udp_in[ACME_DNS_QUERY_MAX];
        uint8_t out[2 + ACME_DNS_ANSWER_MAX]; /* answers are built here, after the TCP prefix */
};

static void maybe_free(struct acme_dns_server *s)
{
        if (!s->freeing || s->handles > 0 || s->conns)
                return;
        acme_dns_zones_free(s->zones);
        free(s);
}

static void count_answer(struct acme_dns_server *s, const struct acme_dns_answer_info *info)
{
        switch (info->rcode) {
        case ACME_DNS_RCODE_NOERROR:
                s->st.noerror++;
                break;
        case ACME_DNS_RCODE_NXDOMAIN:
                s->st.nxdomain++;
                break;
        case ACME_DNS_RCODE_REFUSED:
                s->st.refused++;
                break;
        case ACME_DNS_RCODE_FORMERR:
                s->st.formerr++;
                break;
        case ACME_DNS_RCODE_NOTIMP:
                s->st.notimp++;
                break;
        case ACME_DNS_RCODE_BADVERS:
                s->st.badvers++;
                break;
        }
        if (info->truncated)
                s->st.truncated++;
}

/* ---- pausing a socket instead of spinning ---- */

static void on_udp(uv_poll_t *p, int status, int events);
static void on_tcp_listener(uv_poll_t *p, int status, int events);

static void on_pause_done(uv_timer_t *t)
{
        struct acme_dns_server *s = t->data;

        bool again = false;

        for (struct listener *l = s->listeners; l; l = l->next) {
                if (!l->paused)
                        continue;
                if (uv_poll_start(&l->poll, UV_READABLE, l->udp ? on_udp : on_tcp_listener) >= 0)
                        l->paused = false;
                else
                        again = true;
        }
        if (again)
                (void)uv_timer_start(&s->pause, on_pause_done, PAUSE_MS, 0);
}

/* The socket is readable but reading it fails (EMFILE, ENOBUFS, ...):
 * epoll is level-triggered, so stop polling it for a while. */
static void listener_pause(struct listener *l)
{
        struct acme_dns_server *s = l->s;

        (void)uv_poll_stop(&l->poll);
        l->paused = true;
        s->st.socket_pauses++;
        if (!uv_is_active((uv_handle_t *)&s->pause))
                (void)uv_timer_start(&s->pause, on_pause_done, PAUSE_MS, 0);
}

/* ---- UDP ---- */

union cmsg_buf {
        struct cmsghdr h;
        uint8_t b[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo))];
};

/* Services that answer any datagram: a spoofed query "from" one of them
 * would make it and us answer each other forever. */
static bool reflector_port(uint16_t port)
{
        switch (port) {
        case 0:
        case 7:  /* echo */
        case 13: /* daytime */
        case 17: /* qotd */
        case 19: /* chargen */
        case 37: /* time */
                return true;
        }
        return false;
}

static bool ipv4_not_unicast(const struct in_addr *a)
{
        uint32_t v = ntohl(a->s_addr);

        return (v >> 28) == 0xe || v == 0xffffffffu; /* 224/4, limited broadcast */
}

/* Where the query was sent (from its packet info), as the source of the
 * answer. Returns false when the destination is not one of our unicast
 * addresses, and the query must not be answered. */
static bool reply_source(struct msghdr *mh, union cmsg_buf *out, size_t *ret_len)
{
        const struct in6_pktinfo *p6 = NULL;
        const struct in_pktinfo *p4 = NULL;
        struct cmsghdr *h;

        for (h = CMSG_FIRSTHDR(mh); h; h = CMSG_NXTHDR(mh, h)) {
                if (h->cmsg_level == IPPROTO_IPV6 && h->cmsg_type == IPV6_PKTINFO)
                        p6 = (const struct in6_pktinfo *)CMSG_DATA(h);
                else if (h->cmsg_level == IPPROTO_IP && h->cmsg_type == IP_PKTINFO)
                        p4 = (const struct in_pktinfo *)CMSG_DATA(h);
        }
        /* A subnet-directed broadcast has a spec_dst (our address) that
         * differs from the header's destination. */
        if (p4 &&
            (ipv4_not_unicast(&p4->ipi_addr) || p4->ipi_addr.s_addr != p4->ipi_spec_dst.s_addr))
                return false;
        memset(out, 0, sizeof(*out));
        *ret_len = 0;
        if (p6) {
                struct in6_pktinfo pi = {.ipi6_addr = p6->ipi6_addr};

                if (IN6_IS_ADDR_MULTICAST(&pi.ipi6_addr))
                        return false;
                if (IN6_IS_ADDR_V4MAPPED(&pi.ipi6_addr) &&
                    ipv4_not_unicast((const struct in_addr *)&pi.ipi6_addr.s6_addr32[3]))
                        return false;
                /* The interface matters only for link-local addresses;
                 * elsewhere let routing choose, as for any other reply. */
                if (IN6_IS_ADDR_LINKLOCAL(&pi.ipi6_addr))
                        pi.ipi6_ifindex = p6->ipi6_ifindex;
                h = &out->h;
                h->cmsg_level = IPPROTO_IPV6;
                h->cmsg_type = IPV6_PKTINFO;
                h->cmsg_len = CMSG_LEN(sizeof(pi));
                memcpy(CMSG_DATA(h), &pi, sizeof(pi));
                *ret_len = CMSG_SPACE(sizeof(pi));
        } else if (p4) {
                struct in_pktinfo pi = {.ipi_spec_dst = p4->ipi_addr};

                h = &out->h;
                h->cmsg_level = IPPROTO_IP;
                h->cmsg_type = IP_PKTINFO;
                h->cmsg_len = CMSG_LEN(sizeof(pi));
                memcpy(CMSG_DATA(h), &pi, sizeof(pi));
                *ret_len = CMSG_SPACE(sizeof(pi));
        }
        return true;
}

static uint16_t peer_port(const struct sockaddr_storage *ss)
{
        if (ss->ss_family == AF_INET)
                return ntohs(((const struct sockaddr_in *)ss)->sin_port);
        if (ss->ss_family == AF_INET6)
                return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
        return 0;
}

/* One datagram: false when the socket has nothing more for this wakeup. */
static bool udp_one(struct listener *l)
{
        struct acme_dns_server *s = l->s;
        struct acme_dns_answer_info info;
        struct sockaddr_storage peer;
        union cmsg_buf cin, cout;
        struct iovec iov = {.iov_base = s->udp_in, .iov_len = sizeof(s->udp_in)};
        struct msghdr mh = {
                .msg_name = &peer,
                .msg_namelen = sizeof(peer),
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &cin,
                .msg_controllen = sizeof(cin),
        };
        size_t clen;
        ssize_t n;
        int r;

        n = recvmsg(l->fd, &mh, MSG_DONTWAIT);
        if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                        return false;
                if (errno == EINTR || errno == ECONNREFUSED)
                        return true;
                listener_pause(l);
                return false;
        }
        s->st.queries++;
        if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || reflector_port(peer_port(&peer)) ||
            !reply_source(&mh, &cout, &clen)) {
                s->st.dropped++;
                return true;
        }
        r = acme_dns_answer(s->zones, s->udp_in, (size_t)n, ACME_DNS_UDP, s->out, ACME_DNS_UDP_MAX,
                            &info);
        if (r <= 0) {
                s->st.dropped++;
                return true;
        }
        count_answer(s, &info);
        iov = (struct iovec){.iov_base = s->out, .iov_len = (size_t)r};
        mh = (struct msghdr){
                .msg_name = &peer,
                .msg_namelen = mh.msg_namelen,
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = clen ? &cout : NULL,
                .msg_controllen = clen,
        };
        if (sendmsg(l->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
                s->st.send_failed++;
        return true;
}

static void on_udp(uv_poll_t *p, int status, int events)
{
        struct listener *l = p->data;

        if (status < 0) {
                listener_pause(l);
                return;
        }
        for (unsigned i = 0; i < UDP_BATCH && !l->paused; i++)
                if (!udp_one(l))
                        break;
}

/* ---- TCP connections ---- */

static void conn_step(struct conn *c);

static void on_conn_closed(uv_handle_t *h)
{
        struct conn *c = h->data;
        struct acme_dns_server *s = c->s;

        if (--c->handles > 0)
                return;
        LIST_REMOVE(s->conns, c);
        s->n_conns--;
        free(c);
        maybe_free(s);
}

static void conn_close(struct conn *c)
{
        if (c->closing)
                return;
        c->closing = true;
        /* Pending writes complete with UV_ECANCELED before the close
         * callbacks run. */
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        uv_close((uv_handle_t *)&c->idle, on_conn_closed);
}

static void on_idle(uv_timer_t *t)
{
        struct conn *c = t->data;

        c->s->st.tcp_timeouts++;
        conn_close(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
        struct conn *c = h->data;

        /* Never 0: a full buffer holds a complete message, which is
         * answered before reading resumes. A zero length would end in
         * UV_ENOBUFS, which closes the connection. */
        *buf = uv_buf_init((char *)c->in + c->in_len, (unsigned)(sizeof(c->in) - c->in_len));
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
        struct conn *c = st->data;

        if (c->closing)
                return;
        if (n == UV_EOF) {
                c->eof = true;
                conn_step(c);
                return;
        }
        if (n < 0) {
                conn_close(c);
                return;
        }
        c->in_len += (size_t)n;
        conn_step(c);
}

static void on_write(uv_write_t *req, int status)
{
        struct wreq *w = container_of(req, struct wreq, req);
        struct conn *c = w->c;

        c->pending -= w->len;
        free(w);
        if (c->closing)
                return;
        if (status < 0) {
                conn_close(c);
                return;
        }
        conn_step(c);
}

/* Answer the message of @len bytes at c->in + @off + 2. Returns false when
 * the connection was closed. */
static bool conn_answer(struct conn *c, size_t off, size_t len)
{
        struct acme_dns_server *s = c->s;
        struct acme_dns_answer_info info;
        struct wreq *w;
        uv_buf_t b;
        int r;

        s->st.queries++;
        r = acme_dns_answer(s->zones, c->in + off + 2, len, ACME_DNS_TCP, s->out + 2,
                            sizeof(s->out) - 2, &info);
        if (r <= 0) {
                s->st.dropped++;
                conn_close(c);
                return false;
        }
        count_answer(s, &info);
        w = malloc(sizeof(*w) + 2 + (size_t)r);
        if (!w) {
                conn_close(c);
                return false;
        }
        w->c = c;
        w->len = 2 + (size_t)r;
        w->data[0] = (uint8_t)(r >> 8);
        w->data[1] = (uint8_t)r;
        memcpy(w->data + 2, s->out + 2, (size_t)r);
        b = uv_buf_init((char *)w->data, (unsigned)w->len);
        if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write) < 0) {
                free(w);
                conn_close(c);
                return false;
        }
        c->pending += w->len;
        (void)uv_timer_again(&c->idle);
        return true;
}

/* Answer every complete message buffered (in order: uv_write() keeps it),
 * as long as the answers waiting to be written stay under the bound; then
 * read on if there is room, or close after the client's EOF. */
static void conn_step(struct conn *c)
{
        struct acme_dns_server *s = c->s;
        size_t off = 0;
        bool want;

        while (c->pending < s->tcp_max_pending && c->in_len - off >= 2) {
                size_t len = (size_t)c->in[off] << 8 | c->in[off + 1];

                if (len > ACME_DNS_QUERY_MAX) {
                        s->st.queries++;
                        s->st.dropped++;
                        conn_close(c);
                        return;
                }
                if (c->in_len - off - 2 < len)
                        break;
                if (!conn_answer(c, off, len))
                        return;
                off += 2 + len;
        }
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;

        if (c->eof) {
                /* A partial message after EOF can never complete. */
                if (c->reading)
                        (void)uv_read_stop((uv_stream_t *)&c->tcp);
                c->reading = false;
                if (c->pending == 0)
                        conn_close(c);
                return;
        }
        want = c->pending < s->tcp_max_pending;
        if (want && !c->reading) {
                if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
                        conn_close(c);
                        return;
                }
                c->reading = true;
        } else if (!want && c->reading) {
                (void)uv_read_stop((uv_stream_t *)&c->tcp);
                c->reading = false;
                s->st.tcp_read_paused++;
        }
}

/* Reset rather than FIN: no TIME_WAIT left behind for a flood of refused
 * connections. */
static void close_reset(int fd)
{
        struct linger lg = {.l_onoff = 1, .l_linger = 0};

        (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        safe_close(fd);
}

/* Take the accepted @fd (closed on failure). */
static int conn_new(struct acme_dns_server *s, int fd)
{
        struct conn *c;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c) {
                close_reset(fd);
                return -ENOMEM;
        }
        c->s = s;
        r = uv_tcp_init(s->loop, &c->tcp);
        if (r < 0) {
                free(c);
                close_reset(fd);
                return r;
        }
        r = uv_tcp_open(&c->tcp, fd);
        if (r < 0) {
                /* The handle exists: it must be closed through the loop. */
                c->tcp.data = c;
                c->handles = 1;
                c->closing = true;
                LIST_PREPEND(s->conns, c);
                s->n_conns++;
                uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
                close_reset(fd);
                return r;
        }
        c->tcp.data = c;
        (void)uv_timer_init(s->loop, &c->idle); /* cannot fail */
        c->idle.data = c;
        c->handles = 2;
        LIST_PREPEND(s->conns, c);
        s->n_conns++;
        s->st.tcp_accepted++;
        (void)uv_timer_start(&c->idle, on_idle, s->tcp_idle_ms, s->tcp_idle_ms);
        conn_step(c);
        return 0;
}

static void on_tcp_listener(uv_poll_t *p, int status, int events)
{
        struct listener *l = p->data;
        struct acme_dns_server *s = l->s;

        if (status < 0) {
                listener_pause(l);
                return;
        }
        for (unsigned i = 0; i < ACCEPT_BATCH; i++) {
                int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

                if (fd < 0) {
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                                return;
                        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                                continue;
                        listener_pause(l); /* EMFILE, ENFILE, ENOBUFS, ENOMEM, ... */
                        return;
                }
                if (s->n_conns >= s->max_tcp_conns) {
                        s->st.tcp_refused++;
                        close_reset(fd);
                        continue;
                }
                if (conn_new(s, fd) < 0)
                        s->st.tcp_refused++;
        }
}

/* ---- sockets ---- */

static void on_listener_closed(uv_handle_t *h)
{
        struct listener *l = h->data;
        struct acme_dns_server *s = l->s;

        if (l->owns_fd)
                safe_close(l->fd);
        free(l);
        s->handles--;
        maybe_free(s);
}

/* Detached from the list by the caller (or never in it). */
static void listener_close(struct listener *l)
{
        if (l->closing)
                return;
        l->closing = true;
        uv_close((uv_handle_t *)&l->poll, on_listener_closed);
}

/* Check @fd is a bound socket of the type we want and prepare it. */
static int socket_prepare(int fd, bool udp, int *ret_family)
{
        struct sockaddr_storage ss;
        socklen_t len = sizeof(int);
        int type, family, flags, one = 1;

        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
                return -errno;
        if (type != (udp ? SOCK_DGRAM : SOCK_STREAM))
                return -EINVAL;
        len = sizeof(int);
        if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &len) < 0)
                return -errno;
        if (family != AF_INET && family != AF_INET6)
                return -EAFNOSUPPORT;
        len = sizeof(ss);
        if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
                return -errno;
        if (peer_port(&ss) == 0)
                return -EINVAL; /* not bound */
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return -errno;
        if (udp) {
                /* On an AF_INET6 socket, IPv4 datagrams come with an
                 * IPV6_PKTINFO holding a v4-mapped address too (Linux); the
                 * IP_PKTINFO is only read to spot directed broadcasts. */
                if (family == AF_INET6 &&
                    setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one)) < 0)
                        return -errno;
                if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one)) < 0 &&
                    family == AF_INET)
                        return -errno;
        } else if (listen(fd, LISTEN_BACKLOG) < 0) {
                return -errno;
        }
        *ret_family = family;
        return 0;
}

static bool fd_known(const struct acme_dns_server *s, int fd)
{
        for (const struct listener *l = s->listeners; l; l = l->next)
                if (l->fd == fd)
                        return true;
        return false;
}

int acme_dns_server_set_sockets(struct acme_dns_server *s, const int *udp_fds, size_t n_udp,
                                const int *tcp_fds, size_t n_tcp)
{
        struct listener *fresh = NULL, *old;
        int all[2 * ACME_DNS_SERVER_SOCKETS_MAX];
        size_t n_all = 0;
        int r;

        assert(s && !s->freeing);
        if (n_udp > ACME_DNS_SERVER_SOCKETS_MAX || n_tcp > ACME_DNS_SERVER_SOCKETS_MAX ||
            (n_udp && !udp_fds) || (n_tcp && !tcp_fds))
                return -EINVAL;
        for (size_t i = 0; i < n_udp + n_tcp; i++) {
                int fd = i < n_udp ? udp_fds[i] : tcp_fds[i - n_udp];

                if (fd < 0 || fd_known(s, fd))
                        return -EINVAL;
                for (size_t k = 0; k < n_all; k++)
                        if (all[k] == fd)
                                return -EINVAL;
                all[n_all++] = fd;
        }

        for (size_t i = 0; i < n_all; i++) {
                bool udp = i < n_udp;
                struct listener *l;
                int family = AF_UNSPEC;

                r = socket_prepare(all[i], udp, &family);
                if (r < 0)
                        goto fail;
                l = calloc(1, sizeof(*l));
                if (!l) {
                        r = -ENOMEM;
                        goto fail;
                }
                r = uv_poll_init_socket(s->loop, &l->poll, all[i]);
                if (r < 0) {
                        free(l);
                        goto fail;
                }
                l->s = s;
                l->fd = all[i];
                l->family = family;
                l->udp = udp;
                l->poll.data = l;
                s->handles++;
                LIST_PREPEND(fresh, l);
                r = uv_poll_start(&l->poll, UV_READABLE, udp ? on_udp : on_tcp_listener);
                if (r < 0)
                        goto fail;
        }

        /* Committed: the old sockets go, the new ones are ours. */
        while ((old = s->listeners)) {
                LIST_REMOVE(s->listeners, old);
                listener_close(old);
        }
        while ((old = fresh)) {
                LIST_REMOVE(fresh, old);
                old->owns_fd = true;
                LIST_PREPEND(s->listeners, old);
        }
        return 0;

fail:
        /* The caller keeps its fds: the handles close without them. */
        while ((old = fresh)) {
                LIST_REMOVE(fresh, old);
                listener_close(old);
        }
        return r;
}

/* ---- the server ---- */

int acme_dns_server_new(const struct acme_dns_server_config *cfg, struct acme_dns_server **ret)
{
        struct acme_dns_server *s;

        assert(ret);
        if (!cfg || !cfg->loop)
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->loop = cfg->loop;
        s->max_tcp_conns = cfg->max_tcp_conns ? cfg->max_tcp_conns : DEFAULT_MAX_TCP_CONNS;
        s->tcp_idle_ms = cfg->tcp_idle_ms ? cfg->tcp_idle_ms : DEFAULT_TCP_IDLE_MS;
        s->tcp_max_pending = cfg->tcp_max_pending ? cfg->tcp_max_pending : DEFAULT_TCP_MAX_PENDING;
        (void)uv_timer_init(s->loop, &s->pause); /* cannot fail */
        s->pause.data = s;
        s->handles = 1;
        *ret = s;
        return 0;
}

int acme_dns_server_set_zones(struct acme_dns_server *s, const struct acme_dns_zone *zones,
                              size_t n, char **reterr)
{
        struct acme_dns_zones *z;
        int r;

        assert(s);
        r = acme_dns_zones_new(zones, n, &z, reterr);
        if (r < 0)
                return r;
        acme_dns_zones_free(s->zones);
        s->zones = z;
        return 0;
}

void acme_dns_server_stats(const struct acme_dns_server *s, struct acme_dns_stats *ret)
{
        assert(s && ret);
        *ret = s->st;
        ret->tcp_open = s->n_conns;
}

static void on_pause_closed(uv_handle_t *h)
{
        struct acme_dns_server *s = h->data;

        s->handles--;
        maybe_free(s);
}

void acme_dns_server_free(struct acme_dns_server *s)
{
        struct listener *l;

        if (!s || s->freeing)
                return;
        s->freeing = true;
        while ((l = s->listeners)) {
                LIST_REMOVE(s->listeners, l);
                listener_close(l);
        }
        for (struct conn *c = s->conns; c; c = c->next)
                conn_close(c);
        uv_close((uv_handle_t *)&s->pause, on_pause_closed);
}
