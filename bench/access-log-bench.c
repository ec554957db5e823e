/* SPDX-License-Identifier: Apache-2.0 */
/* Micro-benchmarks of the access log (issue 11); not a test, nothing is
 * asserted. Prints:
 *
 *   - the producer's cost per record on a worker (CPU time of the thread):
 *     formatting alone, a full
 *     proxy__access_emit() (two clock reads, format, push) into a ring a
 *     consumer thread keeps empty, the same with the record's clocks set,
 *     and the check of a disabled sink;
 *   - the cost of the wakeup a worker would pay per line if it woke the
 *     writer every time (an eventfd write), the reason for the tick;
 *   - the writer's throughput: lines per second from full rings into a file
 *     (the producer pushes preformatted lines and retries when a ring is
 *     full, so the writer is the bottleneck).
 *
 * Usage: access-log-bench [DIR] [SECONDS]   (DIR for the file, default /tmp)
 * Run it on an idle core: taskset -c 1 build/bench/access-log-bench */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/spsc-ring.h"
#include "daemon/accesslog.h"
#include "proxy/access-log.h"

static uint64_t clock_ns(clockid_t clock)
{
        struct timespec ts;

        clock_gettime(clock, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t now_ns(void)
{
        return clock_ns(CLOCK_MONOTONIC);
}

/* The producer figures are CPU time of this thread: on a shared machine
 * wall time also counts the time other processes had the core. */
static uint64_t cpu_ns(void)
{
        return clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

static struct sockaddr_in client;
static struct sockaddr_in6 up;

/* A typical proxied request. */
static struct proxy_access_record typical(uint64_t i)
{
        return (struct proxy_access_record){
                .start_ns = 1000000000ull + i,
                .end_ns = 1000000000ull + i + 1834567,
                .realtime_ns = 1796663248125291356ull + i,
                .upstream_start_ns = 1000000000ull + i + 100000,
                .upstream_head_ns = 1000000000ull + i + 1602000,
                .client = (const struct sockaddr *)&client,
                .upstream = (const struct sockaddr *)&up,
                .workload = PROXY_ACCESS_STR("4242-webshop"),
                .host = PROXY_ACCESS_STR("shop.gw1.example.net"),
                .method = PROXY_ACCESS_STR("GET"),
                .path = PROXY_ACCESS_STR("/static/js/app.3f9c2a.js?v=12"),
                .req_bytes = 512 + i % 1000,
                .resp_bytes = 48213 + i % 100000,
                .status = 200,
                .proto = PROXY_ACCESS_PROTO_HTTP11,
                .tls = PROXY_ACCESS_TLS_1_3,
        };
}

/* ---- producer side ---- */

#define BATCH 2000u /* records per timed batch: 2000 lines fit a 1 MiB ring */

static struct proxy_access_record recs[BATCH];

static void drain_all(struct spsc_ring *r)
{
        struct iovec iov[2];
        unsigned n = spsc_ring_peek(r, iov);
        size_t len = 0;

        for (unsigned i = 0; i < n; i++)
                len += iov[i].iov_len;
        spsc_ring_consume(r, len);
}

/* ns per record of @what over @rounds batches; the ring is emptied between
 * batches, outside the timing, so no push is a drop. */
static double run(struct proxy_access_sink *sink, unsigned rounds, bool clocks_set, int what)
{
        char line[PROXY_ACCESS_LINE_MAX];
        uint64_t total = 0, sum = 0;

        for (unsigned k = 0; k < rounds; k++) {
                uint64_t t0;

                for (unsigned i = 0; i < BATCH; i++) {
                        recs[i] = typical(k * BATCH + i);
                        if (!clocks_set)
                                recs[i].end_ns = recs[i].realtime_ns = 0;
                }
                t0 = cpu_ns();
                for (unsigned i = 0; i < BATCH; i++) {
                        if (what == 0)
                                sum += (uint64_t)proxy_access_format(&recs[i], 0, line,
                                                                     sizeof(line));
                        else
                                sum += (uint64_t)proxy__access_emit(sink, 0, &recs[i]);
                }
                total += cpu_ns() - t0;
                drain_all(sink->slots[0].ring);
        }
        if (sum == 1)
                printf("?\n"); /* keeps the formatter's result alive */
        return (double)total / ((double)rounds * BATCH);
}

static void bench_producer(unsigned rounds)
{
        char line[PROXY_ACCESS_LINE_MAX];
        struct spsc_ring *ring;
        struct proxy_access_slot slot = {};
        struct proxy_access_sink sink = {.n_slots = 1, .slots = &slot};
        struct proxy_access_record rec = typical(1);

        if (spsc_ring_new(1u << 20, &ring) < 0)
                exit(1);
        slot.ring = ring;
        printf("line: %d bytes\n", proxy_access_format(&rec, 0, line, sizeof(line)));
        printf("format only:                       %6.1f ns/record\n", run(&sink, rounds, true, 0));
        atomic_store(&sink.enabled, true);
        printf("emit (2 clock reads, format, push): %6.1f ns/record\n",
               run(&sink, rounds, false, 1));
        printf("emit, record's clocks set:         %6.1f ns/record\n", run(&sink, rounds, true, 1));
        atomic_store(&sink.enabled, false);
        printf("emit, log off:                     %6.1f ns/record\n", run(&sink, rounds, true, 1));
        printf("(drops: %" PRIu64 ")\n", atomic_load(&slot.dropped));
        spsc_ring_free(ring);
}

static void bench_wakeup(unsigned n)
{
        int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        uint64_t one = 1, t0, v;

        t0 = cpu_ns();
        for (unsigned i = 0; i < n; i++) {
                (void)!write(efd, &one, sizeof(one));
                if ((i & 1023) == 1023)
                        (void)!read(efd, &v, sizeof(v));
        }
        printf("eventfd write (a wakeup per line): %6.1f ns/call\n", (double)(cpu_ns() - t0) / n);
        close(efd);
}

/* ---- writer side ---- */

struct pusher {
        struct proxy_access_sink *sink;
        unsigned w;
        uint64_t n;
        atomic_bool *stop;
};

/* A worker as the engine would be one, at full speed: every record
 * through proxy__access_emit() (drops are counted, not retried). */
static void *pusher_main(void *ud)
{
        struct pusher *p = ud;

        while (!atomic_load_explicit(p->stop, memory_order_relaxed)) {
                struct proxy_access_record rec = typical(p->n++);

                rec.end_ns = rec.realtime_ns = 0;
                (void)proxy__access_emit(p->sink, p->w, &rec);
        }
        return NULL;
}

static void bench_writer(const char *dir, unsigned workers, double secs)
{
        struct gw_accesslog *al;
        struct gw_accesslog_stats st0, st1;
        struct pusher p[8];
        pthread_t t[8];
        atomic_bool stop = false;
        uint64_t t0, t1, emitted = 0;
        char path[512];
        struct stat sb;

        snprintf(path, sizeof(path), "%s/access-log-bench.%d.log", dir, (int)getpid());
        if (gw_accesslog_new(workers, GW_ACCESSLOG_RING_SIZE, &al) < 0 ||
            gw_accesslog_set_target(al, path, false, NULL) < 0) {
                fprintf(stderr, "cannot open %s\n", path);
                exit(1);
        }
        gw_accesslog_stats(al, &st0);
        t0 = now_ns();
        for (unsigned i = 0; i < workers; i++) {
                p[i] = (struct pusher){.sink = gw_accesslog_sink(al), .w = i, .stop = &stop};
                pthread_create(&t[i], NULL, pusher_main, &p[i]);
        }
        usleep((useconds_t)(secs * 1e6));
        atomic_store(&stop, true);
        for (unsigned i = 0; i < workers; i++) {
                pthread_join(t[i], NULL);
                emitted += p[i].n;
        }
        gw_accesslog_stats(al, &st1);
        t1 = now_ns();
        gw_accesslog_free(al);
        stat(path, &sb);
        printf("writer, %u worker%s flooding -> %s: %.0f lines/s written (%.0f MB/s), "
               "%.0f%% of %" PRIu64 " dropped\n",
               workers, workers == 1 ? "" : "s", dir,
               (double)(st1.written - st0.written) * 1e9 / (double)(t1 - t0),
               (double)sb.st_size / 1e6 * 1e9 / (double)(t1 - t0),
               100.0 * (double)(st1.dropped - st0.dropped) / (double)emitted, emitted);
        unlink(path);
}

int main(int argc, char **argv)
{
        const char *dir = argc > 1 ? argv[1] : "/tmp";
        double secs = argc > 2 ? atof(argv[2]) : 2.0;

        client = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(51234)};
        inet_pton(AF_INET, "203.0.113.5", &client.sin_addr);
        up = (struct sockaddr_in6){.sin6_family = AF_INET6, .sin6_port = htons(8080)};
        inet_pton(AF_INET6, "300:1:2:3::2", &up.sin6_addr);

        bench_producer(500);
        bench_wakeup(1000000);
        bench_writer(dir, 1, secs);
        bench_writer(dir, 2, secs);
        return 0;
}
