/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Column-aligned text tables for gatewayctl's human output. Cells are
 * copied; control characters in them (remote input) become '?', so a
 * daemon reply cannot move the terminal cursor. Widths count UTF-8 code
 * points. */

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct cli_table;

/* @headers has @n_cols entries; @right_align is a bit mask of columns
 * (1u << col) printed right-aligned (numbers). NULL on OOM. */
struct cli_table *cli_table_new(const char *const *headers, size_t n_cols, unsigned right_align);
struct cli_table *cli_table_free(struct cli_table *t);
/* Append one row of n_cols cells (NULL cells print as "-"). 0 or -ENOMEM. */
int cli_table_add_row(struct cli_table *t, const char *const *cells);
size_t cli_table_rows(const struct cli_table *t);
/* Print header and rows, two spaces between columns, no trailing blanks. */
int cli_table_print(const struct cli_table *t, FILE *f);

/* A copy of @s/@n with control characters replaced by '?'. NULL on OOM. */
char *cli_sanitize(const char *s, size_t n);

static inline void cli_table_freep(struct cli_table **t)
{
        cli_table_free(*t);
}
