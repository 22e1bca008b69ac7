/* Weight masks for unstructured pruning. A model's masks live in one flat
 * array laid out like its trainable data (model_impl.h), allocated on the
 * first mask, so the optimizer keeps masked weights at zero inside its one
 * update loop; per-tensor flags say which tensors carry a mask of their
 * own, which is what checkpoints save and surgery copies. */
#include <stdlib.h>
#include <string.h>

#include "nn/mask.h"
#include "prunebench/tensor.h"
#include "nn/model_impl.h"

/* Index of p in m->params, or -1 when p belongs to another model. */
static int param_index(const pb_model *m, const pb_param *p)
{
	if (!p || p < m->params || p >= m->params + m->n_params)
		return -1;
	return (int)(p - m->params);
}

/* Conv and linear weights by default; the plugin ABI lets a pruner mask
 * other trainable tensors, but running statistics are never trained, so a
 * mask on them would mean nothing. */
static int maskable(const pb_param *p)
{
	return p->trainable;
}

static int ensure_flat(pb_model *m)
{
	if (m->mask)
		return 0;
	m->mask = pb_falloc(m->n_train);
	m->masked = calloc((size_t)m->n_params, 1);
	if (!m->mask || !m->masked) {
		pb_ffree(m->mask);
		free(m->masked);
		m->mask = NULL;
		m->masked = NULL;
		return PB_ENOMEM;
	}
	for (size_t i = 0; i < m->n_train; i++)
		m->mask[i] = 1.0f;
	return 0;
}

float *pbi_mask_get(pb_model *m, const pb_param *p, int create)
{
	int i = param_index(m, p);

	if (i < 0 || !maskable(p))
		return NULL;
	if (!m->mask || !m->masked[i]) {
		if (!create || ensure_flat(m))
			return NULL;
		m->masked[i] = 1;
	}
	return m->mask + (p->data - m->data);
}

void pbi_mask_apply(pb_model *m)
{
	const long n = (long)m->n_train;
	const float *mk = m->mask;

	if (!mk)
		return;
	/* A select rather than a product: it gives +0.0 even for a negative,
	 * infinite or NaN weight, so masked entries are exactly zero. */
#pragma omp parallel for schedule(static)
	for (long i = 0; i < n; i++) {
		if (mk[i] == 0.0f) {
			m->data[i] = 0.0f;
			m->grad[i] = 0.0f;
		}
	}
}

const float *pbi_mask_flat(const pb_model *m)
{
	return m->mask;
}
