/* Sensitivity scans and the per-layer amounts derived from them
 * (definitions in prunebench/sensitivity.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "base/blas.h"
#include "base/util.h"
#include "experiment/experiment_impl.h"
#include "prune/prune_impl.h"
#include "prunebench/sensitivity.h"

double pb_sens_acc(const pb_sensitivity *s, int l, int j)
{
	long c = j < 0 ? s->dense_correct : s->layers[l].correct[j];

	return s->total > 0 ? 100.0 * (double)c / (double)s->total : NAN;
}

void pb_sensitivity_free(pb_sensitivity *s)
{
	if (!s)
		return;
	free(s->layers);
	free(s);
}

int pb_sensitivity_parse_levels(const char *text, double *levels, int *n,
				pb_error *err)
{
	char buf[1024], *save = NULL, *tok;

	*n = 0;
	if (strlen(text) >= sizeof buf)
		return pb_error_set(err, PB_EPARSE, "levels '%s': too long",
				    text);
	strcpy(buf, text);
	for (tok = strtok_r(buf, " \t,", &save); tok;
	     tok = strtok_r(NULL, " \t,", &save)) {
		double v;

		if (*n == PB_SENS_LEVELS_MAX)
			return pb_error_set(err, PB_EPARSE, "levels: at most "
					    "%d", PB_SENS_LEVELS_MAX);
		if (pbi_parse_double(tok, &v) || !(v > 0.0) || !(v < 1.0))
			return pb_error_set(err, PB_EPARSE, "levels: '%s' is "
					    "not an amount in (0, 1); write "
					    "e.g. 0.1,0.2,0.5,0.9", tok);
		if (*n && !(v > levels[*n - 1]))
			return pb_error_set(err, PB_EPARSE, "levels: %g comes "
					    "after %g; give them increasing",
					    v, levels[*n - 1]);
		levels[(*n)++] = v;
	}
	if (!*n)
		return pb_error_set(err, PB_EPARSE, "levels: none given; "
				    "write e.g. 0.1,0.2,0.5,0.9");
	return 0;
}

/* ---- the scan ----------------------------------------------------------------- */

/* The layers a pruner of this granularity can prune one at a time. */
static int scan_layers(const pb_model *m, pb_granularity g,
		       pb_sensitivity *s, pb_error *err)
{
	pb_channel_group *groups = NULL;
	int n_groups = 0, rc;

	s->layers = calloc((size_t)pb_model_n_layers(m) + 1,
			   sizeof *s->layers);
	if (!s->layers)
		return pb_error_set(err, PB_ENOMEM, "out of memory (scan)");
	if (g == PB_GRANULARITY_WEIGHT) {
		for (int i = 0; i < pb_model_n_params((pb_model *)m); i++) {
			const pb_param *p = pb_model_param((pb_model *)m, i);
			pb_sens_layer *L;

			if (p->kind != PB_PARAM_WEIGHT)
				continue;
			L = &s->layers[s->n_layers++];
			snprintf(L->name, sizeof L->name, "%s",
				 pb_model_layer(m, p->layer)->name);
			L->size = p->n;
		}
		return 0;
	}
	if ((rc = pbi_groups_derive(m, &groups, &n_groups, err)))
		return rc;
	for (int k = 0; k < n_groups; k++) {
		pb_sens_layer *L;

		if (!groups[k].prunable || !groups[k].n_producers)
			continue;
		L = &s->layers[s->n_layers++];
		snprintf(L->name, sizeof L->name, "%s",
			 pb_model_layer(m, groups[k].producers[0])->name);
		L->size = (uint64_t)groups[k].n_channels;
	}
	free(groups);
	return 0;
}

/* One job: layer l pruned alone to level j, evaluated on validation. */
static int scan_job(const pb_model *dense, const pb_sens_opts *o,
		    const pb_sensitivity *s, int l, int j, long *correct,
		    pb_error *err)
{
	pb_target t = { 0 };
	pb_prune_setup su = { 0 };
	pb_model *p = NULL;
	gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
	char seed[160];
	double acc, loss;
	int rc;

	if (!rng)
		return pb_error_set(err, PB_ENOMEM, "out of memory (scan)");
	snprintf(seed, sizeof seed, "%s|%s|%.17g", o->stream ? o->stream :
		 "sens", s->layers[l].name, o->levels[j]);
	gsl_rng_set(rng, pbi_seed_from(seed));
	t.kind = s->granularity == PB_GRANULARITY_WEIGHT ?
		 PB_TARGET_SPARSITY : PB_TARGET_CHANNELS;
	t.scope = PB_SCOPE_LAYER;
	t.n_overrides = 1;
	snprintf(t.overrides[0].layer, sizeof t.overrides[0].layer, "%s",
		 s->layers[l].name);
	t.overrides[0].amount = o->levels[j];
	su = (pb_prune_setup){ .pruner = o->pruner, .options = o->options,
			       .target = &t, .finetune = o->recipe,
			       .dense = o->recipe, .splits = o->splits,
			       .rng = rng };
	rc = pb_prune_run(dense, &su, &p, NULL, err);
	if (!rc)
		rc = pb_evaluate(p, &o->splits->val, o->eval_batch > 0 ?
				 o->eval_batch : 500, &acc, &loss, err);
	if (!rc)
		*correct = lround(acc * (double)o->splits->val.n);
	else
		pb_error_prefix(err, "sensitivity of %s at %g: ",
				s->layers[l].name, o->levels[j]);
	pb_model_free(p);
	gsl_rng_free(rng);
	return rc;
}

int pb_sensitivity_scan(const pb_model *dense, const pb_sens_opts *o,
			pb_sensitivity **out, pb_error *err)
{
	pb_sensitivity *s = calloc(1, sizeof *s);
	pb_model *d = NULL;
	int threads = o->threads > 0 ? o->threads : omp_get_num_procs();
	int n_jobs, failed = 0, done_layers = 0, *left = NULL, rc;
	pb_error first = { 0 };
	double acc, loss, t0 = pbi_now();

	*out = NULL;
	if (!s)
		return pb_error_set(err, PB_ENOMEM, "out of memory (scan)");
	if (!o->pruner || !o->splits || o->splits->val.n == 0 ||
	    o->n_levels < 1 || o->n_levels > PB_SENS_LEVELS_MAX) {
		free(s);
		return pb_error_set(err, PB_EINVAL, "a sensitivity scan needs "
				    "a plugin, 1 to %d levels and a "
				    "validation split (val_size > 0)",
				    PB_SENS_LEVELS_MAX);
	}
	snprintf(s->plugin, sizeof s->plugin, "%s", o->pruner->name);
	s->granularity = o->pruner->granularity;
	s->n_levels = o->n_levels;
	memcpy(s->levels, o->levels, sizeof *s->levels * (size_t)o->n_levels);
	s->total = o->splits->val.n;
	if ((rc = scan_layers(dense, s->granularity, s, err)) ||
	    (rc = pb_model_clone(&d, dense, err)) ||
	    (rc = pb_evaluate(d, &o->splits->val, o->eval_batch > 0 ?
			      o->eval_batch : 500, &acc, &loss, err)))
		goto out;
	s->dense_correct = lround(acc * (double)s->total);
	n_jobs = s->n_layers * s->n_levels;
	left = malloc(sizeof *left * (size_t)(s->n_layers + 1));
	if (!left) {
		rc = pb_error_set(err, PB_ENOMEM, "out of memory (scan)");
		goto out;
	}
	for (int l = 0; l < s->n_layers; l++)
		left[l] = s->n_levels;
	if (threads > n_jobs)
		threads = n_jobs > 0 ? n_jobs : 1;
	/* Each job alone on its thread: one level of parallelism. */
	pbi_blas_set_threads(1);
#pragma omp parallel for schedule(dynamic) num_threads(threads)
	for (int k = 0; k < n_jobs; k++) {
		int l = k / s->n_levels, j = k % s->n_levels, stop;
		pb_error e = { 0 };
		long c = 0;

#pragma omp critical(pb_sens_fail)
		stop = failed;
		if (stop)
			continue;
		omp_set_num_threads(1);
		if (scan_job(dense, o, s, l, j, &c, &e)) {
#pragma omp critical(pb_sens_fail)
			if (!failed++)
				first = e;
			continue;
		}
		s->layers[l].correct[j] = c;
#pragma omp critical(pb_sens_progress)
		if (!--left[l] && o->progress) {
			done_layers++;
			fprintf(o->progress, "sensitivity: %s done (%d/%d "
				"layers, %.0f s)\n", s->layers[l].name,
				done_layers, s->n_layers, pbi_now() - t0);
			fflush(o->progress);
		}
	}
	pbi_blas_set_threads(threads);
	if (failed)
		rc = pb_error_set(err, first.code ? first.code : PB_EINVAL,
				  "%s", first.msg);
out:
	free(left);
	pb_model_free(d);
	if (rc) {
		pb_sensitivity_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

/* ---- the CSV ---------------------------------------------------------------- */

/* The shortest text that reads back as v: 0.3, not 0.29999999999999999. */
static void fmt_exact(char *buf, size_t n, double v)
{
	for (int prec = 6; prec <= 17; prec++) {
		snprintf(buf, n, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			return;
	}
}

int pb_sensitivity_write_csv(const pb_sensitivity *s, const char *key,
			     FILE *f)
{
	double dense = pb_sens_acc(s, 0, -1);

	fprintf(f, "# prunebench sensitivity scan: each layer pruned alone, "
		"validation top-1 without fine-tuning\n");
	if (key)
		fprintf(f, "# key %s\n", key);
	fprintf(f, "# plugin %s (%s)\n# dense validation top-1 %.2f%% "
		"(%ld of %ld)\n", s->plugin,
		pb_granularity_name(s->granularity), dense, s->dense_correct,
		s->total);
	fprintf(f, "layer,size,amount,correct,total,val_top1_pct,drop_pt\n");
	for (int l = 0; l < s->n_layers; l++) {
		const pb_sens_layer *L = &s->layers[l];

		fprintf(f, "%s,%llu,0,%ld,%ld,%.2f,0.00\n", L->name,
			(unsigned long long)L->size, s->dense_correct,
			s->total, dense);
		for (int j = 0; j < s->n_levels; j++) {
			char lv[32];

			fmt_exact(lv, sizeof lv, s->levels[j]);
			fprintf(f, "%s,%llu,%s,%ld,%ld,%.2f,%.2f\n", L->name,
				(unsigned long long)L->size, lv, L->correct[j],
				s->total, pb_sens_acc(s, l, j),
				dense - pb_sens_acc(s, l, j));
		}
	}
	return ferror(f) ? -1 : 0;
}

static int csv_fail(pb_error *err, const char *path, int line,
		    const char *what)
{
	return pb_error_set(err, PB_EFORMAT, "%s:%d: %s; not a sensitivity "
			    "scan written by prunebench (run the scan again)",
			    path, line, what);
}

/* One data line into s; the first line of a layer (amount 0) starts it. */
static int csv_line(pb_sensitivity *s, char *line, const char *path,
		    int lineno, pb_error *err)
{
	char *f[8], *save = NULL, *tok;
	int nf = 0, j;
	double amount;
	long correct, total;
	unsigned long long size;
	pb_sens_layer *L;

	for (tok = strtok_r(line, ",\r\n", &save); tok && nf < 8;
	     tok = strtok_r(NULL, ",\r\n", &save))
		f[nf++] = tok;
	if (nf != 7 || pbi_parse_double(f[2], &amount) ||
	    pbi_parse_long(f[3], &correct) || pbi_parse_long(f[4], &total) ||
	    sscanf(f[1], "%llu", &size) != 1 || strlen(f[0]) >= 48 ||
	    correct < 0 || total <= 0 || correct > total)
		return csv_fail(err, path, lineno, "malformed line");
	if (amount == 0.0) {
		if (s->n_layers && s->n_levels &&
		    s->n_levels != s->layers[s->n_layers - 1].correct[
			    PB_SENS_LEVELS_MAX - 1])
			return csv_fail(err, path, lineno, "a layer has "
					"fewer levels than the first");
		L = realloc(s->layers, sizeof *L * (size_t)(s->n_layers + 1));
		if (!L)
			return pb_error_set(err, PB_ENOMEM, "out of memory");
		s->layers = L;
		L = &s->layers[s->n_layers++];
		memset(L, 0, sizeof *L);
		snprintf(L->name, sizeof L->name, "%s", f[0]);
		L->size = size;
		s->dense_correct = correct;
		s->total = total;
		return 0;
	}
	if (!s->n_layers || strcmp(s->layers[s->n_layers - 1].name, f[0]) ||
	    total != s->total)
		return csv_fail(err, path, lineno, "a level without its "
				"layer's dense line");
	L = &s->layers[s->n_layers - 1];
	/* The count of levels read so far sits in the spare last slot. */
	j = (int)L->correct[PB_SENS_LEVELS_MAX - 1];
	if (s->n_layers == 1) {
		if (j >= PB_SENS_LEVELS_MAX - 1 ||
		    (j && !(amount > s->levels[j - 1])))
			return csv_fail(err, path, lineno, "levels out of "
					"order");
		s->levels[j] = amount;
		s->n_levels = j + 1;
	} else if (j >= s->n_levels || s->levels[j] != amount) {
		return csv_fail(err, path, lineno, "levels differ from the "
				"first layer's");
	}
	L->correct[j] = correct;
	L->correct[PB_SENS_LEVELS_MAX - 1] = j + 1;
	return 0;
}

int pb_sensitivity_read_csv(const char *path, const char *key,
			    pb_sensitivity **out, pb_error *err)
{
	FILE *f = fopen(path, "r");
	pb_sensitivity *s;
	char line[1024];
	int lineno = 0, rc = 0, key_ok = key == NULL, header = 0;

	*out = NULL;
	if (!f)
		return pb_error_set(err, PB_EIO, "cannot open %s: %s", path,
				    strerror(errno));
	if (!(s = calloc(1, sizeof *s))) {
		fclose(f);
		return pb_error_set(err, PB_ENOMEM, "out of memory");
	}
	while (!rc && fgets(line, sizeof line, f)) {
		char name[64];

		lineno++;
		if (line[0] == '#') {
			size_t n = strcspn(line + 1, "\r\n");

			line[1 + n] = '\0';
			if (key && !strncmp(line, "# key ", 6))
				key_ok = !strcmp(line + 6, key);
			else if (sscanf(line, "# plugin %63s", name) == 1)
				snprintf(s->plugin, sizeof s->plugin, "%s",
					 name);
			if (strstr(line, "(channel)"))
				s->granularity = PB_GRANULARITY_CHANNEL;
			continue;
		}
		if (!header) {
			header = 1;
			if (strncmp(line, "layer,size,amount,", 18))
				rc = csv_fail(err, path, lineno, "no header");
			continue;
		}
		rc = csv_line(s, line, path, lineno, err);
	}
	fclose(f);
	if (!rc && !key_ok)
		rc = pb_error_set(err, PB_EMISMATCH, "%s: a scan of something "
				  "else (its key is not %s)", path, key);
	if (!rc && (!s->n_layers || !s->n_levels))
		rc = csv_fail(err, path, lineno, "no layers or no levels");
	for (int l = 0; !rc && l < s->n_layers; l++) {
		if (s->layers[l].correct[PB_SENS_LEVELS_MAX - 1] != s->n_levels)
			rc = csv_fail(err, path, lineno, "a layer has fewer "
				      "levels than the first");
		s->layers[l].correct[PB_SENS_LEVELS_MAX - 1] = 0;
	}
	if (rc) {
		pb_sensitivity_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

/* ---- amounts ---------------------------------------------------------------- */

/* Per scanned layer, the largest level before the first one that costs
 * more than max_drop points. */
static void drop_amounts(const pb_sensitivity *s, double max_drop,
			 double *a)
{
	const double dense = pb_sens_acc(s, 0, -1);

	for (int l = 0; l < s->n_layers; l++) {
		a[l] = 0.0;
		for (int j = 0; j < s->n_levels; j++) {
			/* A hair of slack: drops are differences of
			 * percentages of whole images. */
			if (dense - pb_sens_acc(s, l, j) > max_drop + 1e-9)
				break;
			a[l] = s->levels[j];
		}
	}
}

/* What amounts a[] reach of kind on m, rounded as the selection rounds
 * (weights: round(a n) per tensor, at most n - 1; channels: n - round(a
 * n) kept, at least 1). */
typedef struct goal_ctx {
	const pb_sensitivity *s;
	const pb_model *m;
	pb_target_kind kind;
	pb_channel_group *groups;
	int n_groups;
	int *layer_group;      /* scanned layer -> group */
	int *kept;             /* per group */
} goal_ctx;

static double reached_of(goal_ctx *g, const double *a)
{
	const pb_sensitivity *s = g->s;

	if (s->granularity == PB_GRANULARITY_WEIGHT) {
		double zeros = 0.0, total = 0.0;

		for (int l = 0; l < s->n_layers; l++) {
			double n = (double)s->layers[l].size;
			double z = (double)lround(a[l] * n);

			zeros += z > n - 1 ? n - 1 : z;
			total += n;
		}
		return total > 0 ? zeros / total : 0.0;
	}
	for (int k = 0; k < g->n_groups; k++)
		g->kept[k] = g->groups[k].n_channels;
	for (int l = 0; l < s->n_layers; l++) {
		int k = g->layer_group[l], n = g->groups[k].n_channels;
		int kept = n - (int)lround(a[l] * n);

		g->kept[k] = kept < 1 ? 1 : kept;
	}
	if (g->kind == PB_TARGET_CHANNELS) {
		double removed = 0.0, total = 0.0;

		for (int k = 0; k < g->n_groups; k++) {
			if (!g->groups[k].prunable)
				continue;
			removed += g->groups[k].n_channels - g->kept[k];
			total += g->groups[k].n_channels;
		}
		return total > 0 ? removed / total : 0.0;
	}
	{
		uint64_t p0, f0, p, f;

		pbi_config_cost(g->m, g->groups, g->n_groups, NULL, &p0, &f0);
		pbi_config_cost(g->m, g->groups, g->n_groups, g->kept, &p, &f);
		if (g->kind == PB_TARGET_PARAMS)
			return p0 ? 1.0 - (double)p / (double)p0 : 0.0;
		return f0 ? 1.0 - (double)f / (double)f0 : 0.0;
	}
}

static void scaled(const double *a, int n, double k, double cap, double *out)
{
	for (int l = 0; l < n; l++) {
		double v = k * a[l];

		out[l] = v > cap ? cap : v;
	}
}

static int goal_setup(goal_ctx *g, pb_error *err)
{
	const pb_sensitivity *s = g->s;
	int rc;

	if (s->granularity == PB_GRANULARITY_WEIGHT)
		return 0;
	if ((rc = pbi_groups_derive(g->m, &g->groups, &g->n_groups, err)))
		return rc;
	g->layer_group = malloc(sizeof *g->layer_group *
				(size_t)(s->n_layers + 1));
	g->kept = malloc(sizeof *g->kept * (size_t)(g->n_groups + 1));
	if (!g->layer_group || !g->kept)
		return pb_error_set(err, PB_ENOMEM, "out of memory");
	for (int l = 0; l < s->n_layers; l++) {
		int layer = pb_model_find_layer(g->m, s->layers[l].name);

		g->layer_group[l] = -1;
		for (int k = 0; k < g->n_groups && g->layer_group[l] < 0; k++)
			for (int p = 0; p < g->groups[k].n_producers; p++)
				if (g->groups[k].producers[p] == layer &&
				    g->groups[k].prunable)
					g->layer_group[l] = k;
		if (g->layer_group[l] < 0)
			return pb_error_set(err, PB_EMISMATCH, "the scan's "
					    "layer %s has no prunable channel "
					    "group in model '%s'",
					    s->layers[l].name,
					    pb_model_name(g->m));
	}
	return 0;
}

int pb_sensitivity_amounts(const pb_sensitivity *s, const pb_model *dense,
			   double max_drop, const pb_target *goal,
			   pb_target *out, double *reached, pb_error *err)
{
	goal_ctx g = { .s = s, .m = dense };
	double *a = NULL, *b = NULL, cap, r;
	int rc = 0, weight = s->granularity == PB_GRANULARITY_WEIGHT;

	if (!(max_drop >= 0.0))
		return pb_error_set(err, PB_EINVAL, "sensitivity: the largest "
				    "drop must be >= 0 points, not %g",
				    max_drop);
	if (s->n_layers > PB_TARGET_MAX_OVERRIDES)
		return pb_error_set(err, PB_EINVAL, "sensitivity: %d layers, "
				    "more than the %d overrides a target "
				    "holds", s->n_layers,
				    PB_TARGET_MAX_OVERRIDES);
	g.kind = goal ? goal->kind : weight ? PB_TARGET_SPARSITY :
		 PB_TARGET_CHANNELS;
	if (weight != (g.kind == PB_TARGET_SPARSITY))
		return pb_error_set(err, PB_EINVAL, "sensitivity: a scan of "
				    "a %s pruner gives %s amounts, not %s",
				    pb_granularity_name(s->granularity),
				    weight ? "sparsity" : "channel",
				    pb_target_kind_name(g.kind));
	for (int l = 0; l < s->n_layers; l++)
		if (pb_model_find_layer(dense, s->layers[l].name) < 0)
			return pb_error_set(err, PB_EMISMATCH, "the scan's "
					    "layer %s is not in model '%s'",
					    s->layers[l].name,
					    pb_model_name(dense));
	a = malloc(sizeof *a * (size_t)(s->n_layers + 1));
	b = malloc(sizeof *b * (size_t)(s->n_layers + 1));
	if (!a || !b) {
		rc = pb_error_set(err, PB_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = goal_setup(&g, err)))
		goto out;
	drop_amounts(s, max_drop, a);
	cap = s->levels[s->n_levels - 1];
	memcpy(b, a, sizeof *a * (size_t)s->n_layers);
	if (goal) {
		double amin = cap, hi, lo = 0.0;

		for (int l = 0; l < s->n_layers; l++)
			if (a[l] > 0 && a[l] < amin)
				amin = a[l];
		hi = cap / amin;
		scaled(a, s->n_layers, hi, cap, b);
		r = reached_of(&g, b);
		if (r < goal->amount - 1e-9) {
			rc = pb_error_set(err, PB_EIMPOSSIBLE, "sensitivity: "
					  "with at most %g points lost per "
					  "layer, scaling the amounts (each "
					  "at most %g, the largest level "
					  "scanned) reaches %s=%.4f, short of "
					  "%g; allow a larger drop", max_drop,
					  cap, pb_target_kind_name(g.kind), r,
					  goal->amount);
			goto out;
		}
		/* The smallest factor that reaches the goal. */
		for (int it = 0; it < 200; it++) {
			double mid = 0.5 * (lo + hi);

			scaled(a, s->n_layers, mid, cap, b);
			if (reached_of(&g, b) >= goal->amount - 1e-12)
				hi = mid;
			else
				lo = mid;
		}
		scaled(a, s->n_layers, hi, cap, b);
		/* Whole channels move the reached amount in steps: of the
		 * two factors that bracket the goal, the closer. */
		if (!weight) {
			double r_hi = reached_of(&g, b), r_lo;

			scaled(a, s->n_layers, lo, cap, b);
			r_lo = reached_of(&g, b);
			if (!(r_lo > 0 && goal->amount - r_lo < r_hi -
			      goal->amount))
				scaled(a, s->n_layers, hi, cap, b);
		}
	}
	memset(out, 0, sizeof *out);
	out->kind = g.kind;
	out->scope = PB_SCOPE_LAYER;
	out->n_overrides = s->n_layers;
	for (int l = 0; l < s->n_layers; l++) {
		snprintf(out->overrides[l].layer,
			 sizeof out->overrides[l].layer, "%s",
			 s->layers[l].name);
		/* Four decimals, what is printed being what is used; up,
		 * so the goal stays reached. */
		out->overrides[l].amount = ceil(b[l] * 1e4 - 1e-6) / 1e4;
		if (out->overrides[l].amount >= 1.0)
			out->overrides[l].amount = 0.9999;
		b[l] = out->overrides[l].amount;
	}
	r = reached_of(&g, b);
	/* A channel target whose every group is fixed asks for what the
	 * fixed groups give: its selection refuses more than that. */
	out->amount = goal && weight ? goal->amount : r;
	if (reached)
		*reached = r;
out:
	free(a);
	free(b);
	free(g.groups);
	free(g.layer_group);
	free(g.kept);
	return rc;
}
