/* What --dry-run says a sweep will cost: per method and in all, the
 * epochs of training of the cells still to run and of every cell (the
 * one rule of pb_cell_epochs), the epochs that trunks shared across
 * targets save, and a wall time from timing the model's training steps
 * and evaluation on this machine with the run's threads. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <omp.h>

#include "base/blas.h"
#include "experiment/experiment_impl.h"
#include "experiment/sweep.h"
#include "prunebench/bench.h"

typedef struct row {
	const char *name;
	int cells, todo;
	double all, run;          /* epochs, after trunk sharing */
	double saved_all, saved_run;
} row;

/* Epochs of trunk rounds that cells of one trunk (same seed and
 * pbi_trunk_group) would each compute and the sweep computes once: in
 * a group the cell of the deepest trunk computes it, the others read
 * it. saved[i] gets what cell i saves; only cells with use[i] count. */
static void trunk_savings(const pb_experiment *e, const pb_cell *cells,
			  int n, const unsigned char *use, const pb_epochs *x,
			  double *saved)
{
	char (*key)[1400] = calloc((size_t)(n ? n : 1), sizeof *key);
	unsigned char *grouped = calloc((size_t)(n ? n : 1), 1);

	for (int i = 0; i < n; i++)
		saved[i] = 0.0;
	if (!key || !grouped)
		goto out;
	for (int i = 0; i < n; i++)
		if (!use[i] || !pbi_trunk_group(e, &cells[i], key[i],
						sizeof key[i]))
			key[i][0] = '\0';
	/* The pruned cells' trunks, then the matched controls'. */
	for (int pass = 0; pass < 2; pass++) {
		memset(grouped, 0, (size_t)n);
		for (int i = 0; i < n; i++) {
			int best = i;

			if (!key[i][0] || grouped[i])
				continue;
			for (int j = i; j < n; j++) {
				double tj = pass ? x[j].matched_trunk :
					    x[j].trunk;
				double tb = pass ? x[best].matched_trunk :
					    x[best].trunk;

				if (key[j][0] && !grouped[j] &&
				    cells[j].seed == cells[i].seed &&
				    !strcmp(key[j], key[i]) && tj > tb)
					best = j;
			}
			for (int j = i; j < n; j++)
				if (key[j][0] && !grouped[j] &&
				    cells[j].seed == cells[i].seed &&
				    !strcmp(key[j], key[i])) {
					grouped[j] = 1;
					if (j != best)
						saved[j] += pass ?
							x[j].matched_trunk :
							x[j].trunk;
				}
		}
	}
out:
	free(key);
	free(grouped);
}

static int dense_cached(const pb_experiment *e, unsigned long seed)
{
	pb_error err = { 0 };
	pb_model *m = NULL;
	struct stat st;
	char *base, *ckpt = NULL;
	int yes = 0;

	if (pb_model_load(&m, e->model_path, &err))
		return 0;
	base = pbi_dense_base(e, m, seed);
	if (base && asprintf(&ckpt, "%s.ckpt", base) > 0)
		yes = !stat(ckpt, &st) && S_ISREG(st.st_mode);
	free(base);
	free(ckpt);
	pb_model_free(m);
	return yes;
}

/* Seconds per training epoch and per evaluated image, timed on the
 * experiment's model at its dense batch with `threads` threads. */
static int calibrate(const pb_experiment *e, int threads, double train_n,
		     double *epoch_s, double *eval_s, pb_bench_result *res,
		     char *name, size_t nn, pb_error *err)
{
	pb_model *m = NULL;
	int B = e->dense.batch > 0 ? e->dense.batch : 128, rc;
	int saved = omp_get_max_threads();

	if ((rc = pb_model_load(&m, e->model_path, err)))
		return rc;
	snprintf(name, nn, "%s", pb_model_name(m));
	omp_set_num_threads(threads);
	pbi_blas_set_threads(threads);
	/* A few warm-up steps, then 3 runs of about a quarter second. */
	rc = pb_bench_model(m, B, 2, 0, 3, 1, 1, 1, res, err);
	omp_set_num_threads(saved);
	pb_model_free(m);
	if (rc)
		return rc;
	if (!(res->train_ips > 0) || !(res->infer_ips > 0))
		return pb_error_set(err, PB_EINVAL, "calibration gave no "
				    "throughput");
	/* An epoch: its training steps, then the validation pass the
	 * training loop makes after it. */
	*epoch_s = train_n / res->train_ips + e->val_size / res->infer_ips;
	*eval_s = 1.0 / res->infer_ips;
	return 0;
}

static void print_row(FILE *f, const row *r)
{
	fprintf(f, "  %-24s %5d/%-5d %10.1f %10.1f %9.1f %9.1f\n", r->name,
		r->todo, r->cells, r->run, r->all, r->saved_run, r->saved_all);
}

int pbi_sweep_estimate(pbi_sweep *S, const pb_cell *cells, int n,
		       const unsigned char *done, FILE *f, pb_error *err)
{
	const pb_experiment *e = S->e;
	const int n_rows = 2 + e->n_methods;
	pb_epochs *x = calloc((size_t)(n ? n : 1), sizeof *x);
	double *sv_all = calloc((size_t)(n ? n : 1), sizeof *sv_all);
	double *sv_run = calloc((size_t)(n ? n : 1), sizeof *sv_run);
	unsigned char *sel = calloc((size_t)(n ? n : 1), 1);
	unsigned char *todo = calloc((size_t)(n ? n : 1), 1);
	row *rows = calloc((size_t)n_rows + 1, sizeof *rows);
	row total = { .name = "total" };
	double train_n = pbi_train_images(e), run_cells = 0;
	int rc = 0, n_todo = 0;

	if (!x || !sv_all || !sv_run || !sel || !todo || !rows) {
		rc = pb_error_set(err, PB_ENOMEM, "out of memory");
		goto out;
	}
	rows[0].name = "dense";
	rows[1].name = "dense+ft";
	for (int i = 0; i < e->n_methods; i++)
		rows[2 + i].name = e->methods[i].name;
	for (int i = 0; i < n; i++) {
		sel[i] = (unsigned char)pbi_sweep_selected(S, &cells[i]);
		todo[i] = sel[i] && !done[i];
		pb_cell_epochs(e, &cells[i], &x[i]);
		/* The dense training happens once per seed, before the
		 * cells, and not at all when the cache has it. */
		if (cells[i].kind == PB_CELL_DENSE && todo[i] &&
		    dense_cached(e, cells[i].seed))
			x[i].dense = -x[i].dense;
	}
	trunk_savings(e, cells, n, sel, x, sv_all);
	trunk_savings(e, cells, n, todo, x, sv_run);
	for (int i = 0; i < n; i++) {
		row *r = &rows[cells[i].method_index >= 0 ?
			       2 + cells[i].method_index :
			       cells[i].kind == PB_CELL_DENSE ? 0 : 1];
		pb_epochs y = x[i];
		double ep;

		if (!sel[i])
			continue;
		if (y.dense < 0)
			y.dense = -y.dense;
		ep = pb_cell_epochs_total(&y);
		r->cells++;
		r->all += ep - sv_all[i];
		r->saved_all += sv_all[i];
		if (todo[i]) {
			r->todo++;
			n_todo++;
			r->run += (x[i].dense < 0 ? ep - y.dense : ep) -
				  sv_run[i];
			r->saved_run += sv_run[i];
		}
	}
	fprintf(f, "\nepochs of training (an epoch: one pass over the %.0f "
		"training images; pruned models counted as dense; shared trunk "
		"rounds once per seed):\n", train_n);
	fprintf(f, "  %-24s %11s %10s %10s %9s %9s\n", "method", "cells",
		"to run", "all", "saved", "(all)");
	for (int i = 0; i < n_rows; i++) {
		if (!rows[i].cells)
			continue;
		print_row(f, &rows[i]);
		total.cells += rows[i].cells;
		total.todo += rows[i].todo;
		total.all += rows[i].all;
		total.run += rows[i].run;
		total.saved_all += rows[i].saved_all;
		total.saved_run += rows[i].saved_run;
	}
	print_row(f, &total);
	fprintf(f, "  (cells: to run/all; saved: the epochs trunks shared "
		"across targets save, of the cells to run and of all)\n");
	run_cells = n_todo;
	if (S->o->no_calibrate || !n_todo) {
		if (!n_todo)
			fprintf(f, "nothing to run\n");
		goto out;
	}
	{
		const int threads = S->o->threads > 0 ? S->o->threads :
				    e->threads > 0 ? e->threads :
				    omp_get_num_procs();
		const int outer = n_todo < threads ? n_todo : threads;
		const int inner = S->o->inner_threads > 0 ?
				  S->o->inner_threads :
				  (threads / outer > 0 ? threads / outer : 1);
		const double test_n = !strcmp(e->data.kind, "synthetic") ?
				      e->data.synthetic_n / 5.0 : 10000.0;
		pb_bench_result res;
		double epoch_s = 0.0, eval_s = 0.0, wall;
		char when[32], name[64];

		if ((rc = calibrate(e, inner, train_n, &epoch_s, &eval_s, &res,
				    name, sizeof name, err))) {
			pb_error_prefix(err, "calibration (--no-calibrate "
					"skips it): ");
			goto out;
		}
		/* Each cell also evaluates test and validation before and
		 * after its training. */
		wall = (total.run * epoch_s +
			run_cells * 2.0 * (test_n + e->val_size) * eval_s) /
		       outer;
		pbi_fmt_duration(when, sizeof when, wall);
		fprintf(f, "calibration: %s at batch %d, %d thread%s: %.0f "
			"images/s training, %.0f evaluating; an epoch %.1f s\n",
			name, e->dense.batch,
			inner, inner > 1 ? "s" : "", res.train_ips,
			res.infer_ips, epoch_s);
		fprintf(f, "estimated wall time of the cells to run: %s (%d at "
			"a time, %d thread%s each; latency and metrics not "
			"counted, pruned models timed as dense)\n", when,
			outer, inner, inner > 1 ? "s" : "");
	}
out:
	free(x);
	free(sv_all);
	free(sv_run);
	free(sel);
	free(todo);
	free(rows);
	return rc;
}
