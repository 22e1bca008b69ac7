/* magnitude on a crafted model whose weights all have distinct
 * magnitudes: it masks exactly the smallest |w|, globally and per layer,
 * leaves the first layer whole when asked, and refuses a channel target. */
#include "pruner_test.h"

/* Every weight gets a distinct magnitude (a shuffled 1..n times 0.01) and
 * a random sign, so "the k smallest" is unambiguous; biases are 0.5. */
static void craft_magnitudes(pb_model *m)
{
	gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
	size_t total = 0, k = 0, *perm;

	gsl_rng_set(r, 7);
	for (int i = 0; i < pb_model_n_params(m); i++)
		if (pb_model_param(m, i)->kind == PB_PARAM_WEIGHT)
			total += pb_model_param(m, i)->n;
	perm = malloc(total * sizeof *perm);
	pb_shuffle(perm, total, r);
	for (int i = 0; i < pb_model_n_params(m); i++) {
		pb_param *p = pb_model_param(m, i);

		for (size_t j = 0; j < p->n; j++) {
			if (p->kind != PB_PARAM_WEIGHT) {
				p->data[j] = 0.5f;
				continue;
			}
			p->data[j] = 0.01f * (float)(perm[k++] + 1) *
				     (gsl_rng_uniform(r) < 0.5 ? -1.f : 1.f);
		}
	}
	free(perm);
	gsl_rng_free(r);
}

/* Over the weights of `which` (NULL = all weight tensors): the zeroed
 * ones are exactly the smallest |w| of the original, and their count is
 * within one of amount * total. */
static void check_smallest(pb_model *dense, pb_model *pr, const char *which,
			   double amount)
{
	float max_zeroed = 0.0f, min_kept = INFINITY;
	size_t zeros = 0, total = 0;

	for (int i = 0; i < pb_model_n_params(dense); i++) {
		pb_param *a = pb_model_param(dense, i);
		pb_param *b = pb_model_param(pr, i);

		if (a->kind != PB_PARAM_WEIGHT ||
		    (which && strcmp(a->name, which)))
			continue;
		assert_int_equal(a->n, b->n);
		for (size_t j = 0; j < a->n; j++) {
			float w = fabsf(a->data[j]);

			total++;
			if (b->data[j] == 0.0f) {
				zeros++;
				if (w > max_zeroed)
					max_zeroed = w;
			} else {
				/* kept weights are untouched */
				assert_true(b->data[j] == a->data[j]);
				if (w < min_kept)
					min_kept = w;
			}
		}
	}
	if (!(max_zeroed < min_kept))
		fail_msg("%s: a zeroed |w| %g is not below a kept |w| %g",
			 which ? which : "all", max_zeroed, min_kept);
	if (fabs((double)zeros - amount * (double)total) > 1.0)
		fail_msg("%s: %zu of %zu zeroed, wanted %.1f",
			 which ? which : "all", zeros, total, amount * total);
}

static void test_magnitude_global(void **state)
{
	pb_plugin *p = tu_open_plugin("magnitude");
	pb_model *m = tu_parse_model(pt_conv_linear_ini, "test"), *out = NULL;
	pb_prune_report rep;
	pb_error err = { 0 };
	pt_run_args a = { .target = "sparsity=0.5, scope=global" };

	(void)state;
	craft_magnitudes(m);
	if (pt_run(m, pb_plugin_pruner(p), &a, &out, &rep, &err))
		fail_msg("%s", err.msg);
	check_smallest(m, out, NULL, 0.5);
	assert_true(fabs(rep.reached - 0.5) <= 1.0 / 114);
	assert_true(rep.asked == 0.5);
	/* Biases are never pruned. */
	assert_true(pb_model_find_param(out, "fc.bias")->data[0] == 0.5f);
	pb_model_free(out);
	pb_model_free(m);
	pb_plugin_close(p);
}

static void test_magnitude_layer(void **state)
{
	static const char *no_first[] = { "include_first=no", NULL };
	pb_plugin *p = tu_open_plugin("magnitude");
	pb_model *m = tu_parse_model(pt_conv_linear_ini, "test"), *out = NULL;
	pb_error err = { 0 };
	pt_run_args a = { .target = "sparsity=0.75" };

	(void)state;
	craft_magnitudes(m);
	if (pt_run(m, pb_plugin_pruner(p), &a, &out, NULL, &err))
		fail_msg("%s", err.msg);
	check_smallest(m, out, "c1.weight", 0.75);
	check_smallest(m, out, "fc.weight", 0.75);
	pb_model_free(out);

	/* include_first = no leaves the first conv whole. */
	a.target = "sparsity=0.5";
	a.kv = no_first;
	if (pt_run(m, pb_plugin_pruner(p), &a, &out, NULL, &err))
		fail_msg("%s", err.msg);
	check_smallest(m, out, "c1.weight", 0.0);
	check_smallest(m, out, "fc.weight", 0.5);
	pb_model_free(out);
	pb_model_free(m);
	pb_plugin_close(p);
}

static void test_magnitude_wrong_target(void **state)
{
	pb_plugin *p = tu_open_plugin("magnitude");
	pb_model *m = tu_parse_model(pt_conv_linear_ini, "test"), *out = NULL;
	pb_error err = { 0 };
	pt_run_args a = { .target = "macs=0.5" };

	(void)state;
	assert_int_equal(pt_run(m, pb_plugin_pruner(p), &a, &out, NULL, &err),
			 PB_EINVAL);
	assert_non_null(strstr(err.msg, "sparsity=S"));
	assert_null(out);
	pb_model_free(m);
	pb_plugin_close(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_magnitude_global),
		cmocka_unit_test(test_magnitude_layer),
		cmocka_unit_test(test_magnitude_wrong_target),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
