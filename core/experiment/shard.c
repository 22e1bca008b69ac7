/* Shards of a sweep: what a cell costs (its epochs, pb_cell_epochs),
 * and a stable assignment of cells to shards balanced by that cost
 * (greedy longest-first). The rule is in experiment.h and
 * docs/cluster.md; the tests hold it to its bound. */
#include <stdlib.h>
#include <string.h>

#include "experiment/experiment_impl.h"

/* Every cell starts a process, reads the data and the dense model,
 * evaluates and measures: about a quarter of an epoch of VGG-S. */
#define CELL_OVERHEAD 0.25

double pb_cell_cost(const pb_experiment *e, const pb_cell *c)
{
	pb_epochs x;

	pb_cell_epochs(e, c, &x);
	return CELL_OVERHEAD + pb_cell_epochs_total(&x) - x.dense;
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
