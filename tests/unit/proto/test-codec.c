/* SPDX-License-Identifier: Apache-2.0 */
/* The codec against the byte vectors of protocol-zbus-gateway.md §1.3, §3.2
 * and §6 (hand-derived from vmihailenco/msgpack v4.0.4's rules). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/codec.h"

static const char *const UUID = "6f1b1c9e-2a4d-4c6b-9a57-1f0e3b2d4c5a";

static size_t unhex(const char *hex, uint8_t *out)
{
        size_t n = 0;

        for (const char *p = hex; *p; p++) {
                if (*p == ' ' || *p == '\n')
                        continue;
                unsigned v;
                sscanf(p, "%2x", &v);
                out[n++] = (uint8_t)v;
                p++;
        }
        return n;
}

static void assert_bytes(const struct strbuf *b, const char *hex)
{
        uint8_t want[1024];
        size_t n = unhex(hex, want);

        assert_int_equal(b->len, n);
        assert_memory_equal(b->data, want, n);
}

/* V1: msgpack of the wlID string. */
static void test_v1_wlid(void **state)
{
        struct strbuf b = STRBUF_INIT;

        assert_int_equal(proto_encode_str(&b, "37-1976-myapp"), 0);
        assert_bytes(&b, "ad 33 37 2d 31 39 37 36 2d 6d 79 61 70 70");
        strbuf_done(&b);
}

static const char *const V2 =
        "84 ae 54 4c 53 50 61 73 73 74 68 72 6f 75 67 68 c2"
        " a8 42 61 63 6b 65 6e 64 73 91 b8 68 74 74 70 3a 2f 2f 5b 33 30 30 3a 31 3a 32 3a 3a"
        " 33 5d 3a 39 30 30 30"
        " a7 4e 65 74 77 6f 72 6b c0"
        " a4 4e 61 6d 65 a5 6d 79 61 70 70";

static void test_v2_name_proxy(void **state)
{
        struct strbuf b = STRBUF_INIT;
        const char *backends[] = {"http://[300:1:2::3]:9000"};
        struct proto_gw_proxy gp;

        assert_int_equal(proto_gw_proxy_encode(&b, false, false, backends, 1, NULL, "myapp"), 0);
        assert_int_equal(b.len, 72);
        assert_bytes(&b, V2);

        assert_int_equal(proto_gw_proxy_decode(b.data, b.len, false, &gp), 0);
        assert_false(gp.tls_passthrough);
        assert_int_equal(gp.n_backends, 1);
        assert_string_equal(gp.backends[0].s, "http://[300:1:2::3]:9000");
        assert_false(gp.has_network);
        assert_string_equal(gp.name.s, "myapp");
        proto_gw_proxy_done(&gp);
        strbuf_done(&b);
}

static const char *const V3 =
        "85a24944d92436663162316339652d326134642d346336622d396135372d316630653362326434633561a649"
        "6e7075747392c40ead33372d313937362d6d79617070c44884ae544c53506173737468726f756768c2a84261"
        "636b656e647391b8687474703a2f2f5b3330303a313a323a3a335d3a39303030a74e6574776f726bc0a44e61"
        "6d65a56d79617070a64f626a65637482a44e616d65a76d616e61676572a756657273696f6ea5302e302e31a7"
        "5265706c79546fd92436663162316339652d326134642d346336622d396135372d316630653362326434633561"
        "a64d6574686f64ad5365744e616d656450726f7879";

static void test_v3_request(void **state)
{
        struct strbuf v1 = STRBUF_INIT, v2 = STRBUF_INIT, b = STRBUF_INIT;
        const char *backends[] = {"http://[300:1:2::3]:9000"};
        struct proto_request req;
        struct proto_str in[2];

        assert_int_equal(proto_encode_str(&v1, "37-1976-myapp"), 0);
        assert_int_equal(proto_gw_proxy_encode(&v2, false, false, backends, 1, NULL, "myapp"), 0);
        in[0] = (struct proto_str){v1.data, v1.len};
        in[1] = (struct proto_str){v2.data, v2.len};
        assert_int_equal(
                proto_request_encode(&b, UUID, "manager", "0.0.1", UUID, "SetNamedProxy", in, 2),
                0);
        assert_int_equal(b.len, 242);
        assert_bytes(&b, V3);

        assert_int_equal(proto_request_decode(b.data, b.len, &req), 0);
        assert_string_equal(req.id.s, UUID);
        assert_string_equal(req.reply_to.s, UUID);
        assert_string_equal(req.object_name.s, "manager");
        assert_string_equal(req.object_version.s, "0.0.1");
        assert_string_equal(req.method.s, "SetNamedProxy");
        assert_int_equal(req.n_inputs, 2);
        assert_int_equal(req.inputs[0].n, 14);
        assert_memory_equal(req.inputs[0].s, v1.data, 14);
        assert_int_equal(req.inputs[1].n, 72);
        proto_request_done(&req);
        strbuf_done(&v1);
        strbuf_done(&v2);
        strbuf_done(&b);
}

static void test_request_any_key_order_unknown_keys(void **state)
{
        /* {"Method":"Metrics","X":[1,{"a":2}],"ReplyTo":"r","Inputs":[],"ID":"i",
         *  "Object":{"Version":"0.0.1","Name":"manager"}} */
        uint8_t buf[256];
        size_t n = unhex("86 a6 4d 65 74 68 6f 64 a7 4d 65 74 72 69 63 73"
                         " a1 58 92 01 81 a1 61 02"
                         " a7 52 65 70 6c 79 54 6f a1 72"
                         " a6 49 6e 70 75 74 73 90"
                         " a2 49 44 a1 69"
                         " a6 4f 62 6a 65 63 74 82 a7 56 65 72 73 69 6f 6e a5 30 2e 30 2e 31"
                         " a4 4e 61 6d 65 a7 6d 61 6e 61 67 65 72",
                         buf);
        struct proto_request req;

        assert_int_equal(proto_request_decode(buf, n, &req), 0);
        assert_string_equal(req.method.s, "Metrics");
        assert_string_equal(req.reply_to.s, "r");
        assert_string_equal(req.object_name.s, "manager");
        assert_int_equal(req.n_inputs, 0);
        proto_request_done(&req);
}

static void test_request_garbage(void **state)
{
        static const char *const bad[] = {
                "",                  /* empty */
                "c1",                /* reserved byte */
                "85 a2 49 44",       /* truncated */
                "dd ff ff ff ff",    /* array claiming 4G elements */
                "df 7f ff ff ff",    /* map claiming 2G pairs */
                "a3 61 62",          /* short string */
                "92 c0 c0",          /* not a map: positional but wrong types? nil ok -> extra */
                "85 a2 49 44 d9 24", /* str8 longer than input */
                "81 c3 c3",          /* bool key */
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                uint8_t buf[64];
                size_t n = unhex(bad[i], buf);
                struct proto_request req;
                int r = proto_request_decode(buf, n, &req);

                if (i == 6) {
                        /* A positional struct of two nils decodes (Go does too). */
                        if (r == 0)
                                proto_request_done(&req);
                        continue;
                }
                assert_true(r < 0);
        }
}

static void test_response_success(void **state)
{
        struct strbuf data = STRBUF_INIT, b = STRBUF_INIT;
        struct proto_str id = {(char *)UUID, 36};
        struct proto_response resp;

        assert_int_equal(proto_encode_str(&data, "myapp.gent01.dev.grid.tf"), 0);
        assert_int_equal(proto_response_encode(&b, &id, data.data, data.len, NULL, NULL), 0);
        assert_int_equal(b.len, 96);
        assert_bytes(&b, "83a24944d92436663162316339652d326134642d346336622d396135372d316630653362"
                         "326434633561a64f757470757482a444617461c419b86d796170702e67656e7430312e"
                         "6465762e677269642e7466a54572726f72c0a54572726f72c0");
        assert_int_equal(proto_response_decode(b.data, b.len, &resp), 0);
        assert_true(resp.has_data);
        assert_false(resp.has_error);
        assert_false(resp.has_protocol_error);
        assert_int_equal(resp.data.n, 25);
        proto_response_done(&resp);
        strbuf_done(&data);
        strbuf_done(&b);
}

static void test_response_error(void **state)
{
        struct strbuf data = STRBUF_INIT, b = STRBUF_INIT;
        struct proto_str id = {(char *)UUID, 36};
        const char *msg = "failed to verify name contract: twin id mismatch xxxxxx";
        struct proto_response resp;

        assert_int_equal(strlen(msg), 55);
        assert_int_equal(proto_encode_str(&data, ""), 0);
        assert_int_equal(proto_response_encode(&b, &id, data.data, data.len, msg, NULL), 0);
        assert_int_equal(b.len, 137);
        /* Data = c4 01 a0; Output.Error = 81 a7"Message" d9 37 <55 bytes>; Error c0. */
        assert_non_null(memmem(b.data, b.len,
                               "\xa4"
                               "Data\xc4\x01\xa0\xa5"
                               "Error\x81\xa7"
                               "Message\xd9\x37",
                               25));
        assert_int_equal((uint8_t)b.data[b.len - 1], 0xc0);
        assert_int_equal(proto_response_decode(b.data, b.len, &resp), 0);
        assert_true(resp.has_error);
        assert_string_equal(resp.error.s, msg);
        proto_response_done(&resp);
        strbuf_done(&data);
        strbuf_done(&b);
}

static void test_response_error_only_success(void **state)
{
        struct strbuf b = STRBUF_INIT;
        struct proto_str id = {(char *)"x", 1};

        assert_int_equal(proto_response_encode(&b, &id, NULL, 0, NULL, NULL), 0);
        assert_bytes(&b, "83 a2 49 44 a1 78 a6 4f 75 74 70 75 74 82 a4 44 61 74 61 c0 a5 45 72 72"
                         " 6f 72 c0 a5 45 72 72 6f 72 c0");
        strbuf_done(&b);
}

static void test_metrics(void **state)
{
        struct strbuf b = STRBUF_INIT;
        struct proto_metric m = {"37-1976-myapp", 230.0};

        assert_int_equal(proto_metrics_encode(&b, &m, 1, NULL, 0), 0);
        assert_bytes(&b, "82 a7 52 65 71 75 65 73 74 81 ad 33 37 2d 31 39 37 36 2d 6d 79 61 70 70"
                         " cb 40 6c c0 00 00 00 00 00 a8 52 65 73 70 6f 6e 73 65 c0");
        strbuf_reset(&b);
        assert_int_equal(proto_metrics_encode(&b, NULL, 0, NULL, 0), 0);
        assert_bytes(&b, "82 a7 52 65 71 75 65 73 74 c0 a8 52 65 73 70 6f 6e 73 65 c0");
        strbuf_done(&b);
}

static void test_status(void **state)
{
        struct strbuf b = STRBUF_INIT;
        struct proto_worker_status w = {false, 1700000000, 123456789, ""};

        assert_int_equal(proto_status_encode(&b, "manager", "0.0.1", &w, 1), 0);
        assert_int_equal(b.len, 87);
        assert_bytes(&b, "82 a7 4f 62 6a 65 63 74 73 91 82 a4 4e 61 6d 65 a7 6d 61 6e 61 67 65 72"
                         " a7 56 65 72 73 69 6f 6e a5 30 2e 30 2e 31 a7 57 6f 72 6b 65 72 73 91 83"
                         " a5 53 74 61 74 65 a4 66 72 65 65 a9 53 74 61 72 74 54 69 6d 65"
                         " d7 ff 1d 6f 34 54 65 53 f1 00 a6 41 63 74 69 6f 6e a0");
        strbuf_done(&b);
}

static void test_time_forms(void **state)
{
        struct strbuf b = STRBUF_INIT;

        assert_int_equal(proto_encode_time(&b, 1700000000, 0), 0);
        assert_bytes(&b, "d6 ff 65 53 f1 00");
        strbuf_reset(&b);
        /* The zero time.Time (year 1) is negative: 12-byte form. */
        assert_int_equal(proto_encode_time(&b, -62135596800, 0), 0);
        assert_bytes(&b, "c7 0c ff 00 00 00 00 ff ff ff f1 88 6e 09 00");
        strbuf_done(&b);
}

static void test_public_config(void **state)
{
        uint8_t buf[128];
        size_t n = unhex("86 a4 54 79 70 65 a0 a4 49 50 76 34 82 a2 49 50 c4 04 b9 45 a6 0a"
                         " a4 4d 61 73 6b c4 04 ff ff ff 00 a4 49 50 76 36 82 a2 49 50 c0"
                         " a4 4d 61 73 6b c0 a3 47 57 34 c4 04 b9 45 a6 01 a3 47 57 36 c0"
                         " a6 44 6f 6d 61 69 6e b2 67 65 6e 74 30 31 2e 64 65 76 2e 67 72 69 64"
                         " 2e 74 66",
                         buf);
        struct proto_public_config pc;
        struct strbuf b = STRBUF_INIT;

        assert_int_equal(n, 90);
        assert_int_equal(proto_public_config_decode(buf, n, &pc), 0);
        assert_true(pc.ipv4.has_ip);
        assert_int_equal(pc.ipv4.ip_len, 4);
        assert_memory_equal(pc.ipv4.ip, "\xb9\x45\xa6\x0a", 4);
        assert_memory_equal(pc.ipv4.mask, "\xff\xff\xff\x00", 4);
        assert_false(pc.ipv6.has_ip);
        assert_true(pc.has_gw4);
        assert_false(pc.has_gw6);
        assert_string_equal(pc.domain.s, "gent01.dev.grid.tf");
        assert_int_equal(proto_public_config_encode(&b, &pc), 0);
        assert_int_equal(b.len, n);
        assert_memory_equal(b.data, buf, n);
        proto_public_config_done(&pc);
        strbuf_done(&b);

        /* 16-byte (v4-mapped) forms are accepted too. */
        n = unhex("81 a4 49 50 76 34 82 a2 49 50 c4 10 00 00 00 00 00 00 00 00 00 00 ff ff b9 45"
                  " a6 0a a4 4d 61 73 6b c4 10 ff ff ff ff ff ff ff ff ff ff ff ff ff ff ff 00",
                  buf);
        assert_int_equal(proto_public_config_decode(buf, n, &pc), 0);
        assert_int_equal(pc.ipv4.ip_len, 16);
        proto_public_config_done(&pc);
}

static void test_contract_results(void **state)
{
        uint8_t buf[512];
        size_t n;
        uint64_t id;
        struct proto_substrate_error e;
        struct proto_contract c;

        /* [uint64 42, {Err: nil, Code: int 0}] with Go's fixed widths. */
        n = unhex("92 cf 00 00 00 00 00 00 00 2a 82 a3 45 72 72 c0 a4 43 6f 64 65 d3 00 00 00 00"
                  " 00 00 00 00",
                  buf);
        assert_int_equal(proto_contract_id_result_decode(buf, n, &id, &e), 0);
        assert_int_equal(id, 42);
        assert_int_equal(e.code, 0);
        assert_false(e.has_err);
        proto_substrate_error_done(&e);
        /* Not found: {Err: "contract not found: object not found", Code: 1}. */
        n = unhex("92 cf 00 00 00 00 00 00 00 00 82 a3 45 72 72 d9 24 63 6f 6e 74 72 61 63 74 20"
                  " 6e 6f 74 20 66 6f 75 6e 64 3a 20 6f 62 6a 65 63 74 20 6e 6f 74 20 66 6f 75 6e"
                  " 64 a4 43 6f 64 65 d3 00 00 00 00 00 00 00 01",
                  buf);
        assert_int_equal(proto_contract_id_result_decode(buf, n, &id, &e), 0);
        assert_int_equal(e.code, 1);
        assert_true(e.has_err);
        assert_string_equal(e.err.s, "contract not found: object not found");
        proto_substrate_error_done(&e);

        /* [Contract{Version ce, State{IsCreated true, IsDeleted false, AsDeleted{..},
         *  IsGracePeriod false, AsGracePeriodBlockNumber cf}, ContractID cf, TwinID ce 37,
         *  ContractType{IsNameContract true, AsNameContract{Name "myapp"}}, SolutionProviderID {}},
         *  SubstrateError{nil, 0}] */
        n = unhex("92 86 a7 56 65 72 73 69 6f 6e ce 00 00 00 04"
                  " a5 53 74 61 74 65 85 a9 49 73 43 72 65 61 74 65 64 c3"
                  " a9 49 73 44 65 6c 65 74 65 64 c2"
                  " a9 41 73 44 65 6c 65 74 65 64 83 a1 61 c2 a1 62 c2 a1 63 c2"
                  " ad 49 73 47 72 61 63 65 50 65 72 69 6f 64 c2"
                  " b8 41 73 47 72 61 63 65 50 65 72 69 6f 64 42 6c 6f 63 6b 4e 75 6d 62 65 72"
                  " cf 00 00 00 00 00 00 00 00"
                  " aa 43 6f 6e 74 72 61 63 74 49 44 cf 00 00 00 00 00 00 00 2a"
                  " a6 54 77 69 6e 49 44 ce 00 00 00 25"
                  " ac 43 6f 6e 74 72 61 63 74 54 79 70 65 82 ae 49 73 4e 61 6d 65 43 6f 6e 74 72"
                  " 61 63 74 c3 ae 41 73 4e 61 6d 65 43 6f 6e 74 72 61 63 74 81 a4 4e 61 6d 65 c4"
                  " 05 6d 79 61 70 70"
                  " b2 53 6f 6c 75 74 69 6f 6e 50 72 6f 76 69 64 65 72 49 44 80"
                  " 82 a3 45 72 72 c0 a4 43 6f 64 65 d3 00 00 00 00 00 00 00 00",
                  buf);
        assert_int_equal(proto_contract_result_decode(buf, n, &c, &e), 0);
        assert_true(c.is_created);
        assert_false(c.is_grace_period);
        assert_int_equal(c.twin_id, 37);
        assert_int_equal(c.contract_id, 42);
        assert_int_equal(e.code, 0);
        proto_substrate_error_done(&e);
}

static void test_name_proxy_wrong_types(void **state)
{
        uint8_t buf[128];
        struct proto_gw_proxy gp;
        size_t n;

        /* TLSPassthrough nil: Go refuses nil for bool. */
        n = unhex("81 ae 54 4c 53 50 61 73 73 74 68 72 6f 75 67 68 c0", buf);
        assert_int_equal(proto_gw_proxy_decode(buf, n, false, &gp), -EDOM);
        /* Backends as a map. */
        n = unhex("81 a8 42 61 63 6b 65 6e 64 73 80", buf);
        assert_int_equal(proto_gw_proxy_decode(buf, n, false, &gp), -EDOM);
        /* A string instead of the struct. */
        n = unhex("a1 78", buf);
        assert_int_equal(proto_gw_proxy_decode(buf, n, false, &gp), -EDOM);
        /* Network "" is kept distinct from nil; bin accepted for str. */
        n = unhex("82 a7 4e 65 74 77 6f 72 6b a0 a4 46 51 44 4e c4 03 61 2e 62", buf);
        assert_int_equal(proto_gw_proxy_decode(buf, n, true, &gp), 0);
        assert_true(gp.has_network);
        assert_int_equal(gp.network.n, 0);
        assert_string_equal(gp.name.s, "a.b");
        assert_null(gp.backends);
        proto_gw_proxy_done(&gp);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_v1_wlid),
                cmocka_unit_test(test_v2_name_proxy),
                cmocka_unit_test(test_v3_request),
                cmocka_unit_test(test_request_any_key_order_unknown_keys),
                cmocka_unit_test(test_request_garbage),
                cmocka_unit_test(test_response_success),
                cmocka_unit_test(test_response_error),
                cmocka_unit_test(test_response_error_only_success),
                cmocka_unit_test(test_metrics),
                cmocka_unit_test(test_status),
                cmocka_unit_test(test_time_forms),
                cmocka_unit_test(test_public_config),
                cmocka_unit_test(test_contract_results),
                cmocka_unit_test(test_name_proxy_wrong_types),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
