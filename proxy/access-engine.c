/* SPDX-License-Identifier: Apache-2.0 */
/* The engine's side of the access log (issue 11): what the protocols share
 * to fill a struct proxy_access_record on a worker thread. The record, its
 * line and the rings are access-log.c's; where each protocol emits is in
 * docs/internals/proxy.md ("The access log's call sites"). */
#include <arpa/inet.h>
#include <string.h>
#include <time.h>

#include "proxy/routes.h"
#include "proxy/worker.h"

uint64_t proxy_access_clock(const struct proxy_worker *w)
{
        struct timespec ts;

        if (!proxy_access_on(w))
                return 0;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

const struct sockaddr *proxy_access_backend(const struct proxy_backend *be, uint16_t port_override,
                                            struct sockaddr_storage *ss)
{
        if (!be)
                return NULL;
        memcpy(ss, &be->addr, be->addr_len);
        if (port_override && ss->ss_family == AF_INET6)
                ((struct sockaddr_in6 *)ss)->sin6_port = htons(port_override);
        else if (port_override && ss->ss_family == AF_INET)
                ((struct sockaddr_in *)ss)->sin_port = htons(port_override);
        return (const struct sockaddr *)ss;
}

void proxy_access_emit(struct proxy_worker *w, struct proxy_access_record *rec)
{
        (void)proxy__access_emit(w->cfg->access_log, w->idx, rec);
}
