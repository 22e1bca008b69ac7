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
 *   by default in the experiments), the last layer as `last_layer` says;
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
 * The last layer (the last conv or linear weight: the classifier) follows
 * the paper, which treats it differently by scope (last_layer = auto):
 * its layer-wise networks prune it at half the rate (§2), its global runs
 * leave it unpruned (App. I.2, I.3; open_lth ignores fc.weight). half:
 * after round r it has 1 - (1 - rate/2)^r of its weights pruned; skip: it
 * keeps them all; same: it is pruned like the others. In every case the
 * other layers take what makes the total over every conv and linear
 * weight exactly 1 - (1 - rate)^r (the target on the last round), which is
 * what the rounds and the record report. */
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
	{ .name = "last_layer", .type = PB_OPT_CHOICE, .def = "auto", .choices = "auto|half|skip|same",
	  .help = "the last conv/linear weight (the classifier): half = half the rate; skip = never pruned, the other layers pruned more; same = the full rate; auto = half with scope = layer, skip with scope = global (the paper's layer-wise and global runs)" },
};

/* How a round treats the last weight tensor. */
typedef enum last_mode { LAST_HALF, LAST_SKIP, LAST_SAME } last_mode;

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

/* |w| as the score of tensors [0, n); the others keep their zero scores. */
static void magnitudes(pb_weight_scores *s, int n)
{
	for (int i = 0; i < n; i++)
		for (size_t j = 0; j < s->params[i]->n; j++)
			s->score[i][j] = fabsf(s->params[i]->data[j]);
}

/* last_layer = half: the last tensor at `last`, the others at what makes
 * the total over all of them `total`. */
static int prune_half_last(pb_prune_ctx *ctx, pb_weight_scores *s,
			   double total, double last)
{
	int nt = s->n, rc;
	size_t n_all = 0, n_last = s->params[nt - 1]->n;
	double other;

	for (int i = 0; i < nt; i++)
		n_all += s->params[i]->n;
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
	magnitudes(s, nt - 1);
	s->exclude[nt - 1] = 1;
	if ((rc = pb_ctx_select_weights(ctx, s, other)) ||
	    (rc = pb_ctx_weight_scores(ctx, &s)))
		return rc;
	/* The last layer alone. */
	for (int i = 0; i < nt - 1; i++)
		s->exclude[i] = 1;
	for (size_t j = 0; j < n_last; j++)
		s->score[nt - 1][j] = fabsf(s->params[nt - 1]->data[j]);
	return pb_ctx_select_weights(ctx, s, last);
}

/* last_layer = skip: the last tensor is left out of the ranking, so the
 * others are pruned to the count that makes `total` of the whole model
 * (lth_prune checked that they can give it). */
static int prune_skip_last(pb_prune_ctx *ctx, pb_weight_scores *s,
			   double total)
{
	int nt = s->n;
	size_t n_all = 0, n_last = s->params[nt - 1]->n;
	double need;

	for (int i = 0; i < nt; i++)
		n_all += s->params[i]->n;
	need = (double)llround(total * (double)n_all);
	magnitudes(s, nt - 1);
	s->exclude[nt - 1] = 1;
	return pb_ctx_select_weights(ctx, s, need / (double)(n_all - n_last));
}

/* Prunes to total sparsity `total` over all prunable weights, the last
 * tensor as `mode` says (`last`: its sparsity under half); weights
 * already masked count. */
static int prune_round(pb_prune_ctx *ctx, double total, double last,
		       last_mode mode)
{
	pb_weight_scores *s;
	int rc;

	if ((rc = pb_ctx_weight_scores(ctx, &s)))
		return rc;
	if (mode == LAST_SKIP && s->n >= 2)
		return prune_skip_last(ctx, s, total);
	if (mode == LAST_HALF && s->n >= 2)
		return prune_half_last(ctx, s, total, last);
	magnitudes(s, s->n);
	return pb_ctx_select_weights(ctx, s, total);
}

/* The last conv or linear weight in model order (the classifier), as
 * pb_ctx_weight_scores orders them; NULL when the model has none. */
static pb_param *last_weight(pb_prune_ctx *ctx)
{
	pb_model *m = pb_ctx_model(ctx);
	pb_param *last = NULL;

	for (int i = 0; i < pb_model_n_params(m); i++)
		if (pb_model_param(m, i)->kind == PB_PARAM_WEIGHT)
			last = pb_model_param(m, i);
	return last;
}

/* The weights the core's selection lets a tensor of n lose: under global
 * scope each keeps max(1, ceil(1% of n)), under layer scope one
 * (docs/experiments.md, "Targets, scope and overrides"). */
static size_t can_lose(size_t n, int global)
{
	size_t keep = global ? (n + 99) / 100 : 1;

	if (keep < 1)
		keep = 1;
	return n > keep ? n - keep : 0;
}

/* last_layer = skip puts the whole target on the other layers: refuse,
 * before any training, a target they cannot give, with the most they
 * can. */
static int check_skip_reachable(pb_prune_ctx *ctx, double target)
{
	pb_model *m = pb_ctx_model(ctx);
	const pb_param *last = last_weight(ctx);
	int global = pb_ctx_target(ctx)->scope == PB_SCOPE_GLOBAL;
	size_t n_all = 0, room = 0;

	for (int i = 0; i < pb_model_n_params(m); i++) {
		const pb_param *p = pb_model_param(m, i);

		if (p->kind != PB_PARAM_WEIGHT)
			continue;
		n_all += p->n;
		if (p != last)
			room += can_lose(p->n, global);
	}
	if (!last || (double)llround(target * (double)n_all) <= (double)room)
		return 0;
	return pb_ctx_fail(ctx, "sparsity %g cannot be reached with the last "
			   "layer '%s' unpruned (last_layer = skip, the "
			   "default under scope = global): it holds %zu of "
			   "the %zu conv and linear weights, and the other "
			   "layers, each keeping %s, can give at most %.4f of "
			   "the whole model; lower the target, or prune the "
			   "last layer too (last_layer = half or same)",
			   target, pb_model_layer(m, last->layer)->name,
			   last->n, n_all, global ? "max(1, 1%) of its weights" :
			   "one weight", (double)room / (double)n_all);
}

/* last_layer = auto does what the paper did under each scope. */
static last_mode last_layer_mode(pb_prune_ctx *ctx)
{
	const char *v = pb_ctx_opt_string(ctx, "last_layer");

	if (!strcmp(v, "half"))
		return LAST_HALF;
	if (!strcmp(v, "skip"))
		return LAST_SKIP;
	if (!strcmp(v, "same"))
		return LAST_SAME;
	return pb_ctx_target(ctx)->scope == PB_SCOPE_GLOBAL ? LAST_SKIP :
	       LAST_HALF;
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

/* Rounds to sparsity s at `rate` per round: ceil(log(1 - s) /
 * log(1 - rate)), less a hair so that a whole number computed in floating
 * point is not taken for one more. */
static int lth_rounds(double s, double rate)
{
	return s > 0 ? (int)ceil(log(1.0 - s) / log(1.0 - rate) - 1e-9) : 0;
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
	last_mode last = last_layer_mode(ctx);
	long per_epoch, total;
	int dense_epochs, rounds, start, rc;

	if (reinit && lr_rewind)
		return pb_ctx_fail(ctx, "reinit = yes is the control of a "
				   "rewinding ticket; with lr_rewind = yes "
				   "there is no rewind to control");
	if (last == LAST_SKIP && (rc = check_skip_reachable(ctx, target)))
		return rc;
	if ((rc = pb_ctx_recipe_steps(ctx, PB_RECIPE_DENSE, &per_epoch,
				      &dense_epochs)) ||
	    (rc = pb_ctx_opt_point(ctx, "rewind", &st->rewind_step)))
		return rc;
	total = (long)dense_epochs * per_epoch;
	rounds = lth_rounds(target, rate);
	/* Rounds 1 ... rounds - 1 go to 1 - (1 - rate)^r whatever the
	 * target: a trunk shared with the cells of higher targets (and
	 * with the reinit control, whose rounds are the ticket's). A cell
	 * reads the deepest of them the cache has and computes the rest. */
	if ((rc = pb_ctx_trunk_begin(ctx, rounds > 0 ? rounds - 1 : 0,
				     &start)))
		return rc;
	if (start > 0) {
		/* The rewind point came back with the rounds (slot 0). */
	} else if (scratch) {
		if ((rc = own_dense_training(st, ctx, dense_epochs)))
			return rc;
	} else if (!lr_rewind) {
		/* Before any pruning: a missing point fails the cell at once. */
		if ((rc = pb_ctx_dense_point(ctx, "rewind", 0)))
			return rc;
		pb_ctx_log(ctx, "rewind point: iteration %ld of the dense "
			   "model's own training", st->rewind_step);
	}
	pb_ctx_log(ctx, "%d rounds at rate %g to sparsity %g; last layer "
		   "%s", rounds, rate, target, last == LAST_SKIP ? "unpruned" :
		   last == LAST_HALF ? "at half the rate" : "at the full rate");
	for (int r = 1; r <= rounds; r++) {
		double total_sp = r < rounds ? 1.0 - pow(1.0 - rate, r) : target;
		double half = 1.0 - pow(1.0 - rate / 2.0, r);
		int fresh = reinit && r == rounds;

		if (r == rounds && (rc = pb_ctx_trunk_end(ctx)))
			return rc;
		if (r <= start)
			continue;
		if ((rc = prune_round(ctx, total_sp, half, last)) ||
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
				  per_epoch, total)) ||
		    (r < rounds && (rc = pb_ctx_trunk_save(ctx, r))))
			return rc;
	}
	return rounds ? 0 : pb_ctx_trunk_end(ctx);
}

/* The training of one cell, for the dry run and shard balancing: each
 * round retrains retrain_epochs (-1: about the dense recipe's, T - k of
 * its T iterations), from = scratch trains a dense network first; all
 * rounds but the last, and that dense training, are the trunk. */
static int lth_estimate(pb_estimate *q)
{
	double rate = pb_estimate_opt_double(q, "rate");
	double e = pb_estimate_opt_double(q, "retrain_epochs");
	int scratch = !strcmp(pb_estimate_opt_string(q, "from"), "scratch");
	int rounds = lth_rounds(q->target->amount, rate);
	double own = scratch ? q->dense_epochs : 0.0;

	if (e < 0)
		e = q->dense_epochs;
	q->epochs = own + rounds * e;
	q->trunk_rounds = rounds > 0 ? rounds - 1 : 0;
	q->trunk_epochs = rounds > 1 ? own + (rounds - 1) * e : 0.0;
	return 0;
}

PB_PRUNER_DEFINE(lth, .version = "2.2", .granularity = PB_GRANULARITY_WEIGHT,
	PB_PRUNER_OPTIONS(lth_options), .create = lth_create, .destroy = free,
	.estimate = lth_estimate, .trunk_final_options = "reinit",
	.on_train_begin = lth_on_train_begin,
	.after_backward = lth_after_backward, .prune = lth_prune,
	.description = "lottery tickets: iterative magnitude pruning, "
		       "surviving weights rewound to an early point each round",
	.citation = "Frankle, Carbin. The Lottery Ticket Hypothesis. ICLR "
		    "2019; Frankle, Dziugaite, Roy, Carbin. Linear Mode "
		    "Connectivity and the Lottery Ticket Hypothesis. ICML 2020")
