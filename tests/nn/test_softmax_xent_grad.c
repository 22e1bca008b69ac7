/* Softmax cross-entropy (core/nn/layers/softmax_xent.c): probabilities,
 * the hit count, the gradient against finite differences of its own loss,
 * and a stable loss for huge logits. */
#include "gradcheck.h"

#include "prunebench/layers.h"

/* ---- softmax cross-entropy ---------------------------------------------- */

struct sx_ctx {
	int B, K;
	float *logits, *probs, *dlogits;
	uint8_t *labels;
};

static double sx_loss(void *p)
{
	struct sx_ctx *x = p;
	return pb_softmax_xent_forward(x->probs, x->logits, x->labels, x->B,
				       x->K, NULL);
}

static void test_softmax_xent_grad(void **state)
{
	struct sx_ctx x = { .B = 5, .K = 7 };
	const size_t n = (size_t)x.B * x.K;
	uint8_t labels[5] = { 3, 0, 6, 3, 1 };
	int correct = -1, expect = 0;
	(void)state;

	x.labels = labels;
	x.logits = frand(n, -3.0f, 3.0f, 1300);
	x.probs = fbuf(n);
	x.dlogits = fbuf(n);
	/* Make sample 1's label its argmax so the hit count is not 0. */
	x.logits[1 * x.K + 0] = 5.0f;
	pb_softmax_xent_forward(x.probs, x.logits, x.labels, x.B, x.K,
				&correct);
	for (int b = 0; b < x.B; b++) {
		double s = 0.0;
		int arg = 0;
		for (int k = 0; k < x.K; k++) {
			s += x.probs[b * x.K + k];
			if (x.logits[b * x.K + k] > x.logits[b * x.K + arg])
				arg = k;
		}
		assert_near(s, 1.0, 1e-6);
		expect += arg == labels[b];
	}
	assert_true(expect >= 1);
	assert_int_equal(correct, expect);
	/* Backward overwrites: stale values must not leak through. */
	for (size_t i = 0; i < n; i++)
		x.dlogits[i] = 123.0f;
	pb_softmax_xent_backward(x.dlogits, x.probs, x.labels, x.B, x.K);
	assert_fd(sx_loss, &x, x.logits, x.dlogits, n, 1e-3f,
		  "softmax_xent dlogits");
	pb_ffree(x.logits);
	pb_ffree(x.probs);
	pb_ffree(x.dlogits);
}

static void test_softmax_xent_stable(void **state)
{
	const float logits[6] = { 1000.0f, 1001.0f, 999.0f, 0.0f, 200.0f, 0.0f };
	const uint8_t labels[2] = { 1, 0 };
	const double lse = log(1.0 + exp(-1.0) + exp(-2.0));
	float probs[6];
	int correct;
	double loss;
	(void)state;

	/* Row 0: -log softmax at the max is log(1 + e^-1 + e^-2). Row 1: a
	 * confident mistake whose probability underflows float; its loss is
	 * still 200 + log(1 + 2e^-200) = 200. */
	loss = pb_softmax_xent_forward(probs, logits, labels, 2, 3, &correct);
	assert_true(isfinite(loss));
	assert_near(loss, (lse + 200.0) / 2.0, 1e-6);
	assert_int_equal(correct, 1);
	assert_near(probs[1], 1.0 / (1.0 + exp(-1.0) + exp(-2.0)),
			   1e-6);
	assert_near(probs[4], 1.0f, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_softmax_xent_grad),
		cmocka_unit_test(test_softmax_xent_stable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
