/* SPDX-License-Identifier: Apache-2.0 */
/* acme/dns-server.c on a real libuv loop with real sockets: UDP and TCP on
 * 127.0.0.1 and ::1, answers from the address a query was sent to on
 * wildcard and dual-stack sockets, pipelined TCP, backpressure, the
 * connection limit, the idle deadline, replaced sockets, zones replaced
 * while serving, drops, EMFILE without spinning, and dig (a third-party
 * client) over UDP and TCP. Clients run on a thread with blocking sockets
 * while the test's thread runs the loop. Each test closes its loop with
 * uv_loop_close() == 0.
 *
 * The process moves into a network namespace of its own when it may
 * (root), so the wildcard sockets are seen by nobody else; otherwise it
 * stays where it is and binds the wildcard to a random port. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "acme/dns-server.h"
#include "acme/dns.h"
#include "common/macros.h"
#include "dns-test.h"

#define APEX    "_acme-challenge.gw.example.com"
#define WAIT_MS 5000

static const char *const NS1[] = {"gw.example.com"};
static const char *const VALS[] = {"first-value-for-the-wildcard", "second-value-for-the-apex"};

static struct acme_dns_zone zone(const char *const *txt, size_t n_txt)
{
        return (struct acme_dns_zone){
                .apex = APEX,
                .ns = NS1,
                .n_ns = 1,
                .soa = {.mname = "gw.example.com",
                        .rname = "hostmaster.gw.example.com",
                        .serial = 1,
                        .refresh = 3600,
                        .retry = 600,
                        .expire = 86400,
                        .minimum = 60},
                .ttl = 60,
                .txt = txt,
                .n_txt = n_txt,
        };
}

/* ---- sockets ---- */

union addr {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
        struct sockaddr_storage ss;
};

static socklen_t addr_make(union addr *a, const char *ip, uint16_t port)
{
        memset(a, 0, sizeof(*a));
        if (strchr(ip, ':')) {
                a->in6.sin6_family = AF_INET6;
                a->in6.sin6_port = htons(port);
                assert_int_equal(inet_pton(AF_INET6, ip, &a->in6.sin6_addr), 1);
                return sizeof(a->in6);
        }
        a->in.sin_family = AF_INET;
        a->in.sin_port = htons(port);
        assert_int_equal(inet_pton(AF_INET, ip, &a->in.sin_addr), 1);
        return sizeof(a->in);
}

/* A bound socket for the server (dual-stack when @ip is "::"); its port
 * in *ret_port. */
static int server_socket(const char *ip, int type, uint16_t port, uint16_t *ret_port)
{
        union addr a;
        socklen_t len = addr_make(&a, ip, port);
        int fd, one = 1, zero = 0;

        fd = socket(a.sa.sa_family, type | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        if (a.sa.sa_family == AF_INET6)
                assert_int_equal(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)), 0);
        if (type == SOCK_STREAM)
                assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
        assert_int_equal(bind(fd, &a.sa, len), 0);
        len = sizeof(a);
        assert_int_equal(getsockname(fd, &a.sa, &len), 0);
        if (ret_port)
                *ret_port = ntohs(a.sa.sa_family == AF_INET6 ? a.in6.sin6_port : a.in.sin_port);
        return fd;
}

static bool fd_open(int fd)
{
        return fcntl(fd, F_GETFD) >= 0;
}

/* ---- the loop and a client thread ---- */

static uv_loop_t loop;

struct client {
        uv_async_t async;
        bool done;
        void (*fn)(void *arg);
        void *arg;
};

static void *client_main(void *p)
{
        struct client *c = p;

        c->fn(c->arg);
        uv_async_send(&c->async);
        return NULL;
}

static void on_client_done(uv_async_t *a)
{
        struct client *c = a->data;

        c->done = true;
        uv_close((uv_handle_t *)a, NULL);
}

/* Run @fn on a thread while this thread runs the loop; returns when @fn
 * has returned. */
static void run_client(void (*fn)(void *), void *arg)
{
        struct client c = {.fn = fn, .arg = arg};
        pthread_t th;

        assert_int_equal(uv_async_init(&loop, &c.async, on_client_done), 0);
        c.async.data = &c;
        assert_int_equal(pthread_create(&th, NULL, client_main, &c), 0);
        while (!c.done)
                uv_run(&loop, UV_RUN_ONCE);
        assert_int_equal(pthread_join(th, NULL), 0);
}

static void on_stop_timer(uv_timer_t *t)
{
        *(bool *)t->data = true;
}

/* Run the loop for @ms. */
static void run_for(uint64_t ms)
{
        uv_timer_t t;
        bool fired = false;

        uv_timer_init(&loop, &t);
        t.data = &fired;
        uv_timer_start(&t, on_stop_timer, ms, 0);
        while (!fired)
                uv_run(&loop, UV_RUN_ONCE);
        uv_close((uv_handle_t *)&t, NULL);
        uv_run(&loop, UV_RUN_NOWAIT);
}

static struct acme_dns_server *server_start(const struct acme_dns_server_config *cfg)
{
        struct acme_dns_server_config d = {.loop = &loop};
        struct acme_dns_server *s = NULL;
        struct acme_dns_zone z = zone(VALS, 2);

        assert_int_equal(uv_loop_init(&loop), 0);
        if (cfg) {
                d = *cfg;
                d.loop = &loop;
        }
        assert_int_equal(acme_dns_server_new(&d, &s), 0);
        assert_int_equal(acme_dns_server_set_zones(s, &z, 1, NULL), 0);
        return s;
}

static void server_stop(struct acme_dns_server *s)
{
        acme_dns_server_free(s);
        assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
        assert_int_equal(uv_loop_close(&loop), 0);
}

static struct acme_dns_stats stats(const struct acme_dns_server *s)
{
        struct acme_dns_stats st;

        acme_dns_server_stats(s, &st);
        return st;
}

/* ---- blocking client operations (any thread: no cmocka asserts) ---- */

static int client_socket(const char *ip, int type, const union addr *bind_to)
{
        int fd = socket(strchr(ip, ':') ? AF_INET6 : AF_INET, type | SOCK_CLOEXEC, 0);
        struct timeval tv = {.tv_sec = WAIT_MS / 1000};

        if (fd < 0)
                return -errno;
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (bind_to && bind(fd, &bind_to->sa,
                            bind_to->sa.sa_family == AF_INET6 ? sizeof(bind_to->in6)
                                                              : sizeof(bind_to->in)) < 0) {
                int r = -errno;

                close(fd);
                return r;
        }
        return fd;
}

/* Send @q over UDP from a socket connected to @ip:@port (so only answers
 * from that address are received); the answer's length or -errno
 * (-EAGAIN: none within @wait_ms). */
static int udp_ask(const char *ip, uint16_t port, const union addr *from, const uint8_t *q,
                   size_t qlen, uint8_t *out, size_t cap, unsigned wait_ms)
{
        union addr a;
        socklen_t len = addr_make(&a, ip, port);
        struct timeval tv = {.tv_sec = wait_ms / 1000, .tv_usec = (wait_ms % 1000) * 1000};
        int fd = client_socket(ip, SOCK_DGRAM, from), r;

        if (fd < 0)
                return fd;
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (connect(fd, &a.sa, len) < 0 || send(fd, q, qlen, 0) != (ssize_t)qlen) {
                r = -errno;
                close(fd);
                return r;
        }
        r = (int)recv(fd, out, cap, 0);
        if (r < 0)
                r = errno == EWOULDBLOCK ? -EAGAIN : -errno;
        close(fd);
        return r;
}

static int tcp_connect(const char *ip, uint16_t port)
{
        union addr a;
        socklen_t len = addr_make(&a, ip, port);
        int fd = client_socket(ip, SOCK_STREAM, NULL);

        if (fd < 0)
                return fd;
        if (connect(fd, &a.sa, len) < 0) {
                int r = -errno;

                close(fd);
                return r;
        }
        return fd;
}

static int send_all(int fd, const void *p, size_t n)
{
        while (n > 0) {
                ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

                if (k <= 0)
                        return k < 0 ? -errno : -EIO;
                p = (const uint8_t *)p + k;
                n -= (size_t)k;
        }
        return 0;
}

static int recv_all(int fd, void *p, size_t n)
{
        while (n > 0) {
                ssize_t k = recv(fd, p, n, 0);

                if (k == 0)
                        return -ECONNRESET;
                if (k < 0)
                        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
                p = (uint8_t *)p + k;
                n -= (size_t)k;
        }
        return 0;
}

/* One framed query on @fd; the answer's length or -errno. */
static int tcp_send_query(int fd, const uint8_t *q, size_t qlen)
{
        uint8_t b[2 + 2048];

        b[0] = (uint8_t)(qlen >> 8);
        b[1] = (uint8_t)qlen;
        memcpy(b + 2, q, qlen);
        return send_all(fd, b, 2 + qlen);
}

static int tcp_read_answer(int fd, uint8_t *out, size_t cap)
{
        uint8_t l[2];
        size_t len;
        int r = recv_all(fd, l, 2);

        if (r < 0)
                return r;
        len = (size_t)l[0] << 8 | l[1];
        if (len > cap)
                return -E2BIG;
        r = recv_all(fd, out, len);
        return r < 0 ? r : (int)len;
}

/* Wait for the server to close @fd: 0 on EOF or reset, -EAGAIN if it
 * stays open. */
static int wait_closed(int fd)
{
        uint8_t b[64];
        ssize_t k = recv(fd, b, sizeof(b), 0);

        if (k == 0 || (k < 0 && errno == ECONNRESET))
                return 0;
        return k < 0 ? -errno : -EBADMSG;
}

/* ---- 1: UDP and TCP, IPv4 and IPv6 ---- */

struct basic {
        uint16_t udp4, udp6, tcp4, tcp6;
        int r[4];
        uint8_t out[4][ACME_DNS_ANSWER_MAX];
        size_t qlen;
        uint8_t q[512];
};

static void basic_client(void *p)
{
        struct basic *b = p;
        int fd;

        b->r[0] = udp_ask("127.0.0.1", b->udp4, NULL, b->q, b->qlen, b->out[0], sizeof(b->out[0]),
                          WAIT_MS);
        b->r[1] =
                udp_ask("::1", b->udp6, NULL, b->q, b->qlen, b->out[1], sizeof(b->out[1]), WAIT_MS);
        for (int i = 0; i < 2; i++) {
                fd = tcp_connect(i ? "::1" : "127.0.0.1", i ? b->tcp6 : b->tcp4);
                if (fd < 0) {
                        b->r[2 + i] = fd;
                        continue;
                }
                b->r[2 + i] = tcp_send_query(fd, b->q, b->qlen);
                if (b->r[2 + i] == 0)
                        b->r[2 + i] = tcp_read_answer(fd, b->out[2 + i], sizeof(b->out[2 + i]));
                close(fd);
        }
}

static void test_udp_tcp_v4_v6(void **state)
{
        struct acme_dns_server *s = server_start(NULL);
        struct basic b = {0};
        int udp[2], tcp[2];
        struct acme_dns_stats st;
        struct parsed p;

        udp[0] = server_socket("127.0.0.1", SOCK_DGRAM, 0, &b.udp4);
        udp[1] = server_socket("::1", SOCK_DGRAM, 0, &b.udp6);
        tcp[0] = server_socket("127.0.0.1", SOCK_STREAM, 0, &b.tcp4);
        tcp[1] = server_socket("::1", SOCK_STREAM, 0, &b.tcp6);
        assert_int_equal(acme_dns_server_set_sockets(s, udp, 2, tcp, 2), 0);

        b.qlen = query(b.q, "_ACME-Challenge.gw.EXAMPLE.com", T_TXT, NULL);
        run_client(basic_client, &b);
        for (int i = 0; i < 4; i++) {
                if (b.r[i] <= 0)
                        fail_msg("client %d: %d", i, b.r[i]);
                parse(b.out[i], (size_t)b.r[i], &p);
                assert_int_equal(p.id, 0x1234);
                assert_int_equal(p.flags & 0xf, 0);
                assert_true(p.flags & 0x0400);
                assert_int_equal(p.an, 2);
                assert_string_equal(p.qname, "_ACME-Challenge.gw.EXAMPLE.com");
                assert_memory_equal(b.out[i] + p.rr[1].rdata + 1, VALS[1], strlen(VALS[1]));
        }
        st = stats(s);
        assert_int_equal(st.queries, 4);
        assert_int_equal(st.noerror, 4);
        assert_int_equal(st.tcp_accepted, 2);
        assert_int_equal(st.dropped + st.refused + st.formerr + st.truncated, 0);
        server_stop(s);
        /* The server closed the fds it owned. */
        for (int i = 0; i < 2; i++) {
                assert_false(fd_open(udp[i]));
                assert_false(fd_open(tcp[i]));
        }
}

/* ---- 2: answers leave from the address the query went to ---- */

struct wild {
        uint16_t port4, port6;
        int r[4];
        uint8_t out[4][ACME_DNS_ANSWER_MAX];
        uint8_t q[512];
        size_t qlen;
};

static void wild_client(void *p)
{
        struct wild *w = p;

        /* The dual-stack socket: IPv4 to a second loopback address (the
         * kernel would answer from 127.0.0.1 without packet info), IPv6. */
        w->r[0] = udp_ask("127.0.0.2", w->port6, NULL, w->q, w->qlen, w->out[0], sizeof(w->out[0]),
                          2000);
        w->r[1] = udp_ask("::1", w->port6, NULL, w->q, w->qlen, w->out[1], sizeof(w->out[1]), 2000);
        /* The IPv4 wildcard socket. */
        w->r[2] = udp_ask("127.0.0.3", w->port4, NULL, w->q, w->qlen, w->out[2], sizeof(w->out[2]),
                          2000);
        w->r[3] = udp_ask("127.0.0.1", w->port4, NULL, w->q, w->qlen, w->out[3], sizeof(w->out[3]),
                          2000);
}

static void test_wildcard_reply_source(void **state)
{
        struct acme_dns_server *s = server_start(NULL);
        struct wild w = {0};
        int udp[2];

        udp[0] = server_socket("::", SOCK_DGRAM, 0, &w.port6);
        udp[1] = server_socket("0.0.0.0", SOCK_DGRAM, 0, &w.port4);
        assert_int_equal(acme_dns_server_set_sockets(s, udp, 2, NULL, 0), 0);
        w.qlen = query(w.q, APEX, T_SOA, NULL);
        run_client(wild_client, &w);
        for (int i = 0; i < 4; i++) {
                struct parsed p;

                if (w.r[i] <= 0)
                        fail_msg("query %d: %d (answer from the wrong address?)", i, w.r[i]);
                parse(w.out[i], (size_t)w.r[i], &p);
                assert_int_equal(p.an, 1);
        }
        assert_int_equal(stats(s).send_failed, 0);
        server_stop(s);
}

/* ---- 3: pipelined TCP, byte by byte, backpressure ---- */

#define PIPE_N 300

struct pipe_run {
        uint16_t port;
        bool slow_reader;
        int r;
        int bad_at;
        int n_refused;
};

static size_t pipe_query(uint8_t *q, unsigned i)
{
        struct qopt o = {.id = (uint16_t)(i + 1), .flags = 0x0100};

        /* Every third is outside the zone (REFUSED), the rest TXT or SOA. */
        return query(q, i % 3 == 2 ? "example.org" : APEX, i % 3 ? T_SOA : T_TXT, &o);
}

static void *pipe_writer(void *p)
{
        int fd = *(int *)p;
        uint8_t all[PIPE_N * 60], q[512];
        size_t n = 0;

        for (unsigned i = 0; i < PIPE_N; i++) {
                size_t qlen = pipe_query(q, i);

                all[n++] = (uint8_t)(qlen >> 8);
                all[n++] = (uint8_t)qlen;
                memcpy(all + n, q, qlen);
                n += qlen;
        }
        /* All at once: the server sees many messages per read. */
        *(int *)p = send_all(fd, all, n);
        return NULL;
}

static void pipe_client(void *p)
{
        struct pipe_run *pr = p;
        uint8_t out[ACME_DNS_ANSWER_MAX];
        pthread_t th;
        int fd, wr, small = 2048;

        pr->bad_at = -1;
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (pr->slow_reader) /* before connect, so the window stays small */
                (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
        {
                union addr a;
                socklen_t len = addr_make(&a, "127.0.0.1", pr->port);
                struct timeval tv = {.tv_sec = 10};

                (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
                if (connect(fd, &a.sa, len) < 0) {
                        pr->r = -errno;
                        close(fd);
                        return;
                }
        }
        wr = fd;
        pthread_create(&th, NULL, pipe_writer, &wr);
        if (pr->slow_reader) {
                struct timespec ts = {.tv_nsec = 300 * 1000000};

                nanosleep(&ts, NULL);
        }
        for (unsigned i = 0; i < PIPE_N; i++) {
                int r = tcp_read_answer(fd, out, sizeof(out));

                if (r < 12 || g16(out) != i + 1) {
                        pr->bad_at = (int)i;
                        pr->r = r;
                        break;
                }
                if ((out[3] & 0xf) == ACME_DNS_RCODE_REFUSED)
                        pr->n_refused++;
                if (pr->slow_reader && i % 16 == 0) {
                        struct timespec ts = {.tv_nsec = 1000000};

                        nanosleep(&ts, NULL);
                }
        }
        pthread_join(th, NULL);
        if (wr != 0 && pr->bad_at < 0)
                pr->r = wr;
        close(fd);
}

static void test_tcp_pipelined(void **state)
{
        struct acme_dns_server_config cfg = {.tcp_max_pending = 1024};
        struct acme_dns_server *s = server_start(&cfg);
        struct pipe_run pr = {0};
        struct acme_dns_stats st;
        int tcp;

        tcp = server_socket("127.0.0.1", SOCK_STREAM, 0, &pr.port);
        assert_int_equal(acme_dns_server_set_sockets(s, NULL, 0, &tcp, 1), 0);

        run_client(pipe_client, &pr);
        if (pr.bad_at >= 0)
                fail_msg("answer %d: %d", pr.bad_at, pr.r);
        assert_int_equal(pr.r, 0);
        assert_int_equal(pr.n_refused, PIPE_N / 3);

        /* A reader that does not keep up: reading pauses, nothing is lost
         * and the order holds. */
        pr = (struct pipe_run){.port = pr.port, .slow_reader = true};
        run_client(pipe_client, &pr);
        if (pr.bad_at >= 0)
                fail_msg("slow reader, answer %d: %d", pr.bad_at, pr.r);
        st = stats(s);
        assert_int_equal(st.queries, 2 * PIPE_N);
        assert_int_equal(st.refused, 2 * (PIPE_N / 3));
        assert_true(st.tcp_read_paused > 0);
        print_message("# reading paused %" PRIu64 " times for %d pipelined queries\n",
                      st.tcp_read_paused, 2 * PIPE_N);
        server_stop(s);
}

struct frag {
        uint16_t port;
        int r[6];
};

static void frag_client(void *p)
{
        struct frag *f = p;
        uint8_t q[512], b[600], out[ACME_DNS_ANSWER_MAX];
        size_t qlen = query(q, APEX, T_TXT, NULL);
        int fd;

        /* One byte per send, with the Nagle algorithm off. */
        fd = tcp_connect("127.0.0.1", f->port);
        if (fd < 0) {
                f->r[0] = fd;
                return;
        }
        b[0] = 0;
        b[1] = (uint8_t)qlen;
        memcpy(b + 2, q, qlen);
        {
                int one = 1;

                (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        for (size_t i = 0; i < qlen + 2 && f->r[0] == 0; i++) {
                f->r[0] = send_all(fd, b + i, 1);
                if (i % 8 == 0) {
                        struct timespec ts = {.tv_nsec = 200000};

                        nanosleep(&ts, NULL);
                }
        }
        f->r[1] = tcp_read_answer(fd, out, sizeof(out));
        /* EOF after a query: the answer still comes, then the close. */
        f->r[2] = tcp_send_query(fd, q, qlen);
        shutdown(fd, SHUT_WR);
        f->r[3] = tcp_read_answer(fd, out, sizeof(out));
        f->r[4] = wait_closed(fd);
        close(fd);

        /* A length above ACME_DNS_QUERY_MAX ends the connection. */
        fd = tcp_connect("127.0.0.1", f->port);
        b[0] = 0xff;
        b[1] = 0xff;
        send_all(fd, b, 2);
        f->r[5] = wait_closed(fd);
        close(fd);
}

static void test_tcp_fragments_eof_oversize(void **state)
{
        struct acme_dns_server *s = server_start(NULL);
        struct frag f = {0};
        int tcp;

        tcp = server_socket("127.0.0.1", SOCK_STREAM, 0, &f.port);
        assert_int_equal(acme_dns_server_set_sockets(s, NULL, 0, &tcp, 1), 0);
        run_client(frag_client, &f);
        assert_int_equal(f.r[0], 0);
        assert_true(f.r[1] > 12);
        assert_int_equal(f.r[2], 0);
        assert_true(f.r[3] > 12);
        assert_int_equal(f.r[4], 0);
        assert_int_equal(f.r[5], 0);
        assert_int_equal(stats(s).dropped, 1);
        assert_int_equal(stats(s).noerror, 2);
        server_stop(s);
}

/* ---- 4: the connection limit and the idle deadline ---- */

struct limit {
        uint16_t port;
        int fds[8];
        int r[8];
        int extra;
};

static void limit_fill(void *p)
{
        struct limit *l = p;
        uint8_t q[512], out[ACME_DNS_ANSWER_MAX];
        size_t qlen = query(q, APEX, T_TXT, NULL);

        /* Four served connections (an answer proves each was accepted). */
        for (int i = 0; i < 4; i++) {
                l->fds[i] = tcp_connect("127.0.0.1", l->port);
                l->r[i] = l->fds[i] < 0 ? l->fds[i] : tcp_send_query(l->fds[i], q, qlen);
                if (l->r[i] == 0)
                        l->r[i] = tcp_read_answer(l->fds[i], out, sizeof(out));
        }
        /* The fifth is reset at accept. */
        l->fds[4] = tcp_connect("127.0.0.1", l->port);
        l->r[4] = l->fds[4] < 0 ? l->fds[4] : wait_closed(l->fds[4]);
}

static void limit_again(void *p)
{
        struct limit *l = p;
        uint8_t q[512], out[ACME_DNS_ANSWER_MAX];
        size_t qlen = query(q, APEX, T_TXT, NULL);
        int fd = tcp_connect("127.0.0.1", l->port);

        l->extra = fd < 0 ? fd : tcp_send_query(fd, q, qlen);
        if (l->extra == 0)
                l->extra = tcp_read_answer(fd, out, sizeof(out));
        close(fd);
}

static void test_tcp_limit(void **state)
{
        struct acme_dns_server_config cfg = {.max_tcp_conns = 4, .tcp_idle_ms = 60000};
        struct acme_dns_server *s = server_start(&cfg);
        struct limit l = {0};
        struct acme_dns_stats st;
        int tcp;

        tcp = server_socket("127.0.0.1", SOCK_STREAM, 0, &l.port);
        assert_int_equal(acme_dns_server_set_sockets(s, NULL, 0, &tcp, 1), 0);
        run_client(limit_fill, &l);
        for (int i = 0; i < 4; i++)
                assert_true(l.r[i] > 12);
        assert_int_equal(l.r[4], 0);
        st = stats(s);
        assert_int_equal(st.tcp_accepted, 4);
        assert_int_equal(st.tcp_refused, 1);
        assert_int_equal(st.tcp_open, 4);

        /* One leaves: a new one is served. */
        close(l.fds[0]);
        close(l.fds[4]);
        while (stats(s).tcp_open > 3)
                uv_run(&loop, UV_RUN_ONCE);
        run_client(limit_again, &l);
        assert_true(l.extra > 12);
        assert_int_equal(stats(s).tcp_refused, 1);

        /* Freed with connections still open. */
        server_stop(s);
        for (int i = 1; i < 4; i++) {
                assert_int_equal(wait_closed(l.fds[i]), 0);
                close(l.fds[i]);
        }
}

struct idle {
        uint16_t port;
        int r[2];
};

static void idle_client(void *p)
{
        struct idle *c = p;
        int fd = tcp_connect("127.0.0.1", c->port);

        /* Silent, then half a message: neither keeps the connection. */
        c->r[0] = fd < 0 ? fd : wait_closed(fd);
        close(fd);
        fd = tcp_connect("127.0.0.1", c->port);
        send_all(fd, "\0\x20\x12\x34", 4);
        c->r[1] = wait_closed(fd);
        close(fd);
}

static void test_tcp_idle(void **state)
{
        struct acme_dns_server_config cfg = {.tcp_idle_ms = 200};
        struct acme_dns_server *s = server_start(&cfg);
        struct idle c = {0};
        int tcp;

        tcp = server_socket("127.0.0.1", SOCK_STREAM, 0, &c.port);
        assert_int_equal(acme_dns_server_set_sockets(s, NULL, 0, &tcp, 1), 0);
        run_client(idle_client, &c);
        assert_int_equal(c.r[0], 0);
        assert_int_equal(c.r[1], 0);
        assert_int_equal(stats(s).tcp_timeouts, 2);
        server_stop(s);
}

/* ---- 5: replacing sockets, and zones while serving ---- */

struct repl {
        uint16_t udp, tcp;
        int keep; /* a TCP connection kept across the replacement */
        int r[3];
        uint8_t out[ACME_DNS_ANSWER_MAX];
};

static void repl_ask(void *p)
{
        struct repl *c = p;
        uint8_t q[512];
        size_t qlen = query(q, APEX, T_TXT, NULL);
        int fd;

        c->r[0] = udp_ask("127.0.0.1", c->udp, NULL, q, qlen, c->out, sizeof(c->out), 1000);
        fd = tcp_connect("127.0.0.1", c->tcp);
        c->r[1] = fd < 0 ? fd : tcp_send_query(fd, q, qlen);
        if (c->r[1] == 0)
                c->r[1] = tcp_read_answer(fd, c->out, sizeof(c->out));
        if (fd >= 0)
                close(fd);
        if (c->keep < 0)
                c->keep = tcp_connect("127.0.0.1", c->tcp);
        c->r[2] = tcp_send_query(c->keep, q, qlen);
        if (c->r[2] == 0)
                c->r[2] = tcp_read_answer(c->keep, c->out, sizeof(c->out));
}

static void test_replace_sockets(void **state)
{
        struct acme_dns_server *s = server_start(NULL);
        struct repl a = {.keep = -1}, b;
        int udp_a, tcp_a, udp_b, tcp_b, pipefd[2], unbound, fds[2];

        udp_a = server_socket("127.0.0.1", SOCK_DGRAM, 0, &a.udp);
        tcp_a = server_socket("127.0.0.1", SOCK_STREAM, 0, &a.tcp);
        assert_int_equal(acme_dns_server_set_sockets(s, &udp_a, 1, &tcp_a, 1), 0);
        run_client(repl_ask, &a);
        assert_true(a.r[0] > 12 && a.r[1] > 12 && a.r[2] > 12);

        /* Bad sets change nothing and leave the fds to the caller. */
        udp_b = server_socket("127.0.0.1", SOCK_DGRAM, 0, &b.udp);
        tcp_b = server_socket("127.0.0.1", SOCK_STREAM, 0, &b.tcp);
        assert_int_equal(acme_dns_server_set_sockets(s, &tcp_b, 1, &udp_b, 1), -EINVAL);
        assert_int_equal(acme_dns_server_set_sockets(s, &udp_b, 1, &udp_a, 1), -EINVAL);
        fds[0] = fds[1] = udp_b;
        assert_int_equal(acme_dns_server_set_sockets(s, fds, 2, NULL, 0), -EINVAL);
        assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
        assert_int_equal(acme_dns_server_set_sockets(s, &udp_b, 1, pipefd, 1), -ENOTSOCK);
        unbound = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        assert_int_equal(acme_dns_server_set_sockets(s, &unbound, 1, &tcp_b, 1), -EINVAL);
        fds[0] = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        assert_int_equal(acme_dns_server_set_sockets(s, fds, 1, NULL, 0), -EAFNOSUPPORT);
        close(fds[0]);
        fds[0] = udp_b;
        assert_int_equal(
                acme_dns_server_set_sockets(s, fds, ACME_DNS_SERVER_SOCKETS_MAX + 1, NULL, 0),
                -EINVAL);
        assert_true(fd_open(udp_b) && fd_open(tcp_b) && fd_open(pipefd[0]) && fd_open(unbound));
        close(pipefd[0]);
        close(pipefd[1]);
        close(unbound);
        b.keep = a.keep;
        b.udp = a.udp;
        b.tcp = a.tcp;
        run_client(repl_ask, &b);
        assert_true(b.r[0] > 12 && b.r[1] > 12 && b.r[2] > 12);

        /* The namespace was recreated: new sockets; the old ones close,
         * the established connection lives on. */
        b.udp = 0;
        {
                union addr x;
                socklen_t len = sizeof(x);

                getsockname(udp_b, &x.sa, &len);
                b.udp = ntohs(x.in.sin_port);
                len = sizeof(x);
                getsockname(tcp_b, &x.sa, &len);
                b.tcp = ntohs(x.in.sin_port);
        }
        assert_int_equal(acme_dns_server_set_sockets(s, &udp_b, 1, &tcp_b, 1), 0);
        run_for(10); /* the old handles' close callbacks close their fds */
        assert_false(fd_open(udp_a));
        assert_false(fd_open(tcp_a));
        run_client(repl_ask, &b);
        assert_true(b.r[0] > 12 && b.r[1] > 12 && b.r[2] > 12);
        a.keep = b.keep;
        run_client(repl_ask, &a); /* the old ports: nobody there */
        assert_true(a.r[0] < 0);
        assert_int_equal(a.r[1], -ECONNREFUSED);
        assert_true(a.r[2] > 12); /* but the kept connection is served */
        close(b.keep);

        /* No sockets at all: nothing is served, nothing leaks. */
        assert_int_equal(acme_dns_server_set_sockets(s, NULL, 0, NULL, 0), 0);
        run_for(10);
        assert_false(fd_open(udp_b));
        assert_false(fd_open(tcp_b));
        server_stop(s);
}

struct zq {
        uint16_t port;
        int fd;
        int r;
        uint8_t out[ACME_DNS_ANSWER_MAX];
        uint16_t qtype;
};

static void zq_ask(void *p)
{
        struct zq *c = p;
        uint8_t q[512];
        size_t qlen = query(q, APEX, c->qtype ? c->qtype : T_TXT, NULL);

        if (c->fd < 0)
                c->fd = tcp_connect("127.0.0.1", c->port);
        c->r = tcp_send_query(c->fd, q, qlen);
        if (c->r == 0)
                c->r = tcp_read_answer(c->fd, c->out, sizeof(c->out));
}

static void test_set_zones_while_serving(void **state)
{
        static const char *const one[] = {"only-the-wildcard-value"};
        struct acme_dns_server *s = server_start(NULL);
        struct zq c = {.fd = -1};
        struct acme_dns_zone z = zone(one, 1), bad = zone(one, 1);
        struct parsed p;
        char *err = NULL;
        int tcp;

        tcp = server_socket("127.0.0.1", SOCK_STREAM, 0, &c.port);
        assert_int_equal(acme_dns_server_set_sockets(s, NULL, 0, &tcp, 1), 0);

        run_client(zq_ask, &c);
        parse(c.out, (size_t)c.r, &p);
        assert_int_equal(p.an, 2);

        /* On the same connection: one value, then an invalid set (kept
         * out), then none, then no zones at all. */
        assert_int_equal(acme_dns_server_set_zones(s, &z, 1, NULL), 0);
        run_client(zq_ask, &c);
        parse(c.out, (size_t)c.r, &p);
        assert_int_equal(p.an, 1);
        assert_memory_equal(c.out + p.rr[0].rdata + 1, one[0], strlen(one[0]));

        bad.apex = "_acme-challenge.GW.example.com";
        assert_int_equal(acme_dns_server_set_zones(s, &bad, 1, &err), -EINVAL);
        assert_non_null(strstr(err, "apex"));
        free(err);
        run_client(zq_ask, &c);
        parse(c.out, (size_t)c.r, &p);
        assert_int_equal(p.an, 1);

        z.n_txt = 0;
        assert_int_equal(acme_dns_server_set_zones(s, &z, 1, NULL), 0);
        run_client(zq_ask, &c);
        parse(c.out, (size_t)c.r, &p);
        assert_int_equal(p.an, 0);
        assert_int_equal(p.ns, 1); /* NODATA */

        assert_int_equal(acme_dns_server_set_zones(s, NULL, 0, NULL), 0);
        run_client(zq_ask, &c);
        parse(c.out, (size_t)c.r, &p);
        assert_int_equal(p.flags & 0xf, ACME_DNS_RCODE_REFUSED);
        close(c.fd);
        server_stop(s);
}

/* ---- 6: what is dropped over UDP ---- */

struct drops {
        uint16_t port;
        int r[6];
};

static void drops_client(void *p)
{
        struct drops *d = p;
        uint8_t q[2048] = {0}, out[ACME_DNS_ANSWER_MAX];
        size_t qlen = query(q, APEX, T_TXT, NULL);
        union addr from;
        uint16_t ports[] = {7, 19};

        /* From the echo and chargen ports: no answer. */
        for (int i = 0; i < 2; i++) {
                addr_make(&from, "127.0.0.1", ports[i]);
                d->r[i] = udp_ask("127.0.0.1", d->port, &from, q, qlen, out, sizeof(out), 300);
        }
        /* A response, a short header, an oversized datagram. */
        q[2] |= 0x80;
        d->r[2] = udp_ask("127.0.0.1", d->port, NULL, q, qlen, out, sizeof(out), 300);
        q[2] &= 0x7f;
        d->r[3] = udp_ask("127.0.0.1", d->port, NULL, q, 11, out, sizeof(out), 300);
        d->r[4] = udp_ask("127.0.0.1", d->port, NULL, q, ACME_DNS_QUERY_MAX + 1, out, sizeof(out),
                          300);
        /* And a good one from port 53 is answered. */
        addr_make(&from, "127.0.0.1", 53);
        d->r[5] = udp_ask("127.0.0.1", d->port, &from, q, qlen, out, sizeof(out), 2000);
}

static void test_udp_drops(void **state)
{
        struct acme_dns_server *s;
        struct drops d = {0};
        struct acme_dns_stats st;
        int udp;

        if (geteuid() != 0)
                skip(); /* binding the low source ports needs root */
        s = server_start(NULL);
        udp = server_socket("127.0.0.1", SOCK_DGRAM, 0, &d.port);
        assert_int_equal(acme_dns_server_set_sockets(s, &udp, 1, NULL, 0), 0);
        run_client(drops_client, &d);
        for (int i = 0; i < 5; i++)
                if (d.r[i] != -EAGAIN)
                        fail_msg("query %d: %d, expected no answer", i, d.r[i]);
        assert_true(d.r[5] > 12);
        st = stats(s);
        assert_int_equal(st.queries, 6);
        assert_int_equal(st.dropped, 5);
        assert_int_equal(st.noerror, 1);
        server_stop(s);
}

/* ---- 7: EMFILE pauses the listener instead of spinning ---- */

static double cpu_seconds(void)
{
        struct rusage ru;

        getrusage(RUSAGE_SELF, &ru);
        return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
               (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

struct emfile {
        int fd;
        int r;
};

static void emfile_client(void *p)
{
        struct emfile *e = p;
        uint8_t q[512], out[ACME_DNS_ANSWER_MAX];
        size_t qlen = query(q, APEX, T_TXT, NULL);

        e->r = tcp_send_query(e->fd, q, qlen);
        if (e->r == 0)
                e->r = tcp_read_answer(e->fd, out, sizeof(out));
}

static void test_emfile_pause(void **state)
{
        struct acme_dns_server *s = server_start(NULL);
        struct rlimit old, low;
        struct emfile e = {0};
        struct timespec t0, t1;
        double cpu, wall;
        uint16_t port;
        int tcp, probe;

        tcp = server_socket("127.0.0.1", SOCK_STREAM, 0, &port);
        assert_int_equal(acme_dns_server_set_sockets(s, NULL, 0, &tcp, 1), 0);
        /* The connection completes in the backlog; accept() then finds
         * no free descriptor. */
        e.fd = tcp_connect("127.0.0.1", port);
        assert_true(e.fd >= 0);
        probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
        assert_true(probe >= 0);
        close(probe);
        assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
        low = old;
        low.rlim_cur = (rlim_t)probe; /* every lower number is taken */
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);

        clock_gettime(CLOCK_MONOTONIC, &t0);
        cpu = cpu_seconds();
        run_for(500);
        cpu = cpu_seconds() - cpu;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
        wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        print_message("# EMFILE for %.0f ms: %.1f ms of CPU, %" PRIu64 " pauses\n", wall * 1e3,
                      cpu * 1e3, stats(s).socket_pauses);
        /* Paused every 100 ms, not spinning (a spin burns the whole time). */
        assert_true(stats(s).socket_pauses >= 2);
        assert_true(stats(s).socket_pauses <= 8);
        assert_true(cpu < wall / 2);
        assert_int_equal(stats(s).tcp_accepted, 0);

        /* Descriptors are back: the waiting connection is served. */
        run_client(emfile_client, &e);
        assert_true(e.r > 12);
        assert_int_equal(stats(s).tcp_accepted, 1);
        close(e.fd);
        server_stop(s);
}

/* ---- 8: dig, a third-party client, over UDP and TCP ---- */

struct dig {
        char cmd[8][512];
        char out[8][8192];
        int status[8];
        size_t n;
};

static void dig_client(void *p)
{
        struct dig *d = p;

        for (size_t i = 0; i < d->n; i++) {
                FILE *f = popen(d->cmd[i], "r");
                size_t len = 0, k;

                if (!f) {
                        d->status[i] = -errno;
                        continue;
                }
                while (len < sizeof(d->out[i]) - 1 &&
                       (k = fread(d->out[i] + len, 1, sizeof(d->out[i]) - 1 - len, f)) > 0)
                        len += k;
                d->out[i][len] = 0;
                d->status[i] = pclose(f);
                /* dig separates fields with tabs: one space each. */
                for (size_t r = 0, w = 0;; r++) {
                        char ch = d->out[i][r] == '\t' ? ' ' : d->out[i][r];

                        if (ch == ' ' && w > 0 && d->out[i][w - 1] == ' ')
                                continue;
                        d->out[i][w++] = ch;
                        if (!ch)
                                break;
                }
        }
}

static bool have_dig(void)
{
        return access("/usr/bin/dig", X_OK) == 0;
}

#define expect_in(hay, needle)                                                                     \
        do {                                                                                       \
                if (!strstr((hay), (needle)))                                                      \
                        fail_msg("'%s' not in:\n%s", (needle), (hay));                             \
        } while (0)
#define expect_not_in(hay, needle)                                                                 \
        do {                                                                                       \
                if (strstr((hay), (needle)))                                                       \
                        fail_msg("'%s' unexpectedly in:\n%s", (needle), (hay));                    \
        } while (0)

static void test_dig(void **state)
{
        static char big[16][201];
        static const char *bigp[16];
        struct acme_dns_server *s;
        struct dig *d;
        struct acme_dns_zone z = zone(bigp, 16);
        uint16_t u4, u6, t4, t6;
        int udp[2], tcp[2];
        struct acme_dns_stats st;

        if (!have_dig()) {
                print_message("# dig not installed (Debian package bind9-dnsutils)\n");
                skip();
        }
        s = server_start(NULL);
        d = calloc(1, sizeof(*d));
        assert_non_null(d);
        udp[0] = server_socket("127.0.0.1", SOCK_DGRAM, 0, &u4);
        tcp[0] = server_socket("127.0.0.1", SOCK_STREAM, u4, &t4);
        udp[1] = server_socket("::1", SOCK_DGRAM, 0, &u6);
        tcp[1] = server_socket("::1", SOCK_STREAM, u6, &t6);
        assert_int_equal(acme_dns_server_set_sockets(s, udp, 2, tcp, 2), 0);

#define DIG "dig +tries=1 +time=3 "
        /* UDP and TCP, both families, the query's case. */
        snprintf(d->cmd[0], sizeof(d->cmd[0]),
                 DIG "@127.0.0.1 -p %u TXT _ACME-Challenge.Gw.Example.com 2>&1", u4);
        snprintf(d->cmd[1], sizeof(d->cmd[1]),
                 DIG "+tcp @::1 -p %u TXT _acme-challenge.gw.example.com 2>&1", t6);
        snprintf(d->cmd[2], sizeof(d->cmd[2]),
                 DIG "+tcp @127.0.0.1 -p %u SOA _acme-challenge.gw.example.com 2>&1", t4);
        snprintf(d->cmd[3], sizeof(d->cmd[3]),
                 DIG "@::1 -p %u +dnssec NS _acme-challenge.gw.example.com 2>&1", u6);
        snprintf(d->cmd[4], sizeof(d->cmd[4]),
                 DIG "@127.0.0.1 -p %u +noedns A x._acme-challenge.gw.example.com 2>&1", u4);
        snprintf(d->cmd[5], sizeof(d->cmd[5]), DIG "@127.0.0.1 -p %u A www.example.org 2>&1", u4);
        d->n = 6;
        run_client(dig_client, d);

        for (size_t i = 0; i < d->n; i++) {
                print_message("# %s: exit %d\n", d->cmd[i], d->status[i]);
                expect_not_in(d->out[i], "WARNING: .local");
                expect_not_in(d->out[i], "mismatch");
                expect_not_in(d->out[i], "FORMERR");
                expect_not_in(d->out[i], "malformed");
                expect_not_in(d->out[i], "ra;"); /* recursion never offered */
        }
        expect_in(d->out[0], "status: NOERROR");
        expect_in(d->out[0], "flags: qr aa rd;");
        expect_in(d->out[0], "ANSWER: 2,");
        expect_in(d->out[0],
                  "_ACME-Challenge.Gw.Example.com. 60 IN TXT \"first-value-for-the-wildcard\"");
        expect_in(d->out[0], "\"second-value-for-the-apex\"");
        expect_in(d->out[0], "(UDP)");
        expect_in(d->out[0], "udp: 1232");
        expect_in(d->out[1], "status: NOERROR");
        expect_in(d->out[1], "ANSWER: 2,");
        expect_in(d->out[1], "(TCP)");
        expect_in(d->out[2],
                  "IN SOA gw.example.com. hostmaster.gw.example.com. 1 3600 600 86400 60");
        expect_in(d->out[3], "IN NS gw.example.com.");
        expect_in(d->out[3], "flags: do; udp: 1232");
        expect_in(d->out[4], "status: NXDOMAIN");
        expect_in(d->out[4], "flags: qr aa rd;");
        expect_in(d->out[4], "AUTHORITY: 1");
        expect_not_in(d->out[4], "OPT PSEUDOSECTION");
        expect_in(d->out[5], "status: REFUSED");

        /* Sixteen values of 200 bytes: truncated over UDP, and dig
         * retries over TCP by itself. */
        for (size_t i = 0; i < 16; i++) {
                memset(big[i], 'a' + (int)i, 200);
                bigp[i] = big[i];
        }
        assert_int_equal(acme_dns_server_set_zones(s, &z, 1, NULL), 0);
        memset(d, 0, sizeof(*d));
        snprintf(d->cmd[0], sizeof(d->cmd[0]),
                 DIG "@127.0.0.1 -p %u TXT _acme-challenge.gw.example.com 2>&1", u4);
        snprintf(d->cmd[1], sizeof(d->cmd[1]),
                 DIG "@::1 -p %u +bufsize=4096 TXT _acme-challenge.gw.example.com 2>&1", u6);
        d->n = 2;
        run_client(dig_client, d);
        for (size_t i = 0; i < d->n; i++) {
                expect_in(d->out[i], "Truncated, retrying in TCP mode");
                expect_in(d->out[i], "ANSWER: 16,");
                expect_in(d->out[i], "(TCP)");
        }
#undef DIG
        st = stats(s);
        assert_true(st.truncated >= 2);
        assert_int_equal(st.formerr, 0);
        free(d);
        server_stop(s);
}

/* ---- setup ---- */

/* A network namespace of our own with lo up, when allowed. */
static void private_netns(void)
{
        struct ifreq ifr = {0};
        int fd;

        if (unshare(CLONE_NEWNET) < 0) {
                printf("# staying in this network namespace: %s\n", strerror(errno));
                return;
        }
        fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
        if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
                abort();
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
                abort();
        close(fd);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_udp_tcp_v4_v6),
                cmocka_unit_test(test_wildcard_reply_source),
                cmocka_unit_test(test_tcp_pipelined),
                cmocka_unit_test(test_tcp_fragments_eof_oversize),
                cmocka_unit_test(test_tcp_limit),
                cmocka_unit_test(test_tcp_idle),
                cmocka_unit_test(test_replace_sockets),
                cmocka_unit_test(test_set_zones_while_serving),
                cmocka_unit_test(test_udp_drops),
                cmocka_unit_test(test_emfile_pause),
                cmocka_unit_test(test_dig),
        };

        signal(SIGPIPE, SIG_IGN);
        private_netns();
        return cmocka_run_group_tests(tests, NULL, NULL);
}
