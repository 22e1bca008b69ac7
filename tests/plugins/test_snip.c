/* snip on a softmax regression and a hand-set batch: it masks exactly
 * the connections of lowest |g*w|, g the gradient of the mean
 * cross-entropy over the batch, at every sparsity (which pins down its
 * whole ranking), and that set is neither the smallest |w| nor the
 * smallest |g|; gradients of several batches are summed before |.| is
 * taken; on a conv net with BN it reaches its target and leaves the
 * survivors as they were. */
#include "pruner_test.h"
#include "prunebench/tensor.h"

/* flatten -> linear 4 -> 3 without bias, on 1x2x2 inputs. */
static const char lin_ini[] =
	"[model]\nname = snipnet\ninput = 1x2x2\nclasses = 3\n"
	"[f]\ntype = flatten\n"
	"[fc]\ntype = linear\nout = 3\nbias = no\n";

static const float W[12] = {
	-0.82f, 0.94f, -0.51f, -0.74f,
	0.69f, -0.11f, -0.16f, -0.46f,
	-0.93f, -0.03f, -0.44f, -0.17f,
};
#define N 4
static const float X[N * 4] = {
	0.52f, 0.62f, 0.05f, -0.28f,
	-0.44f, -0.89f, -0.82f, 0.87f,
	-0.2f, 0.65f, -0.14f, -0.66f,
	0.66f, 0.47f, -0.13f, -0.11f,
};
static const uint8_t Y[N] = { 0, 1, 2, 1 };

/* The batch is the whole split: whatever order the cell's stream draws
 * it in, the mean gradient is the same. */
static void hand_split(pb_splits *sp)
{
	memset(sp, 0, sizeof *sp);
	sp->train = (pb_dataset){ .n = N, .c = 1, .h = 2, .w = 2,
				  .classes = 3 };
	sp->train.x = pb_falloc(N * 4);
	sp->train.y = malloc(N);
	memcpy(sp->train.x, X, sizeof X);
	memcpy(sp->train.y, Y, sizeof Y);
}

/* By hand: z = W x, dL/dW = (1/N) sum_b (softmax(z_b) - onehot(y_b))
 * x_b^T, score |dL/dW * W|; and |dL/dW| alone, into g. */
static void hand_scores(double *score, double *g)
{
	memset(g, 0, 12 * sizeof *g);
	for (int b = 0; b < N; b++) {
		double z[3], mx = -1e300, sum = 0;

		for (int k = 0; k < 3; k++) {
			z[k] = 0;
			for (int i = 0; i < 4; i++)
				z[k] += (double)W[k * 4 + i] * X[b * 4 + i];
			mx = z[k] > mx ? z[k] : mx;
		}
		for (int k = 0; k < 3; k++)
			sum += exp(z[k] - mx);
		for (int k = 0; k < 3; k++) {
			double d = (exp(z[k] - mx) / sum - (k == Y[b])) / N;

			for (int i = 0; i < 4; i++)
				g[k * 4 + i] += d * X[b * 4 + i];
		}
	}
	for (int j = 0; j < 12; j++) {
		score[j] = fabs(g[j] * W[j]);
		g[j] = fabs(g[j]);
	}
}

/* Indices of v in increasing order (no ties here). */
static void order(const double *v, int *idx)
{
	for (int j = 0; j < 12; j++)
		idx[j] = j;
	for (int a = 0; a < 12; a++)
		for (int b = a + 1; b < 12; b++)
			if (v[idx[b]] < v[idx[a]]) {
				int t = idx[a];

				idx[a] = idx[b];
				idx[b] = t;
			}
}

/* The six lowest of a ranking as a bit set. */
static int lowest_half(const int *ranking)
{
	int bits = 0;

	for (int r = 0; r < 6; r++)
		bits |= 1 << ranking[r];
	return bits;
}

static pb_model *run_snip(const pb_splits *sp, const char *target,
			  const char *const *kv)
{
	pb_plugin *p = tu_open_plugin("snip");
	pb_model *m = tu_parse_model(lin_ini, "test"), *out = NULL;
	pb_error err = { 0 };
	pt_run_args a = { .target = target, .kv = kv, .splits = sp,
			  .seed = 7 };

	memcpy(pb_model_find_param(m, "fc.weight")->data, W, sizeof W);
	if (pt_run(m, pb_plugin_pruner(p), &a, &out, NULL, &err))
		fail_msg("%s", err.msg);
	pb_model_free(m);
	pb_plugin_close(p);
	return out;
}

static void test_snip_by_hand(void **state)
{
	static const char *const kv[] = { "batch=4", NULL };
	double score[12], g[12], w[12];
	int by_score[12], by_w[12], by_g[12];
	pb_splits sp;

	(void)state;
	hand_split(&sp);
	hand_scores(score, g);
	for (int j = 0; j < 12; j++)
		w[j] = fabs(W[j]);
	order(score, by_score);
	order(w, by_w);
	order(g, by_g);
	/* Neighbours in the ranking are at least 4% apart: float sums in
	 * another order cannot swap them. */
	for (int j = 0; j + 1 < 12; j++)
		assert_true(score[by_score[j + 1]] >
			    1.04 * score[by_score[j]]);
	for (int k = 1; k < 12; k++) {
		char target[32];
		pb_model *out;
		const float *o;
		int masked = 0;

		snprintf(target, sizeof target, "sparsity=%g", k / 12.0);
		out = run_snip(&sp, target, kv);
		o = pb_model_find_param(out, "fc.weight")->data;
		/* The k lowest |g*w| are zero; the others keep their w. */
		for (int r = 0; r < 12; r++) {
			const int j = by_score[r];

			if (r < k)
				assert_true(o[j] == 0.0f);
			else
				assert_true(o[j] == W[j]);
			masked += o[j] == 0.0f;
		}
		assert_int_equal(masked, k);
		pb_model_free(out);
	}
	/* At half: connections 1, 3, 5, 6, 8, 9 by |g*w|, while |w| would
	 * take 5, 6, 7, 9, 10, 11 and |g| 0, 1, 2, 3, 4, 8. */
	assert_int_equal(lowest_half(by_score), 0x36a);
	assert_int_equal(lowest_half(by_w), 0xee0);
	assert_int_equal(lowest_half(by_g), 0x11f);
	pb_dataset_free(&sp.train);
}

/* Two batches of two cover the split once: their mean gradients sum to
 * twice the full batch's, so the ranking, and the mask, is the same. */
static void test_snip_sums_batches(void **state)
{
	static const char *const one[] = { "batch=4", NULL };
	static const char *const two[] = { "batch=2", "batches=2", NULL };
	pb_splits sp;
	pb_model *a, *b;

	(void)state;
	hand_split(&sp);
	a = run_snip(&sp, "sparsity=0.5", one);
	b = run_snip(&sp, "sparsity=0.5", two);
	assert_memory_equal(pb_model_find_param(a, "fc.weight")->data,
			    pb_model_find_param(b, "fc.weight")->data,
			    12 * sizeof(float));
	pb_model_free(a);
	pb_model_free(b);
	/* A batch larger than the split is refused, saying so. */
	{
		static const char *const big[] = { "batch=5", NULL };
		pb_plugin *p = tu_open_plugin("snip");
		pb_model *m = tu_parse_model(lin_ini, "test"), *out = NULL;
		pb_error err = { 0 };
		pt_run_args args = { .target = "sparsity=0.5", .kv = big,
				     .splits = &sp };

		assert_int_equal(pt_run(m, pb_plugin_pruner(p), &args, &out,
					NULL, &err), PB_EINVAL);
		assert_non_null(strstr(err.msg, "training split of 4"));
		pb_model_free(m);
		pb_plugin_close(p);
	}
	pb_dataset_free(&sp.train);
}

/* A conv net with BN, global scope: the target is met, the survivors
 * and every other tensor are as they were. */
static void test_snip_conv_net(void **state)
{
	static const char *const kv[] = { "batch=32", NULL };
	pb_plugin *p = tu_open_plugin("snip");
	pb_model *m, *out = NULL;
	pb_splits sp;
	pb_recipe ft;
	pb_prune_report rep;
	pb_error err = { 0 };
	pt_run_args a = { .target = "sparsity=0.8, scope=global", .kv = kv,
			  .seed = 3 };

	(void)state;
	pt_small_setup(&m, &sp, &ft);
	a.splits = &sp;
	if (pt_run(m, pb_plugin_pruner(p), &a, &out, &rep, &err))
		fail_msg("%s", err.msg);
	assert_true(fabs(rep.reached - 0.8) < 1e-3);
	for (int i = 0; i < pb_model_n_params(m); i++) {
		const pb_param *d = pb_model_param(m, i);
		const pb_param *q = pb_model_param(out, i);

		for (size_t j = 0; j < d->n; j++)
			if (q->data[j] != 0.0f && q->data[j] != d->data[j])
				fail_msg("%s[%zu] changed", d->name, j);
		if (d->kind != PB_PARAM_WEIGHT)
			assert_memory_equal(d->data, q->data,
					    d->n * sizeof(float));
	}
	pb_model_free(out);
	pt_small_free(m, &sp);
	pb_plugin_close(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_snip_by_hand),
		cmocka_unit_test(test_snip_sums_batches),
		cmocka_unit_test(test_snip_conv_net),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
