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
	{ .name = "norm", .type = PB_OPT_INT, .def = "1", .min = 1, .max = 2,
	  .help = "1: L1 norm of each filter (the paper); 2: L2 norm" },
	PB_OPTION_MIN_KEEP,
};

/* The norm of one filter: its C x K x K weights for a conv, its row for
 * a linear. */
static double filter_norm(void *user, const pb_filter *f)
{
	const int norm = *(const int *)user;
	double s = 0.0;

	for (size_t j = 0; j < f->len; j++)
		s += norm == 1 ? fabs(f->weight[j]) :
		     (double)f->weight[j] * f->weight[j];
	return norm == 1 ? s : sqrt(s);
}

static int l1_prune(void *state, pb_prune_ctx *ctx)
{
	int norm = (int)pb_ctx_opt_int(ctx, "norm");
	pb_channel_scores *s;
	int rc = pb_ctx_filter_scores(ctx, filter_norm, &norm, &s);

	(void)state;
	if (rc)
		return rc;
	return pb_ctx_select_channels(ctx, s, -1.0,
				      (int)pb_ctx_opt_int(ctx, "min_keep"));
}

PB_PRUNER_DEFINE(l1, .version = "1.0", .granularity = PB_GRANULARITY_CHANNEL,
	PB_PRUNER_OPTIONS(l1_options), .prune = l1_prune,
	.description = "removes the filters with the smallest L1 (or L2) norm",
	.citation = "Li, Kadav, Durdanovic, Samet, Graf. Pruning Filters for "
		    "Efficient ConvNets. ICLR 2017")
