/* Batch normalisation (core/nn/layers/batchnorm.c) against finite
 * differences and hand-computed statistics, in training and in eval mode
 * (forward, and backward through BN as a fixed affine map), and
 * accumulating into its gradient buffers. */
#include "gradcheck.h"

#include "prunebench/layers.h"

/* ---- batchnorm ---------------------------------------------------------- */

struct bn_ctx {
	int B, C, HW;
	float eps, momentum;
	float *in, *gamma, *beta, *rm, *rv, *mean, *invstd, *out, *r;
	float *din, *dgamma, *dbeta;
	size_t n;
};

static void bn_ctx_init(struct bn_ctx *x, int B, int C, int HW,
			unsigned long seed)
{
	memset(x, 0, sizeof *x);
	x->B = B;
	x->C = C;
	x->HW = HW;
	x->eps = 1e-5f;
	x->momentum = 0.1f;
	x->n = (size_t)B * C * HW;
	x->in = frand(x->n, -2.0f, 3.0f, seed);
	x->gamma = frand((size_t)C, 0.5f, 1.5f, seed + 1);
	x->beta = frand((size_t)C, -0.5f, 0.5f, seed + 2);
	x->r = frand(x->n, -1.0f, 1.0f, seed + 3);
	x->rm = fbuf((size_t)C);
	x->rv = fbuf((size_t)C);
	x->mean = fbuf((size_t)C);
	x->invstd = fbuf((size_t)C);
	x->out = fbuf(x->n);
	x->din = fbuf(x->n);
	x->dgamma = fbuf((size_t)C);
	x->dbeta = fbuf((size_t)C);
}

static void bn_ctx_free(struct bn_ctx *x)
{
	float *bufs[] = { x->in, x->gamma, x->beta, x->r, x->rm, x->rv,
			  x->mean, x->invstd, x->out, x->din, x->dgamma,
			  x->dbeta };
	for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
		pb_ffree(bufs[i]);
}

static double bn_loss(void *p)
{
	struct bn_ctx *x = p;
	pb_bn_forward_train(x->out, x->mean, x->invstd, x->rm, x->rv, x->in,
			    x->gamma, x->beta, x->B, x->C, x->HW, x->eps,
			    x->momentum);
	return dotd(x->out, x->r, x->n);
}

static void bn_bwd(struct bn_ctx *x, float *din, float *dgamma, float *dbeta)
{
	pb_bn_backward(din, dgamma, dbeta, x->r, x->in, x->mean, x->invstd,
		       x->gamma, x->B, x->C, x->HW);
}

static void test_bn_grad(void **state)
{
	static const int shapes[][3] = { { 3, 4, 5 }, { 2, 3, 7 },
					 { 5, 2, 1 }, { 1, 3, 6 } };
	(void)state;

	for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
		struct bn_ctx x;

		bn_ctx_init(&x, shapes[i][0], shapes[i][1], shapes[i][2],
			    500 + i);
		bn_loss(&x);
		bn_bwd(&x, x.din, x.dgamma, x.dbeta);
		assert_fd(bn_loss, &x, x.in, x.din, x.n, FD_EPS, "bn din");
		assert_fd(bn_loss, &x, x.gamma, x.dgamma, (size_t)x.C, FD_EPS,
			  "bn dgamma");
		assert_fd(bn_loss, &x, x.beta, x.dbeta, (size_t)x.C, FD_EPS,
			  "bn dbeta");
		bn_ctx_free(&x);
	}
}

/* Channel 0 holds 1..6 (mean 3.5, squared deviations 17.5), channel 1
 * holds 2,2,2,2,2,8 (mean 3, squared deviations 30), over B=2, HW=3. */
static const float bn_hand_in[] = { 1, 2, 3, 2, 2, 2, 4, 5, 6, 2, 2, 8 };

static void test_bn_running_stats(void **state)
{
	float out[12], mean[2], invstd[2];
	float rm[2] = { 0.0f, 1.0f }, rv[2] = { 1.0f, 2.0f };
	const float gamma[2] = { 2.0f, 0.5f }, beta[2] = { 0.25f, -1.0f };
	(void)state;

	pb_bn_forward_train(out, mean, invstd, rm, rv, bn_hand_in, gamma,
			    beta, 2, 2, 3, 1e-5f, 0.1f);
	assert_near(mean[0], 3.5f, 1e-6);
	assert_near(mean[1], 3.0f, 1e-6);
	/* Normalisation divides by n (biased): 17.5/6 and 30/6. */
	assert_near(invstd[0], 1.0 / sqrt(17.5 / 6 + 1e-5), 1e-6);
	assert_near(invstd[1], 1.0 / sqrt(5.0 + 1e-5), 1e-6);
	/* Running averages: 0.9 * old + 0.1 * batch, with the unbiased
	 * variances 17.5/5 = 3.5 and 30/5 = 6. */
	assert_near(rm[0], 0.35f, 1e-6);
	assert_near(rm[1], 0.9f * 1.0f + 0.1f * 3.0f, 1e-6);
	assert_near(rv[0], 0.9f * 1.0f + 0.1f * 3.5f, 1e-6);
	assert_near(rv[1], 0.9f * 2.0f + 0.1f * 6.0f, 1e-6);
	/* in[0] = 1 in channel 0; in[11] = 8 in channel 1. */
	assert_near(out[0], 2.0 * (1 - 3.5) / sqrt(17.5 / 6 + 1e-5) +
			   0.25, 1e-5);
	assert_near(out[11], 0.5 * (8 - 3.0) / sqrt(5.0 + 1e-5) - 1.0,
			   1e-5);
}

static void test_bn_eval_uses_running_stats(void **state)
{
	float out[12], train_out[12], mean[2], invstd[2];
	float rm[2] = { 1.0f, -2.0f }, rv[2] = { 4.0f, 0.25f };
	float rm2[2], rv2[2];
	const float gamma[2] = { 2.0f, 0.5f }, beta[2] = { 0.25f, -1.0f };
	(void)state;

	pb_bn_forward_eval(out, bn_hand_in, gamma, beta, rm, rv, 2, 2, 3,
			   1e-5f);
	for (int b = 0; b < 2; b++)
		for (int c = 0; c < 2; c++)
			for (int j = 0; j < 3; j++) {
				int i = (b * 2 + c) * 3 + j;
				double e = gamma[c] * (bn_hand_in[i] - rm[c]) /
						   sqrt(rv[c] + 1e-5) +
					   beta[c];
				assert_near(out[i], e, 1e-5);
			}
	/* Eval must not touch the running stats. */
	assert_near(rm[0], 1.0f, 0);
	assert_near(rv[1], 0.25f, 0);
	/* And it must differ from normalising with the batch's own stats. */
	memcpy(rm2, rm, sizeof rm2);
	memcpy(rv2, rv, sizeof rv2);
	pb_bn_forward_train(train_out, mean, invstd, rm2, rv2, bn_hand_in,
			    gamma, beta, 2, 2, 3, 1e-5f, 0.1f);
	assert_true(fabsf(train_out[0] - out[0]) > 0.1f);
}

/* ---- backward accumulates ----------------------------------------------- */

/* Backward adds into the gradient buffers: two calls from zero give
 * twice one call. */
static void test_bn_backward_accumulates(void **state)
{
	struct bn_ctx x;
	float *din2, *dg2, *db2;
	(void)state;

	bn_ctx_init(&x, 3, 4, 5, 1420);
	bn_loss(&x);
	din2 = fbuf(x.n);
	dg2 = fbuf((size_t)x.C);
	db2 = fbuf((size_t)x.C);
	bn_bwd(&x, x.din, x.dgamma, x.dbeta);
	bn_bwd(&x, din2, dg2, db2);
	bn_bwd(&x, din2, dg2, db2);
	assert_doubled(din2, x.din, x.n, "bn din twice");
	assert_doubled(dg2, x.dgamma, (size_t)x.C, "bn dgamma twice");
	assert_doubled(db2, x.dbeta, (size_t)x.C, "bn dbeta twice");
	pb_ffree(din2);
	pb_ffree(dg2);
	pb_ffree(db2);
	bn_ctx_free(&x);
}

/* ---- eval mode: BN as a fixed affine map --------------------------------- */

/* Running statistics away from (0, 1), so every term of the eval
 * backward shows. */
static void bn_set_running(struct bn_ctx *x, unsigned long seed)
{
	tu_fill_uniform(x->rm, (size_t)x->C, -1.0f, 1.0f, seed);
	tu_fill_uniform(x->rv, (size_t)x->C, 0.25f, 4.0f, seed + 1);
}

static double bn_eval_loss(void *p)
{
	struct bn_ctx *x = p;
	pb_bn_forward_eval(x->out, x->in, x->gamma, x->beta, x->rm, x->rv,
			   x->B, x->C, x->HW, x->eps);
	return dotd(x->out, x->r, x->n);
}

static void bn_eval_bwd(struct bn_ctx *x, float *din, float *dgamma,
			float *dbeta)
{
	pb_bn_backward_eval(din, dgamma, dbeta, x->r, x->in, x->gamma, x->rm,
			    x->rv, x->B, x->C, x->HW, x->eps);
}

static void test_bn_eval_grad(void **state)
{
	static const int shapes[][3] = { { 3, 4, 5 }, { 2, 3, 7 },
					 { 1, 2, 1 }, { 4, 1, 6 } };
	(void)state;

	for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
		struct bn_ctx x;
		float *rm0, *rv0;

		bn_ctx_init(&x, shapes[i][0], shapes[i][1], shapes[i][2],
			    700 + i);
		bn_set_running(&x, 710 + i);
		rm0 = fbuf((size_t)x.C);
		rv0 = fbuf((size_t)x.C);
		memcpy(rm0, x.rm, (size_t)x.C * sizeof *rm0);
		memcpy(rv0, x.rv, (size_t)x.C * sizeof *rv0);
		bn_eval_loss(&x);
		bn_eval_bwd(&x, x.din, x.dgamma, x.dbeta);
		assert_fd(bn_eval_loss, &x, x.in, x.din, x.n, FD_EPS,
			  "bn eval din");
		assert_fd(bn_eval_loss, &x, x.gamma, x.dgamma, (size_t)x.C,
			  FD_EPS, "bn eval dgamma");
		assert_fd(bn_eval_loss, &x, x.beta, x.dbeta, (size_t)x.C,
			  FD_EPS, "bn eval dbeta");
		/* The statistics are constants: neither pass moves them. */
		assert_memory_equal(rm0, x.rm, (size_t)x.C * sizeof *rm0);
		assert_memory_equal(rv0, x.rv, (size_t)x.C * sizeof *rv0);
		pb_ffree(rm0);
		pb_ffree(rv0);
		bn_ctx_free(&x);
	}
}

/* By hand, channel 1 of bn_hand_in with running mean 1, variance 3
 * (eps 1e-5), gamma 0.5, and dout 1 everywhere: din = 0.5 / sqrt(3 +
 * 1e-5) for each value, dbeta = 6 (six values), dgamma = sum of (x - 1)
 * / sqrt(3 + 1e-5) = (18 - 6) / sqrt(3 + 1e-5). */
static void test_bn_eval_grad_by_hand(void **state)
{
	const float gamma[2] = { 2.0f, 0.5f }, rm[2] = { 0.0f, 1.0f };
	const float rv[2] = { 1.0f, 3.0f };
	float dout[12], din[12] = { 0 }, dg[2] = { 0 }, db[2] = { 0 };
	const double is = 1.0 / sqrt(3.0 + 1e-5);
	(void)state;

	for (int i = 0; i < 12; i++)
		dout[i] = 1.0f;
	pb_bn_backward_eval(din, dg, db, dout, bn_hand_in, gamma, rm, rv, 2, 2,
			    3, 1e-5f);
	for (int b = 0; b < 2; b++)
		for (int j = 0; j < 3; j++)
			assert_near(din[(b * 2 + 1) * 3 + j], 0.5 * is, 1e-6);
	assert_near(db[1], 6.0, 1e-6);
	assert_near(dg[1], 12.0 * is, 1e-5);
	/* Channel 0: 1..6 around 0 with variance 1: sum x = 21. */
	assert_near(dg[0], 21.0 / sqrt(1.0 + 1e-5), 1e-4);
	assert_near(din[0], 2.0 / sqrt(1.0 + 1e-5), 1e-6);
}

static void test_bn_eval_backward_accumulates(void **state)
{
	struct bn_ctx x;
	float *din2, *dg2, *db2;
	(void)state;

	bn_ctx_init(&x, 3, 4, 5, 1430);
	bn_set_running(&x, 1431);
	din2 = fbuf(x.n);
	dg2 = fbuf((size_t)x.C);
	db2 = fbuf((size_t)x.C);
	bn_eval_bwd(&x, x.din, x.dgamma, x.dbeta);
	bn_eval_bwd(&x, din2, dg2, db2);
	bn_eval_bwd(&x, din2, dg2, db2);
	assert_doubled(din2, x.din, x.n, "bn eval din twice");
	assert_doubled(dg2, x.dgamma, (size_t)x.C, "bn eval dgamma twice");
	assert_doubled(db2, x.dbeta, (size_t)x.C, "bn eval dbeta twice");
	pb_ffree(din2);
	pb_ffree(dg2);
	pb_ffree(db2);
	bn_ctx_free(&x);
}

/* ---- the checker itself ------------------------------------------------- */

/* The eval check must reject the training backward (gradient through
 * batch statistics the eval forward does not use). */
static void test_fd_catches_bn_eval_with_batch_stats(void **state)
{
	struct bn_ctx b;
	(void)state;

	bn_ctx_init(&b, 3, 2, 4, 1520);
	bn_set_running(&b, 1521);
	bn_loss(&b);           /* batch statistics into mean, invstd */
	bn_set_running(&b, 1521);
	memset(b.din, 0, b.n * sizeof *b.din);
	bn_bwd(&b, b.din, NULL, NULL);
	assert_true(fd_worst(bn_eval_loss, &b, b.in, b.din, b.n, FD_EPS,
			     "bn eval din via batch stats (must fail)") >=
		    FD_TOL);
	bn_ctx_free(&b);
}


/* The finite-difference check must reject a BN input gradient that
 * ignores the batch statistics (gamma * invstd * dout alone). */
static void test_fd_catches_bn_din_without_batch_stats(void **state)
{
	struct bn_ctx b;
	(void)state;

	bn_ctx_init(&b, 3, 2, 4, 1510);
	bn_loss(&b);
	for (int n = 0; n < b.B; n++)
		for (int ch = 0; ch < b.C; ch++)
			for (int j = 0; j < b.HW; j++) {
				size_t i = ((size_t)n * b.C + ch) * b.HW + j;
				b.din[i] = b.gamma[ch] * b.invstd[ch] * b.r[i];
			}
	assert_true(fd_worst(bn_loss, &b, b.in, b.din, b.n, FD_EPS,
			     "bn din w/o batch stats (must fail)") >= FD_TOL);
	bn_ctx_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fd_catches_bn_din_without_batch_stats),
		cmocka_unit_test(test_bn_grad),
		cmocka_unit_test(test_bn_running_stats),
		cmocka_unit_test(test_bn_eval_uses_running_stats),
		cmocka_unit_test(test_bn_backward_accumulates),
		cmocka_unit_test(test_fd_catches_bn_eval_with_batch_stats),
		cmocka_unit_test(test_bn_eval_grad),
		cmocka_unit_test(test_bn_eval_grad_by_hand),
		cmocka_unit_test(test_bn_eval_backward_accumulates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
