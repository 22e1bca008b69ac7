/* l1: filter pruning by the norm of each filter's weights (Li, Kadav,
 * Durdanovic, Samet, Graf, "Pruning Filters for Efficient ConvNets",
 * ICLR 2017).
 *
 * A channel's score is the L1 norm (or, with norm = 2, the L2 norm) of the
 * weights that produce it: for a conv, its filter (C x K x K); for a
 * linear, the row of its output neuron. The core removes the
 * lowest-scored channels physically until the cell's target (channels,
 * params or macs; layer or global scope) is reached.
 *
 * Residual networks (`residual`): with inner, the default and the paper's
 * ResNet experiments, channel groups tied by a residual add are left
 * whole and the other groups (the inner convs of each block) carry the
 * whole target; with tied, a tied group is pruned like any other, its
 * channel scored by the SUM of its filters' norms over its producers.
 *
 * Across layers (`strategy`): independent scores every filter on the
 * dense model. greedy (the paper's other way of pruning across layers)
 * goes through the groups in model order and, when scoring a filter,
 * leaves out the kernels that read input channels already removed from
 * an earlier group; it needs each group's count first, so it takes
 * scope layer only.
 *
 * Note on global scope: raw norms grow with filter size, so the core
 * divides each score by its group's mean before one ranking; Li et al.
 * prune per layer (scope layer) with ratios from a sensitivity scan. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "prunebench/pruner.h"

static const pb_pruner_option l1_options[] = {
	{ .name = "norm", .type = PB_OPT_INT, .def = "1", .min = 1, .max = 2,
	  .help = "1: L1 norm of each filter (the paper); 2: L2 norm" },
	{ .name = "residual", .type = PB_OPT_CHOICE, .def = "inner",
	  .choices = "inner|tied",
	  .help = "inner: leave channels tied by residual adds whole, prune the blocks' inner convs (the paper); tied: prune tied channels too, by summed norms" },
	{ .name = "strategy", .type = PB_OPT_CHOICE, .def = "independent",
	  .choices = "independent|greedy",
	  .help = "independent: score every filter on the dense model; greedy: leave out kernels reading channels already removed from earlier layers (scope layer)" },
	PB_OPTION_MIN_KEEP,
};

typedef struct l1_run {
	pb_prune_ctx *ctx;
	int norm, floor_, ng;
	int n_skip;           /* groups left whole */
	uint8_t *skip;        /* which: the residual-tied ones, with inner */
	int *fixed;           /* an override's count, or -1 */
	int *kept;            /* a count for every group */
	uint8_t **keep;       /* greedy: the choice so far */
	int *in_group;        /* greedy: the group a producer layer reads, or
				 -1 (the model input) */
	double *score;        /* greedy: one group's scores */
} l1_run;

/* The norm of n weights. */
static double norm_of(int norm, const float *w, size_t n)
{
	double s = 0.0;

	for (size_t j = 0; j < n; j++)
		s += norm == 1 ? fabs(w[j]) : (double)w[j] * w[j];
	return s;
}

/* The norm of one filter: its C x K x K weights for a conv, its row for
 * a linear. */
static double filter_norm(void *user, const pb_filter *f)
{
	const int norm = *(const int *)user;
	double s = norm_of(norm, f->weight, f->len);

	return norm == 1 ? s : sqrt(s);
}

static const char *kind_name(pb_target_kind k)
{
	switch (k) {
	case PB_TARGET_CHANNELS: return "channels";
	case PB_TARGET_PARAMS: return "params";
	default: return "macs";
	}
}

/* Which groups residual = inner leaves whole, and the overrides' counts.
 * Fails on an override naming a group l1 does not cut, which it would
 * otherwise ignore. */
static int set_skip(l1_run *r, int inner)
{
	for (int g = 0; g < r->ng; g++) {
		const pb_channel_group *grp = pb_ctx_group(r->ctx, g);
		const char *layer;
		double amount;
		int rc = pb_ctx_group_override(r->ctx, g, &amount, &layer);

		if (rc)
			return rc;
		if (amount >= 0 && !grp->prunable)
			return pb_ctx_fail(r->ctx, "override for layer "
					   "'%s': its channels cannot be "
					   "removed (they are the classes or "
					   "are tied to them or to the model "
					   "input); drop the override", layer);
		r->skip[g] = inner && grp->residual && grp->prunable;
		r->n_skip += r->skip[g];
		r->fixed[g] = amount >= 0 && grp->prunable ?
			      pb_ctx_kept_count(grp->n_channels, amount,
						r->floor_) : -1;
		if (r->skip[g] && amount >= 0)
			return pb_ctx_fail(r->ctx, "override for layer "
					   "'%s': its channels are tied by a "
					   "residual add, which residual = "
					   "inner leaves whole; drop the "
					   "override or set residual = tied",
					   layer);
	}
	return 0;
}

/* A channels target counts every prunable channel; with groups left
 * whole, the others must lose more of theirs to remove as many: the
 * amount in their own terms, as the core measures a selection (excluded
 * groups do not count there). */
static int selection_amount(l1_run *r, double *amount)
{
	const pb_target *t = pb_ctx_target(r->ctx);
	long all = 0, free_ = 0;

	*amount = t->amount;
	if (t->kind != PB_TARGET_CHANNELS)
		return 0;
	for (int g = 0; g < r->ng; g++) {
		const pb_channel_group *grp = pb_ctx_group(r->ctx, g);

		if (!grp->prunable)
			continue;
		all += grp->n_channels;
		if (!r->skip[g])
			free_ += grp->n_channels;
	}
	if (free_ == all)
		return 0;
	*amount = free_ ? t->amount * (double)all / (double)free_ : 1.0;
	if (*amount >= 1.0)
		return pb_ctx_fail(r->ctx, "channels=%g cannot be reached "
				   "by the groups not tied by residual adds "
				   "(%ld of %ld prunable channels); lower the "
				   "target or set residual = tied", t->amount,
				   free_, all);
	return 0;
}

/* Every free group at the fraction x removed. */
static void at_rate(void *user, double x, int *kept)
{
	const l1_run *r = user;

	for (int g = 0; g < r->ng; g++) {
		const pb_channel_group *grp = pb_ctx_group(r->ctx, g);

		kept[g] = !grp->prunable || r->skip[g] ? grp->n_channels :
			  r->fixed[g] >= 0 ? r->fixed[g] :
			  pb_ctx_kept_count(grp->n_channels, x, r->floor_);
	}
}

/* With groups left whole, a target the others cannot give is refused
 * saying so (the core's message would not know why). */
static int check_reach(l1_run *r)
{
	const pb_target *t = pb_ctx_target(r->ctx);
	double most = 0.0;
	int rc;

	if (!r->n_skip)
		return 0;
	at_rate(r, 1.0, r->kept);
	if ((rc = pb_ctx_config_reached(r->ctx, r->kept, &most)))
		return rc;
	if (t->amount > most + 1e-12)
		return pb_ctx_fail(r->ctx, "%s=%g cannot be reached with the "
				   "%d channel groups tied by residual adds "
				   "left whole (residual = inner): at most "
				   "%.4f, every other group down to %d "
				   "channel%s; lower the target or set "
				   "residual = tied", kind_name(t->kind),
				   t->amount, r->n_skip, floor(most * 1e4) /
				   1e4, r->floor_, r->floor_ > 1 ? "s" : "");
	return 0;
}

static int prune_independent(l1_run *r)
{
	pb_channel_scores *s;
	double amount;
	int rc;

	if ((rc = selection_amount(r, &amount)) ||
	    (rc = pb_ctx_filter_scores(r->ctx, filter_norm, &r->norm, &s)))
		return rc;
	memcpy(s->exclude, r->skip, (size_t)r->ng);
	/* -1: the cell's amount itself when nothing is excluded, so the
	 * selection is exactly the one of earlier versions. */
	return pb_ctx_select_channels(r->ctx, s,
				      amount == pb_ctx_target(r->ctx)->amount ?
				      -1.0 : amount, r->floor_);
}

/* ---- greedy -------------------------------------------------------------- */

/* The count of every group as scope = layer cuts it: a channels target
 * removes one fraction of every free group's channels; params and macs
 * bisect the fraction that meets them. */
static int layer_counts(l1_run *r)
{
	const pb_target *t = pb_ctx_target(r->ctx);
	double amount, reached = 0.0;
	int rc;

	if ((rc = selection_amount(r, &amount)))
		return rc;
	if (t->kind == PB_TARGET_CHANNELS) {
		at_rate(r, amount, r->kept);
		return 0;
	}
	rc = pb_ctx_bisect_config(r->ctx, at_rate, r, 1.0, 60, r->kept,
				  &reached);
	if (rc == PB_EIMPOSSIBLE)
		rc = pb_ctx_fail(r->ctx, "%s=%g cannot be reached (at most "
				 "%.4f with min_keep = %d)", kind_name(t->kind),
				 t->amount, reached, r->floor_);
	return rc;
}

/* For every conv or linear, the group whose channels it reads. */
static void map_inputs(l1_run *r)
{
	int nl = pb_model_n_layers(pb_ctx_model(r->ctx));

	for (int l = 0; l < nl; l++)
		r->in_group[l] = -1;
	for (int g = 0; g < r->ng; g++) {
		const pb_channel_group *grp = pb_ctx_group(r->ctx, g);

		for (int k = 0; k < grp->n_consumers; k++)
			r->in_group[grp->consumers[k]] = g;
	}
}

/* A filter's norm without the kernels that read channels removed from
 * the group it reads: its weights come in one run per input channel
 * (K x K for a conv, the H*W features of a flattened channel for a
 * linear). */
static int greedy_filter(void *user, const pb_filter *f)
{
	l1_run *r = user;
	int in = r->in_group[f->layer];
	const uint8_t *kept_in = in >= 0 ? r->keep[in] : NULL;
	int n_in = in >= 0 ? pb_ctx_group(r->ctx, in)->n_channels : 1;
	size_t run = f->len / (size_t)n_in;
	double s = 0.0;

	if (run * (size_t)n_in != f->len)
		return pb_ctx_fail(r->ctx, "layer %s: %lu weights per "
				   "filter do not split over its %d input "
				   "channels", pb_model_layer(pb_ctx_model(
				   r->ctx), f->layer)->name,
				   (unsigned long)f->len, n_in);
	for (int ci = 0; ci < n_in; ci++)
		if (!kept_in || kept_in[ci])
			s += norm_of(r->norm, f->weight + run * (size_t)ci,
				     run);
	r->score[f->channel] += r->norm == 1 ? s : sqrt(s);
	return 0;
}

/* Groups in model order (by first producer, as the core numbers them):
 * a group's choice is made before any later group is scored. Kernels
 * reading a group not decided yet (a residual tie whose producer reads a
 * later block) count in full. */
static int prune_greedy(l1_run *r)
{
	int rc, most = 1;

	if (pb_ctx_target(r->ctx)->scope != PB_SCOPE_LAYER)
		return pb_ctx_fail(r->ctx, "strategy = greedy needs each "
				   "layer's count before it scores the next "
				   "layer, which scope = global does not "
				   "give; use scope = layer (with layer.NAME "
				   "overrides) or strategy = independent");
	r->in_group = malloc(sizeof(int) *
			     ((size_t)pb_model_n_layers(pb_ctx_model(r->ctx)) +
			      1));
	if (!r->in_group)
		return pb_ctx_fail(r->ctx, "out of memory");
	for (int g = 0; g < r->ng; g++)
		if (pb_ctx_group(r->ctx, g)->n_channels > most)
			most = pb_ctx_group(r->ctx, g)->n_channels;
	r->score = malloc(sizeof(double) * (size_t)most);
	if (!r->score)
		return pb_ctx_fail(r->ctx, "out of memory");
	if ((rc = layer_counts(r)) || (rc = pb_ctx_keep_new(r->ctx, &r->keep)))
		return rc;
	map_inputs(r);
	for (int g = 0; g < r->ng; g++) {
		const pb_channel_group *grp = pb_ctx_group(r->ctx, g);

		if (r->kept[g] >= grp->n_channels)
			continue;
		memset(r->score, 0, sizeof(double) * (size_t)grp->n_channels);
		if ((rc = pb_ctx_each_filter(r->ctx, g, greedy_filter, r)) ||
		    (rc = pb_ctx_keep_highest(r->ctx, r->score,
					      grp->n_channels, r->kept[g],
					      r->keep[g])))
			return rc;
	}
	return pb_ctx_keep_channels(r->ctx, (const uint8_t *const *)r->keep);
}

static int l1_prune(void *state, pb_prune_ctx *ctx)
{
	l1_run r = { .ctx = ctx };
	int rc;

	(void)state;
	r.norm = (int)pb_ctx_opt_int(ctx, "norm");
	r.floor_ = (int)pb_ctx_opt_int(ctx, "min_keep");
	r.ng = pb_ctx_n_groups(ctx);
	r.skip = calloc((size_t)r.ng + 1, 1);
	r.fixed = malloc(sizeof(int) * ((size_t)r.ng + 1));
	r.kept = malloc(sizeof(int) * ((size_t)r.ng + 1));
	if (!r.skip || !r.fixed || !r.kept)
		rc = pb_ctx_fail(ctx, "out of memory");
	else if (!(rc = set_skip(&r, !strcmp(pb_ctx_opt_string(ctx,
					"residual"), "inner"))) &&
		 !(rc = check_reach(&r)))
		rc = strcmp(pb_ctx_opt_string(ctx, "strategy"), "greedy") ?
		     prune_independent(&r) : prune_greedy(&r);
	free(r.skip);
	free(r.fixed);
	free(r.kept);
	free(r.in_group);
	free(r.score);
	pb_ctx_keep_free(r.keep);
	return rc;
}

PB_PRUNER_DEFINE(l1, .version = "2.0", .granularity = PB_GRANULARITY_CHANNEL,
	PB_PRUNER_OPTIONS(l1_options), .prune = l1_prune,
	.description = "removes the filters with the smallest L1 (or L2) norm; "
		       "on residual nets the blocks' inner convs",
	.citation = "Li, Kadav, Durdanovic, Samet, Graf. Pruning Filters for "
		    "Efficient ConvNets. ICLR 2017")
