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
	{ .name = "mode", .type = PB_OPT_CHOICE, .def = "soft",
	  .help = "soft: zero the selection after every epoch of soft_epochs "
		  "epochs of training, then remove it (the paper); hard: "
		  "remove once", .choices = "soft|hard" },
	{ .name = "soft_epochs", .type = PB_OPT_DOUBLE, .def = "5",
	  .help = "mode=soft: epochs trained with the fine-tune recipe while "
		  "selected filters are zeroed after each", .min = 0,
	  .max = 1e6 },
	{ .name = "distance", .type = PB_OPT_CHOICE, .def = "l2",
	  .help = "distance between filters: l2 (the paper) or l1",
	  .choices = "l2|l1" },
	{ .name = "min_keep", .type = PB_OPT_INT, .def = "1",
	  .help = "channels every group keeps at least", .min = 1,
	  .max = 1e6 },
};

typedef struct fpgm_state {
	int ng;
	int *kept;          /* soft mode: channels each group keeps */
	uint8_t **keep;     /* soft mode: the current selection */
} fpgm_state;

static int fpgm_create(pb_prune_ctx *ctx, void **state)
{
	fpgm_state *s = calloc(1, sizeof *s);

	(void)ctx;
	if (!s)
		return pb_ctx_fail(ctx, "out of memory");
	*state = s;
	return 0;
}

static void fpgm_destroy(void *state)
{
	fpgm_state *s = state;

	if (!s)
		return;
	for (int g = 0; s->keep && g < s->ng; g++)
		free(s->keep[g]);
	free(s->keep);
	free(s->kept);
	free(s);
}

/* score[c] += sum over other filters d of dist(filter c, filter d), for
 * the rows of weight p (conv (OC, C, K, K) and linear (OUT, IN) alike). */
static void add_distance_sums(const pb_param *p, int l1, float *score)
{
	int n = p->shape[0];
	size_t row = p->n / (size_t)n;

	for (int a = 0; a < n; a++) {
		const float *wa = p->data + row * (size_t)a;
		double sum = 0.0;

		for (int b = 0; b < n; b++) {
			const float *wb = p->data + row * (size_t)b;
			double d = 0.0;

			if (b == a)
				continue;
			for (size_t j = 0; j < row; j++) {
				double t = (double)wa[j] - wb[j];
				d += l1 ? fabs(t) : t * t;
			}
			sum += l1 ? d : sqrt(d);
		}
		score[a] += (float)sum;
	}
}

static int fill_scores(pb_prune_ctx *ctx, pb_channel_scores *s)
{
	int l1 = !strcmp(pb_ctx_opt_string(ctx, "distance"), "l1");

	for (int g = 0; g < s->n; g++) {
		const pb_channel_group *grp = pb_ctx_group(ctx, g);

		if (!grp->prunable)
			continue;
		for (int k = 0; k < grp->n_producers; k++) {
			const pb_param *w = pb_ctx_layer_param(ctx,
				grp->producers[k], PB_PARAM_WEIGHT);

			if (!w || w->shape[0] != grp->n_channels)
				return pb_ctx_fail(ctx, "group %d: producer "
						   "layer %d has no weight with "
						   "%d output channels", g,
						   grp->producers[k],
						   grp->n_channels);
			add_distance_sums(w, l1, s->score[g]);
		}
	}
	return 0;
}

/* Soft mode: select the kept[g] highest-scored channels of every group
 * into st->keep and zero the producers' filters (and biases) of the
 * others. */
static int soft_select_and_zero(fpgm_state *st, pb_prune_ctx *ctx)
{
	pb_channel_scores *s;
	int rc = pb_ctx_channel_scores(ctx, &s);

	if (rc)
		return rc;
	if ((rc = fill_scores(ctx, s))) {
		pb_ctx_channel_scores_free(s);
		return rc;
	}
	for (int g = 0; g < st->ng; g++) {
		const pb_channel_group *grp = pb_ctx_group(ctx, g);
		int n = grp->n_channels, removed = 0;

		memset(st->keep[g], 1, (size_t)n);
		/* Remove the lowest, ties to the lower index, as the core's
		 * selection does. */
		while (removed < n - st->kept[g]) {
			int arg = -1;

			for (int c = 0; c < n; c++)
				if (st->keep[g][c] && (arg < 0 ||
				    s->score[g][c] < s->score[g][arg]))
					arg = c;
			st->keep[g][arg] = 0;
			removed++;
		}
		for (int k = 0; k < grp->n_producers; k++) {
			pb_param *w = pb_ctx_layer_param(ctx,
				grp->producers[k], PB_PARAM_WEIGHT);
			pb_param *b = pb_ctx_layer_param(ctx,
				grp->producers[k], PB_PARAM_BIAS);
			size_t row = w->n / (size_t)n;

			for (int c = 0; c < n; c++) {
				if (st->keep[g][c])
					continue;
				memset(w->data + row * (size_t)c, 0,
				       row * sizeof(float));
				if (b)
					b->data[c] = 0.0f;
			}
		}
	}
	pb_ctx_channel_scores_free(s);
	return 0;
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
	int ng = pb_ctx_n_groups(ctx), rc;

	if (pb_ctx_target(ctx)->scope == PB_SCOPE_GLOBAL)
		return pb_ctx_fail(ctx, "mode = soft selects the same ratio in "
				   "every layer, as the paper does: use scope "
				   "= layer, or mode = hard for a global "
				   "ranking");
	st->ng = ng;
	st->kept = malloc(sizeof(int) * ((size_t)ng + 1));
	st->keep = calloc((size_t)ng + 1, sizeof *st->keep);
	if (!st->kept || !st->keep)
		return pb_ctx_fail(ctx, "out of memory");
	for (int g = 0; g < ng; g++) {
		st->keep[g] = malloc((size_t)pb_ctx_group(ctx, g)->n_channels
				     + 1);
		if (!st->keep[g])
			return pb_ctx_fail(ctx, "out of memory");
	}
	if ((rc = pb_ctx_layer_budget(ctx, -1.0, st->kept)))
		return rc;
	for (int g = 0; g < ng; g++) {
		int floor_ = (int)pb_ctx_opt_int(ctx, "min_keep");
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
	if ((rc = pb_ctx_channel_scores(ctx, &s)))
		return rc;
	if ((rc = fill_scores(ctx, s))) {
		pb_ctx_channel_scores_free(s);
		return rc;
	}
	return pb_ctx_select_channels(ctx, s, -1.0,
				      (int)pb_ctx_opt_int(ctx, "min_keep"));
}

static const pb_pruner fpgm = {
	PB_PRUNER_HEADER,
	.name = "fpgm",
	.version = "1.0",
	.granularity = PB_GRANULARITY_CHANNEL,
	.description = "removes the filters nearest their layer's geometric "
		       "median (smallest sum of distances to the others); "
		       "mode=soft zeroes and re-selects them after every "
		       "epoch of soft_epochs before removing them",
	.citation = "He, Liu, Wang, Hu, Yang. Filter Pruning via Geometric "
		    "Median for Deep Convolutional Neural Networks "
		    "Acceleration. CVPR 2019",
	.options = fpgm_options,
	.n_options = sizeof fpgm_options / sizeof fpgm_options[0],
	.create = fpgm_create,
	.destroy = fpgm_destroy,
	.after_epoch = fpgm_after_epoch,
	.prune = fpgm_prune,
};

PB_PRUNER_EXPORT(fpgm)
