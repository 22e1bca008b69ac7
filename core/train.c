/* The training loop: shuffled mini-batches, forward, cross-entropy,
 * backward, hooks, SGD; per-epoch validation, CSV and progress. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "prunebench/layers.h"
#include "prunebench/tensor.h"
#include "prunebench/train.h"
#include "util.h"

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

static int csv_open(FILE **f, const char *path, pb_error *err)
{
	*f = NULL;
	if (!path)
		return 0;
	*f = fopen(path, "w");
	if (!*f)
		return pb_error_set(err, PB_EIO, "%s: cannot write training "
				    "curve: %s", path, strerror(errno));
	fprintf(*f, "epoch,lr,train_loss,train_acc,val_loss,val_acc,seconds\n");
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

int pb_train(pb_model *m, const pb_dataset *train, const pb_dataset *val,
	     const pb_recipe *r, gsl_rng *rng, const pb_train_opts *opts,
	     pb_epoch_stats *last, pb_error *err)
{
	static const pb_train_opts no_opts;
	const pb_train_hooks *hooks;
	const size_t sample = (size_t)train->c * train->h * train->w;
	const int K = pb_model_classes(m), B = r->batch;
	/* The last partial batch is dropped: a tiny batch would give noisy
	 * batch-norm statistics, and every epoch keeps the same step count. */
	const long steps = train->n / B;
	double best_acc = -1.0;
	long step = 0;
	train_bufs b = { 0 };
	pb_sgd *sgd = NULL;
	pbi_progress prog;
	FILE *csv = NULL;
	pb_epoch_stats st = { 0 };
	int rc;

	if (!opts)
		opts = &no_opts;
	hooks = opts->hooks;
	rc = check_inputs(m, train, r, err);
	if (rc)
		return rc;
	b.perm = malloc(sizeof *b.perm * (size_t)train->n);
	b.x = pb_falloc(sample * B);
	b.y = malloc((size_t)B);
	b.probs = pb_falloc((size_t)B * K);
	b.dlogits = pb_falloc((size_t)B * K);
	if (r->keep_best)
		b.best = pb_falloc(state_size(m));
	if (!b.perm || !b.x || !b.y || !b.probs || !b.dlogits ||
	    (r->keep_best && !b.best)) {
		bufs_free(&b);
		return pb_error_set(err, PB_ENOMEM, "out of memory (training)");
	}
	rc = pb_sgd_create(&sgd, m, r, err);
	if (!rc)
		rc = csv_open(&csv, opts->csv_path, err);
	pbi_progress_init(&prog, opts->progress);

	for (int epoch = 0; !rc && epoch < r->epochs; epoch++) {
		double t0 = pbi_now(), loss_sum = 0.0;
		long hits = 0, seen = 0;

		for (int i = 0; i < train->n; i++)
			b.perm[i] = (size_t)i;
		pb_shuffle(b.perm, (size_t)train->n, rng);
		for (long s = 0; s < steps; s++, step++) {
			const float *logits;
			double lr = pb_recipe_lr(r, epoch + (double)s / steps);
			double loss;
			int correct = 0;

			if (opts->max_steps && step >= opts->max_steps)
				break;
			pb_dataset_batch(train, b.perm + s * B, B, b.x, b.y,
					 &r->aug, rng);
			rc = pb_model_forward(m, b.x, B, 1, rng, &logits, err);
			if (rc)
				break;
			loss = pb_softmax_xent_forward(b.probs, logits, b.y, B,
						       K, &correct);
			if (!isfinite(loss)) {
				rc = pb_error_set(err, PB_EDIVERGED,
						  "training diverged: loss is %g "
						  "at epoch %d step %ld (lower "
						  "the learning rate)", loss,
						  epoch + 1, s + 1);
				break;
			}
			loss_sum += loss * B;
			hits += correct;
			seen += B;
			pb_softmax_xent_backward(b.dlogits, b.probs, b.y, B, K);
			pb_model_zero_grad(m);
			rc = pb_model_backward(m, b.dlogits, err);
			if (!rc && hooks && hooks->after_backward)
				rc = hooks->after_backward(hooks->user, m, step);
			if (rc)
				break;
			pb_sgd_step(sgd, m, lr);
			if (hooks && hooks->after_step) {
				rc = hooks->after_step(hooks->user, m, step);
				if (rc)
					break;
			}
			pbi_progress_update(&prog, "%s epoch %d/%d  step %ld/%ld"
					    "  loss %.4f  acc %.2f%%  lr %.4g",
					    opts->label ? opts->label : "train",
					    epoch + 1, r->epochs, s + 1, steps,
					    loss_sum / seen,
					    100.0 * hits / seen, lr);
		}
		if (rc)
			break;
		st.epoch = epoch + 1;
		st.lr = pb_recipe_lr(r, epoch);
		st.train_loss = seen ? loss_sum / seen : NAN;
		st.train_acc = seen ? (double)hits / seen : NAN;
		st.val_acc = st.val_loss = NAN;
		if (val && val->n > 0) {
			rc = pb_evaluate(m, val, r->eval_batch, &st.val_acc,
					 &st.val_loss, err);
			if (rc)
				break;
		}
		st.seconds = pbi_now() - t0;
		if (csv) {
			fprintf(csv, "%d,%.6g,%.6f,%.6f,%.6f,%.6f,%.3f\n",
				st.epoch, st.lr, st.train_loss, st.train_acc,
				st.val_loss, st.val_acc, st.seconds);
			fflush(csv);
		}
		pbi_progress_line(&prog, "%s epoch %d/%d  loss %.4f  train "
				  "%.2f%%  val %.2f%%  %.1fs",
				  opts->label ? opts->label : "train", st.epoch,
				  r->epochs, st.train_loss, 100 * st.train_acc,
				  100 * st.val_acc, st.seconds);
		if (r->keep_best && st.val_acc > best_acc) {
			best_acc = st.val_acc;
			state_copy(m, b.best, 0);
		}
		if (hooks && hooks->after_epoch) {
			rc = hooks->after_epoch(hooks->user, m, epoch);
			if (rc)
				break;
		}
		if (opts->max_steps && step >= opts->max_steps)
			break;
	}
	if (!rc && r->keep_best && best_acc >= 0.0)
		state_copy(m, b.best, 1);
	if (csv && fclose(csv) && !rc)
		rc = pb_error_set(err, PB_EIO, "%s: write failed",
				  opts->csv_path);
	if (last)
		*last = st;
	pb_sgd_free(sgd);
	bufs_free(&b);
	return rc;
}
