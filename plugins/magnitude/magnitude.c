/* magnitude: fine-grained pruning by |w| (Han et al., "Learning both
 * Weights and Connections for Efficient Neural Networks", NIPS 2015).
 *
 * Every conv and linear weight is scored by its absolute value and the
 * smallest are masked until the cell's sparsity target is reached. The
 * core applies the target's scope: `layer` prunes the same fraction of
 * every tensor (a per-layer sparsity table with overrides), `global` ranks
 * all weights together with a floor so no layer is emptied. Weights
 * already masked score 0 and count toward the target. */
#include <math.h>

#include "prunebench/pruner.h"

static const pb_pruner_option magnitude_options[] = {
	{ .name = "include_first", .type = PB_OPT_BOOL, .def = "yes",
	  .help = "also prune the first conv/linear layer (it sees the raw input and holds few weights)" },
	{ .name = "include_linear", .type = PB_OPT_BOOL, .def = "yes",
	  .help = "also prune linear layers, the classifier included" },
};

static int magnitude_prune(void *state, pb_prune_ctx *ctx)
{
	pb_model *m = pb_ctx_model(ctx);
	int first = pb_ctx_opt_bool(ctx, "include_first");
	int linear = pb_ctx_opt_bool(ctx, "include_linear");
	pb_weight_scores *s;
	int rc = pb_ctx_weight_scores(ctx, &s);

	(void)state;
	if (rc)
		return rc;
	for (int i = 0; i < s->n; i++) {
		const pb_param *p = s->params[i];
		const pb_layer_info *li = pb_model_layer(m, p->layer);

		if ((i == 0 && !first) ||
		    (li->type == PB_LAYER_LINEAR && !linear)) {
			s->exclude[i] = 1;
			continue;
		}
		for (size_t j = 0; j < p->n; j++)
			s->score[i][j] = fabsf(p->data[j]);
	}
	return pb_ctx_select_weights(ctx, s, -1.0);
}

PB_PRUNER_DEFINE(magnitude, .version = "1.0", .prune = magnitude_prune,
	.granularity = PB_GRANULARITY_WEIGHT,
	PB_PRUNER_OPTIONS(magnitude_options),
	.description = "fine-grained pruning of the smallest |w| (layer or "
		       "global scope)",
	.citation = "Han, Pool, Tran, Dally. Learning both Weights and "
		    "Connections for Efficient Neural Networks. NIPS 2015")
