/* lth: iterative magnitude pruning with rewinding (Frankle & Carbin, "The
 * Lottery Ticket Hypothesis: Finding Sparse, Trainable Neural Networks",
 * ICLR 2019; with rewinding: Frankle, Dziugaite, Roy, Carbin, "Linear Mode
 * Connectivity and the Lottery Ticket Hypothesis", ICML 2020).
 *
 * The rewind point is iteration k (`rewind`, a training point: N, Xep or
 * X% of the dense training) of the run that trained the dense model:
 *
 * from = dense (default): the cell's dense model and the weights its own
 * training had at iteration k, which the runner kept for this option
 * (pb_ctx_dense_point; `prunebench prune` reads DENSE.stepN.ckpt from
 * `prunebench train --keep`). Mask and rewind point come from one run.
 *
 * from = scratch: the plugin trains its own dense network from a fresh
 * initialisation (the cell's RNG) with the dense recipe, keeping the
 * weights at iteration k in snapshot slot 0; one dense training more.
 *
 * Then rounds of
 *
 *   prune `rate` of the remaining weights by |w| (the cell's scope: global
 *   by default in the experiments), the last layer at half the rate;
 *   rewind the surviving weights to iteration k (pruned ones stay zero);
 *   retrain with the dense recipe;
 *
 * until the target sparsity: rounds = ceil(log(1 - s) / log(1 - rate)),
 * the last round going exactly to s. Each round's sparsity is reported
 * (pb_ctx_report_round) for the table.
 *
 * lr_rewind = yes: no weight rewind; each round retrains the surviving
 * weights from where they are with the full dense recipe. That is
 * learning-rate rewinding (Renda, Frankle, Carbin, ICLR 2020), not the
 * lottery ticket procedure.
 *
 * reinit = yes replaces the rewind by a fresh random initialisation of the
 * whole network (same distribution, the cell's RNG; pruned weights stay
 * zero): the paper's random-reinitialisation control.
 *
 * The last layer at half the rate: after round r it has 1 - (1 - rate/2)^r
 * of its weights pruned; the other layers take what is needed for the
 * total to be exactly 1 - (1 - rate)^r (the target on the last round). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prunebench/pruner.h"

static const pb_pruner_option lth_options[] = {
	{ .name = "rate", .type = PB_OPT_DOUBLE, .def = "0.2", .min = 0.001, .max = 0.999,
	  .help = "fraction of the remaining weights pruned per round" },
	{ .name = "rewind", .type = PB_OPT_POINT, .def = "1%",
	  .help = "rewind point: N iterations, Xep epochs, or X% of the dense training; 0 = the initialisation (original LTH)" },
	{ .name = "from", .type = PB_OPT_CHOICE, .def = "dense", .choices = "dense|scratch",
	  .help = "dense: the given dense model and its own training's rewind point (kept by the runner); scratch: train a dense model from a fresh init here" },
	{ .name = "lr_rewind", .type = PB_OPT_BOOL, .def = "no",
	  .help = "do not rewind the weights, only restart the recipe (learning-rate rewinding, Renda et al. 2020)" },
	{ .name = "reinit", .type = PB_OPT_BOOL, .def = "no",
	  .help = "re-initialise the surviving weights randomly instead of rewinding (the random-reinit control)" },
	{ .name = "retrain_epochs", .type = PB_OPT_DOUBLE, .def = "-1", .min = -1, .max = 10000,
	  .help = "retraining per round: -1 = the dense recipe's epochs; 0 = none (the runner's fine-tune then trains the last ticket)" },
	{ .name = "last_half", .type = PB_OPT_BOOL, .def = "yes",
	  .help = "prune the last layer at half the rate (the paper's convention)" },
};

typedef struct lth_state {
	long rewind_step;    /* save at this step of the first training */
	int want_save;       /* 1 until the rewind point is kept */
	int saved;
} lth_state;

static int lth_create(pb_prune_ctx *ctx, void **state)
{
	return pb_ctx_state_new(ctx, sizeof(lth_state), state);
}

static int save_point(lth_state *s, pb_prune_ctx *ctx)
{
	int rc = pb_ctx_snapshot_save(ctx, 0);

	if (!rc)
		s->saved = 1;
	s->want_save = 0;
	return rc;
}

static int lth_on_train_begin(void *state, pb_prune_ctx *ctx)
{
	lth_state *s = state;

	if (s->want_save && s->rewind_step == 0)
		return save_point(s, ctx);
	return 0;
}

/* Before the optimizer step of step k: the weights after k updates. */
static int lth_after_backward(void *state, pb_prune_ctx *ctx, long step)
{
	lth_state *s = state;

	if (s->want_save && step == s->rewind_step)
		return save_point(s, ctx);
	return 0;
}

/* Prunes to total sparsity `total` over all prunable weights, the last
 * tensor at `last` (when last_half); weights already masked count. */
static int prune_round(pb_prune_ctx *ctx, double total, double last,
		       int last_half)
{
	pb_weight_scores *s;
	size_t n_all = 0, n_last;
	double other;
	int rc, nt;

	if ((rc = pb_ctx_weight_scores(ctx, &s)))
		return rc;
	nt = s->n;
	for (int i = 0; i < nt; i++)
		n_all += s->params[i]->n;
	n_last = s->params[nt - 1]->n;
	if (!last_half || nt < 2) {
		for (int i = 0; i < nt; i++)
			for (size_t j = 0; j < s->params[i]->n; j++)
				s->score[i][j] = fabsf(s->params[i]->data[j]);
		return pb_ctx_select_weights(ctx, s, total);
	}
	if (last > total)
		last = total;
	other = (total * (double)n_all - last * (double)n_last) /
		(double)(n_all - n_last);
	/* A last layer holding most of the weights cannot stay at half
	 * the rate: it takes what the others cannot. */
	if (other > 0.99) {
		other = 0.99;
		last = (total * (double)n_all - other * (double)(n_all -
			n_last)) / (double)n_last;
	}
	/* The other layers, ranked together (or per layer). */
	for (int i = 0; i < nt - 1; i++)
		for (size_t j = 0; j < s->params[i]->n; j++)
			s->score[i][j] = fabsf(s->params[i]->data[j]);
	s->exclude[nt - 1] = 1;
	if ((rc = pb_ctx_select_weights(ctx, s, other)) ||
	    (rc = pb_ctx_weight_scores(ctx, &s)))
		return rc;
	/* The last layer alone. */
	for (int i = 0; i < nt - 1; i++)
		s->exclude[i] = 1;
	for (size_t j = 0; j < s->params[nt - 1]->n; j++)
		s->score[nt - 1][j] = fabsf(s->params[nt - 1]->data[j]);
	return pb_ctx_select_weights(ctx, s, last);
}

static int lth_prune(void *state, pb_prune_ctx *ctx)
{
	lth_state *st = state;
	double target = pb_ctx_target(ctx)->amount;
	double rate = pb_ctx_opt_double(ctx, "rate");
	double epochs = pb_ctx_opt_double(ctx, "retrain_epochs");
	int scratch = !strcmp(pb_ctx_opt_string(ctx, "from"), "scratch");
	int reinit = pb_ctx_opt_bool(ctx, "reinit");
	int rewind = !reinit && !pb_ctx_opt_bool(ctx, "lr_rewind");
	int last_half = pb_ctx_opt_bool(ctx, "last_half");
	long per_epoch;
	int dense_epochs, rounds, rc;

	if ((rc = pb_ctx_recipe_steps(ctx, PB_RECIPE_DENSE, &per_epoch,
				      &dense_epochs)))
		return rc;
	if (epochs < 0)
		epochs = dense_epochs;
	rounds = target > 0 ? (int)ceil(log(1.0 - target) / log(1.0 - rate) -
					 1e-9) : 0;
	if (scratch) {
		if ((rc = pb_ctx_opt_point(ctx, "rewind", &st->rewind_step)))
			return rc;
		if ((rc = pb_ctx_reinit_params(ctx)))
			return rc;
		/* Kept with reinit too: the control is then comparable. */
		st->want_save = 1;
		pb_ctx_log(ctx, "training from a fresh init for %g epochs, "
			   "rewind point at iteration %ld", (double)dense_epochs,
			   st->rewind_step);
		if ((rc = pb_ctx_train(ctx, PB_RECIPE_DENSE, dense_epochs, 0)))
			return rc;
		if (!st->saved)
			return pb_ctx_fail(ctx, "rewind = %s is iteration %ld, "
					   "past the end of the dense training",
					   pb_ctx_opt_string(ctx, "rewind"),
					   st->rewind_step);
	} else if (rewind) {
		/* Before any pruning: a missing point fails the cell at once. */
		if ((rc = pb_ctx_dense_point(ctx, "rewind", 0)) ||
		    (rc = pb_ctx_opt_point(ctx, "rewind", &st->rewind_step)))
			return rc;
		pb_ctx_log(ctx, "rewind point: iteration %ld of the dense "
			   "model's own training", st->rewind_step);
	}
	pb_ctx_log(ctx, "%d rounds at rate %g to sparsity %g", rounds, rate,
		   target);
	for (int r = 1; r <= rounds; r++) {
		double total = r < rounds ? 1.0 - pow(1.0 - rate, r) : target;
		double last = 1.0 - pow(1.0 - rate / 2.0, r);

		if ((rc = prune_round(ctx, total, last, last_half)) ||
		    (rc = pb_ctx_report_round(ctx)))
			return rc;
		if (reinit)
			rc = pb_ctx_reinit_params(ctx);
		else if (rewind)
			rc = pb_ctx_snapshot_restore(ctx, 0);
		if (rc)
			return rc;
		pb_ctx_log(ctx, "round %d/%d: sparsity %.4f, %s", r, rounds,
			   total, reinit ? "re-initialised" : rewind ?
			   "rewound" : "not rewound");
		if (epochs > 0 &&
		    (rc = pb_ctx_train(ctx, PB_RECIPE_DENSE, epochs, 0)))
			return rc;
	}
	return 0;
}

PB_PRUNER_DEFINE(lth, .version = "1.1", .granularity = PB_GRANULARITY_WEIGHT,
	PB_PRUNER_OPTIONS(lth_options), .create = lth_create, .destroy = free,
	.on_train_begin = lth_on_train_begin,
	.after_backward = lth_after_backward, .prune = lth_prune,
	.description = "lottery tickets: iterative magnitude pruning, "
		       "surviving weights rewound to an early point each round",
	.citation = "Frankle, Carbin. The Lottery Ticket Hypothesis. ICLR "
		    "2019; Frankle, Dziugaite, Roy, Carbin. Linear Mode "
		    "Connectivity and the Lottery Ticket Hypothesis. ICML 2020")
