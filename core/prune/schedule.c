/* One-shot, iterative and gradual pruning: when to prune, to how much,
 * and when to train in between. */
#include <math.h>
#include <stdlib.h>

#include "prune/prune_impl.h"
#include "prune/schedule.h"

int pbi_rounds_push(pbi_rounds *r, double v)
{
	if (r->n == r->cap) {
		int cap = r->cap ? 2 * r->cap : 16;
		double *n = realloc(r->v, (size_t)cap * sizeof *n);

		if (!n)
			return PB_ENOMEM;
		r->v = n;
		r->cap = cap;
	}
	r->v[r->n++] = v;
	return 0;
}

void pbi_rounds_free(pbi_rounds *r)
{
	free(r->v);
	*r = (pbi_rounds){ 0 };
}

void pbi_round_target(const pb_target *goal, int k, int rounds, double prev,
		      pb_target *out)
{
	double f = (double)k / rounds;

	*out = *goal;
	out->amount = 1.0 - pow(1.0 - goal->amount, f);
	for (int i = 0; i < out->n_overrides; i++)
		out->overrides[i].amount =
			1.0 - pow(1.0 - goal->overrides[i].amount, f);
	if (out->kind != PB_TARGET_SPARSITY && k > 1) {
		out->amount = prev < 1.0 ?
			      1.0 - (1.0 - out->amount) / (1.0 - prev) : 0.0;
		if (out->amount < 0.0)
			out->amount = 0.0;
	}
}

int pbi_trunk_rounds(const pb_target *hi, double x, int rounds)
{
	int K = 0;

	for (int k = 1; k < rounds; k++) {
		double a = 1.0 - pow(1.0 - hi->amount, (double)k / rounds);

		if (a < x - 1e-9)
			K = k;
		else
			break;
	}
	return K;
}

void pbi_trunk_round_target(const pb_target *hi, const pb_target *x, int K,
			    int k, int rounds, double prev, pb_target *out)
{
	if (k <= K) {
		pbi_round_target(hi, k, rounds, prev, out);
		return;
	}
	*out = *x;
	if (out->kind != PB_TARGET_SPARSITY && k > 1) {
		out->amount = prev < 1.0 ?
			      1.0 - (1.0 - x->amount) / (1.0 - prev) : 0.0;
		if (out->amount < 0.0)
			out->amount = 0.0;
	}
}

void pbi_gradual_points(const pb_prune_plan *plan, double goal, long per_epoch,
			long *step, double *amount)
{
	const int n = plan->gradual_steps;

	for (int k = 0; k <= n; k++) {
		double tk = plan->gradual_begin + k * plan->gradual_epochs / n;
		double q = 1.0 - (double)k / n;

		step[k] = (long)llround(tk * (double)per_epoch);
		amount[k] = goal + (plan->gradual_initial - goal) * q * q * q;
	}
}

void pbi_scaled_target(const pb_target *goal, double amount, pb_target *out)
{
	*out = *goal;
	out->amount = amount;
	for (int i = 0; i < out->n_overrides; i++)
		out->overrides[i].amount *= amount / goal->amount;
}

static int record_reached(pb_model *ref, pb_model *m, pb_target_kind kind,
			  pbi_rounds *rounds, pb_error *err)
{
	double reached;
	int rc = pbi_reached_between(ref, m, kind, &reached, err);

	if (!rc && pbi_rounds_push(rounds, reached))
		rc = pb_error_set(err, PB_ENOMEM, "out of memory (rounds)");
	return rc;
}

int pbi_schedule_rounds(const pb_prune_plan *plan, const pb_target *goal,
			const pb_target *hi, pb_model *ref, pb_model **m,
			const pbi_schedule_ops *ops, pbi_rounds *rounds,
			pb_error *err)
{
	const int iterative = plan && plan->schedule == PB_PRUNE_ITERATIVE;
	const int N = iterative ? plan->rounds : 1;
	const int K = iterative ? pbi_trunk_rounds(hi ? hi : goal,
						   goal->amount, N) : 0;
	const int n = K + 1;
	double prev = 0.0;
	int rc = 0, done = 0, in_trunk = 0;

	if (K > 0 && ops->trunk_begin) {
		if ((rc = ops->trunk_begin(ops->user, m, K, &done, rounds,
					   err)))
			return rc;
		in_trunk = 1;
		if (done > 0 && rounds->n >= done)
			prev = rounds->v[done - 1];
	}
	for (int k = done + 1; k <= n && !rc; k++) {
		pb_target t;

		if (in_trunk && k == K + 1) {
			ops->trunk_end(ops->user);
			in_trunk = 0;
		}
		pbi_trunk_round_target(hi ? hi : goal, goal, K, k, N, prev, &t);
		if ((rc = ops->prune(ops->user, m, &t, err)))
			break;
		if (N == 1)
			break;
		if ((rc = pbi_reached_between(ref, *m, goal->kind, &prev, err)))
			break;
		if (pbi_rounds_push(rounds, prev)) {
			rc = pb_error_set(err, PB_ENOMEM, "out of memory "
					  "(rounds)");
			break;
		}
		if (k < n)
			rc = ops->train_round(ops->user, *m, k, err);
		if (!rc && in_trunk && k <= K)
			rc = ops->trunk_save(ops->user, *m, k, rounds, err);
	}
	if (in_trunk)
		ops->trunk_end(ops->user);
	return rc;
}

int pbi_schedule_gradual(const pb_prune_plan *plan, const pb_target *goal,
			 long per_epoch, pb_model *ref, pb_model **m,
			 const pbi_schedule_ops *ops, pbi_rounds *rounds,
			 pb_error *err)
{
	const int n = plan->gradual_steps;
	long *step = malloc(sizeof *step * ((size_t)n + 1));
	double *amount = malloc(sizeof *amount * ((size_t)n + 1));
	pb_model *const live = *m;
	int rc = 0;

	if (!step || !amount) {
		free(step);
		free(amount);
		return pb_error_set(err, PB_ENOMEM, "out of memory");
	}
	pbi_gradual_points(plan, goal->amount, per_epoch, step, amount);
	for (int k = 0; k <= n && !rc; k++) {
		pb_target t;

		if ((rc = ops->train_until(ops->user, *m, step[k], err)))
			break;
		if (amount[k] <= 0.0)
			continue;
		pbi_scaled_target(goal, amount[k], &t);
		if ((rc = ops->prune(ops->user, m, &t, err)))
			break;
		if (*m != live) {
			rc = pb_error_set(err, PB_EINVAL, "schedule = gradual "
					  "prunes while the model trains, so "
					  "its pruner must keep the shapes "
					  "(weight granularity)");
			break;
		}
		rc = record_reached(ref, *m, goal->kind, rounds, err);
	}
	if (!rc)
		rc = ops->train_until(ops->user, *m, -1, err);
	free(step);
	free(amount);
	return rc;
}
