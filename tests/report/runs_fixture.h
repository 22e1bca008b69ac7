/* Hand-written runs.jsonl files for the table tests (tests/report/):
 * one line per cell in the runner's format, and the main fixture with
 * its damaged and blank lines. */
#ifndef PB_TESTS_RUNS_FIXTURE_H
#define PB_TESTS_RUNS_FIXTURE_H

#include "testutil.h"

#include "prunebench/table.h"

/* cmocka's assert_float_equal compares in single precision. */
#define assert_near(a, b, eps) do { \
	double a_ = (a), b_ = (b); \
	if (!(fabs(a_ - b_) <= (eps))) \
		fail_msg("%s = %.15g, expected %.15g (within %g)", #a, a_, \
			 b_, (double)(eps)); \
} while (0)

/* Two-sided p of Student's t with 4 degrees of freedom, closed form:
 * F(t) = 1/2 + (3/8) u (1 - t^2 / (12 (1 + t^2/4))), u = t/sqrt(1+t^2/4).
 * Three seeds a side with equal sd give Welch 4 degrees of freedom. */
static inline double p_two_sided_df4(double t)
{
	double a = fabs(t), u = a / sqrt(1 + a * a / 4);
	return 1.0 - 0.75 * u * (1 - a * a / (12 * (1 + a * a / 4)));
}

typedef struct spec {
	const char *kind, *method, *target, *tkind;
	double amount;
	int seed;
	const char *status;
	double before, after; /* fractions; < 0 writes null */
	const char *extra;    /* more "key": value pairs, or NULL */
} spec;

/* One runs.jsonl line in the runner's format, with fixed size and speed
 * numbers: params 77786 -> 40000 non-zero (51.42%), MACs 7344000 ->
 * 3672000 (50%). */
static inline void put_line(FILE *f, const spec *s)
{
	int control = !strcmp(s->kind, "dense") || !strcmp(s->kind, "dense_ft");
	fprintf(f, "{\"v\": 1, \"id\": \"%s-%s-s%d-3fa9c2d1\", "
		"\"experiment\": \"t\", \"kind\": \"%s\", \"method\": \"%s\", ",
		s->method, s->target ? s->target : "none", s->seed, s->kind,
		s->method);
	if (control)
		fputs("\"plugin\": null, \"target\": null, \"target_kind\": null,"
		      " \"target_amount\": null, \"reached\": null, ", f);
	else
		fprintf(f, "\"plugin\": \"%s\", \"target\": \"%s\", "
			"\"target_kind\": \"%s\", \"target_amount\": %g, "
			"\"reached\": %g, ", s->method, s->target, s->tkind,
			s->amount, s->amount - 0.003);
	fprintf(f, "\"seed\": %d, \"threads\": 1, \"status\": \"%s\", "
		"\"error\": %s, ", s->seed, s->status,
		strcmp(s->status, "ok") ? "\"loss became NaN\"" : "null");
	if (s->before < 0)
		fputs("\"acc_before\": null, \"acc_after\": null, ", f);
	else
		fprintf(f, "\"acc_before\": %.6f, \"acc_after\": %.6f, ",
			s->before, s->after);
	fprintf(f, "\"val_after\": 0.9, \"params\": %d, \"params_dense\": "
		"77786, \"nonzero\": %d, \"macs\": %d, \"macs_dense\": 7344000,"
		" \"macs_effective\": %d, \"size_dense_mib\": 0.297, "
		"\"size_sparse_mib\": 0.1, \"size_compressed_mib\": 0.09, "
		"\"latency_b1_ms\": 0.21, \"latency_b128_ms\": 9.1, "
		"\"speedup_b1\": 1.7, \"speedup_b128\": 1.9, "
		"\"speedup_sparse_b1\": 2.3, \"speedup_sparse_b128\": 2.1, "
		"\"time_prune_s\": %s, \"time_finetune_s\": %s, "
		"\"time_total_s\": 42.0, \"curve\": \"cells/x.csv\", "
		"\"finished\": \"2026-11-23T20:30:00Z\"",
		control ? 77786 : 40000, control ? 77786 : 40000,
		control ? 7344000 : 3672000, control ? 7344000 : 3672000,
		control ? "null" : "1.2", !strcmp(s->kind, "dense") ?
		"null" : "40.3");
	if (s->extra)
		fprintf(f, ", %s", s->extra);
	fputs("}\n", f);
}

/* The main fixture: 3 seeds of dense, dense+ft, three methods at macs=0.5
 * (magnitude best; l1 close to it; random clearly worse), a one-seed
 * scratch row, l1 at macs=0.7 with one diverged seed, slimming at
 * macs=0.7 all diverged, lth with rounds. Cells are deliberately out of
 * order. */
static const spec fixture[] = {
	{ "prune", "random", "macs=0.5", "macs", 0.5, 1, "ok", 0.80, 0.850, NULL },
	{ "prune", "l1", "macs=0.5", "macs", 0.5, 1, "ok", 0.70, 0.900, NULL },
	{ "dense", "dense", NULL, NULL, 0, 1, "ok", 0.910, 0.910, NULL },
	{ "prune", "magnitude", "macs=0.5", "macs", 0.5, 1, "ok", 0.88, 0.901, NULL },
	{ "dense_ft", "dense+ft", NULL, NULL, 0, 1, "ok", 0.910, 0.905, NULL },
	{ "prune", "l1", "macs=0.5", "macs", 0.5, 2, "ok", 0.71, 0.902, NULL },
	{ "dense", "dense", NULL, NULL, 0, 2, "ok", 0.912, 0.912, NULL },
	{ "dense_ft", "dense+ft", NULL, NULL, 0, 2, "ok", 0.912, 0.906, NULL },
	{ "prune", "random", "macs=0.5", "macs", 0.5, 2, "ok", 0.80, 0.852, NULL },
	{ "prune", "magnitude", "macs=0.5", "macs", 0.5, 2, "ok", 0.88, 0.903, NULL },
	{ "dense", "dense", NULL, NULL, 0, 3, "ok", 0.914, 0.914, NULL },
	{ "dense_ft", "dense+ft", NULL, NULL, 0, 3, "ok", 0.914, 0.907, NULL },
	{ "prune", "l1", "macs=0.5", "macs", 0.5, 3, "ok", 0.72, 0.904, NULL },
	{ "prune", "magnitude", "macs=0.5", "macs", 0.5, 3, "ok", 0.88, 0.905, NULL },
	{ "prune", "random", "macs=0.5", "macs", 0.5, 3, "ok", 0.80, 0.854, NULL },
	{ "scratch", "l1", "macs=0.5", "macs", 0.5, 1, "ok", 0.10, 0.880, NULL },
	{ "prune", "l1", "macs=0.7", "macs", 0.7, 1, "ok", 0.50, 0.870, NULL },
	{ "prune", "l1", "macs=0.7", "macs", 0.7, 2, "diverged", -1, -1, NULL },
	{ "prune", "l1", "macs=0.7", "macs", 0.7, 3, "ok", 0.52, 0.874, NULL },
	{ "prune", "slimming", "macs=0.7", "macs", 0.7, 1, "diverged", -1, -1, NULL },
	{ "prune", "slimming", "macs=0.7", "macs", 0.7, 2, "diverged", -1, -1, NULL },
	{ "prune", "lth", "sparsity=0.8", "sparsity", 0.8, 1, "ok", 0.6, 0.89,
	  "\"rounds\": [0.2, 0.36, 0.488], \"future_key\": {\"x\": [1, 2]}" },
};

/* A fresh folder holding the fixture as runs.jsonl, then tail (may be
 * NULL). */
static inline char *write_fixture(const char *tail)
{
	char *dir = tu_temp_dir(), path[512];
	FILE *f;

	snprintf(path, sizeof path, "%s/runs.jsonl", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	for (size_t i = 0; i < sizeof fixture / sizeof fixture[0]; i++) {
		put_line(f, &fixture[i]);
		if (i == 4)
			fputs("this is not json\n", f);  /* line 6 */
		if (i == 9)
			fputs("\n", f);                  /* blank: ignored */
	}
	if (tail)
		fputs(tail, f);
	fclose(f);
	return dir;
}

/* The whole of dir/name (malloc-ed); fails the test if it is missing. */
static inline char *slurp(const char *dir, const char *name)
{
	char path[512];
	FILE *f;
	long n;
	char *s;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	f = fopen(path, "rb");
	if (!f)
		fail_msg("%s was not written", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	s = malloc((size_t)n + 1);
	assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
	s[n] = '\0';
	fclose(f);
	return s;
}

/* The table of dir/runs.jsonl; *warnings (may be NULL) gets what the
 * reader warned about. */
static inline void load(const char *dir, pb_table *t, int *n_bad,
			char **warnings)
{
	char path[512];
	pb_record *cells;
	int n;
	pb_error err = { 0 };
	char *wbuf = NULL;
	size_t wlen = 0;
	FILE *w = open_memstream(&wbuf, &wlen);

	snprintf(path, sizeof path, "%s/runs.jsonl", dir);
	assert_int_equal(pb_records_read(path, 0, &cells, &n, n_bad, w, &err),
			 0);
	fclose(w);
	assert_int_equal(pb_table_build(cells, n, t, &err), 0);
	pb_records_free(cells, n);
	if (warnings)
		*warnings = wbuf;
	else
		free(wbuf);
}

#endif
