/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/* Write @n bytes to @dir/@name atomically and durably: a temporary file in
 * @dir is written, fsync()ed, renamed over @name, and @dir is fsync()ed.
 * Returns 0 or -errno; on failure the old file (if any) is untouched. */
int write_file_atomic(const char *dir, const char *name, const void *data, size_t n, mode_t mode);

/* Read a whole regular file of at most @max bytes into a NUL-terminated
 * buffer. Returns 0 (and *ret_data, *ret_len), -EFBIG when larger, or
 * -errno. */
int read_file_full(const char *path, size_t max, char **ret_data, size_t *ret_len);

/* mkdir -p with @mode for the missing components. Returns 0 or -errno. */
int mkdir_p(const char *path, mode_t mode);
