/* SPDX-License-Identifier: Apache-2.0 */
/* The state-file parser (files in the state directory may be corrupt). */
#include <stdint.h>
#include <stdlib.h>

#include "daemon/state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct wl_proxy *p = NULL;
        char *err = NULL;

        if (gw_state_parse_proxy((const char *)data, size, &p, &err) == 0) {
                char *again = gw_state_dump_proxy(p);
                free(again);
                wl_proxy_free(p);
        }
        free(err);
        return 0;
}
