/* The element-wise layers, relu, dropout and add (core/nn/layers/relu.c,
 * dropout.c, add.c), against finite differences (inputs kept away from
 * relu's kink), dropout's mask statistics, and accumulating into their
 * gradient buffers. */
#include "gradcheck.h"

#include "prunebench/layers.h"

/* ---- shared by relu, dropout and add ------------------------------------ */

struct ew_ctx {
	size_t n;
	float *a, *b, *keep, *out, *r, *da, *db;
	int op; /* 0 relu, 1 dropout, 2 add */
};

static double ew_loss(void *p)
{
	struct ew_ctx *x = p;
	if (x->op == 0)
		pb_relu_forward(x->out, x->a, x->n);
	else if (x->op == 1)
		pb_dropout_forward(x->out, x->a, x->keep, x->n);
	else
		pb_add_forward(x->out, x->a, x->b, x->n);
	return dotd(x->out, x->r, x->n);
}

static void ew_ctx_init(struct ew_ctx *x, int op, size_t n,
			unsigned long seed)
{
	memset(x, 0, sizeof *x);
	x->op = op;
	x->n = n;
	x->a = frand(n, -1.0f, 1.0f, seed);
	x->b = frand(n, -1.0f, 1.0f, seed + 1);
	x->r = frand(n, -1.0f, 1.0f, seed + 2);
	x->keep = fbuf(n);
	x->out = fbuf(n);
	x->da = fbuf(n);
	x->db = fbuf(n);
}

static void ew_ctx_free(struct ew_ctx *x)
{
	pb_ffree(x->a);
	pb_ffree(x->b);
	pb_ffree(x->r);
	pb_ffree(x->keep);
	pb_ffree(x->out);
	pb_ffree(x->da);
	pb_ffree(x->db);
}

/* ---- relu --------------------------------------------------------------- */

static void test_relu_grad(void **state)
{
	struct ew_ctx x;
	size_t neg = 0;
	(void)state;

	ew_ctx_init(&x, 0, 157, 600);
	/* Keep every input at least 0.1 from the kink at 0. */
	for (size_t i = 0; i < x.n; i++)
		x.a[i] = x.a[i] < 0 ? x.a[i] - 0.1f : x.a[i] + 0.1f;
	ew_loss(&x);
	for (size_t i = 0; i < x.n; i++) {
		assert_near(x.out[i], x.a[i] > 0 ? x.a[i] : 0.0f, 0);
		neg += x.a[i] < 0;
	}
	assert_true(neg > 20 && neg < x.n - 20);
	pb_relu_backward(x.da, x.r, x.out, x.n);
	assert_fd(ew_loss, &x, x.a, x.da, x.n, FD_EPS, "relu din");
	ew_ctx_free(&x);
}

/* ---- dropout ------------------------------------------------------------ */

static void test_dropout_mask(void **state)
{
	const size_t n = 100000;
	const float p = 0.3f, scale = (float)(1.0 / 0.7);
	float *k1 = fbuf(n), *k2 = fbuf(n);
	gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
	size_t zeros = 0;
	(void)state;

	gsl_rng_set(rng, 7);
	pb_dropout_fill_mask(k1, n, p, rng);
	gsl_rng_set(rng, 7);
	pb_dropout_fill_mask(k2, n, p, rng);
	assert_memory_equal(k1, k2, n * sizeof *k1);
	for (size_t i = 0; i < n; i++) {
		assert_true(k1[i] == 0.0f || k1[i] == scale);
		zeros += k1[i] == 0.0f;
	}
	/* Binomial(1e5, 0.3) has sd 145; 1000 is about 7 sd. */
	assert_true(zeros > 29000 && zeros < 31000);

	pb_dropout_fill_mask(k1, n, 0.0f, rng);
	for (size_t i = 0; i < n; i++)
		assert_near(k1[i], 1.0f, 0);
	gsl_rng_free(rng);
	pb_ffree(k1);
	pb_ffree(k2);
}

static void test_dropout_grad(void **state)
{
	struct ew_ctx x;
	gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
	(void)state;

	ew_ctx_init(&x, 1, 143, 700);
	gsl_rng_set(rng, 3);
	pb_dropout_fill_mask(x.keep, x.n, 0.4f, rng);
	ew_loss(&x);
	for (size_t i = 0; i < x.n; i++)
		assert_near(x.out[i], x.a[i] * x.keep[i], 0);
	pb_dropout_backward(x.da, x.r, x.keep, x.n);
	assert_fd(ew_loss, &x, x.a, x.da, x.n, FD_EPS, "dropout din");
	gsl_rng_free(rng);
	ew_ctx_free(&x);
}

/* ---- add ---------------------------------------------------------------- */

static void test_add_grad(void **state)
{
	struct ew_ctx x;
	float *alias;
	(void)state;

	ew_ctx_init(&x, 2, 131, 800);
	pb_add_backward(x.da, x.db, x.r, x.n);
	assert_fd(ew_loss, &x, x.a, x.da, x.n, FD_EPS, "add da");
	assert_fd(ew_loss, &x, x.b, x.db, x.n, FD_EPS, "add db");
	/* One buffer given for both inputs takes both contributions. */
	alias = fbuf(x.n);
	pb_add_backward(alias, alias, x.r, x.n);
	pb_add_backward(NULL, x.db, x.r, x.n);
	for (size_t i = 0; i < x.n; i++) {
		assert_near(alias[i], 2.0f * x.r[i], 0);
		assert_near(x.db[i], 2.0f * x.r[i], 0);
	}
	pb_ffree(alias);
	ew_ctx_free(&x);
}

/* ---- backward accumulates ----------------------------------------------- */

/* Backward adds into the gradient buffers: two calls from zero give
 * twice one call (relu, dropout, add). */
static void test_elementwise_backward_accumulates(void **state)
{
	struct ew_ctx x;
	float *d2;
	gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
	(void)state;

	ew_ctx_init(&x, 0, 97, 1450);
	d2 = fbuf(x.n);
	pb_relu_forward(x.out, x.a, x.n);
	pb_relu_backward(x.da, x.r, x.out, x.n);
	pb_relu_backward(d2, x.r, x.out, x.n);
	pb_relu_backward(d2, x.r, x.out, x.n);
	assert_doubled(d2, x.da, x.n, "relu din twice");
	memset(d2, 0, x.n * sizeof *d2);
	gsl_rng_set(rng, 1);
	pb_dropout_fill_mask(x.keep, x.n, 0.5f, rng);
	pb_dropout_backward(x.db, x.r, x.keep, x.n);
	pb_dropout_backward(d2, x.r, x.keep, x.n);
	pb_dropout_backward(d2, x.r, x.keep, x.n);
	assert_doubled(d2, x.db, x.n, "dropout din twice");
	memset(x.da, 0, x.n * sizeof *d2);
	memset(d2, 0, x.n * sizeof *d2);
	pb_add_backward(x.da, NULL, x.r, x.n);
	pb_add_backward(d2, NULL, x.r, x.n);
	pb_add_backward(d2, NULL, x.r, x.n);
	assert_doubled(d2, x.da, x.n, "add da twice");
	gsl_rng_free(rng);
	pb_ffree(d2);
	ew_ctx_free(&x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_relu_grad),
		cmocka_unit_test(test_dropout_mask),
		cmocka_unit_test(test_dropout_grad),
		cmocka_unit_test(test_add_grad),
		cmocka_unit_test(test_elementwise_backward_accumulates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
