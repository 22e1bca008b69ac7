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
 * re-score all filters and zero the selected ones; at the end remove the
 * last selection physically. Soft mode counts per layer
 * (pb_ctx_layer_budget). With grad_mask (the authors' code, which masks
 * the selected filters' gradients before every optimizer step) a mask
 * holds the selection at exactly zero through the epoch; the masks are
 * rewritten from each new selection, so a filter left out of it trains
 * again from zero and may come back. Without it (the behaviour before
 * 1.1) the selection trains during the epoch and is only zeroed after
 * it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "prunebench/pruner.h"

static const pb_pruner_option fpgm_options[] = {
	{ .name = "mode", .type = PB_OPT_CHOICE, .def = "soft", .choices = "soft|hard",
	  .help = "soft: zero the selection after every epoch of soft_epochs epochs of training, then remove it (the paper); hard: remove once" },
	{ .name = "soft_epochs", .type = PB_OPT_DOUBLE, .def = "5", .min = 0, .max = 1e6,
	  .help = "mode=soft: epochs trained with the fine-tune recipe, the selection held at zero (grad_mask) and made anew after each" },
	{ .name = "distance", .type = PB_OPT_CHOICE, .def = "l2", .choices = "l2|l1",
	  .help = "distance between filters: l2 (the paper) or l1" },
	{ .name = "grad_mask", .type = PB_OPT_BOOL, .def = "yes",
	  .help = "mode=soft: hold the selected filters at zero through every step of the epoch (the reference code masks their gradients); no: they train during the epoch and are zeroed again after it" },
	PB_OPTION_MIN_KEEP,
};

typedef struct fpgm_state {
	int ng;
	int *kept;          /* soft mode: channels each group keeps */
	uint8_t **keep;     /* soft mode: the current selection */
	int masking;        /* soft mode: masks hold the selection at zero */
} fpgm_state;

/* Snapshot slots of grad_mask: the model before the first mask, and
 * after the soft epochs. */
enum { SNAP_START = 0, SNAP_TRAINED = 1 };

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

/* What soft pruning does to one group's filters. */
typedef struct soft_job {
	pb_prune_ctx *ctx;
	const uint8_t *keep;
	int masking;
} soft_job;

/* Soft pruning zeroes a filter without removing it. With masking its
 * mask row follows the selection, cleared for a filter kept now (one
 * selected before trains again) and set for one selected now, so the
 * optimizer holds it at zero as the reference's gradient mask does; its
 * bias, which the reference leaves alone, trains. Without masking (the
 * behaviour before 1.1) the bias is zeroed too, once. */
static int soft_filter(void *user, const pb_filter *f)
{
	const soft_job *j = user;
	int kept = j->keep[f->channel];

	if (j->masking) {
		pb_param *w = pb_ctx_layer_param(j->ctx, f->layer,
						 PB_PARAM_WEIGHT);
		float *mk = pb_ctx_mask(j->ctx, w);

		if (!mk)
			return pb_ctx_fail(j->ctx, "layer %d has no weight "
					   "mask to hold its filters at zero",
					   f->layer);
		mk += f->weight - w->data;
		for (size_t i = 0; i < f->len; i++)
			mk[i] = kept ? 1.0f : 0.0f;
	}
	if (kept)
		return 0;
	memset(f->weight, 0, f->len * sizeof(float));
	if (f->bias && !j->masking)
		*f->bias = 0.0f;
	return 0;
}

/* Soft mode: select the kept[g] highest-scored channels of every group
 * into st->keep and zero the producers' filters of the others (masked
 * with grad_mask). Scores read the weights only, so the masks of the
 * previous selection cannot bias the new one. */
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
		if (!rc && st->kept[g] < n) {
			soft_job j = { ctx, st->keep[g], st->masking };

			rc = pb_ctx_each_filter(ctx, g, soft_filter, &j);
		}
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

/* The masks only held the selection at zero during the soft epochs; the
 * result must be a plain smaller model, as every channel pruner's is. So
 * go back to the copy taken before the first mask, pour the trained
 * values into it, and remove exactly the last selection. */
static int remove_masked(fpgm_state *st, pb_prune_ctx *ctx)
{
	return pb_ctx_unmask_keep_channels(ctx, SNAP_START, SNAP_TRAINED,
					   (const uint8_t *const *)st->keep);
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
	 * per-layer budget, and nothing to hold at zero. */
	st->masking = epochs > 0 && pb_ctx_opt_bool(ctx, "grad_mask");
	if ((st->masking && (rc = pb_ctx_snapshot_save(ctx, SNAP_START))) ||
	    (rc = soft_select_and_zero(st, ctx)))
		return rc;
	if (epochs > 0) {
		pb_ctx_log(ctx, "fpgm: soft pruning for %g epochs, the selection "
			   "%s", epochs, st->masking ? "held at zero by masks" :
			   "zeroed after each epoch");
		if ((rc = pb_ctx_train(ctx, PB_RECIPE_FINETUNE, epochs, 0)))
			return rc;
	}
	if (st->masking)
		return remove_masked(st, ctx);
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

/* What one cell trains here, for the dry run and shard balancing:
 * soft_epochs of the fine-tune recipe in soft mode, nothing in hard. */
static int fpgm_estimate(pb_estimate *q)
{
	q->epochs = !strcmp(pb_estimate_opt_string(q, "mode"), "soft") ?
		    pb_estimate_opt_double(q, "soft_epochs") : 0.0;
	return 0;
}

PB_PRUNER_DEFINE(fpgm, .version = "1.1",
	.estimate = fpgm_estimate,
	.granularity = PB_GRANULARITY_CHANNEL, PB_PRUNER_OPTIONS(fpgm_options),
	.create = fpgm_create, .destroy = fpgm_destroy,
	.after_epoch = fpgm_after_epoch, .prune = fpgm_prune,
	.description = "removes the filters nearest their layer's geometric "
		       "median (smallest sum of distances to the others); "
		       "mode=soft holds them at zero and re-selects them "
		       "after every epoch of soft_epochs before removing "
		       "them",
	.citation = "He, Liu, Wang, Hu, Yang. Filter Pruning via Geometric "
		    "Median for Deep Convolutional Neural Networks "
		    "Acceleration. CVPR 2019")
