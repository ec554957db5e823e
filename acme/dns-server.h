/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The _acme-challenge DNS responder on the caller's libuv loop: UDP and TCP
 * (RFC 7766) on sockets the owner opened (the daemon opens them inside the
 * gateway namespace; the server cannot tell which namespace a socket is
 * in), answering from zone data the owner replaces whenever the DNS-01
 * values change. What is answered, and how, is acme/dns.h.
 *
 * Everything runs on the loop thread; no function may be called from
 * another thread. Nothing is logged: every outcome is a counter.
 *
 * Limits (docs/internals/acme.md has the why):
 *  - UDP: at most 64 datagrams per socket per loop wakeup; answers are sent
 *    at once or not at all (a full socket buffer drops the answer, nothing
 *    queues). Answers leave from the address the query was sent to
 *    (IP_PKTINFO / IPV6_RECVPKTINFO), so a wildcard or dual-stack socket on
 *    a host with several addresses works. Datagrams from the source ports
 *    of UDP services that answer anything (0, echo 7, daytime 13, qotd 17,
 *    chargen 19, time 37) and to multicast or broadcast addresses are
 *    dropped: answering them can start a packet loop or a reflection.
 *  - TCP: at most max_tcp_conns connections (more are accepted and reset at
 *    once); a connection that completes no query for tcp_idle_ms is closed;
 *    pipelined queries are answered in order, and reading pauses while more
 *    than tcp_max_pending bytes of answers wait to be written; a message
 *    longer than ACME_DNS_QUERY_MAX, or one that would be dropped over UDP,
 *    closes the connection.
 *  - accept() or recvmsg() failing with EMFILE, ENFILE, ENOBUFS, ENOMEM (or
 *    any other unexpected error) stops polling that socket for 100 ms
 *    instead of spinning on a level-triggered readable socket. */

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct acme_dns_zone;
struct acme_dns_server;

#define ACME_DNS_SERVER_SOCKETS_MAX 8u /* UDP and TCP sockets, each */

/* Zero in a numeric field means the default. */
struct acme_dns_server_config {
        uv_loop_t *loop;        /* borrowed; outlives the server */
        unsigned max_tcp_conns; /* open TCP connections; 0: 64 */
        uint64_t tcp_idle_ms;   /* without a complete query; 0: 10000 */
        size_t tcp_max_pending; /* answer bytes queued per connection; 0: 16384 */
};

struct acme_dns_stats {
        uint64_t queries; /* UDP datagrams and TCP messages received */
        uint64_t noerror; /* answers by RCODE (NODATA is NOERROR) */
        uint64_t nxdomain;
        uint64_t refused;
        uint64_t formerr;
        uint64_t notimp;
        uint64_t badvers;
        uint64_t truncated;       /* of the answers above, sent with TC=1 */
        uint64_t dropped;         /* queries not answered (acme/dns.h, source port, destination) */
        uint64_t send_failed;     /* UDP answers the socket did not take (ENOBUFS, EAGAIN, ...) */
        uint64_t tcp_accepted;    /* connections served */
        uint64_t tcp_refused;     /* connections reset at accept (limit reached, no memory) */
        uint64_t tcp_timeouts;    /* connections closed by the idle deadline */
        uint64_t tcp_read_paused; /* times a connection stopped reading: answers not taken */
        uint64_t socket_pauses;   /* times a socket stopped polling after EMFILE & co. */
        unsigned tcp_open;        /* connections open now (closing ones included) */
};

/* Make a server with no sockets and no zones (every query is REFUSED until
 * acme_dns_server_set_zones()). Returns 0, -EINVAL (no loop) or -ENOMEM. */
int acme_dns_server_new(const struct acme_dns_server_config *cfg, struct acme_dns_server **ret);

/* Serve on @udp_fds and @tcp_fds (0..ACME_DNS_SERVER_SOCKETS_MAX each:
 * bound AF_INET or AF_INET6 sockets of the right type; TCP ones may already
 * listen) instead of the sockets given before, which are closed. TCP
 * connections already accepted continue until they end. The server sets
 * the sockets non-blocking, enables packet info on the UDP ones and calls
 * listen(fd, 64) on the TCP ones. On success the server owns the fds; on
 * failure they stay the caller's and the previous sockets keep serving.
 * Returns 0, -EINVAL (wrong type, unbound, too many, an fd given twice or
 * already the server's), -EAFNOSUPPORT, -EBADF/-ENOTSOCK, -ENOMEM, or what
 * listen() or libuv returned. */
int acme_dns_server_set_sockets(struct acme_dns_server *s, const int *udp_fds, size_t n_udp,
                                const int *tcp_fds, size_t n_tcp);

/* Answer from @zones from now on (copied; see acme_dns_zones_new() for what
 * is checked). Cheap: call it whenever a DNS-01 value is added or removed.
 * Returns 0, or -EINVAL with *reterr (allocated, caller frees; @reterr may
 * be NULL) or -ENOMEM, and then the previous zones stay. */
int acme_dns_server_set_zones(struct acme_dns_server *s, const struct acme_dns_zone *zones,
                              size_t n, char **reterr);

/* A copy of the counters. */
void acme_dns_server_stats(const struct acme_dns_server *s, struct acme_dns_stats *ret);

/* Close every socket and connection. The memory is released from the
 * handles' close callbacks, so the loop must run afterwards (uv_run() then
 * returns once everything is closed). Accepts NULL. */
void acme_dns_server_free(struct acme_dns_server *s);
