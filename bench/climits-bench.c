/* SPDX-License-Identifier: Apache-2.0 */
/* Micro-benchmark of the per-client limits on the accept path (issue 11);
 * not a test, nothing is asserted. Prints the CPU time (of the thread) of
 * one climits_admit() + climits_release() pair:
 *
 *   - one client address over and over (a flooder: its slot is hot);
 *   - a new address every time (a flood of distinct sources: slots are
 *     recycled, buckets touched all over the table);
 *   - with both limits off (only the total counter).
 *
 * Usage: climits-bench [MILLIONS]   (default 5)
 * Run it on an idle core: taskset -c 1 build/bench/climits-bench */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "proxy/climits.h"

static uint64_t cpu_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double run(struct climits *t, unsigned n, bool distinct)
{
        struct sockaddr_storage a = {.ss_family = AF_INET};
        struct sockaddr_in *in = (struct sockaddr_in *)&a;
        uint64_t t0 = cpu_ns();

        in->sin_addr.s_addr = htonl(0xc6336401u);
        for (unsigned i = 0; i < n; i++) {
                uint32_t h;

                if (distinct)
                        in->sin_addr.s_addr = htonl(0x0a000000u + i);
                /* Time advances 1 µs per connection: the rate stays met. */
                if (climits_admit(t, &a, CLIMIT_HTTP, 1000000u + i, &h) == CLIMIT_ADMIT)
                        climits_release(t, h);
        }
        return (double)(cpu_ns() - t0) / n;
}

int main(int argc, char **argv)
{
        unsigned n = (argc > 1 ? (unsigned)atoi(argv[1]) : 5) * 1000000u;
        struct climits t;

        if (climits_init(&t, 1u << 20, 1024, 2000000) < 0)
                return 1;
        printf("table: %u slots (%zu KiB)\n", t.n_buckets * CLIMIT_BUCKET_SLOTS,
               t.n_buckets * sizeof(*t.buckets) / 1024);
        printf("one address:        %.1f ns per admit+release\n", run(&t, n, false));
        printf("distinct addresses: %.1f ns per admit+release\n", run(&t, n, true));
        climits_set(&t, 1u << 20, CLIMIT_OFF, CLIMIT_OFF);
        printf("limits off:         %.1f ns per admit+release\n", run(&t, n, false));
        climits_done(&t);
        return 0;
}
