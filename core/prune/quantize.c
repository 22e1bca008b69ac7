/* Post-training int8 over a data set (prunebench/quantize.h): calibrating
 * the activation ranges on the validation split, and evaluating with the
 * activations rounded as they would be stored in 8 bits. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/model_impl.h"
#include "nn/quant_impl.h"
#include "train/train_impl.h"
#include "prunebench/data.h"
#include "prunebench/layers.h"
#include "prunebench/quantize.h"
#include "prunebench/tensor.h"
#include "prunebench/train.h"

static int check_data(const pb_model *m, const pb_dataset *d, pb_error *err)
{
	if (d->c != m->in_c || d->h != m->in_h || d->w != m->in_w)
		return pb_error_set(err, PB_EMISMATCH, "int8: data is %dx%dx%d "
				    "but model '%s' expects %dx%dx%d", d->c,
				    d->h, d->w, m->name, m->in_c, m->in_h,
				    m->in_w);
	return 0;
}

int pb_quant_calibrate(pb_model *m, pb_quant *q, const pb_dataset *d,
		       int batch, pb_error *err)
{
	const size_t sample = (size_t)d->c * d->h * d->w;
	pbi_quant_run run = { q, 1 };
	int rc;

	if ((rc = check_data(m, d, err)))
		return rc;
	if (d->n == 0)
		return pb_error_set(err, PB_EINVAL, "int8: no calibration data "
				    "(the validation split is empty; set "
				    "val_size)");
	if (batch < 1)
		batch = 500;
	q->input.lo = q->input.hi = 0.0f;
	for (int l = 0; l < q->n_layers; l++)
		q->acts[l].lo = q->acts[l].hi = 0.0f;
	pbi_quant_attach(m, &run);
	for (int start = 0; start < d->n && !rc; start += batch) {
		int B = d->n - start < batch ? d->n - start : batch;
		const float *x = d->x + (size_t)start * sample;
		const float *logits;

		if (q->input.on)
			for (size_t i = 0; i < (size_t)B * sample; i++) {
				if (x[i] < q->input.lo)
					q->input.lo = x[i];
				if (x[i] > q->input.hi)
					q->input.hi = x[i];
			}
		rc = pb_model_forward(m, x, B, 0, NULL, &logits, err);
	}
	pbi_quant_attach(m, NULL);
	if (rc)
		return rc;
	if (q->input.on)
		pb_act_quant_set(&q->input, q->input.lo, q->input.hi);
	for (int l = 0; l < q->n_layers; l++)
		if (q->acts[l].on)
			pb_act_quant_set(&q->acts[l], q->acts[l].lo,
					 q->acts[l].hi);
	q->activations = 1;
	return 0;
}

int pb_quant_evaluate(pb_model *m, const pb_quant *q, const pb_dataset *d,
		      int batch, double *acc, double *loss, pb_error *err)
{
	pbi_quant_run run = { (pb_quant *)q, 0 };
	int rc;

	if (!q || !q->activations)
		return pb_evaluate(m, d, batch, acc, loss, err);
	if ((rc = check_data(m, d, err)))
		return rc;
	if (batch < 1)
		batch = 500;
	/* The input is stored in 8 bits too: the loop rounds a copy. */
	pbi_quant_attach(m, &run);
	rc = pbi_evaluate_batches(m, d, batch, &q->input, acc, loss, err);
	pbi_quant_attach(m, NULL);
	return rc;
}

int pb_quantize_model(pb_model *m, int activations, const pb_dataset *calib,
		      int batch, pb_quant **out, pb_error *err)
{
	pb_quant *q = NULL;
	int rc;

	*out = NULL;
	if ((rc = pb_quant_new(&q, m, err)) ||
	    (rc = pb_quant_weights(m, q, err)))
		goto fail;
	if (activations) {
		if (!calib) {
			rc = pb_error_set(err, PB_EINVAL, "int8 activations "
					  "need calibration data (the "
					  "validation split)");
			goto fail;
		}
		pb_quant_mark_activations(m, q);
		if ((rc = pb_quant_calibrate(m, q, calib, batch, err)))
			goto fail;
	}
	*out = q;
	return 0;
fail:
	pb_quant_free(q);
	return rc;
}
