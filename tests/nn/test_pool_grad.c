/* Max and average pooling (core/nn/layers/pool.c) against finite
 * differences (max-pool inputs without ties, so no probe crosses a kink),
 * hand-worked windows, and accumulating into the input gradient. */
#include "gradcheck.h"

#include <gsl/gsl_randist.h>

#include "prunebench/layers.h"

/* ---- pooling ------------------------------------------------------------ */

struct pool_ctx {
	int B, C, H, W, KH, KW, stride, max;
	float *in, *out, *r, *din;
	int32_t *argmax;
	size_t n_in, n_out;
};

static void pool_ctx_init(struct pool_ctx *x, int max, int B, int C, int H,
			  int W, int KH, int KW, int stride, unsigned long seed)
{
	const int OH = pb_out_dim(H, KH, stride, 0);
	const int OW = pb_out_dim(W, KW, stride, 0);

	memset(x, 0, sizeof *x);
	x->max = max;
	x->B = B;
	x->C = C;
	x->H = H;
	x->W = W;
	x->KH = KH;
	x->KW = KW;
	x->stride = stride;
	x->n_in = (size_t)B * C * H * W;
	x->n_out = (size_t)B * C * OH * OW;
	x->in = frand(x->n_in, -1.0f, 1.0f, seed);
	x->r = frand(x->n_out, -1.0f, 1.0f, seed + 1);
	x->out = fbuf(x->n_out);
	x->din = fbuf(x->n_in);
	x->argmax = malloc(x->n_out * sizeof *x->argmax);
	assert_non_null(x->argmax);
	if (max) {
		/* Distinct values 0.05 apart, shuffled: no ties, and a probe
		 * of +-eps cannot change which input is the maximum. */
		gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
		gsl_rng_set(rng, seed);
		for (size_t i = 0; i < x->n_in; i++)
			x->in[i] = 0.05f * (float)i - 3.0f;
		gsl_ran_shuffle(rng, x->in, x->n_in, sizeof *x->in);
		gsl_rng_free(rng);
	}
}

static void pool_ctx_free(struct pool_ctx *x)
{
	pb_ffree(x->in);
	pb_ffree(x->r);
	pb_ffree(x->out);
	pb_ffree(x->din);
	free(x->argmax);
}

static double pool_loss(void *p)
{
	struct pool_ctx *x = p;
	if (x->max)
		pb_maxpool_forward(x->out, x->argmax, x->in, x->B, x->C, x->H,
				   x->W, x->KH, x->stride);
	else
		pb_avgpool_forward(x->out, x->in, x->B, x->C, x->H, x->W,
				   x->KH, x->KW, x->stride);
	return dotd(x->out, x->r, x->n_out);
}

static void pool_bwd(struct pool_ctx *x, float *din)
{
	if (x->max)
		pb_maxpool_backward(din, x->r, x->argmax, x->B, x->C, x->H,
				    x->W, x->KH, x->stride);
	else
		pb_avgpool_backward(din, x->r, x->B, x->C, x->H, x->W, x->KH,
				    x->KW, x->stride);
}

static void test_maxpool_grad(void **state)
{
	/* B, C, H, W, K, stride: tiling, overlapping and sliding windows. */
	static const int shapes[][6] = { { 2, 3, 7, 6, 2, 2 },
					 { 2, 2, 7, 9, 3, 2 },
					 { 1, 3, 5, 6, 3, 1 },
					 { 3, 1, 8, 5, 2, 3 } };
	(void)state;

	for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
		const int *s = shapes[i];
		struct pool_ctx x;

		pool_ctx_init(&x, 1, s[0], s[1], s[2], s[3], s[4], s[4], s[5],
			      900 + i);
		pool_loss(&x);
		pool_bwd(&x, x.din);
		assert_fd(pool_loss, &x, x.in, x.din, x.n_in, FD_EPS,
			  "maxpool din");
		pool_ctx_free(&x);
	}
}

/* 7x7 with 2x2/2 gives 3x3; the last row and column are never read. */
static void test_maxpool_7_to_3(void **state)
{
	float in[49], out[9];
	int32_t am[9];
	(void)state;

	assert_int_equal(pb_out_dim(7, 2, 2, 0), 3);
	for (int i = 0; i < 49; i++)
		in[i] = (float)i;
	for (int i = 0; i < 7; i++)
		in[6 * 7 + i] = in[i * 7 + 6] = 1000.0f;
	pb_maxpool_forward(out, am, in, 1, 1, 7, 7, 2, 2);
	for (int oh = 0; oh < 3; oh++)
		for (int ow = 0; ow < 3; ow++) {
			/* The bottom-right of each window is its largest. */
			int idx = (2 * oh + 1) * 7 + 2 * ow + 1;
			assert_int_equal(am[oh * 3 + ow], idx);
			assert_near(out[oh * 3 + ow], (float)idx, 0);
		}
}

static void test_maxpool_first_max_wins(void **state)
{
	/* Two planes of 4x4; 2x2/2 windows. Plane 0 is constant; in plane 1
	 * each window holds its maximum twice, at offsets 1 and 3. */
	float in[32], out[8];
	int32_t am[8];
	(void)state;

	for (int i = 0; i < 16; i++)
		in[i] = 1.5f;
	for (int i = 0; i < 16; i++)
		in[16 + i] = -1.0f;
	for (int oh = 0; oh < 2; oh++)
		for (int ow = 0; ow < 2; ow++) {
			int tl = 2 * oh * 4 + 2 * ow;
			in[16 + tl + 1] = in[16 + tl + 5] = 2.0f;
		}
	pb_maxpool_forward(out, am, in, 1, 2, 4, 4, 2, 2);
	for (int j = 0; j < 4; j++) {
		int tl = 2 * (j / 2) * 4 + 2 * (j % 2);
		assert_int_equal(am[j], tl);
		assert_int_equal(am[4 + j], tl + 1);
		assert_near(out[4 + j], 2.0f, 0);
	}
}

static void test_avgpool_grad(void **state)
{
	/* B, C, H, W, KH, KW, stride */
	static const int shapes[][7] = { { 2, 3, 7, 6, 2, 2, 2 },
					 { 2, 2, 7, 9, 3, 3, 2 },
					 { 1, 3, 5, 6, 3, 2, 1 },
					 { 3, 2, 5, 3, 5, 3, 1 } };
	(void)state;

	for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
		const int *s = shapes[i];
		struct pool_ctx x;

		pool_ctx_init(&x, 0, s[0], s[1], s[2], s[3], s[4], s[5], s[6],
			      1000 + i);
		pool_loss(&x);
		pool_bwd(&x, x.din);
		assert_fd(pool_loss, &x, x.in, x.din, x.n_in, FD_EPS,
			  "avgpool din");
		pool_ctx_free(&x);
	}
}

static void test_avgpool_global(void **state)
{
	struct pool_ctx x;
	(void)state;

	pool_ctx_init(&x, 0, 2, 3, 5, 3, 5, 3, 1, 1100);
	assert_int_equal(x.n_out, 6);
	pool_loss(&x);
	for (int p = 0; p < 6; p++) {
		double s = 0.0;
		for (int j = 0; j < 15; j++)
			s += x.in[p * 15 + j];
		assert_near(x.out[p], s / 15.0, 1e-6);
	}
	pool_ctx_free(&x);
}

/* ---- backward accumulates ----------------------------------------------- */

/* Backward adds into the gradient buffers: two calls from zero give
 * twice one call (max and average). */
static void test_pool_backward_accumulates(void **state)
{
	(void)state;
	for (int max = 0; max <= 1; max++) {
		struct pool_ctx x;
		float *din2;
		pool_ctx_init(&x, max, 2, 2, 7, 6, 3, 3, 2, 1440);
		pool_loss(&x);
		din2 = fbuf(x.n_in);
		pool_bwd(&x, x.din);
		pool_bwd(&x, din2);
		pool_bwd(&x, din2);
		assert_doubled(din2, x.din, x.n_in,
			       max ? "maxpool din twice" : "avgpool din twice");
		pb_ffree(din2);
		pool_ctx_free(&x);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_maxpool_grad),
		cmocka_unit_test(test_maxpool_7_to_3),
		cmocka_unit_test(test_maxpool_first_max_wins),
		cmocka_unit_test(test_avgpool_grad),
		cmocka_unit_test(test_avgpool_global),
		cmocka_unit_test(test_pool_backward_accumulates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
