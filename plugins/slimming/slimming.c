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
#include <string.h>

#include "prunebench/pruner.h"

static const pb_pruner_option slimming_options[] = {
	{ .name = "lambda", .type = PB_OPT_DOUBLE, .def = "1e-4",
	  .help = "L1 penalty on BN scales (paper: 1e-4 for VGG; 1e-5 is "
		  "suggested for residual nets)", .min = 0, .max = 1 },
	{ .name = "sparsity_epochs", .type = PB_OPT_DOUBLE, .def = "-1",
	  .help = "epochs of sparsity training; -1 = the chosen recipe's own "
		  "epochs; 0 = none (the model was trained with the penalty "
		  "already)", .min = -1, .max = 10000 },
	{ .name = "from", .type = PB_OPT_CHOICE, .def = "scratch",
	  .help = "scratch: re-initialise and sparsity-train with the dense "
		  "recipe (the paper); dense: continue from the dense model "
		  "with the fine-tune recipe", .choices = "scratch|dense" },
	{ .name = "min_channels", .type = PB_OPT_INT, .def = "1",
	  .help = "channels every group keeps at least (residual groups: "
		  "scored by the mean |gamma| of their BNs)", .min = 1,
	  .max = 1e6 },
};

typedef struct slim_state {
	float lambda;
} slim_state;

static int slimming_create(pb_prune_ctx *ctx, void **state)
{
	slim_state *s = calloc(1, sizeof *s);

	if (!s)
		return pb_ctx_fail(ctx, "out of memory");
	s->lambda = (float)pb_ctx_opt_double(ctx, "lambda");
	*state = s;
	return 0;
}

static void slimming_destroy(void *state)
{
	free(state);
}

/* The L1 sub-gradient: gamma.grad += lambda * sign(gamma). The only
 * training this plugin runs is the sparsity training, so the penalty is
 * always on here; the runner's fine-tune afterwards does not call it. */
static int slimming_after_backward(void *state, pb_prune_ctx *ctx, long step)
{
	slim_state *s = state;
	pb_model *m = pb_ctx_model(ctx);

	(void)step;
	if (s->lambda == 0.0f)
		return 0;
	for (int i = 0; i < pb_model_n_params(m); i++) {
		pb_param *p = pb_model_param(m, i);

		if (p->kind != PB_PARAM_BN_GAMMA || !p->grad)
			continue;
		for (size_t j = 0; j < p->n; j++)
			p->grad[j] += p->data[j] > 0.0f ? s->lambda :
				      p->data[j] < 0.0f ? -s->lambda : 0.0f;
	}
	return 0;
}

static int sparsity_train(slim_state *s, pb_prune_ctx *ctx)
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
	if (scratch) {
		pb_error err = { 0 };

		if (pb_model_init_params(pb_ctx_model(ctx), pb_ctx_rng(ctx),
					 &err))
			return pb_ctx_fail(ctx, "re-initialising: %s",
					   err.msg);
		pb_ctx_apply_masks(ctx);
	}
	pb_ctx_log(ctx, "sparsity training: lambda %g, %g epochs from %s",
		   (double)s->lambda, epochs, scratch ? "scratch" : "dense");
	return pb_ctx_train(ctx, which, epochs, 0);
}

/* Fraction of the target's kind removed with kept[g] channels. */
static int removed_frac(pb_prune_ctx *ctx, const int *kept, int n,
			int ch0, uint64_t params0, uint64_t macs0,
			double *frac)
{
	uint64_t params, macs;
	int rc, ch = 0;

	for (int g = 0; g < n; g++)
		if (pb_ctx_group(ctx, g)->prunable)
			ch += kept[g];
	if ((rc = pb_ctx_config_cost(ctx, kept, &params, &macs)))
		return rc;
	switch (pb_ctx_target(ctx)->kind) {
	case PB_TARGET_CHANNELS:
		*frac = 1.0 - (double)ch / ch0;
		break;
	case PB_TARGET_PARAMS:
		*frac = 1.0 - (double)params / (double)params0;
		break;
	default:
		*frac = 1.0 - (double)macs / (double)macs0;
		break;
	}
	return 0;
}

typedef struct cand {
	float score;
	int g, c;
} cand;

static int cand_cmp(const void *a, const void *b)
{
	const cand *x = a, *y = b;

	if (x->score != y->score)
		return x->score < y->score ? -1 : 1;
	if (x->g != y->g)
		return x->g - y->g;
	return x->c - y->c;
}

/* The paper's global threshold: raw |gamma| ranked across all layers
 * (pb_ctx_select_channels' global scope normalises scores per layer, which
 * would undo exactly what the L1 penalty learned). Removes the smallest
 * until the target is reached, each group keeping min_keep. */
static int global_threshold(pb_prune_ctx *ctx, pb_channel_scores *s,
			    int min_keep)
{
	int n = s->n, total = 0, ch0 = 0, rc = 0, nc = 0;
	double amount = pb_ctx_target(ctx)->amount, frac = 0.0;
	int *kept = calloc((size_t)n + 1, sizeof *kept);
	uint8_t **keep = calloc((size_t)n + 1, sizeof *keep);
	uint64_t params0, macs0;
	cand *cs = NULL;

	if (!kept || !keep)
		goto oom;
	for (int g = 0; g < n; g++) {
		const pb_channel_group *grp = pb_ctx_group(ctx, g);

		kept[g] = grp->n_channels;
		keep[g] = malloc((size_t)kept[g] + 1);
		if (!keep[g])
			goto oom;
		memset(keep[g], 1, (size_t)kept[g]);
		if (grp->prunable)
			ch0 += kept[g];
		if (!s->exclude[g])
			total += kept[g];
	}
	if ((rc = pb_ctx_config_cost(ctx, kept, &params0, &macs0)))
		goto out;
	cs = malloc(sizeof *cs * ((size_t)total + 1));
	if (!cs)
		goto oom;
	for (int g = 0; g < n; g++)
		for (int c = 0; !s->exclude[g] && c < kept[g]; c++)
			cs[nc++] = (cand){ s->score[g][c], g, c };
	qsort(cs, (size_t)nc, sizeof *cs, cand_cmp);
	for (int i = 0; i < nc && frac < amount - 1e-12; i++) {
		if (kept[cs[i].g] <= min_keep)
			continue;
		kept[cs[i].g]--;
		keep[cs[i].g][cs[i].c] = 0;
		if ((rc = removed_frac(ctx, kept, n, ch0, params0, macs0,
				       &frac)))
			goto out;
	}
	if (frac < amount - 1e-12) {
		rc = pb_ctx_fail(ctx, "target %g cannot be reached: removing "
				 "every BN-gated channel down to min_channels "
				 "reaches %g", amount, frac);
		goto out;
	}
	pb_ctx_log(ctx, "global |gamma| threshold %g", nc ? (double)cs[0].score
		   : 0.0);
	rc = pb_ctx_keep_channels(ctx, (const uint8_t *const *)keep);
	goto out;
oom:
	rc = pb_ctx_fail(ctx, "out of memory");
out:
	for (int g = 0; keep && g < n; g++)
		free(keep[g]);
	free(keep);
	free(kept);
	free(cs);
	pb_ctx_channel_scores_free(s);
	return rc;
}

static int slimming_prune(void *state, pb_prune_ctx *ctx)
{
	slim_state *st = state;
	int min_keep = (int)pb_ctx_opt_int(ctx, "min_channels");
	pb_channel_scores *s;
	int rc, any = 0;

	if ((rc = sparsity_train(st, ctx)) ||
	    (rc = pb_ctx_channel_scores(ctx, &s)))
		return rc;
	for (int g = 0; g < s->n; g++) {
		const pb_channel_group *grp = pb_ctx_group(ctx, g);

		if (!grp->prunable || grp->n_bns == 0) {
			s->exclude[g] = 1;
			continue;
		}
		any = 1;
		for (int k = 0; k < grp->n_bns; k++) {
			const pb_param *gm = pb_ctx_layer_param(ctx,
				grp->bns[k], PB_PARAM_BN_GAMMA);

			if (!gm || (int)gm->n != grp->n_channels) {
				pb_ctx_channel_scores_free(s);
				return pb_ctx_fail(ctx, "group %d: BN layer %d "
						   "has no scale with %d "
						   "channels", g, grp->bns[k],
						   grp->n_channels);
			}
			for (int c = 0; c < grp->n_channels; c++)
				s->score[g][c] += fabsf(gm->data[c]) /
						  (float)grp->n_bns;
		}
	}
	if (!any) {
		pb_ctx_channel_scores_free(s);
		return pb_ctx_fail(ctx, "the model has no prunable channels "
				   "behind a batch-norm layer: slimming needs "
				   "BN scale factors");
	}
	if (pb_ctx_target(ctx)->scope == PB_SCOPE_GLOBAL)
		return global_threshold(ctx, s, min_keep);
	pb_ctx_log(ctx, "scope is layer: |gamma| is ranked within each layer; "
		   "the paper uses one global threshold (scope = global)");
	return pb_ctx_select_channels(ctx, s, -1.0, min_keep);
}

static const pb_pruner slimming = {
	PB_PRUNER_HEADER,
	.name = "slimming",
	.version = "1.0",
	.granularity = PB_GRANULARITY_CHANNEL,
	.description = "L1 sparsity training of BN scales, then removes the "
		       "channels with the smallest |gamma| (global threshold)",
	.citation = "Liu, Li, Shen, Huang, Yan, Zhang. Learning Efficient "
		    "Convolutional Networks through Network Slimming. ICCV 2017",
	.options = slimming_options,
	.n_options = sizeof slimming_options / sizeof slimming_options[0],
	.create = slimming_create,
	.destroy = slimming_destroy,
	.after_backward = slimming_after_backward,
	.prune = slimming_prune,
};

PB_PRUNER_EXPORT(slimming)
