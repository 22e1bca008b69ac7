/* ReLU. Elementwise, so threads split the array without changing any
 * result; small arrays stay serial where a thread team costs more than
 * it saves. */
#include "prunebench/layers.h"
#include "nn/layers/layers_impl.h"

#define RELU_PAR_MIN 65536

/* in (n) -> out (n) */
void pb_relu_forward(float *out, const float *in, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n >= RELU_PAR_MIN)
	for (size_t i = 0; i < n; i++)
		out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

/* dout, out (n); adds into din (n). The forward output is positive exactly
 * where the input was, so backward needs no copy of the input. */
void pb_relu_backward(float *din, const float *dout, const float *out,
		      size_t n)
{
	pbi_relu_backward(din, dout, out, n, 0);
}

void pbi_relu_backward(float *din, const float *dout, const float *out,
		       size_t n, int overwrite)
{
	/* Loading dout unconditionally lets the compiler turn the select
	 * into a blend and vectorise; a branch here was 14% of a VGG-S
	 * training step (mispredicted on half the elements). */
	if (overwrite) {
#pragma omp parallel for simd schedule(static) if (n >= RELU_PAR_MIN)
		for (size_t i = 0; i < n; i++) {
			const float g = dout[i];
			din[i] = out[i] > 0.0f ? g : 0.0f;
		}
		return;
	}
#pragma omp parallel for simd schedule(static) if (n >= RELU_PAR_MIN)
	for (size_t i = 0; i < n; i++) {
		const float g = dout[i];
		din[i] += out[i] > 0.0f ? g : 0.0f;
	}
}
