/* Weight selection under a sparsity target: masks the lowest-scored
 * weights of the given tensors until `amount` of them are masked.
 *
 * Rules, all of them in the tests:
 * - amount is the total sparsity to reach over the given tensors, not an
 *   increment: weights already masked count as pruned and stay pruned, and
 *   an amount at or below the current sparsity changes nothing.
 * - Ranking is by score, lowest pruned first; equal scores are broken by
 *   position (tensor order, then index: the lower one is pruned first), so
 *   a selection never depends on the sort algorithm.
 * - Scope layer: tensor i ends with round(f * n_i) masked weights, f its
 *   layer's override or amount, capped at n_i - 1 so no tensor is emptied.
 * - Scope global: one ranking over every weight of the tensors without an
 *   override, so the total reaches round(amount * N) (N over all given
 *   tensors, overridden ones counted with what their override prunes).
 *   The floor: each tensor keeps at least max(1, ceil(1% of n_i)) weights;
 *   a weight whose tensor is at its floor is skipped and the ranking moves
 *   on, and an amount the floors make unreachable is an error naming the
 *   highest reachable sparsity.
 * Errors leave the model unchanged. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_sort_float.h>

#include "nn/mask.h"
#include "nn/model_impl.h"
#include "prune/prune_impl.h"

/* Per tensor bookkeeping. */
struct tinfo {
	pb_param *p;
	const float *score;
	const float *mask;  /* existing mask or NULL */
	size_t masked;      /* already masked */
	double frac;        /* override, or < 0 */
	size_t add;         /* to mask now */
	size_t *pick;       /* their indices (add entries) */
};

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return (x > y) - (x < y);
}

/* order = candidate ids sorted by (vals, id): GSL's index sort (a heap
 * sort, not stable), then each run of equal values put in id order. */
static void rank(const float *vals, size_t cnt, size_t *order)
{
	size_t i = 0;

	gsl_sort_float_index(order, vals, 1, cnt);
	while (i < cnt) {
		size_t j = i + 1;
		while (j < cnt && vals[order[j]] == vals[order[i]])
			j++;
		if (j - i > 1)
			qsort(order + i, j - i, sizeof *order, cmp_size);
		i = j;
	}
}

static size_t floor_keep(size_t n)
{
	size_t k = (n + 99) / 100;

	return k < 1 ? 1 : k;
}

static int check_inputs(pb_model *m, const pb_target *t, pb_param **params,
			float *const *scores, int n, double amount,
			pb_error *err)
{
	if (t && t->kind != PB_TARGET_SPARSITY)
		return pb_error_set(err, PB_EINVAL,
				    "weight selection reaches sparsity "
				    "targets, but the target is of another "
				    "kind (channels, params or macs); use "
				    "sparsity=S with a weight pruner, or a "
				    "channel pruner");
	if (!(amount >= 0.0 && amount < 1.0))
		return pb_error_set(err, PB_EIMPOSSIBLE,
				    "sparsity %g cannot be reached: the "
				    "amount is the fraction of weights "
				    "pruned, in [0, 1)", amount);
	if (n < 1 || !params || !scores)
		return pb_error_set(err, PB_EINVAL,
				    "weight selection got no tensors to prune "
				    "(all excluded?); leave at least one "
				    "conv/linear weight in the ranking");
	for (int i = 0; i < n; i++) {
		pb_param *p = params[i];
		if (!p || p < m->params || p >= m->params + m->n_params ||
		    !p->trainable)
			return pb_error_set(err, PB_EINVAL,
					    "weight selection: tensor %d is "
					    "not a trainable tensor of model "
					    "'%s'", i, m->name);
		if (!scores[i])
			return pb_error_set(err, PB_EINVAL,
					    "weight selection: no scores for "
					    "%s", p->name);
		for (int j = 0; j < i; j++)
			if (params[j] == p)
				return pb_error_set(err, PB_EINVAL,
						    "weight selection: %s is "
						    "given twice", p->name);
		for (size_t k = 0; k < p->n; k++)
			if (isnan(scores[i][k]))
				return pb_error_set(err, PB_EINVAL,
						    "weight selection: the "
						    "score of %s[%zu] is NaN; "
						    "check the pruner's "
						    "scoring", p->name, k);
	}
	return 0;
}

static int apply_overrides(pb_model *m, const pb_target *t,
			   struct tinfo *ti, int n, pb_error *err)
{
	if (!t)
		return 0;
	for (int o = 0; o < t->n_overrides; o++) {
		const pb_target_override *ov = &t->overrides[o];
		int layer = pb_model_find_layer(m, ov->layer), hit = 0;
		if (layer < 0)
			return pb_error_set(err, PB_ENOTFOUND,
					    "target override '%s=%g': model "
					    "'%s' has no layer '%s'; use a "
					    "section name of the model file",
					    ov->layer, ov->amount, m->name,
					    ov->layer);
		if (!(ov->amount >= 0.0 && ov->amount < 1.0))
			return pb_error_set(err, PB_EIMPOSSIBLE,
					    "target override '%s=%g': the "
					    "amount must be in [0, 1)",
					    ov->layer, ov->amount);
		for (int i = 0; i < n; i++) {
			if (ti[i].p->layer == layer) {
				ti[i].frac = ov->amount;
				hit = 1;
			}
		}
		if (!hit)
			return pb_error_set(err, PB_EINVAL,
					    "target override '%s=%g': layer "
					    "'%s' has no weights in this "
					    "selection (not a conv/linear "
					    "layer, or excluded by the "
					    "pruner); remove the override",
					    ov->layer, ov->amount, ov->layer);
	}
	return 0;
}

/* Picks the `add` lowest-scored unmasked weights of one tensor. */
static int pick_layer(struct tinfo *t)
{
	size_t n = t->p->n, cnt = 0, *ids, *order;
	float *vals;

	if (!t->add)
		return 0;
	vals = malloc(n * sizeof *vals);
	ids = malloc(n * sizeof *ids);
	order = malloc(n * sizeof *order);
	t->pick = malloc(t->add * sizeof *t->pick);
	if (!vals || !ids || !order || !t->pick) {
		free(vals);
		free(ids);
		free(order);
		return PB_ENOMEM;
	}
	for (size_t j = 0; j < n; j++) {
		if (t->mask && t->mask[j] == 0.0f)
			continue;
		vals[cnt] = t->score[j];
		ids[cnt++] = j;
	}
	rank(vals, cnt, order);
	for (size_t j = 0; j < t->add; j++)
		t->pick[j] = ids[order[j]];
	free(vals);
	free(ids);
	free(order);
	return 0;
}

/* One ranking over the unmasked weights of the tensors without an
 * override; need weights are picked, skipping tensors at their cap. */
static int pick_global(struct tinfo *ti, int n, size_t need,
		       const size_t *cap)
{
	size_t total = 0, cnt = 0, *ids, *order;
	int *tid;
	float *vals;
	int rc = 0;

	for (int i = 0; i < n; i++)
		if (ti[i].frac < 0)
			total += ti[i].p->n;
	vals = malloc(total * sizeof *vals);
	ids = malloc(total * sizeof *ids);
	order = malloc(total * sizeof *order);
	tid = malloc(total * sizeof *tid);
	for (int i = 0; i < n; i++)
		if (ti[i].frac < 0 && cap[i]) {
			ti[i].pick = malloc(cap[i] * sizeof *ti[i].pick);
			if (!ti[i].pick)
				rc = PB_ENOMEM;
		}
	if (!vals || !ids || !order || !tid || rc) {
		rc = PB_ENOMEM;
		goto out;
	}
	for (int i = 0; i < n; i++) {
		if (ti[i].frac >= 0)
			continue;
		for (size_t j = 0; j < ti[i].p->n; j++) {
			if (ti[i].mask && ti[i].mask[j] == 0.0f)
				continue;
			vals[cnt] = ti[i].score[j];
			ids[cnt] = j;
			tid[cnt++] = i;
		}
	}
	rank(vals, cnt, order);
	for (size_t r = 0; r < cnt && need; r++) {
		struct tinfo *t = &ti[tid[order[r]]];
		if (t->add == cap[tid[order[r]]])
			continue;
		t->pick[t->add++] = ids[order[r]];
		need--;
	}
out:
	free(vals);
	free(ids);
	free(order);
	free(tid);
	return rc;
}

static size_t count_masked(const float *mask, size_t n)
{
	size_t c = 0;

	if (mask)
		for (size_t j = 0; j < n; j++)
			c += mask[j] == 0.0f;
	return c;
}

/* Target count of masked weights for a tensor pruned on its own. */
static size_t layer_goal(double f, size_t n)
{
	size_t k = (size_t)llround(f * (double)n);

	return k >= n ? n - 1 : k;
}

static int plan_global(pb_model *m, struct tinfo *ti, int n, double amount,
		       pb_error *err)
{
	size_t all = 0, fixed = 0, pool_masked = 0, room = 0, goal, need;
	size_t *cap = calloc((size_t)n, sizeof *cap);
	int rc;

	if (!cap)
		return pb_error_set(err, PB_ENOMEM, "out of memory (selection)");
	for (int i = 0; i < n; i++) {
		size_t ni = ti[i].p->n;
		all += ni;
		if (ti[i].frac >= 0) {
			size_t k = ti[i].masked + ti[i].add;
			fixed += k;
			continue;
		}
		pool_masked += ti[i].masked;
		if (ni > floor_keep(ni) + ti[i].masked)
			cap[i] = ni - floor_keep(ni) - ti[i].masked;
		room += cap[i];
	}
	goal = (size_t)llround(amount * (double)all);
	need = goal > fixed + pool_masked ? goal - fixed - pool_masked : 0;
	if (need > room) {
		double best = (double)(fixed + pool_masked + room) / (double)all;
		free(cap);
		return pb_error_set(err, PB_EIMPOSSIBLE,
				    "global sparsity %g cannot be reached in "
				    "model '%s': every tensor keeps at least "
				    "1%% of its weights (and at least one), "
				    "so at most %.4f is reachable; lower the "
				    "amount or the per-layer overrides",
				    amount, m->name, best);
	}
	rc = need ? pick_global(ti, n, need, cap) : 0;
	free(cap);
	if (rc)
		return pb_error_set(err, rc, "out of memory (selection)");
	return 0;
}

int pbi_select_weights(pb_model *m, const pb_target *t, pb_param **params,
		       float *const *scores, int n, double amount,
		       double *reached, pb_error *err)
{
	struct tinfo *ti;
	int global = t && t->scope == PB_SCOPE_GLOBAL;
	int rc;
	size_t masked = 0, all = 0;

	if ((rc = check_inputs(m, t, params, scores, n, amount, err)))
		return rc;
	ti = calloc((size_t)n, sizeof *ti);
	if (!ti)
		return pb_error_set(err, PB_ENOMEM, "out of memory (selection)");
	for (int i = 0; i < n; i++) {
		ti[i].p = params[i];
		ti[i].score = scores[i];
		ti[i].mask = pbi_mask_get(m, params[i], 0);
		ti[i].masked = count_masked(ti[i].mask, params[i]->n);
		ti[i].frac = -1.0;
	}
	if ((rc = apply_overrides(m, t, ti, n, err)))
		goto out;
	/* Tensors pruned on their own: all of them in layer scope, the
	 * overridden ones in global scope. */
	for (int i = 0; i < n; i++) {
		size_t goal;
		if (global && ti[i].frac < 0)
			continue;
		goal = layer_goal(ti[i].frac >= 0 ? ti[i].frac : amount,
				  ti[i].p->n);
		ti[i].add = goal > ti[i].masked ? goal - ti[i].masked : 0;
		if (pick_layer(&ti[i])) {
			rc = pb_error_set(err, PB_ENOMEM,
					  "out of memory (selection)");
			goto out;
		}
	}
	if (global && (rc = plan_global(m, ti, n, amount, err)))
		goto out;
	/* Every mask first, so running out of memory changes nothing. */
	for (int i = 0; i < n; i++) {
		if (ti[i].add && !pbi_mask_get(m, ti[i].p, 1)) {
			rc = pb_error_set(err, PB_ENOMEM,
					  "out of memory (mask of %s)",
					  ti[i].p->name);
			goto out;
		}
	}
	for (int i = 0; i < n; i++) {
		float *mk = pbi_mask_get(m, ti[i].p, 0);
		for (size_t j = 0; j < ti[i].add; j++)
			mk[ti[i].pick[j]] = 0.0f;
		masked += count_masked(mk, ti[i].p->n);
		all += ti[i].p->n;
	}
	pbi_mask_apply(m);
	if (reached)
		*reached = (double)masked / (double)all;
out:
	for (int i = 0; i < n; i++)
		free(ti[i].pick);
	free(ti);
	return rc;
}
