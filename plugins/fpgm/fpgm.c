/* fpgm: filter pruning via the geometric median (He, Liu, Wang, Hu, Yang,
 * "Filter Pruning via Geometric Median for Deep Convolutional Neural
 * Networks Acceleration", CVPR 2019).
 *
 * A filter's score is the sum of its distances (Euclidean by default) to
 * every other filter of its layer. The filters with the smallest sums lie
 * nearest the layer's geometric median: what they compute is best
 * represented by the others, so they are removed, whatever their norm.
 * When several layers produce one channel group (convs tied by a residual
 * add), a channel's score is the sum of its scores in those layers.
 *
 * mode = hard: score once, remove the lowest (same ratio in every layer
 * with scope = layer, as in the paper), and leave the fine-tune to the
 * runner.
 * mode = soft (the paper's schedule, inherited from soft filter pruning):
 * train `soft_epochs` epochs with the fine-tune recipe; after every epoch
 * re-score all filters and zero the selected ones, which may grow back
 * and be replaced by others in the next epoch; at the end remove the last
 * selection physically. Soft mode counts per layer (pb_ctx_layer_budget). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "prunebench/pruner.h"

static const pb_pruner_option fpgm_options[] = {
	{ .name = "mode", .type = PB_OPT_CHOICE, .def = "soft", .choices = "soft|hard",
	  .help = "soft: zero the selection after every epoch of soft_epochs epochs of training, then remove it (the paper); hard: remove once" },
	{ .name = "soft_epochs", .type = PB_OPT_DOUBLE, .def = "5", .min = 0, .max = 1e6,
	  .help = "mode=soft: epochs trained with the fine-tune recipe while selected filters are zeroed after each" },
	{ .name = "distance", .type = PB_OPT_CHOICE, .def = "l2", .choices = "l2|l1",
	  .help = "distance between filters: l2 (the paper) or l1" },
	PB_OPTION_MIN_KEEP,
};

typedef struct fpgm_state {
	int ng;
	int *kept;          /* soft mode: channels each group keeps */
	uint8_t **keep;     /* soft mode: the current selection */
} fpgm_state;

static int fpgm_create(pb_prune_ctx *ctx, void **state)
{
	return pb_ctx_state_new(ctx, sizeof(fpgm_state), state);
}

static void fpgm_destroy(void *state)
{
	fpgm_state *s = state;

	pb_ctx_keep_free(s->keep);
	free(s->kept);
	free(s);
}

/* The sum of the distances from filter c to every other filter of its
 * layer (conv (OC, C, K, K) and linear (OUT, IN) rows alike). */
static double distance_sum(void *user, const pb_filter *f)
{
	const int l1 = *(const int *)user;
	double sum = 0.0;

	for (int b = 0; b < f->n; b++) {
		const float *wb = f->all + f->len * (size_t)b;
		double d = 0.0;

		if (b == f->channel)
			continue;
		for (size_t j = 0; j < f->len; j++) {
			double t = (double)f->weight[j] - wb[j];
			d += l1 ? fabs(t) : t * t;
		}
		sum += l1 ? d : sqrt(d);
	}
	return sum;
}

static int scores(pb_prune_ctx *ctx, pb_channel_scores **s)
{
	int l1 = !strcmp(pb_ctx_opt_string(ctx, "distance"), "l1");

	return pb_ctx_filter_scores(ctx, distance_sum, &l1, s);
}

/* Soft pruning zeroes a filter and its bias, without removing them. */
static int zero_unkept(void *user, const pb_filter *f)
{
	const uint8_t *keep = user;

	if (keep[f->channel])
		return 0;
	memset(f->weight, 0, f->len * sizeof(float));
	if (f->bias)
		*f->bias = 0.0f;
	return 0;
}

/* Soft mode: select the kept[g] highest-scored channels of every group
 * into st->keep and zero the producers' filters (and biases) of the
 * others. */
static int soft_select_and_zero(fpgm_state *st, pb_prune_ctx *ctx)
{
	pb_channel_scores *s;
	double *sc = NULL;
	int rc = scores(ctx, &s);

	for (int g = 0; !rc && g < st->ng; g++) {
		int n = pb_ctx_group(ctx, g)->n_channels;
		double *grown = realloc(sc, sizeof *sc * ((size_t)n + 1));

		if (!grown) {
			rc = pb_ctx_fail(ctx, "out of memory");
			break;
		}
		sc = grown;
		for (int c = 0; c < n; c++)
			sc[c] = s->score[g][c];
		rc = pb_ctx_keep_highest(ctx, sc, n, st->kept[g], st->keep[g]);
		if (!rc && st->kept[g] < n)
			rc = pb_ctx_each_filter(ctx, g, zero_unkept, st->keep[g]);
	}
	free(sc);
	pb_ctx_channel_scores_free(s);
	return rc;
}

static int fpgm_after_epoch(void *state, pb_prune_ctx *ctx, int epoch)
{
	fpgm_state *st = state;

	(void)epoch;
	if (!st->keep)
		return 0;
	return soft_select_and_zero(st, ctx);
}

static int prune_soft(fpgm_state *st, pb_prune_ctx *ctx)
{
	double epochs = pb_ctx_opt_double(ctx, "soft_epochs");
	int floor_ = (int)pb_ctx_opt_int(ctx, "min_keep");
	int rc;

	if (pb_ctx_target(ctx)->scope == PB_SCOPE_GLOBAL)
		return pb_ctx_fail(ctx, "mode = soft selects the same ratio in "
				   "every layer, as the paper does: use scope "
				   "= layer, or mode = hard for a global "
				   "ranking");
	st->ng = pb_ctx_n_groups(ctx);
	st->kept = malloc(sizeof(int) * ((size_t)st->ng + 1));
	if (!st->kept)
		return pb_ctx_fail(ctx, "out of memory");
	if ((rc = pb_ctx_keep_new(ctx, &st->keep)) ||
	    (rc = pb_ctx_layer_budget(ctx, -1.0, st->kept)))
		return rc;
	for (int g = 0; g < st->ng; g++) {
		const pb_channel_group *grp = pb_ctx_group(ctx, g);

		if (!grp->prunable)
			st->kept[g] = grp->n_channels;
		else if (st->kept[g] < floor_)
			st->kept[g] = floor_ < grp->n_channels ? floor_ :
				      grp->n_channels;
	}
	/* With no training the first selection is the last: hard mode at the
	 * per-layer budget. */
	if ((rc = soft_select_and_zero(st, ctx)))
		return rc;
	if (epochs > 0) {
		pb_ctx_log(ctx, "fpgm: soft pruning for %g epochs", epochs);
		if ((rc = pb_ctx_train(ctx, PB_RECIPE_FINETUNE, epochs, 0)))
			return rc;
	}
	return pb_ctx_keep_channels(ctx, (const uint8_t *const *)st->keep);
}

static int fpgm_prune(void *state, pb_prune_ctx *ctx)
{
	pb_channel_scores *s;
	int rc;

	if (!strcmp(pb_ctx_opt_string(ctx, "mode"), "soft"))
		return prune_soft(state, ctx);
	if ((rc = scores(ctx, &s)))
		return rc;
	return pb_ctx_select_channels(ctx, s, -1.0,
				      (int)pb_ctx_opt_int(ctx, "min_keep"));
}

PB_PRUNER_DEFINE(fpgm, .version = "1.0",
	.granularity = PB_GRANULARITY_CHANNEL, PB_PRUNER_OPTIONS(fpgm_options),
	.create = fpgm_create, .destroy = fpgm_destroy,
	.after_epoch = fpgm_after_epoch, .prune = fpgm_prune,
	.description = "removes the filters nearest their layer's geometric "
		       "median (smallest sum of distances to the others); "
		       "mode=soft zeroes and re-selects them after every "
		       "epoch of soft_epochs before removing them",
	.citation = "He, Liu, Wang, Hu, Yang. Filter Pruning via Geometric "
		    "Median for Deep Convolutional Neural Networks "
		    "Acceleration. CVPR 2019")
