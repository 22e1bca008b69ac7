/* Batch normalisation over (B,H,W) for each channel, as PyTorch's
 * BatchNorm2d. One thread owns a channel at a time, so every sum has a
 * fixed order and no thread writes another's outputs. Channel sums are
 * float sums over one (H,W) plane (at most a few thousand values) added
 * into a double across planes, in the order of bn_sums.c: the same bits
 * for every thread count and vector width, and still accurate over the
 * tens of thousands of values a channel holds. */
#include <math.h>

#include "prunebench/layers.h"
#include "nn/layers/layers_impl.h"
#include "nn/layers/threads.h"

/* Eval BN on fewer values runs on one thread (batch-1 inference): a
 * fork/join costs more than the work. */
#define BN_PAR_MIN 32768

/* in (B,C,HW) -> out (B,C,HW); mean, invstd, running_mean, running_var,
 * gamma, beta (C). The running statistics may be NULL (not updated). */
void pb_bn_forward_train(float *out, float *mean, float *invstd,
			 float *running_mean, float *running_var,
			 const float *in, const float *gamma,
			 const float *beta, int B, int C, int HW, float eps,
			 float momentum)
{
	pbi_bn_forward_train(out, NULL, mean, invstd, running_mean,
			     running_var, in, gamma, beta, B, C, HW, eps,
			     momentum);
}

/* Channels are taken in blocks: a block's planes are summed, summed
 * again around their means and normalised while they sit in this half of
 * a 2 MiB L2, and each pass reads them sample by sample, the block's
 * planes of one sample being one stretch of memory. The first pass over
 * a block reads from memory; per channel, one plane at a time (as
 * before), it was latency-bound on small planes. */
enum { BN_BLOCK_BYTES = 1 << 20, BN_BLOCK_MAX_C = 64 };

/* Blocks of channels for `arrays` arrays of B x HW floats per channel:
 * at most BN_BLOCK_BYTES of them per block, at least one block per
 * thread. The blocking decides only what sits in the cache together;
 * every channel's sums are the same whatever it is. */
static int n_blocks(int B, int C, int HW, int arrays)
{
	const double per_c = (double)arrays * B * HW * sizeof(float);
	int nc = per_c > 0 ? (int)(BN_BLOCK_BYTES / per_c) : C;
	int nb, nt = pbi_max_threads();

	if (nc < 1)
		nc = 1;
	if (nc > BN_BLOCK_MAX_C)
		nc = BN_BLOCK_MAX_C;
	nb = (C + nc - 1) / nc;
	if (nb < nt)
		nb = nt < C ? nt : C;
	return nb > 0 ? nb : 1;
}

/* One plane: out = in * scale + shift and/or relu_out = ReLU of it (as
 * pb_relu_forward computes it). */
static inline void plane_normalise(float *out, float *relu_out,
				   const float *in, float scale, float shift,
				   int HW)
{
	if (!relu_out) {
#pragma omp simd
		for (int j = 0; j < HW; j++)
			out[j] = in[j] * scale + shift;
	} else if (!out) {
#pragma omp simd
		for (int j = 0; j < HW; j++) {
			const float y = in[j] * scale + shift;
			relu_out[j] = y > 0.0f ? y : 0.0f;
		}
	} else {
#pragma omp simd
		for (int j = 0; j < HW; j++) {
			const float y = in[j] * scale + shift;
			out[j] = y;
			relu_out[j] = y > 0.0f ? y : 0.0f;
		}
	}
}

/* The block's planes, sample by sample. */
static void normalise_block(float *out, float *relu_out, const float *in,
			    size_t cs, int c0, int nc, int B, int HW,
			    const float *scale, const float *shift)
{
	for (int b = 0; b < B; b++)
		for (int i = 0; i < nc; i++) {
			const size_t off = (size_t)b * cs + (size_t)(c0 + i) * HW;

			plane_normalise(out ? out + off : NULL,
					relu_out ? relu_out + off : NULL,
					in + off, scale[i], shift[i], HW);
		}
}

void pbi_bn_forward_train(float *out, float *relu_out, float *mean,
			  float *invstd, float *running_mean,
			  float *running_var, const float *in,
			  const float *gamma, const float *beta, int B, int C,
			  int HW, float eps, float momentum)
{
	const size_t n = (size_t)B * HW, cs = (size_t)C * HW;
	const int nb = n_blocks(B, C, HW, 1);

#pragma omp parallel for schedule(static) if (n * C >= BN_PAR_MIN)
	for (int k = 0; k < nb; k++) {
		const int c0 = pbi_block_start(k, C, nb);
		const int nc = pbi_block_start(k + 1, C, nb) - c0;
		const float *x = in + (size_t)c0 * HW;
		double sum[BN_BLOCK_MAX_C], sq[BN_BLOCK_MAX_C];
		float fm[BN_BLOCK_MAX_C], scale[BN_BLOCK_MAX_C],
		      shift[BN_BLOCK_MAX_C];

		/* Two passes: E[x^2] - E[x]^2 cancels badly when the mean is
		 * large next to the spread. */
		pbi_bn_block_sum(sum, x, cs, nc, B, HW);
		for (int i = 0; i < nc; i++)
			fm[i] = (float)(sum[i] / (double)n);
		pbi_bn_block_sqdev(sq, x, cs, nc, B, HW, fm);
		for (int i = 0; i < nc; i++) {
			const int c = c0 + i;
			/* Normalisation uses the biased variance, the running
			 * average the unbiased one (PyTorch's choice). A single
			 * value has no unbiased variance; PyTorch refuses it,
			 * we record 0. */
			const double var = sq[i] / (double)n;
			const double unbiased = n > 1 ?
				sq[i] / (double)(n - 1) : 0.0;
			const float fis = (float)(1.0 / sqrt(var + eps));

			mean[c] = fm[i];
			invstd[c] = fis;
			if (running_mean)
				running_mean[c] = (1.0f - momentum) *
					running_mean[c] + momentum * fm[i];
			if (running_var)
				running_var[c] = (1.0f - momentum) *
					running_var[c] + momentum *
					(float)unbiased;
			scale[i] = gamma[c] * fis;
			shift[i] = beta[c] - fm[i] * scale[i];
		}
		normalise_block(out, relu_out, in, cs, c0, nc, B, HW, scale,
				shift);
	}
}

/* in (B,C,HW) -> out (B,C,HW) with the running statistics (C). */
void pb_bn_forward_eval(float *out, const float *in, const float *gamma,
			const float *beta, const float *running_mean,
			const float *running_var, int B, int C, int HW,
			float eps)
{
#pragma omp parallel for schedule(static) if ((long)B * C * HW >= BN_PAR_MIN)
	for (int c = 0; c < C; c++) {
		const float scale =
			gamma[c] / sqrtf(running_var[c] + eps);
		const float shift = beta[c] - running_mean[c] * scale;

		for (int b = 0; b < B; b++) {
			const size_t off = ((size_t)b * C + c) * HW;
#pragma omp simd
			for (int j = 0; j < HW; j++)
				out[off + j] = in[off + j] * scale + shift;
		}
	}
}

/* dout, in (B,C,HW); mean, invstd, gamma (C); adds into din (B,C,HW),
 * dgamma and dbeta (C). With xhat = (x - mean) * invstd and n = B*HW:
 * din = gamma * invstd * (dout - mean(dout) - xhat * mean(dout * xhat)),
 * the last two terms being the gradient through the batch statistics. */
void pb_bn_backward(float *din, float *dgamma, float *dbeta,
		    const float *dout, const float *in, const float *mean,
		    const float *invstd, const float *gamma, int B, int C,
		    int HW)
{
	pbi_bn_backward(din, dgamma, dbeta, dout, NULL, in, mean, invstd,
			gamma, B, C, HW, 0);
}

/* din = (or +=) k * (g - a - xhat * bb) over one plane. */
static inline void plane_din(float *din, const float *dout, const float *r,
			     const float *x, float m, float is, float k,
			     float a, float bb, int HW, int overwrite)
{
	if (r && overwrite) {
#pragma omp simd
		for (int j = 0; j < HW; j++) {
			const float xh = (x[j] - m) * is;
			const float d = dout[j];
			const float g = r[j] > 0.0f ? d : 0.0f;
			din[j] = k * (g - a - xh * bb);
		}
	} else if (r) {
#pragma omp simd
		for (int j = 0; j < HW; j++) {
			const float xh = (x[j] - m) * is;
			const float d = dout[j];
			const float g = r[j] > 0.0f ? d : 0.0f;
			din[j] += k * (g - a - xh * bb);
		}
	} else if (overwrite) {
#pragma omp simd
		for (int j = 0; j < HW; j++) {
			const float xh = (x[j] - m) * is;
			din[j] = k * (dout[j] - a - xh * bb);
		}
	} else {
#pragma omp simd
		for (int j = 0; j < HW; j++) {
			const float xh = (x[j] - m) * is;
			din[j] += k * (dout[j] - a - xh * bb);
		}
	}
}

/* The block's planes, sample by sample. */
static void din_block(float *din, const float *dout, const float *relu_out,
		      const float *in, const float *mean, const float *invstd,
		      size_t cs, int c0, int nc, int B, int HW, const float *k,
		      const float *a, const float *bb, int overwrite)
{
	for (int b = 0; b < B; b++)
		for (int i = 0; i < nc; i++) {
			const int c = c0 + i;
			const size_t off = (size_t)b * cs + (size_t)c * HW;

			plane_din(din + off, dout + off,
				  relu_out ? relu_out + off : NULL, in + off,
				  mean[c], invstd[c], k[i], a[i], bb[i], HW,
				  overwrite);
		}
}

void pbi_bn_backward(float *din, float *dgamma, float *dbeta,
		     const float *dout, const float *relu_out,
		     const float *in, const float *mean, const float *invstd,
		     const float *gamma, int B, int C, int HW, int overwrite)
{
	const double n = (double)B * HW;
	const size_t cs = (size_t)C * HW;
	const int nb = n_blocks(B, C, HW, relu_out ? 3 : 2);

#pragma omp parallel for schedule(static)
	for (int k = 0; k < nb; k++) {
		const int c0 = pbi_block_start(k, C, nb);
		const int nc = pbi_block_start(k + 1, C, nb) - c0;
		const size_t o0 = (size_t)c0 * HW;
		double sdy[BN_BLOCK_MAX_C], sdyx[BN_BLOCK_MAX_C];
		float kk[BN_BLOCK_MAX_C], a[BN_BLOCK_MAX_C], bb[BN_BLOCK_MAX_C];

		pbi_bn_block_grad_sums(sdy, sdyx, dout + o0,
				       relu_out ? relu_out + o0 : NULL, in + o0,
				       cs, nc, B, HW, mean + c0, invstd + c0);
		for (int i = 0; i < nc; i++) {
			if (dbeta)
				dbeta[c0 + i] += (float)sdy[i];
			if (dgamma)
				dgamma[c0 + i] += (float)sdyx[i];
			/* din = k * (dout - a - xhat * bb), xhat expanded
			 * inline. */
			kk[i] = gamma[c0 + i] * invstd[c0 + i];
			a[i] = (float)(sdy[i] / n);
			bb[i] = (float)(sdyx[i] / n);
		}
		if (din)
			din_block(din, dout, relu_out, in, mean, invstd, cs, c0,
				  nc, B, HW, kk, a, bb, overwrite);
	}
}

/* Backward of the eval-mode forward: BN as the fixed affine map
 * y = gamma * (x - running_mean) * is + beta, is = 1/sqrt(running_var +
 * eps), the statistics constants (pruning criteria at initialisation
 * differentiate the network as it is evaluated). dout, in (B,C,HW);
 * gamma, running_mean, running_var (C); adds into din (B,C,HW), dgamma
 * and dbeta (C). Per channel, as pb_bn_backward: no atomics, a fixed
 * order of sums. */
void pb_bn_backward_eval(float *din, float *dgamma, float *dbeta,
			 const float *dout, const float *in, const float *gamma,
			 const float *running_mean, const float *running_var,
			 int B, int C, int HW, float eps)
{
#pragma omp parallel for schedule(static) if ((long)B * C * HW >= BN_PAR_MIN)
	for (int c = 0; c < C; c++) {
		/* The same expression as pb_bn_forward_eval's. */
		const float is = 1.0f / sqrtf(running_var[c] + eps);
		const float m = running_mean[c], k = gamma[c] * is;
		double sdy = 0.0, sdyx = 0.0;

		for (int b = 0; b < B; b++) {
			const size_t off = ((size_t)b * C + c) * HW;
			float s1 = 0.0f, s2 = 0.0f;
#pragma omp simd reduction(+ : s1, s2)
			for (int j = 0; j < HW; j++) {
				s1 += dout[off + j];
				s2 += dout[off + j] * (in[off + j] - m) * is;
			}
			sdy += s1;
			sdyx += s2;
			if (!din)
				continue;
#pragma omp simd
			for (int j = 0; j < HW; j++)
				din[off + j] += k * dout[off + j];
		}
		if (dbeta)
			dbeta[c] += (float)sdy;
		if (dgamma)
			dgamma[c] += (float)sdyx;
	}
}
