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
	{ .name = "samples", .type = PB_OPT_INT, .def = "10",
	  .help = "random configurations tried; 1 with select=random is the "
		  "plain random baseline", .min = 1, .max = 1e5 },
	{ .name = "select", .type = PB_OPT_CHOICE, .def = "random",
	  .help = "channels kept inside a group: random, or l1 (largest "
		  "filter L1 norms)", .choices = "random|l1" },
	{ .name = "short_finetune", .type = PB_OPT_INT, .def = "200",
	  .help = "fine-tune steps (fine-tune recipe) for each candidate "
		  "before it is evaluated on validation; 0 = none",
	  .min = 0, .max = 1e9 },
	{ .name = "min_keep", .type = PB_OPT_INT, .def = "1",
	  .help = "channels every group keeps at least", .min = 1,
	  .max = 1e6 },
};

enum { SLOT_DENSE = 0, SLOT_BEST = 1 };

typedef struct config {
	int ng;
	int *full, *fixed, *kept, *tmp;
	double *u;
	int floor_;
} config;

static int removed_fraction(pb_prune_ctx *ctx, const config *cf,
			    const int *kept, double *frac)
{
	const pb_target *t = pb_ctx_target(ctx);
	uint64_t p0, f0, p, f;
	int rc;

	if (t->kind == PB_TARGET_CHANNELS) {
		long total = 0, removed = 0;

		for (int g = 0; g < cf->ng; g++) {
			if (!pb_ctx_group(ctx, g)->prunable)
				continue;
			total += cf->full[g];
			removed += cf->full[g] - kept[g];
		}
		*frac = total ? (double)removed / (double)total : 0.0;
		return 0;
	}
	if ((rc = pb_ctx_config_cost(ctx, cf->full, &p0, &f0)) ||
	    (rc = pb_ctx_config_cost(ctx, kept, &p, &f)))
		return rc;
	if (t->kind == PB_TARGET_PARAMS)
		*frac = p0 ? 1.0 - (double)p / (double)p0 : 0.0;
	else
		*frac = f0 ? 1.0 - (double)f / (double)f0 : 0.0;
	return 0;
}

static int kept_for(int n, int floor_, double r)
{
	int k = n - (int)lround(r * n);

	if (floor_ > n)
		floor_ = n;
	return k < floor_ ? floor_ : k;
}

/* The configuration of scale a for the current weights u. */
static void at_scale(pb_prune_ctx *ctx, const config *cf, double a, int *kept)
{
	for (int g = 0; g < cf->ng; g++) {
		double r = a * cf->u[g];

		if (!pb_ctx_group(ctx, g)->prunable)
			kept[g] = cf->full[g];
		else if (cf->fixed[g] >= 0)
			kept[g] = cf->fixed[g];
		else
			kept[g] = kept_for(cf->full[g], cf->floor_,
					   r > 1.0 ? 1.0 : r);
	}
}

/* Draws u and bisects the scale; cf->kept gets the closer of the two
 * configurations that bracket the target, *reached its fraction. */
static int sample_config(pb_prune_ctx *ctx, config *cf, double *reached)
{
	const pb_target *t = pb_ctx_target(ctx);
	gsl_rng *rng = pb_ctx_rng(ctx);
	double lo = 0.0, hi, umin = 1.0, f_lo, f_hi;
	int rc;

	for (int g = 0; g < cf->ng; g++) {
		cf->u[g] = gsl_rng_uniform_pos(rng);
		if (cf->u[g] < umin)
			umin = cf->u[g];
	}
	hi = 1.0 / umin;
	at_scale(ctx, cf, hi, cf->tmp);
	if ((rc = removed_fraction(ctx, cf, cf->tmp, &f_hi)))
		return rc;
	if (f_hi < t->amount - 1e-12)
		return pb_ctx_fail(ctx, "the target %g cannot be reached (at "
				   "most %.4f with min_keep = %d)", t->amount,
				   f_hi, cf->floor_);
	for (int it = 0; it < 64; it++) {
		double mid = 0.5 * (lo + hi), f;

		at_scale(ctx, cf, mid, cf->kept);
		if ((rc = removed_fraction(ctx, cf, cf->kept, &f)))
			return rc;
		if (f >= t->amount)
			hi = mid;
		else
			lo = mid;
	}
	at_scale(ctx, cf, hi, cf->tmp);
	at_scale(ctx, cf, lo, cf->kept);
	if ((rc = removed_fraction(ctx, cf, cf->tmp, &f_hi)) ||
	    (rc = removed_fraction(ctx, cf, cf->kept, &f_lo)))
		return rc;
	*reached = f_lo;
	if (f_hi - t->amount <= t->amount - f_lo) {
		memcpy(cf->kept, cf->tmp, sizeof(int) * (size_t)cf->ng);
		*reached = f_hi;
	}
	return 0;
}

static int set_overrides(pb_prune_ctx *ctx, config *cf)
{
	const pb_target *t = pb_ctx_target(ctx);
	pb_model *m = pb_ctx_model(ctx);

	for (int g = 0; g < cf->ng; g++)
		cf->fixed[g] = -1;
	for (int o = 0; o < t->n_overrides; o++) {
		int layer = pb_model_find_layer(m, t->overrides[o].layer);
		int found = 0;

		for (int g = 0; g < cf->ng && !found; g++) {
			const pb_channel_group *grp = pb_ctx_group(ctx, g);

			for (int k = 0; k < grp->n_producers; k++)
				found |= grp->producers[k] == layer;
			if (found && grp->prunable)
				cf->fixed[g] = kept_for(grp->n_channels,
							cf->floor_,
							t->overrides[o].amount);
		}
		if (!found)
			return pb_ctx_fail(ctx, "override for layer '%s': not a "
					   "conv or linear producing prunable "
					   "channels", t->overrides[o].layer);
	}
	return 0;
}

/* L1 norm of channel c summed over the group's producers. */
static double channel_l1(pb_prune_ctx *ctx, const pb_channel_group *grp,
			 int c)
{
	double s = 0.0;

	for (int k = 0; k < grp->n_producers; k++) {
		const pb_param *w = pb_ctx_layer_param(ctx, grp->producers[k],
						       PB_PARAM_WEIGHT);
		size_t row = w->n / (size_t)w->shape[0];

		for (size_t j = 0; j < row; j++)
			s += fabs(w->data[row * (size_t)c + j]);
	}
	return s;
}

/* Which channels each group keeps, for the counts in cf->kept. */
static int choose_channels(pb_prune_ctx *ctx, const config *cf, int l1,
			   uint8_t **keep)
{
	gsl_rng *rng = pb_ctx_rng(ctx);

	for (int g = 0; g < cf->ng; g++) {
		const pb_channel_group *grp = pb_ctx_group(ctx, g);
		int n = grp->n_channels, drop = n - cf->kept[g];

		memset(keep[g], 1, (size_t)n);
		if (drop <= 0)
			continue;
		if (!l1) {
			int *all = malloc(sizeof(int) * (size_t)n);
			int *out = malloc(sizeof(int) * (size_t)drop);

			if (!all || !out) {
				free(all);
				free(out);
				return pb_ctx_fail(ctx, "out of memory");
			}
			for (int c = 0; c < n; c++)
				all[c] = c;
			gsl_ran_choose(rng, out, (size_t)drop, all, (size_t)n,
				       sizeof(int));
			for (int i = 0; i < drop; i++)
				keep[g][out[i]] = 0;
			free(all);
			free(out);
			continue;
		}
		{
			double *sc = malloc(sizeof(double) * (size_t)n);

			if (!sc)
				return pb_ctx_fail(ctx, "out of memory");
			for (int c = 0; c < n; c++)
				sc[c] = channel_l1(ctx, grp, c);
			for (int i = 0; i < drop; i++) {
				int arg = -1;

				for (int c = 0; c < n; c++)
					if (keep[g][c] && (arg < 0 ||
					    sc[c] < sc[arg]))
						arg = c;
				keep[g][arg] = 0;
			}
			free(sc);
		}
	}
	return 0;
}

static void config_free(config *cf)
{
	free(cf->full);
	free(cf->fixed);
	free(cf->kept);
	free(cf->tmp);
	free(cf->u);
}

static int random_prune(void *state, pb_prune_ctx *ctx)
{
	int samples = (int)pb_ctx_opt_int(ctx, "samples");
	int l1 = !strcmp(pb_ctx_opt_string(ctx, "select"), "l1");
	long steps = pb_ctx_opt_int(ctx, "short_finetune");
	int evaluate = samples > 1 || steps > 0;
	const char *kind;
	config cf = { 0 };
	uint8_t **keep = NULL;
	double best = -1.0;
	int best_i = -1, rc = 0;
	char *line = NULL;
	size_t line_cap;

	(void)state;
	switch (pb_ctx_target(ctx)->kind) {
	case PB_TARGET_CHANNELS: kind = "channels"; break;
	case PB_TARGET_PARAMS: kind = "params"; break;
	default: kind = "macs"; break;
	}
	cf.ng = pb_ctx_n_groups(ctx);
	cf.floor_ = (int)pb_ctx_opt_int(ctx, "min_keep");
	cf.full = malloc(sizeof(int) * ((size_t)cf.ng + 1));
	cf.fixed = malloc(sizeof(int) * ((size_t)cf.ng + 1));
	cf.kept = malloc(sizeof(int) * ((size_t)cf.ng + 1));
	cf.tmp = malloc(sizeof(int) * ((size_t)cf.ng + 1));
	cf.u = malloc(sizeof(double) * ((size_t)cf.ng + 1));
	keep = calloc((size_t)cf.ng + 1, sizeof *keep);
	line_cap = 64 + 12 * (size_t)cf.ng;
	line = malloc(line_cap);
	if (!cf.full || !cf.fixed || !cf.kept || !cf.tmp || !cf.u || !keep ||
	    !line) {
		rc = pb_ctx_fail(ctx, "out of memory");
		goto out;
	}
	for (int g = 0; g < cf.ng; g++) {
		cf.full[g] = pb_ctx_group(ctx, g)->n_channels;
		if (!(keep[g] = malloc((size_t)cf.full[g] + 1))) {
			rc = pb_ctx_fail(ctx, "out of memory");
			goto out;
		}
	}
	if ((rc = set_overrides(ctx, &cf)) ||
	    (rc = pb_ctx_snapshot_save(ctx, SLOT_DENSE)))
		goto out;
	for (int i = 0; i < samples && !rc; i++) {
		double reached = 0.0, acc = 0.0;
		size_t len = 0;

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
		for (int g = 0; g < cf.ng; g++)
			len += (size_t)snprintf(line + len, line_cap - len,
						"%s%d", g ? " " : "",
						cf.kept[g]);
		pb_ctx_log(ctx, "random: sample %d: kept %s; removed %.6f of "
			   "%s; val %.6f", i, line, reached, kind, acc);
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
	for (int g = 0; keep && g < cf.ng; g++)
		free(keep[g]);
	free(keep);
	free(line);
	config_free(&cf);
	return rc;
}

static const pb_pruner random_pruner = {
	PB_PRUNER_HEADER,
	.name = "random",
	.version = "1.0",
	.granularity = PB_GRANULARITY_CHANNEL,
	.description = "samples random per-layer channel counts under the "
		       "budget, picks channels at random (or by L1), "
		       "fine-tunes each candidate briefly and keeps the best "
		       "on validation",
	.citation = "Li, Chen, Li, Liu, Zhang, Gu, Van Gool, Timofte. "
		    "Revisiting Random Channel Pruning for Neural Network "
		    "Compression. CVPR 2022",
	.options = random_options,
	.n_options = sizeof random_options / sizeof random_options[0],
	.prune = random_prune,
};

PB_PRUNER_EXPORT(random_pruner)
