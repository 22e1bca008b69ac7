/* The fused eval BN + ReLU epilogue of a conv kernel (pbi_conv_epilogue)
 * against the separate layers, for the kernel tests (test_conv_paths.c:
 * direct and phase kernels; test_sparse.c: sparse kernels). */
#ifndef PB_TEST_EPILOGUE_H
#define PB_TEST_EPILOGUE_H

#include "testutil.h"

#include "prunebench/layers.h"
#include "nn/layers/conv2d_direct.h"

/* Runs the kernel under test on its own fixed input and weights, into
 * out (B, OC, HW), with epilogue ep (NULL: none). */
typedef void (*tu_conv_fn)(void *ctx, float *out, const pbi_conv_epilogue *ep);

/* The kernel with the epilogue stores, bit for bit, what the kernel, then
 * pb_bn_forward_eval, then pb_relu_forward store; BN's gamma, beta,
 * running mean and variance are drawn with seeds seed to seed + 3. lean:
 * also with only the ReLU output stored (out and bn_out NULL). */
static inline void tu_check_epilogue(tu_conv_fn conv, void *ctx, int B,
				     int OC, int HW, unsigned long seed,
				     int lean)
{
	const size_t nout = (size_t)B * OC * HW;
	const float eps = 1e-5f;
	float *gamma = tu_floats(OC), *beta = tu_floats(OC);
	float *rm = tu_floats(OC), *rv = tu_floats(OC);
	float *scale = tu_floats(OC), *shift = tu_floats(OC);
	float *out = tu_floats(nout), *bn = tu_floats(nout);
	float *relu = tu_floats(nout), *fout = tu_floats(nout);
	float *fbn = tu_floats(nout), *frelu = tu_floats(nout);
	pbi_conv_epilogue ep = { 0 };

	tu_fill_uniform(gamma, OC, 0.5f, 1.5f, seed);
	tu_fill_uniform(beta, OC, -0.5f, 0.5f, seed + 1);
	tu_fill_uniform(rm, OC, -0.2f, 0.2f, seed + 2);
	tu_fill_uniform(rv, OC, 0.5f, 2.0f, seed + 3);
	conv(ctx, out, NULL);
	pb_bn_forward_eval(bn, out, gamma, beta, rm, rv, B, OC, HW, eps);
	pb_relu_forward(relu, bn, nout);
	for (int c = 0; c < OC; c++) {
		scale[c] = gamma[c] / sqrtf(rv[c] + eps);
		shift[c] = beta[c] - rm[c] * scale[c];
	}
	ep.scale = scale;
	ep.shift = shift;
	ep.bn_out = fbn;
	ep.relu_out = frelu;
	conv(ctx, fout, &ep);
	assert_memory_equal(out, fout, nout * sizeof *out);
	assert_memory_equal(bn, fbn, nout * sizeof *bn);
	assert_memory_equal(relu, frelu, nout * sizeof *relu);
	if (lean) {
		memset(frelu, 0, nout * sizeof *frelu);
		ep.bn_out = NULL;
		conv(ctx, NULL, &ep);
		assert_memory_equal(relu, frelu, nout * sizeof *relu);
	}
	free(gamma); free(beta); free(rm); free(rv); free(scale); free(shift);
	free(out); free(bn); free(relu); free(fout); free(fbn); free(frelu);
}

#endif
