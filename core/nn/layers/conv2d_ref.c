/* The textbook convolution, kept slow and obvious so that tests can hold
 * the im2col + GEMM kernel against it. Sums in double so that the
 * reference itself adds no rounding worth speaking of. */
#include "prunebench/layers.h"

/* in (B,C,H,W), weight (OC,C,K,K), bias (OC) or NULL -> out (B,OC,OH,OW) */
void pb_conv2d_forward_ref(float *out, const float *in, const float *weight,
			   const float *bias, int B, int C, int H, int W,
			   int OC, int K, int stride, int pad)
{
	const int OH = pb_out_dim(H, K, stride, pad);
	const int OW = pb_out_dim(W, K, stride, pad);

	for (int b = 0; b < B; b++)
	for (int oc = 0; oc < OC; oc++)
	for (int oh = 0; oh < OH; oh++)
	for (int ow = 0; ow < OW; ow++) {
		double s = bias ? bias[oc] : 0.0;
		for (int c = 0; c < C; c++)
		for (int ki = 0; ki < K; ki++)
		for (int kj = 0; kj < K; kj++) {
			const int ih = oh * stride - pad + ki;
			const int iw = ow * stride - pad + kj;
			if (ih < 0 || ih >= H || iw < 0 || iw >= W)
				continue;
			s += (double)in[(((size_t)b * C + c) * H + ih) * W + iw] *
			     weight[(((size_t)oc * C + c) * K + ki) * K + kj];
		}
		out[(((size_t)b * OC + oc) * OH + oh) * OW + ow] = (float)s;
	}
}
