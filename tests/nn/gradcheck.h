/* The finite-difference checker shared by the layer gradient tests
 * (tests/nn/test_*_grad.c). Every gradient a backward produces is compared
 * with the central difference of L = sum(out * R) for a fixed random R,
 * accumulated in double. */
#ifndef PB_TESTS_GRADCHECK_H
#define PB_TESTS_GRADCHECK_H

#include "testutil.h"

#include "prunebench/tensor.h"

/* Float forwards perturbed by 1e-2 give central differences good to about
 * 1e-4 of the gradient's scale here; 1e-2 leaves room for that noise and
 * still catches a wrong term (see test_fd_catches_wrong_conv_dweight and
 * test_fd_catches_bn_din_without_batch_stats). */
#define FD_TOL 1e-2
#define FD_FLOOR 1e-1
#define FD_EPS 1e-2f

static inline float *fbuf(size_t n)
{
	float *p = pb_falloc(n);
	assert_non_null(p);
	return p;
}

static inline float *frand(size_t n, float lo, float hi, unsigned long seed)
{
	float *p = fbuf(n);
	tu_fill_uniform(p, n, lo, hi, seed);
	return p;
}

static inline double dotd(const float *a, const float *b, size_t n)
{
	double s = 0.0;
	for (size_t i = 0; i < n; i++)
		s += (double)a[i] * b[i];
	return s;
}

static inline int verbose(void)
{
	return getenv("PB_TEST_VERBOSE") != NULL;
}

/* Runs the forward for the current inputs and returns the loss. */
typedef double (*loss_fn)(void *ctx);

/* The worst relative error between the analytic gradient g and central
 * differences of f over every element of x. x is restored afterwards. */
static inline double fd_worst(loss_fn f, void *ctx, float *x, const float *g,
			      size_t n, float eps, const char *what)
{
	double worst = -1.0, wa = 0.0, wn = 0.0;
	size_t at = 0;

	for (size_t i = 0; i < n; i++) {
		const float x0 = x[i];
		float xp, xm;
		double lp, lm, num, e;

		x[i] = x0 + eps;
		xp = x[i];
		lp = f(ctx);
		x[i] = x0 - eps;
		xm = x[i];
		lm = f(ctx);
		x[i] = x0;
		/* The step actually taken, not eps: float rounds x0 +- eps. */
		num = (lp - lm) / ((double)xp - (double)xm);
		e = tu_relerr(g[i], num, FD_FLOOR);
		if (e > worst) {
			worst = e;
			at = i;
			wa = g[i];
			wn = num;
		}
	}
	f(ctx);
	if (verbose() || worst >= FD_TOL)
		print_message("%-28s n=%-5zu worst rel err %.2e at %zu "
			      "(analytic %.6g, numeric %.6g)\n", what, n,
			      worst, at, wa, wn);
	return worst;
}

#define assert_fd(f, ctx, x, g, n, eps, what) \
	assert_true(fd_worst((f), (ctx), (x), (g), (n), (eps), (what)) < FD_TOL)

/* Element-wise |a - b| <= tol * max(1, |b|), with a message on failure. */
static inline void assert_close(const float *a, const float *b, size_t n,
				double tol, const char *what)
{
	for (size_t i = 0; i < n; i++) {
		double s = fabs(b[i]) > 1.0 ? fabs(b[i]) : 1.0;
		if (!(fabs((double)a[i] - b[i]) <= tol * s)) {
			print_error("%s: element %zu is %.9g, expected %.9g\n",
				    what, i, a[i], b[i]);
			fail();
		}
	}
}

/* |got - want| <= tol, computed in double; tol 0 means exactly equal. */
static inline void assert_near_at(double got, double want, double tol,
				  const char *expr, const char *file, int line)
{
	if (!(fabs(got - want) <= tol)) {
		print_error("%s is %.9g, expected %.9g (tolerance %g)\n", expr,
			    got, want, tol);
		_fail(file, line);
	}
}

#define assert_near(got, want, tol) \
	assert_near_at((double)(got), (double)(want), (tol), #got, __FILE__, \
		       __LINE__)

/* A gradient that is not all zeros, so that doubling it shows. */
static inline void assert_nonzero(const float *a, size_t n)
{
	size_t nz = 0;
	for (size_t i = 0; i < n; i++)
		nz += a[i] != 0.0f;
	assert_true(nz > 0);
}

/* twice (after two backward calls from zero) equals 2 * once. */
static inline void assert_doubled(const float *twice, const float *once,
				  size_t n, const char *what)
{
	float *two = fbuf(n);
	for (size_t i = 0; i < n; i++)
		two[i] = 2.0f * once[i];
	assert_nonzero(once, n);
	assert_close(twice, two, n, 1e-5, what);
	pb_ffree(two);
}

#endif
