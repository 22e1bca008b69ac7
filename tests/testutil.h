/* Helpers shared by the cmocka test programs. */
#ifndef PB_TESTUTIL_H
#define PB_TESTUTIL_H

#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <sys/stat.h>
#include <cmocka.h>

#include <gsl/gsl_rng.h>

#include "prunebench/model.h"
#include "prunebench/plugin.h"

#ifndef PB_SRCDIR
#define PB_SRCDIR "."
#endif

/* The OpenMP thread count for what follows, and what it is now (one
 * without OpenMP). */
static inline void tu_set_threads(int n)
{
#ifdef _OPENMP
	omp_set_num_threads(n);
#else
	(void)n;
#endif
}

static inline int tu_threads(void)
{
#ifdef _OPENMP
	return omp_get_max_threads();
#else
	return 1;
#endif
}

/* n zeroed floats (at least one, so n = 0 is no special case); the
 * test fails when out of memory. */
static inline float *tu_floats(size_t n)
{
	float *p = calloc(n ? n : 1, sizeof *p);

	assert_non_null(p);
	return p;
}

/* Fills a with uniform values in [lo, hi) from a fixed-seed generator. */
static inline void tu_fill_uniform(float *a, size_t n, float lo, float hi,
				   unsigned long seed)
{
	gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
	gsl_rng_set(r, seed);
	for (size_t i = 0; i < n; i++)
		a[i] = lo + (hi - lo) * (float)gsl_rng_uniform(r);
	gsl_rng_free(r);
}

/* Relative error used by the finite-difference checks: |a-b| scaled by
 * max(|a|,|b|,floor) so tiny gradients are compared absolutely. */
static inline double tu_relerr(double a, double b, double floor_)
{
	double s = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
	if (s < floor_)
		s = floor_;
	return fabs(a - b) / s;
}

/* Writes text to a fresh temporary file and returns its malloc-ed path. */
static inline char *tu_write_temp(const char *suffix, const void *data,
				  size_t len)
{
	char tmpl[] = "/tmp/pbtestXXXXXX";
	int fd = mkstemp(tmpl);
	char *path;
	FILE *f;

	assert_true(fd >= 0);
	path = malloc(strlen(tmpl) + strlen(suffix) + 1);
	sprintf(path, "%s%s", tmpl, suffix);
	if (strcmp(tmpl, path) != 0) {
		assert_int_equal(rename(tmpl, path), 0);
	}
	f = fdopen(fd, "wb");
	assert_non_null(f);
	if (len)
		assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
	return path;
}

/* The whole of the file at path, malloc-ed and NUL-terminated (so a text
 * file is a string); its size in *n unless n is NULL. */
static inline void *tu_slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	char *d;
	long len;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	len = ftell(f);
	assert_true(len >= 0);
	rewind(f);
	d = malloc((size_t)len + 1);
	assert_non_null(d);
	assert_int_equal(fread(d, 1, (size_t)len, f), (size_t)len);
	d[len] = '\0';
	fclose(f);
	if (n)
		*n = (size_t)len;
	return d;
}

/* Little-endian 32-bit fields, for tests that edit checkpoint files by
 * hand. */
static inline uint32_t tu_le32(const unsigned char *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
	       (uint32_t)b[3] << 24;
}

static inline void tu_put_le32(unsigned char *b, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b[i] = (unsigned char)(v >> (8 * i));
}

/* A temporary directory (malloc-ed path). */
static inline char *tu_temp_dir(void)
{
	char tmpl[] = "/tmp/pbtestdirXXXXXX";
	char *p = mkdtemp(tmpl);
	assert_non_null(p);
	return strdup(p);
}

/* A model INI shipped in experiments/models of the source tree, e.g.
 * "vgg-s.ini"; fails the test if it does not load. */
static inline pb_model *tu_load_shipped_model(const char *file)
{
	char path[1024];
	pb_model *m = NULL;
	pb_error err = { 0 };

	snprintf(path, sizeof path, "%s/experiments/models/%s", PB_SRCDIR,
		 file);
	if (pb_model_load(&m, path, &err))
		fail_msg("%s", err.msg);
	return m;
}

/* nftw callback of tu_rm_tree. */
static inline int tu_rm_entry(const char *path, const struct stat *st,
			      int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Removes dir and everything in it, then frees the path. */
static inline void tu_rm_tree(char *dir)
{
	assert_int_equal(nftw(dir, tu_rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
	free(dir);
}

/* Writes text to the file dir/name. */
static inline void tu_write_text(const char *dir, const char *name,
				 const char *text)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* The plugins of this build: $PB_TEST_PLUGIN_DIR, else
 * $PB_BUILDDIR/plugins/.libs. Exits 77 (skipped) when neither exists. */
static inline pb_plugin_path *tu_plugin_path(void)
{
	const char *d = getenv("PB_TEST_PLUGIN_DIR");
	const char *b = getenv("PB_BUILDDIR");
	char buf[4096];
	pb_plugin_path *p = NULL;
	pb_error err = { 0 };
	struct stat st;

	if (!d && b) {
		snprintf(buf, sizeof buf, "%s/plugins/.libs", b);
		d = buf;
	}
	if (!d || stat(d, &st)) {
		fprintf(stderr, "no plugin folder (set PB_BUILDDIR or "
			"PB_TEST_PLUGIN_DIR); skipping\n");
		exit(77);
	}
	if (pb_plugin_path_new(&p, &err) || pb_plugin_path_add(p, d, &err)) {
		fprintf(stderr, "%s\n", err.msg);
		exit(1);
	}
	return p;
}

/* A model from INI text, named source in messages; fails the test if it
 * does not parse. */
static inline pb_model *tu_parse_model(const char *text, const char *source)
{
	pb_model *m = NULL;
	pb_error err = { 0 };

	if (pb_model_parse(&m, text, source, &err))
		fail_msg("%s", err.msg);
	return m;
}

/* Plugin `name` of this build, from tu_plugin_path(); fails the test if
 * it does not open. Close it with pb_plugin_close. */
static inline pb_plugin *tu_open_plugin(const char *name)
{
	pb_plugin_path *sp = tu_plugin_path();
	pb_plugin *p = NULL;
	pb_error err = { 0 };

	if (pb_plugin_open(&p, sp, name, &err))
		fail_msg("%s", err.msg);
	pb_plugin_path_free(sp);
	return p;
}

/* pb_prune_run on m with the setup *base (pruner, target and whatever
 * else the test fills in) plus the pruner's options from "k=v" strings
 * (kv NULL-terminated, may be NULL) and a fresh RNG seeded with seed
 * (0 is GSL's default seed, as an unseeded generator). Fails the test if
 * an option is refused; returns what pb_prune_run returns. */
static inline int tu_prune_run(const pb_model *m, const pb_prune_setup *base,
			       const char *const *kv, unsigned long seed,
			       pb_model **out, pb_prune_report *rep,
			       pb_error *err)
{
	pb_prune_setup su = *base;
	pb_options *o = NULL;
	int rc;

	if (pb_options_new(&o, su.pruner, err))
		fail_msg("%s", err->msg);
	for (int i = 0; kv && kv[i]; i++)
		if (pb_options_set_kv(o, kv[i], "test", err))
			fail_msg("%s", err->msg);
	su.options = o;
	su.rng = gsl_rng_alloc(gsl_rng_mt19937);
	assert_non_null(su.rng);
	gsl_rng_set(su.rng, seed);
	rc = pb_prune_run(m, &su, out, rep, err);
	pb_options_free(o);
	gsl_rng_free(su.rng);
	return rc;
}

/* Initialises m's parameters as pb_model_init_params does, from a
 * generator seeded with seed. */
static inline void tu_init_params(pb_model *m, unsigned long seed)
{
	gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
	pb_error err = { 0 };

	gsl_rng_set(r, seed);
	if (pb_model_init_params(m, r, &err))
		fail_msg("%s", err.msg);
	gsl_rng_free(r);
}

/* Fills m's parameter `name` (e.g. "fc.weight") with tu_fill_uniform. */
static inline void tu_fill_param(pb_model *m, const char *name, float lo,
				 float hi, unsigned long seed)
{
	pb_param *p = pb_model_find_param(m, name);

	assert_non_null(p);
	tu_fill_uniform(p->data, p->n, lo, hi, seed);
}

#endif
