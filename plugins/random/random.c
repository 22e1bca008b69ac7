/* random: random channel configurations under the budget, the best kept
 * (Li, Adamczewski, Li, Gu, Timofte, Van Gool, "Revisiting Random Channel
 * Pruning for Neural Network Compression", CVPR 2022).
 *
 * Each of `samples` candidates is a channel count per group, chosen by
 * `ratios`:
 *
 *  - random (the paper's sampler): every free prunable group keeps a
 *    count drawn uniformly from the whole numbers whose fraction of its
 *    channels lies in [keep_min, keep_max] (and at least min_keep), each
 *    group independently; a configuration is accepted only when the
 *    fraction of the target's quantity it removes is within `tolerance`
 *    of the target, and drawn again otherwise, at most `max_draws` times.
 *    No group is squeezed below keep_min to pay for the others, so the
 *    accepted configurations are the uniform range conditioned on the
 *    budget and nothing else.
 *  - uniform: the plain baseline, every free group at the one ratio that
 *    meets the target (as scope = layer cuts it), channels still chosen
 *    by `select`.
 *
 * Per-layer overrides fix their groups' counts under both. The channels
 * themselves are chosen by `select`: random (uniform, the paper's random
 * pruning) or l1 (the largest filter norms kept). Each candidate is
 * fine-tuned `short_finetune` steps and evaluated on the validation split;
 * the best is kept (ties to the earlier one) and the runner's regular
 * fine-tune follows. With samples = 1 and short_finetune = 0 nothing is
 * trained or evaluated and no data is needed. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "prunebench/pruner.h"

static const pb_pruner_option random_options[] = {
	{ .name = "samples", .type = PB_OPT_INT, .def = "10", .min = 1, .max = 1e5,
	  .help = "candidate configurations, each fine-tuned briefly; the best on validation is kept" },
	{ .name = "ratios", .type = PB_OPT_CHOICE, .def = "random", .choices = "random|uniform",
	  .help = "random: per-layer keep ratios uniform in [keep_min, keep_max], rejected off the budget; uniform: one ratio in every layer" },
	{ .name = "keep_min", .type = PB_OPT_DOUBLE, .def = "0.2", .min = 0, .max = 1,
	  .help = "ratios = random: the least fraction of a layer's channels a sample keeps" },
	{ .name = "keep_max", .type = PB_OPT_DOUBLE, .def = "1", .min = 0, .max = 1,
	  .help = "ratios = random: the most fraction of a layer's channels a sample keeps" },
	{ .name = "tolerance", .type = PB_OPT_DOUBLE, .def = "0.01", .min = 0, .max = 1,
	  .help = "ratios = random: accept a sample removing the target amount +- this (same units)" },
	{ .name = "max_draws", .type = PB_OPT_INT, .def = "100000", .min = 1, .max = 1e9,
	  .help = "ratios = random: draws per candidate before giving up with an error" },
	{ .name = "select", .type = PB_OPT_CHOICE, .def = "random", .choices = "random|l1",
	  .help = "channels kept inside a group: random, or l1 (largest filter L1 norms)" },
	{ .name = "short_finetune", .type = PB_OPT_INT, .def = "200", .min = 0, .max = 1e9,
	  .help = "fine-tune steps (fine-tune recipe) for each candidate before it is evaluated on validation; 0 = none" },
	PB_OPTION_MIN_KEEP,
};

enum { SLOT_DENSE = 0, SLOT_BEST = 1 };

/* What every candidate is drawn from. */
typedef struct config {
	pb_prune_ctx *ctx;
	int ng, floor_;
	int *full;          /* the dense model's channels per group */
	int *fixed;         /* an override's count, or -1 */
	int *lo, *hi;       /* ratios = random: a free group's count range */
	int *kept;          /* the candidate's counts */
	double *norms;      /* select = l1: one group's filter norms */
	char *line;         /* the log line of a candidate */
	size_t line_cap;
} config;

static int free_group(const config *cf, int g)
{
	return pb_ctx_group(cf->ctx, g)->prunable && cf->fixed[g] < 0;
}

static const char *kind_name(pb_target_kind k)
{
	switch (k) {
	case PB_TARGET_CHANNELS: return "channels";
	case PB_TARGET_PARAMS: return "params";
	default: return "macs";
	}
}

static const char *group_name(pb_prune_ctx *ctx, int g)
{
	return pb_model_layer(pb_ctx_model(ctx),
			      pb_ctx_group(ctx, g)->producers[0])->name;
}

/* ---- ratios = uniform ---------------------------------------------------- */

/* Every free group at the fraction x removed. */
static void at_rate(void *user, double x, int *kept)
{
	const config *cf = user;

	for (int g = 0; g < cf->ng; g++)
		kept[g] = !pb_ctx_group(cf->ctx, g)->prunable ? cf->full[g] :
			  cf->fixed[g] >= 0 ? cf->fixed[g] :
			  pb_ctx_kept_count(cf->full[g], x, cf->floor_);
}

/* The uniform configuration, as scope = layer cuts it: a channels target
 * removes its fraction from every free group; params and macs bisect the
 * one fraction that meets them. */
static int uniform_config(pb_prune_ctx *ctx, config *cf, double *reached)
{
	const pb_target *t = pb_ctx_target(ctx);
	int rc;

	if (t->kind == PB_TARGET_CHANNELS) {
		at_rate(cf, t->amount, cf->kept);
		return pb_ctx_config_reached(ctx, cf->kept, reached);
	}
	rc = pb_ctx_bisect_config(ctx, at_rate, cf, 1.0, 60, cf->kept,
				  reached);
	if (rc == PB_EIMPOSSIBLE)
		rc = pb_ctx_fail(ctx, "%s=%g cannot be reached (at "
				 "most %.4f with min_keep = %d)",
				 kind_name(t->kind), t->amount, *reached,
				 cf->floor_);
	return rc;
}

/* ---- ratios = random ----------------------------------------------------- */

/* Each free group's range of counts: the whole numbers whose fraction of
 * its channels is in [keep_min, keep_max], at least min_keep. */
static int set_ranges(pb_prune_ctx *ctx, config *cf)
{
	double kmin = pb_ctx_opt_double(ctx, "keep_min");
	double kmax = pb_ctx_opt_double(ctx, "keep_max");

	if (kmin > kmax)
		return pb_ctx_fail(ctx, "keep_min %g is above "
				   "keep_max %g", kmin, kmax);
	for (int g = 0; g < cf->ng; g++) {
		int n = cf->full[g];
		int floor_ = cf->floor_ < n ? cf->floor_ : n;

		/* The 1e-9 keeps 0.3 * 10 = 3.0000000000000004 at 3. */
		cf->lo[g] = (int)ceil(kmin * n - 1e-9);
		cf->hi[g] = (int)floor(kmax * n + 1e-9);
		if (!free_group(cf, g))
			continue;
		if (cf->lo[g] > cf->hi[g])
			return pb_ctx_fail(ctx, "layer %s has %d "
					   "channels, and no whole number of "
					   "them is between keep_min %g and "
					   "keep_max %g of them; widen the "
					   "range", group_name(ctx, g), n,
					   kmin, kmax);
		if (cf->lo[g] < floor_)
			cf->lo[g] = floor_;
		if (cf->hi[g] < cf->lo[g])
			cf->hi[g] = cf->lo[g];
	}
	return 0;
}

/* Every free group at its lowest (*most) or highest (*least) count: what
 * the range can remove at most and at least. */
static int range_reach(pb_prune_ctx *ctx, config *cf, double *least,
		       double *most)
{
	int rc;

	for (int g = 0; g < cf->ng; g++)
		cf->kept[g] = free_group(cf, g) ? cf->lo[g] :
			      cf->fixed[g] >= 0 ? cf->fixed[g] : cf->full[g];
	if ((rc = pb_ctx_config_reached(ctx, cf->kept, most)))
		return rc;
	for (int g = 0; g < cf->ng; g++)
		if (free_group(cf, g))
			cf->kept[g] = cf->hi[g];
	return pb_ctx_config_reached(ctx, cf->kept, least);
}

/* Draws configurations until one removes the target amount within the
 * tolerance; cf->kept gets it, *reached its fraction, *draws how many
 * were drawn. */
static int random_config(pb_prune_ctx *ctx, config *cf, double *reached,
			 long *draws)
{
	const pb_target *t = pb_ctx_target(ctx);
	double tol = pb_ctx_opt_double(ctx, "tolerance");
	long budget = pb_ctx_opt_int(ctx, "max_draws");
	double kmin = pb_ctx_opt_double(ctx, "keep_min");
	double kmax = pb_ctx_opt_double(ctx, "keep_max");
	gsl_rng *rng = pb_ctx_rng(ctx);
	double least, most, seen_lo = INFINITY, seen_hi = -INFINITY;
	int rc;

	if ((rc = range_reach(ctx, cf, &least, &most)))
		return rc;
	if (most < t->amount - tol || least > t->amount + tol)
		return pb_ctx_fail(ctx, "%s=%g +- %g cannot be met "
				   "with every layer keeping between %g and "
				   "%g of its channels (min_keep %d): those "
				   "configurations remove %.4f to %.4f; "
				   "widen keep_min/keep_max, or use ratios = "
				   "uniform", kind_name(t->kind), t->amount,
				   tol, kmin, kmax, cf->floor_, least, most);
	for (long d = 1; d <= budget; d++) {
		for (int g = 0; g < cf->ng; g++) {
			unsigned long span;

			if (!free_group(cf, g))
				continue;
			span = (unsigned long)(cf->hi[g] - cf->lo[g] + 1);
			cf->kept[g] = cf->lo[g] +
				      (int)gsl_rng_uniform_int(rng, span);
		}
		if ((rc = pb_ctx_config_reached(ctx, cf->kept, reached)))
			return rc;
		if (fabs(*reached - t->amount) <= tol) {
			*draws = d;
			return 0;
		}
		if (*reached < seen_lo)
			seen_lo = *reached;
		if (*reached > seen_hi)
			seen_hi = *reached;
	}
	return pb_ctx_fail(ctx, "no configuration within %g of %s=%g "
			   "in %ld draws (max_draws) with every layer keeping "
			   "between %g and %g of its channels; the draws "
			   "removed %.4f to %.4f (the range can reach %.4f to "
			   "%.4f); raise max_draws or tolerance, or move "
			   "keep_min/keep_max toward the target",
			   tol, kind_name(t->kind), t->amount, budget, kmin,
			   kmax, seen_lo, seen_hi, least, most);
}

/* ---- choosing the channels ----------------------------------------------- */

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

/* ---- set-up -------------------------------------------------------------- */

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

static int config_new(pb_prune_ctx *ctx, config *cf)
{
	size_t ng1;
	int most = 1;

	cf->ctx = ctx;
	cf->ng = pb_ctx_n_groups(ctx);
	cf->floor_ = (int)pb_ctx_opt_int(ctx, "min_keep");
	ng1 = (size_t)cf->ng + 1;
	cf->full = malloc(sizeof(int) * ng1);
	cf->fixed = malloc(sizeof(int) * ng1);
	cf->lo = malloc(sizeof(int) * ng1);
	cf->hi = malloc(sizeof(int) * ng1);
	cf->kept = malloc(sizeof(int) * ng1);
	if (!cf->full || !cf->fixed || !cf->lo || !cf->hi || !cf->kept)
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
	free(cf->lo);
	free(cf->hi);
	free(cf->kept);
	free(cf->norms);
	free(cf->line);
}

/* "kept 11 12 24 ...; removed 0.498880 of macs; val 0.093750; draws 12"
 * (draws only for ratios = random). */
static void log_sample(pb_prune_ctx *ctx, config *cf, int i,
		       double reached, double acc, long draws)
{
	size_t len = 0;

	cf->line[0] = '\0';
	for (int g = 0; g < cf->ng; g++)
		len += (size_t)snprintf(cf->line + len, cf->line_cap - len,
					"%s%d", g ? " " : "", cf->kept[g]);
	if (draws > 0)
		pb_ctx_log(ctx, "random: sample %d: kept %s; removed %.6f of "
			   "%s; val %.6f; draws %ld", i, cf->line, reached,
			   kind_name(pb_ctx_target(ctx)->kind), acc, draws);
	else
		pb_ctx_log(ctx, "random: sample %d: kept %s; removed %.6f of "
			   "%s; val %.6f", i, cf->line, reached,
			   kind_name(pb_ctx_target(ctx)->kind), acc);
}

static int random_prune(void *state, pb_prune_ctx *ctx)
{
	int samples = (int)pb_ctx_opt_int(ctx, "samples");
	int l1 = !strcmp(pb_ctx_opt_string(ctx, "select"), "l1");
	int uniform = !strcmp(pb_ctx_opt_string(ctx, "ratios"), "uniform");
	long steps = pb_ctx_opt_int(ctx, "short_finetune");
	int evaluate = samples > 1 || steps > 0;
	config cf = { 0 };
	uint8_t **keep = NULL;
	double best = -1.0;
	int best_i = -1, rc;

	(void)state;
	if (uniform && l1 && samples > 1)
		return pb_ctx_fail(ctx, "ratios = uniform with select "
				   "= l1 has one configuration only; set "
				   "samples = 1");
	if ((rc = config_new(ctx, &cf)) ||
	    (!uniform && (rc = set_ranges(ctx, &cf))) ||
	    (rc = pb_ctx_keep_new(ctx, &keep)) ||
	    (rc = pb_ctx_snapshot_save(ctx, SLOT_DENSE)))
		goto out;
	for (int i = 0; i < samples && !rc; i++) {
		double reached = 0.0, acc = 0.0;
		long draws = 0;

		if (i > 0 && (rc = pb_ctx_snapshot_revert(ctx, SLOT_DENSE)))
			break;
		if ((rc = uniform ? uniform_config(ctx, &cf, &reached) :
			  random_config(ctx, &cf, &reached, &draws)) ||
		    (rc = choose_channels(ctx, &cf, l1, keep)) ||
		    (rc = pb_ctx_keep_channels(ctx,
				(const uint8_t *const *)keep)))
			break;
		if (steps > 0 &&
		    (rc = pb_ctx_train(ctx, PB_RECIPE_FINETUNE, 0, steps)))
			break;
		if (evaluate && (rc = pb_ctx_evaluate_val(ctx, &acc)))
			break;
		log_sample(ctx, &cf, i, reached, acc, draws);
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

/* What one cell trains here, for the dry run and shard balancing:
 * short_finetune steps of the fine-tune recipe for each sample. */
static int random_estimate(pb_estimate *q)
{
	if (q->finetune_steps_per_epoch <= 0)
		return -1;
	q->epochs = pb_estimate_opt_double(q, "samples") *
		    pb_estimate_opt_double(q, "short_finetune") /
		    q->finetune_steps_per_epoch;
	return 0;
}

PB_PRUNER_DEFINE(random, .version = "2.0",
	.estimate = random_estimate,
	.granularity = PB_GRANULARITY_CHANNEL,
	PB_PRUNER_OPTIONS(random_options), .prune = random_prune,
	.description = "samples per-layer keep ratios uniformly in a range, "
		       "rejects configurations off the budget, picks channels "
		       "at random (or by L1), fine-tunes each candidate "
		       "briefly and keeps the best on validation",
	.citation = "Li, Adamczewski, Li, Gu, Timofte, Van Gool. "
		    "Revisiting Random Channel Pruning for Neural Network "
		    "Compression. CVPR 2022")
