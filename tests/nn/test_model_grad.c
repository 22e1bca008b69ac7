/* Gradients of whole models against central finite differences, with
 * softmax cross-entropy as the loss and BN in training mode; plus eval
 * determinism, clone, and accumulation of repeated backwards. */
#include "testutil.h"

#include "prunebench/prunebench.h"
#include "nn/model_impl.h"

#define B 4

/* conv+BN+ReLU, max pool, a residual block whose shortcut is a 1x1
 * projection, global average pooling, flatten, dropout and linear. */
static const char resnet_tiny[] =
	"[model]\nname = tiny\ninput = 2x6x6\nclasses = 3\n"
	"[c1]\ntype = conv\nout = 4\nkernel = 3\npad = 1\n"
	"[bn1]\ntype = bn\n[r1]\ntype = relu\n"
	"[p1]\ntype = maxpool\nkernel = 2\n"
	"[c2]\ntype = conv\nout = 5\nkernel = 3\npad = 1\nbias = no\n"
	"[bn2]\ntype = bn\n"
	"[sc]\ntype = conv\ninput = p1\nout = 5\nkernel = 1\nbias = no\n"
	"[scbn]\ntype = bn\n"
	"[add]\ntype = add\ninputs = bn2, scbn\n"
	"[r2]\ntype = relu\n"
	"[gap]\ntype = avgpool\nglobal = yes\n"
	"[flat]\ntype = flatten\n"
	"[drop]\ntype = dropout\np = 0.25\n"
	"[fc]\ntype = linear\nout = 3\n";

/* Corners the big model does not reach: a strided conv, a layer reading
 * the model input directly (`input = input`), x + x, a non-global
 * avgpool, and linear without bias after linear. */
static const char corners[] =
	"[model]\nname = corners\ninput = 2x5x5\nclasses = 2\n"
	"[c1]\ntype = conv\nout = 3\nkernel = 3\nstride = 2\npad = 1\n"
	"[c2]\ntype = conv\ninput = input\nout = 3\nkernel = 3\nstride = 2\n"
	"pad = 1\nbias = no\n"
	"[sum]\ntype = add\ninputs = c1, c2\n"
	"[twice]\ntype = add\ninputs = sum, sum\n"
	"[avg]\ntype = avgpool\nkernel = 2\nstride = 1\n"
	"[flat]\ntype = flatten\n"
	"[fc1]\ntype = linear\nout = 4\n"
	"[fc2]\ntype = linear\nout = 2\nbias = no\n";

/* Labels for up to three classes; models with fewer take them mod K. */
static const uint8_t labels3[B] = { 0, 2, 1, 2 };

struct fixture {
	pb_model *m;
	gsl_rng *rng;
	float *x;
	size_t xn;
	float *probs, *dlogits;
	uint8_t labels[B];
	int K;
};

static void fixture_init(struct fixture *f, const char *text,
			 unsigned long seed)
{
	pb_error err = { 0 };
	int c, h, w;

	memset(f, 0, sizeof *f);
	if (pb_model_parse(&f->m, text, "grad", &err))
		fail_msg("%s", err.msg);
	f->rng = gsl_rng_alloc(gsl_rng_mt19937);
	gsl_rng_set(f->rng, seed);
	assert_int_equal(pb_model_init_params(f->m, f->rng, &err), 0);
	pb_model_input_shape(f->m, &c, &h, &w);
	f->K = pb_model_classes(f->m);
	for (int b = 0; b < B; b++)
		f->labels[b] = (uint8_t)(labels3[b] % f->K);
	f->xn = (size_t)B * c * h * w;
	f->x = pb_falloc(f->xn);
	f->probs = pb_falloc((size_t)B * f->K);
	f->dlogits = pb_falloc((size_t)B * f->K);
	tu_fill_uniform(f->x, f->xn, -1.0f, 1.0f, seed + 1);
	/* Biases and BN shifts away from zero so the probes see every term
	 * of the gradient. */
	for (int i = 0; i < pb_model_n_params(f->m); i++) {
		pb_param *p = pb_model_param(f->m, i);
		if (p->kind == PB_PARAM_BIAS || p->kind == PB_PARAM_BN_BETA ||
		    p->kind == PB_PARAM_BN_GAMMA)
			tu_fill_uniform(p->data, p->n,
					p->kind == PB_PARAM_BN_GAMMA ? 0.5f :
					-0.5f, 1.5f, seed + 2 + (unsigned)i);
	}
}

static void fixture_free(struct fixture *f)
{
	pb_model_free(f->m);
	gsl_rng_free(f->rng);
	pb_ffree(f->x);
	pb_ffree(f->probs);
	pb_ffree(f->dlogits);
}

/* Loss of a training forward; the rng is reseeded so that every call
 * draws the same dropout mask. */
static double loss_of(struct fixture *f)
{
	pb_error err = { 0 };
	const float *logits;

	gsl_rng_set(f->rng, 12345);
	if (pb_model_forward(f->m, f->x, B, 1, f->rng, &logits, &err))
		fail_msg("%s", err.msg);
	return pb_softmax_xent_forward(f->probs, logits, f->labels, B, f->K,
				       NULL);
}

/* Analytical gradients of the current point into the model's grads and
 * dx. */
static void backprop(struct fixture *f, float *dx)
{
	pb_error err = { 0 };

	loss_of(f);
	pb_softmax_xent_backward(f->dlogits, f->probs, f->labels, B, f->K);
	pb_model_zero_grad(f->m);
	memset(dx, 0, f->xn * sizeof *dx);
	if (pbi_model_backward_dx(f->m, f->dlogits, dx, &err))
		fail_msg("%s", err.msg);
}

/* Which side of every kink the last forward was on: ReLU signs and
 * max-pool choices. A probe whose two sides differ from the base point
 * straddles a kink, where central differences do not measure the
 * derivative. */
static size_t kink_size(const pb_model *m)
{
	size_t n = 0;

	for (int i = 0; i < m->n_nodes; i++) {
		const pbi_node *nd = &m->nodes[i];
		if (nd->info.type == PB_LAYER_RELU)
			n += (size_t)m->batch * nd->out_n;
		else if (nd->info.type == PB_LAYER_MAXPOOL)
			n += (size_t)m->batch * nd->out_n * sizeof(int32_t);
	}
	return n;
}

static void kinks(const pb_model *m, uint8_t *sig)
{
	for (int i = 0; i < m->n_nodes; i++) {
		const pbi_node *nd = &m->nodes[i];
		size_t len = (size_t)m->batch * nd->out_n;
		if (nd->info.type == PB_LAYER_RELU) {
			for (size_t j = 0; j < len; j++)
				*sig++ = nd->y[j] > 0.0f;
		} else if (nd->info.type == PB_LAYER_MAXPOOL) {
			memcpy(sig, nd->argmax, len * sizeof(int32_t));
			sig += len * sizeof(int32_t);
		}
	}
}

/* Central difference at step h; returns 0 when either side crossed a
 * kink. */
static int central_diff(struct fixture *f, float *v, float h, double *d)
{
	const float keep = *v;
	const size_t ns = kink_size(f->m);
	uint8_t *base = malloc(ns), *side = malloc(ns);
	double lp, lm;
	int smooth;

	loss_of(f);
	kinks(f->m, base);
	*v = keep + h;
	lp = loss_of(f);
	kinks(f->m, side);
	smooth = !memcmp(base, side, ns);
	*v = keep - h;
	lm = loss_of(f);
	kinks(f->m, side);
	smooth &= !memcmp(base, side, ns);
	*v = keep;
	*d = (lp - lm) / (2.0 * (double)h);
	free(base);
	free(side);
	return smooth;
}

/* Compares one analytical derivative with central differences; returns
 * 1 when it is off, 0 when it matches, -1 when it is off but every step
 * tried straddles a kink (the probe is inconclusive). */
static int probe(struct fixture *f, const char *what, size_t idx, float *v,
		 double analytic)
{
	/* Large enough that float rounding of the loss stays far below the
	 * tolerance, small enough for the curvature. */
	const float steps[] = { 1e-2f, 2e-3f };
	double num = 0, rel = 0;
	int smooth = 0;

	for (size_t s = 0; s < 2; s++) {
		smooth = central_diff(f, v, steps[s], &num);
		rel = tu_relerr(analytic, num, 5e-3);
		if (rel < 2e-2)
			return 0;
		if (smooth)
			break;
	}
	print_message("%s[%zu]: analytic %.6g numeric %.6g (rel %.3g)%s\n",
		      what, idx, analytic, num, rel,
		      smooth ? "" : " at a kink, skipped");
	return smooth ? 1 : -1;
}

static void check_model_grads(const char *text, unsigned long seed)
{
	struct fixture f;
	float *dx, *grad;
	int bad = 0, skipped = 0, probes = 0, r;

	fixture_init(&f, text, seed);
	dx = pb_falloc(f.xn);
	backprop(&f, dx);
	/* Keep the analytical values: every probe reruns the forward. */
	grad = pb_falloc(pb_model_trainable_size(f.m));
	memcpy(grad, pb_model_trainable_grad(f.m),
	       pb_model_trainable_size(f.m) * sizeof *grad);
	for (int i = 0; i < pb_model_n_params(f.m); i++) {
		pb_param *p = pb_model_param(f.m, i);
		size_t off = (size_t)(p->data - pb_model_trainable_data(f.m));
		size_t step = p->n > 6 ? p->n / 6 : 1;
		if (!p->trainable)
			continue;
		for (size_t j = p->n > 6 ? 1 : 0; j < p->n; j += step) {
			r = probe(&f, p->name, j, &p->data[j], grad[off + j]);
			bad += r > 0;
			skipped += r < 0;
			probes++;
		}
	}
	for (size_t j = 3; j < f.xn; j += f.xn / 12) {
		r = probe(&f, "input", j, &f.x[j], dx[j]);
		bad += r > 0;
		skipped += r < 0;
		probes++;
	}
	print_message("%s: %d probes, %d off, %d skipped at kinks\n",
		      pb_model_name(f.m), probes, bad, skipped);
	assert_int_equal(bad, 0);
	assert_true(skipped * 10 <= probes);
	pb_ffree(grad);
	pb_ffree(dx);
	fixture_free(&f);
}

static void test_grad_resnet_tiny(void **state)
{
	(void)state;
	/* Seeds whose points sit clear of ReLU and max-pool kinks. */
	check_model_grads(resnet_tiny, 1);
	check_model_grads(resnet_tiny, 4);
}

static void test_grad_corners(void **state)
{
	(void)state;
	check_model_grads(corners, 11);
}

static float *stats_copy(pb_model *m, size_t *n)
{
	float *s;
	size_t k = 0;

	*n = 0;
	for (int i = 0; i < pb_model_n_params(m); i++)
		if (!pb_model_param(m, i)->trainable)
			*n += pb_model_param(m, i)->n;
	s = malloc(*n * sizeof *s);
	for (int i = 0; i < pb_model_n_params(m); i++) {
		pb_param *p = pb_model_param(m, i);
		if (p->trainable)
			continue;
		memcpy(s + k, p->data, p->n * sizeof *s);
		k += p->n;
	}
	return s;
}

/* What a training forward saved for backward, concatenated. */
static float *saved_copy(pb_model *m, size_t *n)
{
	float *s;
	size_t k = 0;

	*n = 0;
	for (int i = 0; i < m->n_nodes; i++) {
		pbi_node *nd = &m->nodes[i];
		if (nd->info.type == PB_LAYER_BN)
			*n += 2 * (size_t)nd->info.out_c;
		else if (nd->info.type == PB_LAYER_MAXPOOL ||
			 nd->info.type == PB_LAYER_DROPOUT)
			*n += (size_t)m->batch * nd->out_n;
	}
	s = malloc(*n * sizeof *s);
	for (int i = 0; i < m->n_nodes; i++) {
		pbi_node *nd = &m->nodes[i];
		size_t len = (size_t)m->batch * nd->out_n;
		if (nd->info.type == PB_LAYER_BN) {
			memcpy(s + k, nd->bn_saved,
			       2 * (size_t)nd->info.out_c * sizeof *s);
			k += 2 * (size_t)nd->info.out_c;
		} else if (nd->info.type == PB_LAYER_MAXPOOL) {
			memcpy(s + k, nd->argmax, len * sizeof *s);
			k += len;
		} else if (nd->info.type == PB_LAYER_DROPOUT) {
			memcpy(s + k, nd->keep, len * sizeof *s);
			k += len;
		}
	}
	return s;
}

static void test_eval_deterministic(void **state)
{
	struct fixture f;
	pb_error err = { 0 };
	const float *logits;
	float first[B * 3];
	float *stats0, *stats1, *saved0, *saved1;
	size_t ns, nv;

	(void)state;
	fixture_init(&f, resnet_tiny, 3);
	for (int i = 0; i < 3; i++)
		loss_of(&f);   /* running stats move away from (0, 1) */
	stats0 = stats_copy(f.m, &ns);
	saved0 = saved_copy(f.m, &nv);
	assert_int_equal(pb_model_forward(f.m, f.x, B, 0, NULL, &logits,
					  &err), 0);
	memcpy(first, logits, sizeof first);
	assert_int_equal(pb_model_forward(f.m, f.x, B, 0, NULL, &logits,
					  &err), 0);
	assert_memory_equal(first, logits, sizeof first);
	stats1 = stats_copy(f.m, &ns);
	saved1 = saved_copy(f.m, &nv);
	assert_memory_equal(stats0, stats1, ns * sizeof *stats0);
	assert_memory_equal(saved0, saved1, nv * sizeof *saved0);
	/* Eval replaced the activations: backward must refuse. */
	memset(f.dlogits, 0, B * 3 * sizeof(float));
	assert_int_equal(pb_model_backward(f.m, f.dlogits, &err), PB_EINVAL);
	assert_non_null(strstr(err.msg, "train = 1"));
	/* Dropout needs an rng in training mode. */
	assert_int_equal(pb_model_forward(f.m, f.x, B, 1, NULL, &logits,
					  &err), PB_EINVAL);
	assert_non_null(strstr(err.msg, "rng"));
	free(stats0);
	free(stats1);
	free(saved0);
	free(saved1);
	fixture_free(&f);
}

static void test_running_stats_update(void **state)
{
	struct fixture f;
	pb_param *rm, *rv;

	(void)state;
	fixture_init(&f, resnet_tiny, 4);
	rm = pb_model_find_param(f.m, "bn1.running_mean");
	rv = pb_model_find_param(f.m, "bn1.running_var");
	assert_non_null(rm);
	assert_non_null(rv);
	assert_null(rm->grad);
	assert_true(rm->data[0] == 0.0f && rv->data[0] == 1.0f);
	loss_of(&f);
	assert_true(rm->data[0] != 0.0f && rv->data[0] != 1.0f);
	fixture_free(&f);
}

static void test_clone_identical(void **state)
{
	struct fixture f;
	pb_model *c = NULL;
	pb_error err = { 0 };
	const float *la, *lb;
	float a[B * 3];

	(void)state;
	fixture_init(&f, resnet_tiny, 5);
	loss_of(&f);
	assert_int_equal(pb_model_clone(&c, f.m, &err), 0);
	assert_string_equal(pb_model_name(c), "tiny");
	assert_int_equal(pb_model_n_params(c), pb_model_n_params(f.m));
	assert_int_equal(pb_model_forward(f.m, f.x, B, 0, NULL, &la, &err), 0);
	memcpy(a, la, sizeof a);
	assert_int_equal(pb_model_forward(c, f.x, B, 0, NULL, &lb, &err), 0);
	assert_memory_equal(a, lb, sizeof a);
	/* Training forwards with the same dropout draws agree too. */
	gsl_rng_set(f.rng, 9);
	assert_int_equal(pb_model_forward(f.m, f.x, B, 1, f.rng, &la, &err), 0);
	memcpy(a, la, sizeof a);
	gsl_rng_set(f.rng, 9);
	assert_int_equal(pb_model_forward(c, f.x, B, 1, f.rng, &lb, &err), 0);
	assert_memory_equal(a, lb, sizeof a);
	/* Deep: the copy owns its parameters. */
	pb_model_find_param(c, "fc.weight")->data[0] += 1.0f;
	assert_true(pb_model_find_param(c, "fc.weight")->data[0] !=
		    pb_model_find_param(f.m, "fc.weight")->data[0]);
	pb_model_free(c);
	fixture_free(&f);
}

static void test_backward_accumulates(void **state)
{
	struct fixture f;
	pb_error err = { 0 };
	float *g1, *dx;
	const float *g;
	size_t n;

	(void)state;
	fixture_init(&f, resnet_tiny, 6);
	dx = pb_falloc(f.xn);
	backprop(&f, dx);
	n = pb_model_trainable_size(f.m);
	g1 = pb_falloc(n);
	memcpy(g1, pb_model_trainable_grad(f.m), n * sizeof *g1);
	assert_int_equal(pb_model_backward(f.m, f.dlogits, &err), 0);
	g = pb_model_trainable_grad(f.m);
	for (size_t i = 0; i < n; i++)
		assert_true(fabsf(g[i] - 2.0f * g1[i]) <=
			    1e-4f * fabsf(g1[i]) + 1e-7f);
	pb_model_zero_grad(f.m);
	for (size_t i = 0; i < n; i++)
		assert_true(g[i] == 0.0f);
	pb_ffree(g1);
	pb_ffree(dx);
	fixture_free(&f);
}

/* Buffers are sized for the largest batch seen and reused: a smaller
 * batch after a larger one must not reallocate, and must still give the
 * same per-sample results. */
static void test_batch_sizes(void **state)
{
	struct fixture f;
	pb_error err = { 0 };
	const float *logits;
	float one[3];
	const float *out0;

	(void)state;
	fixture_init(&f, resnet_tiny, 8);
	assert_int_equal(pb_model_forward(f.m, f.x, 1, 0, NULL, &logits,
					  &err), 0);
	memcpy(one, logits, sizeof one);
	assert_int_equal(pb_model_forward(f.m, f.x, B, 0, NULL, &logits,
					  &err), 0);
	for (int k = 0; k < 3; k++)
		assert_true(fabsf(logits[k] - one[k]) < 1e-5f);
	out0 = f.m->nodes[0].out;
	assert_int_equal(pb_model_forward(f.m, f.x, 2, 0, NULL, &logits,
					  &err), 0);
	assert_ptr_equal(out0, f.m->nodes[0].out);
	assert_int_equal(pb_model_forward(f.m, f.x, 0, 0, NULL, &logits,
					  &err), PB_EINVAL);
	fixture_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grad_resnet_tiny),
		cmocka_unit_test(test_grad_corners),
		cmocka_unit_test(test_eval_deterministic),
		cmocka_unit_test(test_running_stats_update),
		cmocka_unit_test(test_clone_identical),
		cmocka_unit_test(test_backward_accumulates),
		cmocka_unit_test(test_batch_sizes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
