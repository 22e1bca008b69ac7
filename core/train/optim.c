/* SGD with momentum and weight decay, PyTorch semantics:
 *   g = grad + wd * w         (wd only on conv/linear weights by default)
 *   buf = momentum * buf + g
 *   step = nesterov ? g + momentum * buf : buf
 *   w -= lr * step
 * and, when the model has weight masks, masked entries of w, grad and buf
 * are set to zero in the same loop. */
#include <stdlib.h>

#include "nn/mask.h"
#include "prunebench/tensor.h"
#include "prunebench/train.h"

struct pb_sgd {
	size_t n;
	float *buf;
	float *decay;   /* per-element weight decay coefficient */
	float momentum;
	int nesterov;
};

int pb_sgd_create(pb_sgd **out, pb_model *m, const pb_recipe *r,
		  pb_error *err)
{
	pb_sgd *s = calloc(1, sizeof *s);
	size_t off = 0;

	if (!s)
		return pb_error_set(err, PB_ENOMEM, "out of memory (optimizer)");
	s->n = pb_model_trainable_size(m);
	s->buf = pb_falloc(s->n);
	s->decay = pb_falloc(s->n);
	if (!s->buf || !s->decay) {
		pb_sgd_free(s);
		return pb_error_set(err, PB_ENOMEM, "out of memory (optimizer)");
	}
	s->momentum = (float)r->momentum;
	s->nesterov = r->nesterov;
	/* The flat trainable array may pad each tensor's start; locate each
	 * tensor by its data pointer rather than assuming adjacency. */
	float *base = pb_model_trainable_data(m);
	for (int i = 0; i < pb_model_n_params(m); i++) {
		pb_param *p = pb_model_param(m, i);
		int decayed;
		if (!p->trainable)
			continue;
		decayed = p->kind == PB_PARAM_WEIGHT || r->decay_bn_bias;
		off = (size_t)(p->data - base);
		for (size_t j = 0; j < p->n; j++)
			s->decay[off + j] = decayed ? (float)r->weight_decay : 0.0f;
	}
	*out = s;
	return 0;
}

void pb_sgd_free(pb_sgd *s)
{
	if (!s)
		return;
	pb_ffree(s->buf);
	pb_ffree(s->decay);
	free(s);
}

void pb_sgd_step(pb_sgd *s, pb_model *m, double lr)
{
	float *w = pb_model_trainable_data(m);
	float *g = pb_model_trainable_grad(m);
	/* Masked weights stay exactly zero: their gradient, momentum and
	 * value are zeroed in the same pass that updates the others. */
	const float *mk = pbi_mask_flat(m);
	const float mom = s->momentum, flr = (float)lr;
	const long n = (long)s->n;

#pragma omp parallel for schedule(static)
	for (long i = 0; i < n; i++) {
		const int keep = !mk || mk[i] != 0.0f;
		float gi = g[i] + s->decay[i] * w[i];
		float b = mom * s->buf[i] + gi;
		float wi = w[i] - flr * (s->nesterov ? gi + mom * b : b);
		g[i] = keep ? g[i] : 0.0f;
		s->buf[i] = keep ? b : 0.0f;
		w[i] = keep ? wi : 0.0f;
	}
}
