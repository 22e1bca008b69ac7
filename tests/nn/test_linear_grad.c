/* The linear layer (core/nn/layers/linear.c) against a double-precision
 * reference forward and finite differences, and accumulating into its
 * gradient buffers. */
#include "gradcheck.h"

#include "prunebench/layers.h"

/* ---- linear ------------------------------------------------------------- */

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

/* ---- backward accumulates ----------------------------------------------- */

/* Backward adds into the gradient buffers: two calls from zero give
 * twice one call. */
static void test_linear_backward_accumulates(void **state)
{
	struct lin_ctx x;
	float *din2, *dw2, *db2;
	(void)state;

	lin_ctx_init(&x, 3, 7, 5, 1, 1430);
	din2 = fbuf((size_t)x.B * x.IN);
	dw2 = fbuf((size_t)x.OUT * x.IN);
	db2 = fbuf((size_t)x.OUT);
	lin_bwd(&x, x.din, x.dw, x.db);
	lin_bwd(&x, din2, dw2, db2);
	lin_bwd(&x, din2, dw2, db2);
	assert_doubled(din2, x.din, (size_t)x.B * x.IN, "linear din twice");
	assert_doubled(dw2, x.dw, (size_t)x.OUT * x.IN,
		       "linear dweight twice");
	assert_doubled(db2, x.db, (size_t)x.OUT, "linear dbias twice");
	pb_ffree(din2);
	pb_ffree(dw2);
	pb_ffree(db2);
	lin_ctx_free(&x);
}

/* ---- the thread count does not change the bits ------------------------ */

/* The fc shapes where OpenBLAS would share one call out among its own
 * threads (VGG-S's 576 -> 10 at batch 128, and a wide layer): forward
 * and all three gradients are the same bits at one, two and three
 * threads. */
static void test_linear_threads_same_bits(void **state)
{
	static const int shapes[][3] = { { 128, 576, 10 },
					 { 64, 1030, 515 },
					 { 1, 4096, 1000 } };
	const int saved = tu_threads();
	(void)state;

	for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
		const int B = shapes[i][0], IN = shapes[i][1],
			  OUT = shapes[i][2];
		const size_t nout = (size_t)B * OUT, nin = (size_t)B * IN,
			     nw = (size_t)OUT * IN;
		struct lin_ctx x;
		float *ref[4] = { fbuf(nout), fbuf(nin), fbuf(nw),
				  fbuf((size_t)OUT) };

		lin_ctx_init(&x, B, IN, OUT, 1, 1500 + i);
		for (int t = 1; t <= 3; t++) {
			tu_set_threads(t);
			memset(x.din, 0, nin * sizeof *x.din);
			memset(x.dw, 0, nw * sizeof *x.dw);
			memset(x.db, 0, (size_t)OUT * sizeof *x.db);
			lin_loss(&x);
			lin_bwd(&x, x.din, x.dw, x.db);
			if (t == 1) {
				memcpy(ref[0], x.out, nout * sizeof *x.out);
				memcpy(ref[1], x.din, nin * sizeof *x.din);
				memcpy(ref[2], x.dw, nw * sizeof *x.dw);
				memcpy(ref[3], x.db, (size_t)OUT * sizeof *x.db);
				continue;
			}
			assert_memory_equal(x.out, ref[0], nout * sizeof *x.out);
			assert_memory_equal(x.din, ref[1], nin * sizeof *x.din);
			assert_memory_equal(x.dw, ref[2], nw * sizeof *x.dw);
			assert_memory_equal(x.db, ref[3],
					    (size_t)OUT * sizeof *x.db);
		}
		for (int k = 0; k < 4; k++)
			pb_ffree(ref[k]);
		lin_ctx_free(&x);
	}
	tu_set_threads(saved);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_linear),
		cmocka_unit_test(test_linear_backward_accumulates),
		cmocka_unit_test(test_linear_threads_same_bits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
