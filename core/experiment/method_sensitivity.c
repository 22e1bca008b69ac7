/* A method whose per-layer amounts come from a sensitivity scan
 * (`layers = sensitivity:D` in its [prune.NAME] section): its keys, its
 * scan kept in the cache beside the dense model it was made on, and the
 * targets the scan gives it.
 *
 * The scan is part of the cell's definition by what defines it (plugin,
 * options, levels, D; the dense model through the cell's dense key), not
 * by its numbers, so the cell id is known before anything runs. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/file.h"
#include "base/ini_doc.h"
#include "base/util.h"
#include "experiment/experiment_impl.h"
#include "prunebench/target.h"

static const double default_levels[] = {
	0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9
};

int pbi_parse_sensitivity_key(pbi_ini_doc *c, const pbi_ini_section *s,
			      const pbi_ini_key *k, pb_exp_method *m)
{
	pb_error perr = { 0 };
	double d;

	if (!strcmp(k->name, "sensitivity_levels")) {
		if (pb_sensitivity_parse_levels(k->value, m->sens_levels,
						&m->n_sens_levels, &perr))
			return pbi_ini_err(c, PB_EPARSE, k->line, "[%s] "
					   "sensitivity_%s", s->name,
					   perr.msg);
		return 0;
	}
	if (strncmp(k->value, "sensitivity:", 12) ||
	    pbi_parse_double(k->value + 12, &d) || !(d >= 0.0) || d > 100.0)
		return pbi_ini_err(c, PB_EPARSE, k->line, "[%s] layers = '%s': "
				   "expected sensitivity:D, D the most "
				   "validation top-1 (in points, e.g. 1.0) a "
				   "layer may lose in the sensitivity scan",
				   s->name, k->value);
	m->sens_drop = d;
	return 0;
}

int pbi_check_sensitivity(pbi_ini_doc *c, const pbi_ini_section *s,
			  pb_exp_method *m)
{
	if (m->sens_drop < 0) {
		for (int i = 0; i < s->n_keys; i++)
			if (!strcmp(s->keys[i].name, "sensitivity_levels"))
				return pbi_ini_err(c, PB_EPARSE,
						   s->keys[i].line, "[%s] "
						   "sensitivity_levels without "
						   "layers = sensitivity:D",
						   s->name);
		return 0;
	}
	for (int i = 0; i < s->n_keys; i++)
		if (!strncmp(s->keys[i].name, "layer.", 6) ||
		    (!strcmp(s->keys[i].name, "scope") &&
		     strcmp(s->keys[i].value, "layer")))
			return pbi_ini_err(c, PB_EPARSE, s->keys[i].line,
					   "[%s] %s: layers = sensitivity:D "
					   "sets every layer's amount itself "
					   "(layer scope); remove this key",
					   s->name, s->keys[i].name);
	if (!m->n_sens_levels) {
		m->n_sens_levels = (int)(sizeof default_levels /
					 sizeof *default_levels);
		memcpy(m->sens_levels, default_levels, sizeof default_levels);
	}
	m->scope = PB_SCOPE_LAYER;
	for (int t = 0; t < m->n_targets; t++)
		m->targets[t].scope = PB_SCOPE_LAYER;
	/* The table says where the amounts came from. */
	if (!m->label[0])
		snprintf(m->label, sizeof m->label, "%.30s (sensitivity, %g pt)",
			 m->name, m->sens_drop);
	return 0;
}

/* What defines the scan: the dense model (its cache key), the plugin,
 * its version and options, the levels. */
static void scan_key(const pb_experiment *e, const pb_exp_method *m,
		     unsigned long seed, char key[17])
{
	const pb_pruner *pr = pb_plugin_pruner(m->plugin);
	char dense[17], opts[1024], buf[2048];
	int k;
	uint64_t h;

	pb_experiment_dense_key(e, seed, dense);
	pb_options_format(m->options, opts, sizeof opts);
	k = snprintf(buf, sizeof buf, "sens v1|dense=%s|plugin=%s|version=%s|"
		     "options=%s|eval_batch=%d|levels=", dense, pr->name,
		     pr->version ? pr->version : "", opts,
		     e->dense.eval_batch);
	for (int i = 0; i < m->n_sens_levels && k > 0 &&
	     (size_t)k < sizeof buf; i++)
		k += snprintf(buf + k, sizeof buf - (size_t)k, "%.17g,",
			      m->sens_levels[i]);
	if (k < 0)
		k = 0;
	h = pb_fnv64(PB_FNV64_INIT, buf, (size_t)k < sizeof buf ?
		     (size_t)k : sizeof buf - 1);
	snprintf(key, 17, "%016llx", (unsigned long long)h);
}

static int write_scan(const char *path, const pb_sensitivity *s,
		      const char *key, pb_error *err)
{
	pbi_atomic a;
	int rc;

	if ((rc = pbi_atomic_begin(&a, path, "sensitivity scan", err)))
		return rc;
	if (pb_sensitivity_write_csv(s, key, a.f)) {
		pbi_atomic_discard(&a);
		return pb_error_set(err, PB_EIO, "%s: write failed (disk "
				    "full?)", path);
	}
	return pbi_atomic_commit(&a, err);
}

static int file_exists(const char *path)
{
	struct stat st;

	return !stat(path, &st) && S_ISREG(st.st_mode);
}

int pbi_sens_scan(const pb_experiment *e, const pb_exp_method *m,
		  unsigned long seed, const pb_model *dense,
		  const pb_splits *sp, int threads, FILE *log,
		  pb_sensitivity **out, pb_error *err)
{
	const pb_pruner *pr = pb_plugin_pruner(m->plugin);
	char key[17], *base = pbi_dense_base(e, dense, seed), *cache = NULL;
	char *copy = NULL, *dir = NULL, stream[160];
	pb_error rerr = { 0 };
	int rc;

	*out = NULL;
	scan_key(e, m, seed, key);
	if (!base || asprintf(&cache, "%s.sens-%s-%s.csv", base, pr->name,
			      key) < 0) {
		cache = NULL;
		rc = pb_error_set(err, PB_ENOMEM, "out of memory");
		goto out;
	}
	/* A file of another key (copied over this name) is scanned again. */
	if (file_exists(cache) &&
	    !pb_sensitivity_read_csv(cache, key, out, &rerr)) {
		rc = 0;
	} else {
		pb_sens_opts o = {
			.pruner = pr, .options = m->options,
			.n_levels = m->n_sens_levels,
			.levels = m->sens_levels, .splits = sp,
			.recipe = &e->finetune,
			.eval_batch = e->dense.eval_batch, .threads = threads,
			.stream = stream, .progress = log,
		};

		snprintf(stream, sizeof stream, "%s|sens|%s|%lu", e->name,
			 m->name, seed);
		if (log)
			fprintf(log, "sensitivity scan of %s (seed %lu): %d "
				"levels per layer -> %s\n", m->name, seed,
				m->n_sens_levels, cache);
		if ((rc = pb_sensitivity_scan(dense, &o, out, err)) ||
		    (rc = write_scan(cache, *out, key, err)))
			goto out;
	}
	/* For the plots next to the table. */
	if (asprintf(&dir, "%s/sensitivity", e->output) < 0 ||
	    asprintf(&copy, "%s/%s-s%lu.csv", dir, m->name, seed) < 0) {
		rc = pb_error_set(err, PB_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = pbi_mkdirs(dir, err)))
		goto out;
	rc = write_scan(copy, *out, key, err);
out:
	if (rc) {
		pb_sensitivity_free(*out);
		*out = NULL;
	}
	free(base);
	free(cache);
	free(dir);
	free(copy);
	return rc;
}

int pbi_sens_target(const pb_experiment *e, const pb_exp_method *m, int t,
		    unsigned long seed, const pb_model *dense,
		    const pb_splits *sp, int threads, FILE *log,
		    pb_target *out, pb_error *err)
{
	pb_sensitivity *s = NULL;
	double reached;
	int rc;

	if ((rc = pbi_sens_scan(e, m, seed, dense, sp, threads, log, &s, err)))
		return rc;
	rc = pb_sensitivity_amounts(s, dense, m->sens_drop, &m->targets[t],
				    out, &reached, err);
	if (!rc && log) {
		fprintf(log, "layers = sensitivity:%g for %s (dense validation "
			"top-1 %.2f%%), reaching %s=%.4f:\n", m->sens_drop,
			m->target_text[t], pb_sens_acc(s, 0, -1),
			pb_target_kind_name(out->kind), reached);
		for (int i = 0; i < out->n_overrides; i++)
			fprintf(log, "  layer.%s = %.4f\n",
				out->overrides[i].layer,
				out->overrides[i].amount);
		fflush(log);
	}
	pb_sensitivity_free(s);
	return rc;
}
