/* The throughput bench behind `prunebench bench`: model steps timed on
 * random data, and the sgemm and FMA ceilings measured in the same run. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_cblas.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define PB_X86 1
#endif

#include "prunebench/bench.h"
#include "prunebench/layers.h"
#include "prunebench/tensor.h"
#include "prunebench/train.h"
#include "nn/model_impl.h"
#include "train/bench_impl.h"

double pbi_bench_now(void)
{
	const char *clk = getenv("PB_BENCH_CLOCK");
	struct timespec t;

	clock_gettime(clk && !strcmp(clk, "cpu") ? CLOCK_PROCESS_CPUTIME_ID :
		      CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

double pbi_bench_median(double *v, int n, double *spread)
{
	double med;

	gsl_sort(v, 1, (size_t)n);
	med = gsl_stats_median_from_sorted_data(v, 1, (size_t)n);
	if (spread)
		*spread = med > 0.0 ? (v[n - 1] - v[0]) / med : 0.0;
	return med;
}

/* Everything one timed step touches, allocated once before timing so
 * that the steps themselves allocate nothing. */
typedef struct bench_state {
	pb_model *m;
	pb_sgd *sgd;
	gsl_rng *rng;
	float *x, *probs, *dlogits;
	uint8_t *y;
	int B, K;
} bench_state;

int pbi_bench_runs(pbi_bench_step step, void *ctx, int warmup, int iters,
		   int repeats, double *sec, pb_error *err)
{
	int rc = 0;

	for (int i = 0; i < warmup && !rc; i++)
		rc = step(ctx, err);
	if (!rc && iters == 0)
		rc = pbi_bench_calibrate(step, ctx, &iters, err);
	for (int r = 0; r < repeats && !rc; r++) {
		const double t0 = pbi_bench_now();

		for (int i = 0; i < iters && !rc; i++)
			rc = step(ctx, err);
		sec[r] = (pbi_bench_now() - t0) / iters;
	}
	return rc;
}

int pbi_bench_calibrate(pbi_bench_step step, void *ctx, int *iters,
			pb_error *err)
{
	double t0 = pbi_bench_now(), dt;
	int n = 0, rc;

	do {
		rc = step(ctx, err);
		n++;
		dt = pbi_bench_now() - t0;
	} while (!rc && dt < 0.05);
	*iters = (int)(0.25 * n / dt);
	if (*iters < 3)
		*iters = 3;
	return rc;
}

static int train_step(void *ctx, pb_error *err)
{
	bench_state *s = ctx;
	const float *logits;
	int rc = pb_model_forward(s->m, s->x, s->B, 1, s->rng, &logits, err);

	if (rc)
		return rc;
	pb_softmax_xent_forward(s->probs, logits, s->y, s->B, s->K, NULL);
	pb_softmax_xent_backward(s->dlogits, s->probs, s->y, s->B, s->K);
	pb_model_zero_grad(s->m);
	rc = pb_model_backward(s->m, s->dlogits, err);
	if (rc)
		return rc;
	/* A tiny rate keeps the weights (and so the work) stable. */
	pb_sgd_step(s->sgd, s->m, 1e-6);
	return 0;
}

/* Inference as a deployed model runs it: lean (only what later layers
 * read is stored). */
static int infer_step(void *ctx, pb_error *err)
{
	bench_state *s = ctx;
	const float *logits;
	int rc;

	pbi_model_set_lean(s->m, 1);
	rc = pb_model_forward(s->m, s->x, s->B, 0, NULL, &logits, err);
	pbi_model_set_lean(s->m, 0);
	return rc;
}

/* Images/s of `repeats` runs of `iters` steps, after `warmup` steps. */
static int time_steps(bench_state *s, int train, int warmup, int iters,
		      int repeats, double *ips, double *spread,
		      pb_error *err)
{
	double *v = malloc((size_t)repeats * sizeof *v);
	int rc;

	if (!v)
		return pb_error_set(err, PB_ENOMEM, "out of memory (bench)");
	rc = pbi_bench_runs(train ? train_step : infer_step, s, warmup, iters,
			    repeats, v, err);
	if (!rc) {
		for (int r = 0; r < repeats; r++)
			v[r] = s->B / v[r];
		*ips = pbi_bench_median(v, repeats, spread);
	}
	free(v);
	return rc;
}

int pb_bench_model(pb_model *m, int B, int warmup, int iters, int repeats,
		   int do_train, int do_infer, unsigned long seed,
		   pb_bench_result *res, pb_error *err)
{
	bench_state s = { 0 };
	pb_recipe r;
	int c, h, w, rc;
	size_t in_n;
	const double gflop = 2e-9 * (double)pb_model_count_macs(m) * B;

	memset(res, 0, sizeof *res);
	if (B < 1 || iters < 0 || repeats < 1 || warmup < 0)
		return pb_error_set(err, PB_EINVAL, "pb_bench_model: batch "
				    "and repeats must be >= 1, iters >= 0");
	pb_model_input_shape(m, &c, &h, &w);
	in_n = (size_t)B * c * h * w;
	s.m = m;
	s.B = B;
	s.K = pb_model_classes(m);
	s.rng = gsl_rng_alloc(gsl_rng_mt19937);
	s.x = pb_falloc(in_n);
	s.probs = pb_falloc((size_t)B * s.K);
	s.dlogits = pb_falloc((size_t)B * s.K);
	s.y = malloc((size_t)B);
	if (!s.rng || !s.x || !s.probs || !s.dlogits || !s.y) {
		rc = pb_error_set(err, PB_ENOMEM, "out of memory (bench)");
		goto done;
	}
	gsl_rng_set(s.rng, seed);
	rc = pb_model_init_params(m, s.rng, err);
	if (rc)
		goto done;
	for (size_t i = 0; i < in_n; i++)
		s.x[i] = (float)(gsl_rng_uniform(s.rng) * 2.0 - 1.0);
	for (int i = 0; i < B; i++)
		s.y[i] = (uint8_t)gsl_rng_uniform_int(s.rng,
						      (unsigned long)s.K);
	if (do_train) {
		pb_recipe_default(&r);
		rc = pb_sgd_create(&s.sgd, m, &r, err);
		if (!rc)
			rc = time_steps(&s, 1, warmup, iters, repeats,
					&res->train_ips, &res->train_spread,
					err);
		if (rc)
			goto done;
		res->train_gflops = 3.0 * gflop * res->train_ips / B;
	}
	if (do_infer) {
		rc = time_steps(&s, 0, warmup, iters, repeats, &res->infer_ips,
				&res->infer_spread, err);
		if (rc)
			goto done;
		res->infer_gflops = gflop * res->infer_ips / B;
	}
done:
	pb_sgd_free(s.sgd);
	gsl_rng_free(s.rng);
	pb_ffree(s.x);
	pb_ffree(s.probs);
	pb_ffree(s.dlogits);
	free(s.y);
	return rc;
}

/* Zeroes the `sparsity` fraction of smallest |w| over every conv and
 * linear weight of m; returns the zero fraction reached. */
static double prune_global(pb_model *m, double sparsity)
{
	size_t total = 0, k = 0, zeros = 0;
	double *mag;
	double thr;

	for (int i = 0; i < pb_model_n_params(m); i++)
		if (pb_model_param(m, i)->kind == PB_PARAM_WEIGHT)
			total += pb_model_param(m, i)->n;
	mag = malloc((total ? total : 1) * sizeof *mag);
	if (!mag)
		return -1.0;
	for (int i = 0; i < pb_model_n_params(m); i++) {
		const pb_param *p = pb_model_param(m, i);
		if (p->kind == PB_PARAM_WEIGHT)
			for (size_t j = 0; j < p->n; j++)
				mag[k++] = fabs(p->data[j]);
	}
	gsl_sort(mag, 1, total);
	k = (size_t)(sparsity * (double)total);
	thr = k >= total ? INFINITY : mag[k];
	for (int i = 0; i < pb_model_n_params(m); i++) {
		pb_param *p = pb_model_param(m, i);
		if (p->kind != PB_PARAM_WEIGHT)
			continue;
		for (size_t j = 0; j < p->n; j++) {
			if (fabs(p->data[j]) < thr)
				p->data[j] = 0.0f;
			zeros += p->data[j] == 0.0f;
		}
	}
	free(mag);
	return total ? (double)zeros / (double)total : 0.0;
}

static int infer_timed(pb_model *m, const float *x, int B, int iters,
		       double *ips, pb_error *err)
{
	const float *logits;
	double t0 = pbi_bench_now();
	int rc = 0;

	for (int i = 0; i < iters && !rc; i++)
		rc = pb_model_forward(m, x, B, 0, NULL, &logits, err);
	*ips = (double)iters * B / (pbi_bench_now() - t0);
	return rc;
}

/* One inference of the dense model, for calibrate_iters. */
typedef struct dense_forward {
	pb_model *m;
	const float *x;
	int B;
	double ips;
} dense_forward;

static int dense_step(void *ctx, pb_error *err)
{
	dense_forward *d = ctx;

	return infer_timed(d->m, d->x, d->B, 1, &d->ips, err);
}

int pb_bench_sparse(pb_model *m, int B, double sparsity, int warmup,
		    int iters, int repeats, unsigned long seed,
		    pb_bench_sparse_result *res, pb_error *err)
{
	gsl_rng *rng = NULL;
	pb_model *sp = NULL;
	float *x = NULL;
	double *vd = NULL, *vs = NULL, ips;
	size_t in_n;
	int c, h, w, rc, used;

	memset(res, 0, sizeof *res);
	if (B < 1 || iters < 0 || repeats < 1 || warmup < 0 ||
	    !(sparsity >= 0.0 && sparsity <= 1.0))
		return pb_error_set(err, PB_EINVAL, "pb_bench_sparse: batch "
				    "and repeats must be >= 1, iters >= 0, "
				    "sparsity in [0, 1]");
	pb_model_input_shape(m, &c, &h, &w);
	in_n = (size_t)B * c * h * w;
	rng = gsl_rng_alloc(gsl_rng_mt19937);
	x = pb_falloc(in_n);
	vd = malloc((size_t)repeats * sizeof *vd);
	vs = malloc((size_t)repeats * sizeof *vs);
	if (!rng || !x || !vd || !vs) {
		rc = pb_error_set(err, PB_ENOMEM, "out of memory (bench)");
		goto done;
	}
	gsl_rng_set(rng, seed);
	if ((rc = pb_model_init_params(m, rng, err)))
		goto done;
	for (size_t i = 0; i < in_n; i++)
		x[i] = (float)(gsl_rng_uniform(rng) * 2.0 - 1.0);
	res->sparsity = prune_global(m, sparsity);
	if (res->sparsity < 0 || (rc = pb_model_clone(&sp, m, err)) ||
	    (used = pbi_model_sparse_begin(sp)) < 0) {
		rc = rc ? rc : pb_error_set(err, PB_ENOMEM,
					    "out of memory (bench)");
		goto done;
	}
	res->sparse_layers = used;
	pbi_model_set_lean(m, 1);
	pbi_model_set_lean(sp, 1);
	for (int i = 0; i < warmup && !rc; i++) {
		rc = infer_timed(m, x, B, 1, &ips, err);
		if (!rc)
			rc = infer_timed(sp, x, B, 1, &ips, err);
	}
	if (!rc && iters == 0) {
		/* A quarter of a second per repeat of the dense one. */
		dense_forward d = { m, x, B, 0.0 };

		rc = pbi_bench_calibrate(dense_step, &d, &iters, err);
	}
	for (int r = 0; r < repeats && !rc; r++) {
		rc = infer_timed(m, x, B, iters, &vd[r], err);
		if (!rc)
			rc = infer_timed(sp, x, B, iters, &vs[r], err);
	}
	if (!rc) {
		res->dense_ips = pbi_bench_median(vd, repeats, &res->dense_spread);
		res->sparse_ips = pbi_bench_median(vs, repeats, &res->sparse_spread);
	}
done:
	pbi_model_set_lean(m, 0);
	pb_model_free(sp);
	gsl_rng_free(rng);
	pb_ffree(x);
	free(vd);
	free(vs);
	return rc;
}

double pb_bench_sgemm_peak(int n, int repeats, pb_error *err)
{
	const size_t nn = (size_t)n * n;
	float *a = pb_falloc(nn), *b = pb_falloc(nn), *c = pb_falloc(nn);
	double best = 0.0;

	if (!a || !b || !c) {
		pb_error_set(err, PB_ENOMEM, "out of memory (sgemm bench)");
		goto done;
	}
	for (size_t i = 0; i < nn; i++) {
		a[i] = (float)(i % 7) * 0.25f - 0.75f;
		b[i] = (float)(i % 5) * 0.5f - 1.0f;
	}
	for (int r = 0; r <= repeats; r++) {
		double t0 = pbi_bench_now(), g;
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n,
			    1.0f, a, n, b, n, 0.0f, c, n);
		g = 2e-9 * (double)n * n * n / (pbi_bench_now() - t0);
		/* The first call pays for thread start-up and page faults. */
		if (r > 0 && g > best)
			best = g;
	}
done:
	pb_ffree(a);
	pb_ffree(b);
	pb_ffree(c);
	return best;
}

/* Twelve independent accumulator chains hide the FMA latency (4 cycles)
 * on two FMA pipes. They are twelve named variables, not an array: GCC
 * kept an array in memory and the loop then measured store forwarding,
 * not the FMA units (44 instead of 115 GFLOP/s on the machines here). A
 * result is returned so none of it is dead code. */
#define FMA_CHAINS 12
#define FMA_DECL(T, set) \
	T a0 = set(0.f), a1 = set(1.f), a2 = set(2.f), a3 = set(3.f), \
	  a4 = set(4.f), a5 = set(5.f), a6 = set(6.f), a7 = set(7.f), \
	  a8 = set(8.f), a9 = set(9.f), a10 = set(10.f), a11 = set(11.f)
#define FMA_STEP(fma) \
	do { \
		a0 = fma(a0, m, c); a1 = fma(a1, m, c); a2 = fma(a2, m, c); \
		a3 = fma(a3, m, c); a4 = fma(a4, m, c); a5 = fma(a5, m, c); \
		a6 = fma(a6, m, c); a7 = fma(a7, m, c); a8 = fma(a8, m, c); \
		a9 = fma(a9, m, c); a10 = fma(a10, m, c); a11 = fma(a11, m, c); \
	} while (0)
#define FMA_SUM(add) \
	add(add(add(add(a0, a1), add(a2, a3)), add(add(a4, a5), add(a6, a7))), \
	    add(add(a8, a9), add(a10, a11)))

#ifdef PB_X86
__attribute__((target("avx512f"))) static float fma_avx512(long n)
{
	const __m512 m = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(1e-3f);
	FMA_DECL(__m512, _mm512_set1_ps);

	for (long k = 0; k < n; k++)
		FMA_STEP(_mm512_fmadd_ps);
	return _mm512_reduce_add_ps(FMA_SUM(_mm512_add_ps));
}

__attribute__((target("avx2,fma"))) static float fma_avx2(long n)
{
	const __m256 m = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(1e-3f);
	float out[8];
	FMA_DECL(__m256, _mm256_set1_ps);

	for (long k = 0; k < n; k++)
		FMA_STEP(_mm256_fmadd_ps);
	_mm256_storeu_ps(out, FMA_SUM(_mm256_add_ps));
	return out[0];
}
#endif

static float fma_scalar(long n)
{
	float acc[FMA_CHAINS];

	for (int i = 0; i < FMA_CHAINS; i++)
		acc[i] = (float)i;
	for (long k = 0; k < n; k++)
		for (int i = 0; i < FMA_CHAINS; i++)
			acc[i] = acc[i] * 0.999f + 1e-3f;
	for (int i = 1; i < FMA_CHAINS; i++)
		acc[0] += acc[i];
	return acc[0];
}

double pb_bench_fma_peak(int repeats, const char **isa)
{
	const long n = 20000000;
	float (*fn)(long) = fma_scalar;
	int lanes = 1;
	double best = 0.0;
	volatile float sink;

	*isa = "scalar";
#ifdef PB_X86
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f")) {
		fn = fma_avx512;
		lanes = 16;
		*isa = "avx512f";
	} else if (__builtin_cpu_supports("avx2") &&
		   __builtin_cpu_supports("fma")) {
		fn = fma_avx2;
		lanes = 8;
		*isa = "avx2+fma";
	}
#endif
	for (int r = 0; r <= repeats; r++) {
		double t0 = pbi_bench_now(), g;
		sink = fn(n);
		g = 2e-9 * (double)n * FMA_CHAINS * lanes / (pbi_bench_now() - t0);
		if (r > 0 && g > best)
			best = g;
	}
	(void)sink;
	return best;
}

const char *pb_bench_cpu_model(char *buf, size_t n)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[512];

	snprintf(buf, n, "unknown");
	if (!f)
		return buf;
	while (fgets(line, sizeof line, f)) {
		char *colon = strchr(line, ':');
		if (strncmp(line, "model name", 10) || !colon)
			continue;
		colon += 1 + (colon[1] == ' ');
		colon[strcspn(colon, "\n")] = '\0';
		snprintf(buf, n, "%s", colon);
		break;
	}
	fclose(f);
	return buf;
}
