/* The plugin's own training and data: pb_ctx_train (with the plugin's
 * hooks wired into pb_train), validation accuracy, calibration
 * activations, training batches, recipe lengths, and the rounds a plugin
 * reports. */
#include <stdlib.h>
#include <string.h>

#include "nn/mask.h"
#include "nn/model_impl.h"
#include "plugin/ctx_impl.h"
#include "prunebench/tensor.h"
#include "train/train_impl.h"

/* ---- training and evaluation ---------------------------------------------- */

static int hook_after_backward(void *user, pb_model *m, long step)
{
	pb_prune_ctx *ctx = user;

	return ctx->pr->after_backward(ctx->state, ctx, step);
}

/* Masks may be changed by hooks (gradual pruning); re-applying them after
 * every step keeps pruned weights at exactly zero whatever the optimizer
 * knew about them. */
static int hook_after_step(void *user, pb_model *m, long step)
{
	pbi_mask_apply(m);
	return 0;
}

static int hook_after_epoch(void *user, pb_model *m, int epoch)
{
	pb_prune_ctx *ctx = user;

	return ctx->pr->after_epoch(ctx->state, ctx, epoch);
}

/* The recipe of a plugin's training, or an error saying there is none. */
static int base_recipe(pb_prune_ctx *ctx, pb_recipe_which which,
		       const pb_recipe **base)
{
	const pb_prune_setup *su = ctx->setup;
	int rc;

	*base = which == PB_RECIPE_DENSE ? su->dense : su->finetune;
	if ((rc = pbi_ctx_refuse_in_hook(ctx, "pb_ctx_train")))
		return rc;
	if (!*base)
		return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s' wants to "
				    "train with the %s recipe, but this run has "
				    "none", ctx->pr->name,
				    which == PB_RECIPE_DENSE ? "dense" :
				    "fine-tune");
	return pbi_ctx_need_data(ctx, "training");
}

/* A plugin's training: recipe r for at most max_steps, the plugin's hooks
 * inside, reported to the runner first. */
static int run_training(pb_prune_ctx *ctx, pb_recipe_which which,
			double epochs, long steps, const pb_recipe *r,
			long max_steps, const pb_lr_span *span)
{
	const pb_prune_setup *su = ctx->setup;
	pb_train_hooks hooks = { 0 };
	pb_train_opts opts = { 0 };
	int rc;

	hooks.user = ctx;
	hooks.after_backward = ctx->pr->after_backward ? hook_after_backward :
			       NULL;
	hooks.after_step = hook_after_step;
	hooks.after_epoch = ctx->pr->after_epoch ? hook_after_epoch : NULL;
	opts.hooks = &hooks;
	opts.progress = su->progress;
	opts.label = su->label ? su->label : ctx->pr->name;
	opts.max_steps = max_steps;
	if (span)
		opts.span = *span;
	if (ctx->pr->on_train_begin &&
	    (rc = ctx->pr->on_train_begin(ctx->state, ctx)))
		return rc;
	pbi_ctx_on_train(ctx, which, epochs, steps, span);
	ctx->training = 1;
	pb_error_clear(ctx->err);
	rc = pb_train(ctx->model, &su->splits->train, NULL, r, ctx->rng, &opts,
		      NULL, ctx->err);
	ctx->training = 0;
	if (rc && !ctx->err->msg[0])
		pb_error_set(ctx->err, rc, "plugin '%s': a training hook "
			     "failed with %s", ctx->pr->name, pb_strerror(rc));
	return rc;
}

int pb_ctx_train(pb_prune_ctx *ctx, pb_recipe_which which, double epochs,
		 long steps)
{
	const pb_recipe *base;
	pb_recipe r;
	long per_epoch, max_steps;
	int rc;

	if ((rc = base_recipe(ctx, which, &base)))
		return rc;
	if (!(epochs > 0) && steps <= 0)
		return 0;
	per_epoch = pb_recipe_steps_per_epoch(base,
					      ctx->setup->splits->train.n);
	pbi_recipe_for(base, epochs, steps, per_epoch, &r, &max_steps);
	return run_training(ctx, which, epochs, steps, &r, max_steps, NULL);
}

int pb_ctx_train_span(pb_prune_ctx *ctx, pb_recipe_which which, long from,
		      long to, long steps)
{
	const pb_recipe *base;
	pb_lr_span span;
	pb_recipe r;
	long per_epoch, total, n, max_steps;
	int rc;

	if ((rc = base_recipe(ctx, which, &base)))
		return rc;
	per_epoch = pb_recipe_steps_per_epoch(base,
					      ctx->setup->splits->train.n);
	total = (long)base->epochs * per_epoch;
	if (per_epoch < 1 || from < 0 || from >= to || to > total)
		return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': a "
				    "training over iterations [%ld, %ld) of "
				    "the %s recipe, which has %ld", ctx->pr->name,
				    from, to, which == PB_RECIPE_DENSE ?
				    "dense" : "fine-tune", total);
	n = steps > 0 ? steps : to - from;
	pbi_recipe_for(base, 0, n, per_epoch, &r, &max_steps);
	span = (pb_lr_span){ .sched = base, .from = (double)from / per_epoch,
			     .to = (double)to / per_epoch };
	return run_training(ctx, which, 0, n, &r, max_steps, &span);
}

int pb_ctx_evaluate_val(pb_prune_ctx *ctx, double *acc)
{
	const pb_splits *sp = ctx->setup->splits;
	const pb_recipe *r = ctx->setup->finetune ? ctx->setup->finetune :
			     ctx->setup->dense;
	double loss;

	if (!sp || sp->val.n <= 0)
		return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s' needs a "
				    "validation split, but this run has none "
				    "(set val_size in the recipe)",
				    ctx->pr->name);
	return pb_evaluate(ctx->model, &sp->val,
			   r && r->eval_batch > 0 ? r->eval_batch : 256, acc,
			   &loss, ctx->err);
}

/* ---- calibration and batches ---------------------------------------------- */

static int calib_order(pb_prune_ctx *ctx)
{
	const pb_dataset *d = &ctx->setup->splits->train;

	if (ctx->calib_perm)
		return 0;
	ctx->calib_perm = malloc(sizeof *ctx->calib_perm * (size_t)d->n);
	if (!ctx->calib_perm)
		return pb_error_set(ctx->err, PB_ENOMEM, "out of memory");
	pb_shuffle(ctx->calib_perm, (size_t)d->n, ctx->rng);
	return 0;
}

static int grow(pb_prune_ctx *ctx, float **buf, size_t *cap, size_t n)
{
	if (*cap >= n)
		return 0;
	pb_ffree(*buf);
	*buf = pb_falloc(n);
	*cap = *buf ? n : 0;
	if (!*buf)
		return pb_error_set(ctx->err, PB_ENOMEM, "out of memory "
				    "(calibration, %zu floats)", n);
	return 0;
}

int pb_ctx_layer_input(pb_prune_ctx *ctx, int layer, int n,
		       const float **act, int *B)
{
	const pb_dataset *d;
	pb_model *m = ctx->model;
	const pbi_node *node;
	size_t sample, in_n;
	const int chunk = 128;
	int rc, src;

	if ((rc = pbi_ctx_need_data(ctx, "calibration activations")))
		return rc;
	d = &ctx->setup->splits->train;
	if (layer < 0 || layer >= m->n_nodes)
		return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': no layer "
				    "%d (the model has %d)", ctx->pr->name,
				    layer, m->n_nodes);
	if (n <= 0 || n > d->n)
		n = n <= 0 ? 1 : d->n;
	node = &m->nodes[layer];
	src = node->info.inputs[0];
	sample = (size_t)d->c * d->h * d->w;
	in_n = node->in_n;
	if ((rc = calib_order(ctx)) ||
	    (rc = grow(ctx, &ctx->calib_x, &ctx->calib_x_cap,
		       sample * chunk)) ||
	    (rc = grow(ctx, &ctx->act, &ctx->act_cap, in_n * (size_t)n)))
		return rc;
	for (int b0 = 0; b0 < n; b0 += chunk) {
		int nb = n - b0 < chunk ? n - b0 : chunk;
		const float *logits, *in;

		for (int i = 0; i < nb; i++)
			memcpy(ctx->calib_x + sample * i,
			       d->x + sample * ctx->calib_perm[b0 + i],
			       sample * sizeof(float));
		rc = pb_model_forward(m, ctx->calib_x, nb, 0, NULL, &logits,
				      ctx->err);
		if (rc)
			return rc;
		in = src < 0 ? ctx->calib_x : m->nodes[src].y;
		memcpy(ctx->act + in_n * b0, in, in_n * nb * sizeof(float));
	}
	*act = ctx->act;
	*B = n;
	return 0;
}

int pb_ctx_train_batch(pb_prune_ctx *ctx, int B, const float **x,
		       const uint8_t **y)
{
	const pb_dataset *d;
	size_t sample;
	int rc;

	if ((rc = pbi_ctx_need_data(ctx, "training batches")))
		return rc;
	d = &ctx->setup->splits->train;
	if (B <= 0 || B > d->n)
		return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': batch "
				    "of %d from a training split of %d",
				    ctx->pr->name, B, d->n);
	sample = (size_t)d->c * d->h * d->w;
	if (!ctx->batch_perm) {
		ctx->batch_perm = malloc(sizeof *ctx->batch_perm *
					 (size_t)d->n);
		if (!ctx->batch_perm)
			return pb_error_set(ctx->err, PB_ENOMEM, "out of "
					    "memory");
		ctx->batch_pos = d->n; /* shuffle on first use */
	}
	if (ctx->batch_cap < (size_t)B) {
		pb_ffree(ctx->batch_x);
		free(ctx->batch_y);
		ctx->batch_x = pb_falloc(sample * B);
		ctx->batch_y = malloc((size_t)B);
		ctx->batch_cap = ctx->batch_x && ctx->batch_y ? (size_t)B : 0;
		if (!ctx->batch_cap)
			return pb_error_set(ctx->err, PB_ENOMEM, "out of "
					    "memory");
	}
	if (ctx->batch_pos + B > d->n) {
		for (int i = 0; i < d->n; i++)
			ctx->batch_perm[i] = (size_t)i;
		pb_shuffle(ctx->batch_perm, (size_t)d->n, ctx->rng);
		ctx->batch_pos = 0;
	}
	pb_dataset_batch(d, ctx->batch_perm + ctx->batch_pos, B, ctx->batch_x,
			 ctx->batch_y, NULL, ctx->rng);
	ctx->batch_pos += B;
	*x = ctx->batch_x;
	*y = ctx->batch_y;
	return 0;
}

/* ---- recipe lengths and rounds (added after version 1) ------------------- */

int pb_ctx_recipe_steps(pb_prune_ctx *ctx, pb_recipe_which which,
			long *per_epoch, int *epochs)
{
	const pb_recipe *r = which == PB_RECIPE_DENSE ? ctx->setup->dense :
			     ctx->setup->finetune;
	int rc;

	if (!r)
		return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s' asked "
				    "for the %s recipe, but this run has none",
				    ctx->pr->name, which == PB_RECIPE_DENSE ?
				    "dense" : "fine-tune");
	if ((rc = pbi_ctx_need_data(ctx, "training")))
		return rc;
	*per_epoch = pb_recipe_steps_per_epoch(r, ctx->setup->splits->train.n);
	if (epochs)
		*epochs = r->epochs;
	return 0;
}

int pb_ctx_report_round(pb_prune_ctx *ctx)
{
	pb_prune_report *r = ctx->report;
	int rc;

	if ((rc = pbi_ctx_refuse_in_hook(ctx, "pb_ctx_report_round")))
		return rc;
	if (!r)
		return 0;
	if ((rc = pbi_report_measure(ctx->model, &ctx->before, r,
				      ctx->err)))
		return rc;
	if (r->n_rounds < PB_PRUNE_MAX_ROUNDS)
		r->rounds[r->n_rounds++] = r->reached;
	return 0;
}
