/* synflow on a two-layer linear net whose scores are computed by hand:
 * with one iteration it masks exactly the lowest synaptic flow |dR/dw *
 * w| at every sparsity (its whole ranking); with three it follows the
 * exponential schedule, scores recomputed on the pruned net after each
 * round, and ends on the mask the hand-run schedule gives, which differs
 * from the one-shot mask (one-shot keeps a weight no flow reaches any
 * more); on a conv net with BN the default 100 rounds reach the target
 * and the survivors keep their signed values. */
#include "pruner_test.h"

/* 1x1x3 inputs -> fc1 (3 -> 2) -> fc2 (2 -> 2), no biases, no
 * nonlinearity: R = 1^T |W2| |W1| 1. */
static const char net_ini[] =
	"[model]\nname = flow\ninput = 1x1x3\nclasses = 2\n"
	"[f]\ntype = flatten\n"
	"[fc1]\ntype = linear\nout = 2\nbias = no\n"
	"[fc2]\ntype = linear\nout = 2\nbias = no\n";

static const float W1[6] = { -0.45f, 0.32f, 0.04f, -0.6f, -0.95f, 0.05f };
static const float W2[4] = { -0.01f, -0.14f, 0.36f, 0.68f };
#define NW 10

/* The flow through each weight of the net masked by keep[] (fc1's six,
 * then fc2's four), by hand: through W1[j][i], |W1[j][i]| times all
 * that leaves hidden unit j, sum_k |W2[k][j]|; through W2[k][j],
 * |W2[k][j]| times all that reaches unit j, sum_i |W1[j][i]|. */
static void hand_flow(const int *keep, double *s)
{
	double a1[6], a2[4];

	for (int j = 0; j < 6; j++)
		a1[j] = keep[j] ? fabs(W1[j]) : 0.0;
	for (int j = 0; j < 4; j++)
		a2[j] = keep[6 + j] ? fabs(W2[j]) : 0.0;
	for (int j = 0; j < 2; j++)
		for (int i = 0; i < 3; i++)
			s[j * 3 + i] = a1[j * 3 + i] * (a2[0 * 2 + j] +
							a2[1 * 2 + j]);
	for (int k = 0; k < 2; k++)
		for (int j = 0; j < 2; j++)
			s[6 + k * 2 + j] = a2[k * 2 + j] *
				(a1[j * 3] + a1[j * 3 + 1] + a1[j * 3 + 2]);
}

/* The core's global selection by hand: up to round(amount * 10) masked,
 * the lowest flow first (ties to the lower index), every tensor keeping
 * one weight at least. */
static void hand_select(int *keep, const double *s, double amount)
{
	int want = (int)lround(amount * NW), have = 0;

	for (int j = 0; j < NW; j++)
		have += !keep[j];
	while (have < want) {
		int best = -1;

		for (int j = 0; j < NW; j++) {
			int left = 0, lo = j < 6 ? 0 : 6, hi = j < 6 ? 6 : NW;

			for (int t = lo; t < hi; t++)
				left += keep[t];
			if (keep[j] && left > 1 && (best < 0 || s[j] < s[best]))
				best = j;
		}
		keep[best] = 0;
		have++;
	}
}

/* The schedule by hand: n rounds to sparsity S. */
static void hand_synflow(int *keep, double S, int n)
{
	double s[NW];

	for (int j = 0; j < NW; j++)
		keep[j] = 1;
	for (int k = 1; k <= n; k++) {
		hand_flow(keep, s);
		hand_select(keep, s, k == n ? S :
			    1.0 - pow(1.0 - S, (double)k / n));
	}
}

static pb_model *run_synflow(const char *target, const char *iterations)
{
	const char *kv[] = { iterations, NULL };
	pb_plugin *p = tu_open_plugin("synflow");
	pb_model *m = tu_parse_model(net_ini, "test"), *out = NULL;
	pb_error err = { 0 };
	pt_run_args a = { .target = target, .kv = kv };

	memcpy(pb_model_find_param(m, "fc1.weight")->data, W1, sizeof W1);
	memcpy(pb_model_find_param(m, "fc2.weight")->data, W2, sizeof W2);
	if (pt_run(m, pb_plugin_pruner(p), &a, &out, NULL, &err))
		fail_msg("%s", err.msg);
	pb_model_free(m);
	pb_plugin_close(p);
	return out;
}

/* keep[] of a pruned net; every survivor holds its signed weight. */
static void kept(pb_model *out, int *keep)
{
	const float *a = pb_model_find_param(out, "fc1.weight")->data;
	const float *b = pb_model_find_param(out, "fc2.weight")->data;

	for (int j = 0; j < 6; j++) {
		keep[j] = a[j] != 0.0f;
		assert_true(!keep[j] || a[j] == W1[j]);
	}
	for (int j = 0; j < 4; j++) {
		keep[6 + j] = b[j] != 0.0f;
		assert_true(!keep[6 + j] || b[j] == W2[j]);
	}
}

static void test_synflow_scores_by_hand(void **state)
{
	const int all[NW] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 };
	double s[NW];

	(void)state;
	hand_flow(all, s);
	/* Well apart: float rounding cannot reorder them. */
	for (int a = 0; a < NW; a++)
		for (int b = a + 1; b < NW; b++)
			assert_true(fabs(s[a] - s[b]) > 0.05 * fmax(s[a], s[b]));
	/* One iteration masks the k lowest, for every k the floors allow
	 * (each layer keeps a weight). */
	for (int k = 1; k <= 8; k++) {
		char target[48];
		int want[NW], got[NW];
		pb_model *out;

		snprintf(target, sizeof target, "sparsity=%g, scope=global",
			 k / 10.0);
		hand_synflow(want, k / 10.0, 1);
		out = run_synflow(target, "iterations=1");
		kept(out, got);
		assert_memory_equal(got, want, sizeof want);
		pb_model_free(out);
	}
}

static void test_synflow_iterative_schedule(void **state)
{
	/* By hand: one shot keeps W1[1][0], W1[1][1], W2[1][0], W2[1][1];
	 * three rounds (3, 5, then 6 masked) keep W2[0][1] instead of
	 * W2[1][0], whose hidden unit 0 lost all its inputs. */
	static const int one_shot[NW] = { 0, 0, 0, 1, 1, 0, 0, 0, 1, 1 };
	static const int three[NW] = { 0, 0, 0, 1, 1, 0, 0, 1, 0, 1 };
	int want[NW], got[NW];
	pb_model *out;

	(void)state;
	hand_synflow(want, 0.6, 1);
	assert_memory_equal(want, one_shot, sizeof want);
	hand_synflow(want, 0.6, 3);
	assert_memory_equal(want, three, sizeof want);

	out = run_synflow("sparsity=0.6, scope=global", "iterations=1");
	kept(out, got);
	assert_memory_equal(got, one_shot, sizeof got);
	pb_model_free(out);
	out = run_synflow("sparsity=0.6, scope=global", "iterations=3");
	kept(out, got);
	assert_memory_equal(got, three, sizeof got);
	pb_model_free(out);
}

/* The paper's 100 rounds on a conv net with BN and max-pooling: the
 * target exactly, masked weights zero, every survivor and every other
 * tensor (BN included, made absolute for the scores) as it was. */
static void test_synflow_reaches_target(void **state)
{
	pb_plugin *p = tu_open_plugin("synflow");
	pb_model *m, *out = NULL;
	pb_splits sp;
	pb_recipe ft;
	pb_prune_report rep;
	pb_error err = { 0 };
	pt_log lg;
	pt_run_args a = { .target = "sparsity=0.9, scope=global",
			  .label = "t" };
	size_t total = 0, zeros = 0;

	(void)state;
	pt_small_setup(&m, &sp, &ft);
	/* BN away from its initial (1, 0, 0, 1), signs mixed, so a plugin
	 * that left |.| behind would show. */
	tu_fill_param(m, "b1.weight", -1.0f, 1.0f, 5);
	tu_fill_param(m, "b2.bias", -1.0f, 1.0f, 6);
	tu_fill_param(m, "b3.running_mean", -1.0f, 1.0f, 7);
	a.progress = pt_log_open(&lg);
	if (pt_run(m, pb_plugin_pruner(p), &a, &out, &rep, &err))
		fail_msg("%s", err.msg);
	pt_log_close(&lg);
	assert_true(fabs(rep.reached - 0.9) < 1e-3);
	assert_non_null(strstr(lg.text, "round 100/100: sparsity 0.9000"));
	assert_non_null(strstr(lg.text, "round 1/100"));
	for (int i = 0; i < pb_model_n_params(m); i++) {
		const pb_param *d = pb_model_param(m, i);
		const pb_param *q = pb_model_param(out, i);

		for (size_t j = 0; j < d->n; j++)
			if (q->data[j] != 0.0f && q->data[j] != d->data[j])
				fail_msg("%s[%zu] is %g, was %g", d->name, j,
					 q->data[j], d->data[j]);
		if (d->kind == PB_PARAM_WEIGHT) {
			total += d->n;
			for (size_t j = 0; j < d->n; j++)
				zeros += q->data[j] == 0.0f;
		} else {
			assert_memory_equal(d->data, q->data,
					    d->n * sizeof(float));
		}
	}
	assert_true(fabs((double)zeros - 0.9 * (double)total) <= 1.0);
	free(lg.text);
	pb_model_free(out);
	pt_small_free(m, &sp);
	pb_plugin_close(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_synflow_scores_by_hand),
		cmocka_unit_test(test_synflow_iterative_schedule),
		cmocka_unit_test(test_synflow_reaches_target),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
