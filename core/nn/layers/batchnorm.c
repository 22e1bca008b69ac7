/* Batch normalisation over (B,H,W) for each channel, as PyTorch's
 * BatchNorm2d. One thread owns a channel at a time, so every sum has a
 * fixed order and no thread writes another's outputs. Channel sums are
 * accumulated in double: a channel holds B*H*W values, often tens of
 * thousands. */
#include <math.h>

#include "prunebench/layers.h"

/* Eval BN on fewer values runs on one thread (batch-1 inference): a
 * fork/join costs more than the work. Channel sums are float vector sums
 * over one (H,W) plane (at most a few thousand values) added into a
 * double across planes: vectorised, fixed order (the same bits for every
 * thread count), and still accurate over tens of thousands of values. */
#define BN_PAR_MIN 32768

/* in (B,C,HW) -> out (B,C,HW); mean, invstd, running_mean, running_var,
 * gamma, beta (C). The running statistics may be NULL (not updated). */
void pb_bn_forward_train(float *out, float *mean, float *invstd,
			 float *running_mean, float *running_var,
			 const float *in, const float *gamma,
			 const float *beta, int B, int C, int HW, float eps,
			 float momentum)
{
	const size_t n = (size_t)B * HW;

#pragma omp parallel for schedule(static) if (n * C >= BN_PAR_MIN)
	for (int c = 0; c < C; c++) {
		double sum = 0.0, sq = 0.0, m, var, unbiased;
		float fm, fis, scale, shift;

		for (int b = 0; b < B; b++) {
			const float *x = in + ((size_t)b * C + c) * HW;
			float s = 0.0f;
#pragma omp simd reduction(+ : s)
			for (int j = 0; j < HW; j++)
				s += x[j];
			sum += s;
		}
		m = sum / (double)n;
		/* Two passes: E[x^2] - E[x]^2 cancels badly when the mean is
		 * large next to the spread. */
		fm = (float)m;
		for (int b = 0; b < B; b++) {
			const float *x = in + ((size_t)b * C + c) * HW;
			float s = 0.0f;
#pragma omp simd reduction(+ : s)
			for (int j = 0; j < HW; j++) {
				const float d = x[j] - fm;
				s += d * d;
			}
			sq += s;
		}
		/* Normalisation uses the biased variance, the running average
		 * the unbiased one (PyTorch's choice). A single value has no
		 * unbiased variance; PyTorch refuses it, we record 0. */
		var = sq / (double)n;
		unbiased = n > 1 ? sq / (double)(n - 1) : 0.0;
		fis = (float)(1.0 / sqrt(var + eps));
		mean[c] = fm;
		invstd[c] = fis;
		if (running_mean)
			running_mean[c] = (1.0f - momentum) * running_mean[c] +
					  momentum * fm;
		if (running_var)
			running_var[c] = (1.0f - momentum) * running_var[c] +
					 momentum * (float)unbiased;

		scale = gamma[c] * fis;
		shift = beta[c] - fm * scale;
		for (int b = 0; b < B; b++) {
			const size_t off = ((size_t)b * C + c) * HW;
#pragma omp simd
			for (int j = 0; j < HW; j++)
				out[off + j] = in[off + j] * scale + shift;
		}
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
	const double n = (double)B * HW;

#pragma omp parallel for schedule(static)
	for (int c = 0; c < C; c++) {
		const float m = mean[c], is = invstd[c];
		double sdy = 0.0, sdyx = 0.0;
		float k, a, bb;

		for (int b = 0; b < B; b++) {
			const size_t off = ((size_t)b * C + c) * HW;
			float s1 = 0.0f, s2 = 0.0f;
#pragma omp simd reduction(+ : s1, s2)
			for (int j = 0; j < HW; j++) {
				const float xh = (in[off + j] - m) * is;
				s1 += dout[off + j];
				s2 += dout[off + j] * xh;
			}
			sdy += s1;
			sdyx += s2;
		}
		if (dbeta)
			dbeta[c] += (float)sdy;
		if (dgamma)
			dgamma[c] += (float)sdyx;
		if (!din)
			continue;
		/* din = k * (dout - a - xhat * bb), xhat expanded inline. */
		k = gamma[c] * is;
		a = (float)(sdy / n);
		bb = (float)(sdyx / n);
		for (int b = 0; b < B; b++) {
			const size_t off = ((size_t)b * C + c) * HW;
#pragma omp simd
			for (int j = 0; j < HW; j++) {
				const float xh = (in[off + j] - m) * is;
				din[off + j] += k * (dout[off + j] - a - xh * bb);
			}
		}
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
