/* l1 on crafted filters: it removes exactly the filter with the smallest
 * L1 norm (or, with norm = 2, the smallest L2 norm, another one), copies
 * the survivors' weights through to the next layer, and refuses a
 * sparsity target. */
#include "pruner_test.h"

/* The pruned model keeps c1 channels keep1 (in order) and c2 channels
 * keep2, with weights copied from the dense model. */
static void check_kept(pb_model *dense, pb_model *pr, const int *keep1,
		       const int *keep2)
{
	pb_param *a1 = pb_model_find_param(dense, "c1.weight");
	pb_param *b1 = pb_model_find_param(pr, "c1.weight");
	pb_param *ga = pb_model_find_param(dense, "b1.weight");
	pb_param *gb = pb_model_find_param(pr, "b1.weight");
	pb_param *a2 = pb_model_find_param(dense, "c2.weight");
	pb_param *b2 = pb_model_find_param(pr, "c2.weight");

	assert_int_equal(b1->shape[0], 3);
	assert_int_equal(b2->shape[0], 3);
	assert_int_equal(b2->shape[1], 3);
	assert_int_equal(pb_model_find_param(pr, "fc.weight")->shape[1],
			 3 * 25);
	for (int c = 0; c < 3; c++) {
		assert_memory_equal(b1->data + 9 * c, a1->data + 9 * keep1[c],
				    9 * sizeof(float));
		assert_true(gb->data[c] == ga->data[keep1[c]]);
		for (int i = 0; i < 3; i++)
			assert_memory_equal(b2->data + (c * 3 + i) * 9,
					    a2->data + (keep2[c] * 4 +
							keep1[i]) * 9,
					    9 * sizeof(float));
	}
}

static void test_l1_removes_smallest_l1(void **state)
{
	static const int keep1[3] = { 0, 2, 3 }, keep2[3] = { 0, 1, 3 };
	pb_plugin *p = tu_open_plugin("l1");
	pb_model *m = tu_parse_model(pt_two_conv_ini, "test"), *out = NULL;
	pb_prune_report rep;
	pb_error err = { 0 };
	pt_run_args a = { .target = "channels=0.25" };

	(void)state;
	pt_craft_filters(m);
	if (pt_run(m, pb_plugin_pruner(p), &a, &out, &rep, &err))
		fail_msg("%s", err.msg);
	check_kept(m, out, keep1, keep2);
	assert_int_equal(rep.channels_before, 8);
	assert_int_equal(rep.channels_after, 6);
	assert_true(fabs(rep.reached - 0.25) < 1e-12);
	assert_true(rep.macs_after < rep.macs_before);
	pb_model_free(out);
	pb_model_free(m);
	pb_plugin_close(p);
}

static void test_l1_norm2(void **state)
{
	static const char *l2[] = { "norm=2", NULL };
	static const int keep1[3] = { 1, 2, 3 }, keep2[3] = { 0, 1, 3 };
	pb_plugin *p = tu_open_plugin("l1");
	pb_model *m = tu_parse_model(pt_two_conv_ini, "test"), *out = NULL;
	pb_error err = { 0 };
	pt_run_args a = { .target = "channels=0.25", .kv = l2 };

	(void)state;
	pt_craft_filters(m);
	if (pt_run(m, pb_plugin_pruner(p), &a, &out, NULL, &err))
		fail_msg("%s", err.msg);
	check_kept(m, out, keep1, keep2);
	pb_model_free(out);
	pb_model_free(m);
	pb_plugin_close(p);
}

static void test_l1_wrong_target(void **state)
{
	pb_plugin *p = tu_open_plugin("l1");
	pb_model *m = tu_parse_model(pt_two_conv_ini, "test"), *out = NULL;
	pb_error err = { 0 };
	pt_run_args a = { .target = "sparsity=0.5" };

	(void)state;
	assert_int_equal(pt_run(m, pb_plugin_pruner(p), &a, &out, NULL, &err),
			 PB_EINVAL);
	assert_non_null(strstr(err.msg, "macs=F"));
	pb_model_free(m);
	pb_plugin_close(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_l1_removes_smallest_l1),
		cmocka_unit_test(test_l1_norm2),
		cmocka_unit_test(test_l1_wrong_target),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
