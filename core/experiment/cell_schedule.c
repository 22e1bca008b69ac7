/* A cell's pruning schedule: the callbacks one-shot, iterative and
 * gradual pruning (core/prune/schedule.c) drive, the iterative
 * schedule's trunk (rounds shared between targets, kept in the cache),
 * and the two ways into the schedule, by rounds or along the gradual
 * ramp. Part of one cell's pipeline (cell.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "experiment/cell_impl.h"
#include "experiment/experiment_impl.h"
#include "prunebench/version.h"
#include "train/train_impl.h"

/* ---- the schedule's callbacks ---------------------------------------------- */

/* A training between pruning points (a gradual ramp's, an iterative
 * round's) can end on an update that made a weight NaN or inf before any
 * loss showed it; the pruner would then fail on its scores. That is the
 * training's divergence, and is recorded as such. */
static int check_finite(pb_model *m, pb_error *err)
{
	const int n = pb_model_n_params(m);

	for (int i = 0; i < n; i++) {
		const pb_param *p = pb_model_param(m, i);

		for (size_t j = 0; j < p->n; j++)
			if (!isfinite(p->data[j]))
				return pb_error_set(err, PB_EDIVERGED,
						    "training diverged: %s[%zu] "
						    "is %g before pruning "
						    "(lower the learning rate)",
						    p->name, j,
						    (double)p->data[j]);
	}
	return 0;
}

int pbi_cell_prune(void *user, pb_model **m, const pb_target *t,
		   pb_error *err)
{
	pbi_cell *x = user;
	pb_prune_setup su = x->su;
	pb_prune_report *rep = &x->res->rep;
	const int oneshot = !x->env->plan ||
			    x->env->plan->schedule == PB_PRUNE_ONESHOT;
	int rc;

	/* the plugin runs on the cell's own threads (a gradual schedule
	 * prunes between the steps of a training that may have more) */
	pbi_cell_threads_base(x);
	su.target = t;
	x->cur_round++;
	/* A trunk round draws from the trunk's stream for that round, so
	 * it is the same whichever target's cell computes it. */
	if (x->trunk_K > 0 && x->cur_round <= x->trunk_K) {
		pbi_trunk_rng_set(x->trunk_rng, x->trunk_key, x->cur_round,
				  "prune");
		su.rng = x->trunk_rng;
	}
	if ((rc = check_finite(*m, err)) ||
	    (rc = pbi_prune_apply(m, &su, rep, err)))
		return rc;
	x->res->have_report = 1;
	/* A one-shot plugin that prunes in rounds itself (LTH) reports
	 * them, measured against the dense model it got. */
	for (int i = 0; oneshot && i < rep->n_rounds; i++)
		if (pbi_rounds_push(&x->rounds, rep->rounds[i]))
			return pb_error_set(err, PB_ENOMEM, "out of memory");
	return 0;
}

static int op_train_round(void *user, pb_model *m, int round, pb_error *err)
{
	pbi_cell *x = user;
	char phase[32], ext[40], *csv;
	int rc;

	(void)err;
	if (x->round_r.epochs <= 0)
		return 0;
	snprintf(phase, sizeof phase, "round%d", round);
	snprintf(ext, sizeof ext, ".round%d.csv", round);
	csv = pbi_cell_file(x, ext);
	pbi_cell_record_training(x, &x->round_r, x->round_steps, NULL);
	if (x->trunk_K > 0 && round <= x->trunk_K) {
		/* which -1: the schedule's own training between rounds. */
		pbi_cell_note_trunk_training(x, &(pbi_trunk_train){
			round, -1, 0.0, 0, 0, 0.0, 0.0 });
		x->seed_prefix = x->trunk_seed;
	}
	rc = pbi_cell_train(x, m, &x->round_r, x->round_steps, NULL, csv,
			    phase);
	x->seed_prefix = NULL;
	free(csv);
	return rc;
}

/* ---- the iterative schedule's trunk ---------------------------------------- */

/* Everything that determines the rounds toward env->trunk_hi. The
 * threads are the cell's own, not what spare cores raised them to: a
 * plugin's sums may depend on the thread count, and the plugin always
 * runs on the cell's own threads. */
static char *schedule_key_text(pbi_cell *x)
{
	const pb_cell_env *env = x->env;
	const pb_target *hi = env->trunk_hi ? env->trunk_hi : env->target;
	char opts[1024] = "", dense[1024], ft[1024], data[64], *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return NULL;
	if (env->options)
		pb_options_format(env->options, opts, sizeof opts);
	pbi_recipe_canon(env->dense_recipe, dense, sizeof dense);
	pbi_recipe_canon(env->finetune, ft, sizeof ft);
	pbi_trunk_data(&env->splits->train, data, sizeof data);
	fprintf(f, "schedule trunk v1|plugin=%s|version=%s|options=%s|"
		"hi=%d:%a:%d|ov=", env->pruner->name,
		env->pruner->version ? env->pruner->version : "", opts,
		(int)hi->kind, hi->amount, (int)hi->scope);
	for (int i = 0; i < hi->n_overrides; i++)
		fprintf(f, "%s=%a,", hi->overrides[i].layer,
			hi->overrides[i].amount);
	fprintf(f, "|rounds=%d:%a|model=%08x|dense=%s|finetune=%s|train=%s|"
		"val=%d|points=%s|threads=%d|blas=%s|numerics=%d",
		env->plan->rounds, env->plan->round_epochs,
		(unsigned)pbi_model_crc(env->dense), dense, ft, data,
		env->splits->val.n, env->dense_points ? "yes" : "no",
		x->threads_base, pb_blas_name(), PB_NUMERICS);
	if (fclose(f))
		return NULL;
	return text;
}

/* The trainings of restored rounds, recorded as if they ran. */
static void replay_trainings(pbi_cell *x, const pbi_trunk_state *st)
{
	for (int i = 0; i < st->n_trains; i++) {
		const pbi_trunk_train *t = &st->trains[i];

		x->cur_round = t->round;
		if (t->which < 0) {
			pbi_cell_record_training(x, &x->round_r,
						 x->round_steps, NULL);
			pbi_cell_note_trunk_training(x, t);
		} else {
			const pb_recipe *base = t->which == PB_RECIPE_DENSE ?
				x->env->dense_recipe : x->env->finetune;
			pb_lr_span span = { .sched = base,
					    .from = t->span_from,
					    .to = t->span_to };

			pbi_cell_plugin_training(x, (pb_recipe_which)t->which,
						 t->epochs, t->steps,
						 t->has_span ? &span : NULL);
		}
	}
}

static int op_trunk_begin(void *user, pb_model **m, int K, int *done,
			  pbi_rounds *rounds, pb_error *err)
{
	pbi_cell *x = user;
	pbi_trunk_state st = { 0 };
	int rc, found = 0;

	*done = 0;
	if (!(x->trunk_text = schedule_key_text(x)) ||
	    !(x->trunk_rng = gsl_rng_alloc(gsl_rng_mt19937)))
		return pb_error_set(err, PB_ENOMEM, "out of memory (trunk)");
	pbi_trunk_hash(x->trunk_text, x->trunk_key);
	snprintf(x->trunk_seed, sizeof x->trunk_seed, "trunk %s",
		 x->trunk_key);
	x->trunk_K = K;
	if (!x->env->trunk_dir)
		return 0;
	if ((rc = pbi_trunk_open(&x->trunk, x->env->trunk_dir,
				 x->trunk_text, x->env->log, err)) ||
	    (rc = pbi_trunk_deepest(x->trunk, K, &st, &found, err)))
		return rc;
	if (!found)
		return 0;
	for (int i = 0; i < st.n_rounds; i++)
		if (pbi_rounds_push(rounds, st.rounds[i])) {
			pbi_trunk_state_free(&st);
			return pb_error_set(err, PB_ENOMEM, "out of memory");
		}
	pb_model_free(*m);
	*m = st.model;
	st.model = NULL;
	replay_trainings(x, &st);
	x->cur_round = found;
	pbi_trunk_state_free(&st);
	if (x->env->log)
		fprintf(x->env->log, "trunk %s: rounds 1-%d of %d read from "
			"the cache\n", x->trunk_key, found, K);
	*done = found;
	return 0;
}

static int op_trunk_save(void *user, pb_model *m, int k,
			 const pbi_rounds *rounds, pb_error *err)
{
	pbi_cell *x = user;
	pbi_trunk_state st = { 0 };
	pb_error werr = { 0 };

	(void)err;
	if (!x->trunk || x->recs_failed)
		return 0;
	st.model = m;
	st.rounds = rounds->v;
	st.n_rounds = rounds->n;
	st.trains = x->trunk_trains;
	st.n_trains = x->n_trunk_trains;
	/* The numbers do not depend on the cache: a round that cannot be
	 * stored is said, and computed again next time. */
	if (pbi_trunk_store(x->trunk, k, &st, &werr) && x->env->log)
		fprintf(x->env->log, "%s\n", werr.msg);
	return 0;
}

static void op_trunk_end(void *user)
{
	pbi_cell *x = user;

	pbi_trunk_close(x->trunk);
	x->trunk = NULL;
}

static int op_train_until(void *user, pb_model *m, long step, pb_error *err)
{
	pbi_cell *x = user;

	(void)m;
	return pb_trainer_run(x->gradual, step, err);
}



/* The pruned model of a one-shot or iterative schedule. */
int pbi_cell_prune_rounds(pbi_cell *x, pb_model **m)
{
	const pb_cell_env *env = x->env;
	const pbi_schedule_ops ops = {
		.user = x, .prune = pbi_cell_prune,
		.train_round = op_train_round,
		.trunk_begin = env->splits ? op_trunk_begin : NULL,
		.trunk_save = op_trunk_save, .trunk_end = op_trunk_end,
	};
	int rc;

	if (env->plan && env->plan->schedule == PB_PRUNE_ITERATIVE &&
	    env->finetune) {
		x->round_r = *env->finetune;
		if (env->plan->round_epochs >= 0) {
			double re = env->plan->round_epochs;

			x->round_r.epochs = (int)ceil(re);
			if (re != floor(re))
				x->round_steps = (long)llround(
					re * (double)pbi_cell_steps_per_epoch(x,
							&x->round_r));
		}
	}
	if ((rc = pb_model_clone(m, env->dense, x->err)))
		return rc;
	return pbi_schedule_rounds(env->plan, env->target, env->trunk_hi,
				   env->dense, m, &ops, &x->rounds, x->err);
}

/* The gradual schedule: the fine-tune itself, pruned along the ramp. */
int pbi_cell_prune_gradually(pbi_cell *x, pb_model **m, const char *csv)
{
	const pb_cell_env *env = x->env;
	const pbi_schedule_ops ops = {
		.user = x, .prune = pbi_cell_prune,
		.train_until = op_train_until,
	};
	pb_train_hooks hooks;
	gsl_rng *rng = NULL;
	int rc;

	if ((rc = pb_model_clone(m, env->dense, x->err)) ||
	    (rc = pbi_cell_trainer(x, *m, env->finetune, 0, NULL, csv,
				   "gradual", &rng, &x->gradual, &hooks)))
		goto out;
	rc = pbi_schedule_gradual(env->plan, env->target,
				  pbi_cell_steps_per_epoch(x, env->finetune),
				  env->dense, m, &ops, &x->rounds, x->err);
	if (!rc) {
		rc = pb_trainer_finish(x->gradual, NULL, x->err);
	} else {
		/* After a failure the curve of the epochs it did is kept, and
		 * nothing more is trained (nor its error overwritten). */
		pb_error cerr = { 0 };

		pb_trainer_close(x->gradual, &cerr);
	}
out:
	pbi_cell_threads_base(x);
	pb_trainer_free(x->gradual);
	x->gradual = NULL;
	if (rng)
		gsl_rng_free(rng);
	return rc;
}
