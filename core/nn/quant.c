/* Int8 quantization of weights and activations (definitions in
 * prunebench/quantize.h): the plan, the per-row weight rounding, the
 * 8-bit activation code and the hook that applies it inside eval
 * forwards. Calibration and evaluation over a data set are in
 * core/prune/quantize.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/model_impl.h"
#include "nn/quant_impl.h"

int pb_quant_new(pb_quant **out, const pb_model *m, pb_error *err)
{
	pb_quant *q = calloc(1, sizeof *q);

	*out = NULL;
	if (!q)
		return pb_error_set(err, PB_ENOMEM, "out of memory (int8)");
	q->n_params = m->n_params;
	q->n_layers = m->n_nodes;
	q->scales = calloc((size_t)(m->n_params ? m->n_params : 1),
			   sizeof *q->scales);
	q->acts = calloc((size_t)(m->n_nodes ? m->n_nodes : 1),
			 sizeof *q->acts);
	if (!q->scales || !q->acts) {
		pb_quant_free(q);
		return pb_error_set(err, PB_ENOMEM, "out of memory (int8)");
	}
	*out = q;
	return 0;
}

void pb_quant_free(pb_quant *q)
{
	if (!q)
		return;
	for (int i = 0; q->scales && i < q->n_params; i++)
		free(q->scales[i]);
	free(q->scales);
	free(q->acts);
	free(q);
}

/* ---- weights ---------------------------------------------------------------- */

/* Row r of w (rows x cols) to int8 with its own scale: max |w| / 127, so
 * the largest weight is +-127 and 0.0 is code 0, which dequantizes to
 * +0.0. The dequantized value is (float)q * scale, as the int8 file
 * decodes it. */
static float quantize_row(float *w, size_t cols)
{
	float amax = 0.0f, s;

	for (size_t j = 0; j < cols; j++)
		if (fabsf(w[j]) > amax)
			amax = fabsf(w[j]);
	s = amax / 127.0f;
	for (size_t j = 0; j < cols; j++) {
		long q = 0;

		if (s > 0.0f) {
			q = lrint((double)w[j] / (double)s);
			q = q > 127 ? 127 : q < -127 ? -127 : q;
		}
		w[j] = (float)q * s;
	}
	return s;
}

int pb_quant_weights(pb_model *m, pb_quant *q, pb_error *err)
{
	if (q->n_params != m->n_params)
		return pb_error_set(err, PB_EINVAL, "int8: the plan is for a "
				    "model of %d tensors, model '%s' has %d",
				    q->n_params, m->name, m->n_params);
	for (int i = 0; i < m->n_params; i++) {
		pb_param *p = &m->params[i];
		size_t rows = p->ndim > 1 ? (size_t)p->shape[0] : 1, cols;
		float *s;

		if (p->kind != PB_PARAM_WEIGHT || !p->n)
			continue;
		cols = p->n / rows;
		s = malloc(rows * sizeof *s);
		if (!s)
			return pb_error_set(err, PB_ENOMEM, "out of memory "
					    "(int8)");
		for (size_t r = 0; r < rows; r++)
			s[r] = quantize_row(p->data + r * cols, cols);
		free(q->scales[i]);
		q->scales[i] = s;
	}
	return 0;
}

/* ---- activations -------------------------------------------------------------- */

void pb_quant_mark_activations(const pb_model *m, pb_quant *q)
{
	for (int l = 0; l < m->n_nodes; l++) {
		const pb_layer_info *li = &m->nodes[l].info;
		int k = li->inputs[0];

		if (li->type != PB_LAYER_CONV && li->type != PB_LAYER_LINEAR)
			continue;
		/* Flatten only renames its input's buffer: the tensor
		 * stored is its producer's. */
		while (k >= 0 && m->nodes[k].info.type == PB_LAYER_FLATTEN)
			k = m->nodes[k].info.inputs[0];
		if (k < 0)
			q->input.on = 1;
		else
			q->acts[k].on = 1;
	}
	q->activations = 1;
}

void pb_act_quant_set(pb_act_quant *a, float lo, float hi)
{
	double s;

	a->on = 1;
	a->lo = lo < 0.0f ? lo : 0.0f;
	a->hi = hi > 0.0f ? hi : 0.0f;
	s = ((double)a->hi - (double)a->lo) / 255.0;
	a->scale = (float)s;
	a->zero = a->scale > 0.0f ?
		  (int32_t)lrint(-(double)a->lo / (double)a->scale) : 0;
	a->zero = a->zero < 0 ? 0 : a->zero > 255 ? 255 : a->zero;
}

void pb_act_quant_round(const pb_act_quant *a, float *x, size_t n)
{
	const float s = a->scale;
	const int32_t z = a->zero;

	if (!a->on)
		return;
	if (!(s > 0.0f)) {
		memset(x, 0, n * sizeof *x);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		/* Far outside the code either way: clamped before the
		 * conversion, which must not overflow. */
		float t = x[i] / s;
		long c;

		t = t > 512.0f ? 512.0f : t < -512.0f ? -512.0f : t;
		c = lrintf(t) + z;
		c = c < 0 ? 0 : c > 255 ? 255 : c;
		x[i] = (float)(c - z) * s;
	}
}

static void widen(pb_act_quant *a, const float *x, size_t n)
{
	float lo = a->lo, hi = a->hi;

	for (size_t i = 0; i < n; i++) {
		if (x[i] < lo)
			lo = x[i];
		if (x[i] > hi)
			hi = x[i];
	}
	a->lo = lo;
	a->hi = hi;
}

static void hook(void *user, pb_model *m, int first, int n, int B)
{
	pbi_quant_run *run = user;

	for (int l = first; l < first + n; l++) {
		pbi_node *nd = &m->nodes[l];
		pb_act_quant *a = &run->q->acts[l];
		size_t len = (size_t)B * nd->out_n;

		/* Only outputs the layer stored: a flatten's is its input,
		 * and a fused group may not store its middle (lean). */
		if (!a->on || nd->y != nd->out)
			continue;
		if (run->calibrate)
			widen(a, nd->out, len);
		else
			pb_act_quant_round(a, nd->out, len);
	}
}

void pbi_quant_attach(pb_model *m, pbi_quant_run *run)
{
	m->eval_hook = run ? hook : NULL;
	m->eval_hook_user = run;
}
