/* l1: filter pruning by the norm of each filter's weights (Li, Kadav,
 * Durdanovic, Samet, Graf, "Pruning Filters for Efficient ConvNets",
 * ICLR 2017).
 *
 * A channel's score is the L1 norm (or, with norm = 2, the L2 norm) of the
 * weights that produce it: for a conv, its filter (C x K x K); for a
 * linear, the row of its output neuron. When several layers produce one
 * channel group (convs tied by a residual add), the channel's score is the
 * SUM of its filters' norms over those producers, so a channel survives
 * when it matters across the stage, as Li et al. prune a residual stage's
 * shared channels together. The core removes the lowest-scored channels
 * physically until the cell's target (channels, params or macs; layer or
 * global scope) is reached.
 *
 * Note on global scope: raw norms grow with filter size, so a global
 * ranking favours pruning layers with small filters; Li et al. prune per
 * layer (scope layer) with per-layer overrides from a sensitivity scan. */
#include <math.h>

#include "prunebench/pruner.h"

static const pb_pruner_option l1_options[] = {
	{ .name = "norm", .type = PB_OPT_INT, .def = "1",
	  .help = "1: L1 norm of each filter (the paper); 2: L2 norm",
	  .min = 1, .max = 2 },
	{ .name = "min_keep", .type = PB_OPT_INT, .def = "1",
	  .help = "channels every group keeps at least", .min = 1,
	  .max = 1e6 },
};

/* Norm of output channel c of weight tensor p (row c of a (OC, rest)
 * layout, for conv and linear alike). */
static double filter_norm(const pb_param *p, int c, int norm)
{
	size_t row = p->n / (size_t)p->shape[0];
	const float *w = p->data + row * (size_t)c;
	double s = 0.0;

	for (size_t j = 0; j < row; j++)
		s += norm == 1 ? fabs(w[j]) : (double)w[j] * w[j];
	return norm == 1 ? s : sqrt(s);
}

static int l1_prune(void *state, pb_prune_ctx *ctx)
{
	int norm = (int)pb_ctx_opt_int(ctx, "norm");
	int min_keep = (int)pb_ctx_opt_int(ctx, "min_keep");
	pb_channel_scores *s;
	int rc = pb_ctx_channel_scores(ctx, &s);

	(void)state;
	if (rc)
		return rc;
	for (int g = 0; g < s->n; g++) {
		const pb_channel_group *grp = pb_ctx_group(ctx, g);

		if (!grp->prunable)
			continue;
		for (int k = 0; k < grp->n_producers; k++) {
			const pb_param *w = pb_ctx_layer_param(ctx,
				grp->producers[k], PB_PARAM_WEIGHT);

			if (!w || w->shape[0] != grp->n_channels) {
				pb_ctx_channel_scores_free(s);
				return pb_ctx_fail(ctx, "group %d: producer "
						   "layer %d has no weight "
						   "with %d output channels",
						   g, grp->producers[k],
						   grp->n_channels);
			}
			for (int c = 0; c < grp->n_channels; c++)
				s->score[g][c] += (float)filter_norm(w, c,
								     norm);
		}
	}
	return pb_ctx_select_channels(ctx, s, -1.0, min_keep);
}

static const pb_pruner l1 = {
	PB_PRUNER_HEADER,
	.name = "l1",
	.version = "1.0",
	.granularity = PB_GRANULARITY_CHANNEL,
	.description = "removes the filters with the smallest L1 (or L2) "
		       "norm",
	.citation = "Li, Kadav, Durdanovic, Samet, Graf. Pruning Filters for "
		    "Efficient ConvNets. ICLR 2017",
	.options = l1_options,
	.n_options = sizeof l1_options / sizeof l1_options[0],
	.prune = l1_prune,
};

PB_PRUNER_EXPORT(l1)
