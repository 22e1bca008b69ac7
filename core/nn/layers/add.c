/* Residual addition. The gradient passes through unchanged to both
 * inputs. */
#include "prunebench/layers.h"
#include "nn/layers/layers_impl.h"

#define ADD_PAR_MIN 65536

/* a, b (n) -> out (n) */
void pb_add_forward(float *out, const float *a, const float *b, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n >= ADD_PAR_MIN)
	for (size_t i = 0; i < n; i++)
		out[i] = a[i] + b[i];
}

/* dout (n); adds into da and db (n), either may be NULL. Two separate
 * passes so that da == db correctly receives dout twice. */
void pb_add_backward(float *da, float *db, const float *dout, size_t n)
{
	if (da) {
#pragma omp parallel for simd schedule(static) if (n >= ADD_PAR_MIN)
		for (size_t i = 0; i < n; i++)
			da[i] += dout[i];
	}
	if (db) {
#pragma omp parallel for simd schedule(static) if (n >= ADD_PAR_MIN)
		for (size_t i = 0; i < n; i++)
			db[i] += dout[i];
	}
}

void pbi_add_relu_forward(float *out, float *relu_out, const float *a,
			  const float *b, size_t n)
{
	if (!out) {
#pragma omp parallel for simd schedule(static) if (n >= ADD_PAR_MIN)
		for (size_t i = 0; i < n; i++) {
			const float y = a[i] + b[i];
			relu_out[i] = y > 0.0f ? y : 0.0f;
		}
		return;
	}
#pragma omp parallel for simd schedule(static) if (n >= ADD_PAR_MIN)
	for (size_t i = 0; i < n; i++) {
		const float y = a[i] + b[i];
		out[i] = y;
		relu_out[i] = y > 0.0f ? y : 0.0f;
	}
}

/* One input's share: g into d, written or added. */
static void relu_grad_into(float *d, int ow, const float *dout,
			   const float *r, size_t n)
{
	if (ow) {
#pragma omp parallel for simd schedule(static) if (n >= ADD_PAR_MIN)
		for (size_t i = 0; i < n; i++) {
			const float g = dout[i];
			d[i] = r[i] > 0.0f ? g : 0.0f;
		}
		return;
	}
#pragma omp parallel for simd schedule(static) if (n >= ADD_PAR_MIN)
	for (size_t i = 0; i < n; i++) {
		const float g = dout[i];
		d[i] += r[i] > 0.0f ? g : 0.0f;
	}
}

void pbi_add_relu_backward(float *da, int ow_a, float *db, int ow_b,
			   const float *dout, const float *relu_out, size_t n)
{
	if (da && db && da != db && !ow_a && !ow_b) {
#pragma omp parallel for simd schedule(static) if (n >= ADD_PAR_MIN)
		for (size_t i = 0; i < n; i++) {
			const float d = dout[i];
			const float g = relu_out[i] > 0.0f ? d : 0.0f;
			da[i] += g;
			db[i] += g;
		}
		return;
	}
	if (da && db && da != db && ow_a && ow_b) {
#pragma omp parallel for simd schedule(static) if (n >= ADD_PAR_MIN)
		for (size_t i = 0; i < n; i++) {
			const float d = dout[i];
			const float g = relu_out[i] > 0.0f ? d : 0.0f;
			da[i] = g;
			db[i] = g;
		}
		return;
	}
	if (da)
		relu_grad_into(da, ow_a, dout, relu_out, n);
	if (db)
		relu_grad_into(db, ow_b && db != da, dout, relu_out, n);
}
