/* SPDX-License-Identifier: Apache-2.0 */
/* Replays fuzz corpora without libFuzzer (systemd's fuzz-main.c idea):
 * each argument is a file or a directory of files fed once to
 * LLVMFuzzerTestOneInput. Used by `meson test --suite fuzz-replay`. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fileio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
        char *data = NULL;
        size_t len = 0;
        int r;

        r = read_file_full(path, 16 * 1024 * 1024, &data, &len);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", path, strerror(-r));
                return 1;
        }
        LLVMFuzzerTestOneInput((const uint8_t *)data, len);
        free(data);
        return 0;
}

int main(int argc, char *argv[])
{
        unsigned n = 0, failed = 0;

        for (int i = 1; i < argc; i++) {
                struct stat st;

                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
                        return 1;
                }
                if (S_ISDIR(st.st_mode)) {
                        DIR *d = opendir(argv[i]);
                        struct dirent *de;

                        if (!d)
                                return 1;
                        while ((de = readdir(d))) {
                                char path[4096];

                                if (de->d_name[0] == '.')
                                        continue;
                                snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
                                failed += (unsigned)run_file(path);
                                n++;
                        }
                        closedir(d);
                } else {
                        failed += (unsigned)run_file(argv[i]);
                        n++;
                }
        }
        printf("replayed %u input(s), %u unreadable\n", n, failed);
        if (n == 0) {
                fprintf(stderr, "empty corpus\n");
                return 1;
        }
        return failed ? 1 : 0;
}
