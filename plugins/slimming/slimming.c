/* slimming: Network Slimming (Liu, Li, Shen, Huang, Yan, Zhang, "Learning
 * Efficient Convolutional Networks through Network Slimming", ICCV 2017).
 *
 * Two phases, both inside prune():
 *
 * 1. Sparsity training. The loss gets an L1 penalty lambda * sum |gamma|
 *    over every BN scale factor, applied as its sub-gradient: after each
 *    backward pass, lambda * sign(gamma) is added to gamma's gradient
 *    (sign(0) = 0). The model trains for `sparsity_epochs` epochs, either
 *    continuing from the dense model (from = dense, with the fine-tune
 *    recipe) or from a fresh initialisation (from = scratch, with the
 *    dense recipe, as the paper trains).
 *
 * 2. Pruning. A channel's score is |gamma| of its BN; with the
 *    experiment's scope = global, one ranking of the raw |gamma| over all
 *    channels removes the smallest until the cell's target (channels,
 *    params or macs) is reached, every group keeping at least
 *    min_channels (per-layer overrides do not apply to this threshold).
 *    With scope = layer, each layer loses its share by its own |gamma|. Channels tied by residual adds are normalised by
 *    several BNs: their score is the MEAN of the members' |gamma|, which
 *    keeps residual groups comparable with single-BN groups in one global
 *    ranking. Groups with no BN (the hidden linear layers of a VGG
 *    classifier) have no scale factor and are left whole, as in the
 *    paper. */
#include <math.h>
#include <stdlib.h>

#include "prunebench/pruner.h"

static const pb_pruner_option slimming_options[] = {
	{ .name = "lambda", .type = PB_OPT_DOUBLE, .def = "1e-4", .min = 0, .max = 1,
	  .help = "L1 penalty on BN scales (paper: 1e-4 for VGG; 1e-5 is suggested for residual nets)" },
	{ .name = "sparsity_epochs", .type = PB_OPT_DOUBLE, .def = "-1", .min = -1, .max = 10000,
	  .help = "epochs of sparsity training; -1 = the chosen recipe's own epochs; 0 = none (the model was trained with the penalty already)" },
	{ .name = "from", .type = PB_OPT_CHOICE, .def = "scratch", .choices = "scratch|dense",
	  .help = "scratch: re-initialise and sparsity-train with the dense recipe (the paper); dense: continue from the dense model with the fine-tune recipe" },
	{ .name = "min_channels", .type = PB_OPT_INT, .def = "1", .min = 1, .max = 1e6,
	  .help = "channels every group keeps at least (residual groups: scored by the mean |gamma| of their BNs)" },
};

/* The L1 sub-gradient: gamma.grad += lambda * sign(gamma). The only
 * training this plugin runs is the sparsity training, so the penalty is
 * always on here; the runner's fine-tune afterwards does not call it. */
static int slimming_after_backward(void *state, pb_prune_ctx *ctx, long step)
{
	const float lambda = (float)pb_ctx_opt_double(ctx, "lambda");
	pb_model *m = pb_ctx_model(ctx);

	(void)state;
	(void)step;
	if (lambda == 0.0f)
		return 0;
	for (int i = 0; i < pb_model_n_params(m); i++) {
		pb_param *p = pb_model_param(m, i);

		if (p->kind != PB_PARAM_BN_GAMMA || !p->grad)
			continue;
		for (size_t j = 0; j < p->n; j++)
			p->grad[j] += p->data[j] > 0.0f ? lambda :
				      p->data[j] < 0.0f ? -lambda : 0.0f;
	}
	return 0;
}

static int sparsity_train(pb_prune_ctx *ctx)
{
	double epochs = pb_ctx_opt_double(ctx, "sparsity_epochs");
	int scratch = pb_ctx_opt_string(ctx, "from")[0] == 's';
	pb_recipe_which which = scratch ? PB_RECIPE_DENSE : PB_RECIPE_FINETUNE;
	long per_epoch;
	int recipe_epochs, rc;

	if (epochs == 0)
		return 0;
	if ((rc = pb_ctx_recipe_steps(ctx, which, &per_epoch, &recipe_epochs)))
		return rc;
	if (epochs < 0)
		epochs = recipe_epochs;
	if (scratch && (rc = pb_ctx_reinit_params(ctx)))
		return rc;
	pb_ctx_log(ctx, "sparsity training: lambda %g, %g epochs from %s",
		   pb_ctx_opt_double(ctx, "lambda"), epochs,
		   scratch ? "scratch" : "dense");
	return pb_ctx_train(ctx, which, epochs, 0);
}

/* |gamma| of every channel behind a BN, the mean over the BNs of a
 * residual group; groups without a BN are excluded. */
static int gamma_scores(pb_prune_ctx *ctx, pb_channel_scores *s)
{
	int any = 0;

	for (int g = 0; g < s->n; g++) {
		const pb_channel_group *grp = pb_ctx_group(ctx, g);

		s->exclude[g] = !grp->prunable || grp->n_bns == 0;
		any |= !s->exclude[g];
		for (int k = 0; !s->exclude[g] && k < grp->n_bns; k++) {
			const pb_param *gm = pb_ctx_layer_param(ctx,
				grp->bns[k], PB_PARAM_BN_GAMMA);

			if (!gm || (int)gm->n != grp->n_channels)
				return pb_ctx_fail(ctx, "group %d: BN layer %d "
						   "has no scale with %d "
						   "channels", g, grp->bns[k],
						   grp->n_channels);
			for (int c = 0; c < grp->n_channels; c++)
				s->score[g][c] += fabsf(gm->data[c]) /
						  (float)grp->n_bns;
		}
	}
	if (!any)
		return pb_ctx_fail(ctx, "the model has no prunable channels "
				   "behind a batch-norm layer: slimming needs "
				   "BN scale factors");
	return 0;
}

/* The paper's global threshold: the raw |gamma| ranked across all layers
 * (pb_ctx_remove_lowest), every group keeping min_keep. */
static int global_threshold(pb_prune_ctx *ctx, const pb_channel_scores *s,
			    int min_keep)
{
	double **score = calloc((size_t)s->n + 1, sizeof *score);
	int *floors = malloc(sizeof *floors * ((size_t)s->n + 1));
	double lowest = INFINITY;
	int rc = 0, done;

	for (int g = 0; score && floors && g < s->n && !rc; g++) {
		int n = pb_ctx_group(ctx, g)->n_channels;

		floors[g] = min_keep;
		if (s->exclude[g])
			continue;
		if (!(score[g] = malloc(sizeof **score * ((size_t)n + 1))))
			rc = pb_ctx_fail(ctx, "out of memory");
		for (int c = 0; !rc && c < n; c++) {
			score[g][c] = s->score[g][c];
			if (score[g][c] < lowest)
				lowest = score[g][c];
		}
	}
	if (!rc && (!score || !floors))
		rc = pb_ctx_fail(ctx, "out of memory");
	if (!rc)
		rc = pb_ctx_remove_lowest(ctx, (const double *const *)score,
					  floors, -1, &done);
	if (!rc)
		pb_ctx_log(ctx, "global |gamma| threshold %g", lowest);
	for (int g = 0; score && g < s->n; g++)
		free(score[g]);
	free(score);
	free(floors);
	return rc;
}

static int slimming_prune(void *state, pb_prune_ctx *ctx)
{
	int min_keep = (int)pb_ctx_opt_int(ctx, "min_channels");
	pb_channel_scores *s = NULL;
	int rc;

	(void)state;
	if ((rc = sparsity_train(ctx)) ||
	    (rc = pb_ctx_channel_scores(ctx, &s)) ||
	    (rc = gamma_scores(ctx, s)))
		goto out;
	if (pb_ctx_target(ctx)->scope == PB_SCOPE_GLOBAL) {
		rc = global_threshold(ctx, s, min_keep);
		goto out;
	}
	pb_ctx_log(ctx, "scope is layer: |gamma| is ranked within each layer; "
		   "the paper uses one global threshold (scope = global)");
	rc = pb_ctx_select_channels(ctx, s, -1.0, min_keep);
	s = NULL;   /* freed by the selection */
out:
	pb_ctx_channel_scores_free(s);
	return rc;
}

/* What one cell trains here, for the dry run and shard balancing: the
 * sparsity training (-1: the epochs of its recipe, the dense one from
 * scratch, the fine-tune's from the dense model). */
static int slimming_estimate(pb_estimate *q)
{
	double e = pb_estimate_opt_double(q, "sparsity_epochs");
	int scratch = pb_estimate_opt_string(q, "from")[0] == 's';

	q->epochs = e >= 0 ? e : scratch ? q->dense_epochs :
		    q->finetune_epochs;
	return 0;
}

PB_PRUNER_DEFINE(slimming, .version = "1.0",
	.estimate = slimming_estimate,
	.granularity = PB_GRANULARITY_CHANNEL,
	PB_PRUNER_OPTIONS(slimming_options),
	.after_backward = slimming_after_backward, .prune = slimming_prune,
	.description = "L1 sparsity training of BN scales, then removes the "
		       "channels with the smallest |gamma| (global threshold)",
	.citation = "Liu, Li, Shen, Huang, Yan, Zhang. Learning Efficient "
		    "Convolutional Networks through Network Slimming. ICCV 2017")
