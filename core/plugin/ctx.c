/* The plugin context: its set-up, the accessors a plugin reads the model
 * and its options through, weight masks, and the checks the other ctx_*
 * files share. Every pb_ctx_* helper reports failure through the
 * context's pb_error, so a hook can simply return the code it got. The
 * helpers live by job: ctx_select.c (scores, selection under the target,
 * channel removal), ctx_train.c (training, evaluation, calibration and
 * batches), ctx_snapshot.c (snapshots and training points),
 * ctx_helpers.c (what several pruners do alike). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/mask.h"
#include "plugin/ctx_impl.h"
#include "prunebench/tensor.h"

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
	ctx->rng = setup->rng;
}

void pbi_ctx_release(pb_prune_ctx *ctx)
{
	pbi_ctx_trunk_release(ctx);
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
	return ctx->rng;
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

/* ---- checks the other ctx files share ------------------------------------ */

int pbi_ctx_refuse_in_training(pb_prune_ctx *ctx, const char *what)
{
	if (!ctx->training)
		return 0;
	return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s' called %s from "
			    "a training hook: the model cannot change shape "
			    "during pb_ctx_train; do it in prune after "
			    "training returns", ctx->pr->name, what);
}

int pbi_ctx_check_amount(pb_prune_ctx *ctx, double amount, const char *what)
{
	if (!(amount >= 0.0 && amount < 1.0))
		return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': %s "
				    "amount %g is outside [0, 1)",
				    ctx->pr->name, what, amount);
	return 0;
}

int pbi_ctx_check_channel_target(pb_prune_ctx *ctx, const pb_target *t)
{
	if (t->kind == PB_TARGET_SPARSITY)
		return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s' removes "
				    "channels, which needs a channels, params "
				    "or macs target, but the target is "
				    "sparsity=%g", ctx->pr->name, t->amount);
	return 0;
}

int pbi_ctx_refuse_in_hook(pb_prune_ctx *ctx, const char *what)
{
	if (!ctx->training)
		return 0;
	return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s' called %s from "
			    "a training hook", ctx->pr->name, what);
}

int pbi_ctx_check_kept(pb_prune_ctx *ctx, const int *kept)
{
	for (int g = 0; g < ctx->n_groups; g++)
		if (kept[g] < 1 || kept[g] > ctx->groups[g].n_channels)
			return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': "
					    "group %d cannot keep %d channels "
					    "(it has %d; at least 1 stays)",
					    ctx->pr->name, g, kept[g],
					    ctx->groups[g].n_channels);
	return 0;
}

int pbi_ctx_need_data(pb_prune_ctx *ctx, const char *what)
{
	if (ctx->setup->splits && ctx->setup->splits->train.n > 0)
		return 0;
	return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s' needs data for "
			    "%s, but none was given: pass a dataset (--data "
			    "SPEC, or the experiment's data key)",
			    ctx->pr->name, what);
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
