/* The pb_ctx_* helpers a plugin calls: its window on the model and the
 * only way it changes it (masks, selection under the cell's target,
 * channel removal, training, evaluation, calibration data, snapshots).
 * Every helper reports failure through the context's pb_error, so a hook
 * can simply return the code it got. */
#include <glob.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/mask.h"
#include "nn/model_impl.h"
#include "plugin/ctx_impl.h"
#include "prune/prune_impl.h"
#include "prunebench/checkpoint.h"
#include "prunebench/tensor.h"
#include "train/train_impl.h"
#include "train/train_points.h"

/* ---- set-up ------------------------------------------------------------- */

void pbi_ctx_init(pb_prune_ctx *ctx, pb_model *model,
		  const pb_prune_setup *setup, const pb_options *opts,
		  pb_error *err)
{
	memset(ctx, 0, sizeof *ctx);
	ctx->model = model;
	ctx->setup = setup;
	ctx->pr = setup->pruner;
	ctx->opts = opts;
	ctx->err = err;
}

void pbi_ctx_release(pb_prune_ctx *ctx)
{
	free(ctx->groups);
	ctx->groups = NULL;
	ctx->have_groups = 0;
	for (int i = 0; i < PB_CTX_SNAPSHOTS; i++) {
		pb_model_free(ctx->snap[i]);
		ctx->snap[i] = NULL;
	}
	free(ctx->calib_perm);
	pb_ffree(ctx->calib_x);
	pb_ffree(ctx->act);
	free(ctx->batch_perm);
	pb_ffree(ctx->batch_x);
	free(ctx->batch_y);
	pb_options_free(ctx->own_opts);
	ctx->own_opts = NULL;
}

void pbi_ctx_replace_model(pb_prune_ctx *ctx, pb_model *m)
{
	pb_model_free(ctx->model);
	ctx->model = m;
	free(ctx->groups);
	ctx->groups = NULL;
	ctx->have_groups = 0;
}

int pbi_ctx_groups(pb_prune_ctx *ctx)
{
	int rc;

	if (ctx->have_groups)
		return 0;
	rc = pbi_groups_derive(ctx->model, &ctx->groups, &ctx->n_groups,
			       ctx->err);
	if (rc)
		return rc;
	ctx->have_groups = 1;
	return 0;
}

/* ---- accessors ------------------------------------------------------------ */

pb_model *pb_ctx_model(pb_prune_ctx *ctx)
{
	return ctx->model;
}

const pb_target *pb_ctx_target(pb_prune_ctx *ctx)
{
	return ctx->setup->target;
}

gsl_rng *pb_ctx_rng(pb_prune_ctx *ctx)
{
	return ctx->setup->rng;
}

long pb_ctx_opt_int(pb_prune_ctx *ctx, const char *name)
{
	return pb_options_int(ctx->opts, name);
}

double pb_ctx_opt_double(pb_prune_ctx *ctx, const char *name)
{
	return pb_options_double(ctx->opts, name);
}

int pb_ctx_opt_bool(pb_prune_ctx *ctx, const char *name)
{
	return pb_options_bool(ctx->opts, name);
}

const char *pb_ctx_opt_string(pb_prune_ctx *ctx, const char *name)
{
	return pb_options_text(ctx->opts, name);
}

pb_param *pb_ctx_layer_param(pb_prune_ctx *ctx, int layer,
			     pb_param_kind kind)
{
	pb_model *m = ctx->model;

	for (int i = 0; i < pb_model_n_params(m); i++) {
		pb_param *p = pb_model_param(m, i);

		if (p->layer == layer && p->kind == kind)
			return p;
	}
	return NULL;
}

int pb_ctx_fail(pb_prune_ctx *ctx, const char *fmt, ...)
{
	char msg[PB_ERROR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': %s",
			    ctx->pr->name, msg);
}

void pb_ctx_log(pb_prune_ctx *ctx, const char *fmt, ...)
{
	FILE *f = ctx->setup->progress;
	va_list ap;

	if (!f)
		return;
	fprintf(f, "%s: ", ctx->setup->label ? ctx->setup->label :
		ctx->pr->name);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
	fflush(f);
}

/* A helper refusing to replace the model under a running pb_train. */
static int refuse_in_training(pb_prune_ctx *ctx, const char *what)
{
	if (!ctx->training)
		return 0;
	return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s' called %s from "
			    "a training hook: the model cannot change shape "
			    "during pb_ctx_train; do it in prune after "
			    "training returns", ctx->pr->name, what);
}

/* ---- masks ------------------------------------------------------------- */

float *pb_ctx_mask(pb_prune_ctx *ctx, pb_param *p)
{
	if (!p || p->kind != PB_PARAM_WEIGHT)
		return NULL;
	return pbi_mask_get(ctx->model, p, 1);
}

void pb_ctx_apply_masks(pb_prune_ctx *ctx)
{
	pbi_mask_apply(ctx->model);
}

/* ---- weight selection ---------------------------------------------------- */

void pb_ctx_weight_scores_free(pb_weight_scores *s)
{
	if (!s)
		return;
	for (int i = 0; s->score && i < s->n; i++)
		free(s->score[i]);
	free(s->score);
	free(s->params);
	free(s->exclude);
	free(s);
}

int pb_ctx_weight_scores(pb_prune_ctx *ctx, pb_weight_scores **out)
{
	pb_model *m = ctx->model;
	pb_weight_scores *s = calloc(1, sizeof *s);
	int np = pb_model_n_params(m), n = 0;

	*out = NULL;
	if (!s)
		goto oom;
	s->params = calloc((size_t)np + 1, sizeof *s->params);
	s->score = calloc((size_t)np + 1, sizeof *s->score);
	s->exclude = calloc((size_t)np + 1, 1);
	if (!s->params || !s->score || !s->exclude)
		goto oom;
	for (int i = 0; i < np; i++) {
		pb_param *p = pb_model_param(m, i);

		if (p->kind != PB_PARAM_WEIGHT)
			continue;
		s->params[n] = p;
		s->score[n] = calloc(p->n, sizeof(float));
		s->n = ++n;
		if (!s->score[n - 1])
			goto oom;
	}
	*out = s;
	return 0;
oom:
	pb_ctx_weight_scores_free(s);
	return pb_error_set(ctx->err, PB_ENOMEM, "out of memory (weight "
			    "scores)");
}

static int check_amount(pb_prune_ctx *ctx, double amount, const char *what)
{
	if (!(amount >= 0.0 && amount < 1.0))
		return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': %s "
				    "amount %g is outside [0, 1)",
				    ctx->pr->name, what, amount);
	return 0;
}

int pb_ctx_select_weights(pb_prune_ctx *ctx, pb_weight_scores *s,
			  double amount_override)
{
	const pb_target *t = ctx->setup->target;
	double amount = amount_override >= 0 ? amount_override : t->amount;
	double reached = 0;
	pb_param **params = NULL;
	float **scores = NULL;
	int n = 0, rc;

	if (!s)
		return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': "
				    "pb_ctx_select_weights without scores",
				    ctx->pr->name);
	if (t->kind != PB_TARGET_SPARSITY) {
		rc = pb_error_set(ctx->err, PB_EINVAL, "plugin '%s' selects "
				  "weights, which needs a sparsity target, but "
				  "the target is %s=%g: use sparsity=S",
				  ctx->pr->name, pb_target_kind_name(t->kind),
				  t->amount);
		goto out;
	}
	if ((rc = check_amount(ctx, amount, "sparsity")))
		goto out;
	params = malloc(sizeof *params * ((size_t)s->n + 1));
	scores = malloc(sizeof *scores * ((size_t)s->n + 1));
	if (!params || !scores) {
		rc = pb_error_set(ctx->err, PB_ENOMEM, "out of memory");
		goto out;
	}
	/* Excluded tensors are simply not offered to the selection. */
	for (int i = 0; i < s->n; i++) {
		if (s->exclude[i])
			continue;
		params[n] = s->params[i];
		scores[n++] = s->score[i];
	}
	if (n == 0) {
		rc = pb_error_set(ctx->err, PB_EIMPOSSIBLE, "plugin '%s' "
				  "excluded every weight tensor: nothing left "
				  "to prune", ctx->pr->name);
		goto out;
	}
	rc = pbi_select_weights(ctx->model, t, params, scores, n, amount,
				&reached, ctx->err);
out:
	free(params);
	free(scores);
	pb_ctx_weight_scores_free(s);
	return rc;
}

/* ---- channels ---------------------------------------------------------- */

int pb_ctx_n_groups(pb_prune_ctx *ctx)
{
	return pbi_ctx_groups(ctx) ? 0 : ctx->n_groups;
}

const pb_channel_group *pb_ctx_group(pb_prune_ctx *ctx, int g)
{
	if (pbi_ctx_groups(ctx) || g < 0 || g >= ctx->n_groups)
		return NULL;
	return &ctx->groups[g];
}

void pb_ctx_channel_scores_free(pb_channel_scores *s)
{
	if (!s)
		return;
	for (int g = 0; s->score && g < s->n; g++)
		free(s->score[g]);
	free(s->score);
	free(s->exclude);
	free(s);
}

int pb_ctx_channel_scores(pb_prune_ctx *ctx, pb_channel_scores **out)
{
	pb_channel_scores *s;
	int rc;

	*out = NULL;
	if ((rc = pbi_ctx_groups(ctx)))
		return rc;
	s = calloc(1, sizeof *s);
	if (!s)
		goto oom;
	s->score = calloc((size_t)ctx->n_groups + 1, sizeof *s->score);
	s->exclude = calloc((size_t)ctx->n_groups + 1, 1);
	if (!s->score || !s->exclude)
		goto oom;
	for (int g = 0; g < ctx->n_groups; g++) {
		s->score[g] = calloc((size_t)ctx->groups[g].n_channels + 1,
				     sizeof(float));
		s->n = g + 1;
		if (!s->score[g])
			goto oom;
	}
	*out = s;
	return 0;
oom:
	pb_ctx_channel_scores_free(s);
	return pb_error_set(ctx->err, PB_ENOMEM, "out of memory (channel "
			    "scores)");
}

static void free_keep(uint8_t **keep, int n)
{
	for (int g = 0; keep && g < n; g++)
		free(keep[g]);
	free(keep);
}

/* keep[g], all ones. */
static uint8_t **alloc_keep(const pb_channel_group *groups, int n)
{
	uint8_t **keep = calloc((size_t)n + 1, sizeof *keep);

	for (int g = 0; keep && g < n; g++) {
		keep[g] = malloc((size_t)groups[g].n_channels + 1);
		if (!keep[g]) {
			free_keep(keep, n);
			return NULL;
		}
		memset(keep[g], 1, (size_t)groups[g].n_channels);
	}
	return keep;
}

static int rebuild(pb_prune_ctx *ctx, const pb_channel_group *groups,
		   const uint8_t *const *keep)
{
	pb_model *nm = NULL;
	int rc = pbi_remove_channels(ctx->model, groups, ctx->n_groups, keep,
				     &nm, ctx->err);

	if (rc)
		return rc;
	pbi_ctx_replace_model(ctx, nm);
	return 0;
}

static int check_channel_target(pb_prune_ctx *ctx, const pb_target *t)
{
	if (t->kind == PB_TARGET_SPARSITY)
		return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s' removes "
				    "channels, which needs a channels, params "
				    "or macs target, but the target is "
				    "sparsity=%g", ctx->pr->name, t->amount);
	return 0;
}

int pb_ctx_select_channels(pb_prune_ctx *ctx, pb_channel_scores *s,
			   double amount_override, int min_keep)
{
	const pb_target *t = ctx->setup->target;
	double amount = amount_override >= 0 ? amount_override : t->amount;
	double reached = 0;
	pb_channel_group *groups = NULL;
	uint8_t **keep = NULL;
	int rc;

	if (!s)
		return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': "
				    "pb_ctx_select_channels without scores",
				    ctx->pr->name);
	if ((rc = refuse_in_training(ctx, "pb_ctx_select_channels")) ||
	    (rc = check_channel_target(ctx, t)) ||
	    (rc = check_amount(ctx, amount, "channel")) ||
	    (rc = pbi_ctx_groups(ctx)))
		goto out;
	if (s->n != ctx->n_groups) {
		rc = pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': channel "
				  "scores are for %d groups but the model has "
				  "%d (get fresh scores after removing "
				  "channels)", ctx->pr->name, s->n,
				  ctx->n_groups);
		goto out;
	}
	/* Excluded groups are offered as non-prunable, so the selection
	 * neither ranks nor cuts them. */
	groups = malloc(sizeof *groups * ((size_t)ctx->n_groups + 1));
	keep = alloc_keep(ctx->groups, ctx->n_groups);
	if (!groups || !keep) {
		rc = pb_error_set(ctx->err, PB_ENOMEM, "out of memory");
		goto out;
	}
	memcpy(groups, ctx->groups, sizeof *groups * (size_t)ctx->n_groups);
	for (int g = 0; g < ctx->n_groups; g++)
		if (s->exclude[g])
			groups[g].prunable = 0;
	rc = pbi_select_channels(ctx->model, groups, ctx->n_groups, t,
				 s->score, amount, min_keep < 1 ? 1 : min_keep,
				 keep, &reached, ctx->err);
	if (!rc)
		rc = rebuild(ctx, groups, (const uint8_t *const *)keep);
out:
	free_keep(keep, ctx->n_groups);
	free(groups);
	pb_ctx_channel_scores_free(s);
	return rc;
}

int pb_ctx_remove_channels(pb_prune_ctx *ctx, int g, const int *channels,
			   int n)
{
	uint8_t **keep;
	int rc;

	if ((rc = refuse_in_training(ctx, "pb_ctx_remove_channels")) ||
	    (rc = pbi_ctx_groups(ctx)))
		return rc;
	if (g < 0 || g >= ctx->n_groups)
		return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': no "
				    "channel group %d (the model has %d)",
				    ctx->pr->name, g, ctx->n_groups);
	keep = calloc((size_t)ctx->n_groups + 1, sizeof *keep);
	if (!keep || !(keep[g] = malloc((size_t)ctx->groups[g].n_channels))) {
		free(keep);
		return pb_error_set(ctx->err, PB_ENOMEM, "out of memory");
	}
	memset(keep[g], 1, (size_t)ctx->groups[g].n_channels);
	for (int i = 0; i < n; i++) {
		if (channels[i] < 0 || channels[i] >= ctx->groups[g].n_channels) {
			rc = pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': "
					  "channel %d of group %d is out of "
					  "range (it has %d channels)",
					  ctx->pr->name, channels[i], g,
					  ctx->groups[g].n_channels);
			break;
		}
		keep[g][channels[i]] = 0;
	}
	if (!rc)
		rc = rebuild(ctx, ctx->groups, (const uint8_t *const *)keep);
	free_keep(keep, g + 1);
	return rc;
}

int pb_ctx_keep_channels(pb_prune_ctx *ctx, const uint8_t *const *keep)
{
	int rc;

	if ((rc = refuse_in_training(ctx, "pb_ctx_keep_channels")) ||
	    (rc = pbi_ctx_groups(ctx)))
		return rc;
	return rebuild(ctx, ctx->groups, keep);
}

int pb_ctx_layer_budget(pb_prune_ctx *ctx, double amount, int *keep)
{
	pb_target t = *ctx->setup->target;
	float **scores = NULL;
	uint8_t **k = NULL;
	double reached;
	int rc;

	if (amount < 0)
		amount = t.amount;
	if ((rc = check_channel_target(ctx, &t)) ||
	    (rc = check_amount(ctx, amount, "channel")) ||
	    (rc = pbi_ctx_groups(ctx)))
		return rc;
	/* The layer-scope selection with equal scores picks exactly the
	 * per-group counts a uniform per-layer ratio gives. */
	t.scope = PB_SCOPE_LAYER;
	scores = calloc((size_t)ctx->n_groups + 1, sizeof *scores);
	k = alloc_keep(ctx->groups, ctx->n_groups);
	if (!scores || !k) {
		rc = pb_error_set(ctx->err, PB_ENOMEM, "out of memory");
		goto out;
	}
	for (int g = 0; g < ctx->n_groups; g++) {
		scores[g] = calloc((size_t)ctx->groups[g].n_channels + 1,
				   sizeof(float));
		if (!scores[g]) {
			rc = pb_error_set(ctx->err, PB_ENOMEM, "out of memory");
			goto out;
		}
	}
	rc = pbi_select_channels(ctx->model, ctx->groups, ctx->n_groups, &t,
				 scores, amount, 1, k, &reached, ctx->err);
	for (int g = 0; !rc && g < ctx->n_groups; g++) {
		keep[g] = 0;
		for (int c = 0; c < ctx->groups[g].n_channels; c++)
			keep[g] += k[g][c] != 0;
	}
out:
	for (int g = 0; scores && g < ctx->n_groups; g++)
		free(scores[g]);
	free(scores);
	free_keep(k, ctx->n_groups);
	return rc;
}

int pb_ctx_config_cost(pb_prune_ctx *ctx, const int *kept, uint64_t *params,
		       uint64_t *macs)
{
	uint64_t p = 0, m = 0;
	int rc;

	if ((rc = pbi_ctx_groups(ctx)))
		return rc;
	for (int g = 0; g < ctx->n_groups; g++)
		if (kept[g] < 1 || kept[g] > ctx->groups[g].n_channels)
			return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': "
					    "group %d cannot keep %d channels "
					    "(it has %d; at least 1 stays)",
					    ctx->pr->name, g, kept[g],
					    ctx->groups[g].n_channels);
	pbi_config_cost(ctx->model, ctx->groups, ctx->n_groups, kept, &p, &m);
	if (params)
		*params = p;
	if (macs)
		*macs = m;
	return 0;
}

/* ---- snapshots --------------------------------------------------------- */

static int check_slot(pb_prune_ctx *ctx, int slot, int need)
{
	if (slot < 0 || slot >= PB_CTX_SNAPSHOTS)
		return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': "
				    "snapshot slot %d is outside [0, %d)",
				    ctx->pr->name, slot, PB_CTX_SNAPSHOTS);
	if (need && !ctx->snap[slot])
		return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': "
				    "snapshot slot %d was never saved",
				    ctx->pr->name, slot);
	return 0;
}

int pb_ctx_snapshot_save(pb_prune_ctx *ctx, int slot)
{
	pb_model *c;
	int rc;

	if ((rc = check_slot(ctx, slot, 0)) ||
	    (rc = pb_model_clone(&c, ctx->model, ctx->err)))
		return rc;
	pb_model_free(ctx->snap[slot]);
	ctx->snap[slot] = c;
	return 0;
}

int pb_ctx_snapshot_restore(pb_prune_ctx *ctx, int slot)
{
	pb_model *m = ctx->model, *s;
	int rc;

	if ((rc = check_slot(ctx, slot, 1)))
		return rc;
	s = ctx->snap[slot];
	if (pb_model_n_params(s) != pb_model_n_params(m))
		goto shape;
	for (int i = 0; i < pb_model_n_params(m); i++)
		if (pb_model_param(s, i)->n != pb_model_param(m, i)->n)
			goto shape;
	for (int i = 0; i < pb_model_n_params(m); i++)
		memcpy(pb_model_param(m, i)->data, pb_model_param(s, i)->data,
		       pb_model_param(m, i)->n * sizeof(float));
	/* Weights pruned since the save stay pruned. */
	pbi_mask_apply(m);
	return 0;
shape:
	return pb_error_set(ctx->err, PB_EMISMATCH, "plugin '%s': snapshot %d "
			    "has other shapes than the current model (channels "
			    "were removed since): use pb_ctx_snapshot_revert "
			    "to go back to it", ctx->pr->name, slot);
}

int pb_ctx_snapshot_revert(pb_prune_ctx *ctx, int slot)
{
	pb_model *c;
	int rc;

	if ((rc = refuse_in_training(ctx, "pb_ctx_snapshot_revert")) ||
	    (rc = check_slot(ctx, slot, 1)) ||
	    (rc = pb_model_clone(&c, ctx->snap[slot], ctx->err)))
		return rc;
	pbi_ctx_replace_model(ctx, c);
	return 0;
}

/* ---- training and evaluation ---------------------------------------------- */

static int need_data(pb_prune_ctx *ctx, const char *what)
{
	if (ctx->setup->splits && ctx->setup->splits->train.n > 0)
		return 0;
	return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s' needs data for "
			    "%s, but none was given: pass a dataset (--data "
			    "SPEC, or the experiment's data key)",
			    ctx->pr->name, what);
}

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

int pb_ctx_train(pb_prune_ctx *ctx, pb_recipe_which which, double epochs,
		 long steps)
{
	const pb_prune_setup *su = ctx->setup;
	const pb_recipe *base = which == PB_RECIPE_DENSE ? su->dense :
				su->finetune;
	pb_train_hooks hooks = { 0 };
	pb_train_opts opts = { 0 };
	pb_recipe r;
	long per_epoch;
	int rc;

	if (ctx->training)
		return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s' called "
				    "pb_ctx_train from a training hook",
				    ctx->pr->name);
	if (!base)
		return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s' wants to "
				    "train with the %s recipe, but this run has "
				    "none", ctx->pr->name,
				    which == PB_RECIPE_DENSE ? "dense" :
				    "fine-tune");
	if ((rc = need_data(ctx, "training")))
		return rc;
	if (!(epochs > 0) && steps <= 0)
		return 0;
	per_epoch = pb_recipe_steps_per_epoch(base, su->splits->train.n);
	pbi_recipe_for(base, epochs, steps, per_epoch, &r,
			     &opts.max_steps);
	hooks.user = ctx;
	hooks.after_backward = ctx->pr->after_backward ? hook_after_backward :
			       NULL;
	hooks.after_step = hook_after_step;
	hooks.after_epoch = ctx->pr->after_epoch ? hook_after_epoch : NULL;
	opts.hooks = &hooks;
	opts.progress = su->progress;
	opts.label = su->label ? su->label : ctx->pr->name;
	if (ctx->pr->on_train_begin &&
	    (rc = ctx->pr->on_train_begin(ctx->state, ctx)))
		return rc;
	if (su->on_train)
		su->on_train(su->on_train_user, which, epochs, steps);
	ctx->training = 1;
	pb_error_clear(ctx->err);
	rc = pb_train(ctx->model, &su->splits->train, NULL, &r, su->rng, &opts,
		      NULL, ctx->err);
	ctx->training = 0;
	if (rc && !ctx->err->msg[0])
		pb_error_set(ctx->err, rc, "plugin '%s': a training hook "
			     "failed with %s", ctx->pr->name, pb_strerror(rc));
	return rc;
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
	pb_shuffle(ctx->calib_perm, (size_t)d->n, ctx->setup->rng);
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

	if ((rc = need_data(ctx, "calibration activations")))
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

	if ((rc = need_data(ctx, "training batches")))
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
		pb_shuffle(ctx->batch_perm, (size_t)d->n, ctx->setup->rng);
		ctx->batch_pos = 0;
	}
	pb_dataset_batch(d, ctx->batch_perm + ctx->batch_pos, B, ctx->batch_x,
			 ctx->batch_y, NULL, ctx->setup->rng);
	ctx->batch_pos += B;
	*x = ctx->batch_x;
	*y = ctx->batch_y;
	return 0;
}

/* ---- added after version 1 ---------------------------------------------- */

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
	if ((rc = need_data(ctx, "training")))
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

	if (ctx->training)
		return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s' called "
				    "pb_ctx_report_round from a training hook",
				    ctx->pr->name);
	if (!r)
		return 0;
	if ((rc = pbi_report_measure(ctx->model, &ctx->before, r,
				      ctx->err)))
		return rc;
	if (r->n_rounds < PB_PRUNE_MAX_ROUNDS)
		r->rounds[r->n_rounds++] = r->reached;
	return 0;
}

/* ---- training points ---------------------------------------------------- */

static int point_option(pb_prune_ctx *ctx, const char *name,
			const char **text)
{
	const pb_pruner_option *d = NULL;

	for (int i = 0; i < ctx->pr->n_options; i++)
		if (!strcmp(ctx->pr->options[i].name, name))
			d = &ctx->pr->options[i];
	if (!d || d->type != PB_OPT_POINT)
		return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s' has no "
				    "training-point option '%s'", ctx->pr->name,
				    name);
	*text = pb_options_text(ctx->opts, name);
	return 0;
}

int pb_ctx_opt_point(pb_prune_ctx *ctx, const char *name, long *step)
{
	const char *text = NULL;
	long per_epoch;
	int epochs, rc;

	if ((rc = point_option(ctx, name, &text)) ||
	    (rc = pb_ctx_recipe_steps(ctx, PB_RECIPE_DENSE, &per_epoch,
				      &epochs)))
		return rc;
	if ((rc = pbi_point_step(text, epochs, per_epoch, step, ctx->err)))
		pb_error_prefix(ctx->err, "option '%s' of plugin '%s': ", name,
				ctx->pr->name);
	return rc;
}

/* "points kept (iterations): 0 59" or "no points were kept", from the
 * BASE.stepN.ckpt files. */
static void kept_points(const char *base, char *buf, size_t n)
{
	size_t len = strlen(base), k = 0;
	glob_t g;
	char *pat = malloc(len + 16);

	snprintf(buf, n, "no points were kept");
	if (!pat)
		return;
	snprintf(pat, len + 16, "%s.step*.ckpt", base);
	if (!glob(pat, 0, NULL, &g)) {
		k = (size_t)snprintf(buf, n, "points kept (iterations):");
		for (size_t i = 0; i < g.gl_pathc && k < n; i++)
			k += (size_t)snprintf(buf + k, n - k, " %.*s",
				(int)(strlen(g.gl_pathv[i]) - len - 10),
				g.gl_pathv[i] + len + 5);
		globfree(&g);
	}
	free(pat);
}

int pb_ctx_dense_point(pb_prune_ctx *ctx, const char *name, int slot)
{
	const char *text;
	char *path;
	pb_model *c;
	long step;
	int rc;

	if ((rc = check_slot(ctx, slot, 0)) ||
	    (rc = pb_ctx_opt_point(ctx, name, &step)))
		return rc;
	text = pb_options_text(ctx->opts, name);
	if (!ctx->setup->dense_points)
		return pb_error_set(ctx->err, PB_ENOTFOUND, "%s = %s: the dense "
				    "model came without training points (the "
				    "runner keeps them; for `prunebench "
				    "prune`, train it with `prunebench train "
				    "--keep %s`)", name, text, text);
	path = pbi_point_path(ctx->setup->dense_points, step);
	if (!path)
		return pb_error_set(ctx->err, PB_ENOMEM, "out of memory");
	if ((rc = pb_model_clone(&c, ctx->model, ctx->err))) {
		free(path);
		return rc;
	}
	rc = pb_checkpoint_load(c, path, ctx->err);
	if (rc) {
		char why[PB_ERROR_MSG_MAX], kept[256];

		snprintf(why, sizeof why, "%s", ctx->err->msg);
		kept_points(ctx->setup->dense_points, kept, sizeof kept);
		pb_error_set(ctx->err, rc, "%s = %s (iteration %ld) of the "
			     "dense training: %s; %s", name, text, step, why,
			     kept);
		pb_model_free(c);
	} else {
		pb_model_free(ctx->snap[slot]);
		ctx->snap[slot] = c;
	}
	free(path);
	return rc;
}
