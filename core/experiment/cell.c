/* One cell's pipeline: dense model -> prune (one-shot, iterative or
 * gradual) -> evaluate -> fine-tune or train from scratch -> evaluate ->
 * measure -> save -> the matched-budget control. The sweep runs it for
 * every cell and `prunebench prune` runs it once, so both get the same
 * numbers from the same code. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "experiment/experiment_impl.h"
#include "nn/mask.h"
#include "plugin/ctx_impl.h"
#include "plugin/trunk.h"
#include "prune/schedule.h"
#include "prunebench/checkpoint.h"
#include "prunebench/target.h"
#include "prunebench/version.h"
#include "train/train_impl.h"

/* One training of the pruning phase, as it ran: replayed on the dense
 * model for the matched-budget control. */
typedef struct train_rec {
	pb_recipe r;
	long max_steps;
	pb_lr_span span;              /* sched NULL: r's own schedule */
	int trunk;                    /* the trunk round it belongs to; 0:
					 the cell's own */
} train_rec;

/* A running cell: its environment, result and what it has recorded. */
typedef struct cell {
	const pb_cell_env *env;
	pb_cell_result *res;
	pb_error *err;
	gsl_rng *rng;                 /* the cell's stream */
	pb_prune_setup su;            /* the pruner's set-up */
	pbi_rounds rounds;
	const char *phase;
	int epochs;
	pb_trainer *gradual;          /* the gradual schedule's fine-tune */
	train_rec *recs;
	int n_recs, cap_recs, recs_failed;
	pb_recipe round_r;            /* iterative: training between rounds */
	long round_steps;
	/* Trunk sharing. The random streams of training phases are seeded
	 * from "seed_prefix|phase": the cell's stream, or in a trunk round
	 * the trunk's key. */
	const char *seed_prefix;
	pb_trunk_info trunk_info;     /* the plugin's trunk (pb_ctx_trunk_*) */
	char trunk_key[17];           /* the schedule's trunk, once begun */
	char *trunk_text;
	char trunk_seed[40];          /* "trunk KEY" */
	int trunk_K;                  /* its rounds this cell takes */
	int cur_round;                /* the schedule's round (1-based) */
	pbi_trunk *trunk;             /* the cache, locked, while computing */
	gsl_rng *trunk_rng;           /* a trunk round's pruning stream */
	pbi_trunk_train *trunk_trains;  /* trainings of the trunk rounds */
	int n_trunk_trains, cap_trunk_trains;
} cell;

static void status(cell *x, const char *phase, int epoch, int epochs)
{
	if (x->env->status)
		x->env->status(x->env->status_user, phase, epoch, epochs);
}

/* FILES + ext, malloc-ed; NULL when the cell writes no files. */
static char *file_path(const cell *x, const char *ext)
{
	char *p;

	if (!x->env->files || asprintf(&p, "%s%s", x->env->files, ext) < 0)
		return NULL;
	return p;
}

static long steps_per_epoch(const cell *x, const pb_recipe *r)
{
	return x->env->splits ?
	       pb_recipe_steps_per_epoch(r, x->env->splits->train.n) : 0;
}

enum { TEST, VAL };

/* Top-1 on the test or validation split; NaN without data. */
static int evaluate(cell *x, pb_model *m, int split, double *acc)
{
	const pb_splits *sp = x->env->splits;
	double loss;

	if (!sp) {
		*acc = NAN;
		return 0;
	}
	return pb_evaluate(m, split == TEST ? &sp->test : &sp->val,
			   x->env->eval_batch, acc, &loss, x->err);
}

/* ---- training inside a cell ------------------------------------------------ */

static int hook_epoch(void *user, pb_model *m, int epoch)
{
	cell *x = user;

	(void)m;
	status(x, x->phase, epoch + 1, x->epochs);
	return 0;
}

/* A fresh training session of phase `phase` on its own random stream. */
static int trainer_for(cell *x, pb_model *m, const pb_recipe *r,
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
	*hooks = (pb_train_hooks){ .user = x, .after_epoch = hook_epoch };
	opts.hooks = hooks;
	opts.csv_path = csv;
	opts.progress = x->env->log;
	opts.label = x->env->label;
	opts.max_steps = max_steps;
	if (span)
		opts.span = *span;
	x->phase = phase;
	x->epochs = r->epochs;
	status(x, phase, 0, r->epochs);
	return pb_trainer_new(t, m, &x->env->splits->train,
			      &x->env->splits->val, r, *rng, &opts, x->err);
}

static int train(cell *x, pb_model *m, const pb_recipe *r, long max_steps,
		 const pb_lr_span *span, const char *csv, const char *phase)
{
	pb_train_hooks hooks;
	pb_trainer *t = NULL;
	gsl_rng *rng = NULL;
	int rc;

	if (!x->env->splits)
		return pb_error_set(x->err, PB_EINVAL, "%s: training needs "
				    "data; give a dataset", phase);
	rc = trainer_for(x, m, r, max_steps, span, csv, phase, &rng, &t,
			 &hooks);
	if (!rc)
		rc = pb_trainer_finish(t, NULL, x->err);
	pb_trainer_free(t);
	if (rng)
		gsl_rng_free(rng);
	return rc;
}

/* ---- the trainings of the pruning phase ------------------------------------- */

/* The trunk round a training of the pruning phase belongs to: the
 * schedule's round while the schedule computes its trunk, else the
 * plugin's trunk round (pb_ctx_trunk_*), else 0. */
static int trunk_round_now(const cell *x)
{
	if (x->trunk_K > 0 && x->cur_round >= 1 && x->cur_round <= x->trunk_K)
		return x->cur_round;
	return x->trunk_info.round;
}

/* Notes a training of a schedule's trunk round for the cache. */
static void note_trunk_training(cell *x, const pbi_trunk_train *t)
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

static void record_training(cell *x, const pb_recipe *r, long max_steps,
			    const pb_lr_span *span)
{
	const long spe = steps_per_epoch(x, r);

	if (x->n_recs == x->cap_recs) {
		int cap = x->cap_recs ? 2 * x->cap_recs : 16;
		train_rec *n = realloc(x->recs, (size_t)cap * sizeof *n);

		if (!n) {
			x->recs_failed = 1;
			return;
		}
		x->recs = n;
		x->cap_recs = cap;
	}
	x->recs[x->n_recs++] = (train_rec){ *r, max_steps,
					    span ? *span : (pb_lr_span){ 0 },
					    trunk_round_now(x) };
	x->res->rec.prune_epochs += max_steps > 0 && spe > 0 ?
		(double)max_steps / (double)spe : (double)r->epochs;
}

/* pb_prune_setup.on_train: a plugin's pb_ctx_train. */
static void record_plugin_training(void *user, pb_recipe_which which,
				   double epochs, long steps,
				   const pb_lr_span *span)
{
	cell *x = user;
	const pb_recipe *base = which == PB_RECIPE_DENSE ?
				x->env->dense_recipe : x->env->finetune;
	pb_recipe r;
	long max_steps;

	pbi_recipe_for(base, epochs, steps, steps_per_epoch(x, base), &r,
		       &max_steps);
	record_training(x, &r, max_steps, span);
	if (x->trunk_K > 0 && x->cur_round >= 1 && x->cur_round <= x->trunk_K)
		note_trunk_training(x, &(pbi_trunk_train){
			x->cur_round, (int)which, epochs, steps, span != NULL,
			span ? span->from : 0.0, span ? span->to : 0.0 });
}

/* ---- the schedule's callbacks ---------------------------------------------- */

static int op_prune(void *user, pb_model **m, const pb_target *t,
		    pb_error *err)
{
	cell *x = user;
	pb_prune_setup su = x->su;
	pb_prune_report *rep = &x->res->rep;
	const int oneshot = !x->env->plan ||
			    x->env->plan->schedule == PB_PRUNE_ONESHOT;
	int rc;

	su.target = t;
	x->cur_round++;
	/* A trunk round draws from the trunk's stream for that round, so
	 * it is the same whichever target's cell computes it. */
	if (x->trunk_K > 0 && x->cur_round <= x->trunk_K) {
		pbi_trunk_rng_set(x->trunk_rng, x->trunk_key, x->cur_round,
				  "prune");
		su.rng = x->trunk_rng;
	}
	if ((rc = pbi_prune_apply(m, &su, rep, err)))
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
	cell *x = user;
	char phase[32], ext[40], *csv;
	int rc;

	(void)err;
	if (x->round_r.epochs <= 0)
		return 0;
	snprintf(phase, sizeof phase, "round%d", round);
	snprintf(ext, sizeof ext, ".round%d.csv", round);
	csv = file_path(x, ext);
	record_training(x, &x->round_r, x->round_steps, NULL);
	if (x->trunk_K > 0 && round <= x->trunk_K) {
		/* which -1: the schedule's own training between rounds. */
		note_trunk_training(x, &(pbi_trunk_train){ round, -1, 0.0, 0,
							   0, 0.0, 0.0 });
		x->seed_prefix = x->trunk_seed;
	}
	rc = train(x, m, &x->round_r, x->round_steps, NULL, csv, phase);
	x->seed_prefix = NULL;
	free(csv);
	return rc;
}

/* ---- the iterative schedule's trunk ---------------------------------------- */

/* Everything that determines the rounds toward env->trunk_hi. */
static char *schedule_key_text(cell *x)
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
		"val=%d|points=%s|threads=%d|blas=%s", env->plan->rounds,
		env->plan->round_epochs, (unsigned)pbi_model_crc(env->dense),
		dense, ft, data, env->splits->val.n,
		env->dense_points ? "yes" : "no", omp_get_max_threads(),
		pb_blas_name());
	if (fclose(f))
		return NULL;
	return text;
}

/* The trainings of restored rounds, recorded as if they ran. */
static void replay_trainings(cell *x, const pbi_trunk_state *st)
{
	for (int i = 0; i < st->n_trains; i++) {
		const pbi_trunk_train *t = &st->trains[i];

		x->cur_round = t->round;
		if (t->which < 0) {
			record_training(x, &x->round_r, x->round_steps, NULL);
			note_trunk_training(x, t);
		} else {
			const pb_recipe *base = t->which == PB_RECIPE_DENSE ?
				x->env->dense_recipe : x->env->finetune;
			pb_lr_span span = { .sched = base,
					    .from = t->span_from,
					    .to = t->span_to };

			record_plugin_training(x, (pb_recipe_which)t->which,
					       t->epochs, t->steps,
					       t->has_span ? &span : NULL);
		}
	}
}

static int op_trunk_begin(void *user, pb_model **m, int K, int *done,
			  pbi_rounds *rounds, pb_error *err)
{
	cell *x = user;
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
	cell *x = user;
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
	cell *x = user;

	pbi_trunk_close(x->trunk);
	x->trunk = NULL;
}

static int op_train_until(void *user, pb_model *m, long step, pb_error *err)
{
	cell *x = user;

	(void)m;
	return pb_trainer_run(x->gradual, step, err);
}

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

/* The pruned model of a one-shot or iterative schedule. */
static int prune_rounds(cell *x, pb_model **m)
{
	const pb_cell_env *env = x->env;
	const pbi_schedule_ops ops = {
		.user = x, .prune = op_prune, .train_round = op_train_round,
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
					re * (double)steps_per_epoch(x,
							&x->round_r));
		}
	}
	if ((rc = pb_model_clone(m, env->dense, x->err)))
		return rc;
	return pbi_schedule_rounds(env->plan, env->target, env->trunk_hi,
				   env->dense, m, &ops, &x->rounds, x->err);
}

/* The gradual schedule: the fine-tune itself, pruned along the ramp. */
static int prune_gradually(cell *x, pb_model **m, const char *csv)
{
	const pb_cell_env *env = x->env;
	const pbi_schedule_ops ops = {
		.user = x, .prune = op_prune, .train_until = op_train_until,
	};
	pb_train_hooks hooks;
	gsl_rng *rng = NULL;
	int rc;

	if ((rc = pb_model_clone(m, env->dense, x->err)) ||
	    (rc = trainer_for(x, *m, env->finetune, 0, NULL, csv, "gradual",
			      &rng, &x->gradual, &hooks)))
		goto out;
	rc = pbi_schedule_gradual(env->plan, env->target,
				  steps_per_epoch(x, env->finetune),
				  env->dense, m, &ops, &x->rounds, x->err);
	{
		/* Finished also after a failure: the curve of the epochs it
		 * did is kept. */
		int frc = pb_trainer_finish(x->gradual, NULL, x->err);

		if (!rc)
			rc = frc;
	}
out:
	pb_trainer_free(x->gradual);
	x->gradual = NULL;
	if (rng)
		gsl_rng_free(rng);
	return rc;
}

/* "Rethinking the Value of Network Pruning" (Liu et al., 2019): the
 * pruned shape and mask from a fresh initialisation, trained with the
 * dense recipe for its epochs (Scratch-E), or for as many more as the
 * pruned model saves MACs, so that both spend the same computation
 * (Scratch-B; the paper doubles the epochs at most, scratch_b_cap). The
 * pruned MACs are the effective ones (zero weights skipped) for weight
 * pruning, as the authors count them. The schedule stretches with the
 * epochs: cosine over all of them, step milestones scaled. */
static int train_from_scratch(cell *x, pb_model *m, const char *csv)
{
	const pb_cell_env *env = x->env;
	pb_recipe r = *env->dense_recipe;
	int rc = pb_model_init(m, x->rng, r.init, x->err);

	if (rc)
		return rc;
	pbi_mask_apply(m);
	if (env->kind == PB_CELL_SCRATCH_B) {
		pbi_measure d, p;
		double cap = env->scratch_b_cap > 0 ? env->scratch_b_cap : 2.0;
		double f;

		if ((rc = pbi_measure_model(env->dense, &d, x->err)) ||
		    (rc = pbi_measure_model(m, &p, x->err)))
			return rc;
		f = p.macs_effective ? (double)d.macs /
		    (double)p.macs_effective : cap;
		f = f < 1.0 ? 1.0 : f > cap ? cap : f;
		r.epochs = (int)(env->dense_recipe->epochs * f);
		for (int i = 0; i < r.n_milestones; i++)
			r.milestones[i] = (int)(r.milestones[i] * f);
		if (env->log)
			fprintf(env->log, "scratch-B: %d epochs (%d x %.3g: "
				"dense MACs / pruned MACs %.3g, at most %g)\n",
				r.epochs, env->dense_recipe->epochs, f,
				p.macs_effective ? (double)d.macs /
				(double)p.macs_effective : 0.0, cap);
	}
	x->res->rec.scratch_epochs = r.epochs;
	return train(x, m, &r, 0, NULL, csv, env->kind == PB_CELL_SCRATCH_B ?
		     "scratch-b" : "scratch");
}

/* The key of the trunk the cell's pruning phase went through (the
 * schedule's or the plugin's), and how many of its rounds it took; NULL
 * when none. */
static const char *cell_trunk(const cell *x, int *K)
{
	*K = 0;
	for (int i = 0; i < x->n_recs; i++)
		if (x->recs[i].trunk > *K)
			*K = x->recs[i].trunk;
	if (!*K)
		return NULL;
	return x->trunk_key[0] ? x->trunk_key : x->trunk_info.key[0] ?
	       x->trunk_info.key : NULL;
}

/* matched_dense: a copy of the dense model, unpruned, trained exactly as
 * the cell's model was (the recorded trainings of the pruning phase, in
 * order, then the fine-tune), so that "pruned vs dense" is not "trained
 * longer vs not". The trainings of trunk rounds follow the trunk's rule:
 * seeded from the trunk's key, and the state after each kept in the
 * cache, so the controls of lower targets reuse the highest's. Its
 * failure is recorded with it and leaves the pruned result standing. */
static void matched_control(cell *x)
{
	const pb_cell_env *env = x->env;
	pb_record *r = &x->res->rec;
	pb_error err = { 0 }, *saved = x->err;
	pb_model *m = NULL;
	pbi_trunk *tc = NULL;
	char *csv = file_path(x, ".matched.csv"), seed[64] = "";
	double t = pbi_now();
	int rc, K = 0, start = 0;
	const char *key = cell_trunk(x, &K);

	r->has_matched = 1;
	r->matched_epochs = r->prune_epochs + env->finetune->epochs;
	x->err = &err;
	if (x->recs_failed)
		rc = pb_error_set(&err, PB_ENOMEM, "out of memory (recording "
				  "the trainings)");
	else
		rc = pb_model_clone(&m, env->dense, &err);
	if (!rc && key) {
		char text[96];

		snprintf(seed, sizeof seed, "trunk %s matched", key);
		snprintf(text, sizeof text, "matched dense control of trunk %s",
			 key);
		if (env->trunk_dir &&
		    !(rc = pbi_trunk_open(&tc, env->trunk_dir, text, env->log,
					  &err))) {
			pbi_trunk_state st = { 0 };

			rc = pbi_trunk_deepest(tc, K, &st, &start, &err);
			if (!rc && start) {
				pb_model_free(m);
				m = st.model;
				st.model = NULL;
				if (env->log)
					fprintf(env->log, "matched dense "
						"control: trunk rounds 1-%d "
						"read from the cache\n", start);
			}
			pbi_trunk_state_free(&st);
		}
	}
	if (env->log && !rc)
		fprintf(env->log, "matched dense control: %d training%s of the "
			"pruning phase, then the fine-tune (%.3g epochs)\n",
			x->n_recs, x->n_recs == 1 ? "" : "s",
			r->matched_epochs);
	for (int i = 0; i < x->n_recs && !rc; i++) {
		const int k = x->recs[i].trunk;
		char phase[32];

		if (!k && tc) {
			/* Past the trunk: let other cells have it. */
			pbi_trunk_close(tc);
			tc = NULL;
		}
		if (k && k <= start)
			continue;
		snprintf(phase, sizeof phase, "matched%d", i + 1);
		x->seed_prefix = k ? seed : NULL;
		rc = train(x, m, &x->recs[i].r, x->recs[i].max_steps,
			   &x->recs[i].span, NULL, phase);
		x->seed_prefix = NULL;
		/* The end of trunk round k: keep its state. */
		if (!rc && k && tc && (i + 1 == x->n_recs ||
				       x->recs[i + 1].trunk != k)) {
			pbi_trunk_state st = { .model = m };
			pb_error werr = { 0 };

			if (pbi_trunk_store(tc, k, &st, &werr) && env->log)
				fprintf(env->log, "%s\n", werr.msg);
		}
	}
	pbi_trunk_close(tc);
	if (!rc)
		rc = train(x, m, env->finetune, 0, NULL, csv,
			   "matched-finetune");
	if (!rc)
		rc = evaluate(x, m, TEST, &r->matched_top1);
	if (!rc)
		rc = evaluate(x, m, VAL, &r->matched_val);
	r->matched_time_s = pbi_now() - t;
	if (rc) {
		pb_record_set(&r->matched_error, err.msg[0] ? err.msg :
			      pb_strerror(rc));
		if (env->log)
			fprintf(env->log, "matched dense control failed: %s\n",
				r->matched_error);
	}
	x->err = saved;
	pb_model_free(m);
	free(csv);
}

/* Measures the final model against the dense one and saves it. */
static int measure_and_save(cell *x, pb_model *m)
{
	const pb_cell_env *env = x->env;
	pb_metrics_opts mo;
	pb_model *ref = NULL;
	int rc;

	pb_metrics_opts_default(&mo);
	mo.latency = env->latency;
	status(x, "metrics", 0, 0);
	/* Timing runs the reference's forward pass, which writes its
	 * activation buffers: the shared dense model is never run, a copy
	 * of it is. */
	if ((rc = pb_model_clone(&ref, env->dense, x->err)))
		return rc;
	rc = pb_metrics_compute(&x->res->mt, m, ref, &mo, x->err);
	pb_model_free(ref);
	if (rc)
		return rc;
	x->res->have_metrics = 1;
	if (env->out)
		rc = pb_model_save(m, env->out, x->err);
	return rc;
}

static void fill_metrics(pb_record *r, const pb_metrics *mt)
{
	r->params = (double)mt->params;
	r->nonzero = (double)mt->params_nonzero;
	r->macs = (double)mt->macs;
	r->macs_effective = (double)mt->macs_effective;
	r->size_dense_mib = mt->bytes_dense / 1048576.0;
	r->size_sparse_mib = mt->bytes_sparse / 1048576.0;
	r->size_compressed_mib = mt->bytes_compressed / 1048576.0;
	r->size_int8_mib = mt->bytes_int8 / 1048576.0;
	r->size_int8_zlib_mib = mt->bytes_int8_compressed / 1048576.0;
	if (mt->have_latency) {
		r->latency_b1_ms = mt->latency_ms[0];
		r->latency_b128_ms = mt->latency_ms[1];
		r->speedup_b1 = mt->speedup[0] > 0 ? mt->speedup[0] : NAN;
		r->speedup_b128 = mt->speedup[1] > 0 ? mt->speedup[1] : NAN;
		r->latency_sparse_b1_ms = mt->latency_sparse_ms[0];
		r->latency_sparse_b128_ms = mt->latency_sparse_ms[1];
		r->speedup_sparse_b1 = mt->speedup_sparse[0] > 0 ?
				       mt->speedup_sparse[0] : NAN;
		r->speedup_sparse_b128 = mt->speedup_sparse[1] > 0 ?
					 mt->speedup_sparse[1] : NAN;
	}
}

/* The dense baseline and the dense + fine-tune control. */
static int run_control(cell *x, pb_model **m, const char *csv)
{
	const pb_cell_env *env = x->env;
	pb_record *r = &x->res->rec;
	double t;
	int rc;

	if ((rc = pb_model_clone(m, env->dense, x->err)) ||
	    (rc = evaluate(x, *m, TEST, &r->acc_before)))
		return rc;
	if (env->kind == PB_CELL_DENSE) {
		r->acc_after = r->acc_before;
		x->res->wrote_curve = csv && env->dense_curve &&
			!pbi_copy_atomic(env->dense_curve, csv, &(pb_error){ 0 });
		return 0;
	}
	t = pbi_now();
	rc = train(x, *m, env->finetune, 0, NULL, csv, "finetune");
	x->res->wrote_curve = csv != NULL;
	r->time_finetune_s = pbi_now() - t;
	return rc;
}

/* A plugin that pruned nothing (or far too much) still gives numbers;
 * they are not what the row claims, so the record says so. The slack
 * allows for whole channels: a target is met to within a channel or so
 * per layer. */
static void off_target(pb_record *r, const pb_target *t)
{
	char msg[160];

	if (!isfinite(r->reached) ||
	    fabs(r->reached - t->amount) <= 0.02 + 0.1 * t->amount)
		return;
	snprintf(msg, sizeof msg, "reached %s=%.3f, far from the target "
		 "%.3f", pb_target_kind_name(t->kind), r->reached, t->amount);
	pb_record_set(&r->warning, msg);
}

/* A plugin that prunes at initialisation (pb_pruner.at_init: SNIP,
 * SynFlow): it prunes the model the dense training started from (drawn
 * again from the seed), not the trained one, once; the pruned model then
 * trains with the dense recipe instead of a fine-tune, or from a fresh
 * initialisation for the scratch controls. acc_before is the pruned,
 * untrained network's. */
static int run_at_init(cell *x, pb_model **m, const char *csv)
{
	const pb_cell_env *env = x->env;
	pb_record *r = &x->res->rec;
	double t = pbi_now();
	int rc;

	r->at_init = 1;
	if ((rc = pbi_at_init_check(env, x->err)) ||
	    (rc = pbi_at_init_model(env->dense, env->seed,
				    env->dense_recipe->init, m, x->err)) ||
	    (rc = op_prune(x, m, env->target, x->err)))
		return rc;
	r->time_prune_s = pbi_now() - t;
	if ((rc = evaluate(x, *m, TEST, &r->acc_before)))
		return rc;
	t = pbi_now();
	if (from_scratch(env->kind)) {
		rc = train_from_scratch(x, *m, csv);
		x->res->wrote_curve = csv != NULL;
	} else if (env->splits && env->dense_recipe->epochs > 0) {
		r->scratch_epochs = env->dense_recipe->epochs;
		rc = train(x, *m, env->dense_recipe, 0, NULL, csv, "train");
		x->res->wrote_curve = csv != NULL;
	}
	r->time_finetune_s = pbi_now() - t;
	return rc;
}

/* A pruned cell: the schedule, then fine-tune or scratch training. */
static int run_pruned(cell *x, pb_model **m, const char *csv)
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
		.on_train = record_plugin_training, .on_train_user = x,
		.trunk = &x->trunk_info,
	};
	x->trunk_info.dir = env->trunk_dir;
	r->prune_epochs = 0.0;
	status(x, "prune", 0, 0);
	if (env->pruner->at_init) {
		rc = run_at_init(x, m, csv);
	} else if (gradual) {
		if (!fine_tunes(env))
			return pb_error_set(x->err, PB_EINVAL, "schedule = "
					    "gradual prunes during the "
					    "fine-tune, and there is none");
		r->time_prune_s = 0.0;
		rc = prune_gradually(x, m, csv);
		x->res->wrote_curve = csv != NULL;
		r->time_finetune_s = pbi_now() - t;
	} else {
		rc = prune_rounds(x, m);
		r->time_prune_s = pbi_now() - t;
		if (!rc)
			rc = evaluate(x, *m, TEST, &r->acc_before);
		t = pbi_now();
		if (!rc && from_scratch(env->kind)) {
			rc = train_from_scratch(x, *m, csv);
			x->res->wrote_curve = csv != NULL;
		} else if (!rc && fine_tunes(env)) {
			rc = train(x, *m, env->finetune, 0, NULL, csv,
				   "finetune");
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
	off_target(r, env->target);
	return rc;
}

static void finish_record(cell *x, int rc)
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
	cell x = { .env = env, .res = res, .err = err ? err : &local };
	pb_record *r = &res->rec;
	pb_model *m = NULL;
	char *csv;
	double t0 = pbi_now();
	int rc;

	memset(res, 0, sizeof *res);
	pb_record_init(r);
	r->status = PB_CELL_OK;
	if ((rc = check_env(env, x.err))) {
		finish_record(&x, rc);
		return rc;
	}
	r->params_dense = (double)pb_model_count_params(env->dense);
	r->macs_dense = (double)pb_model_count_macs(env->dense);
	csv = file_path(&x, ".csv");
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
		rc = evaluate(&x, m, TEST, &r->acc_after);
	if (!rc && env->splits)
		rc = evaluate(&x, m, VAL, &r->val_after);
	if (!rc)
		rc = measure_and_save(&x, m);
	if (res->have_metrics)
		fill_metrics(r, &res->mt);
	if (!rc && env->quantize)
		rc = pbi_cell_quantize(env, m, r, x.err);
	if (!rc && env->matched && env->kind == PB_CELL_PRUNE &&
	    env->splits && env->finetune)
		matched_control(&x);
done:
	finish_record(&x, rc);
	r->time_total_s = pbi_now() - t0;
	status(&x, NULL, 0, 0);
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
