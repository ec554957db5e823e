/* SPDX-License-Identifier: Apache-2.0 */
/* The bus request decoder and every argument decoder the daemon applies
 * to its inputs. */
#include <stdint.h>
#include <stdlib.h>

#include "proto/codec.h"
#include "proto/mp-read.h"

static int count_metric(int which, const char *id, size_t n, double v, void *ud)
{
        (*(size_t *)ud)++;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct proto_request req;
        struct proto_response resp;
        struct proto_gw_proxy gp;
        struct proto_public_config pc;
        struct proto_substrate_error e;
        struct proto_contract c;
        struct proto_str s;
        struct mp_reader r;
        uint64_t u;
        size_t n = 0;

        if (proto_request_decode(data, size, &req) == 0) {
                for (size_t i = 0; i < req.n_inputs; i++) {
                        if (proto_gw_proxy_decode(req.inputs[i].s, req.inputs[i].n, i & 1, &gp) ==
                            0)
                                proto_gw_proxy_done(&gp);
                        if (proto_decode_str(req.inputs[i].s, req.inputs[i].n, &s) == 0)
                                proto_str_done(&s);
                }
                proto_request_done(&req);
        }
        if (proto_response_decode(data, size, &resp) == 0)
                proto_response_done(&resp);
        if (proto_gw_proxy_decode(data, size, false, &gp) == 0)
                proto_gw_proxy_done(&gp);
        if (proto_public_config_decode(data, size, &pc) == 0)
                proto_public_config_done(&pc);
        if (proto_contract_id_result_decode(data, size, &u, &e) == 0)
                proto_substrate_error_done(&e);
        if (proto_contract_result_decode(data, size, &c, &e) == 0)
                proto_substrate_error_done(&e);
        (void)proto_metrics_decode(data, size, count_metric, &n);
        mp_reader_init(&r, data, size);
        while (mp_skip(&r) == 0 && mp_remaining(&r) > 0)
                ;
        return 0;
}
