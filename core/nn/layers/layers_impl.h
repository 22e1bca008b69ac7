/* Internal variants of the layer kernels for the model's training step
 * (model_run.c): fused pairs, and backward kernels that can overwrite
 * their input gradient instead of adding into it. The first consumer of
 * an activation's gradient writes it, so no gradient buffer has to be
 * zeroed before backward (that memset was 3-7% of a step). The public
 * kernels of prunebench/layers.h are these with overwrite = 0 and no
 * fusion. pbi_ prefix: not exported. */
#ifndef PB_LAYERS_IMPL_H
#define PB_LAYERS_IMPL_H

#include <stddef.h>
#include <stdint.h>

/* overwrite != 0: din = the contribution; 0: din += it. */
void pbi_relu_backward(float *din, const float *dout, const float *out,
		       size_t n, int overwrite);
void pbi_dropout_backward(float *din, const float *dout, const float *keep,
			  size_t n, int overwrite);
void pbi_maxpool_backward(float *din, const float *dout,
			  const int32_t *argmax, int B, int C, int H, int W,
			  int K, int stride, int overwrite);
void pbi_avgpool_backward(float *din, const float *dout, int B, int C,
			  int H, int W, int KH, int KW, int stride,
			  int overwrite);
void pbi_linear_backward(float *din, float *dweight, float *dbias,
			 const float *dout, const float *in,
			 const float *weight, int B, int IN, int OUT,
			 int overwrite);
void pbi_conv2d_backward(float *din, float *dweight, float *dbias,
			 const float *dout, const float *in,
			 const float *weight, int B, int C, int H, int W,
			 int OC, int K, int stride, int pad, float *ws,
			 int overwrite);
/* The kernels pb_conv2d_forward and pb_conv2d_backward take for this
 * shape: "direct" (3x3 stride 1), "phase/im2col" (forward on the phase
 * layout, backward im2col + sgemm) or "im2col". */
const char *pbi_conv2d_path(int C, int H, int W, int OC, int K, int stride,
			    int pad);

/* Training BN; relu_out (may be NULL) also receives ReLU of the output,
 * computed as pb_relu_forward does (BN and ReLU forward in one pass).
 * With relu_out, out may be NULL: the BN output is then not stored (a
 * training step needs only the ReLU's). */
void pbi_bn_forward_train(float *out, float *relu_out, float *mean,
			  float *invstd, float *running_mean,
			  float *running_var, const float *in,
			  const float *gamma, const float *beta, int B, int C,
			  int HW, float eps, float momentum);
/* BN backward. relu_out != NULL: dout is the gradient of a ReLU that
 * reads this BN's output, whose output was relu_out; the BN's own output
 * gradient (dout where relu_out > 0, else 0, as pb_relu_backward gives)
 * is formed on the fly: ReLU and BN backward in one pass, bit for bit
 * the two layers one after the other. */
void pbi_bn_backward(float *din, float *dgamma, float *dbeta,
		     const float *dout, const float *relu_out,
		     const float *in, const float *mean, const float *invstd,
		     const float *gamma, int B, int C, int HW, int overwrite);

/* BatchNorm's channel sums (bn_sums.c) over a block of nc channels: B
 * samples, channel c's plane of sample b at x + b * stride + c * HW. Per
 * channel: the sum of the values, of (x - m[c])^2, and of the output
 * gradient g and of g * (x - m[c]) * is[c], g = dout or, with r, dout
 * where r > 0 (else 0). */
void pbi_bn_block_sum(double *sum, const float *x, size_t stride, int nc,
		      int B, int HW);
void pbi_bn_block_sqdev(double *sq, const float *x, size_t stride, int nc,
			int B, int HW, const float *m);
void pbi_bn_block_grad_sums(double *sdy, double *sdyx, const float *dout,
			    const float *r, const float *x, size_t stride,
			    int nc, int B, int HW, const float *m,
			    const float *is);

/* Residual add -> ReLU in one pass: out (may be NULL: not stored) =
 * a + b, relu_out = ReLU of it, as pb_add_forward and pb_relu_forward. */
void pbi_add_relu_forward(float *out, float *relu_out, const float *a,
			  const float *b, size_t n);
/* Backward of ReLU(a + b) in one pass: g = dout where relu_out > 0, else
 * 0 (as pbi_relu_backward), into da and db (either may be NULL; ow_a,
 * ow_b: overwrite rather than add). da == db takes g twice. */
void pbi_add_relu_backward(float *da, int ow_a, float *db, int ow_b,
			   const float *dout, const float *relu_out, size_t n);

#endif
