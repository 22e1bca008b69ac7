/* Direct 3x3 stride-1 "same" convolution with AVX-512, the fast path of
 * conv2d (see conv2d_direct.c for why). Internal: pbi_ prefix, not
 * exported, reached by conv2d.c, model_run.c and the tests. */
#ifndef PB_CONV2D_DIRECT_H
#define PB_CONV2D_DIRECT_H

#include <stddef.h>

/* Eval-mode BatchNorm (+ ReLU) applied to the conv result while it is
 * still in registers. The conv output (out of the forward), the BN
 * output and, when relu_out is not NULL, the ReLU output are stored, so
 * that every layer's activation stays readable (calibration reads
 * them); a lean forward passes NULL for the conv output and, with a
 * ReLU, for bn_out, and only the last is written. scale and shift are
 * (OC): bn = conv * scale + shift, as pb_bn_forward_eval computes. */
typedef struct pbi_conv_epilogue {
	const float *scale, *shift;
	float *bn_out;
	float *relu_out;
	/* The direct kernel only (NULL for the others): a residual add
	 * between BN and ReLU, the end of a ResNet block. sum = bn +
	 * residual (residual + bn with residual_first, the add's own
	 * order), stored in add_out (may be NULL), and relu_out is the
	 * ReLU of sum. residual is (B, OC, HW) like the output. */
	const float *residual;
	int residual_first;
	float *add_out;
} pbi_conv_epilogue;

/* 1 when this CPU and shape take the direct path: K = 3, stride 1,
 * pad 1, AVX-512F present, and planes small enough for the mask table.
 * PB_CONV=im2col in the environment forces 0 (for measurements). */
int pbi_conv_direct_ok(int H, int W, int K, int stride, int pad);

/* Floats of workspace the direct backward needs (the transposed and
 * flipped weights for the input gradient, the weight gradient's
 * blocks). */
size_t pbi_conv_direct_workspace(int C, int H, int W, int OC);

/* in (B,C,H,W), weight (OC,C,3,3), bias (OC) or NULL -> out (B,OC,H,W).
 * accumulate != 0 adds into out instead of overwriting. ep may be NULL;
 * with ep, out may be NULL (not stored, and no accumulate). */
void pbi_conv_direct_forward(float *out, const float *in,
			     const float *weight, const float *bias, int B,
			     int C, int H, int W, int OC, int accumulate,
			     const pbi_conv_epilogue *ep);

/* dout (B,OC,H,W) -> adds into din (B,C,H,W) (accumulate != 0) or
 * overwrites it; wt is workspace of pbi_conv_direct_workspace(C, OC)
 * floats. */
void pbi_conv_direct_backward_data(float *din, const float *dout,
				   const float *weight, int B, int C, int H,
				   int W, int OC, float *wt, int accumulate);

/* dout (B,OC,H,W), in (B,C,H,W) -> adds into dweight (OC,C,3,3) and
 * dbias (OC) (either may be NULL); ws is workspace of
 * pbi_conv_direct_workspace floats. Each weight's sum runs over samples
 * and positions in a fixed order, whatever the thread count. */
void pbi_conv_direct_backward_weight(float *dweight, float *dbias,
				     const float *dout, const float *in,
				     int B, int C, int H, int W, int OC,
				     float *ws);

/* The weight gradient alone (conv2d_wgrad.c): adds into dweight; ws of
 * pbi_conv_wgrad_workspace floats. */
size_t pbi_conv_wgrad_workspace(int C, int H, int W, int OC);
void pbi_conv_wgrad(float *dweight, const float *dout, const float *in,
		    int B, int C, int H, int W, int OC, float *ws);

#endif
