/* The training loop: shuffled mini-batches, forward, cross-entropy,
 * backward, hooks, SGD; per-epoch validation, CSV and progress. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "prunebench/layers.h"
#include "prunebench/tensor.h"
#include "prunebench/train.h"
#include "base/file.h"
#include "base/util.h"

typedef struct train_bufs {
	size_t *perm;
	float *x;
	uint8_t *y;
	float *probs;
	float *dlogits;
	float *best;      /* snapshot of all state tensors for keep_best */
} train_bufs;

static void bufs_free(train_bufs *b)
{
	free(b->perm);
	pb_ffree(b->x);
	free(b->y);
	pb_ffree(b->probs);
	pb_ffree(b->dlogits);
	pb_ffree(b->best);
}

static size_t state_size(pb_model *m)
{
	size_t n = 0;
	for (int i = 0; i < pb_model_n_params(m); i++)
		n += pb_model_param(m, i)->n;
	return n;
}

/* Copies every state tensor (params and running stats) to or from buf. */
static void state_copy(pb_model *m, float *buf, int to_model)
{
	size_t off = 0;
	for (int i = 0; i < pb_model_n_params(m); i++) {
		pb_param *p = pb_model_param(m, i);
		if (to_model)
			memcpy(p->data, buf + off, p->n * sizeof(float));
		else
			memcpy(buf + off, p->data, p->n * sizeof(float));
		off += p->n;
	}
}

/* The fraction of conv and linear weights that are zero at the end of an
 * epoch: the curve of a gradual or iterative schedule shows its ramp. */
static double weight_sparsity(pb_model *m)
{
	size_t zeros = 0, all = 0;

	for (int i = 0; i < pb_model_n_params(m); i++) {
		const pb_param *p = pb_model_param(m, i);

		if (p->kind != PB_PARAM_WEIGHT)
			continue;
		for (size_t j = 0; j < p->n; j++)
			zeros += p->data[j] == 0.0f;
		all += p->n;
	}
	return all ? (double)zeros / (double)all : 0.0;
}

/* The curve is written under a temporary name and renamed when training
 * ends (also when it fails: the epochs it did are still a true record),
 * so a cache or a table never reads half a curve. */
static int csv_open(pbi_atomic *a, const char *path, pb_error *err)
{
	int rc;

	if (!path)
		return 0;
	if ((rc = pbi_atomic_begin(a, path, "training curve", err)))
		return rc;
	fprintf(a->f, "epoch,lr,train_loss,train_acc,val_loss,val_acc,"
		"sparsity,seconds\n");
	return 0;
}

static int check_inputs(const pb_model *m, const pb_dataset *train,
			const pb_recipe *r, pb_error *err)
{
	int c, h, w;

	pb_model_input_shape(m, &c, &h, &w);
	if (train->c != c || train->h != h || train->w != w)
		return pb_error_set(err, PB_EMISMATCH,
				    "data is %dx%dx%d but model '%s' expects "
				    "%dx%dx%d: choose a model file for this "
				    "dataset", train->c, train->h, train->w,
				    pb_model_name(m), c, h, w);
	if (train->classes > pb_model_classes(m))
		return pb_error_set(err, PB_EMISMATCH,
				    "data has %d classes but model '%s' has %d "
				    "outputs", train->classes, pb_model_name(m),
				    pb_model_classes(m));
	if (r->batch < 2)
		return pb_error_set(err, PB_EINVAL, "batch must be at least 2 "
				    "(batch normalisation needs statistics)");
	if (train->n < r->batch)
		return pb_error_set(err, PB_EINVAL, "training set has %d "
				    "samples, fewer than one batch of %d",
				    train->n, r->batch);
	return 0;
}

/* A training run that can stop after any update and go on later with
 * the same optimizer state, schedule position and data order: pb_train is
 * one uninterrupted call of it, and a pruning schedule (the gradual ramp)
 * stops it at each pruning point. */
struct pb_trainer {
	pb_model *m;
	const pb_dataset *train, *val;
	const pb_recipe *r;
	gsl_rng *rng;
	pb_train_opts opts;
	train_bufs b;
	pb_sgd *sgd;
	pbi_progress prog;
	pbi_atomic csv;      /* csv.f NULL: no curve */
	long steps;          /* per epoch (see keep_last) */
	int epoch;           /* current epoch, 0-based */
	long s;              /* steps done in the current epoch */
	long step;           /* steps done in all */
	int shuffled;        /* the current epoch's order is drawn */
	int done;
	int failed;          /* the error a run stopped with */
	double t0, loss_sum, best_acc;
	long hits, seen;
	pb_epoch_stats st;
};

int pb_trainer_new(pb_trainer **out, pb_model *m, const pb_dataset *train,
		   const pb_dataset *val, const pb_recipe *r, gsl_rng *rng,
		   const pb_train_opts *opts, pb_error *err)
{
	const size_t sample = (size_t)train->c * train->h * train->w;
	const int K = pb_model_classes(m), B = r->batch;
	pb_trainer *t;
	int rc;

	*out = NULL;
	if ((rc = check_inputs(m, train, r, err)))
		return rc;
	t = calloc(1, sizeof *t);
	if (!t)
		return pb_error_set(err, PB_ENOMEM, "out of memory (training)");
	t->m = m;
	t->train = train;
	t->val = val;
	t->r = r;
	t->rng = rng;
	if (opts)
		t->opts = *opts;
	t->steps = pb_recipe_steps_per_epoch(r, train->n);
	t->best_acc = -1.0;
	t->b.perm = malloc(sizeof *t->b.perm * (size_t)train->n);
	t->b.x = pb_falloc(sample * B);
	t->b.y = malloc((size_t)B);
	t->b.probs = pb_falloc((size_t)B * K);
	t->b.dlogits = pb_falloc((size_t)B * K);
	if (r->keep_best)
		t->b.best = pb_falloc(state_size(m));
	if (!t->b.perm || !t->b.x || !t->b.y || !t->b.probs ||
	    !t->b.dlogits || (r->keep_best && !t->b.best)) {
		pb_trainer_free(t);
		return pb_error_set(err, PB_ENOMEM, "out of memory (training)");
	}
	if ((rc = pb_sgd_create(&t->sgd, m, r, err)) ||
	    (rc = csv_open(&t->csv, t->opts.csv_path, err))) {
		pb_trainer_free(t);
		return rc;
	}
	pbi_progress_init(&t->prog, t->opts.progress);
	t->done = r->epochs <= 0;
	*out = t;
	return 0;
}

void pb_trainer_free(pb_trainer *t)
{
	if (!t)
		return;
	pbi_atomic_discard(&t->csv);
	pb_sgd_free(t->sgd);
	bufs_free(&t->b);
	free(t);
}

int pb_trainer_close(pb_trainer *t, pb_error *err)
{
	t->done = 1;
	return t->csv.f ? pbi_atomic_commit(&t->csv, err) : 0;
}

long pb_trainer_steps_done(const pb_trainer *t)
{
	return t->step;
}

long pb_trainer_steps_total(const pb_trainer *t)
{
	long total = (long)t->r->epochs * t->steps;

	return t->opts.max_steps && t->opts.max_steps < total ?
	       t->opts.max_steps : total;
}

static const char *label(const pb_trainer *t)
{
	return t->opts.label ? t->opts.label : "train";
}

/* The learning rate of update `step` (counted from 0 over the whole run)
 * at fractional epoch t of the training's own recipe. */
static double lr_of(const pb_trainer *t, long step, double epoch)
{
	const pb_lr_span *sp = &t->opts.span;
	long n;

	if (!sp->sched)
		return pb_recipe_lr(t->r, epoch);
	n = pb_trainer_steps_total(t);
	return pb_recipe_lr(sp->sched, sp->from + (sp->to - sp->from) *
			    (n > 0 ? (double)step / (double)n : 0.0));
}

/* One update: batch, forward, loss, backward, hooks, SGD. */
static int one_step(pb_trainer *t, pb_error *err)
{
	const pb_train_hooks *hooks = t->opts.hooks;
	const int K = pb_model_classes(t->m);
	const long left = t->train->n - t->s * t->r->batch;
	const int B = left < t->r->batch ? (int)left : t->r->batch;
	double lr = lr_of(t, t->step, t->epoch + (double)t->s / t->steps);
	const float *logits;
	double loss;
	int correct = 0, rc;

	pb_dataset_batch(t->train, t->b.perm + t->s * t->r->batch, B, t->b.x,
			 t->b.y, &t->r->aug, t->rng);
	rc = pb_model_forward(t->m, t->b.x, B, 1, t->rng, &logits, err);
	if (rc)
		return rc;
	loss = pb_softmax_xent_forward(t->b.probs, logits, t->b.y, B, K,
				       &correct);
	if (!isfinite(loss))
		return pb_error_set(err, PB_EDIVERGED, "training diverged: loss "
				    "is %g at epoch %d step %ld (lower the "
				    "learning rate)", loss, t->epoch + 1,
				    t->s + 1);
	t->loss_sum += loss * B;
	t->hits += correct;
	t->seen += B;
	pb_softmax_xent_backward(t->b.dlogits, t->b.probs, t->b.y, B, K);
	pb_model_zero_grad(t->m);
	rc = pb_model_backward(t->m, t->b.dlogits, err);
	if (!rc && hooks && hooks->after_backward)
		rc = hooks->after_backward(hooks->user, t->m, t->step);
	if (rc)
		return rc;
	pb_sgd_step(t->sgd, t->m, lr);
	if (hooks && hooks->after_step &&
	    (rc = hooks->after_step(hooks->user, t->m, t->step)))
		return rc;
	pbi_progress_update(&t->prog, "%s epoch %d/%d  step %ld/%ld  loss %.4f"
			    "  acc %.2f%%  lr %.4g", label(t), t->epoch + 1,
			    t->r->epochs, t->s + 1, t->steps,
			    t->loss_sum / t->seen, 100.0 * t->hits / t->seen,
			    lr);
	return 0;
}

/* The end of an epoch: validation, the CSV line, keep_best, the hook. */
static int end_epoch(pb_trainer *t, pb_error *err)
{
	const pb_train_hooks *hooks = t->opts.hooks;
	pb_epoch_stats *st = &t->st;
	int rc;

	st->epoch = t->epoch + 1;
	st->lr = lr_of(t, (long)t->epoch * t->steps, t->epoch);
	st->train_loss = t->seen ? t->loss_sum / t->seen : NAN;
	st->train_acc = t->seen ? (double)t->hits / t->seen : NAN;
	st->val_acc = st->val_loss = NAN;
	if (t->val && t->val->n > 0 &&
	    (rc = pb_evaluate(t->m, t->val, t->r->eval_batch, &st->val_acc,
			      &st->val_loss, err)))
		return rc;
	st->seconds = pbi_now() - t->t0;
	if (t->csv.f)
		fprintf(t->csv.f, "%d,%.6g,%.6f,%.6f,%.6f,%.6f,%.6f,%.3f\n",
			st->epoch, st->lr, st->train_loss, st->train_acc,
			st->val_loss, st->val_acc, weight_sparsity(t->m),
			st->seconds);
	pbi_progress_line(&t->prog, "%s epoch %d/%d  loss %.4f  train %.2f%%  "
			  "val %.2f%%  %.1fs", label(t), st->epoch,
			  t->r->epochs, st->train_loss, 100 * st->train_acc,
			  100 * st->val_acc, st->seconds);
	if (t->r->keep_best && st->val_acc > t->best_acc) {
		t->best_acc = st->val_acc;
		state_copy(t->m, t->b.best, 0);
	}
	if (hooks && hooks->after_epoch &&
	    (rc = hooks->after_epoch(hooks->user, t->m, t->epoch)))
		return rc;
	t->epoch++;
	t->s = 0;
	t->shuffled = 0;
	if (t->epoch >= t->r->epochs ||
	    (t->opts.max_steps && t->step >= t->opts.max_steps))
		t->done = 1;
	return 0;
}

int pb_trainer_run(pb_trainer *t, long until, pb_error *err)
{
	const long max = t->opts.max_steps;
	int rc;

	while (!t->done) {
		/* Checked before an epoch's shuffle and after every update,
		 * so stopping at `until` leaves the end of a finished epoch
		 * (validation, hooks) to the next call, where an after_step
		 * hook at that update would have run before it. */
		if (until >= 0 && t->step >= until)
			return 0;
		if (!t->shuffled) {
			t->t0 = pbi_now();
			t->loss_sum = 0.0;
			t->hits = t->seen = 0;
			for (int i = 0; i < t->train->n; i++)
				t->b.perm[i] = (size_t)i;
			pb_shuffle(t->b.perm, (size_t)t->train->n, t->rng);
			t->shuffled = 1;
		}
		while (t->s < t->steps && !(max && t->step >= max)) {
			if ((rc = one_step(t, err)))
				return t->failed = rc;
			t->s++;
			t->step++;
			if (until >= 0 && t->step >= until)
				return 0;
		}
		if ((rc = end_epoch(t, err)))
			return t->failed = rc;
	}
	return 0;
}

int pb_trainer_finish(pb_trainer *t, pb_epoch_stats *last, pb_error *err)
{
	/* After a failed run the error stands; the curve is still kept. */
	int rc = t->failed ? t->failed : pb_trainer_run(t, -1, err);

	if (!rc && t->r->keep_best && t->best_acc >= 0.0)
		state_copy(t->m, t->b.best, 1);
	{
		pb_error cerr = { 0 };
		int crc = pb_trainer_close(t, &cerr);

		if (crc && !rc)
			rc = pb_error_set(err, crc, "%s", cerr.msg);
	}
	if (last)
		*last = t->st;
	return rc;
}

int pb_train(pb_model *m, const pb_dataset *train, const pb_dataset *val,
	     const pb_recipe *r, gsl_rng *rng, const pb_train_opts *opts,
	     pb_epoch_stats *last, pb_error *err)
{
	pb_trainer *t;
	int rc;

	if ((rc = pb_trainer_new(&t, m, train, val, r, rng, opts, err)))
		return rc;
	rc = pb_trainer_finish(t, last, err);
	pb_trainer_free(t);
	return rc;
}
