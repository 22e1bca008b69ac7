/* The training step's fused and overwriting kernels (core/nn/layers/
 * layers_impl.h) against the public layers they replace, bit for bit:
 * BN + ReLU forward in one pass, ReLU + BN backward in one pass, and
 * every backward that overwrites its input gradient against zeroing it
 * and adding. */
#include "testutil.h"

#include "prunebench/layers.h"
#include "nn/layers/layers_impl.h"
#include "nn/layers/conv2d_direct.h"
#include "nn/model_impl.h"

static float *filled(size_t n, float lo, float hi, unsigned long seed)
{
	float *p = tu_floats(n);

	tu_fill_uniform(p, n, lo, hi, seed);
	return p;
}

enum { B = 5, C = 6, H = 9, W = 7, HW = H * W };
#define N ((size_t)B * C * HW)

static void test_bn_relu_forward(void **state)
{
	float *in = filled(N, -2, 3, 1), *g = filled(C, 0.5f, 1.5f, 2);
	float *be = filled(C, -0.5f, 0.5f, 3);
	float *out = tu_floats(N), *relu = tu_floats(N), *fout = tu_floats(N);
	float *frelu = tu_floats(N), *sv = tu_floats(2 * C);
	float *fsv = tu_floats(2 * C), *rm = tu_floats(C), *rv = tu_floats(C);
	float *frm = tu_floats(C), *frv = tu_floats(C);

	(void)state;
	for (int c = 0; c < C; c++)
		rv[c] = frv[c] = 1.0f;
	pb_bn_forward_train(out, sv, sv + C, rm, rv, in, g, be, B, C, HW,
			    1e-5f, 0.1f);
	pb_relu_forward(relu, out, N);
	pbi_bn_forward_train(fout, frelu, fsv, fsv + C, frm, frv, in, g, be,
			     B, C, HW, 1e-5f, 0.1f);
	assert_memory_equal(out, fout, N * sizeof *out);
	assert_memory_equal(relu, frelu, N * sizeof *out);
	assert_memory_equal(sv, fsv, 2 * C * sizeof *sv);
	assert_memory_equal(rm, frm, C * sizeof *rm);
	assert_memory_equal(rv, frv, C * sizeof *rv);
	free(in); free(g); free(be); free(out); free(relu); free(fout);
	free(frelu); free(sv); free(fsv); free(rm); free(rv); free(frm);
	free(frv);
}

/* ReLU backward into the BN's output gradient, then BN backward, against
 * the fused kernel, adding into a non-zero din and overwriting it. */
static void test_relu_bn_backward(void **state)
{
	float *in = filled(N, -2, 3, 11), *g = filled(C, 0.5f, 1.5f, 12);
	float *be = filled(C, -0.5f, 0.5f, 13), *dy = filled(N, -1, 1, 14);
	float *out = tu_floats(N), *relu = tu_floats(N), *sv = tu_floats(2 * C);
	float *dbn = tu_floats(N);

	(void)state;
	pb_bn_forward_train(out, sv, sv + C, NULL, NULL, in, g, be, B, C, HW,
			    1e-5f, 0.1f);
	pb_relu_forward(relu, out, N);
	for (int ow = 0; ow < 2; ow++) {
		float *din = filled(N, -1, 1, 15), *fdin = tu_floats(N);
		float *dg = filled(C, -1, 1, 16), *fdg = tu_floats(C);
		float *db = filled(C, -1, 1, 17), *fdb = tu_floats(C);

		memcpy(fdin, din, N * sizeof *din);
		memcpy(fdg, dg, C * sizeof *dg);
		memcpy(fdb, db, C * sizeof *db);
		memset(dbn, 0, N * sizeof *dbn);
		pb_relu_backward(dbn, dy, relu, N);
		if (ow)
			memset(din, 0, N * sizeof *din);
		pb_bn_backward(din, dg, db, dbn, in, sv, sv + C, g, B, C, HW);
		pbi_bn_backward(fdin, fdg, fdb, dy, relu, in, sv, sv + C, g, B,
				C, HW, ow);
		assert_memory_equal(din, fdin, N * sizeof *din);
		assert_memory_equal(dg, fdg, C * sizeof *dg);
		assert_memory_equal(db, fdb, C * sizeof *db);
		/* and without the ReLU, overwriting */
		if (ow) {
			memset(din, 0, N * sizeof *din);
			pb_bn_backward(din, NULL, NULL, dy, in, sv, sv + C, g,
				       B, C, HW);
			pbi_bn_backward(fdin, NULL, NULL, dy, NULL, in, sv,
					sv + C, g, B, C, HW, 1);
			assert_memory_equal(din, fdin, N * sizeof *din);
		}
		free(din); free(fdin); free(dg); free(fdg); free(db);
		free(fdb);
	}
	free(in); free(g); free(be); free(dy); free(out); free(relu);
	free(sv); free(dbn);
}

/* Overwriting backward == zeroing, then the adding one; the garbage
 * first in the buffer must not show. */
static void test_overwrite_equals_zero_then_add(void **state)
{
	const size_t n = N;
	float *dy = filled(n, -1, 1, 21), *y = filled(n, -1, 1, 22);
	float *keep = filled(n, 0, 2, 23);
	float *a = tu_floats(n), *b = filled(n, 5, 6, 24);
	int32_t *am;
	float *pin = filled(n, -1, 1, 25), *pout, *pdy, *ws;
	const int K = 2, OH = H / 2, OW = W / 2;
	const size_t np = (size_t)B * C * OH * OW;

	(void)state;
	pb_relu_backward(a, dy, y, n);
	pbi_relu_backward(b, dy, y, n, 1);
	assert_memory_equal(a, b, n * sizeof *a);

	memset(a, 0, n * sizeof *a);
	tu_fill_uniform(b, n, 5, 6, 26);
	pb_dropout_backward(a, dy, keep, n);
	pbi_dropout_backward(b, dy, keep, n, 1);
	assert_memory_equal(a, b, n * sizeof *a);

	am = calloc(np, sizeof *am);
	pout = tu_floats(np);
	pdy = filled(np, -1, 1, 27);
	pb_maxpool_forward(pout, am, pin, B, C, H, W, K, K);
	memset(a, 0, n * sizeof *a);
	tu_fill_uniform(b, n, 5, 6, 28);
	pb_maxpool_backward(a, pdy, am, B, C, H, W, K, K);
	pbi_maxpool_backward(b, pdy, am, B, C, H, W, K, K, 1);
	assert_memory_equal(a, b, n * sizeof *a);
	memset(a, 0, n * sizeof *a);
	tu_fill_uniform(b, n, 5, 6, 29);
	pb_avgpool_backward(a, pdy, B, C, H, W, K, K, K);
	pbi_avgpool_backward(b, pdy, B, C, H, W, K, K, K, 1);
	assert_memory_equal(a, b, n * sizeof *a);

	/* conv: the direct 3x3 path and the im2col one (stride 2) */
	for (int s = 1; s <= 2; s++) {
		const int OC = 4, OHc = pb_out_dim(H, 3, s, 1);
		const int OWc = pb_out_dim(W, 3, s, 1);
		const size_t no = (size_t)B * OC * OHc * OWc;
		float *w = filled((size_t)OC * C * 9, -1, 1, 30 + s);
		float *cdy = filled(no, -1, 1, 40 + s);

		ws = tu_floats(pb_conv2d_workspace(B, C, H, W, OC, 3, s, 1));
		memset(a, 0, n * sizeof *a);
		tu_fill_uniform(b, n, 5, 6, 50 + s);
		pb_conv2d_backward(a, NULL, NULL, cdy, pin, w, B, C, H, W, OC,
				   3, s, 1, ws);
		pbi_conv2d_backward(b, NULL, NULL, cdy, pin, w, B, C, H, W, OC,
				    3, s, 1, ws, 1);
		assert_memory_equal(a, b, n * sizeof *a);
		free(w); free(cdy); free(ws);
	}

	/* linear: (B, C*HW) -> (B, 3) */
	{
		const int IN = C * HW, OUT = 3;
		float *w = filled((size_t)IN * OUT, -1, 1, 60);
		float *ldy = filled((size_t)B * OUT, -1, 1, 61);

		memset(a, 0, n * sizeof *a);
		tu_fill_uniform(b, n, 5, 6, 62);
		pb_linear_backward(a, NULL, NULL, ldy, pin, w, B, IN, OUT);
		pbi_linear_backward(b, NULL, NULL, ldy, pin, w, B, IN, OUT, 1);
		for (size_t i = 0; i < n; i++)
			assert_true(fabsf(a[i] - b[i]) <= 1e-6f);
		free(w); free(ldy);
	}
	free(dy); free(y); free(keep); free(a); free(b); free(am);
	free(pin); free(pout); free(pdy);
}

/* ReLU(a + b) forward and backward in one pass against the add and ReLU
 * layers: outputs, and gradients into two buffers, into one (x + x),
 * written or added. */
static void test_add_relu(void **state)
{
	float *a = filled(N, -1, 1, 80), *b = filled(N, -1, 1, 81);
	float *dy = filled(N, -1, 1, 82);
	float *sum = tu_floats(N), *relu = tu_floats(N), *fsum = tu_floats(N);
	float *frelu = tu_floats(N), *g = tu_floats(N);

	(void)state;
	pb_add_forward(sum, a, b, N);
	pb_relu_forward(relu, sum, N);
	pbi_add_relu_forward(fsum, frelu, a, b, N);
	assert_memory_equal(sum, fsum, N * sizeof *sum);
	assert_memory_equal(relu, frelu, N * sizeof *relu);
	memset(frelu, 0, N * sizeof *frelu);
	pbi_add_relu_forward(NULL, frelu, a, b, N);
	assert_memory_equal(relu, frelu, N * sizeof *relu);

	pb_relu_backward(g, dy, relu, N);   /* g: the add's output gradient */
	for (int ow = 0; ow < 4; ow++) {
		float *da = filled(N, -1, 1, 83), *db = filled(N, -1, 1, 84);
		float *fa = tu_floats(N), *fb = tu_floats(N);

		memcpy(fa, da, N * sizeof *da);
		memcpy(fb, db, N * sizeof *db);
		if (ow & 1)
			memset(da, 0, N * sizeof *da);
		if (ow & 2)
			memset(db, 0, N * sizeof *db);
		pb_add_backward(da, db, g, N);
		pbi_add_relu_backward(fa, ow & 1, fb, (ow & 2) != 0, dy, relu,
				      N);
		assert_memory_equal(da, fa, N * sizeof *da);
		assert_memory_equal(db, fb, N * sizeof *db);
		/* x + x: one buffer, first written (or added), then added */
		if (ow & 1)
			memset(da, 0, N * sizeof *da);
		pb_add_backward(da, NULL, g, N);
		pb_add_backward(da, NULL, g, N);
		pbi_add_relu_backward(fa, ow & 1, fa, 0, dy, relu, N);
		assert_memory_equal(da, fa, N * sizeof *da);
		free(da); free(db); free(fa); free(fb);
	}
	free(a); free(b); free(dy); free(sum); free(relu); free(fsum);
	free(frelu); free(g);
}

/* A shipped model initialised from seed, after one training forward on
 * nb random images (*x, drawn from xseed), so that BN's running
 * statistics are no longer the initial ones. */
static pb_model *stepped_model(const char *file, unsigned long seed, int nb,
			       unsigned long xseed, float **x)
{
	pb_model *m = tu_load_shipped_model(file);
	gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
	pb_error err = { 0 };
	const float *lg;

	assert_non_null(r);
	*x = filled((size_t)nb * 28 * 28, -1, 1, xseed);
	gsl_rng_set(r, seed);
	assert_int_equal(pb_model_init_params(m, r, &err), 0);
	assert_int_equal(pb_model_forward(m, *x, nb, 1, r, &lg, &err), 0);
	gsl_rng_free(r);
	return m;
}

/* A lean eval forward (intermediates of fused conv -> BN -> ReLU not
 * stored) gives the same logits, bit for bit, as the full one; so does
 * a training forward whose fused BN -> ReLU skips the BN output. */
static void test_lean_forward_same_logits(void **state)
{
	static const char *const files[] = { "vgg-s.ini", "resnet-s.ini" };

	(void)state;
	for (size_t f = 0; f < 2; f++) {
		const int nb = 3;
		float *x;
		pb_model *m = stepped_model(files[f], 4, nb, 70, &x);
		pb_error err = { 0 };
		const int K = pb_model_classes(m);
		float *full = tu_floats((size_t)nb * K);
		const float *lg;

		assert_int_equal(pb_model_forward(m, x, nb, 0, NULL, &lg, &err),
				 0);
		memcpy(full, lg, (size_t)nb * K * sizeof *full);
		pbi_model_set_lean(m, 1);
		assert_int_equal(pb_model_forward(m, x, nb, 0, NULL, &lg, &err),
				 0);
		assert_memory_equal(full, lg, (size_t)nb * K * sizeof *full);
		pbi_model_set_lean(m, 0);
		free(x);
		free(full);
		pb_model_free(m);
	}
}

/* The fused eval forward (conv -> BN -> ReLU, and on the direct kernel
 * conv -> BN -> add -> ReLU at ResNet-S's identity shortcuts) against the
 * layer-by-layer eval forward: every stored activation and the logits
 * bit for bit, after a training step has moved BN's running statistics.
 * The hook counts the four-node groups, so the test knows the residual
 * fusion ran. */
static void count_groups(void *user, pb_model *m, int first, int n,
			 int batch)
{
	int *four = user;

	(void)m; (void)first; (void)batch;
	*four += n == 4;
}

static void test_fused_eval_matches_layers(void **state)
{
	static const char *const files[] = { "vgg-s.ini", "resnet-s.ini" };

	(void)state;
	for (size_t f = 0; f < 2; f++) {
		const int nb = 3;
		float *x;
		pb_model *m = stepped_model(files[f], 5, nb, 71, &x);
		pb_error err = { 0 };
		const int K = pb_model_classes(m);
		float *lg1 = tu_floats((size_t)nb * K), **outs;
		const float *lg;
		int four = 0;

		m->eval_hook = count_groups;
		m->eval_hook_user = &four;
		assert_int_equal(pb_model_forward(m, x, nb, 0, NULL, &lg, &err),
				 0);
		m->eval_hook = NULL;
		memcpy(lg1, lg, (size_t)nb * K * sizeof *lg1);
		outs = calloc((size_t)m->n_nodes, sizeof *outs);
		assert_non_null(outs);
		for (int i = 0; i < m->n_nodes; i++) {
			const size_t len = (size_t)nb * m->nodes[i].out_n;

			if (m->nodes[i].y != m->nodes[i].out)
				continue;
			outs[i] = tu_floats(len);
			memcpy(outs[i], m->nodes[i].out, len * sizeof(float));
		}
		assert_int_equal(pbi_model_forward_eval_grad(m, x, nb, &lg,
							     &err), 0);
		assert_memory_equal(lg1, lg, (size_t)nb * K * sizeof *lg1);
		for (int i = 0; i < m->n_nodes; i++) {
			if (outs[i])
				assert_memory_equal(outs[i], m->nodes[i].out,
					(size_t)nb * m->nodes[i].out_n *
					sizeof(float));
			free(outs[i]);
		}
		/* b1 and b3 end in an identity shortcut (b2's other input,
		 * the projection, comes after its conv) */
		if (f == 1 && pbi_conv_direct_ok(28, 28, 3, 1, 1))
			assert_int_equal(four, 2);
		free(outs);
		free(x);
		free(lg1);
		pb_model_free(m);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bn_relu_forward),
		cmocka_unit_test(test_relu_bn_backward),
		cmocka_unit_test(test_overwrite_equals_zero_then_add),
		cmocka_unit_test(test_add_relu),
		cmocka_unit_test(test_lean_forward_same_logits),
		cmocka_unit_test(test_fused_eval_matches_layers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
