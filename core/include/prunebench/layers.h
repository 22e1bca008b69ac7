/* Layer kernels: one forward and one backward function per layer type,
 * every buffer and every size passed explicitly (the style of llm.c).
 *
 * Conventions
 * - Activations are NCHW float32, contiguous. B is the batch size.
 * - Forward writes its output (overwrites). Forward in training mode also
 *   fills the "saved" buffers that backward needs; the caller owns them.
 * - Backward ADDS into every gradient buffer (din, dweight, dbias, ...),
 *   so a tensor consumed by two layers (a residual branch) gets the sum.
 *   The caller zeroes gradients once per step. Any gradient pointer may be
 *   NULL when it is not wanted (e.g. din of the first layer).
 * - Kernels parallelise with OpenMP over a dimension each thread owns, so
 *   results for a given thread count are bitwise reproducible.
 * - Output sizes: conv OH = (H + 2*pad - K) / stride + 1; pools likewise
 *   with pad 0 (floor), so a 2x2/2 maxpool maps 7 -> 3.
 */
#ifndef PRUNEBENCH_LAYERS_H
#define PRUNEBENCH_LAYERS_H

#include <stddef.h>
#include <stdint.h>

#include <gsl/gsl_rng.h>

#ifdef __cplusplus
extern "C" {
#endif

static inline int pb_out_dim(int in, int k, int stride, int pad)
{
	return (in + 2 * pad - k) / stride + 1;
}

/* ---- conv2d -------------------------------------------------------------
 * in (B,C,H,W), weight (OC,C,K,K), bias (OC) or NULL, out (B,OC,OH,OW).
 * ws is scratch memory of pb_conv2d_workspace() floats for the same sizes
 * and the thread count the call will run with (omp_get_max_threads()). */
size_t pb_conv2d_workspace(int B, int C, int H, int W, int OC, int K,
			   int stride, int pad);
void pb_conv2d_forward(float *out, const float *in, const float *weight,
		       const float *bias, int B, int C, int H, int W, int OC,
		       int K, int stride, int pad, float *ws);
/* dout (B,OC,OH,OW); adds into din (B,C,H,W), dweight (OC,C,K,K), dbias. */
void pb_conv2d_backward(float *din, float *dweight, float *dbias,
			const float *dout, const float *in,
			const float *weight, int B, int C, int H, int W,
			int OC, int K, int stride, int pad, float *ws);

/* ---- batchnorm2d --------------------------------------------------------
 * in/out (B,C,H,W); gamma, beta, running_mean, running_var, mean, invstd
 * are (C). Training mode normalises with batch statistics, saves the batch
 * mean and 1/sqrt(var+eps) for backward, and updates the running averages
 * the way PyTorch does: r = (1-momentum)*r + momentum*batch, with the
 * unbiased variance for running_var. */
void pb_bn_forward_train(float *out, float *mean, float *invstd,
			 float *running_mean, float *running_var,
			 const float *in, const float *gamma,
			 const float *beta, int B, int C, int HW, float eps,
			 float momentum);
void pb_bn_forward_eval(float *out, const float *in, const float *gamma,
			const float *beta, const float *running_mean,
			const float *running_var, int B, int C, int HW,
			float eps);
/* Backward of the training-mode forward. Adds into din, dgamma, dbeta. */
void pb_bn_backward(float *din, float *dgamma, float *dbeta,
		    const float *dout, const float *in, const float *mean,
		    const float *invstd, const float *gamma, int B, int C,
		    int HW);
/* Backward of the eval-mode forward, BN a fixed affine map of x (the
 * running statistics are constants): din = dout * gamma /
 * sqrt(running_var + eps). Adds into din, dgamma, dbeta. */
void pb_bn_backward_eval(float *din, float *dgamma, float *dbeta,
			 const float *dout, const float *in, const float *gamma,
			 const float *running_mean, const float *running_var,
			 int B, int C, int HW, float eps);

/* ---- relu --------------------------------------------------------------
 * Elementwise over n values. Backward uses the forward OUTPUT (out > 0). */
void pb_relu_forward(float *out, const float *in, size_t n);
void pb_relu_backward(float *din, const float *dout, const float *out,
		      size_t n);

/* ---- maxpool -----------------------------------------------------------
 * in (B,C,H,W), out (B,C,OH,OW); argmax (B,C,OH,OW) holds, for each output,
 * the index within its (H,W) plane of the chosen input (first max wins). */
void pb_maxpool_forward(float *out, int32_t *argmax, const float *in, int B,
			int C, int H, int W, int K, int stride);
void pb_maxpool_backward(float *din, const float *dout,
			 const int32_t *argmax, int B, int C, int H, int W,
			 int K, int stride);

/* ---- avgpool -----------------------------------------------------------
 * Window KH x KW, stride S, no padding. Global average pooling is
 * KH = H, KW = W, S = 1. */
void pb_avgpool_forward(float *out, const float *in, int B, int C, int H,
			int W, int KH, int KW, int stride);
void pb_avgpool_backward(float *din, const float *dout, int B, int C, int H,
			 int W, int KH, int KW, int stride);

/* ---- linear ------------------------------------------------------------
 * in (B,IN), weight (OUT,IN), bias (OUT) or NULL, out (B,OUT). */
void pb_linear_forward(float *out, const float *in, const float *weight,
		       const float *bias, int B, int IN, int OUT);
void pb_linear_backward(float *din, float *dweight, float *dbias,
			const float *dout, const float *in,
			const float *weight, int B, int IN, int OUT);

/* ---- dropout (inverted) --------------------------------------------------
 * keep holds, per element, 0 or 1/(1-p); the caller fills it from its RNG
 * (pb_dropout_fill_mask) so that runs are reproducible. */
void pb_dropout_fill_mask(float *keep, size_t n, float p, gsl_rng *rng);
void pb_dropout_forward(float *out, const float *in, const float *keep,
			size_t n);
void pb_dropout_backward(float *din, const float *dout, const float *keep,
			 size_t n);

/* ---- add (residual) -----------------------------------------------------
 * out = a + b over n values; backward adds dout into da and db. */
void pb_add_forward(float *out, const float *a, const float *b, size_t n);
void pb_add_backward(float *da, float *db, const float *dout, size_t n);

/* ---- softmax cross-entropy ----------------------------------------------
 * logits (B,K), labels (B) in [0,K). Writes probs (B,K) and returns the
 * mean loss over the batch; correct (may be NULL) receives the number of
 * argmax hits. Backward writes (overwrites) dlogits = (probs - onehot)/B. */
double pb_softmax_xent_forward(float *probs, const float *logits,
			       const uint8_t *labels, int B, int K,
			       int *correct);
void pb_softmax_xent_backward(float *dlogits, const float *probs,
			      const uint8_t *labels, int B, int K);

/* ---- reference kernels (tests only; slow and obviously correct) --------- */
void pb_conv2d_forward_ref(float *out, const float *in, const float *weight,
			   const float *bias, int B, int C, int H, int W,
			   int OC, int K, int stride, int pad);

#ifdef __cplusplus
}
#endif
#endif
