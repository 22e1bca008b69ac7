/* The sweep: dense models first (trained or loaded from the cache, in
 * parallel over seeds), then every cell not yet in runs.jsonl, side by
 * side with OpenMP. Cells share only read-only things (the experiment,
 * the data splits, the dense models they clone, the plugin descriptors);
 * each has its own RNG stream, model copies and buffers, so its numbers
 * do not depend on what runs beside it. The only shared mutable state is
 * the progress display and the append to runs.jsonl, both inside
 * critical sections. */
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <omp.h>
#include <zlib.h>

#include "blas.h"
#include "experiment_impl.h"
#include "prune_impl.h"
#include "prunebench/checkpoint.h"
#include "prunebench/metrics.h"
#include "prunebench/prunebench.h"   /* pb_blas_name */
#include "train_points.h"
#include "util.h"

#define MAX_ROUNDS 1024
#define MAX_POINTS 64

enum { ST_OK, ST_DIVERGED, ST_FAILED };

typedef struct cell_result {
	int status;
	char error[PB_ERROR_MSG_MAX];
	int threads;
	double acc_before, acc_after, val_after;
	double reached;
	int n_rounds;
	double rounds[MAX_ROUNDS];
	int have_metrics;
	pb_metrics mt;
	uint64_t params_dense, macs_dense;
	double t_prune, t_finetune, t_total;
	char curve[300];
	/* Epochs of training in the pruning phase (plugin and rounds). */
	double prune_epochs;
	/* matched_dense: the unpruned copy trained the same way. */
	int have_matched;
	double matched_acc, matched_val, matched_epochs, t_matched;
	char matched_error[PB_ERROR_MSG_MAX];
} cell_result;

/* One training of a cell's pruning phase, as it ran: replayed on the
 * dense model for the matched-budget control. */
typedef struct train_rec {
	pb_recipe r;
	long max_steps;
} train_rec;

typedef struct sweep {
	const pb_experiment *e;
	const pb_run_opts *o;
	pb_splits sp;
	int have_splits;
	pb_model **dense;         /* per seed index */
	char **dense_csv;
	char **dense_base;        /* BASE of BASE.stepN.ckpt training points */
	uint32_t *dense_fp;       /* CRC-32 of each dense model's tensors */
	long points[MAX_POINTS];  /* iterations of the dense training kept */
	int n_points;
	int *dense_rc;
	char (*dense_msg)[PB_ERROR_MSG_MAX];
	char *jsonl, *cells_dir;
	pbi_progress prog;
	int total, done;
	double t0;
	char (*status)[200];      /* per outer thread */
	int outer, inner;
	pb_run_summary *sum;
} sweep;

/* Per cell: what the training hooks need to report progress. */
typedef struct cell_ctx {
	sweep *S;
	const pb_exp_cell *c;
	int slot;
	const char *phase;
	int epochs;
	/* gradual pruning */
	pb_model *m;
	const pb_prune_setup *setup;
	long *point_step;
	double *point_amount;
	int n_points, next_point;
	cell_result *r;
	pb_model *dense;
	int grad_rc;
	pb_error *err;
	train_rec *recs;
	int n_recs, cap_recs, recs_failed;
} cell_ctx;

/* ---- progress ---------------------------------------------------------------- */

static void fmt_duration(char *buf, size_t n, double s)
{
	if (s < 0 || !isfinite(s))
		snprintf(buf, n, "?");
	else if (s < 90)
		snprintf(buf, n, "%.0fs", s);
	else if (s < 5400)
		snprintf(buf, n, "%.0fm%02.0fs", floor(s / 60),
			 fmod(s, 60.0));
	else
		snprintf(buf, n, "%.0fh%02.0fm", floor(s / 3600),
			 fmod(s / 60, 60.0));
}

static void eta(const sweep *S, char *buf, size_t n)
{
	double el = pbi_now() - S->t0;

	if (!S->done) {
		snprintf(buf, n, "?");
		return;
	}
	fmt_duration(buf, n, el / S->done * (S->total - S->done));
}

/* Redraws the one-line display (terminal only). Call inside the
 * critical section. */
static void redraw(sweep *S)
{
	char line[1024], e[32];
	size_t k;

	if (!S->prog.tty)
		return;
	eta(S, e, sizeof e);
	k = (size_t)snprintf(line, sizeof line, "%d/%d done, ETA %s", S->done,
			     S->total, e);
	for (int t = 0; t < S->outer && k < sizeof line; t++)
		if (S->status[t][0])
			k += (size_t)snprintf(line + k, sizeof line - k,
					      " | %s", S->status[t]);
	pbi_progress_update(&S->prog, "%s", line);
}

static void set_status(cell_ctx *x, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void set_status(cell_ctx *x, const char *fmt, ...)
{
	va_list ap;

	if (!x->S->prog.tty)
		return;
#pragma omp critical(pb_sweep_progress)
	{
		va_start(ap, fmt);
		vsnprintf(x->S->status[x->slot], sizeof x->S->status[0], fmt,
			  ap);
		va_end(ap);
		redraw(x->S);
	}
}

/* ---- helpers -------------------------------------------------------------------- */

static char *cell_path(const sweep *S, const pb_exp_cell *c, const char *ext)
{
	size_t n = strlen(S->cells_dir) + strlen(c->id) + strlen(ext) + 2;
	char *p = malloc(n);

	if (p)
		snprintf(p, n, "%s/%s%s", S->cells_dir, c->id, ext);
	return p;
}

static int copy_file(const char *from, const char *to)
{
	FILE *a = fopen(from, "rb"), *b;
	char buf[8192];
	size_t n;
	int rc = 0;

	if (!a)
		return -1;
	b = fopen(to, "wb");
	if (!b) {
		fclose(a);
		return -1;
	}
	while ((n = fread(buf, 1, sizeof buf, a)) > 0)
		if (fwrite(buf, 1, n, b) != n)
			rc = -1;
	fclose(a);
	if (fclose(b))
		rc = -1;
	return rc;
}

static int seed_index(const pb_experiment *e, unsigned long seed)
{
	for (int i = 0; i < e->n_seeds; i++)
		if (e->seeds[i] == seed)
			return i;
	return -1;
}

/* The fraction of t's kind removed in m relative to the dense model. */
static double reached_vs_dense(const pb_model *dense, pb_model *m,
			       pb_target_kind kind)
{
	uint64_t z = 0, t = 0;

	switch (kind) {
	case PB_TARGET_SPARSITY:
		for (int i = 0; i < pb_model_n_params(m); i++) {
			const pb_param *p = pb_model_param(m, i);
			if (p->kind != PB_PARAM_WEIGHT)
				continue;
			t += p->n;
			for (size_t j = 0; j < p->n; j++)
				z += p->data[j] == 0.0f;
		}
		return t ? (double)z / (double)t : 0.0;
	case PB_TARGET_CHANNELS: {
		pb_channel_group *g = NULL;
		pb_error gerr = { 0 };
		int n = 0, cd = 0, cm = 0;
		if (pbi_groups_derive(dense, &g, &n, &gerr))
			return NAN;
		for (int i = 0; i < n; i++)
			cd += g[i].prunable ? g[i].n_channels : 0;
		free(g);
		g = NULL;
		if (pbi_groups_derive(m, &g, &n, &gerr))
			return NAN;
		for (int i = 0; i < n; i++)
			cm += g[i].prunable ? g[i].n_channels : 0;
		free(g);
		return cd ? 1.0 - (double)cm / cd : 0.0;
	}
	case PB_TARGET_PARAMS:
		return 1.0 - (double)pb_model_count_params(m) /
		       (double)pb_model_count_params(dense);
	case PB_TARGET_MACS:
		return 1.0 - (double)pb_model_count_macs(m) /
		       (double)pb_model_count_macs(dense);
	}
	return NAN;
}

/* ---- training inside a cell ------------------------------------------------ */

static int hook_epoch(void *user, pb_model *m, int epoch)
{
	cell_ctx *x = user;

	(void)m;
	set_status(x, "%s %s %d/%d", x->c->id, x->phase, epoch + 1, x->epochs);
	return 0;
}

/* Gradual pruning (Zhu & Gupta): at each ramp point, prune a copy of the
 * training model to the current sparsity and copy its masks back. */
static int gradual_prune_to(cell_ctx *x, double amount)
{
	pb_prune_setup su = *x->setup;
	pb_target t = *x->setup->target;
	pb_model *pruned = NULL;
	int rc;

	if (amount <= 0.0)
		return 0;
	t.amount = amount;
	for (int i = 0; i < t.n_overrides; i++)
		t.overrides[i].amount *= amount / x->setup->target->amount;
	su.target = &t;
	rc = pb_prune_run(x->m, &su, &pruned, NULL, x->err);
	if (rc)
		return rc;
	for (int i = 0; i < pb_model_n_params(x->m); i++) {
		pb_param *p = pb_model_param(x->m, i);
		pb_param *q = pb_model_find_param(pruned, p->name);
		float *src, *dst;

		if (p->kind != PB_PARAM_WEIGHT || !q || q->n != p->n)
			continue;
		src = pbi_mask_get(pruned, q, 0);
		if (!src)
			continue;
		dst = pbi_mask_get(x->m, p, 1);
		if (!dst) {
			pb_model_free(pruned);
			return pb_error_set(x->err, PB_ENOMEM, "out of memory "
					    "(masks)");
		}
		memcpy(dst, src, p->n * sizeof *dst);
	}
	pb_model_free(pruned);
	pbi_mask_apply(x->m);
	if (x->r->n_rounds < MAX_ROUNDS)
		x->r->rounds[x->r->n_rounds++] =
			reached_vs_dense(x->dense, x->m, t.kind);
	return 0;
}

static int hook_step(void *user, pb_model *m, long step)
{
	cell_ctx *x = user;

	(void)m;
	while (x->point_step && x->next_point < x->n_points &&
	       step + 1 >= x->point_step[x->next_point]) {
		int rc = gradual_prune_to(x, x->point_amount[x->next_point]);
		x->next_point++;
		if (rc) {
			x->grad_rc = rc;
			return rc;
		}
	}
	return 0;
}

static int train_in_cell(cell_ctx *x, pb_model *m, const pb_recipe *r,
			 long max_steps, const char *csv, FILE *log,
			 const char *phase)
{
	const pb_experiment *e = x->S->e;
	pb_train_hooks hooks = { 0 };
	pb_train_opts opts = { 0 };
	gsl_rng *rng = NULL;
	char seedtext[400];
	int rc;

	(void)e;
	hooks.user = x;
	hooks.after_epoch = hook_epoch;
	hooks.after_step = hook_step;
	opts.hooks = &hooks;
	opts.csv_path = csv;
	opts.progress = log;
	opts.label = x->c->id;
	opts.max_steps = max_steps;
	x->phase = phase;
	x->epochs = r->epochs;
	set_status(x, "%s %s 0/%d", x->c->id, phase, r->epochs);
	/* Its own stream per training phase, so adding a phase (a round)
	 * never shifts the draws of the others. */
	snprintf(seedtext, sizeof seedtext, "%s|%s|%lu|%s", x->S->e->name,
		 x->c->id, x->c->seed, phase);
	rng = gsl_rng_alloc(gsl_rng_mt19937);
	if (!rng)
		return pb_error_set(x->err, PB_ENOMEM, "out of memory");
	gsl_rng_set(rng, pbi_seed_from(seedtext));
	rc = pb_train(m, &x->S->sp.train, &x->S->sp.val, r, rng, &opts, NULL,
		      x->err);
	if (!rc && x->grad_rc)
		rc = x->grad_rc;
	gsl_rng_free(rng);
	return rc;
}

/* ---- the trainings of the pruning phase ------------------------------------------ */

static void record(cell_ctx *x, const pb_recipe *r, long max_steps)
{
	const long spe = r->batch > 0 ? (long)(x->S->sp.train.n / r->batch) : 0;

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
	x->recs[x->n_recs].r = *r;
	x->recs[x->n_recs].max_steps = max_steps;
	x->n_recs++;
	x->r->prune_epochs += max_steps > 0 && spe > 0 ?
		(double)max_steps / (double)spe : (double)r->epochs;
}

/* pb_prune_setup.on_train: a plugin's pb_ctx_train. */
static void record_plugin_training(void *user, pb_recipe_which which,
				   double epochs, long steps)
{
	cell_ctx *x = user;
	const pb_experiment *e = x->S->e;
	const pb_recipe *base = which == PB_RECIPE_DENSE ? &e->dense :
				&e->finetune;
	const long spe = base->batch > 0 ?
		(long)(x->S->sp.train.n / base->batch) : 0;
	pb_recipe r;
	long max_steps;

	pbi_ctx_train_recipe(base, epochs, steps, spe, &r, &max_steps);
	record(x, &r, max_steps);
}

/* ---- pruning schedules ----------------------------------------------------------- */

/* One-shot or iterative pruning of the dense model into *out. */
static int prune_phase(cell_ctx *x, const pb_model *dense,
		       const pb_prune_setup *base, const pb_recipe *round_r,
		       long round_steps, FILE *log, pb_model **out)
{
	const pb_exp_method *me = &x->S->e->methods[x->c->method_index];
	const pb_target *goal = base->target;
	int rounds = me->schedule == PB_PRUNE_ITERATIVE ? me->rounds : 1;
	pb_model *cur = NULL;
	double prev = 0.0;
	int rc = 0;

	*out = NULL;
	for (int k = 1; k <= rounds && !rc; k++) {
		pb_prune_setup su = *base;
		pb_target t = *goal;
		pb_model *next = NULL;
		pb_prune_report rep;
		double f = (double)k / rounds;

		/* Geometric: each round removes the same fraction of what is
		 * left, ending exactly at the goal. */
		t.amount = 1.0 - pow(1.0 - goal->amount, f);
		for (int i = 0; i < t.n_overrides; i++)
			t.overrides[i].amount =
				1.0 - pow(1.0 - goal->overrides[i].amount, f);
		if (t.kind != PB_TARGET_SPARSITY && k > 1) {
			/* Channel targets are measured on the model a round
			 * starts from: convert the total to an increment. */
			t.amount = prev < 1.0 ?
				1.0 - (1.0 - t.amount) / (1.0 - prev) : 0.0;
			if (t.amount < 0.0)
				t.amount = 0.0;
		}
		su.target = &t;
		rc = pb_prune_run(cur ? cur : dense, &su, &next, &rep, x->err);
		pb_model_free(cur);
		cur = next;
		if (rc)
			break;
		prev = reached_vs_dense(dense, cur, goal->kind);
		if (rounds > 1 && x->r->n_rounds < MAX_ROUNDS)
			x->r->rounds[x->r->n_rounds++] = prev;
		/* A one-shot plugin that prunes in rounds itself (LTH)
		 * reports them; measured against the dense model it got. */
		for (int i = 0; rounds == 1 && i < rep.n_rounds &&
		     x->r->n_rounds < MAX_ROUNDS; i++)
			x->r->rounds[x->r->n_rounds++] = rep.rounds[i];
		if (k < rounds && round_r->epochs > 0) {
			char phase[32], *csv;
			snprintf(phase, sizeof phase, "round%d", k);
			csv = NULL;
			{
				char ext[40];
				snprintf(ext, sizeof ext, ".round%d.csv", k);
				csv = cell_path(x->S, x->c, ext);
			}
			record(x, round_r, round_steps);
			rc = train_in_cell(x, cur, round_r, round_steps, csv, log,
					   phase);
			free(csv);
		}
	}
	if (rc) {
		pb_model_free(cur);
		return rc;
	}
	*out = cur;
	return 0;
}

/* ---- one cell --------------------------------------------------------------------- */

static int evaluate(sweep *S, pb_model *m, const pb_dataset *d, double *acc,
		    pb_error *err)
{
	double loss;

	return pb_evaluate(m, d, S->e->dense.eval_batch, acc, &loss, err);
}

/* matched_dense: a copy of the dense model, unpruned, trained exactly as
 * the cell's model was (the recorded trainings of the pruning phase, in
 * order, then the fine-tune), so that "pruned vs dense" is not "trained
 * longer vs not". Its failure is recorded with it and leaves the pruned
 * result standing. */
static void matched_control(cell_ctx *x, const pb_model *dense, FILE *log,
			    cell_result *r)
{
	const pb_experiment *e = x->S->e;
	pb_error err = { 0 }, *saved = x->err;
	pb_model *m = NULL;
	char *csv = cell_path(x->S, x->c, ".matched.csv");
	double t = pbi_now();
	int rc;

	r->matched_acc = r->matched_val = NAN;
	r->matched_epochs = r->prune_epochs + e->finetune.epochs;
	x->err = &err;
	if (x->recs_failed)
		rc = pb_error_set(&err, PB_ENOMEM, "out of memory (recording "
				  "the trainings)");
	else
		rc = pb_model_clone(&m, dense, &err);
	if (log && !rc)
		fprintf(log, "matched dense control: %d training%s of the "
			"pruning phase, then the fine-tune (%.3g epochs)\n",
			x->n_recs, x->n_recs == 1 ? "" : "s",
			r->matched_epochs);
	for (int i = 0; i < x->n_recs && !rc; i++) {
		char phase[32];

		snprintf(phase, sizeof phase, "matched%d", i + 1);
		rc = train_in_cell(x, m, &x->recs[i].r, x->recs[i].max_steps,
				   NULL, log, phase);
	}
	if (!rc)
		rc = train_in_cell(x, m, &e->finetune, 0, csv, log,
				   "matched-finetune");
	if (!rc)
		rc = evaluate(x->S, m, &x->S->sp.test, &r->matched_acc, &err);
	if (!rc)
		rc = evaluate(x->S, m, &x->S->sp.val, &r->matched_val, &err);
	r->t_matched = pbi_now() - t;
	r->have_matched = 1;
	if (rc) {
		snprintf(r->matched_error, sizeof r->matched_error, "%s",
			 err.msg[0] ? err.msg : pb_strerror(rc));
		if (log)
			fprintf(log, "matched dense control failed: %s\n",
				r->matched_error);
	}
	x->err = saved;
	pb_model_free(m);
	free(csv);
}

static void run_cell(sweep *S, const pb_exp_cell *c, int slot, cell_result *r)
{
	const pb_experiment *e = S->e;
	const pb_exp_method *me = c->method_index >= 0 ?
		&e->methods[c->method_index] : NULL;
	int si = seed_index(e, c->seed);
	pb_error err = { 0 };
	cell_ctx x = { 0 };
	pb_model *ref = NULL, *m = NULL;
	gsl_rng *rng = NULL;
	char *csv = cell_path(S, c, ".csv"), *logp = cell_path(S, c, ".log");
	char *ckpt = cell_path(S, c, ".ckpt"), *ini = cell_path(S, c, ".ini");
	char seedtext[400];
	FILE *log = NULL;
	double t0 = pbi_now(), t;
	int rc = 0;

	r->acc_before = r->acc_after = r->val_after = r->reached = NAN;
	r->t_prune = r->t_finetune = NAN;
	r->threads = S->inner;
	x.S = S;
	x.c = c;
	x.slot = slot;
	x.r = r;
	x.err = &err;
	if (!csv || !logp || !ckpt || !ini) {
		rc = pb_error_set(&err, PB_ENOMEM, "out of memory");
		goto done;
	}
	if (si < 0 || !S->dense[si]) {
		rc = pb_error_set(&err, si < 0 ? PB_EINVAL : S->dense_rc[si],
				  "%s", si < 0 ? "seed not in the experiment" :
				  S->dense_msg[si]);
		goto done;
	}
	log = fopen(logp, "w");
	snprintf(seedtext, sizeof seedtext, "%s|%s|%lu", e->name, c->id,
		 c->seed);
	rng = gsl_rng_alloc(gsl_rng_mt19937);
	if (!rng) {
		rc = pb_error_set(&err, PB_ENOMEM, "out of memory");
		goto done;
	}
	gsl_rng_set(rng, pbi_seed_from(seedtext));
	x.dense = S->dense[si];
	r->params_dense = pb_model_count_params(S->dense[si]);
	r->macs_dense = pb_model_count_macs(S->dense[si]);
	if ((rc = pb_model_clone(&ref, S->dense[si], &err)))
		goto done;
	snprintf(r->curve, sizeof r->curve, "cells/%s.csv", c->id);

	if (c->kind == PB_CELL_DENSE || c->kind == PB_CELL_DENSE_FT) {
		if ((rc = pb_model_clone(&m, S->dense[si], &err)) ||
		    (rc = evaluate(S, m, &S->sp.test, &r->acc_before, &err)))
			goto done;
		if (c->kind == PB_CELL_DENSE) {
			r->acc_after = r->acc_before;
			rc = evaluate(S, m, &S->sp.val, &r->val_after, &err);
			if (!S->dense_csv[si] || copy_file(S->dense_csv[si], csv))
				r->curve[0] = '\0';
			goto measure;
		}
		t = pbi_now();
		rc = train_in_cell(&x, m, &e->finetune, 0, csv, log, "finetune");
		r->t_finetune = pbi_now() - t;
		if (rc)
			goto done;
	} else {
		pb_prune_setup su = { 0 };
		const pb_target *goal = &me->targets[c->target_index];
		pb_recipe round_r = e->finetune;
		long round_steps = 0;

		su.pruner = pb_plugin_pruner(me->plugin);
		su.options = me->options;
		su.target = goal;
		su.finetune = &e->finetune;
		su.dense = &e->dense;
		su.splits = &S->sp;
		su.rng = rng;
		su.progress = log;
		su.label = c->id;
		su.dense_points = S->dense_base[si];
		su.on_train = record_plugin_training;
		su.on_train_user = &x;
		if (me->round_epochs >= 0) {
			long spe = S->sp.train.n / (round_r.batch ? round_r.batch : 1);
			round_r.epochs = (int)ceil(me->round_epochs);
			if (me->round_epochs != floor(me->round_epochs))
				round_steps = (long)llround(me->round_epochs *
							    (double)spe);
		}
		t = pbi_now();
		set_status(&x, "%s prune", c->id);
		if (me->schedule == PB_PRUNE_GRADUAL && !me->scratch) {
			rc = pb_model_clone(&m, S->dense[si], &err);
		} else {
			rc = prune_phase(&x, S->dense[si], &su, &round_r,
					 round_steps, log, &m);
		}
		r->t_prune = pbi_now() - t;
		if (rc)
			goto done;
		if (me->schedule != PB_PRUNE_GRADUAL || me->scratch)
			if ((rc = evaluate(S, m, &S->sp.test, &r->acc_before,
					   &err)))
				goto done;
		t = pbi_now();
		if (c->kind == PB_CELL_SCRATCH) {
			/* "Rethinking the value of network pruning": the
			 * pruned shape (and mask) from a fresh start. */
			if ((rc = pb_model_init_params(m, rng, &err)))
				goto done;
			pbi_mask_apply(m);
			rc = train_in_cell(&x, m, &e->dense, 0, csv, log,
					   "scratch");
		} else if (me->schedule == PB_PRUNE_GRADUAL) {
			long spe = S->sp.train.n / e->finetune.batch;
			int n = me->gradual_steps;
			long pst[n + 1];
			double pam[n + 1];

			for (int k = 0; k <= n; k++) {
				double tk = me->gradual_begin +
					    k * me->gradual_epochs / n;
				double q = 1.0 - (double)k / n;
				pst[k] = (long)llround(tk * (double)spe);
				pam[k] = goal->amount + (me->gradual_initial -
					 goal->amount) * q * q * q;
			}
			x.m = m;
			x.setup = &su;
			x.point_step = pst;
			x.point_amount = pam;
			x.n_points = n + 1;
			/* Points at step 0 happen before training starts. */
			while (x.next_point < x.n_points && pst[x.next_point] <= 0 &&
			       !rc)
				rc = gradual_prune_to(&x, pam[x.next_point++]);
			if (!rc)
				rc = train_in_cell(&x, m, &e->finetune, 0, csv,
						   log, "gradual");
			/* Points at the very end, after the last step. */
			while (!rc && x.next_point < x.n_points)
				rc = gradual_prune_to(&x, pam[x.next_point++]);
			x.point_step = NULL;
		} else {
			rc = train_in_cell(&x, m, &e->finetune, 0, csv, log,
					   "finetune");
		}
		r->t_finetune = pbi_now() - t;
		r->reached = reached_vs_dense(S->dense[si], m, goal->kind);
		if (rc)
			goto done;
	}
	if ((rc = evaluate(S, m, &S->sp.test, &r->acc_after, &err)) ||
	    (rc = evaluate(S, m, &S->sp.val, &r->val_after, &err)))
		goto done;
measure:
	if (!rc) {
		pb_metrics_opts mo;
		pb_metrics_opts_default(&mo);
		mo.latency = e->latency;
		set_status(&x, "%s metrics", c->id);
		rc = pb_metrics_compute(&r->mt, m, ref, &mo, &err);
		r->have_metrics = !rc;
	}
	if (!rc)
		rc = pb_checkpoint_save(m, ckpt, &err);
	if (!rc)
		rc = pb_model_write_ini(m, ini, &err);
	if (!rc && me && me->matched && c->kind == PB_CELL_PRUNE)
		matched_control(&x, S->dense[si], log, r);
done:
	if (rc) {
		r->status = rc == PB_EDIVERGED ? ST_DIVERGED : ST_FAILED;
		snprintf(r->error, sizeof r->error, "%s",
			 err.msg[0] ? err.msg : pb_strerror(rc));
		if (log)
			fprintf(log, "%s: %s\n", r->status == ST_DIVERGED ?
				"diverged" : "failed", r->error);
	}
	r->t_total = pbi_now() - t0;
	if (log)
		fclose(log);
	if (rng)
		gsl_rng_free(rng);
	pb_model_free(m);
	pb_model_free(ref);
	free(csv);
	free(logp);
	free(ckpt);
	free(ini);
	free(x.recs);
	set_status(&x, "%s", "");
}

/* ---- the JSON line ------------------------------------------------------------- */

static int write_line(sweep *S, const pb_exp_cell *c, const cell_result *r,
		      pb_error *err)
{
	const pb_experiment *e = S->e;
	const pb_exp_method *me = c->method_index >= 0 ?
		&e->methods[c->method_index] : NULL;
	const pb_target *t = me ? &me->targets[c->target_index] : NULL;
	const pb_metrics *mt = r->have_metrics ? &r->mt : NULL;
	static const char *const st[] = { "ok", "diverged", "failed" };
	char buf[64], when[32], *rounds = NULL;
	time_t now = time(NULL);
	struct tm tm;
	pbi_jw j;
	int rc;

	pbi_jw_begin(&j);
	pbi_jw_int(&j, "v", 1);
	pbi_jw_str(&j, "id", c->id);
	pbi_jw_str(&j, "experiment", e->name);
	pbi_jw_str(&j, "kind", pb_cell_kind_name(c->kind));
	pbi_jw_str(&j, "method", c->method);
	pbi_jw_str(&j, "plugin", me ? pb_plugin_pruner(me->plugin)->name :
		     NULL);
	pbi_jw_str(&j, "granularity", me ? pb_granularity_name(
		     pb_plugin_pruner(me->plugin)->granularity) : NULL);
	pbi_jw_str(&j, "target", me ? me->target_text[c->target_index] :
		     NULL);
	pbi_jw_str(&j, "target_kind", t ? pb_target_kind_name(t->kind) :
		     NULL);
	pbi_jw_num(&j, "target_amount", t ? t->amount : NAN);
	pbi_jw_num(&j, "reached", r->reached);
	pbi_jw_str(&j, "scope", !me ? NULL : me->scope == PB_SCOPE_GLOBAL ?
		     "global" : "layer");
	if (me && me->schedule == PB_PRUNE_ITERATIVE)
		snprintf(buf, sizeof buf, "iterative:%d", me->rounds);
	else if (me)
		snprintf(buf, sizeof buf, "%s",
			 me->schedule == PB_PRUNE_GRADUAL ? "gradual" :
			 "oneshot");
	pbi_jw_str(&j, "schedule", me ? buf : NULL);
	if (r->n_rounds) {
		size_t cap = (size_t)r->n_rounds * 24 + 4, k = 1;
		rounds = malloc(cap);
		if (rounds) {
			rounds[0] = '[';
			for (int i = 0; i < r->n_rounds; i++)
				k += (size_t)snprintf(rounds + k, cap - k,
						      "%s%.6g", i ? "," : "",
						      isfinite(r->rounds[i]) ?
						      r->rounds[i] : 0.0);
			snprintf(rounds + k, cap - k, "]");
		}
	}
	pbi_jw_raw(&j, "rounds", rounds);
	free(rounds);
	pbi_jw_int(&j, "seed", (long long)c->seed);
	{
		int si = seed_index(e, c->seed);

		if (si >= 0 && S->dense[si]) {
			snprintf(buf, sizeof buf, "%08x",
				 (unsigned)S->dense_fp[si]);
			pbi_jw_str(&j, "dense_fingerprint", buf);
		}
	}
	pbi_jw_int(&j, "threads", r->threads);
	pbi_jw_str(&j, "blas", pb_blas_name());
	pbi_jw_str(&j, "status", st[r->status]);
	pbi_jw_str(&j, "error", r->status == ST_OK ? NULL : r->error);
	pbi_jw_num(&j, "acc_before", r->acc_before);
	pbi_jw_num(&j, "acc_after", r->acc_after);
	pbi_jw_num(&j, "val_after", r->val_after);
#define MT(name, expr) \
	do { if (mt) pbi_jw_num(&j, name, (double)(expr)); \
	     else pbi_jw_null(&j, name); } while (0)
	MT("params", mt->params);
	pbi_jw_num(&j, "params_dense", r->params_dense ?
		     (double)r->params_dense : NAN);
	MT("nonzero", mt->params_nonzero);
	MT("macs", mt->macs);
	pbi_jw_num(&j, "macs_dense", r->macs_dense ?
		     (double)r->macs_dense : NAN);
	MT("macs_effective", mt->macs_effective);
	MT("size_dense_mib", mt->bytes_dense / 1048576.0);
	MT("size_sparse_mib", mt->bytes_sparse / 1048576.0);
	MT("size_compressed_mib", mt->bytes_compressed / 1048576.0);
	pbi_jw_num(&j, "latency_b1_ms", mt && mt->have_latency ?
		     mt->latency_ms[0] : NAN);
	pbi_jw_num(&j, "latency_b128_ms", mt && mt->have_latency ?
		     mt->latency_ms[1] : NAN);
	pbi_jw_num(&j, "speedup_b1", mt && mt->have_latency &&
		     mt->speedup[0] > 0 ? mt->speedup[0] : NAN);
	pbi_jw_num(&j, "speedup_b128", mt && mt->have_latency &&
		     mt->speedup[1] > 0 ? mt->speedup[1] : NAN);
#undef MT
	pbi_jw_num(&j, "time_prune_s", r->t_prune);
	pbi_jw_num(&j, "time_finetune_s", r->t_finetune);
	pbi_jw_num(&j, "time_total_s", r->t_total);
	if (me && c->kind == PB_CELL_PRUNE)
		pbi_jw_num(&j, "prune_epochs", r->prune_epochs);
	if (r->have_matched) {
		pbi_jw_num(&j, "matched_top1", r->matched_acc);
		pbi_jw_num(&j, "matched_val", r->matched_val);
		pbi_jw_num(&j, "matched_epochs", r->matched_epochs);
		pbi_jw_num(&j, "matched_time_s", r->t_matched);
		pbi_jw_str(&j, "matched_error", r->matched_error[0] ?
			   r->matched_error : NULL);
	}
	pbi_jw_str(&j, "curve", r->curve[0] ? r->curve : NULL);
	gmtime_r(&now, &tm);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
	pbi_jw_str(&j, "finished", when);
	rc = pbi_jw_end(&j, err);
	if (!rc)
		rc = pbi_jsonl_append(S->jsonl, j.buf, j.len, err);
	pbi_jw_free(&j);
	return rc;
}

/* ---- the dense models ---------------------------------------------------------- */

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
static int collect_points(sweep *S, const pb_exp_cell *cells, const int *todo,
			  int n_todo, pb_error *err)
{
	const pb_experiment *e = S->e;
	const long per_epoch = e->dense.batch > 0 ?
		(long)(S->sp.train.n / e->dense.batch) : 0;
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
			if (S->n_points == MAX_POINTS)
				return pb_error_set(err, PB_EINVAL, "%s: more "
					"than %d training points asked for",
					e->path, MAX_POINTS);
			S->points[S->n_points++] = step;
		}
	}
	pbi_points_sort(S->points, &S->n_points);
	return 0;
}

static int dense_phase(sweep *S, const pb_exp_cell *cells, const int *todo,
		       int n_todo, int threads)
{
	const pb_experiment *e = S->e;
	int need[PB_EXP_MAX_SEEDS], n_need = 0, outer, inner;

	for (int s = 0; s < e->n_seeds; s++) {
		int used = 0;
		for (int i = 0; i < n_todo && !used; i++)
			used = cells[todo[i]].seed == e->seeds[s];
		if (used)
			need[n_need++] = s;
	}
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
		pb_error err = { 0 };
		double t0 = pbi_now();
		FILE *log = outer == 1 ? S->prog.out : NULL;

		omp_set_num_threads(inner);
		S->dense_rc[s] = pbi_dense_get(e, &S->sp, e->seeds[s],
					       S->points, S->n_points, log,
					       &S->dense[s], &S->dense_csv[s],
					       &S->dense_base[s], &trained,
					       &err);
		if (S->dense_rc[s])
			snprintf(S->dense_msg[s], sizeof S->dense_msg[0], "%s",
				 err.msg);
		else
			S->dense_fp[s] = fingerprint(S->dense[s]);
#pragma omp critical(pb_sweep_progress)
		{
			if (S->dense_rc[s])
				pbi_progress_line(&S->prog, "dense seed %lu: %s",
						  e->seeds[s], err.msg);
			else
				pbi_progress_line(&S->prog, "dense seed %lu: %s "
						  "(%.1fs)", e->seeds[s],
						  trained ? "trained" :
						  "loaded from cache",
						  pbi_now() - t0);
		}
	}
	return 0;
}

/* ---- the sweep ------------------------------------------------------------------ */

static int selected(const pb_run_opts *o, const pb_exp_cell *c)
{
	return !o->only || !strcmp(o->only, c->method);
}

static int is_done(char **ids, int n_ids, const char *id)
{
	for (int i = 0; i < n_ids; i++)
		if (!strcmp(ids[i], id))
			return 1;
	return 0;
}

static void list_cells(const pb_experiment *e, const pb_exp_cell *cells, int n,
		       const pb_run_opts *o, char **ids, int n_ids, FILE *f)
{
	for (int i = 0; i < n; i++) {
		const pb_exp_cell *c = &cells[i];
		if (!selected(o, c))
			continue;
		fprintf(f, "%-5s %-8s %s\n", is_done(ids, n_ids, c->id) ?
			"done" : "todo", pb_cell_kind_name(c->kind), c->id);
	}
	fprintf(f, "output %s\ncache  %s\n", e->output, e->cache);
}

int pb_experiment_run(const pb_experiment *e, const pb_run_opts *o,
		      pb_run_summary *sum, pb_error *err)
{
	static const pb_run_opts no_opts;
	pb_run_summary own = { 0 };
	pb_exp_cell *cells = NULL;
	char **ids = NULL;
	int n = 0, n_ids = 0, *todo = NULL, n_todo = 0, rc, threads;
	sweep S = { 0 };
	char *lock_path = NULL;
	int lock_fd = -1;

	if (!o)
		o = &no_opts;
	if (!sum)
		sum = &own;
	memset(sum, 0, sizeof *sum);
	S.e = e;
	S.o = o;
	S.sum = sum;
	S.t0 = pbi_now();
	pbi_progress_init(&S.prog, o->progress);
	if ((rc = pb_experiment_cells(e, &cells, &n, err)))
		return rc;
	S.jsonl = pbi_path_join(e->output, "runs.jsonl");
	S.cells_dir = pbi_path_join(e->output, "cells");
	todo = malloc(sizeof *todo * (size_t)(n ? n : 1));
	if (!S.jsonl || !S.cells_dir || !todo) {
		rc = pb_error_set(err, PB_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = pbi_jsonl_read_ids(S.jsonl, &ids, NULL, &n_ids, err)))
		goto out;
	for (int i = 0; i < n; i++) {
		if (!selected(o, &cells[i]))
			continue;
		sum->total++;
		if (is_done(ids, n_ids, cells[i].id))
			sum->skipped++;
		else
			todo[n_todo++] = i;
	}
	if (o->only && !sum->total) {
		rc = pb_error_set(err, PB_ENOTFOUND, "--only %s: no such method "
				  "in %s (methods are dense, dense+ft and the "
				  "NAME of each [prune.NAME])", o->only,
				  e->path);
		goto out;
	}
	if (o->dry_run) {
		list_cells(e, cells, n, o, ids, n_ids, o->list ? o->list : stdout);
		goto out;
	}
	if (!n_todo) {
		pbi_progress_line(&S.prog, "%s: all %d cells are already in %s",
				  e->name, sum->total, S.jsonl);
		goto out;
	}
	if ((rc = pbi_mkdirs(S.cells_dir, err)))
		goto out;
	/* Two runs of one experiment at once would both run the missing
	 * cells and record them twice. */
	lock_path = pbi_path_join(e->output, ".lock");
	lock_fd = lock_path ? open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC,
				   0666) : -1;
	if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB)) {
		rc = pb_error_set(err, PB_EIO, "%s: %s; is another `prunebench "
				  "run` working on %s? wait for it to finish",
				  lock_path ? lock_path : e->output,
				  strerror(errno), e->output);
		goto out;
	}
	/* Read again under the lock: a run that just finished may have
	 * added cells. */
	pbi_jsonl_ids_free(ids, NULL, n_ids);
	ids = NULL;
	if ((rc = pbi_jsonl_read_ids(S.jsonl, &ids, NULL, &n_ids, err)))
		goto out;
	n_todo = 0;
	sum->skipped = 0;
	for (int i = 0; i < n; i++) {
		if (!selected(o, &cells[i]))
			continue;
		if (is_done(ids, n_ids, cells[i].id))
			sum->skipped++;
		else
			todo[n_todo++] = i;
	}
	if (!n_todo)
		goto out;
	threads = o->threads > 0 ? o->threads : e->threads > 0 ? e->threads :
		  omp_get_num_procs();
	S.dense = calloc((size_t)e->n_seeds, sizeof *S.dense);
	S.dense_csv = calloc((size_t)e->n_seeds, sizeof *S.dense_csv);
	S.dense_base = calloc((size_t)e->n_seeds, sizeof *S.dense_base);
	S.dense_fp = calloc((size_t)e->n_seeds, sizeof *S.dense_fp);
	S.dense_rc = calloc((size_t)e->n_seeds, sizeof *S.dense_rc);
	S.dense_msg = calloc((size_t)e->n_seeds, sizeof *S.dense_msg);
	S.status = calloc((size_t)threads, sizeof *S.status);
	if (!S.dense || !S.dense_csv || !S.dense_base || !S.dense_fp ||
	    !S.dense_rc ||
	    !S.dense_msg ||
	    !S.status) {
		rc = pb_error_set(err, PB_ENOMEM, "out of memory");
		goto out;
	}
	pbi_progress_line(&S.prog, "%s: %d cells, %d already done, %d to run "
			  "with %d thread%s", e->name, sum->total,
			  sum->skipped, n_todo, threads, threads > 1 ? "s" : "");
	if ((rc = pb_splits_load(&S.sp, &e->data, e->val_size, e->split_seed,
				 err)))
		goto out;
	S.have_splits = 1;
	if ((rc = collect_points(&S, cells, todo, n_todo, err)))
		goto out;
	omp_set_max_active_levels(2);
	dense_phase(&S, cells, todo, n_todo, threads);

	S.total = n_todo;
	S.t0 = pbi_now();
	S.outer = n_todo < threads ? n_todo : threads;
	S.inner = o->inner_threads > 0 ? o->inner_threads :
		  (threads / S.outer > 0 ? threads / S.outer : 1);
	pbi_blas_set_threads(S.outer > 1 ? 1 : S.inner);
#pragma omp parallel for schedule(dynamic) num_threads(S.outer)
	for (int i = 0; i < n_todo; i++) {
		const pb_exp_cell *c = &cells[todo[i]];
		int slot = omp_get_thread_num();
		cell_result *r = calloc(1, sizeof *r);
		pb_error werr = { 0 };
		char e1[32], line[256];

		omp_set_num_threads(S.inner);
		if (!r)
			continue;
		run_cell(&S, c, slot, r);
#pragma omp critical(pb_sweep_write)
		{
			if (write_line(&S, c, r, &werr))
				r->status = ST_FAILED;
		}
#pragma omp critical(pb_sweep_progress)
		{
			S.done++;
			if (werr.msg[0])
				snprintf(r->error, sizeof r->error,
					 "not recorded: %.900s", werr.msg);
			if (r->status == ST_OK) {
				sum->ok++;
				snprintf(line, sizeof line, "ok  top-1 %.2f%% -> "
					 "%.2f%%", 100 * r->acc_before,
					 100 * r->acc_after);
			} else {
				if (r->status == ST_DIVERGED)
					sum->diverged++;
				else
					sum->failed++;
				snprintf(line, sizeof line, "%s: %.200s",
					 r->status == ST_DIVERGED ? "DIVERGED" :
					 "FAILED", r->error);
			}
			eta(&S, e1, sizeof e1);
			pbi_progress_line(&S.prog, "[%d/%d] %s  %s  (%.1fs, ETA %s)",
					  S.done, S.total, c->id, line,
					  r->t_total, e1);
		}
		if (r->have_metrics)
			pb_metrics_free(&r->mt);
		free(r);
	}
out:
	if (lock_fd >= 0)
		close(lock_fd);   /* releases the lock */
	free(lock_path);
	sum->seconds = pbi_now() - S.t0;
	if (S.dense)
		for (int s = 0; s < e->n_seeds; s++) {
			pb_model_free(S.dense[s]);
			if (S.dense_csv)
				free(S.dense_csv[s]);
			if (S.dense_base)
				free(S.dense_base[s]);
		}
	free(S.dense);
	free(S.dense_csv);
	free(S.dense_base);
	free(S.dense_fp);
	free(S.dense_rc);
	free(S.dense_msg);
	free(S.status);
	if (S.have_splits)
		pb_splits_free(&S.sp);
	pbi_jsonl_ids_free(ids, NULL, n_ids);
	free(todo);
	free(S.jsonl);
	free(S.cells_dir);
	free(cells);
	return rc;
}
