/* conv2d (core/nn/layers/conv2d.c) against finite differences, against
 * the naive reference forward, with gradients wanted alone, with several
 * threads, and accumulating into its gradient buffers. */
#include "gradcheck.h"

#include "prunebench/layers.h"

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

	tu_set_threads(nt);
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

/* More threads than samples and fewer: the gradients are the one-thread
 * result bit for bit (the partials are per block of samples, not per
 * thread), and each thread has a column buffer of its own. */
static void test_conv_threads(void **state)
{
	static const struct conv_shape shapes[] = {
		{ 2, 3, 7, 6, 4, 3, 1, 1, 1 },
		{ 7, 3, 9, 8, 5, 3, 2, 1, 1 },
		{ 5, 4, 6, 7, 3, 1, 1, 0, 1 },
	};
	const int saved = tu_threads();
	(void)state;

#ifdef _OPENMP
	{
		const struct conv_shape *s = &shapes[1];
		size_t w1, w3;
		tu_set_threads(1);
		w1 = pb_conv2d_workspace(s->B, s->C, s->H, s->W, s->OC, s->K,
					 s->stride, s->pad);
		tu_set_threads(3);
		w3 = pb_conv2d_workspace(s->B, s->C, s->H, s->W, s->OC, s->K,
					 s->stride, s->pad);
		assert_true(w3 > w1);
	}
#endif
	for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
		size_t n1, n3a, n3b;
		float *one = conv_run_threads(&shapes[i], 1, &n1);
		float *three = conv_run_threads(&shapes[i], 3, &n3a);
		float *again = conv_run_threads(&shapes[i], 3, &n3b);

		assert_int_equal(n1, n3a);
		assert_memory_equal(three, one, n1 * sizeof *three);
		assert_memory_equal(three, again, n1 * sizeof *three);
		pb_ffree(one);
		pb_ffree(three);
		pb_ffree(again);
	}
	tu_set_threads(saved);
}

/* ---- backward accumulates ----------------------------------------------- */

/* Backward adds into the gradient buffers: two calls from zero give
 * twice one call (the 3x3 and the 1x1 path). */
static void test_conv_backward_accumulates(void **state)
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
}

/* ---- the checker itself ------------------------------------------------- */

/* The finite-difference check must reject gradients that are slightly
 * wrong: one conv weight gradient off by 5%. */
static void test_fd_catches_wrong_conv_dweight(void **state)
{
	struct conv_ctx c;
	(void)state;

	conv_ctx_init(&c, &conv_shapes[0], 1500);
	conv_bwd(&c, c.din, c.dw, c.db);
	assert_fd(conv_loss, &c, c.w, c.dw, c.n_w, FD_EPS, "conv dweight");
	c.dw[5] *= 1.05f;
	assert_true(fd_worst(conv_loss, &c, c.w, c.dw, c.n_w, FD_EPS,
			     "conv dweight, 5% off (must fail)") >= FD_TOL);
	conv_ctx_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fd_catches_wrong_conv_dweight),
		cmocka_unit_test(test_conv_forward_matches_ref),
		cmocka_unit_test(test_conv_grad),
		cmocka_unit_test(test_conv_backward_null_grads),
		cmocka_unit_test(test_conv_threads),
		cmocka_unit_test(test_conv_backward_accumulates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
