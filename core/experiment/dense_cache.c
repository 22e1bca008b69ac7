/* The dense-model cache: each seed's dense model is trained once and kept
 * under CACHE/dense-MODEL-sSEED-KEY.ckpt, KEY being a hash of everything
 * that defines it (model file contents, data, validation split, dense
 * recipe, seed), so any experiment on the same baseline reuses it. Files
 * are written under a name unique to this process and thread, then
 * renamed: parallel runs never see half a file, and two runs that train
 * the same model at once just replace one identical file by the other.
 * The curve CSV is renamed into place before the checkpoint, so a
 * checkpoint in the cache always has its curve. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <omp.h>

#include "experiment/experiment_impl.h"
#include "prunebench/checkpoint.h"
#include "train/train_points.h"
#include "base/util.h"

/* The model's name as a file name: letters, digits, '-', '_' and '.'
 * kept, anything else (a '/', a space) as '_', at most 48 characters,
 * never "." or "..". The key that follows it is what identifies the
 * file; the name is only for people reading the folder. */
static void safe_name(const char *name, char *out, size_t n)
{
	size_t k = 0;

	for (; *name && k + 1 < n && k < 48; name++) {
		unsigned char ch = (unsigned char)*name;

		out[k++] = isalnum(ch) || ch == '-' || ch == '_' || ch == '.' ?
			   (char)ch : '_';
	}
	out[k] = '\0';
	if (!k || !strcmp(out, ".") || !strcmp(out, ".."))
		snprintf(out, n, "model");
}

char *pbi_dense_base(const pb_experiment *e, const pb_model *m,
		     unsigned long seed)
{
	char key[17], name[64], file[128];

	pb_experiment_dense_key(e, seed, key);
	safe_name(pb_model_name(m), name, sizeof name);
	snprintf(file, sizeof file, "dense-%s-s%lu-%s", name, seed, key);
	return pbi_path_join(e->cache, file);
}

static char *with_suffix(const char *base, const char *suffix)
{
	size_t n = strlen(base) + strlen(suffix) + 1;
	char *p = malloc(n);

	if (p)
		snprintf(p, n, "%s%s", base, suffix);
	return p;
}

static int exists(const char *path)
{
	struct stat st;

	return !stat(path, &st) && S_ISREG(st.st_mode);
}

/* Trains seed's dense model into m, keeping the points of `saver` (may
 * have none). ckpt/csv NULL: only the first max_steps steps, to recover
 * points of a cached model (the same init and data order, so the same
 * prefix of the same run); nothing but the points is written. */
static int train_dense(const pb_experiment *e, const pb_splits *sp,
		       unsigned long seed, pb_model *m, const char *ckpt,
		       const char *csv, const char *tag, long max_steps,
		       pbi_point_saver *saver, FILE *log, pb_error *err)
{
	char label[96];
	pb_train_opts opts = { 0 };
	pb_train_hooks hooks = { 0 };
	gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
	int rc;

	if (!rng)
		return pb_error_set(err, PB_ENOMEM, "out of memory");
	/* Seeded by the seed alone, as `prunebench train --seed S`. */
	gsl_rng_set(rng, seed);
	snprintf(label, sizeof label, ckpt ? "dense-s%lu" :
		 "dense-s%lu (training points)", seed);
	/* The curve is renamed into place when training ends, before the
	 * checkpoint: a cached checkpoint always has its curve. */
	opts.csv_path = ckpt ? csv : NULL;
	opts.progress = log;
	opts.label = label;
	opts.max_steps = max_steps;
	hooks.user = saver;
	hooks.after_step = pbi_point_saver_step;
	opts.hooks = &hooks;
	rc = pb_model_init(m, rng, e->dense.init, err);
	if (!rc)
		rc = pbi_point_saver_begin(saver, m);
	if (!rc)
		rc = pb_train(m, &sp->train, &sp->val, &e->dense, rng, &opts,
			      NULL, err);
	if (!rc)
		rc = pbi_point_saver_end(saver);
	if (!rc && ckpt)
		rc = pb_checkpoint_save_tag(m, ckpt, tag, err);
	if (rc && ckpt)
		unlink(csv);
	gsl_rng_free(rng);
	return rc;
}

/* The points of steps[] whose files are missing or do not load into
 * `probe` (a model of the same shapes; truncated, corrupt), into miss[]:
 * treated like the dense checkpoint itself, an unusable file is made
 * again rather than failing the cells that need it. */
static int missing_points(const char *base, const char *tag,
			  const long *steps, int n, pb_model *probe, FILE *log,
			  long *miss, int *n_miss)
{
	*n_miss = 0;
	for (int i = 0; i < n; i++) {
		char *p = pbi_point_path(base, steps[i]);
		char *t = pbi_point_tag(tag, steps[i]);
		pb_error lerr = { 0 };

		if (!p || !t) {
			free(p);
			free(t);
			return -1;
		}
		if (!exists(p)) {
			miss[(*n_miss)++] = steps[i];
		} else if (pb_checkpoint_load_tag(probe, p, t, &lerr)) {
			if (log)
				fprintf(log, "dense cache: %s is unusable "
					"(%s); making it again\n", p, lerr.msg);
			miss[(*n_miss)++] = steps[i];
		}
		free(p);
		free(t);
	}
	return 0;
}

int pbi_dense_get(const pb_experiment *e, const pb_splits *sp,
		  unsigned long seed, const long *points, int n_points,
		  int load_only, FILE *log, pb_model **out, char **csv_out,
		  char **base_out, int *trained, pb_error *err)
{
	pb_model *m = NULL, *pm = NULL;
	char *base = NULL, *ckpt = NULL, *csv = NULL;
	long *miss = NULL;
	pbi_point_saver saver = { 0 };
	char key[17], tag[80];
	int rc, n_miss = 0;

	*out = NULL;
	*csv_out = NULL;
	*base_out = NULL;
	*trained = 0;
	/* Every file of the cache carries the key it was written for: a
	 * file copied over another's name is refused, not used. */
	pb_experiment_dense_key(e, seed, key);
	snprintf(tag, sizeof tag, "prunebench dense model %s seed %lu", key,
		 seed);
	if ((rc = pb_model_load(&m, e->model_path, err)))
		return rc;
	base = pbi_dense_base(e, m, seed);
	ckpt = base ? with_suffix(base, ".ckpt") : NULL;
	csv = base ? with_suffix(base, ".csv") : NULL;
	miss = malloc(((size_t)n_points + 1) * sizeof *miss);
	if (!ckpt || !csv || !miss) {
		rc = pb_error_set(err, PB_ENOMEM, "out of memory");
		goto out;
	}
	saver.base = base;
	saver.tag = tag;
	saver.err = err;
	if ((rc = pbi_mkdirs(e->cache, err))) {
		pb_error_prefix(err, "dense cache: ");
		goto out;
	}
	if (exists(ckpt)) {
		pb_error lerr = { 0 };
		if (!pb_checkpoint_load_tag(m, ckpt, tag, &lerr)) {
			if ((rc = pb_model_clone(&pm, m, err)))
				goto out;
			rc = missing_points(base, tag, points, n_points, pm,
					    log, miss, &n_miss);
			pb_model_free(pm);
			pm = NULL;
			if (rc) {
				rc = pb_error_set(err, PB_ENOMEM, "out of "
						  "memory");
				goto out;
			}
			if (!n_miss)
				goto out;
			if (load_only) {
				rc = pb_error_set(err, PB_ENOTFOUND, "the "
					"dense model of seed %lu is cached "
					"without %d of its training points",
					seed, n_miss);
				goto load_only;
			}
			/* Cached without the points a cell now asks for:
			 * run the start of the same training again. */
			if (log)
				fprintf(log, "dense seed %lu: cached, but "
					"without %d usable training point%s; "
					"training its first %ld steps again\n",
					seed, n_miss, n_miss > 1 ? "s" : "",
					miss[n_miss - 1]);
			saver.steps = miss;
			saver.n = n_miss;
			if (!(rc = pb_model_load(&pm, e->model_path, err)))
				rc = train_dense(e, sp, seed, pm, NULL, NULL,
						 NULL, miss[n_miss - 1] > 0 ?
						 miss[n_miss - 1] : 1, &saver,
						 log, err);
			pb_model_free(pm);
			if (rc)
				pb_error_prefix(err, "training points of the "
						"dense model of seed %lu: ",
						seed);
			goto out;
		}
		if (load_only) {
			rc = pb_error_set(err, lerr.code ? lerr.code :
					  PB_EFORMAT, "the dense model of seed "
					  "%lu in the cache is unusable (%s)",
					  seed, lerr.msg);
			goto load_only;
		}
		if (log)
			fprintf(log, "dense cache: %s is unusable (%s); "
				"training again\n", ckpt, lerr.msg);
	} else if (load_only) {
		rc = pb_error_set(err, PB_ENOTFOUND, "the dense model of seed "
				  "%lu is not in the cache (no %s)", seed,
				  ckpt);
		goto load_only;
	}
	saver.steps = points;
	saver.n = n_points;
	rc = train_dense(e, sp, seed, m, ckpt, csv, tag, 0, &saver, log,
			 err);
	if (rc)
		pb_error_prefix(err, "dense model of seed %lu: ", seed);
	else
		*trained = 1;
	goto out;
load_only:
	/* Not trained here: the caller says why and what to run. */
out:
	free(ckpt);
	free(miss);
	if (rc) {
		free(base);
		free(csv);
		pb_model_free(m);
		return rc;
	}
	*out = m;
	*csv_out = csv;
	*base_out = base;
	return 0;
}
