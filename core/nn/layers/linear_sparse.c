/* Sparse fully connected layer for inference: each output is a dot
 * product over its row's non-zero weights only. The layers this serves
 * are small next to the convolutions (VGG-S: 576 x 10), so it stays a
 * plain loop, threaded over samples: every output is one sequential sum
 * in weight order, the same bits for any thread count. */
#include <stdlib.h>

#include "prunebench/error.h"
#include "nn/layers/sparse.h"

int pbi_sparse_build_linear(pbi_sparse_w *s, const float *weight, int IN,
			    int OUT)
{
	const size_t n = (size_t)IN * OUT, nnz = pbi_sparse_count(weight, n);
	size_t k = 0;

	s->rows = OUT;
	s->n = n;
	s->nnz = nnz;
	s->start = malloc(((size_t)OUT + 1) * sizeof *s->start);
	s->off = malloc((nnz ? nnz : 1) * sizeof *s->off);
	s->val = malloc((nnz ? nnz : 1) * sizeof *s->val);
	if (!s->start || !s->off || !s->val) {
		pbi_sparse_w_free(s);
		return PB_ENOMEM;
	}
	for (int o = 0; o < OUT; o++) {
		const float *w = weight + (size_t)o * IN;

		s->start[o] = (int32_t)k;
		for (int i = 0; i < IN; i++)
			if (w[i] != 0.0f) {
				s->off[k] = i;
				s->val[k++] = w[i];
			}
	}
	s->start[OUT] = (int32_t)k;
	return 0;
}

/* Below this many MACs one thread does it all. */
#define PAR_MIN_MACS 100000.0

void pbi_sparse_linear_forward(float *out, const float *in,
			       const pbi_sparse_w *sw, const float *bias,
			       int B, int IN, int OUT)
{
	const double macs = (double)B * (double)sw->nnz;

#pragma omp parallel for schedule(static) if (macs >= PAR_MIN_MACS)
	for (int b = 0; b < B; b++) {
		const float *x = in + (size_t)b * IN;
		float *y = out + (size_t)b * OUT;

		for (int o = 0; o < OUT; o++) {
			const int32_t k1 = sw->start[o + 1];
			float s = 0.0f;

			for (int32_t k = sw->start[o]; k < k1; k++)
				s += sw->val[k] * x[sw->off[k]];
			y[o] = bias ? s + bias[o] : s;
		}
	}
}
