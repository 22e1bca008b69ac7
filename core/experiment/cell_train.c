/* Training inside a cell: the status line, the cell's file names and
 * evaluation, a training session on its own random stream, and the
 * record of every training of the pruning phase (what the matched-budget
 * control replays and the trunk cache keeps). Part of one cell's
 * pipeline (cell.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "base/blas.h"
#include "experiment/cell_impl.h"
#include "experiment/experiment_impl.h"
#include "train/train_impl.h"

void pbi_cell_status(pbi_cell *x, const char *phase, int epoch, int epochs)
{
	if (x->env->status)
		x->env->status(x->env->status_user, phase, epoch, epochs);
}

/* FILES + ext, malloc-ed; NULL when the cell writes no files. */
char *pbi_cell_file(const pbi_cell *x, const char *ext)
{
	char *p;

	if (!x->env->files || asprintf(&p, "%s%s", x->env->files, ext) < 0)
		return NULL;
	return p;
}

long pbi_cell_steps_per_epoch(const pbi_cell *x, const pb_recipe *r)
{
	return x->env->splits ?
	       pb_recipe_steps_per_epoch(r, x->env->splits->train.n) : 0;
}

/* Top-1 on the test or validation split; NaN without data. */
int pbi_cell_evaluate(pbi_cell *x, pb_model *m, int split, double *acc)
{
	const pb_splits *sp = x->env->splits;
	double loss;

	if (!sp) {
		*acc = NAN;
		return 0;
	}
	return pb_evaluate(m, split == PBI_CELL_TEST ? &sp->test : &sp->val,
			   x->env->eval_batch, acc, &loss, x->err);
}

static void set_threads(int n)
{
#ifdef _OPENMP
	omp_set_num_threads(n);
#endif
	pbi_blas_set_threads(n);
}

void pbi_cell_threads_init(pbi_cell *x)
{
#ifdef _OPENMP
	x->threads_base = x->threads_now = omp_get_max_threads();
#else
	x->threads_base = x->threads_now = 1;
#endif
}

void pbi_cell_threads_base(pbi_cell *x)
{
	if (x->threads_now != x->threads_base) {
		set_threads(x->threads_base);
		x->threads_now = x->threads_base;
	}
}

/* Between two steps of the cell's own training: the threads the sweep
 * grants, when it grants more. The training is the same bits at any
 * thread count (tests/train/test_determinism.c). */
static int hook_step(void *user, pb_model *m, long step)
{
	pbi_cell *x = user;
	const int n = x->env->spare_threads(x->env->spare_user);

	(void)m;
	if (n > x->threads_now) {
		set_threads(n);
		x->threads_now = n;
		/* once per count: a gradual schedule comes back to the
		 * cell's own threads at every pruning step */
		if (x->env->log && n > x->threads_said)
			fprintf(x->env->log, "%s: spare cores, %d threads "
				"from step %ld on\n", x->phase, n, step + 2);
		if (n > x->threads_said)
			x->threads_said = n;
	}
	return 0;
}

static int hook_epoch(void *user, pb_model *m, int epoch)
{
	pbi_cell *x = user;

	(void)m;
	pbi_cell_status(x, x->phase, epoch + 1, x->epochs);
	return 0;
}

/* A fresh training session of phase `phase` on its own random stream. */
int pbi_cell_trainer(pbi_cell *x, pb_model *m, const pb_recipe *r,
		     long max_steps, const pb_lr_span *span, const char *csv,
		     const char *phase, gsl_rng **rng, pb_trainer **t,
		     pb_train_hooks *hooks)
{
	pb_train_opts opts = { 0 };
	char *seedtext;

	*t = NULL;
	if (asprintf(&seedtext, "%s|%s", x->seed_prefix ? x->seed_prefix :
		     x->env->stream, phase) < 0 ||
	    !(*rng = gsl_rng_alloc(gsl_rng_mt19937))) {
		if (seedtext)
			free(seedtext);
		*rng = NULL;
		return pb_error_set(x->err, PB_ENOMEM, "out of memory");
	}
	gsl_rng_set(*rng, pbi_seed_from(seedtext));
	free(seedtext);
	*hooks = (pb_train_hooks){ .user = x, .after_epoch = hook_epoch,
				   .after_step = x->env->spare_threads ?
						 hook_step : NULL };
	opts.hooks = hooks;
	opts.csv_path = csv;
	opts.progress = x->env->log;
	opts.label = x->env->label;
	opts.max_steps = max_steps;
	if (span)
		opts.span = *span;
	x->phase = phase;
	x->epochs = r->epochs;
	pbi_cell_status(x, phase, 0, r->epochs);
	return pb_trainer_new(t, m, &x->env->splits->train,
			      &x->env->splits->val, r, *rng, &opts, x->err);
}

int pbi_cell_train(pbi_cell *x, pb_model *m, const pb_recipe *r,
		   long max_steps, const pb_lr_span *span, const char *csv,
		   const char *phase)
{
	pb_train_hooks hooks;
	pb_trainer *t = NULL;
	gsl_rng *rng = NULL;
	int rc;

	if (!x->env->splits)
		return pb_error_set(x->err, PB_EINVAL, "%s: training needs "
				    "data; give a dataset", phase);
	rc = pbi_cell_trainer(x, m, r, max_steps, span, csv, phase, &rng, &t,
			      &hooks);
	if (!rc)
		rc = pb_trainer_finish(t, NULL, x->err);
	pbi_cell_threads_base(x);
	pb_trainer_free(t);
	if (rng)
		gsl_rng_free(rng);
	return rc;
}

/* ---- the trainings of the pruning phase ------------------------------------- */

/* The trunk round a training of the pruning phase belongs to: the
 * schedule's round while the schedule computes its trunk, else the
 * plugin's trunk round (pb_ctx_trunk_*), else 0. */
static int trunk_round_now(const pbi_cell *x)
{
	if (x->trunk_K > 0 && x->cur_round >= 1 && x->cur_round <= x->trunk_K)
		return x->cur_round;
	return x->trunk_info.round;
}

/* Notes a training of a schedule's trunk round for the cache. */
void pbi_cell_note_trunk_training(pbi_cell *x, const pbi_trunk_train *t)
{
	if (x->n_trunk_trains == x->cap_trunk_trains) {
		int cap = x->cap_trunk_trains ? 2 * x->cap_trunk_trains : 16;
		pbi_trunk_train *n = realloc(x->trunk_trains, sizeof *n *
					     (size_t)cap);

		if (!n) {
			x->recs_failed = 1;
			return;
		}
		x->trunk_trains = n;
		x->cap_trunk_trains = cap;
	}
	x->trunk_trains[x->n_trunk_trains++] = *t;
}

void pbi_cell_record_training(pbi_cell *x, const pb_recipe *r,
			      long max_steps, const pb_lr_span *span)
{
	const long spe = pbi_cell_steps_per_epoch(x, r);

	if (x->n_recs == x->cap_recs) {
		int cap = x->cap_recs ? 2 * x->cap_recs : 16;
		pbi_train_rec *n = realloc(x->recs, (size_t)cap * sizeof *n);

		if (!n) {
			x->recs_failed = 1;
			return;
		}
		x->recs = n;
		x->cap_recs = cap;
	}
	x->recs[x->n_recs++] = (pbi_train_rec){
		*r, max_steps, span ? *span : (pb_lr_span){ 0 },
		trunk_round_now(x) };
	x->res->rec.prune_epochs += max_steps > 0 && spe > 0 ?
		(double)max_steps / (double)spe : (double)r->epochs;
}

/* pb_prune_setup.on_train: a plugin's pb_ctx_train. */
void pbi_cell_plugin_training(void *user, pb_recipe_which which,
			      double epochs, long steps,
			      const pb_lr_span *span)
{
	pbi_cell *x = user;
	const pb_recipe *base = which == PB_RECIPE_DENSE ?
				x->env->dense_recipe : x->env->finetune;
	pb_recipe r;
	long max_steps;

	pbi_recipe_for(base, epochs, steps, pbi_cell_steps_per_epoch(x, base),
		       &r, &max_steps);
	pbi_cell_record_training(x, &r, max_steps, span);
	if (x->trunk_K > 0 && x->cur_round >= 1 && x->cur_round <= x->trunk_K)
		pbi_cell_note_trunk_training(x, &(pbi_trunk_train){
			x->cur_round, (int)which, epochs, steps, span != NULL,
			span ? span->from : 0.0, span ? span->to : 0.0 });
}
