/* SPDX-License-Identifier: Apache-2.0 */
/* netns-connect: open a TCP connection from inside a named network
 * namespace through the netns socket API, send a request, print the reply.
 * For the e2e tests ("a connection opened through the netns socket API from
 * the gateway namespace reaches the workload's Yggdrasil address").
 *
 *   netns-connect --netns /run/netns/gateway --connect '[200:...]:8080' \
 *                 --send 'GET / HTTP/1.0\r\n\r\n' [--timeout 10]
 *
 * The socket is created on a namespace thread (netns_socket_sync()); the
 * connect() happens here, on the main thread: a socket stays in the
 * namespace it was created in, whatever thread uses it. */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/macros.h"
#include "netns/netns.h"

static int parse_endpoint(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
        char host[INET6_ADDRSTRLEN + 1];
        const char *port_s;
        char *end;
        unsigned long port;
        size_t n;

        if (s[0] == '[') {
                const char *close = strchr(s, ']');

                if (!close || close[1] != ':')
                        return -EINVAL;
                n = (size_t)(close - s - 1);
                if (n >= sizeof(host))
                        return -EINVAL;
                memcpy(host, s + 1, n);
                host[n] = 0;
                port_s = close + 2;
        } else {
                const char *colon = strrchr(s, ':');

                if (!colon)
                        return -EINVAL;
                n = (size_t)(colon - s);
                if (n >= sizeof(host))
                        return -EINVAL;
                memcpy(host, s, n);
                host[n] = 0;
                port_s = colon + 1;
        }
        errno = 0;
        port = strtoul(port_s, &end, 10);
        if (errno || *end || end == port_s || port == 0 || port > 65535)
                return -EINVAL;

        memset(ss, 0, sizeof(*ss));
        if (s[0] == '[') {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

                if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
                        return -EINVAL;
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons((uint16_t)port);
                *len = sizeof(*in6);
        } else {
                struct sockaddr_in *in = (struct sockaddr_in *)ss;

                if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
                        return -EINVAL;
                in->sin_family = AF_INET;
                in->sin_port = htons((uint16_t)port);
                *len = sizeof(*in);
        }
        return 0;
}

/* Expand \r \n \t \\ \0 and \xHH in place; returns the new length. */
static size_t unescape(char *s)
{
        char *out = s;

        for (const char *p = s; *p; p++) {
                if (*p != '\\' || !p[1]) {
                        *out++ = *p;
                        continue;
                }
                p++;
                switch (*p) {
                case 'r':
                        *out++ = '\r';
                        break;
                case 'n':
                        *out++ = '\n';
                        break;
                case 't':
                        *out++ = '\t';
                        break;
                case '0':
                        *out++ = 0;
                        break;
                case 'x':
                        if (p[1] && p[2]) {
                                char hex[3] = {p[1], p[2], 0};
                                char *end;
                                long v = strtol(hex, &end, 16);

                                if (!*end) {
                                        *out++ = (char)v;
                                        p += 2;
                                        break;
                                }
                        }
                        *out++ = '\\';
                        *out++ = *p;
                        break;
                default:
                        *out++ = *p;
                }
        }
        return (size_t)(out - s);
}

static int write_all(int fd, const char *p, size_t n)
{
        while (n > 0) {
                ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += k;
                n -= (size_t)k;
        }
        return 0;
}

static void usage(FILE *f)
{
        fprintf(f, "Usage: netns-connect [--netns PATH] --connect ADDR:PORT|[ADDR6]:PORT\n"
                   "                     [--send DATA] [--timeout SECONDS]\n"
                   "Opens a TCP connection from inside the network namespace at PATH (default:\n"
                   "the current one) through the netns socket API, sends DATA (\\r, \\n, \\t,\n"
                   "\\xHH escapes), and copies the reply to stdout until the peer closes.\n");
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                {"netns", required_argument, NULL, 'n'}, {"connect", required_argument, NULL, 'c'},
                {"send", required_argument, NULL, 's'},  {"timeout", required_argument, NULL, 't'},
                {"help", no_argument, NULL, 'h'},        {},
        };
        struct netns_socket_req req = {.type = SOCK_STREAM, .backlog = -1};
        _cleanup_free_ char *err = NULL;
        _cleanup_close_ int fd = -1;
        const char *connect_to = NULL;
        char *payload = NULL;
        size_t payload_len = 0;
        struct sockaddr_storage peer;
        socklen_t peer_len = 0;
        struct timeval tv = {.tv_sec = 10};
        int c, r, flags;

        while ((c = getopt_long(argc, argv, "n:c:s:t:h", opts, NULL)) >= 0) {
                switch (c) {
                case 'n':
                        if (strlen(optarg) >= sizeof(req.netns_path)) {
                                fprintf(stderr, "netns-connect: --netns path too long\n");
                                return 2;
                        }
                        strcpy(req.netns_path, optarg);
                        break;
                case 'c':
                        connect_to = optarg;
                        break;
                case 's':
                        payload = optarg;
                        payload_len = unescape(payload);
                        break;
                case 't':
                        tv.tv_sec = atol(optarg);
                        if (tv.tv_sec <= 0) {
                                fprintf(stderr, "netns-connect: bad --timeout '%s'\n", optarg);
                                return 2;
                        }
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (!connect_to || optind != argc) {
                usage(stderr);
                return 2;
        }
        if (parse_endpoint(connect_to, &peer, &peer_len) < 0) {
                fprintf(stderr,
                        "netns-connect: bad address '%s' (use A.B.C.D:PORT or [IPV6]:PORT)\n",
                        connect_to);
                return 2;
        }
        req.family = peer.ss_family;

        r = netns_socket_sync(&req, &fd, &err);
        if (r < 0) {
                fprintf(stderr, "netns-connect: %s\n", err ? err : strerror(-r));
                return 1;
        }
        /* Blocking I/O with timeouts is all a test tool needs. */
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0 ||
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
                fprintf(stderr, "netns-connect: setting up the socket: %m\n");
                return 1;
        }
        if (connect(fd, (struct sockaddr *)&peer, peer_len) < 0) {
                fprintf(stderr, "netns-connect: connect %s%s%s: %s\n", connect_to,
                        req.netns_path[0] ? " from " : "", req.netns_path,
                        errno == EINPROGRESS ? "Connection timed out" : strerror(errno));
                return 1;
        }
        if (payload_len > 0) {
                r = write_all(fd, payload, payload_len);
                if (r < 0) {
                        fprintf(stderr, "netns-connect: send to %s: %s\n", connect_to,
                                strerror(-r));
                        return 1;
                }
        }
        for (;;) {
                char buf[16384];
                ssize_t n = recv(fd, buf, sizeof(buf), 0);

                if (n == 0)
                        break;
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        fprintf(stderr, "netns-connect: receive from %s: %s\n", connect_to,
                                errno == EAGAIN ? "timed out" : strerror(errno));
                        return 1;
                }
                if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n) {
                        fprintf(stderr, "netns-connect: writing to stdout: %m\n");
                        return 1;
                }
        }
        if (fflush(stdout) != 0) {
                fprintf(stderr, "netns-connect: writing to stdout: %m\n");
                return 1;
        }
        return 0;
}
