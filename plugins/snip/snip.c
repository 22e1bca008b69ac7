/* snip: single-shot network pruning at initialisation by connection
 * sensitivity (Lee, Ajanthan, Torr, "SNIP: Single-shot Network Pruning
 * based on Connection Sensitivity", ICLR 2019).
 *
 * Each connection j gets an auxiliary gate c_j = 1 multiplying its
 * weight; its sensitivity is the magnitude of the loss's derivative with
 * respect to the gate, on a mini-batch of training data, at
 * initialisation:
 *
 *   s_j = | dL/dc_j | = | g_j * w_j |,   g_j = dL/dw_j
 *
 * (the gate multiplies w_j, so dL/dc_j = dL/dw_j * w_j at c = 1). The
 * lowest are masked until the cell's sparsity target is reached, in one
 * shot. The paper normalises s by its sum; that changes no ranking, so
 * it is left out.
 *
 * The plugin declares at_init: the runner hands it the model the dense
 * training started from and trains the pruned model with the dense
 * recipe. The gradient is the model's as it is evaluated (BN on its
 * running statistics, as the reference code's is_train = False), from
 * pb_ctx_loss_grad; with `batches` > 1 the gradients of several
 * mini-batches are summed before |g*w| is taken. */
#include <math.h>

#include "prunebench/pruner.h"

static const pb_pruner_option snip_options[] = {
	{ .name = "batch", .type = PB_OPT_INT, .def = "100", .min = 1, .max = 1e6,
	  .help = "training images in the mini-batch the sensitivity is computed on (at most the training split)" },
	{ .name = "batches", .type = PB_OPT_INT, .def = "1", .min = 1, .max = 1e4,
	  .help = "mini-batches whose gradients are summed before |g*w| (1: the paper's single batch)" },
};

static int snip_prune(void *state, pb_prune_ctx *ctx)
{
	const int batch = (int)pb_ctx_opt_int(ctx, "batch");
	const long batches = pb_ctx_opt_int(ctx, "batches");
	pb_weight_scores *s;
	double loss = 0.0, sum = 0.0;
	int rc;

	(void)state;
	if ((rc = pb_ctx_weight_scores(ctx, &s)))
		return rc;
	/* score = sum over the batches of g, then |score * w|. */
	for (long b = 0; b < batches && !rc; b++) {
		const float *x;
		const uint8_t *y;

		if ((rc = pb_ctx_train_batch(ctx, batch, &x, &y)) ||
		    (rc = pb_ctx_loss_grad(ctx, x, y, batch, &loss)))
			break;
		for (int i = 0; i < s->n; i++) {
			const pb_param *p = s->params[i];

			for (size_t j = 0; j < p->n; j++)
				s->score[i][j] += p->grad[j];
		}
		sum += loss;
	}
	if (rc) {
		pb_ctx_weight_scores_free(s);
		return rc;
	}
	for (int i = 0; i < s->n; i++) {
		const pb_param *p = s->params[i];

		for (size_t j = 0; j < p->n; j++)
			s->score[i][j] = fabsf(s->score[i][j] * p->data[j]);
	}
	pb_ctx_log(ctx, "sensitivities |g*w| from %ld batch%s of %d (mean "
		   "loss %.4f)", batches, batches == 1 ? "" : "es", batch,
		   sum / (double)batches);
	return pb_ctx_select_weights(ctx, s, -1.0);
}

PB_PRUNER_DEFINE(snip, .version = "1.0", .prune = snip_prune,
	.granularity = PB_GRANULARITY_WEIGHT, .at_init = 1,
	PB_PRUNER_OPTIONS(snip_options),
	.description = "pruning at initialisation by connection sensitivity "
		       "|g*w| on a mini-batch (one shot)",
	.citation = "Lee, Ajanthan, Torr. SNIP: Single-shot Network Pruning "
		    "based on Connection Sensitivity. ICLR 2019")
