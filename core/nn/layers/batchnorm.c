/* Batch normalisation over (B,H,W) for each channel, as PyTorch's
 * BatchNorm2d. One thread owns a channel at a time, so every sum has a
 * fixed order and no thread writes another's outputs. Channel sums are
 * accumulated in double: a channel holds B*H*W values, often tens of
 * thousands. */
#include <math.h>

#include "prunebench/layers.h"
#include "nn/layers/layers_impl.h"

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
	pbi_bn_forward_train(out, NULL, mean, invstd, running_mean,
			     running_var, in, gamma, beta, B, C, HW, eps,
			     momentum);
}

void pbi_bn_forward_train(float *out, float *relu_out, float *mean,
			  float *invstd, float *running_mean,
			  float *running_var, const float *in,
			  const float *gamma, const float *beta, int B, int C,
			  int HW, float eps, float momentum)
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
			if (!relu_out) {
#pragma omp simd
				for (int j = 0; j < HW; j++)
					out[off + j] = in[off + j] * scale +
						       shift;
				continue;
			}
			/* The ReLU as pb_relu_forward computes it. */
			if (!out) {
#pragma omp simd
				for (int j = 0; j < HW; j++) {
					const float y = in[off + j] * scale +
							shift;
					relu_out[off + j] = y > 0.0f ? y : 0.0f;
				}
				continue;
			}
#pragma omp simd
			for (int j = 0; j < HW; j++) {
				const float y = in[off + j] * scale + shift;
				out[off + j] = y;
				relu_out[off + j] = y > 0.0f ? y : 0.0f;
			}
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
	pbi_bn_backward(din, dgamma, dbeta, dout, NULL, in, mean, invstd,
			gamma, B, C, HW, 0);
}

/* Sums over one plane of the BN output gradient g and of g * xhat; g is
 * dout, or with relu_out r the ReLU's select (as pbi_relu_backward). */
static inline void plane_sums(float *s1, float *s2, const float *dout,
			      const float *r, const float *x, float m,
			      float is, int HW)
{
	float a = 0.0f, b = 0.0f;

	if (r) {
#pragma omp simd reduction(+ : a, b)
		for (int j = 0; j < HW; j++) {
			const float xh = (x[j] - m) * is;
			const float d = dout[j];
			const float g = r[j] > 0.0f ? d : 0.0f;
			a += g;
			b += g * xh;
		}
	} else {
#pragma omp simd reduction(+ : a, b)
		for (int j = 0; j < HW; j++) {
			const float xh = (x[j] - m) * is;
			a += dout[j];
			b += dout[j] * xh;
		}
	}
	*s1 = a;
	*s2 = b;
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

void pbi_bn_backward(float *din, float *dgamma, float *dbeta,
		     const float *dout, const float *relu_out,
		     const float *in, const float *mean, const float *invstd,
		     const float *gamma, int B, int C, int HW, int overwrite)
{
	const double n = (double)B * HW;

#pragma omp parallel for schedule(static)
	for (int c = 0; c < C; c++) {
		const float m = mean[c], is = invstd[c];
		double sdy = 0.0, sdyx = 0.0;
		float k, a, bb;

		for (int b = 0; b < B; b++) {
			const size_t off = ((size_t)b * C + c) * HW;
			float s1, s2;

			plane_sums(&s1, &s2, dout + off,
				   relu_out ? relu_out + off : NULL, in + off,
				   m, is, HW);
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

			plane_din(din + off, dout + off,
				  relu_out ? relu_out + off : NULL, in + off,
				  m, is, k, a, bb, HW, overwrite);
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
