/* Gradients outside training (pb_ctx_objective_grad, pb_ctx_loss_grad),
 * through pruners defined here: a plugin's objective differentiated
 * through the eval-mode network (BN on running statistics far from
 * (0, 1)) against central differences of that network; the loss
 * gradient of a softmax regression against its closed form; gradients
 * zeroed first, nothing else changed; and the refusals (a training hook,
 * a label out of range, an objective that overflows). */
#include "../plugins/pruner_test.h"

/* conv (bias) -> BN -> relu -> avgpool -> flatten -> linear, 1x4x4
 * inputs, 3 classes. */
static const char bn_ini[] =
	"[model]\nname = g\ninput = 1x4x4\nclasses = 3\n"
	"[c1]\ntype = conv\nout = 3\nkernel = 3\npad = 1\n"
	"[b1]\ntype = bn\n"
	"[r1]\ntype = relu\n"
	"[ap]\ntype = avgpool\nkernel = 2\n"
	"[f]\ntype = flatten\n"
	"[fc]\ntype = linear\nout = 3\n";

#define NB 2
static float g_x[NB * 16];

/* R = sum over the logits of w_k * z^2 / 2 with weights 1, -2, 3 by
 * class: a nonlinear objective, so dR/dz depends on z. */
static double quad_objective(void *user, const float *z, int B, int K,
			     float *dz)
{
	double r = 0.0;

	(void)user;
	for (int b = 0; b < B; b++)
		for (int k = 0; k < K; k++) {
			const double wk = k == 0 ? 1.0 : k == 1 ? -2.0 : 3.0;
			const float v = z[b * K + k];

			r += 0.5 * wk * v * v;
			dz[b * K + k] = (float)(wk * v);
		}
	return r;
}

/* The objective through a plain eval forward (pb_model_forward). */
static double eval_objective(pb_model *m)
{
	pb_error err = { 0 };
	const float *z;
	float dz[NB * 3];

	if (pb_model_forward(m, g_x, NB, 0, NULL, &z, &err))
		fail_msg("%s", err.msg);
	return quad_objective(NULL, z, NB, 3, dz);
}

static int fd_prune(void *state, pb_prune_ctx *ctx)
{
	pb_model *m = pb_ctx_model(ctx);
	const pb_param *rv = pb_model_find_param(m, "b1.running_var");
	float rv0 = rv->data[1];
	double r1, r2;
	int checked = 0;

	(void)state;
	if (pb_ctx_objective_grad(ctx, g_x, NB, quad_objective, NULL, &r1))
		return -1;
	/* Called twice: the gradients are zeroed first, not added. */
	if (pb_ctx_objective_grad(ctx, g_x, NB, quad_objective, NULL, &r2))
		return -1;
	assert_true(r1 == r2);
	assert_true(fabs(r1 - eval_objective(m)) <= 1e-6 * fabs(r1));
	/* Eval mode: the running statistics are not updated. */
	assert_true(rv->data[1] == rv0);
	/* The gradients are read before the probes' forwards, which do not
	 * touch them. */
	for (int i = 0; i < pb_model_n_params(m); i++) {
		pb_param *p = pb_model_param(m, i);

		if (!p->trainable)
			continue;
		for (size_t j = 0; j < p->n; j += p->n > 6 ? p->n / 6 : 1) {
			const float keep = p->data[j], h = 1e-2f;
			double lp, lm, num;

			p->data[j] = keep + h;
			lp = eval_objective(m);
			p->data[j] = keep - h;
			lm = eval_objective(m);
			p->data[j] = keep;
			num = (lp - lm) / (2.0 * h);
			if (tu_relerr(p->grad[j], num, 5e-2) > 2e-2)
				fail_msg("%s[%zu]: analytic %g numeric %g",
					 p->name, j, p->grad[j], num);
			checked++;
		}
	}
	assert_true(checked > 20);
	return 0;
}

static const pb_pruner fd_pruner = {
	PB_PRUNER_HEADER,
	.name = "gradfd",
	.version = "0",
	.granularity = PB_GRANULARITY_WEIGHT,
	.prune = fd_prune,
};

static void test_objective_grad_matches_eval_differences(void **state)
{
	pb_model *m = tu_parse_model(bn_ini, "test"), *out = NULL;
	pb_error err = { 0 };
	pt_run_args a = { .target = "sparsity=0.5" };

	(void)state;
	tu_init_params(m, 31);
	/* Running statistics and shifts far from their initial values, so
	 * a backward through BN as identity, or through batch statistics,
	 * would be caught. */
	tu_fill_param(m, "b1.running_mean", -0.5f, 0.5f, 32);
	tu_fill_param(m, "b1.running_var", 0.2f, 3.0f, 33);
	tu_fill_param(m, "b1.weight", 0.5f, 2.0f, 34);
	tu_fill_param(m, "b1.bias", 0.2f, 0.8f, 35);
	tu_fill_param(m, "c1.bias", 0.1f, 0.5f, 36);
	tu_fill_uniform(g_x, sizeof g_x / sizeof g_x[0], -1.0f, 1.0f, 37);
	if (pt_run(m, &fd_pruner, &a, &out, NULL, &err))
		fail_msg("%s", err.msg);
	/* The plugin pruned nothing: its gradients changed nothing else. */
	for (int i = 0; i < pb_model_n_params(m); i++)
		assert_memory_equal(pb_model_param(m, i)->data,
				    pb_model_param(out, i)->data,
				    pb_model_param(m, i)->n * sizeof(float));
	pb_model_free(out);
	pb_model_free(m);
}

/* ---- the loss gradient, by hand ------------------------------------------- */

/* Softmax regression: flatten -> linear (4 -> 3, bias), inputs 1x2x2. */
static const char lin_ini[] =
	"[model]\nname = lin\ninput = 1x2x2\nclasses = 3\n"
	"[f]\ntype = flatten\n"
	"[fc]\ntype = linear\nout = 3\n";

static const float lin_x[3 * 4] = {
	1.0f, -0.5f, 0.25f, 2.0f,
	-1.5f, 0.5f, 1.0f, 0.0f,
	0.3f, 0.7f, -0.2f, -1.0f,
};
static const uint8_t lin_y[3] = { 2, 0, 1 };

static int loss_prune(void *state, pb_prune_ctx *ctx)
{
	pb_model *m = pb_ctx_model(ctx);
	const pb_param *w = pb_model_find_param(m, "fc.weight");
	const pb_param *bias = pb_model_find_param(m, "fc.bias");
	double dw[3][4] = { { 0 } }, db[3] = { 0 }, loss_want = 0, loss;

	(void)state;
	if (pb_ctx_loss_grad(ctx, lin_x, lin_y, 3, &loss))
		return -1;
	/* dL/dW = mean over samples of (softmax(z) - onehot(y)) x^T. */
	for (int b = 0; b < 3; b++) {
		double z[3], mx = -1e300, sum = 0;

		for (int k = 0; k < 3; k++) {
			z[k] = bias->data[k];
			for (int i = 0; i < 4; i++)
				z[k] += (double)w->data[k * 4 + i] *
					lin_x[b * 4 + i];
			if (z[k] > mx)
				mx = z[k];
		}
		for (int k = 0; k < 3; k++)
			sum += exp(z[k] - mx);
		loss_want += (log(sum) + mx - z[lin_y[b]]) / 3.0;
		for (int k = 0; k < 3; k++) {
			double d = (exp(z[k] - mx) / sum -
				    (k == lin_y[b])) / 3.0;

			db[k] += d;
			for (int i = 0; i < 4; i++)
				dw[k][i] += d * lin_x[b * 4 + i];
		}
	}
	assert_true(fabs(loss - loss_want) < 1e-6);
	for (int k = 0; k < 3; k++) {
		assert_true(fabs(bias->grad[k] - db[k]) < 1e-6);
		for (int i = 0; i < 4; i++)
			assert_true(fabs(w->grad[k * 4 + i] - dw[k][i]) < 1e-6);
	}
	/* A label that is not a class is refused, named. */
	{
		const uint8_t bad[1] = { 3 };

		assert_int_equal(pb_ctx_loss_grad(ctx, lin_x, bad, 1, NULL),
				 PB_EINVAL);
	}
	return 0;
}

static const pb_pruner loss_pruner = {
	PB_PRUNER_HEADER,
	.name = "gradloss",
	.version = "0",
	.granularity = PB_GRANULARITY_WEIGHT,
	.prune = loss_prune,
};

static void test_loss_grad_by_hand(void **state)
{
	pb_model *m = tu_parse_model(lin_ini, "test"), *out = NULL;
	pb_error err = { 0 };
	pt_run_args a = { .target = "sparsity=0.5" };

	(void)state;
	tu_init_params(m, 41);
	tu_fill_param(m, "fc.bias", -0.5f, 0.5f, 42);
	if (pt_run(m, &loss_pruner, &a, &out, NULL, &err))
		fail_msg("%s", err.msg);
	pb_model_free(out);
	pb_model_free(m);
}

/* ---- refusals --------------------------------------------------------------- */

static double huge_objective(void *user, const float *z, int B, int K,
			     float *dz)
{
	(void)user;
	(void)z;
	for (int i = 0; i < B * K; i++)
		dz[i] = 1.0f;
	return INFINITY;
}

static int g_hook_calls;

/* Inside pb_ctx_train the model's buffers are the training's. */
static int in_hook(void *state, pb_prune_ctx *ctx, long step)
{
	(void)state;
	(void)step;
	assert_int_equal(pb_ctx_objective_grad(ctx, lin_x, 1, quad_objective,
					       NULL, NULL), PB_EINVAL);
	g_hook_calls++;
	return 0;
}

static int refusing_prune(void *state, pb_prune_ctx *ctx)
{
	(void)state;
	assert_int_equal(pb_ctx_objective_grad(ctx, lin_x, 1, huge_objective,
					       NULL, NULL), PB_EINVAL);
	assert_int_equal(pb_ctx_objective_grad(ctx, lin_x, 0, quad_objective,
					       NULL, NULL), PB_EINVAL);
	return pb_ctx_train(ctx, PB_RECIPE_FINETUNE, 0, 2);
}

static const pb_pruner refusing_pruner = {
	PB_PRUNER_HEADER,
	.name = "gradrefuse",
	.version = "0",
	.granularity = PB_GRANULARITY_WEIGHT,
	.after_backward = in_hook,
	.prune = refusing_prune,
};

static void test_refusals(void **state)
{
	pb_model *m = tu_parse_model(lin_ini, "test"), *out = NULL;
	pb_error err = { 0 };
	pb_splits sp;
	pb_recipe r;
	pt_run_args a = { .target = "sparsity=0.5", .splits = &sp,
			  .finetune = &r, .dense = &r };

	(void)state;
	tu_init_params(m, 43);
	memset(&sp, 0, sizeof sp);
	assert_int_equal(pb_dataset_synthetic(&sp.train, 12, 1, 2, 2, 3, 0.3f,
					      5, &err), 0);
	pt_plain_recipe(&r, 1, 4, 0.1);
	g_hook_calls = 0;
	if (pt_run(m, &refusing_pruner, &a, &out, NULL, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(g_hook_calls, 2);
	pb_model_free(out);
	pb_dataset_free(&sp.train);
	pb_model_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_objective_grad_matches_eval_differences),
		cmocka_unit_test(test_loss_grad_by_hand),
		cmocka_unit_test(test_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
