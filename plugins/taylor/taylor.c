/* taylor: first-order Taylor importance (Molchanov, Mallya, Tyree, Frosio,
 * Kautz, "Importance Estimation for Neural Network Pruning", CVPR 2019,
 * and the authors' released code, NVlabs/Taylor_pruning).
 *
 * The importance of a channel is the squared first-order Taylor estimate
 * of the change in loss when it is removed, from the mini-batch gradient g:
 *
 *   criterion = bn (the paper's FO-BN, default):
 *       I_c = ( sum over the channel's BN gates of g_gamma*gamma + g_beta*beta )^2
 *   criterion = weight:
 *       I_c = ( sum over the channel's filter weights of g*w )^2
 *
 * Channels tied by a residual add are one group: removing one removes it
 * from every member, so the first-order change is the SUM of the
 * members' terms, squared; with residual_norm (the released code's
 * normalisation for ResNets) that square is divided by the number of
 * members summed.
 *
 * Procedure: ONE fine-tune with the fine-tune recipe (one pb_ctx_train,
 * one optimizer, one learning-rate schedule) with pruning events inside
 * it. after_backward adds each mini-batch's importance; every `interval`
 * mini-batches a pruning event averages them over the interval, folds the
 * average into a running one with `pruning_momentum` (as the released
 * code does), and removes the `per_step` least important channels (one
 * global ranking) until the cell's target is reached. A model cannot
 * change shape inside training, so an event MASKS its channels: their
 * filters and every weight that reads them, so a masked channel has no
 * effect at all (its BN shift, the only thing left, reaches nothing) and
 * the surviving weights train exactly as in the smaller network; masked
 * weights, their gradients and their momentum stay zero. The reached
 * amount is counted on the masked channels, and when the training ends
 * exactly those channels are removed physically.
 *
 * The training's length is planned before it starts: the channels a
 * uniform progression towards the floors needs to reach the target,
 * divided into events of per_step, times interval. That count is exact
 * for a channels target; for params or macs the Taylor order may need
 * fewer (the rest of the training then fine-tunes the masked model) or
 * more (a second training, planned the same way, continues; its
 * optimizer starts afresh, and the log says so). The LR schedule is the
 * fine-tune recipe's, laid out over the recipe's length and cut where the
 * phase ends: the released code prunes in the first iterations of its one
 * long training. The runner's regular fine-tune follows.
 *
 * With scope = layer, each group stops at the count a uniform per-layer
 * ratio gives (pb_ctx_layer_budget) and the global ranking chooses the
 * order; with scope = global only min_keep bounds a group. Under the bn
 * criterion, groups without a BN (hidden linear layers) have no gate and
 * are left whole. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prunebench/pruner.h"

static const pb_pruner_option taylor_options[] = {
	{ .name = "criterion", .type = PB_OPT_CHOICE, .def = "bn", .choices = "bn|weight",
	  .help = "bn: (sum g_gamma*gamma + g_beta*beta)^2 over the BN gate (FO-BN, the paper's choice); weight: (sum g*w)^2 over the filter" },
	{ .name = "interval", .type = PB_OPT_INT, .def = "10", .min = 1, .max = 1e6,
	  .help = "mini-batches of fine-tuning (and accumulation) between pruning events (released code: 30)" },
	{ .name = "per_step", .type = PB_OPT_INT, .def = "0", .min = 0, .max = 1e6,
	  .help = "channels removed per pruning event; 0 = 1% of the prunable channels (at least 1)" },
	{ .name = "pruning_momentum", .type = PB_OPT_DOUBLE, .def = "0.9", .min = 0, .max = 0.999,
	  .help = "at each event, importance = m * previous + (1 - m) * mean over the interval (the released code's pruning_momentum); 0 = the interval's mean alone" },
	{ .name = "residual_norm", .type = PB_OPT_BOOL, .def = "yes",
	  .help = "divide a residual group's squared importance by the number of layers tied in it (the released code's ResNet normalisation)" },
	PB_OPTION_MIN_KEEP,
	{ .name = "log_scores", .type = PB_OPT_BOOL, .def = "no",
	  .help = "log every channel's running importance at each pruning event (progress stream)" },
};

/* Snapshot slots: the model before the first mask, and after training. */
enum { SNAP_START = 0, SNAP_TRAINED = 1 };

typedef struct taylor_state {
	/* options */
	int weight;           /* criterion = weight */
	int interval, per_step, residual_norm, log_scores;
	double momentum;

	/* the groups, fixed for the whole phase (nothing is removed before
	 * it ends) */
	int n_groups;
	int *floor_;          /* fewest channels each group keeps */
	int *n0;              /* channels per group at the start */
	int *kept;            /* channels not masked, per group */
	uint8_t **keep;       /* keep[g][c] = 0 once channel c is masked */
	double **sum;         /* importance summed since the last event */
	double **avg;         /* the running importance (pruning_momentum) */
	double *tmp;          /* one group's first-order sums */
	const double **ranked;/* avg[g] for the eligible groups, else NULL */

	int reached;          /* the target is met by the masked channels */
	long batches;         /* since the last event */
	long steps;           /* trained in the phase, all trainings */
	long reached_at;      /* the step whose event reached the target */
	int events;
} taylor_state;

static void free_rows(double **rows, int n)
{
	for (int g = 0; rows && g < n; g++)
		free(rows[g]);
	free(rows);
}

static void taylor_destroy(void *state)
{
	taylor_state *s = state;

	free_rows(s->sum, s->n_groups);
	free_rows(s->avg, s->n_groups);
	pb_ctx_keep_free(s->keep);
	free(s->floor_);
	free(s->n0);
	free(s->kept);
	free(s->tmp);
	free(s->ranked);
	free(s);
}

static int taylor_create(pb_prune_ctx *ctx, void **state)
{
	taylor_state *s;
	int rc = pb_ctx_state_new(ctx, sizeof *s, state);

	if (rc)
		return rc;
	s = *state;
	s->weight = !strcmp(pb_ctx_opt_string(ctx, "criterion"), "weight");
	s->interval = (int)pb_ctx_opt_int(ctx, "interval");
	s->per_step = (int)pb_ctx_opt_int(ctx, "per_step");
	s->momentum = pb_ctx_opt_double(ctx, "pruning_momentum");
	s->residual_norm = pb_ctx_opt_bool(ctx, "residual_norm");
	s->log_scores = pb_ctx_opt_bool(ctx, "log_scores");
	return 0;
}

/* Whether group g can be scored under the criterion. */
static int eligible(const taylor_state *s, const pb_channel_group *grp)
{
	return grp->prunable && (s->weight ? grp->n_producers > 0 :
				 grp->n_bns > 0);
}

/* ---- setting up ---------------------------------------------------------- */

/* Checks that every eligible group's members have the tensors the
 * criterion reads and the masks need, with the group's channel count, and
 * creates the masks (all ones) before training, so events only clear
 * entries. */
static int check_groups(taylor_state *s, pb_prune_ctx *ctx)
{
	for (int g = 0; g < pb_ctx_n_groups(ctx); g++) {
		const pb_channel_group *grp = pb_ctx_group(ctx, g);
		int nc = grp->n_channels;

		if (!eligible(s, grp))
			continue;
		for (int k = 0; !s->weight && k < grp->n_bns; k++) {
			const pb_param *ga = pb_ctx_layer_param(ctx,
				grp->bns[k], PB_PARAM_BN_GAMMA);
			const pb_param *be = pb_ctx_layer_param(ctx,
				grp->bns[k], PB_PARAM_BN_BETA);

			if (!ga || !be || ga->shape[0] != nc || !ga->grad ||
			    !be->grad)
				return pb_ctx_fail(ctx, "group %d: layer %d "
						   "has no BN scale and shift "
						   "with %d channels", g,
						   grp->bns[k], nc);
		}
		for (int k = 0; k < grp->n_producers; k++) {
			pb_param *w = pb_ctx_layer_param(ctx, grp->producers[k],
							 PB_PARAM_WEIGHT);

			if (!w || w->shape[0] != nc || !w->grad ||
			    !pb_ctx_mask(ctx, w))
				return pb_ctx_fail(ctx, "group %d: layer %d "
						   "has no trainable weight "
						   "with %d filters", g,
						   grp->producers[k], nc);
		}
		if (grp->n_consumers == 0)
			return pb_ctx_fail(ctx, "group %d has no layer reading "
					   "its channels, so masking could not "
					   "silence them", g);
		for (int k = 0; k < grp->n_consumers; k++) {
			pb_param *w = pb_ctx_layer_param(ctx, grp->consumers[k],
							 PB_PARAM_WEIGHT);
			size_t row = w && w->shape[0] > 0 ?
				     w->n / (size_t)w->shape[0] : 0;

			if (!w || row == 0 || row % (size_t)nc ||
			    !pb_ctx_mask(ctx, w))
				return pb_ctx_fail(ctx, "group %d: layer %d "
						   "does not read its %d "
						   "channels through a weight",
						   g, grp->consumers[k], nc);
		}
	}
	return 0;
}

/* The fewest channels each group keeps: its per-layer share (scope
 * layer) but at least min_keep; ineligible groups whole. *cand_ch gets
 * the channels that can be ranked. */
static int floors(taylor_state *s, pb_prune_ctx *ctx, int *cand_ch)
{
	const pb_target *t = pb_ctx_target(ctx);
	int min_keep = (int)pb_ctx_opt_int(ctx, "min_keep");
	int rc;

	*cand_ch = 0;
	if (t->scope == PB_SCOPE_LAYER &&
	    (rc = pb_ctx_layer_budget(ctx, -1.0, s->floor_)))
		return rc;
	for (int g = 0; g < s->n_groups; g++) {
		const pb_channel_group *grp = pb_ctx_group(ctx, g);

		if (!eligible(s, grp))
			s->floor_[g] = grp->n_channels;
		else if (t->scope != PB_SCOPE_LAYER || s->floor_[g] < min_keep)
			s->floor_[g] = min_keep < grp->n_channels ? min_keep :
				       grp->n_channels;
		if (eligible(s, grp))
			*cand_ch += grp->n_channels;
	}
	return 0;
}

static int alloc_phase(taylor_state *s, pb_prune_ctx *ctx)
{
	int n = pb_ctx_n_groups(ctx), most = 1, cand_ch, rc;
	size_t rows = (size_t)n + 1;

	s->n_groups = n;
	s->floor_ = calloc(rows, sizeof *s->floor_);
	s->n0 = calloc(rows, sizeof *s->n0);
	s->kept = calloc(rows, sizeof *s->kept);
	s->sum = calloc(rows, sizeof *s->sum);
	s->avg = calloc(rows, sizeof *s->avg);
	if (!s->floor_ || !s->n0 || !s->kept || !s->sum || !s->avg)
		return pb_ctx_fail(ctx, "out of memory");
	if ((rc = pb_ctx_keep_new(ctx, &s->keep)))
		return rc;
	for (int g = 0; g < n; g++) {
		int nc = pb_ctx_group(ctx, g)->n_channels;

		s->n0[g] = s->kept[g] = nc;
		s->sum[g] = calloc((size_t)nc + 1, sizeof(double));
		s->avg[g] = calloc((size_t)nc + 1, sizeof(double));
		if (!s->sum[g] || !s->avg[g])
			return pb_ctx_fail(ctx, "out of memory");
		if (nc > most)
			most = nc;
	}
	if ((rc = floors(s, ctx, &cand_ch)))
		return rc;
	s->tmp = calloc((size_t)most, sizeof *s->tmp);
	s->ranked = calloc(rows, sizeof *s->ranked);
	if (!s->tmp || !s->ranked)
		return pb_ctx_fail(ctx, "out of memory");
	for (int g = 0; g < n; g++)
		if (eligible(s, pb_ctx_group(ctx, g)))
			s->ranked[g] = s->avg[g];
	if (s->per_step <= 0)
		s->per_step = cand_ch / 100 > 1 ? cand_ch / 100 : 1;
	return 0;
}

/* Whether keeping kept[g] channels per group meets the cell's target,
 * measured on the model as it is (no channel has been removed yet). */
static int target_met(pb_prune_ctx *ctx, const int *kept, int *met)
{
	double reached;
	int rc = pb_ctx_config_reached(ctx, kept, &reached);

	*met = !rc && reached >= pb_ctx_target(ctx)->amount - 1e-12;
	return rc;
}

/* The channels still to mask, estimated by removing them one at a time
 * from the group furthest from its floor in proportion (a uniform
 * progression towards the floors) until the target is met: exact for a
 * channels target, an estimate for params and macs, where the count
 * depends on which channels the ranking picks. */
static int channels_to_go(taylor_state *s, pb_prune_ctx *ctx, long *n)
{
	int *k = malloc(sizeof *k * ((size_t)s->n_groups + 1));
	int met = 0, rc;

	*n = 0;
	if (!k)
		return pb_ctx_fail(ctx, "out of memory");
	memcpy(k, s->kept, sizeof *k * (size_t)s->n_groups);
	rc = target_met(ctx, k, &met);
	while (!rc && !met) {
		double best = 0.0;
		int bg = -1;

		for (int g = 0; g < s->n_groups; g++) {
			double left;

			if (k[g] <= s->floor_[g])
				continue;
			left = (double)(k[g] - s->floor_[g]) /
			       (double)(s->n0[g] - s->floor_[g]);
			if (left > best) {
				best = left;
				bg = g;
			}
		}
		if (bg < 0) {
			rc = pb_ctx_fail(ctx, "every group is at its floor "
					 "before the target %g is reached: "
					 "lower the target or min_keep",
					 pb_ctx_target(ctx)->amount);
			break;
		}
		k[bg]--;
		(*n)++;
		rc = target_met(ctx, k, &met);
	}
	free(k);
	return rc;
}

/* ---- importance ---------------------------------------------------------- */

/* t[c] += sum over filter c's weights of g * w. */
static int add_grad_times_weight(void *user, const pb_filter *f)
{
	double *t = user;

	for (size_t j = 0; j < f->len; j++)
		t[f->channel] += (double)f->grad[j] * f->weight[j];
	return 0;
}

/* t[c] += g_gamma * gamma + g_beta * beta over the group's BN gates. */
static void add_bn_terms(pb_prune_ctx *ctx, const pb_channel_group *grp,
			 double *t)
{
	for (int k = 0; k < grp->n_bns; k++) {
		const pb_param *ga = pb_ctx_layer_param(ctx, grp->bns[k],
							PB_PARAM_BN_GAMMA);
		const pb_param *be = pb_ctx_layer_param(ctx, grp->bns[k],
							PB_PARAM_BN_BETA);

		for (int c = 0; c < grp->n_channels; c++)
			t[c] += (double)ga->grad[c] * ga->data[c] +
				(double)be->grad[c] * be->data[c];
	}
}

/* Adds this mini-batch's importance, (sum of first-order terms)^2 per
 * channel, divided for a residual group by its number of members. */
static int add_batch(taylor_state *s, pb_prune_ctx *ctx)
{
	int rc;

	for (int g = 0; g < s->n_groups; g++) {
		const pb_channel_group *grp = pb_ctx_group(ctx, g);
		int nc = grp->n_channels;
		double div = 1.0;

		if (!eligible(s, grp))
			continue;
		if (s->residual_norm && grp->residual)
			div = s->weight ? grp->n_producers : grp->n_bns;
		memset(s->tmp, 0, sizeof *s->tmp * (size_t)nc);
		if (!s->weight)
			add_bn_terms(ctx, grp, s->tmp);
		else if ((rc = pb_ctx_each_filter(ctx, g, add_grad_times_weight,
						  s->tmp)))
			return rc;
		for (int c = 0; c < nc; c++)
			s->sum[g][c] += s->tmp[c] * s->tmp[c] / div;
	}
	s->batches++;
	return 0;
}

/* At an event: the interval's mean, folded into the running importance
 * (the first event takes the mean as it is, as the released code does). */
static void average(taylor_state *s, pb_prune_ctx *ctx)
{
	const double m = s->events ? s->momentum : 0.0;

	for (int g = 0; g < s->n_groups; g++) {
		if (!eligible(s, pb_ctx_group(ctx, g)))
			continue;
		for (int c = 0; c < s->n0[g]; c++) {
			double mean = s->sum[g][c] / (double)s->batches;

			s->avg[g][c] = m * s->avg[g][c] + (1.0 - m) * mean;
			s->sum[g][c] = 0.0;
		}
	}
	s->batches = 0;
}

static void log_scores(taylor_state *s, pb_prune_ctx *ctx)
{
	for (int g = 0; g < s->n_groups; g++) {
		char line[4096];
		size_t k = 0;

		if (!eligible(s, pb_ctx_group(ctx, g)))
			continue;
		for (int c = 0; c < s->n0[g] && k + 24 < sizeof line; c++)
			k += (size_t)snprintf(line + k, sizeof line - k,
					      " %.9g", s->avg[g][c]);
		line[k] = '\0';
		pb_ctx_log(ctx, "event %d group %d importance:%s", s->events,
			   g, line);
	}
}

/* ---- pruning events ------------------------------------------------------ */

/* Clears entries [c * len, (c + 1) * len) of every row of p's mask, rows
 * of row_len floats. */
static void clear_slice(pb_prune_ctx *ctx, pb_param *p, int c, size_t len,
			size_t row_len)
{
	float *mk = pb_ctx_mask(ctx, p);

	for (size_t r = 0; r < p->n / row_len; r++)
		memset(mk + r * row_len + (size_t)c * len, 0,
		       len * sizeof *mk);
}

/* Masks channel c of group g (pb_ctx_pick_lowest has taken it off keep
 * and kept): its filters in every producer and its inputs in every
 * consumer (the K*K weights of input channel c in each filter of a conv,
 * the `fanout` features of channel c in each row of a linear after
 * flatten). The optimizer step right after this hook zeroes the weights,
 * their gradients and their momentum. */
static void mask_channel(void *user, pb_prune_ctx *ctx, int g, int c)
{
	const pb_channel_group *grp = pb_ctx_group(ctx, g);
	int nc = grp->n_channels;

	for (int k = 0; k < grp->n_producers; k++) {
		pb_param *w = pb_ctx_layer_param(ctx, grp->producers[k],
						 PB_PARAM_WEIGHT);
		size_t row = w->n / (size_t)nc;

		memset(pb_ctx_mask(ctx, w) + (size_t)c * row, 0,
		       row * sizeof(float));
	}
	for (int k = 0; k < grp->n_consumers; k++) {
		pb_param *w = pb_ctx_layer_param(ctx, grp->consumers[k],
						 PB_PARAM_WEIGHT);
		size_t row = w->n / (size_t)w->shape[0];

		clear_slice(ctx, w, c, row / (size_t)nc, row);
	}
}

/* One event: masks up to per_step of the least important unmasked
 * channels above their floors (the core's greedy order: lowest first,
 * ties to the lower group, then the lower channel), stopping at the
 * channel that meets the target. */
static int prune_event(taylor_state *s, pb_prune_ctx *ctx)
{
	int removed = 0, rc;

	average(s, ctx);
	s->events++;
	if (s->log_scores)
		log_scores(s, ctx);
	rc = pb_ctx_pick_lowest(ctx, s->ranked, s->floor_, s->per_step,
				s->keep, s->kept, mask_channel, NULL, &removed,
				&s->reached);
	if (rc)
		return rc;
	if (!removed && !s->reached)
		return pb_ctx_fail(ctx, "every group is at its floor before "
				   "the target %g is reached: lower the "
				   "target or min_keep",
				   pb_ctx_target(ctx)->amount);
	if (s->reached)
		s->reached_at = s->steps;
	return 0;
}

/* Adds this mini-batch's importance; every `interval` of them, an
 * event. Nothing once the target is met: the rest of the training
 * fine-tunes the masked model. */
static int taylor_after_backward(void *state, pb_prune_ctx *ctx, long step)
{
	taylor_state *s = state;
	int rc;

	(void)step;
	s->steps++;
	if (s->reached)
		return 0;
	if ((rc = add_batch(s, ctx)))
		return rc;
	return s->batches >= s->interval ? prune_event(s, ctx) : 0;
}

/* ---- the phase ----------------------------------------------------------- */

/* One training of `steps` steps with the fine-tune recipe, its schedule
 * spread over the recipe's own length (or over `steps`, when longer). */
static int train_phase(pb_prune_ctx *ctx, long steps)
{
	long per_epoch;
	int epochs, rc;
	double sched;

	if ((rc = pb_ctx_recipe_steps(ctx, PB_RECIPE_FINETUNE, &per_epoch,
				      &epochs)))
		return rc;
	sched = epochs;
	if (per_epoch > 0 && (double)steps > sched * (double)per_epoch)
		sched = (double)steps / (double)per_epoch;
	return pb_ctx_train(ctx, PB_RECIPE_FINETUNE, sched, steps);
}

/* Our masks only held the removed channels at zero during training; the
 * result must be a plain smaller model, as every channel pruner's is. So
 * go back to the copy taken before the first mask, pour the trained
 * values into it, and remove exactly the masked channels. */
static int remove_masked(taylor_state *s, pb_prune_ctx *ctx)
{
	return pb_ctx_unmask_keep_channels(ctx, SNAP_START, SNAP_TRAINED,
					   (const uint8_t *const *)s->keep);
}

static int taylor_prune(void *state, pb_prune_ctx *ctx)
{
	taylor_state *s = state;
	long before, go, events;
	int rc, round = 0;

	if ((rc = alloc_phase(s, ctx)) ||
	    (rc = target_met(ctx, s->kept, &s->reached)))
		return rc;
	if (s->reached)
		return 0;
	/* Before check_groups makes the first mask. */
	if ((rc = pb_ctx_snapshot_save(ctx, SNAP_START)) ||
	    (rc = check_groups(s, ctx)))
		return rc;
	while (!s->reached) {
		if ((rc = channels_to_go(s, ctx, &go)))
			return rc;
		events = (go + s->per_step - 1) / s->per_step;
		if (round++ == 0)
			pb_ctx_log(ctx, "criterion %s: %ld channels to remove, "
				   "%d every %d mini-batches: one fine-tune of "
				   "%ld steps with %ld pruning events",
				   s->weight ? "weight" : "bn", go,
				   s->per_step, s->interval,
				   events * s->interval, events);
		else
			pb_ctx_log(ctx, "the target needs more channels than "
				   "estimated: continuing with a new fine-tune "
				   "of %ld steps (%ld more events; its "
				   "optimizer starts afresh)",
				   events * s->interval, events);
		before = s->events;
		if ((rc = train_phase(ctx, events * s->interval)))
			return rc;
		if (s->events == before)
			return pb_ctx_fail(ctx, "no pruning event happened in "
					   "%ld steps of fine-tuning",
					   events * s->interval);
	}
	pb_ctx_log(ctx, "target reached at step %ld after %d pruning events; "
		   "%ld steps trained in all", s->reached_at, s->events,
		   s->steps);
	return remove_masked(s, ctx);
}

/* What one cell trains here, for the dry run and shard balancing:
 * `interval` steps per pruning event, an event removing per_step
 * channels (0: 1% of them), until the target's share of the channels is
 * gone (for params and MACs, which shrink about as the square of the
 * channels kept, 1 - sqrt(1 - X)). The channel count is not known
 * before the model is, so per_step > 0 is taken as 1% too. */
static int taylor_estimate(pb_estimate *q)
{
	double x = q->target->amount;
	double share = q->target->kind == PB_TARGET_CHANNELS ? x :
		       1.0 - sqrt(1.0 - x);
	double steps = ceil(share * 100.0) *
		       pb_estimate_opt_double(q, "interval");

	if (q->finetune_steps_per_epoch <= 0)
		return -1;
	q->epochs = steps / q->finetune_steps_per_epoch;
	return 0;
}

PB_PRUNER_DEFINE(taylor, .version = "2.0",
	.estimate = taylor_estimate,
	.granularity = PB_GRANULARITY_CHANNEL,
	.description = "removes the channels with the smallest first-order "
		       "Taylor importance at events during one fine-tune",
	.citation = "Molchanov, Mallya, Tyree, Frosio, Kautz. Importance "
		    "Estimation for Neural Network Pruning. CVPR 2019",
	PB_PRUNER_OPTIONS(taylor_options), .create = taylor_create,
	.destroy = taylor_destroy, .after_backward = taylor_after_backward,
	.prune = taylor_prune)
