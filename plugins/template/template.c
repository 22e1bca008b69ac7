/* template: a complete, working pruner to copy when you write your own.
 *
 * What it does: removes the channels whose producing filters have the
 * smallest MEAN absolute weight (the L1 norm divided by the filter size,
 * so filters of different layers compare fairly under a global target),
 * optionally with a little random noise to break ties, and optionally
 * fine-tunes a few steps afterwards.
 *
 * Build it outside the prunebench tree (see README.md next to this file):
 *
 *   cp template.c mypruner.c        # then rename "template" below
 *   cc -shared -fPIC -O2 $(pkg-config --cflags prunebench) mypruner.c \
 *      -o ~/pb-plugins/mypruner.so
 *   prunebench plugins --plugin-dir ~/pb-plugins
 *
 * The file name (mypruner.so) and .name in the descriptor must match.
 *
 * Rules a plugin lives by (pruner.h has the details):
 *   - include only prunebench/pruner.h (it brings model.h and error.h);
 *   - look at the model with pb_model_* and pb_ctx_* accessors, change it
 *     only with pb_ctx_* helpers; never free or reallocate core memory;
 *   - keep state in the struct create() returns, never in globals: cells
 *     of an experiment run in parallel in one process;
 *   - report errors with `return pb_ctx_fail(ctx, "...")`; never exit().
 */
#include <math.h>
#include <stdlib.h>

#include <gsl/gsl_rng.h>

#include "prunebench/pruner.h"

/* ---- 1. Options ----------------------------------------------------------
 * Declared here, validated by the core before the plugin runs (unknown
 * names, wrong types, out-of-range numbers and bad choices are errors that
 * name the experiment file and line). Read them with pb_ctx_opt_*. For
 * numbers, [min, max] is the inclusive range; min > max, or leaving both
 * out, means unbounded. */
static const pb_pruner_option template_options[] = {
	{ .name = "noise", .type = PB_OPT_DOUBLE, .def = "0",
	  .help = "relative random noise added to each score (0 = none)",
	  .min = 0, .max = 1 },
	PB_OPTION_MIN_KEEP,
	{ .name = "recover_steps", .type = PB_OPT_INT, .def = "0",
	  .help = "fine-tune steps after pruning (needs data)", .min = 0,
	  .max = 1e9 },
	{ .name = "skip", .type = PB_OPT_CHOICE, .def = "none",
	  .choices = "none|first|residual",
	  .help = "groups left whole: none, the first layer's, or residual "
		  "(add-tied) ones" },
};

/* ---- 2. State --------------------------------------------------------------
 * Anything the plugin remembers between hooks lives here. This pruner
 * needs nothing across hooks; the counter only shows the pattern. */
typedef struct template_state {
	int rounds;
} template_state;

/* A zeroed state from the core's helper; destroy frees it (the
 * descriptor below could also say .destroy = free). */
static int template_create(pb_prune_ctx *ctx, void **state)
{
	return pb_ctx_state_new(ctx, sizeof(template_state), state);
}

static void template_destroy(void *state)
{
	free(state);
}

/* ---- 3. The criterion ------------------------------------------------------
 * Mean |w| of one filter: the weights that make one output channel (a
 * conv's C x K x K, a linear's row). pb_ctx_filter_scores calls it for
 * every filter of every producer of a group and sums per channel, so
 * convs tied by a residual add score their shared channels together. */
static double mean_abs(void *user, const pb_filter *f)
{
	double s = 0.0;

	(void)user;
	for (size_t j = 0; j < f->len; j++)
		s += fabs(f->weight[j]);
	return s / (double)f->len;
}

/* ---- 4. The decision -------------------------------------------------------
 * Fill one score per channel of every group (higher = keep), then let the
 * core remove the lowest so the cell's target is reached. The core knows
 * the target (kind, amount, scope, per-layer overrides) and does the
 * bookkeeping: which layers shrink together, BN, the next layer's inputs,
 * residual ties. */
static int template_prune(void *state, pb_prune_ctx *ctx)
{
	template_state *st = state;
	double noise = pb_ctx_opt_double(ctx, "noise");
	int min_keep = (int)pb_ctx_opt_int(ctx, "min_keep");
	long recover = pb_ctx_opt_int(ctx, "recover_steps");
	const char *skip = pb_ctx_opt_string(ctx, "skip");
	gsl_rng *rng = pb_ctx_rng(ctx);      /* the cell's own stream */
	pb_channel_scores *s;
	int rc = pb_ctx_filter_scores(ctx, mean_abs, NULL, &s);

	if (rc)
		return rc;
	for (int g = 0; g < s->n; g++) {
		const pb_channel_group *grp = pb_ctx_group(ctx, g);

		if (!grp->prunable)
			continue;    /* e.g. the classes; ignored anyway */
		if ((skip[0] == 'f' && g == 0) ||
		    (skip[0] == 'r' && grp->residual)) {
			s->exclude[g] = 1;
			continue;
		}
		for (int c = 0; noise > 0 && c < grp->n_channels; c++)
			s->score[g][c] *= (float)(1.0 + noise *
						  (gsl_rng_uniform(rng) - 0.5));
	}
	/* -1: the cell's own amount (iterative methods pass a per-round
	 * amount). s is freed by the call. After it the model is smaller:
	 * fetch it again with pb_ctx_model if you need it. */
	rc = pb_ctx_select_channels(ctx, s, -1.0, min_keep);
	if (rc)
		return rc;
	st->rounds++;
	if (recover > 0) {
		pb_ctx_log(ctx, "template: fine-tuning %ld steps", recover);
		rc = pb_ctx_train(ctx, PB_RECIPE_FINETUNE, 1.0, recover);
	}
	return rc;
}

/* ---- 5. The descriptor -----------------------------------------------------
 * PB_PRUNER_HEADER fills the ABI version and struct size, so a plugin
 * built against another header is refused instead of misread. Hooks you
 * do not need stay NULL (on_train_begin, after_backward, after_epoch). */
static const pb_pruner template_pruner = {
	PB_PRUNER_HEADER,
	.name = "template",
	.version = "1.0",
	.granularity = PB_GRANULARITY_CHANNEL,
	.description = "example: removes channels with the smallest mean "
		       "|w| (copy me)",
	.citation = "prunebench plugins/template (after Li et al., ICLR "
		    "2017)",
	.options = template_options,
	.n_options = sizeof template_options / sizeof template_options[0],
	.create = template_create,
	.destroy = template_destroy,
	.prune = template_prune,
};

/* The one exported symbol. */
PB_PRUNER_EXPORT(template_pruner)
