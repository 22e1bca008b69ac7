/* l1 on crafted filters: it removes exactly the filter with the smallest
 * L1 norm (or, with norm = 2, the smallest L2 norm, another one), copies
 * the survivors' weights through to the next layer, and refuses a
 * sparsity target. On a crafted residual block, residual = inner leaves
 * the tied channels whole and cuts the inner conv alone; residual = tied
 * cuts both by summed norms. On a crafted two-layer case greedy and
 * independent remove different filters of the second layer, both
 * computed by hand. */
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

/* The residual block of pt_residual_ini with filters whose norms are
 * constant per filter, so every choice can be computed by hand.
 *
 * Tied group {c0, c2} (c2's filters are 8 x 3 x 3 = 72 weights, c0's 9):
 *   ch        0     1     2     3     4     5     6     7
 *   |c0|_1   0.9  31.5   9.0   9.9  27.0  27.9  28.8  29.7
 *   |c2|_1  50.4  0.72  14.4 15.12  43.2  43.2  43.2  43.2
 *   sum     51.3 32.22  23.4 25.02  70.2  71.1  72.0  72.9
 * so the summed norm removes 2 and 3 first, where c0 alone would remove
 * 0 and 2, and c2 alone 1 and 2.
 * Inner group {c1} (72 weights a filter): per-weight magnitudes
 *   0.5 0.05 0.4 0.03 0.3 0.2 0.6 0.7, lowest first: 3, 1, 5, 4. */
static void craft_residual(pb_model *m)
{
	static const float v0[8] = { 0.1f, 3.5f, 1.0f, 1.1f,
				     3.0f, 3.1f, 3.2f, 3.3f };
	static const float v2[8] = { 0.7f, 0.01f, 0.2f, 0.21f,
				     0.6f, 0.6f, 0.6f, 0.6f };
	static const float v1[8] = { 0.5f, 0.05f, 0.4f, 0.03f,
				     0.3f, 0.2f, 0.6f, 0.7f };
	pb_param *w0 = pb_model_find_param(m, "c0.weight");
	pb_param *w1 = pb_model_find_param(m, "c1.weight");
	pb_param *w2 = pb_model_find_param(m, "c2.weight");

	for (int c = 0; c < 8; c++) {
		for (int j = 0; j < 9; j++)
			w0->data[c * 9 + j] = j % 2 ? -v0[c] : v0[c];
		for (int j = 0; j < 72; j++) {
			w1->data[c * 72 + j] = j % 3 ? v1[c] : -v1[c];
			w2->data[c * 72 + j] = j % 3 ? -v2[c] : v2[c];
		}
	}
	tu_fill_param(m, "fc.weight", -1, 1, 3);
}

/* Output channel c of `layer` in pr is dense channel keep[c]: its
 * first weight, which the crafting made distinct per filter (in
 * magnitude), matches. */
static void check_rows(pb_model *dense, pb_model *pr, const char *param,
		       int n, const int *keep)
{
	pb_param *a = pb_model_find_param(dense, param);
	pb_param *b = pb_model_find_param(pr, param);
	size_t da = a->n / (size_t)a->shape[0], db = b->n / (size_t)b->shape[0];

	assert_int_equal(b->shape[0], n);
	for (int c = 0; c < n; c++)
		assert_true(fabsf(b->data[(size_t)c * db]) ==
			    fabsf(a->data[(size_t)keep[c] * da]));
}

static void test_l1_residual_inner(void **state)
{
	static const int all8[8] = { 0, 1, 2, 3, 4, 5, 6, 7 };
	static const int inner4[4] = { 0, 2, 6, 7 };
	static const int inner5[5] = { 0, 2, 4, 6, 7 };
	static const char *inner[] = { "residual=inner", NULL };
	pb_plugin *p = tu_open_plugin("l1");
	pb_model *m = tu_parse_model(pt_residual_ini, "test"), *out = NULL;
	pb_prune_report rep;
	pb_error err = { 0 };
	pt_run_args a = { .target = "channels=0.25" };

	(void)state;
	craft_residual(m);
	/* The default: the tied channels stay; a quarter of all 16
	 * prunable channels is half of c1's. */
	if (pt_run(m, pb_plugin_pruner(p), &a, &out, &rep, &err))
		fail_msg("%s", err.msg);
	check_rows(m, out, "c0.weight", 8, all8);
	check_rows(m, out, "c2.weight", 8, all8);
	check_rows(m, out, "c1.weight", 4, inner4);
	assert_int_equal(pb_model_find_param(out, "c2.weight")->shape[1], 4);
	assert_int_equal(rep.channels_after, 12);
	assert_true(fabs(rep.reached - 0.25) < 1e-12);
	pb_model_free(out);

	/* MACs: c1 and c2 each cost 8 * 9 * 36 = 2592 MACs per channel of
	 * c1; removing 3 of them (0.353 of 44088) is closer to 0.3 than
	 * removing 2 (0.235). */
	a.target = "macs=0.3";
	a.kv = inner;
	if (pt_run(m, pb_plugin_pruner(p), &a, &out, &rep, &err))
		fail_msg("%s", err.msg);
	check_rows(m, out, "c0.weight", 8, all8);
	check_rows(m, out, "c2.weight", 8, all8);
	check_rows(m, out, "c1.weight", 5, inner5);
	assert_true(rep.macs_before == 44088);
	assert_true(rep.macs_after == 44088 - 3 * 2 * 2592);
	pb_model_free(out);
	pb_model_free(m);
	pb_plugin_close(p);
}

static void test_l1_residual_tied(void **state)
{
	static const int tied6[6] = { 0, 1, 4, 5, 6, 7 };
	static const int inner6[6] = { 0, 2, 4, 5, 6, 7 };
	static const char *tied[] = { "residual=tied", NULL };
	static const char *ov[] = { "residual=inner", NULL };
	pb_plugin *p = tu_open_plugin("l1");
	pb_model *m = tu_parse_model(pt_residual_ini, "test"), *out = NULL;
	pb_prune_report rep;
	pb_error err = { 0 };
	pt_run_args a = { .target = "channels=0.25", .kv = tied };

	(void)state;
	craft_residual(m);
	/* Each group loses 2 of 8: the tied one by the summed norm. */
	if (pt_run(m, pb_plugin_pruner(p), &a, &out, &rep, &err))
		fail_msg("%s", err.msg);
	check_rows(m, out, "c0.weight", 6, tied6);
	check_rows(m, out, "c2.weight", 6, tied6);
	check_rows(m, out, "c1.weight", 6, inner6);
	assert_true(fabs(rep.reached - 0.25) < 1e-12);
	pb_model_free(out);

	/* An override on a tied layer under residual = inner is refused,
	 * not ignored. */
	a.target = "channels=0.25, c2=0.5";
	a.kv = ov;
	assert_int_not_equal(pt_run(m, pb_plugin_pruner(p), &a, &out, NULL,
				    &err), 0);
	assert_non_null(strstr(err.msg, "residual = tied"));
	pb_model_free(m);
	pb_plugin_close(p);
}

/* pt_two_conv_ini with c2's kernels of constant magnitude m[o][i] per
 * (output o, input i), 9 weights each:
 *   o   m[o][0..3]            all inputs (L1)   without input 1
 *   0   0.1 1.0 0.1 0.1       11.7              2.7
 *   1   0.2 0.2 0.2 0.2        7.2              5.4
 *   2   0.3 0.3 0.3 0.3       10.8              8.1
 *   3   0.5 0.0 0.5 0.5       13.5             13.5
 * c1 loses channel 1 (pt_craft_filters), so at channels = 0.25
 * independent removes c2's filter 1 and greedy its filter 0. */
static void test_l1_greedy(void **state)
{
	static const float mag[4][4] = { { 0.1f, 1.0f, 0.1f, 0.1f },
					 { 0.2f, 0.2f, 0.2f, 0.2f },
					 { 0.3f, 0.3f, 0.3f, 0.3f },
					 { 0.5f, 0.0f, 0.5f, 0.5f } };
	static const int keep1[3] = { 0, 2, 3 };
	static const int indep2[3] = { 0, 2, 3 }, greedy2[3] = { 1, 2, 3 };
	static const char *indep[] = { "strategy=independent", NULL };
	static const char *greedy[] = { "strategy=greedy", NULL };
	pb_plugin *p = tu_open_plugin("l1");
	pb_model *m = tu_parse_model(pt_two_conv_ini, "test"), *out = NULL;
	pb_param *w2;
	pb_error err = { 0 };
	pt_run_args a = { .target = "channels=0.25", .kv = indep };

	(void)state;
	pt_craft_filters(m);
	w2 = pb_model_find_param(m, "c2.weight");
	for (int o = 0; o < 4; o++)
		for (int i = 0; i < 4; i++)
			for (int j = 0; j < 9; j++)
				w2->data[(o * 4 + i) * 9 + j] =
					j % 2 ? -mag[o][i] : mag[o][i];
	if (pt_run(m, pb_plugin_pruner(p), &a, &out, NULL, &err))
		fail_msg("%s", err.msg);
	check_kept(m, out, keep1, indep2);
	pb_model_free(out);

	a.kv = greedy;
	if (pt_run(m, pb_plugin_pruner(p), &a, &out, NULL, &err))
		fail_msg("%s", err.msg);
	check_kept(m, out, keep1, greedy2);
	pb_model_free(out);

	/* Greedy needs every layer's count first: no global scope. */
	a.target = "channels=0.25, scope=global";
	assert_int_not_equal(pt_run(m, pb_plugin_pruner(p), &a, &out, NULL,
				    &err), 0);
	assert_non_null(strstr(err.msg, "scope = global"));
	pb_model_free(m);
	pb_plugin_close(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_l1_removes_smallest_l1),
		cmocka_unit_test(test_l1_norm2),
		cmocka_unit_test(test_l1_wrong_target),
		cmocka_unit_test(test_l1_residual_inner),
		cmocka_unit_test(test_l1_residual_tied),
		cmocka_unit_test(test_l1_greedy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
