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

/* DIR/NAME begun as an atomic write (base/file.h): a reader, or a crash
 * halfway, sees the old file or the new one. */
static int begin_in(pbi_atomic *a, const char *dir, const char *name,
		    pb_error *err)
{
	char *p = pbi_path_join(dir, name);
	int rc;

	if (!p)
		return pb_error_set(err, PB_ENOMEM, "out of memory");
	rc = pbi_atomic_begin(a, p, "plot data", err);
	free(p);
	return rc;
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

static void write_dense(FILE *f, const pb_table *t)
{
	for (int i = 0; i < t->n_rows; i++)
		if (t->rows[i].kind == PB_CELL_DENSE && t->rows[i].acc_after.n)
			fprintf(f, "%.6g %.6g\n", t->rows[i].acc_after.mean,
				isnan(t->rows[i].acc_after.sd) ? 0 :
				t->rows[i].acc_after.sd);
}

/* The controls as points of their own (dense, dense + fine-tune). */
static void write_controls(FILE *f, const pb_table *t)
{
	fputs(POINT_HEADER " label\n", f);
	for (int i = 0; i < t->n_rows; i++) {
		const pb_table_row *q = &t->rows[i];

		if (q->target || !q->acc_after.n)
			continue;
		write_point(f, q);
		fprintf(f, " \"%s\"\n", q->label);
	}
}

/* The rows of label i's series with a value, ordered by MACs kept;
 * returns their count (0 when row i is not the label's first). */
static int series_rows(const pb_table *t, int i, int *order)
{
	const pb_table_row *r = &t->rows[i];
	int m = 0;

	if (!r->target)
		return 0;
	for (int j = 0; j < i; j++)
		if (t->rows[j].target && !strcmp(t->rows[j].label, r->label))
			return 0;
	for (int j = i; j < t->n_rows; j++)
		if (t->rows[j].target && !strcmp(t->rows[j].label, r->label) &&
		    t->rows[j].acc_after.n)
			order[m++] = j;
	for (int a = 1; a < m; a++)
		for (int b = a; b > 0 && t->rows[order[b - 1]].macs_kept.mean >
					 t->rows[order[b]].macs_kept.mean; b--) {
			int tmp = order[b];

			order[b] = order[b - 1];
			order[b - 1] = tmp;
		}
	return m;
}

int pb_table_write_plot_data(const pb_table *t, const char *results_dir,
			     pb_error *err)
{
	char *dir = pbi_path_join(results_dir, "plots");
	int *order = malloc(((size_t)t->n_rows + 1) * sizeof *order);
	pbi_atomic series = { 0 }, a;
	int n_series = 0, rc = 0;

	if (!dir || !order) {
		rc = pb_error_set(err, PB_ENOMEM, "out of memory");
		goto out;
	}
	if (mkdir(dir, 0777) && errno != EEXIST) {
		rc = pb_error_set(err, PB_EIO, "%s: cannot create: %s", dir,
				  strerror(errno));
		goto out;
	}
	if ((rc = begin_in(&a, dir, "dense.txt", err)))
		goto out;
	write_dense(a.f, t);
	if ((rc = pbi_atomic_commit(&a, err)) ||
	    (rc = begin_in(&a, dir, "controls.dat", err)))
		goto out;
	write_controls(a.f, t);
	if ((rc = pbi_atomic_commit(&a, err)) ||
	    (rc = begin_in(&series, dir, "series.txt", err)))
		goto out;
	/* One series per label; series.txt, which names them, is published
	 * last, after every file it names. */
	for (int i = 0; i < t->n_rows && !rc; i++) {
		int m = series_rows(t, i, order);
		char name[32];

		if (m == 0)
			continue;
		snprintf(name, sizeof name, "%02d.dat", n_series);
		if ((rc = begin_in(&a, dir, name, err)))
			break;
		fputs(POINT_HEADER "\n", a.f);
		for (int k = 0; k < m; k++) {
			write_point(a.f, &t->rows[order[k]]);
			fputc('\n', a.f);
		}
		if ((rc = pbi_atomic_commit(&a, err)))
			break;
		fprintf(series.f, "%s\t%s\t%s\n", name, t->rows[i].label,
			pb_cell_kind_name(t->rows[i].kind));
		n_series++;
	}
	if (series.f)
		rc = rc ? (pbi_atomic_discard(&series), rc) :
			  pbi_atomic_commit(&series, err);
out:
	free(order);
	free(dir);
	return rc;
}
