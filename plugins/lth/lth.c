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
 *   retrain: the T - k iterations that followed k in the dense training,
 *   with the learning rates they had (Frankle et al. 2020: the schedule
 *   continues from k, it does not restart with a warm-up);
 *
 * until the target sparsity: rounds = ceil(log(1 - s) / log(1 - rate)),
 * the last round going exactly to s. Each round's sparsity is reported
 * (pb_ctx_report_round) for the table. retrain_epochs = X compresses that
 * stretch of the schedule into X epochs (a cost departure).
 *
 * lr_rewind = yes: no weight rewind; each round retrains the surviving
 * weights from where they are for the last t epochs of the dense training
 * with the learning rates those epochs had (Renda, Frankle, Carbin, ICLR
 * 2020, learning-rate rewinding): t = T - k by default, the stretch weight
 * rewinding would retrain; retrain_epochs = t sets it.
 *
 * reinit = yes is the ticket's random-reinitialisation control (Frankle &
 * Carbin 2019): the ticket's rounds run as they are, to find its mask (in
 * an experiment, `stream = TICKET` gives the control the ticket cell's
 * random streams, so the mask is the ticket's bit for bit); after the last
 * prune the surviving weights are drawn afresh (pb_ctx_reinit_params)
 * instead of rewound, and trained exactly as the ticket's last round.
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
	  .help = "do not rewind the weights; retrain the last epochs of the dense training with their learning rates (learning-rate rewinding, Renda et al. 2020)" },
	{ .name = "reinit", .type = PB_OPT_BOOL, .def = "no",
	  .help = "the random-reinit control: the ticket's rounds, then its final mask's survivors drawn afresh and trained as the ticket's last round (use stream = TICKET in the experiment)" },
	{ .name = "retrain_epochs", .type = PB_OPT_DOUBLE, .def = "-1", .min = -1, .max = 10000,
	  .help = "retraining per round: -1 = the T - k iterations after the rewind point k with their rates (lr_rewind: the last T - k); X = that stretch of the schedule in X epochs (lr_rewind: the last X epochs); 0 = none" },
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

/* The training after a round, from the dense training's schedule: the
 * T - k iterations after the rewind point k with their rates (compressed
 * into `epochs` when given), or for learning-rate rewinding its last t
 * epochs with theirs. */
static int retrain(pb_prune_ctx *ctx, int lr_rewind, double epochs, long k,
		   long per_epoch, long total)
{
	long from, steps;

	if (epochs == 0)
		return 0;
	if (lr_rewind) {
		long t = epochs > 0 ? llround(epochs * per_epoch) : total - k;

		if (t <= 0)
			return 0;
		from = t > total ? 0 : total - t;
		steps = 0;
	} else {
		if (k >= total)
			return 0;
		from = k;
		steps = epochs > 0 ? llround(epochs * per_epoch) : 0;
	}
	return pb_ctx_train_span(ctx, PB_RECIPE_DENSE, from, total, steps);
}

/* The rewind point of from = scratch: the plugin's own dense training,
 * keeping iteration k in snapshot slot 0. */
static int own_dense_training(lth_state *st, pb_prune_ctx *ctx,
			      int dense_epochs)
{
	int rc;

	if ((rc = pb_ctx_reinit_params(ctx)))
		return rc;
	st->want_save = 1;
	pb_ctx_log(ctx, "training from a fresh init for %d epochs, rewind "
		   "point at iteration %ld", dense_epochs, st->rewind_step);
	if ((rc = pb_ctx_train(ctx, PB_RECIPE_DENSE, dense_epochs, 0)))
		return rc;
	if (!st->saved)
		return pb_ctx_fail(ctx, "rewind = %s is iteration %ld, past the "
				   "end of the dense training",
				   pb_ctx_opt_string(ctx, "rewind"),
				   st->rewind_step);
	return 0;
}

static int lth_prune(void *state, pb_prune_ctx *ctx)
{
	lth_state *st = state;
	double target = pb_ctx_target(ctx)->amount;
	double rate = pb_ctx_opt_double(ctx, "rate");
	double epochs = pb_ctx_opt_double(ctx, "retrain_epochs");
	int scratch = !strcmp(pb_ctx_opt_string(ctx, "from"), "scratch");
	int reinit = pb_ctx_opt_bool(ctx, "reinit");
	int lr_rewind = pb_ctx_opt_bool(ctx, "lr_rewind");
	int last_half = pb_ctx_opt_bool(ctx, "last_half");
	long per_epoch, total;
	int dense_epochs, rounds, rc;

	if (reinit && lr_rewind)
		return pb_ctx_fail(ctx, "reinit = yes is the control of a "
				   "rewinding ticket; with lr_rewind = yes "
				   "there is no rewind to control");
	if ((rc = pb_ctx_recipe_steps(ctx, PB_RECIPE_DENSE, &per_epoch,
				      &dense_epochs)) ||
	    (rc = pb_ctx_opt_point(ctx, "rewind", &st->rewind_step)))
		return rc;
	total = (long)dense_epochs * per_epoch;
	rounds = target > 0 ? (int)ceil(log(1.0 - target) / log(1.0 - rate) -
					 1e-9) : 0;
	if (scratch) {
		if ((rc = own_dense_training(st, ctx, dense_epochs)))
			return rc;
	} else if (!lr_rewind) {
		/* Before any pruning: a missing point fails the cell at once. */
		if ((rc = pb_ctx_dense_point(ctx, "rewind", 0)))
			return rc;
		pb_ctx_log(ctx, "rewind point: iteration %ld of the dense "
			   "model's own training", st->rewind_step);
	}
	pb_ctx_log(ctx, "%d rounds at rate %g to sparsity %g", rounds, rate,
		   target);
	for (int r = 1; r <= rounds; r++) {
		double total_sp = r < rounds ? 1.0 - pow(1.0 - rate, r) : target;
		double last = 1.0 - pow(1.0 - rate / 2.0, r);
		int fresh = reinit && r == rounds;

		if ((rc = prune_round(ctx, total_sp, last, last_half)) ||
		    (rc = pb_ctx_report_round(ctx)))
			return rc;
		if (fresh)
			rc = pb_ctx_reinit_params(ctx);
		else if (!lr_rewind)
			rc = pb_ctx_snapshot_restore(ctx, 0);
		if (rc)
			return rc;
		pb_ctx_log(ctx, "round %d/%d: sparsity %.4f, %s", r, rounds,
			   total_sp, fresh ? "survivors re-initialised" :
			   lr_rewind ? "not rewound" : "rewound");
		if ((rc = retrain(ctx, lr_rewind, epochs, st->rewind_step,
				  per_epoch, total)))
			return rc;
	}
	return 0;
}

PB_PRUNER_DEFINE(lth, .version = "2.0", .granularity = PB_GRANULARITY_WEIGHT,
	PB_PRUNER_OPTIONS(lth_options), .create = lth_create, .destroy = free,
	.on_train_begin = lth_on_train_begin,
	.after_backward = lth_after_backward, .prune = lth_prune,
	.description = "lottery tickets: iterative magnitude pruning, "
		       "surviving weights rewound to an early point each round",
	.citation = "Frankle, Carbin. The Lottery Ticket Hypothesis. ICLR "
		    "2019; Frankle, Dziugaite, Roy, Carbin. Linear Mode "
		    "Connectivity and the Lottery Ticket Hypothesis. ICML 2020")
