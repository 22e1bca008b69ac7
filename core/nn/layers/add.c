/* Residual addition. The gradient passes through unchanged to both
 * inputs. */
#include "prunebench/layers.h"

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
