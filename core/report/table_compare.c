/* `prunebench table DIR --compare A B`: Welch's test of two rows at each
 * target they share, so a reader can recompute any claim a paper's
 * reading makes about two methods (the table itself tests each row only
 * against the best at its target). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "prunebench/table.h"

/* The row labelled label at target (NULL: the row without a target),
 * or -1. */
static int row_at(const pb_table *t, const char *label, const char *target)
{
	for (int i = 0; i < t->n_rows; i++) {
		const pb_table_row *r = &t->rows[i];
		if (strcmp(r->label, label))
			continue;
		if (!target ? !r->target :
		    r->target && !strcmp(r->target, target))
			return i;
	}
	return -1;
}

/* Row of label at target, else its control row (a row of that label
 * without a target, compared at every target). */
static int row_or_control(const pb_table *t, const char *label,
			  const char *target)
{
	int i = row_at(t, label, target);
	return i >= 0 ? i : row_at(t, label, NULL);
}

static int has_label(const pb_table *t, const char *label)
{
	for (int i = 0; i < t->n_rows; i++)
		if (!strcmp(t->rows[i].label, label))
			return 1;
	return 0;
}

/* "no row 'x'; the table's rows: dense, dense + fine-tune, l1, ..." */
static int unknown_label(const pb_table *t, const char *label, pb_error *err)
{
	char list[PB_ERROR_MSG_MAX - 100];
	size_t len = 0;

	list[0] = '\0';
	for (int i = 0; i < t->n_rows && len < sizeof list; i++) {
		const char *l = t->rows[i].label;
		int seen = 0;
		for (int j = 0; j < i && !seen; j++)
			seen = !strcmp(t->rows[j].label, l);
		if (!seen)
			len += (size_t)snprintf(list + len, sizeof list - len,
						"%s'%s'", len ? ", " : "", l);
	}
	return pb_error_set(err, PB_ENOTFOUND, "no row '%s' in the table; "
			    "its rows: %s", label, list);
}

static void put_stat(FILE *out, const pb_stat *s)
{
	if (s->n == 0)
		fputs(" — |", out);
	else if (s->n == 1)
		fprintf(out, " %.2f (n = 1) |", s->mean);
	else
		fprintf(out, " %.2f ± %.2f (n = %d) |", s->mean, s->sd, s->n);
}

static void put_num(FILE *out, const char *fmt, double v)
{
	if (isfinite(v))
		fprintf(out, fmt, v);
	else
		fputs(" — |", out);
}

static void put_line(FILE *out, const char *target, const pb_table_row *a,
		     const pb_table_row *b)
{
	pb_welch_test w;

	pb_welch(&a->acc_after, &b->acc_after, &w);
	fprintf(out, "| %s |", target ? target : "—");
	put_stat(out, &a->acc_after);
	put_stat(out, &b->acc_after);
	put_num(out, " %+.2f |", w.diff);
	put_num(out, " %.2f |", w.t);
	put_num(out, " %.1f |", w.df);
	if (!isfinite(w.p))
		fputs(" — |\n", out);
	else if (w.p < 0.001)
		fputs(" < 0.001 |\n", out);
	else
		fprintf(out, " %.3f |\n", w.p);
}

/* Whether target appears among rows before index i (each target is
 * printed once, in the table's order). */
static int target_seen(const pb_table *t, int i, const char *target)
{
	for (int j = 0; j < i; j++)
		if (t->rows[j].target && !strcmp(t->rows[j].target, target))
			return 1;
	return 0;
}

/* The lines of the comparison, printed on out when not NULL; returns
 * how many there are. */
static int walk(const pb_table *t, const char *a, const char *b, FILE *out)
{
	int lines = 0, ia, ib;

	for (int i = 0; i < t->n_rows; i++) {
		const char *target = t->rows[i].target;
		if (!target || target_seen(t, i, target))
			continue;
		ia = row_or_control(t, a, target);
		ib = row_or_control(t, b, target);
		/* Two controls are compared once, below, not per target. */
		if (ia < 0 || ib < 0 || (!t->rows[ia].target &&
					 !t->rows[ib].target))
			continue;
		if (out)
			put_line(out, target, &t->rows[ia], &t->rows[ib]);
		lines++;
	}
	ia = row_at(t, a, NULL);
	ib = row_at(t, b, NULL);
	if (ia >= 0 && ib >= 0) {
		if (out)
			put_line(out, NULL, &t->rows[ia], &t->rows[ib]);
		lines++;
	}
	return lines;
}

int pb_table_compare(const pb_table *t, const char *a, const char *b,
		     FILE *out, pb_error *err)
{
	if (!has_label(t, a))
		return unknown_label(t, a, err);
	if (!has_label(t, b))
		return unknown_label(t, b, err);
	if (!walk(t, a, b, NULL))
		return pb_error_set(err, PB_ENOTFOUND, "rows '%s' and '%s' "
				    "share no target", a, b);
	fprintf(out, "Top-1 after fine-tune (%%), mean ± sd over seeds; "
		"Welch's t-test of '%s' against '%s', two-sided, not "
		"corrected for multiple comparisons (n < 2 on either side: no "
		"test).\n\n", a, b);
	fprintf(out, "| target | %s | %s | difference | t | df | p |\n"
		"|---|---:|---:|---:|---:|---:|---:|\n", a, b);
	walk(t, a, b, out);
	return 0;
}
