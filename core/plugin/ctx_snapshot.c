/* Snapshots of the whole model (save, rewind the values, revert to it)
 * and the dense training's kept points (PB_OPT_POINT options,
 * pb_ctx_dense_point), which load into a snapshot slot. */
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/mask.h"
#include "plugin/ctx_impl.h"
#include "prunebench/checkpoint.h"
#include "train/train_points.h"

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

	if ((rc = pbi_ctx_refuse_in_training(ctx, "pb_ctx_snapshot_revert")) ||
	    (rc = check_slot(ctx, slot, 1)) ||
	    (rc = pb_model_clone(&c, ctx->snap[slot], ctx->err)))
		return rc;
	pbi_ctx_replace_model(ctx, c);
	return 0;
}

int pb_ctx_unmask_keep_channels(pb_prune_ctx *ctx, int start, int scratch,
				const uint8_t *const *keep)
{
	int rc;

	if ((rc = pb_ctx_snapshot_save(ctx, scratch)) ||
	    (rc = pb_ctx_snapshot_revert(ctx, start)) ||
	    (rc = pb_ctx_snapshot_restore(ctx, scratch)))
		return rc;
	return pb_ctx_keep_channels(ctx, keep);
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
