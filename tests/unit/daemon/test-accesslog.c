/* SPDX-License-Identifier: Apache-2.0 */
/* The access log end to end below the engine: fake worker threads call the
 * engine's seam (proxy__access_emit() on the sink of a real writer), the
 * writer thread writes to a real file, FIFO, pipe, socket or (in a private
 * mount namespace) a fake journald, and the lines are read back and
 * checked field by field. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/macros.h"
#include "common/spsc-ring.h"
#include "common/strbuf.h"
#include "daemon/accesslog.h"
#include "daemon/daemon.h"
#include "proxy/access-log.h"
#include "proxy/proxy.h"

#define REAL0 1700000000000000000ull

static char tmpdir[64];

static int setup(void **state)
{
        strcpy(tmpdir, "/tmp/test-accesslog-XXXXXX");
        assert_non_null(mkdtemp(tmpdir));
        umask(022);
        return 0;
}

static int teardown(void **state)
{
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        assert_int_equal(system(cmd), 0);
        return 0;
}

static char *path_of(const char *name)
{
        static char p[4][128];
        static unsigned k;
        char *s = p[k++ % 4];

        snprintf(s, 128, "%s/%s", tmpdir, name);
        return s;
}

/* ---- the records the fake workers send, and the check of a line ---- */

struct fake_req {
        struct sockaddr_in client;
        struct sockaddr_in6 up;
        char workload[16], host[32], path[64];
        struct proxy_access_record rec;
};

static void make_record(unsigned w, uint32_t seq, struct fake_req *f)
{
        *f = (struct fake_req){};
        f->client.sin_family = AF_INET;
        f->client.sin_addr.s_addr = htonl(0xc0000201u + w); /* 192.0.2.(w+1) */
        f->client.sin_port = htons((uint16_t)(10000 + seq % 50000));
        f->up.sin6_family = AF_INET6;
        inet_pton(AF_INET6, "2001:db8::", &f->up.sin6_addr);
        f->up.sin6_addr.s6_addr[15] = (uint8_t)w;
        f->up.sin6_port = htons((uint16_t)(8000 + w));
        snprintf(f->workload, sizeof(f->workload), "wl-%u", w);
        snprintf(f->host, sizeof(f->host), "h%u.example.com", w);
        snprintf(f->path, sizeof(f->path), "/w%u/%u?secret=%u", w, seq, seq);
        f->rec = (struct proxy_access_record){
                .start_ns = 1000000000ull + seq * 1000ull,
                .end_ns = 1000000000ull + seq * 1000ull + 2000 + seq,
                .realtime_ns = REAL0 + seq * 1000000ull,
                .upstream_start_ns = 1000000000ull + seq * 1000ull + 10,
                .upstream_head_ns = 1000000000ull + seq * 1000ull + 1010,
                .client = (const struct sockaddr *)&f->client,
                .upstream = (const struct sockaddr *)&f->up,
                .workload = {f->workload, strlen(f->workload)},
                .host = {f->host, strlen(f->host)},
                .method = seq % 2 ? (struct proxy_access_str){"POST", 4}
                                  : (struct proxy_access_str){"GET", 3},
                .path = {f->path, strlen(f->path)},
                .status = 200 + seq % 5,
                .req_bytes = seq,
                .resp_bytes = seq * 3ull,
                .closed = seq % 7 == 0,
                .close = PROXY_CLOSE_KEEPALIVE_DONE,
                .proto = PROXY_ACCESS_PROTO_HTTP11,
                .tls = seq % 3 ? PROXY_ACCESS_TLS_1_3 : PROXY_ACCESS_TLS_NONE,
        };
}

static int emit(struct gw_accesslog *al, unsigned w, uint32_t seq)
{
        struct fake_req f;

        make_record(w, seq, &f);
        return proxy__access_emit(gw_accesslog_sink(al), w, &f.rec);
}

#define CHECK_STR(j, key, want)                                                                    \
        do {                                                                                       \
                json_t *_v = json_object_get((j), (key));                                          \
                if (!json_is_string(_v) || strcmp(json_string_value(_v), (want)) != 0)             \
                        fail_msg("%s: want %s", (key), (want));                                    \
        } while (0)
#define CHECK_INT(j, key, want)                                                                    \
        do {                                                                                       \
                json_t *_v = json_object_get((j), (key));                                          \
                if (!json_is_integer(_v) || json_integer_value(_v) != (long long)(want))           \
                        fail_msg("%s: want %lld", (key), (long long)(want));                       \
        } while (0)
#define CHECK_NULL(j, key)                                                                         \
        do {                                                                                       \
                if (!json_is_null(json_object_get((j), (key))))                                    \
                        fail_msg("%s: want null", (key));                                          \
        } while (0)

/* Parse one line, check every field against the record (w, seq) it names,
 * and return seq. */
static uint32_t check_line(const char *line, size_t len, unsigned *ret_w)
{
        json_error_t err;
        json_t *j = json_loadb(line, len, JSON_REJECT_DUPLICATES, &err);
        unsigned w, seq;
        char want[64];
        time_t t;
        struct tm tm;

        if (!j)
                fail_msg("not JSON: %.*s (%s)", (int)len, line, err.text);
        assert_int_equal(json_object_size(j), 16);
        assert_int_equal(sscanf(json_string_value(json_object_get(j, "path")), "/w%u/%u", &w, &seq),
                         2);
        /* The query is not logged by default. */
        snprintf(want, sizeof(want), "/w%u/%u", w, seq);
        CHECK_STR(j, "path", want);
        t = (time_t)((REAL0 + seq * 1000000ull - 2000 - seq) / 1000000000ull);
        gmtime_r(&t, &tm);
        snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d.%06lluZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (unsigned long long)((REAL0 + seq * 1000000ull - 2000 - seq) % 1000000000ull /
                                      1000));
        CHECK_STR(j, "time", want);
        snprintf(want, sizeof(want), "192.0.2.%u", w + 1);
        CHECK_STR(j, "client", want);
        CHECK_INT(j, "client_port", 10000 + seq % 50000);
        snprintf(want, sizeof(want), "wl-%u", w);
        CHECK_STR(j, "workload", want);
        snprintf(want, sizeof(want), "h%u.example.com", w);
        CHECK_STR(j, "host", want);
        CHECK_STR(j, "method", seq % 2 ? "POST" : "GET");
        CHECK_INT(j, "status", 200 + seq % 5);
        CHECK_INT(j, "req_bytes", seq);
        CHECK_INT(j, "resp_bytes", seq * 3ull);
        CHECK_INT(j, "duration_us", (2000 + seq) / 1000);
        if (w)
                snprintf(want, sizeof(want), "[2001:db8::%x]:%u", w, 8000 + w);
        else
                snprintf(want, sizeof(want), "[2001:db8::]:8000");
        CHECK_STR(j, "upstream", want);
        CHECK_INT(j, "upstream_us", 1);
        if (seq % 7 == 0)
                CHECK_STR(j, "close", "keepalive-done");
        else
                CHECK_NULL(j, "close");
        if (seq % 3)
                CHECK_STR(j, "tls", "TLSv1.3");
        else
                CHECK_NULL(j, "tls");
        CHECK_STR(j, "proto", "HTTP/1.1");
        json_decref(j);
        if (ret_w)
                *ret_w = w;
        return seq;
}

/* Every line of @buf checked; per worker, seqs strictly increase. Returns
 * the number of lines. */
static size_t check_lines(const char *buf, size_t len, unsigned n_workers, size_t skip_prefix)
{
        int64_t last[8];
        size_t lines = 0;

        assert_true(n_workers <= 8);
        for (unsigned i = 0; i < 8; i++)
                last[i] = -1;
        buf += skip_prefix;
        len -= skip_prefix;
        while (len > 0) {
                const char *nl = memchr(buf, '\n', len);
                unsigned w;
                uint32_t seq;

                assert_non_null(nl); /* whole lines only */
                seq = check_line(buf, (size_t)(nl - buf), &w);
                assert_true(w < n_workers);
                assert_true((int64_t)seq > last[w]);
                last[w] = seq;
                lines++;
                len -= (size_t)(nl - buf) + 1;
                buf = nl + 1;
        }
        return lines;
}

static char *read_file(const char *path, size_t *ret_len)
{
        FILE *f = fopen(path, "re");
        char *buf;
        long n;

        assert_non_null(f);
        fseek(f, 0, SEEK_END);
        n = ftell(f);
        rewind(f);
        buf = malloc((size_t)n + 1);
        assert_non_null(buf);
        assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
        buf[n] = 0;
        fclose(f);
        *ret_len = (size_t)n;
        return buf;
}

static uint64_t count_nl(const char *p, size_t n)
{
        uint64_t k = 0;

        for (size_t i = 0; i < n; i++)
                k += p[i] == '\n';
        return k;
}

/* ---- two fake workers into a file ---- */

#define PER_WORKER 20000u

struct worker_arg {
        struct gw_accesslog *al;
        unsigned w;
        uint64_t dropped;
};

static void *worker_main(void *ud)
{
        struct worker_arg *a = ud;

        for (uint32_t seq = 0; seq < PER_WORKER; seq++) {
                int r = emit(a->al, a->w, seq);

                if (r == -ENOBUFS)
                        a->dropped++;
                else if (r != 0)
                        abort(); /* not cmocka: its asserts are for the main thread */
        }
        return NULL;
}

static void test_file_two_workers(void **state)
{
        struct gw_accesslog *al = NULL;
        struct worker_arg args[2];
        struct gw_accesslog_stats st;
        const char *path = path_of("access.log");
        pthread_t t[2];
        struct stat sb;
        size_t len, lines;
        char *buf, *err = NULL;
        FILE *f;

        /* O_APPEND: what is there stays. */
        f = fopen(path, "we");
        assert_non_null(f);
        fputs("kept\n", f);
        fclose(f);
        chmod(path, 0600);

        assert_int_equal(gw_accesslog_new(2, 1u << 20, &al), 0);
        assert_int_equal(gw_accesslog_set_target(al, path, false, &err), 0);
        assert_null(err);
        for (unsigned w = 0; w < 2; w++) {
                args[w] = (struct worker_arg){.al = al, .w = w};
                assert_int_equal(pthread_create(&t[w], NULL, worker_main, &args[w]), 0);
        }
        for (unsigned w = 0; w < 2; w++)
                assert_int_equal(pthread_join(t[w], NULL), 0);
        assert_int_equal(gw_accesslog_flush(al, 10000), 0);
        gw_accesslog_stats(al, &st);
        buf = read_file(path, &len);
        assert_memory_equal(buf, "kept\n", 5);
        lines = check_lines(buf, len, 2, 5);
        /* Every line is in the file or counted as dropped, never both. */
        assert_int_equal(st.written, lines);
        assert_int_equal(st.dropped, args[0].dropped + args[1].dropped);
        assert_int_equal(lines + st.dropped, 2 * PER_WORKER);
        assert_int_equal(st.write_errors, 0);
        print_message("# %zu lines written, %" PRIu64 " dropped\n", lines, st.dropped);
        free(buf);
        al = gw_accesslog_free(al);

        /* A file it creates gets 0640 (umask 022). */
        path = path_of("new.log");
        assert_int_equal(gw_accesslog_new(1, 1u << 16, &al), 0);
        assert_int_equal(gw_accesslog_set_target(al, path, false, NULL), 0);
        assert_int_equal(stat(path, &sb), 0);
        assert_int_equal(sb.st_mode & 07777, 0640);
        al = gw_accesslog_free(al);
}

/* The query string when asked for; the stop writes what is queued. */
static void test_query_and_stop_drains(void **state)
{
        struct gw_accesslog *al = NULL;
        const char *path = path_of("q.log");
        size_t len;
        char *buf;

        assert_int_equal(gw_accesslog_new(1, 1u << 16, &al), 0);
        assert_int_equal(gw_accesslog_set_target(al, path, true, NULL), 0);
        for (uint32_t seq = 0; seq < 100; seq++)
                assert_int_equal(emit(al, 0, seq), 0);
        /* No flush: freeing drains. */
        al = gw_accesslog_free(al);
        buf = read_file(path, &len);
        assert_int_equal(count_nl(buf, len), 100);
        assert_non_null(strstr(buf, "\"path\":\"/w0/99?secret=99\""));
        free(buf);
}

/* logrotate: rename, then SIGHUP/SIGUSR1 reopens. Lines queued before the
 * reopen are in the old file, later ones in the new file, none lost. The
 * 2000 lines after the reopen make sure the writer runs while they are
 * being queued: lines it finds queued when it switches but that came after
 * the reopen must still go to the new file. */
static void test_reopen(void **state)
{
        struct gw_accesslog *al = NULL;
        const char *path = path_of("rot.log"), *old = path_of("rot.log.1");
        struct gw_accesslog_stats st;
        size_t len1, len2;
        char *a, *b;

        assert_int_equal(gw_accesslog_new(1, 1u << 20, &al), 0);
        assert_int_equal(gw_accesslog_set_target(al, path, false, NULL), 0);
        for (uint32_t seq = 0; seq < 50; seq++)
                assert_int_equal(emit(al, 0, seq), 0);
        assert_int_equal(gw_accesslog_flush(al, 5000), 0);
        assert_int_equal(rename(path, old), 0);
        /* Queued while the file is moved away and before the reopen. */
        for (uint32_t seq = 50; seq < 100; seq++)
                assert_int_equal(emit(al, 0, seq), 0);
        assert_int_equal(gw_accesslog_set_target(al, path, false, NULL), 0);
        for (uint32_t seq = 100; seq < 2100; seq++)
                assert_int_equal(emit(al, 0, seq), 0);
        assert_int_equal(gw_accesslog_flush(al, 5000), 0);
        gw_accesslog_stats(al, &st);
        a = read_file(old, &len1);
        b = read_file(path, &len2);
        assert_int_equal(check_lines(a, len1, 1, 0), 100);
        assert_int_equal(check_lines(b, len2, 1, 0), 2000);
        assert_non_null(strstr(a, "\"path\":\"/w0/99\""));
        assert_non_null(strstr(b, "\"path\":\"/w0/100\""));
        assert_int_equal(st.written, 2100);
        assert_int_equal(st.dropped, 0);
        free(a);
        free(b);
        al = gw_accesslog_free(al);
}

/* Bad targets change nothing; off stops queueing at once. */
static void test_targets(void **state)
{
        struct gw_accesslog *al = NULL;
        const char *path = path_of("t.log"), *other = path_of("t2.log");
        char *err = NULL;
        size_t len;
        char *buf;

        assert_int_equal(gw_accesslog_new(1, 1u << 16, &al), 0);
        /* Off by default: nothing is queued. */
        assert_int_equal(emit(al, 0, 0), 0);
        assert_int_equal(gw_accesslog_set_target(al, path, false, NULL), 0);
        assert_int_equal(emit(al, 0, 1), 0);

        assert_int_equal(gw_accesslog_set_target(al, "relative/x.log", false, &err), -EINVAL);
        assert_non_null(strstr(err, "relative/x.log"));
        err = mfree(err);
        assert_int_equal(gw_accesslog_set_target(al, tmpdir, false, &err), -EISDIR);
        assert_non_null(strstr(err, tmpdir));
        err = mfree(err);
        assert_int_equal(gw_accesslog_set_target(al, path_of("no/such/dir.log"), false, &err),
                         -ENOENT);
        err = mfree(err);
        /* Still the first file. */
        assert_int_equal(emit(al, 0, 2), 0);
        assert_int_equal(gw_accesslog_flush(al, 5000), 0);

        /* Another file: what follows goes there. */
        assert_int_equal(gw_accesslog_set_target(al, other, false, NULL), 0);
        assert_int_equal(emit(al, 0, 3), 0);
        assert_int_equal(gw_accesslog_flush(al, 5000), 0);

        /* Off: the emit returns at once and queues nothing. */
        assert_int_equal(gw_accesslog_set_target(al, NULL, false, NULL), 0);
        assert_int_equal(emit(al, 0, 4), 0);
        assert_int_equal(spsc_ring_used(gw_accesslog_sink(al)->slots[0].ring), 0);
        assert_int_equal(gw_accesslog_flush(al, 5000), 0);
        al = gw_accesslog_free(al);

        buf = read_file(path, &len);
        assert_int_equal(check_lines(buf, len, 1, 0), 2);
        assert_non_null(strstr(buf, "/w0/1\""));
        assert_non_null(strstr(buf, "/w0/2\""));
        free(buf);
        buf = read_file(other, &len);
        assert_int_equal(check_lines(buf, len, 1, 0), 1);
        assert_non_null(strstr(buf, "/w0/3\""));
        free(buf);
}

/* ---- a writer that cannot write ---- */

struct flood {
        struct gw_accesslog *al;
        uint32_t n;
        uint64_t ok, dropped;
};

static void *flood_main(void *ud)
{
        struct flood *fl = ud;

        for (uint32_t seq = 0; seq < fl->n; seq++) {
                int r = emit(fl->al, 0, seq);

                if (r == 0)
                        fl->ok++;
                else if (r == -ENOBUFS)
                        fl->dropped++;
                else
                        abort();
        }
        return NULL;
}

/* A FIFO whose reader never reads: the pipe fills, the writer waits for
 * POLLOUT, the worker's ring fills, and the worker goes on at full speed,
 * dropping and counting. If a push could block, the producer thread would
 * never finish and the test would time out. The stop gives up after its
 * timeout. */
static void test_stalled_fifo(void **state)
{
        const char *fifo = path_of("stall.fifo");
        struct gw_accesslog *al = NULL;
        struct gw_accesslog_stats st;
        struct flood fl;
        char *err = NULL, *buf;
        pthread_t t;
        size_t len = 0;
        int rfd;
        ssize_t k;

        assert_int_equal(mkfifo(fifo, 0600), 0);
        assert_int_equal(gw_accesslog_new(1, 1u << 16, &al), 0);
        /* Nobody reads yet: refused at once, not a blocked open. */
        assert_int_equal(gw_accesslog_set_target(al, fifo, false, &err), -ENXIO);
        assert_non_null(strstr(err, "without a reader"));
        err = mfree(err);

        rfd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        assert_true(rfd >= 0);
        assert_int_equal(gw_accesslog_set_target(al, fifo, false, NULL), 0);
        fl = (struct flood){.al = al, .n = 200000};
        assert_int_equal(pthread_create(&t, NULL, flood_main, &fl), 0);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(fl.ok + fl.dropped, fl.n);
        assert_true(fl.dropped > 0);
        /* Stalled: the flush cannot complete. */
        assert_int_equal(gw_accesslog_flush(al, 300), -ETIMEDOUT);
        gw_accesslog_stats(al, &st);
        assert_int_equal(st.dropped, fl.dropped);
        assert_int_equal(st.write_errors, 0);
        print_message("# stalled: %" PRIu64 " queued or written, %" PRIu64 " dropped, %" PRIu64
                      " written into the pipe\n",
                      fl.ok, fl.dropped, st.written);

        /* What went into the pipe is whole lines, each a valid record
         * (reading makes room: the writer may add more meanwhile, always
         * whole chunks of lines). */
        buf = malloc(1 << 20);
        assert_non_null(buf);
        while ((k = read(rfd, buf + len, (1 << 20) - len)) > 0)
                len += (size_t)k;
        assert_true(count_nl(buf, len) >= st.written);
        check_lines(buf, len, 1, 0);
        gw_accesslog_stats(al, &st);
        assert_true(count_nl(buf, len) <= st.written);
        free(buf);

        /* The reader is gone for good now: the stop drains what it can,
         * gives up after its timeout and counts the rest. */
        safe_close(rfd);
        al = gw_accesslog_free(al);
}

/* ---- stderr as a pipe and as a socket ---- */

static void check_stderr(int type)
{
        struct gw_accesslog *al = NULL;
        int p[2], saved;
        char buf[65536];
        size_t len = 0;
        ssize_t k;

        if (type == 0)
                assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        else
                assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p), 0);
        saved = dup(STDERR_FILENO);
        assert_true(saved >= 0);
        assert_int_equal(dup2(type == 0 ? p[1] : p[0], STDERR_FILENO), STDERR_FILENO);
        assert_int_equal(gw_accesslog_new(1, 1u << 16, &al), 0);
        assert_int_equal(gw_accesslog_set_target(al, "stderr", false, NULL), 0);
        for (uint32_t seq = 0; seq < 100; seq++)
                assert_int_equal(emit(al, 0, seq), 0);
        assert_int_equal(gw_accesslog_flush(al, 5000), 0);
        al = gw_accesslog_free(al);
        /* fd 2 itself was left as it was: blocking. */
        assert_int_equal(fcntl(STDERR_FILENO, F_GETFL) & O_NONBLOCK, 0);
        assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
        safe_close(saved);
        safe_close(type == 0 ? p[1] : p[0]);
        while ((k = read(type == 0 ? p[0] : p[1], buf + len, sizeof(buf) - len)) > 0)
                len += (size_t)k;
        safe_close(type == 0 ? p[0] : p[1]);
        assert_int_equal(check_lines(buf, len, 1, 0), 100);
}

static void test_stderr(void **state)
{
        check_stderr(0);
        check_stderr(1);
}

/* ---- the journal, with a fake journald in a mount namespace of our own ---- */

#define CHILD_CHECK(x)                                                                             \
        do {                                                                                       \
                if (!(x)) {                                                                        \
                        fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #x);                    \
                        _exit(1);                                                                  \
                }                                                                                  \
        } while (0)

/* The value of FIELD= in a native-protocol datagram (one "FIELD=value\n"
 * per field), or NULL. */
static const char *jfield(const char *dg, size_t len, const char *name, size_t *ret_len)
{
        size_t nl = strlen(name);

        for (const char *p = dg, *end = dg + len; p < end;) {
                const char *e = memchr(p, '\n', (size_t)(end - p));

                if (!e)
                        return NULL;
                if ((size_t)(e - p) > nl && memcmp(p, name, nl) == 0 && p[nl] == '=') {
                        *ret_len = (size_t)(e - p) - nl - 1;
                        return p + nl + 1;
                }
                p = e + 1;
        }
        return NULL;
}

static int journal_child(void)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX, .sun_path = "/run/systemd/journal/socket"};
        struct gw_accesslog *al = NULL;
        struct gw_accesslog_stats st;
        char dg[8192];
        int s;

        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
            (mkdir("/run/systemd", 0755) < 0 && errno != EEXIST) ||
            mount("tmpfs", "/run/systemd", "tmpfs", 0, "mode=0755") < 0)
                return 77;
        CHILD_CHECK(mkdir("/run/systemd/journal", 0755) == 0);

        /* A journald that went away and left its socket: sendmsg() gets
         * ECONNREFUSED. (With no socket at all libsystemd reports success
         * and drops the entry: nothing to test there.) */
        s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        CHILD_CHECK(s >= 0);
        CHILD_CHECK(bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0);
        safe_close(s);

        CHILD_CHECK(gw_accesslog_new(1, 1u << 16, &al) == 0);
        CHILD_CHECK(gw_accesslog_set_target(al, "journal", false, NULL) == 0);
        /* The writes fail, are counted, and the lines stay queued. */
        for (uint32_t seq = 0; seq < 3; seq++)
                CHILD_CHECK(emit(al, 0, seq) == 0);
        CHILD_CHECK(gw_accesslog_flush(al, 300) == -ETIMEDOUT);
        gw_accesslog_stats(al, &st);
        CHILD_CHECK(st.write_errors >= 1 && st.written == 0 && st.dropped == 0);

        /* journald is back: the retry delivers them, one entry per line. */
        CHILD_CHECK(unlink(sa.sun_path) == 0);
        s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        CHILD_CHECK(s >= 0);
        CHILD_CHECK(bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0);
        CHILD_CHECK(gw_accesslog_flush(al, 5000) == 0);
        for (uint32_t seq = 0; seq < 3; seq++) {
                ssize_t n = recv(s, dg, sizeof(dg), MSG_DONTWAIT);
                const char *v;
                size_t vl;
                char want[32];
                json_t *j;

                CHILD_CHECK(n > 0);
                v = jfield(dg, (size_t)n, "MESSAGE", &vl);
                CHILD_CHECK(v && v[vl - 1] == '}');
                j = json_loadb(v, vl, 0, NULL);
                CHILD_CHECK(j);
                snprintf(want, sizeof(want), "/w0/%u", seq);
                CHILD_CHECK(streq(json_string_value(json_object_get(j, "path")), want));
                json_decref(j);
                v = jfield(dg, (size_t)n, "GATEWAYD_ACCESS", &vl);
                CHILD_CHECK(v && vl == 1 && v[0] == '1');
                v = jfield(dg, (size_t)n, "WORKLOAD_ID", &vl);
                CHILD_CHECK(v && vl == 4 && memcmp(v, "wl-0", 4) == 0);
                v = jfield(dg, (size_t)n, "PRIORITY", &vl);
                CHILD_CHECK(v && vl == 1 && v[0] == '6');
                v = jfield(dg, (size_t)n, "SYSLOG_IDENTIFIER", &vl);
                CHILD_CHECK(v && vl == 8 && memcmp(v, "gatewayd", 8) == 0);
        }
        CHILD_CHECK(recv(s, dg, sizeof(dg), MSG_DONTWAIT) < 0);
        gw_accesslog_stats(al, &st);
        CHILD_CHECK(st.written == 3 && st.dropped == 0);
        gw_accesslog_free(al);
        return 0;
}

static void test_journal(void **state)
{
        pid_t pid = fork();
        int status;

        assert_true(pid >= 0);
        if (pid == 0)
                _exit(journal_child());
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        if (WEXITSTATUS(status) == 77)
                skip();
        assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- the Prometheus counters ---- */

static void test_metrics(void **state)
{
        _cleanup_strbuf_ struct strbuf b = STRBUF_INIT;
        struct gw_daemon d = {};

        assert_int_equal(gw_accesslog_new(1, 1u << 12, &d.alog), 0);
        assert_int_equal(gw_accesslog_set_target(d.alog, path_of("m.log"), false, NULL), 0);
        for (uint32_t seq = 0; seq < 40; seq++)
                (void)emit(d.alog, 0, seq); /* 4 KiB: some are dropped */
        assert_int_equal(gw_accesslog_flush(d.alog, 5000), 0);
        assert_int_equal(gw_accesslog_render_metrics(&d, &b), 0);
        struct gw_accesslog_stats st;
        char want[128];

        gw_accesslog_stats(d.alog, &st);
        assert_int_equal(st.written + st.dropped, 40);
        snprintf(want, sizeof(want), "\ngatewayd_access_log_lines_total %" PRIu64 "\n", st.written);
        assert_non_null(strstr(b.data, want));
        snprintf(want, sizeof(want), "\ngatewayd_access_log_dropped_total %" PRIu64 "\n",
                 st.dropped);
        assert_non_null(strstr(b.data, want));
        assert_non_null(strstr(b.data, "\ngatewayd_access_log_write_errors_total 0\n"));
        assert_non_null(strstr(b.data, "# TYPE gatewayd_access_log_dropped_total counter\n"));
        gw_accesslog_stop(&d);
        assert_null(d.alog);

        /* No access log at all: zeros. */
        strbuf_reset(&b);
        assert_int_equal(gw_accesslog_render_metrics(&d, &b), 0);
        assert_non_null(strstr(b.data, "\ngatewayd_access_log_lines_total 0\n"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_file_two_workers),
                cmocka_unit_test(test_query_and_stop_drains),
                cmocka_unit_test(test_reopen),
                cmocka_unit_test(test_targets),
                cmocka_unit_test(test_stalled_fifo),
                cmocka_unit_test(test_stderr),
                cmocka_unit_test(test_journal),
                cmocka_unit_test(test_metrics),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
