/* The fast kernel paths against plain loops. The direct 3x3 convolution
 * path against loops in double: forward
 * (with bias, accumulate and the fused eval BN+ReLU epilogue), input
 * gradient and weight gradient, on shapes that exercise the masks (odd
 * planes, a plane smaller than one vector, channel counts that are not a
 * multiple of the register block), and bitwise agreement between thread
 * counts. The vectorised 2x2 max pool against the window loop, ties and
 * NaN included. Skipped (77) on CPUs without AVX-512. */
#include "testutil.h"
#include "epilogue.h"

#include <omp.h>

#include "prunebench/layers.h"
#include "nn/layers/conv2d_direct.h"
#include "nn/layers/sparse.h"

struct shape {
	int B, C, H, W, OC;
};

static const struct shape shapes[] = {
	{ 2, 1, 28, 28, 16 }, { 3, 16, 14, 14, 32 }, { 2, 5, 7, 7, 13 },
	{ 1, 3, 5, 9, 7 },    { 4, 9, 3, 3, 10 },    { 1, 2, 1, 1, 3 },
	{ 2, 4, 1, 17, 9 },   { 3, 17, 11, 6, 1 },
	/* Pruned VGG-S widths: output blocks 6+5 and 8+8+8+7+7+7, chunk
	 * groups 3+3+3+2+2 (14x14) and 2+2 (7x7); every block size 1-8 is
	 * reached here or, with C and OC swapped, by the input gradient. */
	{ 2, 11, 14, 14, 11 }, { 2, 6, 7, 7, 45 },   { 1, 2, 4, 4, 2 },
	/* Planes with inner chunks (every tap's load inside the plane,
	 * only the column masks) at their edges: one inner chunk in three
	 * rows, a one-pixel-wide column (both column masks empty), rows
	 * of 16 and 17 pixels, and a plane whose rows start at every lane. */
	{ 1, 3, 3, 40, 5 },    { 2, 4, 40, 1, 6 },    { 1, 2, 6, 16, 3 },
	{ 2, 5, 9, 17, 7 },    { 1, 3, 33, 33, 4 },
	/* The output-channel weight gradient (OC > 16, batch >= 8; every
	 * shape also calls it directly): three vectors of
	 * output channels (OC 33-48), two (OC 17-32), one of five with
	 * items of three input channels and a last of two (C 5) or one
	 * (C 4); samples in parts (few items) and blocks: 20 samples of
	 * 40x40 come in blocks of 9, 9 and 2. */
	{ 8, 7, 5, 5, 40 },    { 8, 5, 6, 6, 70 },    { 8, 4, 5, 5, 66 },
	{ 20, 2, 40, 40, 20 },
};

static double in_at(const float *in, const struct shape *s, int b, int c,
		    int y, int x)
{
	if (y < 0 || y >= s->H || x < 0 || x >= s->W)
		return 0.0;
	return in[(((size_t)b * s->C + c) * s->H + y) * s->W + x];
}

/* Reference gradients of the 3x3 same conv, in double. */
static void ref_backward(double *din, double *dw, const float *dout,
			 const float *in, const float *w,
			 const struct shape *s)
{
	const int HW = s->H * s->W;

	for (int b = 0; b < s->B; b++)
	for (int oc = 0; oc < s->OC; oc++)
	for (int y = 0; y < s->H; y++)
	for (int x = 0; x < s->W; x++) {
		const double g = dout[((size_t)b * s->OC + oc) * HW +
				      y * s->W + x];
		for (int c = 0; c < s->C; c++)
		for (int t = 0; t < 9; t++) {
			const int iy = y + t / 3 - 1, ix = x + t % 3 - 1;
			const size_t wi = ((size_t)oc * s->C + c) * 9 + t;
			dw[wi] += g * in_at(in, s, b, c, iy, ix);
			if (iy >= 0 && iy < s->H && ix >= 0 && ix < s->W)
				din[((size_t)b * s->C + c) * HW +
				    iy * s->W + ix] += g * w[wi];
		}
	}
}

static void expect_close(const float *got, const double *want, size_t n,
			 double tol, const char *what, const struct shape *s)
{
	for (size_t i = 0; i < n; i++)
		if (tu_relerr(got[i], want[i], 1.0) > tol)
			fail_msg("%s %d,%d,%dx%d>%d: [%zu] %.7g vs %.7g", what,
				 s->B, s->C, s->H, s->W, s->OC, i, got[i],
				 want[i]);
}

static int have_direct(void)
{
	return pbi_conv_direct_ok(8, 8, 3, 1, 1);
}

static void test_forward_matches_ref(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
		const struct shape *s = &shapes[k];
		const size_t nin = (size_t)s->B * s->C * s->H * s->W;
		const size_t nout = (size_t)s->B * s->OC * s->H * s->W;
		const size_t nw = (size_t)s->OC * s->C * 9;
		float *in = tu_floats(nin), *w = tu_floats(nw);
		float *bias = tu_floats(s->OC), *out = tu_floats(nout);
		float *ref = tu_floats(nout);
		double *want = malloc(nout * sizeof *want);

		tu_fill_uniform(in, nin, -1, 1, 1 + k);
		tu_fill_uniform(w, nw, -1, 1, 100 + k);
		tu_fill_uniform(bias, s->OC, -1, 1, 200 + k);
		pb_conv2d_forward_ref(ref, in, w, bias, s->B, s->C, s->H, s->W,
				      s->OC, 3, 1, 1);
		pbi_conv_direct_forward(out, in, w, bias, s->B, s->C, s->H,
					s->W, s->OC, 0, NULL);
		for (size_t i = 0; i < nout; i++)
			want[i] = ref[i];
		expect_close(out, want, nout, 1e-5, "forward", s);

		/* accumulate: adding a second pass doubles the result */
		pbi_conv_direct_forward(out, in, w, bias, s->B, s->C, s->H,
					s->W, s->OC, 1, NULL);
		for (size_t i = 0; i < nout; i++)
			want[i] = 2.0 * ref[i];
		expect_close(out, want, nout, 1e-5, "accumulate", s);
		free(in); free(w); free(bias); free(out); free(ref); free(want);
	}
}

static void test_backward_matches_ref(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
		const struct shape *s = &shapes[k];
		const size_t nin = (size_t)s->B * s->C * s->H * s->W;
		const size_t nout = (size_t)s->B * s->OC * s->H * s->W;
		const size_t nw = (size_t)s->OC * s->C * 9;
		float *in = tu_floats(nin), *w = tu_floats(nw);
		float *dout = tu_floats(nout), *din = tu_floats(nin);
		float *dw = tu_floats(nw), *db = tu_floats(s->OC);
		float *wt = tu_floats(pbi_conv_direct_workspace(s->C, s->H, s->W, s->OC));
		double *rdin = calloc(nin, sizeof *rdin);
		double *rdw = calloc(nw, sizeof *rdw);
		double *rdb = calloc((size_t)s->OC, sizeof *rdb);

		tu_fill_uniform(in, nin, -1, 1, 3 + k);
		tu_fill_uniform(w, nw, -1, 1, 300 + k);
		tu_fill_uniform(dout, nout, -1, 1, 400 + k);
		/* start non-zero: backward must add */
		for (size_t i = 0; i < nin; i++)
			din[i] = 0.5f, rdin[i] = 0.5;
		for (size_t i = 0; i < nw; i++)
			dw[i] = 0.25f, rdw[i] = 0.25;
		ref_backward(rdin, rdw, dout, in, w, s);
		for (int oc = 0; oc < s->OC; oc++)
			for (int b = 0; b < s->B; b++)
				for (int p = 0; p < s->H * s->W; p++)
					rdb[oc] += dout[((size_t)b * s->OC + oc) *
							s->H * s->W + p];
		pbi_conv_direct_backward_weight(dw, db, dout, in, s->B, s->C,
						s->H, s->W, s->OC, wt);
		pbi_conv_direct_backward_data(din, dout, w, s->B, s->C, s->H,
					      s->W, s->OC, wt, 1);
		expect_close(din, rdin, nin, 1e-5, "din", s);
		expect_close(dw, rdw, nw, 1e-4, "dweight", s);
		/* The output-channel kernel on every shape, also those the
		 * dispatch gives the pixel-vectorized one. */
		for (size_t i = 0; i < nw; i++)
			dw[i] = 0.25f;
		pbi_conv_wgrad(dw, dout, in, s->B, s->C, s->H, s->W, s->OC,
			       wt);
		expect_close(dw, rdw, nw, 1e-4, "dweight (output channels)",
			     s);
		expect_close(db, rdb, (size_t)s->OC, 1e-4, "dbias", s);
		free(in); free(w); free(dout); free(din); free(dw); free(db);
		free(wt); free(rdin); free(rdw); free(rdb);
	}
}

/* The direct kernel on a fixed input, for tu_check_epilogue. */
struct direct_run {
	struct shape s;
	float *in, *w;
};

static void run_direct(void *ctx, float *out, const pbi_conv_epilogue *ep)
{
	const struct direct_run *r = ctx;

	pbi_conv_direct_forward(out, r->in, r->w, NULL, r->s.B, r->s.C,
				r->s.H, r->s.W, r->s.OC, 0, ep);
}

/* The fused eval epilogue stores exactly what the separate conv, eval
 * BN and ReLU layers would. */
static void test_fused_bn_relu_matches_unfused(void **state)
{
	const struct shape s = { 3, 8, 14, 14, 12 };
	const size_t nin = (size_t)s.B * s.C * s.H * s.W;
	const size_t nw = (size_t)s.OC * s.C * 9;
	struct direct_run r = { s, tu_floats(nin), tu_floats(nw) };

	(void)state;
	tu_fill_uniform(r.in, nin, -1, 1, 7);
	tu_fill_uniform(r.w, nw, -1, 1, 8);
	tu_check_epilogue(run_direct, &r, s.B, s.OC, s.H * s.W, 9, 0);
	free(r.in);
	free(r.w);
}

/* The residual epilogue (conv -> BN -> add -> ReLU, a ResNet block's
 * end) stores what the conv, eval BN, add and ReLU layers store, in
 * either order of the add's operands, and lean (only the ReLU's). */
static void test_fused_residual_matches_unfused(void **state)
{
	const struct shape s = { 3, 8, 14, 14, 12 };
	const size_t nin = (size_t)s.B * s.C * s.H * s.W;
	const size_t nout = (size_t)s.B * s.OC * s.H * s.W;
	const size_t nw = (size_t)s.OC * s.C * 9;
	struct direct_run r = { s, tu_floats(nin), tu_floats(nw) };
	float *res = tu_floats(nout), *out = tu_floats(nout);
	float *bn = tu_floats(nout), *sum = tu_floats(nout);
	float *relu = tu_floats(nout), *fbn = tu_floats(nout);
	float *fsum = tu_floats(nout), *frelu = tu_floats(nout);
	float *scale = tu_floats(s.OC), *shift = tu_floats(s.OC);
	float *g = tu_floats(s.OC), *be = tu_floats(s.OC);
	float *rm = tu_floats(s.OC), *rv = tu_floats(s.OC);

	(void)state;
	tu_fill_uniform(r.in, nin, -1, 1, 31);
	tu_fill_uniform(r.w, nw, -1, 1, 32);
	tu_fill_uniform(res, nout, -2, 2, 33);
	tu_fill_uniform(g, s.OC, 0.5f, 1.5f, 34);
	tu_fill_uniform(be, s.OC, -0.5f, 0.5f, 35);
	tu_fill_uniform(rm, s.OC, -0.2f, 0.2f, 36);
	tu_fill_uniform(rv, s.OC, 0.5f, 2.0f, 37);
	for (int c = 0; c < s.OC; c++) {
		scale[c] = g[c] / sqrtf(rv[c] + 1e-5f);
		shift[c] = be[c] - rm[c] * scale[c];
	}
	run_direct(&r, out, NULL);
	pb_bn_forward_eval(bn, out, g, be, rm, rv, s.B, s.OC, s.H * s.W,
			   1e-5f);
	for (int first = 0; first < 2; first++) {
		pbi_conv_epilogue ep = {
			.scale = scale, .shift = shift, .bn_out = fbn,
			.relu_out = frelu, .residual = res,
			.residual_first = first, .add_out = fsum,
		};

		if (first)
			pb_add_forward(sum, res, bn, nout);
		else
			pb_add_forward(sum, bn, res, nout);
		pb_relu_forward(relu, sum, nout);
		run_direct(&r, NULL, &ep);
		assert_memory_equal(bn, fbn, nout * sizeof *bn);
		assert_memory_equal(sum, fsum, nout * sizeof *sum);
		assert_memory_equal(relu, frelu, nout * sizeof *relu);
		memset(frelu, 0, nout * sizeof *frelu);
		ep.bn_out = ep.add_out = NULL;
		run_direct(&r, NULL, &ep);
		assert_memory_equal(relu, frelu, nout * sizeof *relu);
	}
	free(r.in); free(r.w); free(res); free(out); free(bn); free(sum);
	free(relu); free(fbn); free(fsum); free(frelu); free(scale);
	free(shift); free(g); free(be); free(rm); free(rv);
}

/* One, two and three threads give the same bits, forward and backward.
 * The weight gradient's shapes: 16 output channels (pixel-vectorized),
 * four vectors of them in items of two, and two input channels whose
 * few items split each block of 9 samples into parts. */
static void test_thread_count_invariant(void **state)
{
	static const struct shape shp[] = {
		{ 8, 16, 14, 14, 16 }, { 8, 32, 7, 7, 64 },
		{ 20, 2, 40, 40, 20 },
	};
	const int saved = omp_get_max_threads();

	(void)state;
	for (size_t k = 0; k < sizeof shp / sizeof *shp; k++) {
		const struct shape s = shp[k];
		const size_t nin = (size_t)s.B * s.C * s.H * s.W;
		const size_t nout = (size_t)s.B * s.OC * s.H * s.W;
		const size_t nw = (size_t)s.OC * s.C * 9;
		float *in = tu_floats(nin), *w = tu_floats(nw);
		float *dout = tu_floats(nout);
		float *wt = tu_floats(pbi_conv_direct_workspace(s.C, s.H, s.W,
								s.OC));
		float *o[3], *din[3], *dw[3];

		tu_fill_uniform(in, nin, -1, 1, 21);
		tu_fill_uniform(w, nw, -1, 1, 22);
		tu_fill_uniform(dout, nout, -1, 1, 23);
		for (int t = 0; t < 3; t++) {
			omp_set_num_threads(t + 1);
			o[t] = tu_floats(nout);
			din[t] = tu_floats(nin);
			dw[t] = tu_floats(nw);
			pbi_conv_direct_forward(o[t], in, w, NULL, s.B, s.C,
						s.H, s.W, s.OC, 0, NULL);
			pbi_conv_direct_backward_weight(dw[t], NULL, dout, in,
							s.B, s.C, s.H, s.W,
							s.OC, wt);
			pbi_conv_direct_backward_data(din[t], dout, w, s.B,
						      s.C, s.H, s.W, s.OC, wt,
						      1);
		}
		omp_set_num_threads(saved);
		for (int t = 1; t < 3; t++) {
			assert_memory_equal(o[0], o[t], nout * sizeof(float));
			assert_memory_equal(din[0], din[t],
					    nin * sizeof(float));
			assert_memory_equal(dw[0], dw[t], nw * sizeof(float));
		}
		for (int t = 0; t < 3; t++) {
			free(o[t]);
			free(din[t]);
			free(dw[t]);
		}
		free(in); free(w); free(dout); free(wt);
	}
}

/* The forward of a plane and of the same plane between two zero rows
 * above and two below agree bit for bit on the plane's rows: each
 * output is the same sequence of FMAs (a masked-off tap loads the zero
 * a padding row holds). The padding shifts the plane by 2W pixels
 * against the 16-pixel chunks, so pixels change between inner chunks
 * (column masks only, plain loads) and edge chunks (a mask per tap):
 * the two kinds must do the same arithmetic. */
static void test_inner_chunks_bitwise(void **state)
{
	static const int dims[][2] = { { 9, 20 }, { 14, 14 }, { 28, 28 },
				       { 7, 7 }, { 12, 5 } };
	const int B = 2, C = 5, OC = 7;

	(void)state;
	if (!have_direct())
		skip();
	for (size_t k = 0; k < sizeof dims / sizeof *dims; k++) {
		const int H = dims[k][0], W = dims[k][1], HP = H + 4;
		const size_t plane = (size_t)H * W, pplane = (size_t)HP * W;
		float *in = tu_floats((size_t)B * C * plane);
		float *pin = tu_floats((size_t)B * C * pplane);
		float *out = tu_floats((size_t)B * OC * plane);
		float *pout = tu_floats((size_t)B * OC * pplane);
		float *w = tu_floats((size_t)OC * C * 9);

		tu_fill_uniform(in, (size_t)B * C * plane, -1, 1, 40 + k);
		tu_fill_uniform(w, (size_t)OC * C * 9, -1, 1, 50 + k);
		memset(pin, 0, (size_t)B * C * pplane * sizeof(float));
		for (int i = 0; i < B * C; i++)
			memcpy(pin + i * pplane + 2 * W, in + i * plane,
			       plane * sizeof(float));
		pbi_conv_direct_forward(out, in, w, NULL, B, C, H, W, OC, 0,
					NULL);
		pbi_conv_direct_forward(pout, pin, w, NULL, B, C, HP, W, OC,
					0, NULL);
		for (int i = 0; i < B * OC; i++)
			assert_memory_equal(out + i * plane,
					    pout + i * pplane + 2 * W,
					    plane * sizeof(float));
		free(in); free(pin); free(out); free(pout); free(w);
	}
}

/* Max pool 2x2/2 against the textbook loop: same values, same argmax
 * (first of equal maxima, NaN wins), on widths around the vector size. */
static void test_maxpool2x2_matches_loop(void **state)
{
	static const int dims[][2] = { { 28, 28 }, { 7, 7 }, { 5, 9 },
				       { 4, 34 }, { 6, 65 }, { 2, 2 } };

	(void)state;
	for (size_t k = 0; k < sizeof dims / sizeof *dims; k++) {
		const int B = 2, C = 3, H = dims[k][0], W = dims[k][1];
		const int OH = H / 2, OW = W / 2;
		const size_t nin = (size_t)B * C * H * W;
		const size_t nout = (size_t)B * C * OH * OW;
		float *in = tu_floats(nin), *out = tu_floats(nout);
		int32_t *am = calloc(nout, sizeof *am);

		tu_fill_uniform(in, nin, -1, 1, 50 + k);
		/* coarse values make ties; a few NaNs */
		for (size_t i = 0; i < nin; i++)
			in[i] = roundf(in[i] * 2.0f);
		in[nin / 3] = NAN;
		in[nin / 2 + 1] = NAN;
		pb_maxpool_forward(out, am, in, B, C, H, W, 2, 2);
		for (int p = 0; p < B * C; p++)
		for (int oh = 0; oh < OH; oh++)
		for (int ow = 0; ow < OW; ow++) {
			const float *x = in + (size_t)p * H * W;
			int32_t best = 2 * oh * W + 2 * ow;
			float bv = x[best];
			const size_t o = ((size_t)p * OH + oh) * OW + ow;

			for (int t = 1; t < 4; t++) {
				int32_t i = (2 * oh + t / 2) * W + 2 * ow + t % 2;
				if (x[i] > bv || isnan(x[i])) {
					bv = x[i];
					best = i;
				}
			}
			assert_int_equal(am[o], best);
			if (isnan(bv))
				assert_true(isnan(out[o]));
			else
				assert_true(out[o] == bv);
		}
		free(in);
		free(out);
		free(am);
	}
}

/* The phase kernel on a fixed input, for tu_check_epilogue. */
struct phase_run {
	pbi_sparse_geom g;
	int B;
	float *in, *w, *ws;
};

static void run_phase(void *ctx, float *out, const pbi_conv_epilogue *ep)
{
	const struct phase_run *r = ctx;

	pbi_conv_phase_forward(out, r->in, r->w, NULL, &r->g, r->B, ep, r->ws);
}

/* The im2col backward (stride 2, 1x1 stride 2, 5x5, and a batch smaller
 * than its partials): weight, bias and input gradients the same bits at
 * 1, 2 and 3 threads, so a ResNet trains alike at any thread count. */
static void test_im2col_backward_thread_invariant(void **state)
{
	static const int im2col_shapes[][8] = {
		/* B, C, H, W, OC, K, stride, pad */
		{ 20, 16, 14, 14, 32, 3, 2, 1 }, { 20, 16, 14, 14, 32, 1, 2, 0 },
		{ 11, 6, 14, 14, 16, 5, 1, 0 },  { 3, 5, 8, 11, 9, 1, 2, 0 },
	};
	const int saved = omp_get_max_threads();

	(void)state;
	for (size_t k = 0; k < sizeof im2col_shapes / sizeof *im2col_shapes;
	     k++) {
		const int *s = im2col_shapes[k];
		const int OH = pb_out_dim(s[2], s[5], s[6], s[7]);
		const int OW = pb_out_dim(s[3], s[5], s[6], s[7]);
		const size_t nin = (size_t)s[0] * s[1] * s[2] * s[3];
		const size_t nout = (size_t)s[0] * s[4] * OH * OW;
		const size_t nw = (size_t)s[4] * s[1] * s[5] * s[5];
		float *in = tu_floats(nin), *w = tu_floats(nw);
		float *dout = tu_floats(nout);
		float *din[3], *dw[3], *db[3];

		tu_fill_uniform(in, nin, -1, 1, 40 + k);
		tu_fill_uniform(w, nw, -1, 1, 50 + k);
		tu_fill_uniform(dout, nout, -1, 1, 60 + k);
		for (int t = 0; t < 3; t++) {
			float *ws;

			omp_set_num_threads(t + 1);
			ws = tu_floats(pb_conv2d_workspace(s[0], s[1], s[2],
							   s[3], s[4], s[5],
							   s[6], s[7]));
			din[t] = tu_floats(nin);
			dw[t] = tu_floats(nw);
			db[t] = tu_floats(s[4]);
			pb_conv2d_backward(din[t], dw[t], db[t], dout, in, w,
					   s[0], s[1], s[2], s[3], s[4], s[5],
					   s[6], s[7], ws);
			free(ws);
		}
		for (int t = 1; t < 3; t++) {
			assert_memory_equal(dw[0], dw[t], nw * sizeof(float));
			assert_memory_equal(db[0], db[t], s[4] * sizeof(float));
			assert_memory_equal(din[0], din[t],
					    nin * sizeof(float));
		}
		for (int t = 0; t < 3; t++) {
			free(din[t]);
			free(dw[t]);
			free(db[t]);
		}
		free(in);
		free(w);
		free(dout);
	}
	omp_set_num_threads(saved);
}

/* The phase kernel (stride 2, 1x1, 5x5: conv2d_phase.c) against the
 * reference loops; the same bits for 1 and 2 threads and for a sample
 * alone or within a batch; its BN + ReLU epilogue bit for bit against
 * the separate layers. */
static void test_phase_kernel(void **state)
{
	static const int phase_shapes[][7] = {
		/* C, H, W, OC, K, stride, pad */
		{ 16, 28, 28, 32, 3, 2, 1 }, { 16, 28, 28, 32, 1, 2, 0 },
		{ 1, 28, 28, 6, 5, 1, 2 },   { 6, 14, 14, 16, 5, 1, 0 },
		{ 3, 9, 7, 13, 3, 2, 1 },    { 5, 8, 11, 9, 1, 2, 0 },
		{ 2, 5, 5, 3, 3, 2, 0 },     { 16, 32, 32, 32, 3, 2, 1 },
		{ 7, 1, 1, 3, 1, 1, 0 },
	};
	const int saved = omp_get_max_threads(), B = 9;

	(void)state;
	for (size_t k = 0; k < sizeof phase_shapes / sizeof *phase_shapes;
	     k++) {
		const int *s = phase_shapes[k];
		pbi_sparse_geom g;
		size_t nin, nout, nw, one;
		float *in, *w, *bias, *ref, *got, *ws;
		double *want;
		struct shape sh;

		pbi_sparse_geom_init(&g, s[0], s[1], s[2], s[3], s[4], s[5],
				     s[6]);
		assert_true(pbi_conv_phase_ok(&g));
		nin = (size_t)B * g.C * g.H * g.W;
		one = (size_t)g.OC * g.OH * g.OW;
		nout = B * one;
		nw = (size_t)g.OC * g.C * g.K * g.K;
		in = tu_floats(nin); w = tu_floats(nw); bias = tu_floats(g.OC);
		ref = tu_floats(nout); got = tu_floats(nout);
		want = malloc(nout * sizeof *want);
		tu_fill_uniform(in, nin, -1, 1, 90 + k);
		tu_fill_uniform(w, nw, -1, 1, 91 + k);
		tu_fill_uniform(bias, g.OC, -1, 1, 92 + k);
		pb_conv2d_forward_ref(ref, in, w, bias, B, g.C, g.H, g.W, g.OC,
				      g.K, g.stride, g.pad);
		for (size_t i = 0; i < nout; i++)
			want[i] = ref[i];
		omp_set_num_threads(1);
		ws = tu_floats(pbi_conv_phase_workspace(&g) * 2);
		pbi_conv_phase_forward(ref, in, w, bias, &g, B, NULL, ws);
		sh = (struct shape){ B, g.C, g.H, g.W, g.OC };
		expect_close(ref, want, nout, 1e-5, "phase", &sh);
		omp_set_num_threads(2);
		pbi_conv_phase_forward(got, in, w, bias, &g, B, NULL, ws);
		assert_memory_equal(ref, got, nout * sizeof *ref);
		memset(got, 0, one * sizeof *got);
		pbi_conv_phase_forward(got, in + 4 * (nin / B), w, bias, &g, 1,
				       NULL, ws);
		assert_memory_equal(ref + 4 * one, got, one * sizeof *got);
		free(in); free(w); free(bias); free(ref); free(got); free(ws);
		free(want);
	}
	omp_set_num_threads(saved);
	{
		/* epilogue, also lean (conv and BN outputs not stored) */
		const int OC = 12, Bn = 3;
		const size_t nin = (size_t)Bn * 8 * 14 * 14;
		struct phase_run r;

		pbi_sparse_geom_init(&r.g, 8, 14, 14, OC, 3, 2, 1);
		r.B = Bn;
		r.in = tu_floats(nin);
		r.w = tu_floats((size_t)OC * 72);
		r.ws = tu_floats(pbi_conv_phase_workspace(&r.g));
		tu_fill_uniform(r.in, nin, -1, 1, 97);
		tu_fill_uniform(r.w, (size_t)OC * 72, -1, 1, 98);
		tu_check_epilogue(run_phase, &r, Bn, OC, r.g.OH * r.g.OW, 99,
				  1);
		free(r.in); free(r.w); free(r.ws);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forward_matches_ref),
		cmocka_unit_test(test_backward_matches_ref),
		cmocka_unit_test(test_fused_bn_relu_matches_unfused),
		cmocka_unit_test(test_fused_residual_matches_unfused),
		cmocka_unit_test(test_thread_count_invariant),
		cmocka_unit_test(test_inner_chunks_bitwise),
		cmocka_unit_test(test_im2col_backward_thread_invariant),
		cmocka_unit_test(test_maxpool2x2_matches_loop),
		cmocka_unit_test(test_phase_kernel),
	};

	unsetenv("PB_CONV");
	if (!have_direct()) {
		printf("skip: no AVX-512F, the direct conv path is unused\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
