/* Layer kernels against finite differences and against hand-computed
 * values. Every gradient a backward produces is compared with the central
 * difference of L = sum(out * R) for a fixed random R, accumulated in
 * double; the softmax cross-entropy is checked against its own loss. */
#include "testutil.h"

#include <gsl/gsl_randist.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "prunebench/layers.h"
#include "prunebench/tensor.h"

/* Float forwards perturbed by 1e-2 give central differences good to about
 * 1e-4 of the gradient's scale here; 1e-2 leaves room for that noise and
 * still catches a wrong term (see test_fd_catches_wrong_gradients). */
#define FD_TOL 1e-2
#define FD_FLOOR 1e-1
#define FD_EPS 1e-2f

static float *fbuf(size_t n)
{
	float *p = pb_falloc(n);
	assert_non_null(p);
	return p;
}

static float *frand(size_t n, float lo, float hi, unsigned long seed)
{
	float *p = fbuf(n);
	tu_fill_uniform(p, n, lo, hi, seed);
	return p;
}

static double dotd(const float *a, const float *b, size_t n)
{
	double s = 0.0;
	for (size_t i = 0; i < n; i++)
		s += (double)a[i] * b[i];
	return s;
}

static int verbose(void)
{
	return getenv("PB_TEST_VERBOSE") != NULL;
}

/* Runs the forward for the current inputs and returns the loss. */
typedef double (*loss_fn)(void *ctx);

/* The worst relative error between the analytic gradient g and central
 * differences of f over every element of x. x is restored afterwards. */
static double fd_worst(loss_fn f, void *ctx, float *x, const float *g,
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
static void assert_close(const float *a, const float *b, size_t n,
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
static void assert_near_at(double got, double want, double tol,
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
static void assert_nonzero(const float *a, size_t n)
{
	size_t nz = 0;
	for (size_t i = 0; i < n; i++)
		nz += a[i] != 0.0f;
	assert_true(nz > 0);
}

/* twice (after two backward calls from zero) equals 2 * once. */
static void assert_doubled(const float *twice, const float *once, size_t n,
			   const char *what)
{
	float *two = fbuf(n);
	for (size_t i = 0; i < n; i++)
		two[i] = 2.0f * once[i];
	assert_nonzero(once, n);
	assert_close(twice, two, n, 1e-5, what);
	pb_ffree(two);
}

static void set_threads(int n)
{
#ifdef _OPENMP
	omp_set_num_threads(n);
#else
	(void)n;
#endif
}

static int get_threads(void)
{
#ifdef _OPENMP
	return omp_get_max_threads();
#else
	return 1;
#endif
}

/* ---- conv2d ------------------------------------------------------------- */

struct conv_shape {
	int B, C, H, W, OC, K, stride, pad, bias;
};

/* Shapes chosen to be multiples of nothing, with windows that do not
 * tile the input exactly (trailing rows dropped), 1x1 kernels on and off
 * the no-im2col path, and batches both below and above the thread count. */
static const struct conv_shape conv_shapes[] = {
	{ 2, 3, 7, 6, 4, 3, 1, 1, 1 },
	{ 3, 2, 9, 7, 5, 3, 2, 0, 0 },
	{ 2, 3, 8, 9, 3, 3, 2, 1, 1 },
	{ 3, 4, 5, 6, 3, 1, 1, 0, 1 },
	{ 5, 3, 6, 5, 2, 1, 1, 0, 0 },
	{ 2, 3, 7, 7, 2, 1, 2, 0, 1 },
	{ 2, 2, 5, 4, 3, 1, 1, 1, 0 },
	{ 1, 2, 6, 5, 3, 5, 1, 2, 0 },
	{ 3, 2, 7, 8, 3, 3, 3, 1, 1 },
	{ 2, 3, 5, 7, 2, 3, 1, 0, 0 },
	{ 1, 1, 4, 5, 2, 4, 2, 1, 1 },
};

struct conv_ctx {
	struct conv_shape s;
	float *in, *w, *b, *out, *r, *ws;
	float *din, *dw, *db;
	size_t n_in, n_w, n_out;
};

static void conv_ctx_init(struct conv_ctx *x, const struct conv_shape *s,
			  unsigned long seed)
{
	const int OH = pb_out_dim(s->H, s->K, s->stride, s->pad);
	const int OW = pb_out_dim(s->W, s->K, s->stride, s->pad);

	memset(x, 0, sizeof *x);
	x->s = *s;
	x->n_in = (size_t)s->B * s->C * s->H * s->W;
	x->n_w = (size_t)s->OC * s->C * s->K * s->K;
	x->n_out = (size_t)s->B * s->OC * OH * OW;
	x->in = frand(x->n_in, -1.0f, 1.0f, seed);
	x->w = frand(x->n_w, -0.5f, 0.5f, seed + 1);
	x->b = s->bias ? frand((size_t)s->OC, -0.5f, 0.5f, seed + 2) : NULL;
	x->r = frand(x->n_out, -1.0f, 1.0f, seed + 3);
	x->out = fbuf(x->n_out);
	x->ws = fbuf(pb_conv2d_workspace(s->B, s->C, s->H, s->W, s->OC,
					 s->K, s->stride, s->pad));
	x->din = fbuf(x->n_in);
	x->dw = fbuf(x->n_w);
	x->db = fbuf((size_t)s->OC);
}

static void conv_ctx_free(struct conv_ctx *x)
{
	pb_ffree(x->in);
	pb_ffree(x->w);
	pb_ffree(x->b);
	pb_ffree(x->r);
	pb_ffree(x->out);
	pb_ffree(x->ws);
	pb_ffree(x->din);
	pb_ffree(x->dw);
	pb_ffree(x->db);
}

static void conv_fwd(struct conv_ctx *x)
{
	const struct conv_shape *s = &x->s;
	pb_conv2d_forward(x->out, x->in, x->w, x->b, s->B, s->C, s->H, s->W,
			  s->OC, s->K, s->stride, s->pad, x->ws);
}

/* Backward with dout = R, adding into din, dw and db. */
static void conv_bwd(struct conv_ctx *x, float *din, float *dw, float *db)
{
	const struct conv_shape *s = &x->s;
	pb_conv2d_backward(din, dw, db, x->r, x->in, x->w, s->B, s->C, s->H,
			   s->W, s->OC, s->K, s->stride, s->pad, x->ws);
}

static double conv_loss(void *p)
{
	struct conv_ctx *x = p;
	conv_fwd(x);
	return dotd(x->out, x->r, x->n_out);
}

static void conv_describe(char *buf, size_t len, const struct conv_shape *s,
			  const char *what)
{
	snprintf(buf, len, "conv %d,%d,%dx%d>%d k%d s%d p%d%s %s", s->B, s->C,
		 s->H, s->W, s->OC, s->K, s->stride, s->pad,
		 s->bias ? " b" : "", what);
}

static void test_conv_forward_matches_ref(void **state)
{
	static const struct conv_shape big[] = {
		{ 3, 16, 13, 11, 24, 3, 1, 1, 1 },
		{ 2, 7, 15, 15, 9, 3, 2, 1, 0 },
		{ 4, 24, 9, 10, 17, 1, 1, 0, 1 },
		{ 2, 5, 12, 9, 6, 5, 2, 2, 1 },
	};
	const size_t n_small = sizeof conv_shapes / sizeof conv_shapes[0];
	const size_t n_big = sizeof big / sizeof big[0];
	(void)state;

	for (size_t i = 0; i < n_small + n_big; i++) {
		const struct conv_shape *s =
			i < n_small ? &conv_shapes[i] : &big[i - n_small];
		struct conv_ctx x;
		float *ref;
		char what[96];

		conv_ctx_init(&x, s, 100 + i);
		ref = fbuf(x.n_out);
		conv_fwd(&x);
		pb_conv2d_forward_ref(ref, x.in, x.w, x.b, s->B, s->C, s->H,
				      s->W, s->OC, s->K, s->stride, s->pad);
		conv_describe(what, sizeof what, s, "fwd vs ref");
		assert_nonzero(ref, x.n_out);
		assert_close(x.out, ref, x.n_out, 1e-4, what);
		pb_ffree(ref);
		conv_ctx_free(&x);
	}
}

static void test_conv_grad(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof conv_shapes / sizeof conv_shapes[0];
	     i++) {
		const struct conv_shape *s = &conv_shapes[i];
		struct conv_ctx x;
		char what[96];

		conv_ctx_init(&x, s, 200 + i);
		conv_bwd(&x, x.din, x.dw, s->bias ? x.db : NULL);
		conv_describe(what, sizeof what, s, "din");
		assert_fd(conv_loss, &x, x.in, x.din, x.n_in, FD_EPS, what);
		conv_describe(what, sizeof what, s, "dweight");
		assert_fd(conv_loss, &x, x.w, x.dw, x.n_w, FD_EPS, what);
		if (s->bias) {
			conv_describe(what, sizeof what, s, "dbias");
			assert_fd(conv_loss, &x, x.b, x.db, (size_t)s->OC,
				  FD_EPS, what);
		}
		conv_ctx_free(&x);
	}
}

/* Each gradient wanted alone comes out the same as all of them together
 * (the model passes din = NULL for its first layer). */
static void test_conv_backward_null_grads(void **state)
{
	(void)state;
	for (size_t i = 0; i < 6; i++) {
		const struct conv_shape *s = &conv_shapes[i];
		struct conv_ctx x;
		float *din, *dw, *db;

		conv_ctx_init(&x, s, 300 + i);
		conv_bwd(&x, x.din, x.dw, x.db);
		din = fbuf(x.n_in);
		dw = fbuf(x.n_w);
		db = fbuf((size_t)s->OC);
		conv_bwd(&x, din, NULL, NULL);
		conv_bwd(&x, NULL, dw, NULL);
		conv_bwd(&x, NULL, NULL, db);
		assert_memory_equal(din, x.din, x.n_in * sizeof *din);
		assert_memory_equal(dw, x.dw, x.n_w * sizeof *dw);
		assert_memory_equal(db, x.db, (size_t)s->OC * sizeof *db);
		pb_ffree(din);
		pb_ffree(dw);
		pb_ffree(db);
		conv_ctx_free(&x);
	}
}

/* Runs forward and backward with nt threads and a workspace sized for
 * them; returns out | din | dw | db in one buffer. */
static float *conv_run_threads(const struct conv_shape *s, int nt,
			       size_t *len)
{
	struct conv_ctx x;
	float *all;

	set_threads(nt);
	conv_ctx_init(&x, s, 400);
	conv_fwd(&x);
	conv_bwd(&x, x.din, x.dw, x.db);
	*len = x.n_out + x.n_in + x.n_w + (size_t)s->OC;
	all = fbuf(*len);
	memcpy(all, x.out, x.n_out * sizeof *all);
	memcpy(all + x.n_out, x.din, x.n_in * sizeof *all);
	memcpy(all + x.n_out + x.n_in, x.dw, x.n_w * sizeof *all);
	memcpy(all + x.n_out + x.n_in + x.n_w, x.db,
	       (size_t)s->OC * sizeof *all);
	conv_ctx_free(&x);
	return all;
}

/* More threads than samples and fewer: the per-thread partial gradients
 * must add up to the one-thread result, and repeat bit for bit. */
static void test_conv_threads(void **state)
{
	static const struct conv_shape shapes[] = {
		{ 2, 3, 7, 6, 4, 3, 1, 1, 1 },
		{ 7, 3, 9, 8, 5, 3, 2, 1, 1 },
		{ 5, 4, 6, 7, 3, 1, 1, 0, 1 },
	};
	const int saved = get_threads();
	(void)state;

#ifdef _OPENMP
	{
		const struct conv_shape *s = &shapes[1];
		size_t w1, w3;
		set_threads(1);
		w1 = pb_conv2d_workspace(s->B, s->C, s->H, s->W, s->OC, s->K,
					 s->stride, s->pad);
		set_threads(3);
		w3 = pb_conv2d_workspace(s->B, s->C, s->H, s->W, s->OC, s->K,
					 s->stride, s->pad);
		assert_true(w3 >= 3 * w1);
	}
#endif
	for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
		size_t n1, n3a, n3b;
		float *one = conv_run_threads(&shapes[i], 1, &n1);
		float *three = conv_run_threads(&shapes[i], 3, &n3a);
		float *again = conv_run_threads(&shapes[i], 3, &n3b);

		assert_int_equal(n1, n3a);
		assert_close(three, one, n1, 1e-5, "conv 3 threads vs 1");
		assert_memory_equal(three, again, n1 * sizeof *three);
		pb_ffree(one);
		pb_ffree(three);
		pb_ffree(again);
	}
	set_threads(saved);
}

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

/* ---- relu --------------------------------------------------------------- */

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

/* ---- dropout -------------------------------------------------------------- */

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

/* ---- add ------------------------------------------------------------------ */

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

/* ---- pooling -------------------------------------------------------------- */

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

/* ---- linear --------------------------------------------------------------- */

struct lin_ctx {
	int B, IN, OUT, bias;
	float *in, *w, *b, *out, *r, *din, *dw, *db;
};

static void lin_ctx_init(struct lin_ctx *x, int B, int IN, int OUT, int bias,
			 unsigned long seed)
{
	memset(x, 0, sizeof *x);
	x->B = B;
	x->IN = IN;
	x->OUT = OUT;
	x->bias = bias;
	x->in = frand((size_t)B * IN, -1.0f, 1.0f, seed);
	x->w = frand((size_t)OUT * IN, -0.5f, 0.5f, seed + 1);
	x->b = bias ? frand((size_t)OUT, -0.5f, 0.5f, seed + 2) : NULL;
	x->r = frand((size_t)B * OUT, -1.0f, 1.0f, seed + 3);
	x->out = fbuf((size_t)B * OUT);
	x->din = fbuf((size_t)B * IN);
	x->dw = fbuf((size_t)OUT * IN);
	x->db = fbuf((size_t)OUT);
}

static void lin_ctx_free(struct lin_ctx *x)
{
	float *bufs[] = { x->in, x->w, x->b, x->r, x->out, x->din, x->dw,
			  x->db };
	for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
		pb_ffree(bufs[i]);
}

static double lin_loss(void *p)
{
	struct lin_ctx *x = p;
	pb_linear_forward(x->out, x->in, x->w, x->b, x->B, x->IN, x->OUT);
	return dotd(x->out, x->r, (size_t)x->B * x->OUT);
}

static void lin_bwd(struct lin_ctx *x, float *din, float *dw, float *db)
{
	pb_linear_backward(din, dw, db, x->r, x->in, x->w, x->B, x->IN,
			   x->OUT);
}

static void test_linear(void **state)
{
	static const int shapes[][4] = { { 3, 7, 5, 1 }, { 1, 11, 3, 0 },
					 { 6, 4, 9, 1 } };
	(void)state;

	for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
		struct lin_ctx x;
		float *ref;

		lin_ctx_init(&x, shapes[i][0], shapes[i][1], shapes[i][2],
			     shapes[i][3], 1200 + i);
		ref = fbuf((size_t)x.B * x.OUT);
		for (int b = 0; b < x.B; b++)
			for (int o = 0; o < x.OUT; o++) {
				double s = x.b ? x.b[o] : 0.0;
				for (int k = 0; k < x.IN; k++)
					s += (double)x.in[b * x.IN + k] *
					     x.w[o * x.IN + k];
				ref[b * x.OUT + o] = (float)s;
			}
		lin_loss(&x);
		assert_close(x.out, ref, (size_t)x.B * x.OUT, 1e-5,
			     "linear fwd");
		lin_bwd(&x, x.din, x.dw, x.bias ? x.db : NULL);
		assert_fd(lin_loss, &x, x.in, x.din, (size_t)x.B * x.IN,
			  FD_EPS, "linear din");
		assert_fd(lin_loss, &x, x.w, x.dw, (size_t)x.OUT * x.IN,
			  FD_EPS, "linear dweight");
		if (x.bias)
			assert_fd(lin_loss, &x, x.b, x.db, (size_t)x.OUT,
				  FD_EPS, "linear dbias");
		pb_ffree(ref);
		lin_ctx_free(&x);
	}
}

/* ---- softmax cross-entropy ------------------------------------------------ */

struct sx_ctx {
	int B, K;
	float *logits, *probs, *dlogits;
	uint8_t *labels;
};

static double sx_loss(void *p)
{
	struct sx_ctx *x = p;
	return pb_softmax_xent_forward(x->probs, x->logits, x->labels, x->B,
				       x->K, NULL);
}

static void test_softmax_xent_grad(void **state)
{
	struct sx_ctx x = { .B = 5, .K = 7 };
	const size_t n = (size_t)x.B * x.K;
	uint8_t labels[5] = { 3, 0, 6, 3, 1 };
	int correct = -1, expect = 0;
	(void)state;

	x.labels = labels;
	x.logits = frand(n, -3.0f, 3.0f, 1300);
	x.probs = fbuf(n);
	x.dlogits = fbuf(n);
	/* Make sample 1's label its argmax so the hit count is not 0. */
	x.logits[1 * x.K + 0] = 5.0f;
	pb_softmax_xent_forward(x.probs, x.logits, x.labels, x.B, x.K,
				&correct);
	for (int b = 0; b < x.B; b++) {
		double s = 0.0;
		int arg = 0;
		for (int k = 0; k < x.K; k++) {
			s += x.probs[b * x.K + k];
			if (x.logits[b * x.K + k] > x.logits[b * x.K + arg])
				arg = k;
		}
		assert_near(s, 1.0, 1e-6);
		expect += arg == labels[b];
	}
	assert_true(expect >= 1);
	assert_int_equal(correct, expect);
	/* Backward overwrites: stale values must not leak through. */
	for (size_t i = 0; i < n; i++)
		x.dlogits[i] = 123.0f;
	pb_softmax_xent_backward(x.dlogits, x.probs, x.labels, x.B, x.K);
	assert_fd(sx_loss, &x, x.logits, x.dlogits, n, 1e-3f,
		  "softmax_xent dlogits");
	pb_ffree(x.logits);
	pb_ffree(x.probs);
	pb_ffree(x.dlogits);
}

static void test_softmax_xent_stable(void **state)
{
	const float logits[6] = { 1000.0f, 1001.0f, 999.0f, 0.0f, 200.0f, 0.0f };
	const uint8_t labels[2] = { 1, 0 };
	const double lse = log(1.0 + exp(-1.0) + exp(-2.0));
	float probs[6];
	int correct;
	double loss;
	(void)state;

	/* Row 0: -log softmax at the max is log(1 + e^-1 + e^-2). Row 1: a
	 * confident mistake whose probability underflows float; its loss is
	 * still 200 + log(1 + 2e^-200) = 200. */
	loss = pb_softmax_xent_forward(probs, logits, labels, 2, 3, &correct);
	assert_true(isfinite(loss));
	assert_near(loss, (lse + 200.0) / 2.0, 1e-6);
	assert_int_equal(correct, 1);
	assert_near(probs[1], 1.0 / (1.0 + exp(-1.0) + exp(-2.0)),
			   1e-6);
	assert_near(probs[4], 1.0f, 0);
}

/* ---- backward accumulates --------------------------------------------------- */

static void test_backward_accumulates(void **state)
{
	(void)state;
	{
		struct conv_ctx x;
		float *din2, *dw2, *db2;
		conv_ctx_init(&x, &conv_shapes[0], 1400);
		din2 = fbuf(x.n_in);
		dw2 = fbuf(x.n_w);
		db2 = fbuf((size_t)x.s.OC);
		conv_bwd(&x, x.din, x.dw, x.db);
		conv_bwd(&x, din2, dw2, db2);
		conv_bwd(&x, din2, dw2, db2);
		assert_doubled(din2, x.din, x.n_in, "conv din twice");
		assert_doubled(dw2, x.dw, x.n_w, "conv dweight twice");
		assert_doubled(db2, x.db, (size_t)x.s.OC, "conv dbias twice");
		pb_ffree(din2);
		pb_ffree(dw2);
		pb_ffree(db2);
		conv_ctx_free(&x);
	}
	{
		struct conv_ctx x;
		float *din2, *dw2;
		conv_ctx_init(&x, &conv_shapes[3], 1410);
		din2 = fbuf(x.n_in);
		dw2 = fbuf(x.n_w);
		conv_bwd(&x, x.din, x.dw, NULL);
		conv_bwd(&x, din2, dw2, NULL);
		conv_bwd(&x, din2, dw2, NULL);
		assert_doubled(din2, x.din, x.n_in, "conv 1x1 din twice");
		assert_doubled(dw2, x.dw, x.n_w, "conv 1x1 dweight twice");
		pb_ffree(din2);
		pb_ffree(dw2);
		conv_ctx_free(&x);
	}
	{
		struct bn_ctx x;
		float *din2, *dg2, *db2;
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
	{
		struct lin_ctx x;
		float *din2, *dw2, *db2;
		lin_ctx_init(&x, 3, 7, 5, 1, 1430);
		din2 = fbuf((size_t)x.B * x.IN);
		dw2 = fbuf((size_t)x.OUT * x.IN);
		db2 = fbuf((size_t)x.OUT);
		lin_bwd(&x, x.din, x.dw, x.db);
		lin_bwd(&x, din2, dw2, db2);
		lin_bwd(&x, din2, dw2, db2);
		assert_doubled(din2, x.din, (size_t)x.B * x.IN,
			       "linear din twice");
		assert_doubled(dw2, x.dw, (size_t)x.OUT * x.IN,
			       "linear dweight twice");
		assert_doubled(db2, x.db, (size_t)x.OUT, "linear dbias twice");
		pb_ffree(din2);
		pb_ffree(dw2);
		pb_ffree(db2);
		lin_ctx_free(&x);
	}
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
	{
		struct ew_ctx x;
		float *d2;
		gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
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
}

/* ---- the checker itself --------------------------------------------------- */

/* The finite-difference check must reject gradients that are slightly
 * wrong: one conv weight gradient off by 5%, and a BN input gradient that
 * ignores the batch statistics (gamma * invstd * dout alone). */
static void test_fd_catches_wrong_gradients(void **state)
{
	struct conv_ctx c;
	struct bn_ctx b;
	(void)state;

	conv_ctx_init(&c, &conv_shapes[0], 1500);
	conv_bwd(&c, c.din, c.dw, c.db);
	assert_fd(conv_loss, &c, c.w, c.dw, c.n_w, FD_EPS, "conv dweight");
	c.dw[5] *= 1.05f;
	assert_true(fd_worst(conv_loss, &c, c.w, c.dw, c.n_w, FD_EPS,
			     "conv dweight, 5% off (must fail)") >= FD_TOL);
	conv_ctx_free(&c);

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
		cmocka_unit_test(test_fd_catches_wrong_gradients),
		cmocka_unit_test(test_conv_forward_matches_ref),
		cmocka_unit_test(test_conv_grad),
		cmocka_unit_test(test_conv_backward_null_grads),
		cmocka_unit_test(test_conv_threads),
		cmocka_unit_test(test_bn_grad),
		cmocka_unit_test(test_bn_running_stats),
		cmocka_unit_test(test_bn_eval_uses_running_stats),
		cmocka_unit_test(test_relu_grad),
		cmocka_unit_test(test_dropout_mask),
		cmocka_unit_test(test_dropout_grad),
		cmocka_unit_test(test_add_grad),
		cmocka_unit_test(test_maxpool_grad),
		cmocka_unit_test(test_maxpool_7_to_3),
		cmocka_unit_test(test_maxpool_first_max_wins),
		cmocka_unit_test(test_avgpool_grad),
		cmocka_unit_test(test_avgpool_global),
		cmocka_unit_test(test_linear),
		cmocka_unit_test(test_softmax_xent_grad),
		cmocka_unit_test(test_softmax_xent_stable),
		cmocka_unit_test(test_backward_accumulates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
