/* Choosing which channels to remove so that a target is reached.
 *
 * Kinds: CHANNELS (fraction of the prunable channels removed), PARAMS and
 * MACS (fraction of the whole model's parameters or MACs removed, the
 * non-prunable parts included, so the numbers match the metrics table).
 *
 * Scope layer: every free prunable group loses the same fraction r of its
 * channels (rounded to whole channels). For CHANNELS r is the amount; for
 * PARAMS and MACS r is found by bisection, and of the two configurations
 * that bracket the amount the closer one is taken, so the reached value is
 * within one channel per group of the asked one.
 *
 * Scope global: one ranking across groups. Scores of different layers are
 * not on one scale (filter norms grow with fan-in, for one), so each score
 * is divided by the mean |score| of its group before ranking: a channel is
 * removed early when it is weak relative to its own layer. Channels go in
 * ascending order of that normalised score, skipping a group once it is at
 * its floor, until the amount is reached (the closer of the two prefixes
 * that bracket it).
 *
 * Overrides name a producer layer (conv or linear) and fix the fraction of
 * that group's channels that is removed, whatever the kind; the remaining
 * groups make up the rest of the target. No group keeps fewer than
 * max(min_keep, 1) channels. Within a group the lowest scores go first,
 * ties to the lower index; a NULL score array counts as all-equal. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/model_impl.h"
#include "prune/prune_impl.h"

struct sel {
	const pb_model *m;
	const pb_channel_group *groups;
	int ng;
	pb_target_kind kind;
	int *floor_;     /* fewest channels a group may keep */
	int *fixed;      /* kept count set by an override, -1 for free */
	int *kept;       /* the configuration being evaluated */
	long total;      /* prunable channels */
	int floor_max;   /* max(min_keep, 1), for messages */
	uint64_t base_p, base_f;
};

/* The fraction of the target's kind that configuration s->kept removes. */
static double measure(const struct sel *s)
{
	uint64_t p, f;

	if (s->kind == PB_TARGET_CHANNELS) {
		long removed = 0;
		for (int g = 0; g < s->ng; g++)
			if (s->groups[g].prunable)
				removed += s->groups[g].n_channels - s->kept[g];
		return s->total ? (double)removed / (double)s->total : 0.0;
	}
	pbi_config_cost(s->m, s->groups, s->ng, s->kept, &p, &f);
	if (s->kind == PB_TARGET_PARAMS)
		return s->base_p ? 1.0 - (double)p / (double)s->base_p : 0.0;
	return s->base_f ? 1.0 - (double)f / (double)s->base_f : 0.0;
}

static int free_group(const struct sel *s, int g)
{
	return s->groups[g].prunable && s->fixed[g] < 0;
}

static int kept_for(int n, int floor_, double r)
{
	int k = n - (int)lround(r * n);
	return k < floor_ ? floor_ : k;
}

/* Every group at the same fraction r (fixed groups as overridden). */
static void set_layer(struct sel *s, double r)
{
	for (int g = 0; g < s->ng; g++) {
		if (!s->groups[g].prunable)
			s->kept[g] = s->groups[g].n_channels;
		else if (s->fixed[g] >= 0)
			s->kept[g] = s->fixed[g];
		else
			s->kept[g] = kept_for(s->groups[g].n_channels,
					      s->floor_[g], r);
	}
}

static const char *kind_name(pb_target_kind k)
{
	switch (k) {
	case PB_TARGET_CHANNELS: return "channels";
	case PB_TARGET_PARAMS: return "params";
	case PB_TARGET_MACS: return "macs";
	default: return "sparsity";
	}
}

static int group_of_layer(const pb_channel_group *groups, int ng, int layer)
{
	for (int g = 0; g < ng; g++)
		for (int k = 0; k < groups[g].n_producers; k++)
			if (groups[g].producers[k] == layer)
				return g;
	return -1;
}

static int apply_overrides(struct sel *s, const pb_target *t, pb_error *err)
{
	for (int o = 0; o < t->n_overrides; o++) {
		const pb_target_override *ov = &t->overrides[o];
		int layer = pb_model_find_layer(s->m, ov->layer);
		int g = layer < 0 ? -1 :
			group_of_layer(s->groups, s->ng, layer);

		if (layer < 0)
			return pb_error_set(err, PB_ENOTFOUND,
					    "override for layer '%s': model %s "
					    "has no layer of that name",
					    ov->layer, s->m->name);
		if (g < 0)
			return pb_error_set(err, PB_EINVAL,
					    "override for layer '%s': it is a "
					    "%s, but channel overrides name a "
					    "conv or linear layer", ov->layer,
					    pb_layer_type_name(
						    s->m->nodes[layer].info.type));
		if (!s->groups[g].prunable)
			return pb_error_set(err, PB_EINVAL,
					    "override for layer '%s': its "
					    "channels cannot be removed (they "
					    "are the classes or are tied to "
					    "them or to the model input); drop "
					    "the override", ov->layer);
		if (!(ov->amount >= 0.0 && ov->amount < 1.0))
			return pb_error_set(err, PB_EIMPOSSIBLE,
					    "override for layer '%s': amount "
					    "%g is outside [0, 1)", ov->layer,
					    ov->amount);
		s->fixed[g] = kept_for(s->groups[g].n_channels, s->floor_[g],
				       ov->amount);
	}
	return 0;
}

/* ---- global ranking ------------------------------------------------------ */

struct cand {
	double score;
	int g, c;
};

static int cand_cmp(const void *pa, const void *pb)
{
	const struct cand *a = pa, *b = pb;

	if (a->score != b->score)
		return a->score < b->score ? -1 : 1;
	if (a->g != b->g)
		return a->g < b->g ? -1 : 1;
	return (a->c > b->c) - (a->c < b->c);
}

static float score_at(float *const *scores, int g, int c)
{
	return scores && scores[g] ? scores[g][c] : 0.0f;
}

/* The order in which the global ranking removes channels of free groups,
 * floors respected: *seq (malloc-ed) of *len candidates. */
static int removal_sequence(const struct sel *s, float *const *scores,
			    struct cand **seq, long *len)
{
	long n = 0, k = 0;
	struct cand *all;
	int *left;

	for (int g = 0; g < s->ng; g++)
		if (free_group(s, g))
			n += s->groups[g].n_channels;
	all = malloc(((size_t)n ? (size_t)n : 1) * sizeof *all);
	left = malloc((size_t)s->ng * sizeof *left);
	if (!all || !left) {
		free(all);
		free(left);
		return PB_ENOMEM;
	}
	for (int g = 0; g < s->ng; g++) {
		int nc = s->groups[g].n_channels;
		double mean = 0.0;
		left[g] = nc;
		if (!free_group(s, g))
			continue;
		for (int c = 0; c < nc; c++)
			mean += fabs((double)score_at(scores, g, c));
		mean /= nc;
		for (int c = 0; c < nc; c++) {
			double v = score_at(scores, g, c);
			all[k].score = mean > 0.0 ? v / mean : 0.0;
			all[k].g = g;
			all[k].c = c;
			k++;
		}
	}
	qsort(all, (size_t)n, sizeof *all, cand_cmp);
	k = 0;
	for (long i = 0; i < n; i++) {
		int g = all[i].g;
		if (left[g] <= s->floor_[g])
			continue;
		left[g]--;
		all[k++] = all[i];
	}
	free(left);
	*seq = all;
	*len = k;
	return 0;
}

/* The configuration after removing the first k of seq. */
static void set_prefix(struct sel *s, const struct cand *seq, long k)
{
	set_layer(s, 0.0);
	for (long i = 0; i < k; i++)
		s->kept[seq[i].g]--;
}

/* ---- choosing channels within a group ------------------------------------ */

struct ranked {
	float score;
	int c;
};

static int ranked_cmp(const void *pa, const void *pb)
{
	const struct ranked *a = pa, *b = pb;

	if (a->score != b->score)
		return a->score < b->score ? -1 : 1;
	return (a->c > b->c) - (a->c < b->c);
}

/* Keeps the `kept` highest-scored channels of group g. */
static int mark_lowest(const pb_channel_group *gr, const float *score,
		       int kept, uint8_t *keep)
{
	int n = gr->n_channels;
	struct ranked *r = malloc((size_t)n * sizeof *r);

	if (!r)
		return PB_ENOMEM;
	for (int c = 0; c < n; c++) {
		r[c].score = score ? score[c] : 0.0f;
		r[c].c = c;
		keep[c] = 1;
	}
	qsort(r, (size_t)n, sizeof *r, ranked_cmp);
	for (int i = 0; i < n - kept; i++)
		keep[r[i].c] = 0;
	free(r);
	return 0;
}

/* ---- the entry point ----------------------------------------------------- */

static int check_args(const struct sel *s, const pb_target *t,
		      float *const *scores, double amount, uint8_t **keep,
		      pb_error *err)
{
	if (t->kind != PB_TARGET_CHANNELS && t->kind != PB_TARGET_PARAMS &&
	    t->kind != PB_TARGET_MACS)
		return pb_error_set(err, PB_EINVAL,
				    "channel selection needs a channels, "
				    "params or macs target, not %s; use a "
				    "weight pruner for sparsity targets",
				    kind_name(t->kind));
	if (!(amount >= 0.0 && amount < 1.0))
		return pb_error_set(err, PB_EIMPOSSIBLE,
				    "%s=%g cannot be reached: the amount "
				    "removed must be in [0, 1)",
				    kind_name(t->kind), amount);
	for (int g = 0; g < s->ng; g++) {
		if (!keep[g])
			return pb_error_set(err, PB_EINVAL,
					    "channel selection: keep[%d] is "
					    "NULL; allocate n_channels bytes "
					    "for every group", g);
		for (int c = 0; scores && scores[g] &&
				c < s->groups[g].n_channels; c++)
			if (!isfinite(scores[g][c]) &&
			    s->groups[g].prunable)
				return pb_error_set(err, PB_EINVAL,
						    "channel score %d of "
						    "group %d is %g; scores "
						    "must be finite", c, g,
						    (double)scores[g][c]);
	}
	return 0;
}

/* Among the two configurations that bracket the amount (lo below it, hi
 * at or above it), the closer; ties reach the target. */
static int closer_hi(double lo, double hi, double amount)
{
	return hi - amount <= amount - lo;
}

static void solve_layer(struct sel *s, double amount)
{
	double lo = 0.0, hi = 1.0, below;

	if (s->kind == PB_TARGET_CHANNELS) {
		set_layer(s, amount);
		return;
	}
	set_layer(s, 0.0);
	if (measure(s) >= amount)
		return;
	/* measure() is non-decreasing in r: keep lo below and hi at or
	 * above the amount. */
	for (int it = 0; it < 60; it++) {
		double mid = 0.5 * (lo + hi);
		set_layer(s, mid);
		if (measure(s) >= amount)
			hi = mid;
		else
			lo = mid;
	}
	set_layer(s, lo);
	below = measure(s);
	set_layer(s, hi);
	if (!closer_hi(below, measure(s), amount))
		set_layer(s, lo);
}

static int solve_global(struct sel *s, float *const *scores, double amount,
			struct cand **seq_out)
{
	struct cand *seq;
	long len, lo = 0, hi;

	if (removal_sequence(s, scores, &seq, &len))
		return PB_ENOMEM;
	*seq_out = seq;
	/* Smallest prefix that reaches the amount (the full one does: the
	 * caller checked that the amount is reachable). */
	hi = len;
	set_prefix(s, seq, 0);
	if (measure(s) >= amount)
		return 0;
	while (hi - lo > 1) {
		long mid = lo + (hi - lo) / 2;
		set_prefix(s, seq, mid);
		if (measure(s) >= amount)
			hi = mid;
		else
			lo = mid;
	}
	set_prefix(s, seq, hi - 1);
	{
		double below = measure(s);
		set_prefix(s, seq, hi);
		if (!closer_hi(below, measure(s), amount))
			set_prefix(s, seq, hi - 1);
	}
	return 0;
}

/* Fills keep: the first n_seq of the global ranking for free groups when
 * seq is given, otherwise the lowest-scored channels of each group down to
 * its kept count. */
static int mark_all(struct sel *s, float *const *scores,
		    const struct cand *seq, long n_seq, uint8_t **keep)
{
	for (int g = 0; g < s->ng; g++) {
		const pb_channel_group *gr = &s->groups[g];
		if (seq && free_group(s, g)) {
			memset(keep[g], 1, (size_t)gr->n_channels);
			continue;
		}
		if (mark_lowest(gr, scores ? scores[g] : NULL, s->kept[g],
				keep[g]))
			return PB_ENOMEM;
	}
	for (long i = 0; seq && i < n_seq; i++)
		keep[seq[i].g][seq[i].c] = 0;
	return 0;
}

int pbi_select_channels(const pb_model *m, const pb_channel_group *groups,
			int n_groups, const pb_target *t,
			float *const *scores, double amount, int min_keep,
			uint8_t **keep, double *reached, pb_error *err)
{
	struct sel s = { 0 };
	struct cand *seq = NULL;
	long n_seq = 0;
	double most;
	int rc;

	s.m = m;
	s.groups = groups;
	s.ng = n_groups;
	s.kind = t->kind;
	*reached = 0.0;
	if ((rc = check_args(&s, t, scores, amount, keep, err)))
		return rc;
	s.floor_ = malloc(((size_t)n_groups + 1) * sizeof *s.floor_);
	s.fixed = malloc(((size_t)n_groups + 1) * sizeof *s.fixed);
	s.kept = malloc(((size_t)n_groups + 1) * sizeof *s.kept);
	if (!s.floor_ || !s.fixed || !s.kept) {
		rc = pb_error_set(err, PB_ENOMEM, "out of memory (selection)");
		goto out;
	}
	s.floor_max = min_keep > 1 ? min_keep : 1;
	for (int g = 0; g < n_groups; g++) {
		int n = groups[g].n_channels;
		int fl = s.floor_max;
		s.floor_[g] = fl < n ? fl : n;
		s.fixed[g] = -1;
		if (groups[g].prunable)
			s.total += n;
	}
	pbi_config_cost(m, groups, n_groups, NULL, &s.base_p, &s.base_f);
	if ((rc = apply_overrides(&s, t, err)))
		goto out;

	/* Everything free down to its floor: the most that can go. */
	set_layer(&s, 1.0);
	most = measure(&s);
	if (t->kind == PB_TARGET_CHANNELS ?
		    lround(amount * (double)s.total) >
			    lround(most * (double)s.total) :
		    amount > most + 1e-12) {
		rc = pb_error_set(err, PB_EIMPOSSIBLE,
				  "%s=%g cannot be reached on %s: at most "
				  "%.4f can be removed, with every prunable "
				  "group down to %d channel%s%s (the model "
				  "input's channels and the classes are never "
				  "removed); ask for at most %.4f%s",
				  kind_name(t->kind), amount, m->name,
				  floor(most * 1e4) / 1e4,
				  s.floor_max, s.floor_max > 1 ? "s" : "",
				  t->n_overrides ? " and the overrides as "
						   "given" : "",
				  floor(most * 1e4) / 1e4,
				  min_keep > 1 ? ", or a smaller "
						       "min_keep" : "");
		goto out;
	}
	if (t->scope == PB_SCOPE_GLOBAL) {
		/* A whole number of channels, computed as measure() does,
		 * so the prefix search meets it exactly. */
		if (t->kind == PB_TARGET_CHANNELS && s.total)
			amount = (double)lround(amount * (double)s.total) /
				 (double)s.total;
		rc = solve_global(&s, scores, amount, &seq);
		if (rc) {
			rc = pb_error_set(err, rc, "out of memory (selection)");
			goto out;
		}
		for (int g = 0; g < n_groups; g++)
			if (free_group(&s, g))
				n_seq += groups[g].n_channels - s.kept[g];
	} else {
		solve_layer(&s, amount);
	}
	if (mark_all(&s, scores, seq, n_seq, keep)) {
		rc = pb_error_set(err, PB_ENOMEM, "out of memory (selection)");
		goto out;
	}
	*reached = measure(&s);
out:
	free(seq);
	free(s.floor_);
	free(s.fixed);
	free(s.kept);
	return rc;
}
