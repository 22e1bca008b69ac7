/* Gradients outside training, for criteria of a model as it is
 * evaluated (pruning at initialisation): pb_ctx_objective_grad, a
 * plugin's objective of the logits differentiated through an eval-mode
 * forward (BN a fixed affine map), and pb_ctx_loss_grad, the same for
 * the training loss. */
#include <math.h>
#include <stdlib.h>

#include "nn/model_impl.h"
#include "plugin/ctx_impl.h"
#include "prunebench/layers.h"

static int all_finite(const float *a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isfinite(a[i]))
			return 0;
	return 1;
}

int pb_ctx_objective_grad(pb_prune_ctx *ctx, const float *x, int B,
			  pb_objective_fn fn, void *user, double *value)
{
	pb_model *m = ctx->model;
	const int K = pb_model_classes(m);
	const float *logits;
	float *dl;
	double r;
	int rc;

	if ((rc = pbi_ctx_refuse_in_hook(ctx, "pb_ctx_objective_grad")))
		return rc;
	if (!x || !fn || B < 1)
		return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': "
				    "pb_ctx_objective_grad needs inputs, an "
				    "objective and a batch of at least 1 (got "
				    "%d)", ctx->pr->name, B);
	if ((rc = pbi_model_forward_eval_grad(m, x, B, &logits, ctx->err)))
		return rc;
	if (!all_finite(logits, (size_t)B * K))
		return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': the "
				    "model's outputs are not finite (an "
				    "overflow in the forward pass)",
				    ctx->pr->name);
	dl = calloc((size_t)B * K, sizeof *dl);
	if (!dl)
		return pb_error_set(ctx->err, PB_ENOMEM, "out of memory");
	r = fn(user, logits, B, K, dl);
	if (!isfinite(r) || !all_finite(dl, (size_t)B * K)) {
		free(dl);
		return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': its "
				    "objective or the objective's gradient is "
				    "not finite (R = %g)", ctx->pr->name, r);
	}
	pb_model_zero_grad(m);
	rc = pb_model_backward(m, dl, ctx->err);
	free(dl);
	if (rc)
		return rc;
	if (!all_finite(pb_model_trainable_grad(m), pb_model_trainable_size(m)))
		return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': the "
				    "gradient of its objective overflowed (R "
				    "= %g)", ctx->pr->name, r);
	if (value)
		*value = r;
	return 0;
}

typedef struct xent {
	const uint8_t *y;
	float *probs;
} xent;

static double xent_objective(void *user, const float *logits, int B,
			     int classes, float *dlogits)
{
	xent *e = user;
	double loss = pb_softmax_xent_forward(e->probs, logits, e->y, B,
					      classes, NULL);

	pb_softmax_xent_backward(dlogits, e->probs, e->y, B, classes);
	return loss;
}

int pb_ctx_loss_grad(pb_prune_ctx *ctx, const float *x, const uint8_t *y,
		     int B, double *loss)
{
	const int K = pb_model_classes(ctx->model);
	xent e = { .y = y };
	int rc;

	if (!y || B < 1)
		return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': "
				    "pb_ctx_loss_grad needs labels and a batch "
				    "of at least 1", ctx->pr->name);
	for (int b = 0; b < B; b++)
		if (y[b] >= K)
			return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': "
					    "label %d of sample %d is not one "
					    "of the model's %d classes",
					    ctx->pr->name, y[b], b, K);
	e.probs = malloc((size_t)B * K * sizeof *e.probs);
	if (!e.probs)
		return pb_error_set(ctx->err, PB_ENOMEM, "out of memory");
	rc = pb_ctx_objective_grad(ctx, x, B, xent_objective, &e, loss);
	free(e.probs);
	return rc;
}
