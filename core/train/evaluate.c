/* Top-1 accuracy and mean cross-entropy of a model in eval mode. */
#include <math.h>
#include <stdlib.h>

#include "prunebench/layers.h"
#include "prunebench/tensor.h"
#include "prunebench/train.h"
#include "nn/model_impl.h"

int pb_evaluate(pb_model *m, const pb_dataset *d, int batch, double *acc,
		double *loss, pb_error *err)
{
	const size_t sample = (size_t)d->c * d->h * d->w;
	const int K = pb_model_classes(m);
	double loss_sum = 0.0;
	long hits = 0;
	float *probs = NULL;
	int rc = 0, lean;

	if (d->n == 0) {
		if (acc)
			*acc = NAN;
		if (loss)
			*loss = NAN;
		return 0;
	}
	if (batch < 1)
		batch = 256;
	probs = pb_falloc((size_t)batch * K);
	if (!probs)
		return pb_error_set(err, PB_ENOMEM, "out of memory (evaluate)");
	/* Only the logits are read: the lean forward skips storing the
	 * outputs inside fused groups, the same logits bit for bit. The
	 * sparse kernels are not used here: they equal the dense ones only
	 * within float rounding, and accuracy is measured on the reference
	 * path. */
	lean = m->lean;
	pbi_model_set_lean(m, 1);
	for (int start = 0; start < d->n; start += batch) {
		int B = d->n - start < batch ? d->n - start : batch;
		const float *logits;
		int correct = 0;

		/* Samples are contiguous, so a batch is a slice: no copy. */
		rc = pb_model_forward(m, d->x + (size_t)start * sample, B, 0,
				      NULL, &logits, err);
		if (rc)
			break;
		loss_sum += B * pb_softmax_xent_forward(probs, logits,
							 d->y + start, B, K,
							 &correct);
		hits += correct;
	}
	pbi_model_set_lean(m, lean);
	pb_ffree(probs);
	if (rc)
		return rc;
	if (acc)
		*acc = (double)hits / d->n;
	if (loss)
		*loss = loss_sum / d->n;
	return 0;
}
