/* Shards of a sweep: what a cell costs, estimated from what it trains,
 * and a stable assignment of cells to shards balanced by that cost
 * (greedy longest-first). The rule is in experiment.h and
 * docs/cluster.md; the tests hold it to its bound. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "experiment/experiment_impl.h"

/* Every cell starts a process, reads the data and the dense model,
 * evaluates and measures: about a quarter of an epoch of VGG-S. */
#define CELL_OVERHEAD 0.25

/* The epochs one call of the plugin trains: its number options named
 * "*_epochs" (negative: the dense recipe's epochs), times its rounds
 * when it prunes a fraction `rate` of what is left per round. */
static double plugin_epochs(const pb_experiment *e, const pb_exp_method *m,
			    const pb_target *t)
{
	const pb_pruner *pr = pb_plugin_pruner(m->plugin);
	double epochs = 0.0, rounds = 1.0;
	static const char suffix[] = "_epochs";
	const size_t ls = sizeof suffix - 1;

	if (!pr)
		return 0.0;
	for (int i = 0; i < pr->n_options; i++) {
		const pb_pruner_option *d = &pr->options[i];
		size_t ln = d->name ? strlen(d->name) : 0;
		double v;

		if (d->type != PB_OPT_INT && d->type != PB_OPT_DOUBLE)
			continue;
		v = pb_options_double(m->options, d->name);
		if (ln > ls && !strcmp(d->name + ln - ls, suffix))
			epochs += v < 0 ? e->dense.epochs : v;
		else if (!strcmp(d->name, "rate") && v > 0 && v < 1 &&
			 t->kind == PB_TARGET_SPARSITY && t->amount > 0 &&
			 t->amount < 1)
			/* Less a hair, so that a whole number of rounds
			 * computed in floating point is not taken for one
			 * more on another machine's libm. */
			rounds = ceil(log(1.0 - t->amount) / log(1.0 - v) -
				      1e-9);
	}
	return epochs * (rounds > 1.0 ? rounds : 1.0);
}

double pb_cell_cost(const pb_experiment *e, const pb_cell *c)
{
	const pb_exp_method *m = c->method_index >= 0 &&
				 c->method_index < e->n_methods ?
				 &e->methods[c->method_index] : NULL;
	const double F = e->finetune.epochs > 0 ? e->finetune.epochs : 0.0;
	const double D = e->dense.epochs > 0 ? e->dense.epochs : 0.0;
	const pb_target *t;
	double P, calls = 1.0, train;

	if (c->kind == PB_CELL_DENSE || !m)
		return CELL_OVERHEAD + (c->kind == PB_CELL_DENSE_FT ? F : 0.0);
	t = &m->targets[c->target_index];
	P = 0.0;
	if (m->plan.schedule == PB_PRUNE_ITERATIVE && m->plan.rounds > 1) {
		calls = m->plan.rounds;
		P += (m->plan.rounds - 1) * (m->plan.round_epochs >= 0 ?
					     m->plan.round_epochs : F);
	}
	P += calls * plugin_epochs(e, m, t);
	if (c->kind == PB_CELL_SCRATCH) {
		train = P + D;
	} else if (c->kind == PB_CELL_SCRATCH_B) {
		double cap = m->scratch_b_cap > 0 ? m->scratch_b_cap : 2.0;
		double f = t->amount < 1 ? 1.0 / (1.0 - t->amount) : cap;

		train = P + D * (f < 1.0 ? 1.0 : f > cap ? cap : f);
	} else {
		train = (P + F) * (m->matched ? 2.0 : 1.0);
	}
	return CELL_OVERHEAD + train;
}

typedef struct by_cost {
	double cost;
	const char *id;
	int index;
} by_cost;

/* Decreasing cost, then increasing id: a total order on distinct ids. */
static int cmp_cost(const void *pa, const void *pb)
{
	const by_cost *a = pa, *b = pb;

	if (a->cost != b->cost)
		return a->cost > b->cost ? -1 : 1;
	return strcmp(a->id, b->id);
}

int pb_experiment_shards(const pb_experiment *e, const pb_cell *cells,
			 int n, int n_shards, int *shard_of, double *load,
			 pb_error *err)
{
	by_cost *order;
	double *sum;

	if (n_shards < 1)
		return pb_error_set(err, PB_EINVAL, "%d shards: there must be "
				    "at least one", n_shards);
	order = malloc(sizeof *order * (size_t)(n > 0 ? n : 1));
	sum = calloc((size_t)n_shards, sizeof *sum);
	if (!order || !sum) {
		free(order);
		free(sum);
		return pb_error_set(err, PB_ENOMEM, "out of memory (shards)");
	}
	for (int i = 0; i < n; i++)
		order[i] = (by_cost){ pb_cell_cost(e, &cells[i]), cells[i].id,
				      i };
	qsort(order, (size_t)n, sizeof *order, cmp_cost);
	for (int i = 0; i < n; i++) {
		int best = 0;

		for (int s = 1; s < n_shards; s++)
			if (sum[s] < sum[best])
				best = s;
		sum[best] += order[i].cost;
		shard_of[order[i].index] = best;
	}
	if (load)
		memcpy(load, sum, sizeof *sum * (size_t)n_shards);
	free(order);
	free(sum);
	return 0;
}
