/* SPDX-License-Identifier: Apache-2.0 */
#include "cli/table.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"

struct cli_table {
        size_t n_cols;
        unsigned right_align; /* bit per column */
        size_t n_cells;       /* header row included */
        size_t cap;
        char **cells; /* row-major, sanitised copies */
};

char *cli_sanitize(const char *s, size_t n)
{
        char *c = malloc(n + 1);

        if (!c)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                unsigned char ch = (unsigned char)s[i];

                c[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
        }
        c[n] = 0;
        return c;
}

static size_t display_width(const char *s)
{
        size_t w = 0;

        /* Count code points: every byte that is not a continuation byte. */
        for (; *s; s++)
                if (((unsigned char)*s & 0xc0) != 0x80)
                        w++;
        return w;
}

struct cli_table *cli_table_free(struct cli_table *t)
{
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_cells; i++)
                free(t->cells[i]);
        free(t->cells);
        free(t);
        return NULL;
}

int cli_table_add_row(struct cli_table *t, const char *const *cells)
{
        if (t->n_cells + t->n_cols > t->cap) {
                size_t cap = MAX(t->cap * 2, t->n_cells + t->n_cols);
                char **c = reallocarray(t->cells, cap, sizeof(char *));

                if (!c)
                        return -ENOMEM;
                t->cells = c;
                t->cap = cap;
        }
        for (size_t i = 0; i < t->n_cols; i++) {
                const char *s = cells[i] ? cells[i] : "-";
                char *c = cli_sanitize(s, strlen(s));

                if (!c) {
                        while (i-- > 0)
                                free(t->cells[t->n_cells + i]);
                        return -ENOMEM;
                }
                t->cells[t->n_cells + i] = c;
        }
        t->n_cells += t->n_cols;
        return 0;
}

struct cli_table *cli_table_new(const char *const *headers, size_t n_cols, unsigned right_align)
{
        struct cli_table *t;

        assert(n_cols > 0);
        t = calloc(1, sizeof(*t));
        if (!t)
                return NULL;
        t->n_cols = n_cols;
        t->right_align = right_align;
        if (cli_table_add_row(t, headers) < 0)
                return cli_table_free(t);
        return t;
}

size_t cli_table_rows(const struct cli_table *t)
{
        return t->n_cells / t->n_cols - 1;
}

int cli_table_print(const struct cli_table *t, FILE *f)
{
        _cleanup_free_ size_t *width = calloc(t->n_cols, sizeof(size_t));

        if (!width)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_cells; i++)
                width[i % t->n_cols] = MAX(width[i % t->n_cols], display_width(t->cells[i]));

        for (size_t i = 0; i < t->n_cells; i++) {
                size_t col = i % t->n_cols, pad = width[col] - display_width(t->cells[i]);
                bool last = col == t->n_cols - 1;

                if (col > 0)
                        fputs("  ", f);
                if (t->right_align & (1u << col))
                        fprintf(f, "%*s%s", (int)pad, "", t->cells[i]);
                else if (last)
                        fputs(t->cells[i], f);
                else
                        fprintf(f, "%s%*s", t->cells[i], (int)pad, "");
                if (last)
                        fputc('\n', f);
        }
        return ferror(f) ? -EIO : 0;
}
