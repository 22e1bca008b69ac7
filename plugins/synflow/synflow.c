/* synflow: iterative synaptic flow pruning at initialisation, without
 * data (Tanaka, Kunin, Yamins, Ganguli, "Pruning neural networks without
 * any data by iteratively conserving synaptic flow", NeurIPS 2020).
 *
 * Every parameter is replaced by its absolute value, an all-ones input
 * (one image of the model's input shape) goes through the network, and
 * the objective is the sum of the outputs,
 *
 *   R = 1^T ( prod_l |W_l| ) 1,
 *
 * the synaptic flow. A weight's score is | dR/dw * w | with w the
 * absolute weight: the flow through it. The lowest are masked, then the
 * scores are computed again on the pruned network, for `iterations`
 * rounds along the exponential schedule: round k of n masks up to
 * sparsity 1 - (1 - S)^(k/n), S the cell's target, so the last round
 * lands on S exactly. Recomputing after each round is what keeps a
 * layer from being cut off (the paper's layer collapse): a weight
 * whose path is thinned gains flow share.
 *
 * The plugin declares at_init: the runner hands it the model the dense
 * training started from and trains the pruned model with the dense
 * recipe. The forward is the eval-mode one (BN as the fixed affine map
 * of its running statistics, made absolute with everything else, as in
 * the authors' code), through pb_ctx_objective_grad; the signed values
 * come back from a snapshot after each round. */
#include <math.h>
#include <stdlib.h>

#include "prunebench/pruner.h"

static const pb_pruner_option synflow_options[] = {
	{ .name = "iterations", .type = PB_OPT_INT, .def = "100", .min = 1, .max = 10000,
	  .help = "pruning rounds of the exponential schedule, the scores computed again before each (the paper's 100)" },
};

/* R = the sum of the logits; dR/dlogits = 1. */
static double sum_objective(void *user, const float *logits, int B,
			    int classes, float *dlogits)
{
	double r = 0.0;

	(void)user;
	for (size_t i = 0; i < (size_t)B * classes; i++) {
		r += logits[i];
		dlogits[i] = 1.0f;
	}
	return r;
}

/* Every state tensor (weights, biases, BN's scales, shifts and running
 * statistics) made absolute. */
static void linearise(pb_model *m)
{
	for (int i = 0; i < pb_model_n_params(m); i++) {
		pb_param *p = pb_model_param(m, i);

		for (size_t j = 0; j < p->n; j++)
			p->data[j] = fabsf(p->data[j]);
	}
}

/* One round: the synaptic flow scores of the current (masked) model,
 * then the mask up to `amount`. Slot 0 keeps the signed values. */
static int synflow_round(pb_prune_ctx *ctx, const float *ones,
			 double amount, double *flow)
{
	pb_weight_scores *s;
	int rc;

	if ((rc = pb_ctx_snapshot_save(ctx, 0)))
		return rc;
	linearise(pb_ctx_model(ctx));
	if ((rc = pb_ctx_objective_grad(ctx, ones, 1, sum_objective, NULL,
					flow)) ||
	    (rc = pb_ctx_weight_scores(ctx, &s))) {
		pb_ctx_snapshot_restore(ctx, 0);
		return rc;
	}
	for (int i = 0; i < s->n; i++) {
		const pb_param *p = s->params[i];

		/* Both factors are >= 0 here: the flow through w. */
		for (size_t j = 0; j < p->n; j++)
			s->score[i][j] = fabsf(p->grad[j] * p->data[j]);
	}
	if ((rc = pb_ctx_snapshot_restore(ctx, 0))) {
		pb_ctx_weight_scores_free(s);
		return rc;
	}
	return pb_ctx_select_weights(ctx, s, amount);
}

static int synflow_prune(void *state, pb_prune_ctx *ctx)
{
	const long n = pb_ctx_opt_int(ctx, "iterations");
	const double goal = pb_ctx_target(ctx)->amount;
	int c, h, w, rc = 0;
	float *ones;

	(void)state;
	pb_model_input_shape(pb_ctx_model(ctx), &c, &h, &w);
	ones = malloc((size_t)c * h * w * sizeof *ones);
	if (!ones)
		return pb_ctx_fail(ctx, "out of memory");
	for (size_t i = 0; i < (size_t)c * h * w; i++)
		ones[i] = 1.0f;
	for (long k = 1; k <= n && !rc; k++) {
		/* The density (1 - S) shrinks by the same factor each round;
		 * the last round asks for S itself. */
		double amount = k == n ? goal :
				1.0 - pow(1.0 - goal, (double)k / (double)n);
		double flow = 0.0;

		rc = synflow_round(ctx, ones, amount, &flow);
		if (!rc && (k == 1 || k == n || k % (n / 10 + 1) == 0))
			pb_ctx_log(ctx, "round %ld/%ld: sparsity %.4f, flow "
				   "before it %.4g", k, n, amount, flow);
	}
	free(ones);
	return rc;
}

PB_PRUNER_DEFINE(synflow, .version = "1.0", .prune = synflow_prune,
	.granularity = PB_GRANULARITY_WEIGHT, .at_init = 1,
	PB_PRUNER_OPTIONS(synflow_options),
	.description = "data-free pruning at initialisation by iterative "
		       "synaptic flow |dR/dw * w|",
	.citation = "Tanaka, Kunin, Yamins, Ganguli. Pruning neural networks "
		    "without any data by iteratively conserving synaptic "
		    "flow. NeurIPS 2020")
