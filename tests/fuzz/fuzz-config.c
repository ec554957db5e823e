/* SPDX-License-Identifier: Apache-2.0 */
/* The node configuration parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct gw_config c;
        char *text, *err = NULL;

        if (size > 64 * 1024)
                return 0;
        text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = 0;
        if (gw_config_load_string("fuzz.conf", text, &c, &err) == 0)
                gw_config_done(&c);
        free(err);
        free(text);
        return 0;
}
