/* Inverted dropout: kept values are scaled by 1/(1-p) at training time so
 * that evaluation is the identity. The mask is drawn separately from the
 * forward so that the RNG stream, and hence a run, is reproducible. */
#include "prunebench/layers.h"
#include "nn/layers/layers_impl.h"

#define DROPOUT_PAR_MIN 65536

/* -> keep (n), each 0 with probability p, else 1/(1-p). */
void pb_dropout_fill_mask(float *keep, size_t n, float p, gsl_rng *rng)
{
	/* In double so that 1/(1-p) is the float nearest the true scale. */
	const float scale = p < 1.0f ? (float)(1.0 / (1.0 - (double)p)) : 0.0f;

	/* Serial and one draw per element whatever p is: the stream must
	 * not depend on the thread count or on earlier outcomes. */
	for (size_t i = 0; i < n; i++)
		keep[i] = gsl_rng_uniform(rng) < p ? 0.0f : scale;
}

/* in, keep (n) -> out (n) */
void pb_dropout_forward(float *out, const float *in, const float *keep,
			size_t n)
{
#pragma omp parallel for simd schedule(static) if (n >= DROPOUT_PAR_MIN)
	for (size_t i = 0; i < n; i++)
		out[i] = in[i] * keep[i];
}

/* dout, keep (n); adds into din (n). */
void pb_dropout_backward(float *din, const float *dout, const float *keep,
			 size_t n)
{
	pbi_dropout_backward(din, dout, keep, n, 0);
}

void pbi_dropout_backward(float *din, const float *dout, const float *keep,
			  size_t n, int overwrite)
{
	if (overwrite) {
#pragma omp parallel for simd schedule(static) if (n >= DROPOUT_PAR_MIN)
		for (size_t i = 0; i < n; i++)
			din[i] = dout[i] * keep[i];
		return;
	}
#pragma omp parallel for simd schedule(static) if (n >= DROPOUT_PAR_MIN)
	for (size_t i = 0; i < n; i++)
		din[i] += dout[i] * keep[i];
}
