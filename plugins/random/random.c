/* random: random channel configurations under the budget, the best kept
 * (Li, Chen, Li, Liu, Zhang, Gu, Van Gool, Timofte, "Revisiting Random
 * Channel Pruning for Neural Network Compression", CVPR 2022).
 *
 * Each of `samples` candidates is a per-group channel count drawn at
 * random under the cell's target: every free prunable group g gets a
 * random weight u_g in (0, 1], and the counts are
 * kept_g = n_g - round(min(1, a * u_g) * n_g) (at least min_keep), with
 * the one scale a found by bisection so the target (channels, params or
 * macs; per-layer overrides fixed) is met within one channel per group.
 * The channels themselves are chosen by `select`: random (uniform, the
 * paper's random pruning) or l1 (the largest filter norms kept). Each
 * candidate is fine-tuned `short_finetune` steps and evaluated on the
 * validation split; the best is kept (ties to the earlier one) and the
 * runner's regular fine-tune follows. samples = 1, select = random is the
 * plain random-channel baseline (no validation is needed then). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "prunebench/pruner.h"

static const pb_pruner_option random_options[] = {
	{ .name = "samples", .type = PB_OPT_INT, .def = "10", .min = 1, .max = 1e5,
	  .help = "random configurations tried; 1 with select=random is the plain random baseline" },
	{ .name = "select", .type = PB_OPT_CHOICE, .def = "random", .choices = "random|l1",
	  .help = "channels kept inside a group: random, or l1 (largest filter L1 norms)" },
	{ .name = "short_finetune", .type = PB_OPT_INT, .def = "200", .min = 0, .max = 1e9,
	  .help = "fine-tune steps (fine-tune recipe) for each candidate before it is evaluated on validation; 0 = none" },
	PB_OPTION_MIN_KEEP,
};

enum { SLOT_DENSE = 0, SLOT_BEST = 1 };

/* The budget of one sample: a random weight per group and the counts
 * they give at scale a. */
typedef struct config {
	pb_prune_ctx *ctx;
	int ng, floor_;
	int *full;          /* the dense model's channels per group */
	int *fixed;         /* an override's count, or -1 */
	int *kept;          /* the sample's counts */
	double *u;          /* the sample's weights, in (0, 1] */
	double *norms;      /* select = l1: one group's filter norms */
	char *line;         /* the log line of a sample */
	size_t line_cap;
} config;

/* The configuration of scale a for the current weights u. */
static void at_scale(void *user, double a, int *kept)
{
	const config *cf = user;

	for (int g = 0; g < cf->ng; g++) {
		double r = a * cf->u[g];

		if (!pb_ctx_group(cf->ctx, g)->prunable)
			kept[g] = cf->full[g];
		else if (cf->fixed[g] >= 0)
			kept[g] = cf->fixed[g];
		else
			kept[g] = pb_ctx_kept_count(cf->full[g],
						    r > 1.0 ? 1.0 : r,
						    cf->floor_);
	}
}

/* Draws u and finds the scale that meets the target; cf->kept gets the
 * counts, *reached their fraction. */
static int sample_config(pb_prune_ctx *ctx, config *cf, double *reached)
{
	gsl_rng *rng = pb_ctx_rng(ctx);
	double umin = 1.0;
	int rc;

	for (int g = 0; g < cf->ng; g++) {
		cf->u[g] = gsl_rng_uniform_pos(rng);
		if (cf->u[g] < umin)
			umin = cf->u[g];
	}
	rc = pb_ctx_bisect_config(ctx, at_scale, cf, 1.0 / umin, 64, cf->kept,
				  reached);
	if (rc == PB_EIMPOSSIBLE)
		rc = pb_ctx_fail(ctx, "the target %g cannot be reached (at "
				 "most %.4f with min_keep = %d)",
				 pb_ctx_target(ctx)->amount, *reached,
				 cf->floor_);
	return rc;
}

static int set_overrides(pb_prune_ctx *ctx, config *cf)
{
	for (int g = 0; g < cf->ng; g++) {
		double amount;
		int rc = pb_ctx_group_override(ctx, g, &amount, NULL);

		if (rc)
			return rc;
		cf->fixed[g] = amount >= 0 && pb_ctx_group(ctx, g)->prunable ?
			       pb_ctx_kept_count(cf->full[g], amount,
						 cf->floor_) : -1;
	}
	return 0;
}

static int add_abs(void *user, const pb_filter *f)
{
	double *sum = user;

	for (size_t j = 0; j < f->len; j++)
		sum[f->channel] += fabs(f->weight[j]);
	return 0;
}

/* Which channels each group keeps, for the counts in cf->kept: at random,
 * or (select = l1) the largest L1 norms summed over the producers. */
static int choose_channels(pb_prune_ctx *ctx, config *cf, int l1,
			   uint8_t **keep)
{
	gsl_rng *rng = pb_ctx_rng(ctx);
	int rc = 0;

	for (int g = 0; g < cf->ng && !rc; g++) {
		int n = cf->full[g], drop = n - cf->kept[g];
		int *all, *out;

		memset(keep[g], 1, (size_t)n);
		if (drop <= 0)
			continue;
		if (l1) {
			memset(cf->norms, 0, sizeof *cf->norms * (size_t)n);
			rc = pb_ctx_each_filter(ctx, g, add_abs, cf->norms);
			if (!rc)
				rc = pb_ctx_keep_highest(ctx, cf->norms, n,
							 cf->kept[g], keep[g]);
			continue;
		}
		all = malloc(sizeof(int) * (size_t)n);
		out = malloc(sizeof(int) * (size_t)drop);
		if (!all || !out)
			rc = pb_ctx_fail(ctx, "out of memory");
		for (int c = 0; !rc && c < n; c++)
			all[c] = c;
		if (!rc)
			gsl_ran_choose(rng, out, (size_t)drop, all, (size_t)n,
				       sizeof(int));
		for (int i = 0; !rc && i < drop; i++)
			keep[g][out[i]] = 0;
		free(all);
		free(out);
	}
	return rc;
}

static int config_new(pb_prune_ctx *ctx, config *cf)
{
	int most = 1;

	cf->ctx = ctx;
	cf->ng = pb_ctx_n_groups(ctx);
	cf->floor_ = (int)pb_ctx_opt_int(ctx, "min_keep");
	cf->full = malloc(sizeof(int) * ((size_t)cf->ng + 1));
	cf->fixed = malloc(sizeof(int) * ((size_t)cf->ng + 1));
	cf->kept = malloc(sizeof(int) * ((size_t)cf->ng + 1));
	cf->u = malloc(sizeof(double) * ((size_t)cf->ng + 1));
	if (!cf->full || !cf->fixed || !cf->kept || !cf->u)
		return pb_ctx_fail(ctx, "out of memory");
	for (int g = 0; g < cf->ng; g++) {
		cf->full[g] = pb_ctx_group(ctx, g)->n_channels;
		if (cf->full[g] > most)
			most = cf->full[g];
	}
	cf->norms = malloc(sizeof(double) * (size_t)most);
	cf->line_cap = 64 + 12 * (size_t)cf->ng;
	cf->line = malloc(cf->line_cap);
	if (!cf->norms || !cf->line)
		return pb_ctx_fail(ctx, "out of memory");
	return set_overrides(ctx, cf);
}

static void config_free(config *cf)
{
	free(cf->full);
	free(cf->fixed);
	free(cf->kept);
	free(cf->u);
	free(cf->norms);
	free(cf->line);
}

static const char *kind_name(pb_target_kind k)
{
	switch (k) {
	case PB_TARGET_CHANNELS: return "channels";
	case PB_TARGET_PARAMS: return "params";
	default: return "macs";
	}
}

/* "kept 11 12 24 ...; removed 0.498880 of macs; val 0.093750" */
static void log_sample(pb_prune_ctx *ctx, config *cf, int i,
		       double reached, double acc)
{
	size_t len = 0;

	cf->line[0] = '\0';
	for (int g = 0; g < cf->ng; g++)
		len += (size_t)snprintf(cf->line + len, cf->line_cap - len,
					"%s%d", g ? " " : "", cf->kept[g]);
	pb_ctx_log(ctx, "random: sample %d: kept %s; removed %.6f of %s; "
		   "val %.6f", i, cf->line, reached,
		   kind_name(pb_ctx_target(ctx)->kind), acc);
}

static int random_prune(void *state, pb_prune_ctx *ctx)
{
	int samples = (int)pb_ctx_opt_int(ctx, "samples");
	int l1 = !strcmp(pb_ctx_opt_string(ctx, "select"), "l1");
	long steps = pb_ctx_opt_int(ctx, "short_finetune");
	int evaluate = samples > 1 || steps > 0;
	config cf = { 0 };
	uint8_t **keep = NULL;
	double best = -1.0;
	int best_i = -1, rc;

	(void)state;
	if ((rc = config_new(ctx, &cf)) ||
	    (rc = pb_ctx_keep_new(ctx, &keep)) ||
	    (rc = pb_ctx_snapshot_save(ctx, SLOT_DENSE)))
		goto out;
	for (int i = 0; i < samples && !rc; i++) {
		double reached = 0.0, acc = 0.0;

		if (i > 0 && (rc = pb_ctx_snapshot_revert(ctx, SLOT_DENSE)))
			break;
		if ((rc = sample_config(ctx, &cf, &reached)) ||
		    (rc = choose_channels(ctx, &cf, l1, keep)) ||
		    (rc = pb_ctx_keep_channels(ctx,
				(const uint8_t *const *)keep)))
			break;
		if (steps > 0 &&
		    (rc = pb_ctx_train(ctx, PB_RECIPE_FINETUNE, 0, steps)))
			break;
		if (evaluate && (rc = pb_ctx_evaluate_val(ctx, &acc)))
			break;
		log_sample(ctx, &cf, i, reached, acc);
		if (acc > best) {
			best = acc;
			best_i = i;
			if (samples > 1)
				rc = pb_ctx_snapshot_save(ctx, SLOT_BEST);
		}
	}
	if (!rc && samples > 1)
		rc = pb_ctx_snapshot_revert(ctx, SLOT_BEST);
	if (!rc)
		pb_ctx_log(ctx, "random: kept sample %d (val %.6f)", best_i,
			   best);
out:
	pb_ctx_keep_free(keep);
	config_free(&cf);
	return rc;
}

PB_PRUNER_DEFINE(random, .version = "1.0",
	.granularity = PB_GRANULARITY_CHANNEL,
	PB_PRUNER_OPTIONS(random_options), .prune = random_prune,
	.description = "samples random per-layer channel counts under the "
		       "budget, picks channels at random (or by L1), "
		       "fine-tunes each candidate briefly and keeps the best "
		       "on validation",
	.citation = "Li, Chen, Li, Liu, Zhang, Gu, Van Gool, Timofte. "
		    "Revisiting Random Channel Pruning for Neural Network "
		    "Compression. CVPR 2022")
