/* BatchNorm's channel sums (core/nn/layers/bn_sums.c) against a plain
 * model of the order they promise, bit for bit: per plane four float
 * lanes (lane l takes values l, l+4, ... of the first HW & ~3), the rest
 * added to lane 0, the plane's sum (((0 + l0) + l1) + l2) + l3, planes
 * added into a double in sample order. Every committed result depends on
 * that order, so the kernels may change their speed, never it. Also:
 * training BN forward and backward give the same bits at 1, 2 and 3
 * threads (which change the channel blocks). */
#include "testutil.h"

#include <math.h>

#include "prunebench/layers.h"
#include "nn/layers/layers_impl.h"

/* ---- the model ------------------------------------------------------------- */

enum { SUM, SQDEV, GRAD_A, GRAD_B };

/* The term that plane element j adds for quantity q. */
static float term(int q, const float *x, const float *dout, const float *r,
		  size_t j, float m, float is)
{
	float g, d;

	switch (q) {
	case SUM:
		return x[j];
	case SQDEV:
		d = x[j] - m;
		return d * d;
	default:
		g = !r || r[j] > 0.0f ? dout[j] : 0.0f;
		return q == GRAD_A ? g : g * ((x[j] - m) * is);
	}
}

static float model_plane(int q, const float *x, const float *dout,
			 const float *r, int HW, float m, float is)
{
	float l[4] = { 0.0f, 0.0f, 0.0f, 0.0f };
	const int n4 = HW & ~3;

	for (int j = 0; j < n4; j++)
		l[j % 4] += term(q, x, dout, r, (size_t)j, m, is);
	for (int j = n4; j < HW; j++)
		l[0] += term(q, x, dout, r, (size_t)j, m, is);
	return (((0.0f + l[0]) + l[1]) + l[2]) + l[3];
}

/* Channel c of (B, C, HW) tensors. */
static double model_channel(int q, const float *x, const float *dout,
			    const float *r, int B, int C, int HW, int c,
			    float m, float is)
{
	double s = 0.0;

	for (int b = 0; b < B; b++) {
		const size_t o = ((size_t)b * C + c) * HW;

		s += model_plane(q, x + o, dout ? dout + o : NULL,
				 r ? r + o : NULL, HW, m, is);
	}
	return s;
}

/* ---- helpers ---------------------------------------------------------------- */

/* Values over six orders of magnitude, either sign, so that any other
 * order of the additions gives other bits; a few exact zeros of either
 * sign and, in r, NaNs (the select treats them as r <= 0). */
static float *spread(size_t n, unsigned long seed, int with_nan)
{
	float *p = tu_floats(n), *u = tu_floats(n);

	tu_fill_uniform(u, n, 0.0f, 1.0f, seed);
	for (size_t i = 0; i < n; i++) {
		const float mag = powf(10.0f, -3.0f + 6.0f * u[i]);

		p[i] = (i * 7919 % 3 ? mag : -mag);
		if (i % 37 == 5)
			p[i] = i % 2 ? 0.0f : -0.0f;
		if (with_nan && i % 41 == 3)
			p[i] = NAN;
	}
	free(u);
	return p;
}

static int same_double(double a, double b)
{
	return !memcmp(&a, &b, sizeof a);
}

/* ---- the block sums against the model ----------------------------------- */

/* Plane lengths around every tail (0-3 values past a multiple of 4,
 * shorter than one group of 4), sample counts around the kernels' groups
 * of 4 and 8, and blocks of one and of several channels inside a wider
 * tensor. */
static void test_block_sums_follow_the_order(void **state)
{
	static const int hws[] = { 1, 2, 3, 4, 5, 6, 7, 9, 49, 50, 196 };
	static const int bs[] = { 1, 3, 4, 5, 8, 9, 13, 17 };
	const int C = 5;

	(void)state;
	for (size_t hi = 0; hi < sizeof hws / sizeof *hws; hi++)
	for (size_t bi = 0; bi < sizeof bs / sizeof *bs; bi++) {
		const int HW = hws[hi], B = bs[bi];
		const size_t n = (size_t)B * C * HW, cs = (size_t)C * HW;
		float *x = spread(n, 1 + hi * 31 + bi, 0);
		float *dy = spread(n, 101 + hi * 31 + bi, 0);
		float *r = spread(n, 201 + hi * 31 + bi, 1);
		const float m[5] = { 0.25f, -3.5f, 1e-3f, 7.0f, -0.125f };
		const float is[5] = { 1.5f, 0.01f, 3.0f, 0.75f, 12.0f };

		for (int c0 = 0; c0 < C; c0 += 2) {
			const int nc = c0 + 3 <= C ? 3 : C - c0;
			const size_t o = (size_t)c0 * HW;
			double s[5], q[5], a[5], b[5], a2[5], b2[5];

			pbi_bn_block_sum(s, x + o, cs, nc, B, HW);
			pbi_bn_block_sqdev(q, x + o, cs, nc, B, HW, m + c0);
			pbi_bn_block_grad_sums(a, b, dy + o, r + o, x + o, cs,
					       nc, B, HW, m + c0, is + c0);
			pbi_bn_block_grad_sums(a2, b2, dy + o, NULL, x + o,
					       cs, nc, B, HW, m + c0, is + c0);
			for (int i = 0; i < nc; i++) {
				const int c = c0 + i;

				assert_true(same_double(s[i], model_channel(
					SUM, x, NULL, NULL, B, C, HW, c, 0, 0)));
				assert_true(same_double(q[i], model_channel(
					SQDEV, x, NULL, NULL, B, C, HW, c,
					m[c], 0)));
				assert_true(same_double(a[i], model_channel(
					GRAD_A, x, dy, r, B, C, HW, c, m[c],
					is[c])));
				assert_true(same_double(b[i], model_channel(
					GRAD_B, x, dy, r, B, C, HW, c, m[c],
					is[c])));
				assert_true(same_double(a2[i], model_channel(
					GRAD_A, x, dy, NULL, B, C, HW, c,
					m[c], is[c])));
				assert_true(same_double(b2[i], model_channel(
					GRAD_B, x, dy, NULL, B, C, HW, c,
					m[c], is[c])));
			}
		}
		free(x);
		free(dy);
		free(r);
	}
}

/* The model is not the only order that would pass: a plane whose
 * sequential sum differs from the four-lane one shows that the test
 * sees the difference. 1e8, 1, -1e8, 1, twice: in lanes, the ones of
 * lane 3 survive (2); in sequence the ones after 1e8 are absorbed (1). */
static void test_order_is_observable(void **state)
{
	const float x[8] = { 1e8f, 1.0f, -1e8f, 1.0f, 1e8f, 1.0f, -1e8f, 1.0f };
	double s;
	float seq = 0.0f;

	(void)state;
	for (int j = 0; j < 8; j++)
		seq += x[j];
	pbi_bn_block_sum(&s, x, 8, 1, 1, 8);
	assert_true(same_double(s, model_channel(SUM, x, NULL, NULL, 1, 1, 8,
						 0, 0, 0)));
	assert_true(same_double(s, 2.0));
	assert_true(same_double((double)seq, 1.0));
}

/* ---- whole layers --------------------------------------------------------- */

/* The forward's statistics are the model's sums turned into a mean and an
 * inverse standard deviation as batchnorm.c does. */
static void test_forward_statistics(void **state)
{
	enum { B = 9, C = 70, HW = 7 };
	const size_t n = (size_t)B * C * HW;
	float *x = spread(n, 7, 0), *g = tu_floats(C), *be = tu_floats(C);
	float *out = tu_floats(n), *mean = tu_floats(C), *is = tu_floats(C);

	(void)state;
	for (int c = 0; c < C; c++)
		g[c] = 1.0f;
	pbi_bn_forward_train(out, NULL, mean, is, NULL, NULL, x, g, be, B, C,
			     HW, 1e-5f, 0.1f);
	for (int c = 0; c < C; c++) {
		const double nn = (double)B * HW;
		const float fm = (float)(model_channel(SUM, x, NULL, NULL, B, C,
						       HW, c, 0, 0) / nn);
		const double sq = model_channel(SQDEV, x, NULL, NULL, B, C, HW,
						c, fm, 0);
		const float fis = (float)(1.0 / sqrt(sq / nn + 1e-5f));

		assert_memory_equal(&mean[c], &fm, sizeof fm);
		assert_memory_equal(&is[c], &fis, sizeof fis);
	}
	free(x); free(g); free(be); free(out); free(mean); free(is);
}

/* 1, 2 and 3 threads block the 70 channels differently (more than one
 * block's worth of channels); every output is the same bits. */
enum { TB = 6, TC = 70, THW = 10, NOUT = 7 };

/* out, relu out, din: the tensor; mean, invstd, dgamma, dbeta: C. */
static size_t out_len(int k)
{
	return k < 2 || k == 6 ? (size_t)TB * TC * THW : TC;
}

static void bn_both(float **o, const float *x, const float *dy,
		    const float *g, const float *be)
{
	pbi_bn_forward_train(o[0], o[1], o[2], o[3], NULL, NULL, x, g, be, TB,
			     TC, THW, 1e-5f, 0.1f);
	pbi_bn_backward(o[6], o[4], o[5], dy, o[1], x, o[2], o[3], g, TB, TC,
			THW, 1);
}

static void test_threads_same_bits(void **state)
{
	const size_t n = (size_t)TB * TC * THW;
	const int saved = tu_threads();
	float *x = spread(n, 3, 0), *dy = spread(n, 4, 0);
	float *g = tu_floats(TC), *be = tu_floats(TC);
	float *ref[NOUT], *got[NOUT];

	(void)state;
	tu_fill_uniform(g, TC, 0.5f, 1.5f, 5);
	tu_fill_uniform(be, TC, -0.5f, 0.5f, 6);
	for (int k = 0; k < NOUT; k++) {
		ref[k] = tu_floats(out_len(k));
		got[k] = tu_floats(out_len(k));
	}
	tu_set_threads(1);
	bn_both(ref, x, dy, g, be);
	for (int t = 2; t <= 3; t++) {
		for (int k = 0; k < NOUT; k++)
			memset(got[k], 0, out_len(k) * sizeof(float));
		tu_set_threads(t);
		bn_both(got, x, dy, g, be);
		for (int k = 0; k < NOUT; k++)
			assert_memory_equal(ref[k], got[k],
					    out_len(k) * sizeof(float));
	}
	tu_set_threads(saved);
	for (int k = 0; k < NOUT; k++) {
		free(ref[k]);
		free(got[k]);
	}
	free(x); free(dy); free(g); free(be);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_block_sums_follow_the_order),
		cmocka_unit_test(test_order_is_observable),
		cmocka_unit_test(test_forward_statistics),
		cmocka_unit_test(test_threads_same_bits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
