/* One cell's pipeline: dense model -> prune (one-shot, iterative or
 * gradual) -> evaluate -> fine-tune or train from scratch -> evaluate ->
 * measure -> save -> the matched-budget control. The sweep runs it for
 * every cell and `prunebench prune` runs it once, so both get the same
 * numbers from the same code. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "experiment/cell_impl.h"
#include "experiment/experiment_impl.h"
#include "prunebench/target.h"

/* ---- the phases ----------------------------------------------------------- */

static int from_scratch(pb_cell_kind k)
{
	return k == PB_CELL_SCRATCH || k == PB_CELL_SCRATCH_B;
}

static int check_env(const pb_cell_env *env, pb_error *err)
{
	const int prunes = env->kind == PB_CELL_PRUNE ||
			   from_scratch(env->kind);

	if (!env->dense || !env->stream)
		return pb_error_set(err, PB_EINVAL, "pb_cell_run needs a dense "
				    "model and a stream name");
	if (prunes && (!env->pruner || !env->target))
		return pb_error_set(err, PB_EINVAL, "a pruned cell needs a "
				    "pruner and a target");
	if (!env->splits && (env->kind == PB_CELL_DENSE_FT ||
			     from_scratch(env->kind) ||
			     (env->finetune && env->finetune->epochs > 0)))
		return pb_error_set(err, PB_EINVAL, "training needs data: give "
				    "a dataset");
	if (from_scratch(env->kind) && !env->dense_recipe)
		return pb_error_set(err, PB_EINVAL, "training from scratch "
				    "needs the dense recipe");
	return 0;
}

static int fine_tunes(const pb_cell_env *env)
{
	return env->splits && env->finetune && env->finetune->epochs > 0;
}

/* The dense baseline and the dense + fine-tune control. */
static int run_control(pbi_cell *x, pb_model **m, const char *csv)
{
	const pb_cell_env *env = x->env;
	pb_record *r = &x->res->rec;
	double t;
	int rc;

	if ((rc = pb_model_clone(m, env->dense, x->err)) ||
	    (rc = pbi_cell_evaluate(x, *m, PBI_CELL_TEST, &r->acc_before)))
		return rc;
	if (env->kind == PB_CELL_DENSE) {
		r->acc_after = r->acc_before;
		x->res->wrote_curve = csv && env->dense_curve &&
			!pbi_copy_atomic(env->dense_curve, csv, &(pb_error){ 0 });
		return 0;
	}
	t = pbi_now();
	rc = pbi_cell_train(x, *m, env->finetune, 0, NULL, csv, "finetune");
	x->res->wrote_curve = csv != NULL;
	r->time_finetune_s = pbi_now() - t;
	return rc;
}

/* A plugin that prunes at initialisation (pb_pruner.at_init: SNIP,
 * SynFlow): it prunes the model the dense training started from (drawn
 * again from the seed), not the trained one, once; the pruned model then
 * trains with the dense recipe instead of a fine-tune, or from a fresh
 * initialisation for the scratch controls. acc_before is the pruned,
 * untrained network's. */
static int run_at_init(pbi_cell *x, pb_model **m, const char *csv)
{
	const pb_cell_env *env = x->env;
	pb_record *r = &x->res->rec;
	double t = pbi_now();
	int rc;

	r->at_init = 1;
	if ((rc = pbi_at_init_check(env, x->err)) ||
	    (rc = pbi_at_init_model(env->dense, env->seed,
				    env->dense_recipe->init, m, x->err)) ||
	    (rc = pbi_cell_prune(x, m, env->target, x->err)))
		return rc;
	r->time_prune_s = pbi_now() - t;
	if ((rc = pbi_cell_evaluate(x, *m, PBI_CELL_TEST, &r->acc_before)))
		return rc;
	t = pbi_now();
	if (from_scratch(env->kind)) {
		rc = pbi_cell_train_from_scratch(x, *m, csv);
		x->res->wrote_curve = csv != NULL;
	} else if (env->splits && env->dense_recipe->epochs > 0) {
		r->scratch_epochs = env->dense_recipe->epochs;
		rc = pbi_cell_train(x, *m, env->dense_recipe, 0, NULL, csv,
				    "train");
		x->res->wrote_curve = csv != NULL;
	}
	r->time_finetune_s = pbi_now() - t;
	return rc;
}

/* A pruned cell: the schedule, then fine-tune or scratch training. */
static int run_pruned(pbi_cell *x, pb_model **m, const char *csv)
{
	const pb_cell_env *env = x->env;
	pb_record *r = &x->res->rec;
	const int gradual = env->plan &&
			    env->plan->schedule == PB_PRUNE_GRADUAL &&
			    !from_scratch(env->kind);
	double t = pbi_now();
	int rc;

	x->su = (pb_prune_setup){
		.pruner = env->pruner, .options = env->options,
		.target = env->target, .finetune = env->finetune,
		.dense = env->dense_recipe, .splits = env->splits,
		.rng = x->rng, .progress = env->log, .label = env->label,
		.dense_points = env->dense_points,
		.on_train = pbi_cell_plugin_training, .on_train_user = x,
		.trunk = &x->trunk_info,
	};
	x->trunk_info.dir = env->trunk_dir;
	r->prune_epochs = 0.0;
	pbi_cell_status(x, "prune", 0, 0);
	if (env->pruner->at_init) {
		rc = run_at_init(x, m, csv);
	} else if (gradual) {
		if (!fine_tunes(env))
			return pb_error_set(x->err, PB_EINVAL, "schedule = "
					    "gradual prunes during the "
					    "fine-tune, and there is none");
		r->time_prune_s = 0.0;
		rc = pbi_cell_prune_gradually(x, m, csv);
		x->res->wrote_curve = csv != NULL;
		r->time_finetune_s = pbi_now() - t;
	} else {
		rc = pbi_cell_prune_rounds(x, m);
		r->time_prune_s = pbi_now() - t;
		if (!rc)
			rc = pbi_cell_evaluate(x, *m, PBI_CELL_TEST,
					       &r->acc_before);
		t = pbi_now();
		if (!rc && from_scratch(env->kind)) {
			rc = pbi_cell_train_from_scratch(x, *m, csv);
			x->res->wrote_curve = csv != NULL;
		} else if (!rc && fine_tunes(env)) {
			rc = pbi_cell_train(x, *m, env->finetune, 0, NULL,
					    csv, "finetune");
			x->res->wrote_curve = csv != NULL;
		}
		r->time_finetune_s = pbi_now() - t;
	}
	if (*m) {
		pb_error merr = { 0 };

		if (pbi_reached_between(env->dense, *m, env->target->kind,
					&r->reached, &merr))
			r->reached = NAN;
	}
	pbi_cell_off_target(r, env->target);
	return rc;
}

static void finish_record(pbi_cell *x, int rc)
{
	pb_record *r = &x->res->rec;

	if (x->rounds.n) {
		r->rounds = x->rounds.v;
		r->n_rounds = x->rounds.n;
		x->rounds = (pbi_rounds){ 0 };
	}
	if (!rc)
		return;
	r->status = rc == PB_EDIVERGED ? PB_CELL_DIVERGED : PB_CELL_FAILED;
	pb_record_set(&r->error, x->err->msg[0] ? x->err->msg :
		      pb_strerror(rc));
	if (x->env->log)
		fprintf(x->env->log, "%s: %s\n", r->status == PB_CELL_DIVERGED ?
			"diverged" : "failed", r->error ? r->error : "");
}

int pb_cell_run(const pb_cell_env *env, pb_cell_result *res, pb_error *err)
{
	pb_error local = { 0 };
	pbi_cell x = { .env = env, .res = res, .err = err ? err : &local };
	pb_record *r = &res->rec;
	pb_model *m = NULL;
	char *csv;
	double t0 = pbi_now();
	int rc;

	memset(res, 0, sizeof *res);
	pb_record_init(r);
	r->status = PB_CELL_OK;
	pbi_cell_threads_init(&x);
	if ((rc = check_env(env, x.err))) {
		finish_record(&x, rc);
		return rc;
	}
	r->params_dense = (double)pb_model_count_params(env->dense);
	r->macs_dense = (double)pb_model_count_macs(env->dense);
	csv = pbi_cell_file(&x, ".csv");
	x.rng = gsl_rng_alloc(gsl_rng_mt19937);
	if (!x.rng || (env->files && !csv)) {
		rc = pb_error_set(x.err, PB_ENOMEM, "out of memory");
		goto done;
	}
	gsl_rng_set(x.rng, pbi_seed_from(env->stream));
	if (env->kind == PB_CELL_DENSE || env->kind == PB_CELL_DENSE_FT)
		rc = run_control(&x, &m, csv);
	else
		rc = run_pruned(&x, &m, csv);
	if (!rc && env->kind != PB_CELL_DENSE)
		rc = pbi_cell_evaluate(&x, m, PBI_CELL_TEST, &r->acc_after);
	if (!rc && env->splits)
		rc = pbi_cell_evaluate(&x, m, PBI_CELL_VAL, &r->val_after);
	if (!rc)
		rc = pbi_cell_measure_and_save(&x, m);
	if (res->have_metrics)
		pbi_cell_fill_metrics(r, &res->mt);
	if (!rc && env->quantize)
		rc = pbi_cell_quantize(env, m, r, x.err);
	if (!rc && env->matched && env->kind == PB_CELL_PRUNE &&
	    env->splits && env->finetune)
		pbi_cell_matched_control(&x);
done:
	pbi_cell_threads_base(&x);
	finish_record(&x, rc);
	r->time_total_s = pbi_now() - t0;
	pbi_cell_status(&x, NULL, 0, 0);
	if (x.rng)
		gsl_rng_free(x.rng);
	pbi_rounds_free(&x.rounds);
	free(x.recs);
	pbi_trunk_close(x.trunk);
	if (x.trunk_rng)
		gsl_rng_free(x.trunk_rng);
	free(x.trunk_text);
	free(x.trunk_trains);
	free(csv);
	if (rc)
		pb_model_free(m);
	else
		res->model = m;
	return rc;
}

void pb_cell_result_free(pb_cell_result *res)
{
	pb_record_clear(&res->rec);
	if (res->have_metrics)
		pb_metrics_free(&res->mt);
	pb_model_free(res->model);
	memset(res, 0, sizeof *res);
}
