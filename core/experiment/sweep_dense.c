/* The sweep's dense phase: which training points its cells need, and the
 * dense model of every seed they start from (cached or trained, in
 * parallel over seeds), with a fingerprint of each. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>
#include <zlib.h>

#include "base/blas.h"
#include "experiment/experiment_impl.h"
#include "experiment/sweep.h"
#include "train/train_points.h"

/* CRC-32 of every state tensor of m: which dense model a cell was pruned
 * from, so that a table mixing cells of two dense trainings (a cache
 * cleared or another machine, after some cells ran) can say so. */
static uint32_t fingerprint(pb_model *m)
{
	uLong crc = crc32(0L, Z_NULL, 0);

	for (int i = 0; i < pb_model_n_params(m); i++) {
		const pb_param *p = pb_model_param(m, i);

		crc = crc32(crc, (const Bytef *)p->data,
			    (uInt)(p->n * sizeof(float)));
	}
	return (uint32_t)crc;
}

/* The training points (PB_OPT_POINT options, e.g. LTH's rewind) of the
 * methods with cells to run, as iterations of the dense training: the
 * dense training keeps the model at each. */
int pbi_sweep_points(pbi_sweep *S, const pb_cell *cells, const int *todo,
		     int n_todo, pb_error *err)
{
	const pb_experiment *e = S->e;
	const long per_epoch = pb_recipe_steps_per_epoch(&e->dense,
							 S->sp.train.n);
	const long total = (long)e->dense.epochs * per_epoch;

	S->n_points = 0;
	for (int k = 0; k < e->n_methods; k++) {
		const pb_exp_method *me = &e->methods[k];
		const pb_pruner *pr = pb_plugin_pruner(me->plugin);
		int used = 0;

		for (int i = 0; i < n_todo && !used; i++)
			used = cells[todo[i]].method_index == k;
		for (int j = 0; used && j < pr->n_options; j++) {
			const pb_pruner_option *d = &pr->options[j];
			const char *text;
			long step;

			if (d->type != PB_OPT_POINT)
				continue;
			text = pb_options_text(me->options, d->name);
			if (pbi_point_step(text, e->dense.epochs, per_epoch,
					   &step, err))
				return pb_error_prefix(err, "%s: [prune.%s] "
						       "%s: ", e->path,
						       me->name, d->name);
			if (step > total)
				return pb_error_set(err, PB_EINVAL, "%s: "
					"[prune.%s] %s = %s is iteration %ld, "
					"past the end of the dense training "
					"(%ld iterations: %d epochs of %ld)",
					e->path, me->name, d->name, text, step,
					total, e->dense.epochs, per_epoch);
			if (S->n_points == PBI_SWEEP_MAX_POINTS)
				return pb_error_set(err, PB_EINVAL, "%s: more "
					"than %d training points asked for",
					e->path, PBI_SWEEP_MAX_POINTS);
			S->points[S->n_points++] = step;
		}
	}
	pbi_points_sort(S->points, &S->n_points);
	return 0;
}

int pbi_sweep_dense(pbi_sweep *S, const pb_cell *cells, const int *todo,
		    int n_todo, int threads, pb_error *err)
{
	const pb_experiment *e = S->e;
	int need[PB_EXP_MAX_SEEDS], n_need = 0, outer, inner;
	/* Tasks of a cells phase, and a sweep's cell processes, run at
	 * once: one that trained a dense model would race the others
	 * writing it. */
	const int load_only = S->child || S->o->phase == PB_PHASE_CELLS;

	for (int s = 0; s < e->n_seeds; s++) {
		int used = 0;
		for (int i = 0; i < n_todo && !used; i++)
			used = cells[todo[i]].seed == e->seeds[s];
		if (used)
			need[n_need++] = s;
	}
	S->dense = calloc((size_t)e->n_seeds, sizeof *S->dense);
	S->dense_csv = calloc((size_t)e->n_seeds, sizeof *S->dense_csv);
	S->dense_base = calloc((size_t)e->n_seeds, sizeof *S->dense_base);
	S->dense_fp = calloc((size_t)e->n_seeds, sizeof *S->dense_fp);
	S->dense_rc = calloc((size_t)e->n_seeds, sizeof *S->dense_rc);
	S->dense_msg = calloc((size_t)e->n_seeds, sizeof *S->dense_msg);
	if (!S->dense || !S->dense_csv || !S->dense_base || !S->dense_fp ||
	    !S->dense_rc || !S->dense_msg)
		return pb_error_set(err, PB_ENOMEM, "out of memory");
	if (!n_need)
		return 0;
	outer = n_need < threads ? n_need : threads;
	inner = S->o->inner_threads > 0 ? S->o->inner_threads :
		(threads / outer > 0 ? threads / outer : 1);
	pbi_blas_set_threads(outer > 1 ? 1 : inner);
	pbi_progress_line(&S->prog, "dense models: %d seed%s (cache %s)",
			  n_need, n_need > 1 ? "s" : "", e->cache);
#pragma omp parallel for schedule(dynamic) num_threads(outer)
	for (int i = 0; i < n_need; i++) {
		int s = need[i], trained = 0;
		pb_error derr = { 0 };
		double t0 = pbi_now();
		FILE *log = outer == 1 ? S->prog.out : NULL;

		omp_set_num_threads(inner);
		S->dense_rc[s] = pbi_dense_get(e, &S->sp, e->seeds[s],
					       S->points, S->n_points,
					       load_only, log,
					       &S->dense[s], &S->dense_csv[s],
					       &S->dense_base[s], &trained,
					       &derr);
		if (S->dense_rc[s] && load_only)
			snprintf(S->dense_msg[s], sizeof S->dense_msg[0],
				 S->child ? "%s: a cell's own process trains "
				 "no dense model (the sweep that started it "
				 "makes them)" : "%s: the cells phase trains no "
				 "dense model; run the dense phase again: "
				 "prunebench run %s --phase dense --seed %lu",
				 derr.msg, e->path, e->seeds[s]);
		else if (S->dense_rc[s])
			snprintf(S->dense_msg[s], sizeof S->dense_msg[0], "%s",
				 derr.msg);
		else
			S->dense_fp[s] = fingerprint(S->dense[s]);
#pragma omp critical(pb_sweep_progress)
		{
			if (S->dense_rc[s]) {
				pbi_progress_line(&S->prog, "dense seed %lu: %s",
						  e->seeds[s], S->dense_msg[s]);
			} else {
				if (trained)
					S->sum->dense_trained++;
				else
					S->sum->dense_loaded++;
				pbi_progress_line(&S->prog, "dense seed %lu: %s "
						  "(%.1fs)", e->seeds[s],
						  trained ? "trained" :
						  "loaded from cache",
						  pbi_now() - t0);
			}
		}
	}
	return 0;
}

void pbi_sweep_dense_free(pbi_sweep *S)
{
	for (int s = 0; S->dense && s < S->e->n_seeds; s++) {
		pb_model_free(S->dense[s]);
		if (S->dense_csv)
			free(S->dense_csv[s]);
		if (S->dense_base)
			free(S->dense_base[s]);
	}
	free(S->dense);
	free(S->dense_csv);
	free(S->dense_base);
	free(S->dense_fp);
	free(S->dense_rc);
	free(S->dense_msg);
	S->dense = NULL;
	S->dense_csv = S->dense_base = NULL;
	S->dense_fp = NULL;
	S->dense_rc = NULL;
	S->dense_msg = NULL;
}
