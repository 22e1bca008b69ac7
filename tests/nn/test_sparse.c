/* The sparse inference kernels (core/nn/layers/conv2d_sparse.c,
 * linear_sparse.c) and sessions (core/nn/model_sparse.c): against a
 * reference in double and against the dense kernels, on every conv and
 * linear shape of the shipped models at several densities, with an
 * all-zero filter, an all-zero layer and a fully dense one; the fused
 * BN + ReLU epilogue bit for bit against the separate layers; the same
 * bits for 1 and 2 threads, for batch 1 and a large batch, and for the
 * AVX-512 and AVX2 kernels; and a whole model in a session against its
 * dense forward. Skipped (77) without a sparse kernel on this CPU. */
#include "testutil.h"
#include "epilogue.h"

#include <float.h>
#include <omp.h>

#include "prunebench/layers.h"
#include "nn/layers/sparse.h"
#include "nn/model_impl.h"

/* Keeps each weight with probability `density` (exactly: a fixed share
 * by a seeded shuffle would be overkill here); density 0 zeroes all. */
static void sparsify(float *w, size_t n, double density, unsigned long seed)
{
	gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);

	gsl_rng_set(r, seed);
	for (size_t i = 0; i < n; i++)
		if (gsl_rng_uniform(r) >= density)
			w[i] = 0.0f;
	gsl_rng_free(r);
}

/* Convolution in double; abs receives sum |w x| per output (the scale
 * of its rounding error). */
static void ref_conv(double *out, double *abs, const float *in,
		     const float *w, const float *bias, int B,
		     const pbi_sparse_geom *g)
{
	const int C = g->C, H = g->H, W = g->W, K = g->K, s = g->stride;

	for (int b = 0; b < B; b++)
	for (int oc = 0; oc < g->OC; oc++)
	for (int y = 0; y < g->OH; y++)
	for (int x = 0; x < g->OW; x++) {
		double acc = bias ? bias[oc] : 0.0, a = fabs(acc);

		for (int c = 0; c < C; c++)
		for (int ki = 0; ki < K; ki++)
		for (int kj = 0; kj < K; kj++) {
			const int iy = y * s - g->pad + ki;
			const int ix = x * s - g->pad + kj;
			double t;

			if (iy < 0 || iy >= H || ix < 0 || ix >= W)
				continue;
			t = (double)w[(((size_t)oc * C + c) * K + ki) * K + kj] *
			    in[(((size_t)b * C + c) * H + iy) * W + ix];
			acc += t;
			a += fabs(t);
		}
		out[(((size_t)b * g->OC + oc) * g->OH + y) * g->OW + x] = acc;
		abs[(((size_t)b * g->OC + oc) * g->OH + y) * g->OW + x] = a;
	}
}

/* |got - want| within float rounding of a sum whose terms add up to
 * abs in magnitude. */
static void expect_near(const float *got, const double *want,
			const double *abs, size_t n, const char *what)
{
	for (size_t i = 0; i < n; i++)
		if (fabs(got[i] - want[i]) > 1e-5 * abs[i] + 1e-6)
			fail_msg("%s: [%zu] %.9g vs %.9g (scale %g)", what, i,
				 got[i], want[i], abs[i]);
}

static void sparse_conv(float *out, const float *in, const float *w,
			const float *bias, int B, const pbi_sparse_geom *g,
			const pbi_conv_epilogue *ep)
{
	pbi_sparse_w sw;
	float *ws = tu_floats(pbi_sparse_conv_workspace(g));

	assert_int_equal(pbi_sparse_build_conv(&sw, w, g), 0);
	pbi_sparse_conv_forward(out, in, &sw, bias, g, B, ep, ws);
	pbi_sparse_w_free(&sw);
	free(ws);
}

/* One conv shape: sparse against the double reference at densities 1,
 * 0.5, 0.1 (with filter 0 all zero) and 0, and against the dense kernel
 * (pb_conv2d_forward: direct or im2col) at 1 and 0.5. */
static void check_conv_shape(const pb_layer_info *li, int B,
			     unsigned long seed)
{
	static const double dens[] = { 1.0, 0.5, 0.1, 0.0 };
	pbi_sparse_geom g;
	size_t nin, nout, nw;

	pbi_sparse_geom_init(&g, li->in_c, li->in_h, li->in_w, li->out_c,
			     li->kernel, li->stride, li->pad);
	assert_int_equal(g.OH, li->out_h);
	assert_int_equal(g.OW, li->out_w);
	nin = (size_t)B * g.C * g.H * g.W;
	nout = (size_t)B * g.OC * g.OH * g.OW;
	nw = (size_t)g.OC * g.C * g.K * g.K;
	for (size_t d = 0; d < sizeof dens / sizeof *dens; d++) {
		float *in = tu_floats(nin), *w = tu_floats(nw);
		float *out = tu_floats(nout), *dense = tu_floats(nout);
		float *bias = li->has_bias ? tu_floats((size_t)g.OC) : NULL;
		float *cws = tu_floats(pb_conv2d_workspace(B, g.C, g.H, g.W,
							   g.OC, g.K, g.stride,
							   g.pad));
		double *want = malloc(nout * sizeof *want);
		double *abs = malloc(nout * sizeof *abs);
		char what[160];

		tu_fill_uniform(in, nin, -1, 1, seed);
		tu_fill_uniform(w, nw, -1, 1, seed + 1);
		if (bias)
			tu_fill_uniform(bias, (size_t)g.OC, -1, 1, seed + 2);
		sparsify(w, nw, dens[d], seed + 3);
		if (dens[d] < 1.0)
			memset(w, 0, (size_t)g.C * g.K * g.K * sizeof *w);
		ref_conv(want, abs, in, w, bias, B, &g);
		/* NaN in the output buffer: every output must be written */
		for (size_t i = 0; i < nout; i++)
			out[i] = NAN;
		sparse_conv(out, in, w, bias, B, &g, NULL);
		snprintf(what, sizeof what, "%s %dx%dx%d -> %d k%d s%d p%d, "
			 "B %d, density %.1f", li->name, g.C, g.H, g.W, g.OC,
			 g.K, g.stride, g.pad, B, dens[d]);
		expect_near(out, want, abs, nout, what);
		/* the aligned layout: the same sums in the same order */
		{
			pbi_sparse_geom ga = g;
			float *al = tu_floats(nout);

			pbi_sparse_geom_align(&ga);
			sparse_conv(al, in, w, bias, B, &ga, NULL);
			assert_memory_equal(out, al, nout * sizeof *al);
			free(al);
		}
		if (dens[d] >= 0.5) {
			pb_conv2d_forward(dense, in, w, bias, B, g.C, g.H, g.W,
					  g.OC, g.K, g.stride, g.pad, cws);
			for (size_t i = 0; i < nout; i++)
				want[i] = dense[i];
			expect_near(out, want, abs, nout, what);
		}
		free(in); free(w); free(out); free(dense); free(bias);
		free(cws); free(want); free(abs);
	}
}

static int same_conv(const pb_layer_info *a, const pb_layer_info *b)
{
	return a->in_c == b->in_c && a->in_h == b->in_h &&
	       a->in_w == b->in_w && a->out_c == b->out_c &&
	       a->kernel == b->kernel && a->stride == b->stride &&
	       a->pad == b->pad && a->has_bias == b->has_bias;
}

static const char *const shipped[] = {
	"vgg-s.ini", "resnet-s.ini", "lenet5.ini", "resnet20-cifar.ini",
	"resnet56-cifar.ini", "vgg16-cifar.ini",
};

static void test_conv_every_shipped_shape(void **state)
{
	(void)state;
	for (size_t f = 0; f < sizeof shipped / sizeof *shipped; f++) {
		pb_model *m = tu_load_shipped_model(shipped[f]);
		const int n = pb_model_n_layers(m);

		for (int i = 0; i < n; i++) {
			const pb_layer_info *li = pb_model_layer(m, i);
			int seen = 0;

			if (li->type != PB_LAYER_CONV)
				continue;
			for (int j = 0; j < i && !seen; j++)
				seen = pb_model_layer(m, j)->type ==
				       PB_LAYER_CONV &&
				       same_conv(pb_model_layer(m, j), li);
			if (seen)
				continue;
			/* batch 1 (shared mode) and 5 (a sample per
			 * thread) on the small planes */
			check_conv_shape(li, 1, 100 + (unsigned long)i);
			if ((size_t)li->in_c * li->in_h * li->in_w *
			    li->out_c <= 1u << 20)
				check_conv_shape(li, 5, 200 + (unsigned long)i);
		}
		pb_model_free(m);
	}
}

static void check_linear_shape(int IN, int OUT, int B, int has_bias,
			       unsigned long seed)
{
	static const double dens[] = { 1.0, 0.3, 0.05, 0.0 };

	for (size_t d = 0; d < sizeof dens / sizeof *dens; d++) {
		const size_t nw = (size_t)IN * OUT;
		float *in = tu_floats((size_t)B * IN), *w = tu_floats(nw);
		float *bias = has_bias ? tu_floats((size_t)OUT) : NULL;
		float *out = tu_floats((size_t)B * OUT);
		float *dense = tu_floats((size_t)B * OUT);
		double *want = malloc((size_t)B * OUT * sizeof *want);
		double *abs = malloc((size_t)B * OUT * sizeof *abs);
		pbi_sparse_w sw;
		char what[96];

		tu_fill_uniform(in, (size_t)B * IN, -1, 1, seed);
		tu_fill_uniform(w, nw, -1, 1, seed + 1);
		if (bias)
			tu_fill_uniform(bias, (size_t)OUT, -1, 1, seed + 2);
		sparsify(w, nw, dens[d], seed + 3);
		if (dens[d] < 1.0)
			memset(w, 0, (size_t)IN * sizeof *w);
		for (int b = 0; b < B; b++)
			for (int o = 0; o < OUT; o++) {
				double acc = bias ? bias[o] : 0.0;
				double a = fabs(acc);

				for (int i = 0; i < IN; i++) {
					const double t =
						(double)w[(size_t)o * IN + i] *
						in[(size_t)b * IN + i];
					acc += t;
					a += fabs(t);
				}
				want[(size_t)b * OUT + o] = acc;
				abs[(size_t)b * OUT + o] = a;
			}
		assert_int_equal(pbi_sparse_build_linear(&sw, w, IN, OUT), 0);
		pbi_sparse_linear_forward(out, in, &sw, bias, B, IN, OUT);
		snprintf(what, sizeof what, "linear %d -> %d, B %d, density "
			 "%.2f", IN, OUT, B, dens[d]);
		expect_near(out, want, abs, (size_t)B * OUT, what);
		pb_linear_forward(dense, in, w, bias, B, IN, OUT);
		for (size_t i = 0; i < (size_t)B * OUT; i++)
			want[i] = dense[i];
		expect_near(out, want, abs, (size_t)B * OUT, what);
		pbi_sparse_w_free(&sw);
		free(in); free(w); free(bias); free(out); free(dense);
		free(want); free(abs);
	}
}

static void test_linear_every_shipped_shape(void **state)
{
	(void)state;
	for (size_t f = 0; f < sizeof shipped / sizeof *shipped; f++) {
		pb_model *m = tu_load_shipped_model(shipped[f]);

		for (int i = 0; i < pb_model_n_layers(m); i++) {
			const pb_layer_info *li = pb_model_layer(m, i);
			const pbi_node *nd = &m->nodes[i];

			if (li->type != PB_LAYER_LINEAR)
				continue;
			check_linear_shape((int)nd->in_n, li->out_c, 1,
					   li->has_bias, 300 + (unsigned long)i);
			check_linear_shape((int)nd->in_n, li->out_c, 17,
					   li->has_bias, 400 + (unsigned long)i);
		}
		pb_model_free(m);
	}
}

/* The sparse kernel on a fixed input, for tu_check_epilogue. */
struct sparse_run {
	pbi_sparse_geom g;
	int B;
	float *in, *w;
};

static void run_sparse(void *ctx, float *out, const pbi_conv_epilogue *ep)
{
	const struct sparse_run *r = ctx;

	sparse_conv(out, r->in, r->w, NULL, r->B, &r->g, ep);
}

/* The fused eval epilogue stores exactly what the sparse conv followed
 * by the separate eval BN and ReLU layers would. */
static void test_epilogue_matches_layers(void **state)
{
	const int OC = 12;
	const size_t nin = (size_t)3 * 8 * 14 * 14, nw = (size_t)OC * 8 * 9;
	struct sparse_run r;

	(void)state;
	pbi_sparse_geom_init(&r.g, 8, 14, 14, OC, 3, 2, 1);
	r.B = 3;
	r.in = tu_floats(nin);
	r.w = tu_floats(nw);
	tu_fill_uniform(r.in, nin, -1, 1, 7);
	tu_fill_uniform(r.w, nw, -1, 1, 8);
	sparsify(r.w, nw, 0.3, 9);
	tu_check_epilogue(run_sparse, &r, r.B, OC, r.g.OH * r.g.OW, 10, 0);
	free(r.in);
	free(r.w);
}

/* The same bits for 1 and 2 threads, for the AVX-512 and the AVX2
 * kernels, and for a sample computed alone (batch 1: samples padded
 * first, work items shared) or within a batch (a sample per thread). */
static void test_bits_independent_of_threads_isa_batch(void **state)
{
	static const int shapes[][7] = {
		/* C, H, W, OC, K, stride, pad */
		{ 16, 28, 28, 16, 3, 1, 1 }, { 16, 28, 28, 32, 3, 2, 1 },
		{ 16, 28, 28, 32, 1, 2, 0 }, { 64, 7, 7, 64, 3, 1, 1 },
		{ 6, 14, 14, 16, 5, 1, 0 },
		/* alone, the only one big enough (5.8M MACs) to be shared
		 * out on two threads at batch 1 */
		{ 64, 28, 28, 64, 3, 1, 1 },
	};
	const int saved = omp_get_max_threads(), B = 9;

	(void)state;
	for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
		const int *s = shapes[k];
		pbi_sparse_geom g;
		size_t nin, nout, nw, one;
		float *in, *w, *ref, *got;

		pbi_sparse_geom_init(&g, s[0], s[1], s[2], s[3], s[4], s[5],
				     s[6]);
		nin = (size_t)B * g.C * g.H * g.W;
		one = (size_t)g.OC * g.OH * g.OW;
		nout = B * one;
		nw = (size_t)g.OC * g.C * g.K * g.K;
		in = tu_floats(nin); w = tu_floats(nw);
		ref = tu_floats(nout); got = tu_floats(nout);
		tu_fill_uniform(in, nin, -1, 1, 60 + k);
		tu_fill_uniform(w, nw, -1, 1, 70 + k);
		sparsify(w, nw, 0.2, 80 + k);
		omp_set_num_threads(1);
		sparse_conv(ref, in, w, NULL, B, &g, NULL);
		omp_set_num_threads(2);
		sparse_conv(got, in, w, NULL, B, &g, NULL);
		assert_memory_equal(ref, got, nout * sizeof *ref);
		/* batch 1, sample 4 alone, on both thread counts */
		for (int t = 1; t <= 2; t++) {
			omp_set_num_threads(t);
			memset(got, 0, one * sizeof *got);
			sparse_conv(got, in + 4 * (nin / B), w, NULL, 1, &g,
				    NULL);
			assert_memory_equal(ref + 4 * one, got,
					    one * sizeof *got);
		}
		setenv("PB_SPARSE", "avx2", 1);
		sparse_conv(got, in, w, NULL, B, &g, NULL);
		unsetenv("PB_SPARSE");
		assert_memory_equal(ref, got, nout * sizeof *ref);
		free(in); free(w); free(ref); free(got);
	}
	omp_set_num_threads(saved);
}

static int cmp_float(const void *a, const void *b)
{
	const float x = *(const float *)a, y = *(const float *)b;

	return (x > y) - (x < y);
}

/* Zeroes all but the largest-magnitude `density` share of the conv and
 * linear weights of m (one global threshold). */
static void prune_magnitude(pb_model *m, double density)
{
	size_t total = 0, k = 0;
	float *mags, thr;

	for (int i = 0; i < pb_model_n_params(m); i++)
		if (pb_model_param(m, i)->kind == PB_PARAM_WEIGHT)
			total += pb_model_param(m, i)->n;
	mags = tu_floats(total);
	for (int i = 0; i < pb_model_n_params(m); i++) {
		const pb_param *p = pb_model_param(m, i);
		if (p->kind == PB_PARAM_WEIGHT)
			for (size_t j = 0; j < p->n; j++)
				mags[k++] = fabsf(p->data[j]);
	}
	qsort(mags, total, sizeof *mags, cmp_float);
	thr = mags[(size_t)((1.0 - density) * (double)(total - 1))];
	for (int i = 0; i < pb_model_n_params(m); i++) {
		pb_param *p = pb_model_param(m, i);
		if (p->kind == PB_PARAM_WEIGHT)
			for (size_t j = 0; j < p->n; j++)
				if (fabsf(p->data[j]) < thr)
					p->data[j] = 0.0f;
	}
	free(mags);
}

/* Eval logits of m on x (copied out). */
static float *logits_of(pb_model *m, const float *x, int B)
{
	pb_error err = { 0 };
	const float *lg;
	float *out = tu_floats((size_t)B * pb_model_classes(m));

	assert_int_equal(pb_model_forward(m, x, B, 0, NULL, &lg, &err), 0);
	memcpy(out, lg, (size_t)B * pb_model_classes(m) * sizeof *out);
	return out;
}

/* A model in a session: the sparse layers are the pruned ones, logits
 * match the dense forward within rounding and do not depend on the
 * thread count; a training forward ends the session. */
static void test_model_session(void **state)
{
	static const char *const files[] = { "vgg-s.ini", "resnet-s.ini" };
	const int B = 6, saved = omp_get_max_threads();

	(void)state;
	for (size_t f = 0; f < 2; f++) {
		pb_model *m = tu_load_shipped_model(files[f]);
		gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
		pb_error err = { 0 };
		const int K = pb_model_classes(m);
		size_t nx = (size_t)B * 28 * 28;
		float *x = tu_floats(nx), *dense, *sp1, *sp2;
		const float *lg;
		int used;

		gsl_rng_set(r, 3);
		assert_int_equal(pb_model_init_params(m, r, &err), 0);
		tu_fill_uniform(x, nx, -1, 1, 5);
		/* dense weights: no layer takes the sparse kernel */
		assert_int_equal(pbi_model_sparse_begin(m), 0);
		pbi_model_sparse_end(m);
		prune_magnitude(m, 0.1);
		/* some eval statistics, so BN is not the identity */
		assert_int_equal(pb_model_forward(m, x, B, 1, r, &lg, &err), 0);
		dense = logits_of(m, x, B);
		used = pbi_model_sparse_begin(m);
		assert_true(used >= 1);
		omp_set_num_threads(1);
		sp1 = logits_of(m, x, B);
		omp_set_num_threads(2);
		sp2 = logits_of(m, x, B);
		assert_memory_equal(sp1, sp2, (size_t)B * K * sizeof *sp1);
		for (int i = 0; i < B * K; i++)
			if (tu_relerr(sp1[i], dense[i], 1.0) > 1e-4)
				fail_msg("%s logit %d: sparse %.7g dense %.7g",
					 files[f], i, sp1[i], dense[i]);
		assert_int_equal(m->sparse_on, 1);
		assert_int_equal(pb_model_forward(m, x, B, 1, r, &lg, &err), 0);
		assert_int_equal(m->sparse_on, 0);
		for (int i = 0; i < m->n_nodes; i++)
			assert_null(m->nodes[i].sparse);
		omp_set_num_threads(saved);
		free(x); free(dense); free(sp1); free(sp2);
		gsl_rng_free(r);
		pb_model_free(m);
	}
}

/* Break-even: a dense layer never takes the sparse kernel, an all-zero
 * one always does. */
static void test_pays(void **state)
{
	pbi_sparse_geom g;

	(void)state;
	pbi_sparse_geom_init(&g, 16, 28, 28, 16, 3, 1, 1);
	assert_false(pbi_sparse_conv_pays(&g, 2304, 2304));
	assert_true(pbi_sparse_conv_pays(&g, 0, 2304));
	assert_true(pbi_sparse_conv_pays(&g, 230, 2304));
	pbi_sparse_geom_init(&g, 16, 28, 28, 32, 1, 2, 0);
	assert_false(pbi_sparse_conv_pays(&g, 512, 512));
	assert_false(pbi_sparse_linear_pays(576, 10, 5760, 5760));
	assert_true(pbi_sparse_linear_pays(576, 10, 0, 5760));
	assert_false(pbi_sparse_linear_pays(576, 10, 576, 5760));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conv_every_shipped_shape),
		cmocka_unit_test(test_linear_every_shipped_shape),
		cmocka_unit_test(test_epilogue_matches_layers),
		cmocka_unit_test(test_bits_independent_of_threads_isa_batch),
		cmocka_unit_test(test_model_session),
		cmocka_unit_test(test_pays),
	};

	unsetenv("PB_SPARSE");
	if (!pbi_sparse_available()) {
		printf("skip: no sparse kernel (AVX2+FMA) on this CPU\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
