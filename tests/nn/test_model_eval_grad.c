/* The model's eval-mode gradient (pbi_model_forward_eval_grad, then
 * pb_model_backward): the derivative of the network as it is evaluated,
 * BN a fixed affine map of its running statistics and dropout off,
 * against central finite differences of that same eval forward, for
 * every parameter and the input. Also: its logits are eval's to the bit,
 * it updates no running statistic, and its gradient differs from the
 * training-mode one (so the test would see a backward through batch
 * statistics). */
#include "testutil.h"

#include "prunebench/prunebench.h"
#include "nn/model_impl.h"

#define B 3

/* conv+BN+ReLU, max pool, a residual block with a projection (two BNs),
 * global average pooling, flatten, dropout, and a BN-free linear. */
static const char net[] =
	"[model]\nname = evalnet\ninput = 2x6x6\nclasses = 3\n"
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
	"[drop]\ntype = dropout\np = 0.5\n"
	"[fc]\ntype = linear\nout = 3\n";

static const uint8_t labels[B] = { 2, 0, 1 };

struct fix {
	pb_model *m;
	float *x, *probs, *dlogits;
	size_t xn;
};

/* Parameters drawn, then running statistics, biases and BN shifts
 * moved away from their initial values so every term shows. */
static void fix_init(struct fix *f, unsigned long seed)
{
	pb_error err = { 0 };
	gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
	int c, h, w;

	memset(f, 0, sizeof *f);
	if (pb_model_parse(&f->m, net, "evalgrad", &err))
		fail_msg("%s", err.msg);
	gsl_rng_set(r, seed);
	assert_int_equal(pb_model_init_params(f->m, r, &err), 0);
	gsl_rng_free(r);
	for (int i = 0; i < pb_model_n_params(f->m); i++) {
		pb_param *p = pb_model_param(f->m, i);
		float lo = -0.5f, hi = 0.5f;

		if (p->kind == PB_PARAM_WEIGHT)
			continue;
		if (p->kind == PB_PARAM_BN_GAMMA)
			lo = 0.5f, hi = 1.5f;
		else if (p->kind == PB_PARAM_BN_VAR)
			lo = 0.3f, hi = 3.0f;
		tu_fill_uniform(p->data, p->n, lo, hi, seed + 10 + (unsigned)i);
	}
	pb_model_input_shape(f->m, &c, &h, &w);
	f->xn = (size_t)B * c * h * w;
	f->x = pb_falloc(f->xn);
	f->probs = pb_falloc(B * 3);
	f->dlogits = pb_falloc(B * 3);
	tu_fill_uniform(f->x, f->xn, -1.0f, 1.0f, seed + 1);
}

static void fix_free(struct fix *f)
{
	pb_model_free(f->m);
	pb_ffree(f->x);
	pb_ffree(f->probs);
	pb_ffree(f->dlogits);
}

static double eval_loss(struct fix *f)
{
	pb_error err = { 0 };
	const float *logits;

	if (pbi_model_forward_eval_grad(f->m, f->x, B, &logits, &err))
		fail_msg("%s", err.msg);
	return pb_softmax_xent_forward(f->probs, logits, labels, B, 3, NULL);
}

/* ReLU signs and max-pool choices of the last forward, to tell a probe
 * that straddles a kink. */
static size_t kink_size(const pb_model *m)
{
	size_t n = 0;

	for (int i = 0; i < m->n_nodes; i++)
		if (m->nodes[i].info.type == PB_LAYER_RELU ||
		    m->nodes[i].info.type == PB_LAYER_MAXPOOL)
			n += (size_t)m->batch * m->nodes[i].out_n *
			     sizeof(int32_t);
	return n;
}

static void kinks(const pb_model *m, uint8_t *sig)
{
	memset(sig, 0, kink_size(m));
	for (int i = 0; i < m->n_nodes; i++) {
		const pbi_node *nd = &m->nodes[i];
		size_t len = (size_t)m->batch * nd->out_n;

		if (nd->info.type == PB_LAYER_RELU) {
			for (size_t j = 0; j < len; j++)
				sig[j] = nd->y[j] > 0.0f;
			sig += len * sizeof(int32_t);
		} else if (nd->info.type == PB_LAYER_MAXPOOL) {
			memcpy(sig, nd->argmax, len * sizeof(int32_t));
			sig += len * sizeof(int32_t);
		}
	}
}

/* 1 off, 0 matches, -1 off but at a kink at every step. */
static int probe(struct fix *f, const char *what, size_t idx, float *v,
		 double analytic)
{
	const float steps[] = { 1e-2f, 2e-3f };
	const size_t ns = kink_size(f->m);
	uint8_t *base = malloc(ns), *side = malloc(ns);
	double num = 0, rel = 0;
	int smooth = 0, rc = 1;

	for (size_t s = 0; s < 2; s++) {
		const float keep = *v, h = steps[s];
		double lp, lm;

		eval_loss(f);
		kinks(f->m, base);
		*v = keep + h;
		lp = eval_loss(f);
		kinks(f->m, side);
		smooth = !memcmp(base, side, ns);
		*v = keep - h;
		lm = eval_loss(f);
		kinks(f->m, side);
		smooth &= !memcmp(base, side, ns);
		*v = keep;
		num = (lp - lm) / (2.0 * (double)h);
		rel = tu_relerr(analytic, num, 5e-3);
		if (rel < 2e-2) {
			rc = 0;
			goto out;
		}
		if (smooth)
			break;
	}
	print_message("%s[%zu]: analytic %.6g numeric %.6g (rel %.3g)%s\n",
		      what, idx, analytic, num, rel,
		      smooth ? "" : " at a kink, skipped");
	rc = smooth ? 1 : -1;
out:
	free(base);
	free(side);
	return rc;
}

/* The analytic gradients (parameters, and dx for the input). */
static float *backprop(struct fix *f, float *dx)
{
	pb_error err = { 0 };
	float *g;

	eval_loss(f);
	pb_softmax_xent_backward(f->dlogits, f->probs, labels, B, 3);
	pb_model_zero_grad(f->m);
	memset(dx, 0, f->xn * sizeof *dx);
	if (pbi_model_backward_dx(f->m, f->dlogits, dx, &err))
		fail_msg("%s", err.msg);
	g = pb_falloc(pb_model_trainable_size(f->m));
	memcpy(g, pb_model_trainable_grad(f->m),
	       pb_model_trainable_size(f->m) * sizeof *g);
	return g;
}

static void check(unsigned long seed)
{
	struct fix f;
	float *dx, *g;
	int bad = 0, skipped = 0, probes = 0, r;

	fix_init(&f, seed);
	dx = pb_falloc(f.xn);
	g = backprop(&f, dx);
	for (int i = 0; i < pb_model_n_params(f.m); i++) {
		pb_param *p = pb_model_param(f.m, i);
		size_t off = (size_t)(p->data - pb_model_trainable_data(f.m));

		if (!p->trainable)
			continue;
		/* Every entry of the small tensors (each BN's scale and
		 * shift), a spread of the larger ones. */
		for (size_t j = 0; j < p->n; j += p->n > 8 ? p->n / 8 : 1) {
			r = probe(&f, p->name, j, &p->data[j], g[off + j]);
			bad += r > 0;
			skipped += r < 0;
			probes++;
		}
	}
	for (size_t j = 5; j < f.xn; j += f.xn / 12) {
		r = probe(&f, "input", j, &f.x[j], dx[j]);
		bad += r > 0;
		skipped += r < 0;
		probes++;
	}
	print_message("seed %lu: %d probes, %d off, %d skipped at kinks\n",
		      seed, probes, bad, skipped);
	assert_int_equal(bad, 0);
	assert_true(skipped * 10 <= probes);
	pb_ffree(g);
	pb_ffree(dx);
	fix_free(&f);
}

static void test_eval_grad_fd(void **state)
{
	(void)state;
	check(21);
	check(22);
}

/* Its logits are eval's, bit for bit; no running statistic moves; and
 * the training gradient is another one. */
static void test_eval_grad_is_eval(void **state)
{
	struct fix f;
	pb_error err = { 0 };
	const float *logits;
	float eval[B * 3], *stats0, *gev, *gtr, *dx;
	size_t n_stats = 0, k = 0, n;
	gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
	double diff = 0.0;

	(void)state;
	fix_init(&f, 23);
	for (int i = 0; i < pb_model_n_params(f.m); i++)
		if (!pb_model_param(f.m, i)->trainable)
			n_stats += pb_model_param(f.m, i)->n;
	stats0 = malloc(n_stats * sizeof *stats0);
	for (int i = 0; i < pb_model_n_params(f.m); i++) {
		pb_param *p = pb_model_param(f.m, i);

		if (!p->trainable) {
			memcpy(stats0 + k, p->data, p->n * sizeof *stats0);
			k += p->n;
		}
	}
	assert_int_equal(pb_model_forward(f.m, f.x, B, 0, NULL, &logits,
					  &err), 0);
	memcpy(eval, logits, sizeof eval);
	dx = pb_falloc(f.xn);
	gev = backprop(&f, dx);
	assert_memory_equal(eval, logits, sizeof eval);
	k = 0;
	for (int i = 0; i < pb_model_n_params(f.m); i++) {
		pb_param *p = pb_model_param(f.m, i);

		if (!p->trainable) {
			assert_memory_equal(stats0 + k, p->data,
					    p->n * sizeof *stats0);
			k += p->n;
		}
	}
	/* A training forward and backward of the same loss: batch
	 * statistics and a dropout mask give another gradient. */
	gsl_rng_set(r, 5);
	assert_int_equal(pb_model_forward(f.m, f.x, B, 1, r, &logits, &err),
			 0);
	pb_softmax_xent_forward(f.probs, logits, labels, B, 3, NULL);
	pb_softmax_xent_backward(f.dlogits, f.probs, labels, B, 3);
	pb_model_zero_grad(f.m);
	assert_int_equal(pb_model_backward(f.m, f.dlogits, &err), 0);
	gtr = pb_model_trainable_grad(f.m);
	n = pb_model_trainable_size(f.m);
	for (size_t i = 0; i < n; i++)
		diff += fabs((double)gtr[i] - gev[i]);
	assert_true(diff > 1e-2);
	/* An eval forward keeps nothing: backward refuses after it. */
	assert_int_equal(pb_model_forward(f.m, f.x, B, 0, NULL, &logits,
					  &err), 0);
	assert_int_equal(pb_model_backward(f.m, f.dlogits, &err), PB_EINVAL);
	gsl_rng_free(r);
	free(stats0);
	pb_ffree(gev);
	pb_ffree(dx);
	fix_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_eval_grad_fd),
		cmocka_unit_test(test_eval_grad_is_eval),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
