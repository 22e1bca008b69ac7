/* What several pruners used to do each in their own way, done once: the
 * fraction a channel configuration removes, the override that applies to
 * a group, bisection of a one-parameter family of configurations, greedy
 * removal by raw scores, walks over a group's producer filters, keep
 * arrays, and re-initialisation. Each fills the context's error. */
#include <stdlib.h>
#include <string.h>

#include "nn/mask.h"
#include "plugin/ctx_impl.h"
#include "prune/prune_impl.h"

static int check_group(pb_prune_ctx *ctx, int g)
{
	int rc;

	if ((rc = pbi_ctx_groups(ctx)))
		return rc;
	if (g < 0 || g >= ctx->n_groups)
		return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': no "
				    "channel group %d (the model has %d)",
				    ctx->pr->name, g, ctx->n_groups);
	return 0;
}

/* ---- the fraction a configuration removes -------------------------------- */

int pb_ctx_config_reached(pb_prune_ctx *ctx, const int *kept, double *reached)
{
	const pb_target *t = ctx->setup->target;
	uint64_t p0, f0, p, f;
	long total = 0, removed = 0;
	int rc;

	if ((rc = pbi_ctx_check_channel_target(ctx, t)) ||
	    (rc = pbi_ctx_groups(ctx)) || (rc = pbi_ctx_check_kept(ctx, kept)))
		return rc;
	/* The same measure as the core's selection (select_channels.c), so
	 * a plugin's count and the core's agree to the last bit. */
	if (t->kind == PB_TARGET_CHANNELS) {
		for (int g = 0; g < ctx->n_groups; g++) {
			if (!ctx->groups[g].prunable)
				continue;
			total += ctx->groups[g].n_channels;
			removed += ctx->groups[g].n_channels - kept[g];
		}
		*reached = total ? (double)removed / (double)total : 0.0;
		return 0;
	}
	pbi_config_cost(ctx->model, ctx->groups, ctx->n_groups, NULL, &p0, &f0);
	pbi_config_cost(ctx->model, ctx->groups, ctx->n_groups, kept, &p, &f);
	if (t->kind == PB_TARGET_PARAMS)
		*reached = p0 ? 1.0 - (double)p / (double)p0 : 0.0;
	else
		*reached = f0 ? 1.0 - (double)f / (double)f0 : 0.0;
	return 0;
}

/* ---- per-layer overrides ------------------------------------------------- */

static int group_of_layer(const pb_prune_ctx *ctx, int layer)
{
	for (int g = 0; g < ctx->n_groups; g++)
		for (int k = 0; k < ctx->groups[g].n_producers; k++)
			if (ctx->groups[g].producers[k] == layer)
				return g;
	return -1;
}

int pb_ctx_group_override(pb_prune_ctx *ctx, int g, double *amount,
			  const char **layer)
{
	const pb_target *t = ctx->setup->target;
	int rc;

	*amount = -1.0;
	if (layer)
		*layer = NULL;
	if ((rc = check_group(ctx, g)))
		return rc;
	/* Every override is checked on every call, so a plugin asking only
	 * for some groups still hears about one that names no producer. */
	for (int o = 0; o < t->n_overrides; o++) {
		int l = pb_model_find_layer(ctx->model, t->overrides[o].layer);
		int og = l < 0 ? -1 : group_of_layer(ctx, l);

		if (og < 0)
			return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': "
					    "override for layer '%s': not a "
					    "conv or linear producing prunable "
					    "channels", ctx->pr->name,
					    t->overrides[o].layer);
		if (og != g)
			continue;
		*amount = t->overrides[o].amount;
		if (layer)
			*layer = t->overrides[o].layer;
	}
	return 0;
}

/* ---- bisection of a one-parameter family --------------------------------- */

int pb_ctx_bisect_config(pb_prune_ctx *ctx,
			 void (*config)(void *user, double x, int *kept),
			 void *user, double hi, int iters, int *kept,
			 double *reached)
{
	const double amount = ctx->setup->target->amount;
	double lo = 0.0, f_lo, f_hi, f;
	int *up, rc;

	if ((rc = pbi_ctx_groups(ctx)))
		return rc;
	up = malloc(sizeof *up * ((size_t)ctx->n_groups + 1));
	if (!up)
		return pb_error_set(ctx->err, PB_ENOMEM, "out of memory");
	config(user, hi, up);
	if ((rc = pb_ctx_config_reached(ctx, up, &f_hi)))
		goto out;
	if (f_hi < amount - 1e-12) {
		*reached = f_hi;
		rc = pb_error_set(ctx->err, PB_EIMPOSSIBLE, "plugin '%s': the "
				  "target %g cannot be reached (at most %.4f)",
				  ctx->pr->name, amount, f_hi);
		goto out;
	}
	for (int it = 0; it < iters; it++) {
		double mid = 0.5 * (lo + hi);

		config(user, mid, kept);
		if ((rc = pb_ctx_config_reached(ctx, kept, &f)))
			goto out;
		if (f >= amount)
			hi = mid;
		else
			lo = mid;
	}
	config(user, hi, up);
	config(user, lo, kept);
	if ((rc = pb_ctx_config_reached(ctx, up, &f_hi)) ||
	    (rc = pb_ctx_config_reached(ctx, kept, &f_lo)))
		goto out;
	*reached = f_lo;
	if (f_hi - amount <= amount - f_lo) {
		memcpy(kept, up, sizeof *up * (size_t)ctx->n_groups);
		*reached = f_hi;
	}
out:
	free(up);
	return rc;
}

/* ---- greedy removal by raw scores ---------------------------------------- */

typedef struct cand {
	double score;
	int g, c;
} cand;

/* Lowest first; ties to the lower group, then the lower channel. */
static int cand_cmp(const void *a, const void *b)
{
	const cand *x = a, *y = b;

	if (x->score != y->score)
		return x->score < y->score ? -1 : 1;
	if (x->g != y->g)
		return x->g - y->g;
	return x->c - y->c;
}

/* The fraction configuration kept removes, measured as the run's report
 * will measure the result: against the model the plugin was given
 * (ctx->before), not the current one, which earlier calls of an
 * iterative plugin may have shrunk already. */
static double given_reached(pb_prune_ctx *ctx, const int *kept)
{
	pb_target_kind kind = ctx->setup->target->kind;
	pbi_measure after = { 0 };

	for (int g = 0; g < ctx->n_groups; g++)
		if (ctx->groups[g].prunable)
			after.channels += kept[g];
	if (kind != PB_TARGET_CHANNELS)
		pbi_config_cost(ctx->model, ctx->groups, ctx->n_groups, kept,
				&after.params, &after.macs);
	return pbi_measure_reached(kind, &ctx->before, &after);
}

static int target_met(pb_prune_ctx *ctx, const int *kept)
{
	return given_reached(ctx, kept) >= ctx->setup->target->amount - 1e-12;
}

/* The candidates: every channel still kept of the ranked groups, sorted. */
static cand *rank(pb_prune_ctx *ctx, const double *const *score,
		  const uint8_t *const *keep, int *n)
{
	long total = 0;
	cand *cs;

	for (int g = 0; g < ctx->n_groups; g++)
		if (score[g] && ctx->groups[g].prunable)
			total += ctx->groups[g].n_channels;
	cs = malloc(sizeof *cs * ((size_t)total + 1));
	*n = 0;
	for (int g = 0; cs && g < ctx->n_groups; g++)
		for (int c = 0; score[g] && ctx->groups[g].prunable &&
		     c < ctx->groups[g].n_channels; c++)
			if (keep[g][c])
				cs[(*n)++] = (cand){ score[g][c], g, c };
	if (cs)
		qsort(cs, (size_t)*n, sizeof *cs, cand_cmp);
	return cs;
}

int pb_ctx_pick_lowest(pb_prune_ctx *ctx, const double *const *score,
		       const int *floors, int max_remove, uint8_t *const *keep,
		       int *kept,
		       void (*on_remove)(void *user, pb_prune_ctx *ctx, int g,
					 int c),
		       void *user, int *removed, int *reached)
{
	cand *cs;
	int rc, nc = 0;

	*removed = 0;
	*reached = 0;
	if ((rc = pbi_ctx_check_channel_target(ctx, ctx->setup->target)) ||
	    (rc = pbi_ctx_groups(ctx)))
		return rc;
	if (!kept)
		return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': "
				    "pb_ctx_pick_lowest without kept",
				    ctx->pr->name);
	*reached = target_met(ctx, kept);
	if (max_remove == 0 || *reached)
		return 0;
	if (!score || !floors || !keep)
		return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': "
				    "pb_ctx_pick_lowest without scores, floors "
				    "or keep", ctx->pr->name);
	if (!(cs = rank(ctx, score, (const uint8_t *const *)keep, &nc)))
		return pb_error_set(ctx->err, PB_ENOMEM, "out of memory");
	for (int i = 0; i < nc && !*reached &&
	     (max_remove < 0 || *removed < max_remove); i++) {
		const int g = cs[i].g, c = cs[i].c;

		if (kept[g] <= floors[g])
			continue;
		kept[g]--;
		keep[g][c] = 0;
		++*removed;
		if (on_remove)
			on_remove(user, ctx, g, c);
		*reached = target_met(ctx, kept);
	}
	free(cs);
	return 0;
}

int pb_ctx_remove_lowest(pb_prune_ctx *ctx, const double *const *score,
			 const int *floors, int max_remove, int *reached)
{
	uint8_t **keep = NULL;
	int *kept = NULL;
	int rc, removed = 0;

	*reached = 0;
	if ((rc = pbi_ctx_check_channel_target(ctx, ctx->setup->target)) ||
	    (rc = pbi_ctx_refuse_in_training(ctx, "pb_ctx_remove_lowest")) ||
	    (rc = pbi_ctx_groups(ctx)))
		return rc;
	kept = malloc(sizeof *kept * ((size_t)ctx->n_groups + 1));
	if (!kept)
		return pb_error_set(ctx->err, PB_ENOMEM, "out of memory");
	for (int g = 0; g < ctx->n_groups; g++)
		kept[g] = ctx->groups[g].n_channels;
	*reached = target_met(ctx, kept);
	if (max_remove == 0)
		goto out;
	if (!score || !floors) {
		rc = pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': "
				  "pb_ctx_remove_lowest without scores or "
				  "floors", ctx->pr->name);
		goto out;
	}
	if ((rc = pb_ctx_keep_new(ctx, &keep)) ||
	    (rc = pb_ctx_pick_lowest(ctx, score, floors, max_remove, keep,
				     kept, NULL, NULL, &removed, reached)))
		goto out;
	if (!*reached && (max_remove < 0 || removed < max_remove)) {
		rc = pb_error_set(ctx->err, PB_EIMPOSSIBLE, "plugin '%s': "
				  "target %s=%g cannot be reached: removing "
				  "every ranked channel down to its group's "
				  "floor reaches %g; lower the target or the "
				  "floor", ctx->pr->name,
				  pb_target_kind_name(ctx->setup->target->kind),
				  ctx->setup->target->amount,
				  given_reached(ctx, kept));
		goto out;
	}
	rc = pb_ctx_keep_channels(ctx, (const uint8_t *const *)keep);
out:
	pb_ctx_keep_free(keep);
	free(kept);
	return rc;
}

/* ---- a group's producer filters ------------------------------------------ */

int pb_ctx_each_filter(pb_prune_ctx *ctx, int g,
		       int (*fn)(void *user, const pb_filter *f), void *user)
{
	const pb_channel_group *grp;
	int rc;

	if ((rc = check_group(ctx, g)))
		return rc;
	grp = &ctx->groups[g];
	for (int k = 0; k < grp->n_producers; k++) {
		int layer = grp->producers[k];
		pb_param *w = pb_ctx_layer_param(ctx, layer, PB_PARAM_WEIGHT);
		pb_param *b = pb_ctx_layer_param(ctx, layer, PB_PARAM_BIAS);
		pb_filter f = { .group = g, .producer = k, .layer = layer,
				.n = grp->n_channels };

		if (!w || w->shape[0] != grp->n_channels)
			return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': "
					    "group %d: producer layer %d has no "
					    "weight with %d output channels",
					    ctx->pr->name, g, layer,
					    grp->n_channels);
		f.len = w->n / (size_t)grp->n_channels;
		f.all = w->data;
		for (int c = 0; c < grp->n_channels; c++) {
			f.channel = c;
			f.weight = w->data + f.len * (size_t)c;
			f.grad = w->grad ? w->grad + f.len * (size_t)c : NULL;
			f.bias = b ? b->data + c : NULL;
			if ((rc = fn(user, &f)))
				return rc;
		}
	}
	return 0;
}

typedef struct filter_score {
	double (*fn)(void *user, const pb_filter *f);
	void *user;
	float *score;
} filter_score;

static int add_filter_score(void *user, const pb_filter *f)
{
	filter_score *fs = user;

	fs->score[f->channel] += (float)fs->fn(fs->user, f);
	return 0;
}

int pb_ctx_filter_scores(pb_prune_ctx *ctx,
			 double (*fn)(void *user, const pb_filter *f),
			 void *user, pb_channel_scores **out)
{
	filter_score fs = { .fn = fn, .user = user };
	pb_channel_scores *s;
	int rc;

	*out = NULL;
	if ((rc = pb_ctx_channel_scores(ctx, &s)))
		return rc;
	for (int g = 0; g < s->n; g++) {
		if (!ctx->groups[g].prunable)
			continue;
		fs.score = s->score[g];
		if ((rc = pb_ctx_each_filter(ctx, g, add_filter_score, &fs))) {
			pb_ctx_channel_scores_free(s);
			return rc;
		}
	}
	*out = s;
	return 0;
}

/* ---- keep arrays --------------------------------------------------------- */

int pb_ctx_keep_new(pb_prune_ctx *ctx, uint8_t ***keep)
{
	size_t total = 0, head;
	uint8_t *row;
	int rc;

	*keep = NULL;
	if ((rc = pbi_ctx_groups(ctx)))
		return rc;
	for (int g = 0; g < ctx->n_groups; g++)
		total += (size_t)ctx->groups[g].n_channels;
	/* The row pointers, then every row: one free releases it all. */
	head = sizeof **keep * ((size_t)ctx->n_groups + 1);
	*keep = malloc(head + total + 1);
	if (!*keep)
		return pb_error_set(ctx->err, PB_ENOMEM, "out of memory");
	row = (uint8_t *)*keep + head;
	memset(row, 1, total);
	for (int g = 0; g < ctx->n_groups; g++) {
		(*keep)[g] = row;
		row += ctx->groups[g].n_channels;
	}
	return 0;
}

void pb_ctx_keep_free(uint8_t **keep)
{
	free(keep);
}

int pb_ctx_keep_highest(pb_prune_ctx *ctx, const double *score, int n,
			int n_keep, uint8_t *keep)
{
	if (n_keep < 0 || n_keep > n)
		return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': cannot "
				    "keep %d of %d channels", ctx->pr->name,
				    n_keep, n);
	memset(keep, 1, (size_t)n);
	/* One at a time, as the core's selection goes within a group, so
	 * ties fall the same way. */
	for (int removed = 0; removed < n - n_keep; removed++) {
		int arg = -1;

		for (int c = 0; c < n; c++)
			if (keep[c] && (arg < 0 || score[c] < score[arg]))
				arg = c;
		keep[arg] = 0;
	}
	return 0;
}

/* ---- re-initialisation --------------------------------------------------- */

int pb_ctx_reinit_params(pb_prune_ctx *ctx)
{
	/* As the dense recipe starts a training from scratch. */
	const pb_init_kind kind = ctx->setup->dense ? ctx->setup->dense->init :
				  PB_INIT_KAIMING_OUT;
	int rc = pb_model_init(ctx->model, ctx->rng, kind, ctx->err);

	if (rc)
		return pb_error_prefix(ctx->err, "plugin '%s': "
				       "re-initialising: ", ctx->pr->name);
	pbi_mask_apply(ctx->model);
	return 0;
}
