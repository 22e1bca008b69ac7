/* Table rows -> the plots' data: RESULTS/plots/ with the dense
 * accuracy (dense.txt), the controls as points (controls.dat), one
 * series of points per label ordered by MACs kept (NN.dat) and their
 * index (series.txt), which scripts/plot and gnuplot read. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/file.h"
#include "prunebench/table.h"

/* DIR/NAME opened for writing, or NULL. */
static FILE *open_in(const char *dir, const char *name)
{
	char *p = pbi_path_join(dir, name);
	FILE *f = p ? fopen(p, "w") : NULL;

	free(p);
	return f;
}

/* The columns of a row as a point of the plots (controls.dat and the
 * series): the header's names, then a row's values, "-" as the target of
 * a control. The caller ends the line. */
#define POINT_HEADER \
	"# macs_kept_pct params_kept_pct sparsity_pct acc_after_pct " \
	"acc_after_sd target speedup_b128 acc_int8_pct"

static void write_point(FILE *f, const pb_table_row *q)
{
	fprintf(f, "%.6g %.6g %.6g %.6g %.6g %s %.6g %.6g", q->macs_kept.mean,
		q->params_kept.mean, 100.0 - q->params_kept.mean,
		q->acc_after.mean, isnan(q->acc_after.sd) ? 0 : q->acc_after.sd,
		q->target ? q->target : "-",
		q->speedup_b128.n ? q->speedup_b128.mean : NAN,
		q->acc_int8.n ? q->acc_int8.mean : NAN);
}

int pb_table_write_plot_data(const pb_table *t, const char *results_dir,
			     pb_error *err)
{
	char *dir = pbi_path_join(results_dir, "plots");
	FILE *series, *f;
	int n_series = 0;

	if (!dir)
		return pb_error_set(err, PB_ENOMEM, "out of memory");
	if (mkdir(dir, 0777) && errno != EEXIST) {
		pb_error_set(err, PB_EIO, "%s: cannot create: %s", dir,
			     strerror(errno));
		free(dir);
		return PB_EIO;
	}
	series = open_in(dir, "series.txt");
	if (!series) {
		pb_error_set(err, PB_EIO, "%s/series.txt: cannot write", dir);
		free(dir);
		return PB_EIO;
	}
	f = open_in(dir, "dense.txt");
	if (f) {
		for (int i = 0; i < t->n_rows; i++)
			if (t->rows[i].kind == PB_CELL_DENSE &&
			    t->rows[i].acc_after.n)
				fprintf(f, "%.6g %.6g\n",
					t->rows[i].acc_after.mean,
					isnan(t->rows[i].acc_after.sd) ? 0 :
					t->rows[i].acc_after.sd);
		fclose(f);
	}
	/* The controls as points of their own (dense, dense + fine-tune). */
	f = open_in(dir, "controls.dat");
	if (f) {
		fputs(POINT_HEADER " label\n", f);
		for (int i = 0; i < t->n_rows; i++) {
			const pb_table_row *q = &t->rows[i];

			if (q->target || !q->acc_after.n)
				continue;
			write_point(f, q);
			fprintf(f, " \"%s\"\n", q->label);
		}
		fclose(f);
	}
	/* One series per label, its points ordered by MACs kept. */
	for (int i = 0; i < t->n_rows; i++) {
		const pb_table_row *r = &t->rows[i];
		int seen = 0, *order, m = 0;
		char name[32];

		if (!r->target)
			continue;
		for (int j = 0; j < i; j++)
			if (t->rows[j].target &&
			    !strcmp(t->rows[j].label, r->label))
				seen = 1;
		if (seen)
			continue;
		order = malloc((size_t)t->n_rows * sizeof *order);
		if (!order)
			break;
		for (int j = i; j < t->n_rows; j++)
			if (t->rows[j].target &&
			    !strcmp(t->rows[j].label, r->label) &&
			    t->rows[j].acc_after.n)
				order[m++] = j;
		for (int a = 1; a < m; a++)
			for (int b = a; b > 0 &&
			     t->rows[order[b - 1]].macs_kept.mean >
			     t->rows[order[b]].macs_kept.mean; b--) {
				int tmp = order[b];
				order[b] = order[b - 1];
				order[b - 1] = tmp;
			}
		if (m == 0) {
			free(order);
			continue;
		}
		snprintf(name, sizeof name, "%02d.dat", n_series);
		f = open_in(dir, name);
		if (f) {
			fputs(POINT_HEADER "\n", f);
			for (int k = 0; k < m; k++) {
				write_point(f, &t->rows[order[k]]);
				fputc('\n', f);
			}
			fclose(f);
			fprintf(series, "%s\t%s\t%s\n", name, r->label,
				pb_cell_kind_name(r->kind));
			n_series++;
		}
		free(order);
	}
	fclose(series);
	free(dir);
	return 0;
}
