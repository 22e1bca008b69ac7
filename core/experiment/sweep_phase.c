/* The sweep in phases and shards, for running one experiment as many
 * tasks at once (docs/cluster.md): which cells a run selects (--only,
 * --seed, --shard), the dense phase that trains each seed's dense model
 * once, and the cells phase that only loads them, so that tasks wait for
 * their dense model instead of racing to train it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "experiment/experiment_impl.h"
#include "experiment/sweep.h"
#include "prunebench/version.h"
#include "train/train_points.h"

static int seed_index(const pb_experiment *e, unsigned long seed)
{
	for (int i = 0; i < e->n_seeds; i++)
		if (e->seeds[i] == seed)
			return i;
	return -1;
}

int pbi_sweep_selected(const pbi_sweep *S, const pb_cell *c)
{
	const pb_run_opts *o = S->o;

	if (o->only && strcmp(o->only, c->method))
		return 0;
	if (o->has_seed && c->seed != o->seed)
		return 0;
	if (o->n_shards <= 0)
		return 1;
	/* The dense phase shards seeds (each has one dense model, all of
	 * one cost); the cells phase shards cells. */
	if (!S->shard_of)
		return seed_index(S->e, c->seed) % o->n_shards == o->shard;
	return S->shard_of[c - S->cells] == o->shard;
}

int pbi_sweep_shards(pbi_sweep *S, const pb_cell *cells, int n,
		     pb_error *err)
{
	const pb_run_opts *o = S->o;
	const pb_experiment *e = S->e;

	S->seen = calloc((size_t)(n > 0 ? n : 1), sizeof *S->seen);
	if (!S->seen)
		return pb_error_set(err, PB_ENOMEM, "out of memory");
	if (o->phase < PB_PHASE_ALL || o->phase > PB_PHASE_CELLS)
		return pb_error_set(err, PB_EINVAL, "phase %d: not all, dense "
				    "or cells", o->phase);
	if (o->has_seed && seed_index(e, o->seed) < 0) {
		char seeds[256];
		size_t k = 0;

		seeds[0] = '\0';
		for (int i = 0; i < e->n_seeds && k < sizeof seeds - 24; i++)
			k += (size_t)snprintf(seeds + k, sizeof seeds - k,
					      " %lu", e->seeds[i]);
		return pb_error_set(err, PB_EINVAL, "--seed %lu: not a seed of "
				    "%s (its seeds:%s)", o->seed, e->path,
				    seeds);
	}
	if (o->n_shards < 0 || (o->n_shards > 0 &&
				(o->shard < 0 || o->shard >= o->n_shards)))
		return pb_error_set(err, PB_EINVAL, "shard %d of %d: shards "
				    "are numbered 0 to %d", o->shard,
				    o->n_shards, o->n_shards - 1);
	if (o->n_shards <= 0 || o->phase == PB_PHASE_DENSE)
		return 0;
	S->shard_of = malloc(sizeof *S->shard_of * (size_t)(n > 0 ? n : 1));
	if (!S->shard_of)
		return pb_error_set(err, PB_ENOMEM, "out of memory");
	return pb_experiment_shards(e, cells, n, o->n_shards, S->shard_of,
				    NULL, err);
}

static int exists(const char *path)
{
	struct stat st;

	return !stat(path, &st) && S_ISREG(st.st_mode);
}

/* The file of seed's dense model, or of its training point `step` (-1:
 * the model itself), when missing: malloc-ed into *missing. */
static int find_missing(const pbi_sweep *S, const pb_model *m,
			unsigned long seed, char **missing)
{
	char *base = pbi_dense_base(S->e, m, seed), *p;

	*missing = NULL;
	if (!base)
		return PB_ENOMEM;
	if (asprintf(&p, "%s.ckpt", base) < 0) {
		free(base);
		return PB_ENOMEM;
	}
	for (int i = 0; exists(p) && i < S->n_points; i++) {
		free(p);
		if (!(p = pbi_point_path(base, S->points[i]))) {
			free(base);
			return PB_ENOMEM;
		}
	}
	free(base);
	if (exists(p))
		free(p);
	else
		*missing = p;
	return 0;
}

int pbi_sweep_dense_ready(pbi_sweep *S, const pb_cell *cells,
			  const int *todo, int n_todo, pb_error *err)
{
	const pb_experiment *e = S->e;
	pb_model *m = NULL;
	int rc;

	/* The model's name is part of the cache's file names. */
	if ((rc = pb_model_load(&m, e->model_path, err)))
		return rc;
	for (int s = 0; s < e->n_seeds && !rc; s++) {
		int used = 0;
		char *missing;

		for (int i = 0; i < n_todo && !used; i++)
			used = cells[todo[i]].seed == e->seeds[s];
		if (!used)
			continue;
		if (find_missing(S, m, e->seeds[s], &missing)) {
			rc = pb_error_set(err, PB_ENOMEM, "out of memory");
		} else if (missing) {
			rc = pb_error_set(err, PB_ENOTFOUND, "the dense model "
				"of seed %lu is not in the cache (no %s): the "
				"cells phase trains no dense model, so that "
				"tasks running at once never train the same "
				"one; run the dense phase first: prunebench "
				"run %s --phase dense --seed %lu (the cache "
				"must be a folder every task sees, and its key "
				"includes the BLAS kernel, here %s: on "
				"machines of several CPU types, set "
				"OPENBLAS_CORETYPE alike for all tasks)",
				e->seeds[s], missing, e->path, e->seeds[s],
				pb_blas_name());
			free(missing);
		}
	}
	pb_model_free(m);
	return rc;
}

int pbi_sweep_dense_done(pbi_sweep *S, pb_error *err)
{
	const pb_experiment *e = S->e;

	for (int s = 0; s < e->n_seeds; s++)
		if (S->dense_rc && S->dense_rc[s])
			return pb_error_set(err, S->dense_rc[s], "%s",
					    S->dense_msg[s]);
	return 0;
}
