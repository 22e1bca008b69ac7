/* Top-1 accuracy and mean cross-entropy of a model in eval mode, and the
 * batch loop behind it, which the int8 evaluation (core/prune/quantize.c)
 * runs too, with its hook attached and its rounded inputs. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "prunebench/layers.h"
#include "prunebench/quantize.h"
#include "prunebench/tensor.h"
#include "prunebench/train.h"
#include "nn/model_impl.h"
#include "train/train_impl.h"

int pbi_evaluate_batches(pb_model *m, const pb_dataset *d, int batch,
			 const pb_act_quant *in_q, double *acc, double *loss,
			 pb_error *err)
{
	const size_t sample = (size_t)d->c * d->h * d->w;
	const int K = pb_model_classes(m);
	double loss_sum = 0.0;
	long hits = 0;
	float *probs = NULL, *xb = NULL;
	int rc = 0;

	if (d->n == 0) {
		if (acc)
			*acc = NAN;
		if (loss)
			*loss = NAN;
		return 0;
	}
	probs = pb_falloc((size_t)batch * K);
	if (in_q)
		xb = pb_falloc((size_t)batch * sample);
	if (!probs || (in_q && !xb)) {
		pb_ffree(probs);
		pb_ffree(xb);
		return pb_error_set(err, PB_ENOMEM, "out of memory (%s)",
				    in_q ? "int8 evaluation" : "evaluate");
	}
	for (int start = 0; start < d->n; start += batch) {
		int B = d->n - start < batch ? d->n - start : batch;
		/* Samples are contiguous, so a batch is a slice: no copy,
		 * unless the input is rounded as int8 stores it. */
		const float *x = d->x + (size_t)start * sample;
		const float *logits;
		int correct = 0;

		if (in_q) {
			memcpy(xb, x, (size_t)B * sample * sizeof *xb);
			pb_act_quant_round(in_q, xb, (size_t)B * sample);
			x = xb;
		}
		rc = pb_model_forward(m, x, B, 0, NULL, &logits, err);
		if (rc)
			break;
		loss_sum += B * pb_softmax_xent_forward(probs, logits,
							 d->y + start, B, K,
							 &correct);
		hits += correct;
	}
	pb_ffree(probs);
	pb_ffree(xb);
	if (rc)
		return rc;
	if (acc)
		*acc = (double)hits / d->n;
	if (loss)
		*loss = loss_sum / d->n;
	return 0;
}

int pb_evaluate(pb_model *m, const pb_dataset *d, int batch, double *acc,
		double *loss, pb_error *err)
{
	int rc, lean = m->lean;

	if (batch < 1)
		batch = 256;
	/* Only the logits are read: the lean forward skips storing the
	 * outputs inside fused groups, the same logits bit for bit. The
	 * sparse kernels are not used here: they equal the dense ones only
	 * within float rounding, and accuracy is measured on the reference
	 * path. */
	pbi_model_set_lean(m, 1);
	rc = pbi_evaluate_batches(m, d, batch, NULL, acc, loss, err);
	pbi_model_set_lean(m, lean);
	return rc;
}
