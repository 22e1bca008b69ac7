/* The template, built here from plugins/template/template.c as a test
 * plugin: it removes the filter with the smallest mean |w| of each layer,
 * leaves the first group or the residual groups whole when asked, and
 * with noise gives the same result for the same seed. */
#include "pruner_test.h"

/* The template is shipped as source, not installed as a plugin: the
 * build puts it in tests/plugins/.libs. */
static pb_plugin *open_template(void)
{
	const char *b = getenv("PB_BUILDDIR");
	char path[4096];
	pb_plugin *p = NULL;
	pb_error err = { 0 };

	snprintf(path, sizeof path, "%s/tests/plugins/.libs/template.so",
		 b ? b : ".");
	if (pb_plugin_open_file(&p, path, &err))
		fail_msg("%s", err.msg);
	return p;
}

/* Mean |w| of c1's filters: 0.5, 0.355..., 1.0, 0.8; of c2's: 0.3, 0.4,
 * 0.1, 0.2 (pt_craft_filters). */
static void test_template_removes_smallest_mean(void **state)
{
	pb_plugin *p = open_template();
	pb_model *m = tu_parse_model(pt_two_conv_ini, "test"), *out = NULL;
	pb_param *a, *b;
	pb_error err = { 0 };
	pt_run_args args = { .target = "channels=0.25" };

	(void)state;
	pt_craft_filters(m);
	if (pt_run(m, pb_plugin_pruner(p), &args, &out, NULL, &err))
		fail_msg("%s", err.msg);
	/* c1 loses ch1 (one -3.2 in nine taps), c2 loses ch2. */
	a = pb_model_find_param(m, "c1.weight");
	b = pb_model_find_param(out, "c1.weight");
	assert_int_equal(b->shape[0], 3);
	assert_memory_equal(b->data, a->data, 9 * sizeof(float));
	assert_memory_equal(b->data + 9, a->data + 18, 18 * sizeof(float));
	a = pb_model_find_param(m, "c2.weight");
	b = pb_model_find_param(out, "c2.weight");
	assert_int_equal(b->shape[0], 3);
	assert_true(fabsf(b->data[2 * 27]) == 0.2f);
	pb_model_free(out);
	pb_model_free(m);
	pb_plugin_close(p);
}

static void test_template_skip(void **state)
{
	static const char *first[] = { "skip=first", NULL };
	static const char *residual[] = { "skip=residual", NULL };
	pb_plugin *p = open_template();
	pb_model *m = tu_parse_model(pt_two_conv_ini, "test"), *out = NULL;
	pb_error err = { 0 };
	pt_run_args args = { .target = "channels=0.25", .kv = first };

	(void)state;
	pt_craft_filters(m);
	if (pt_run(m, pb_plugin_pruner(p), &args, &out, NULL, &err))
		fail_msg("%s", err.msg);
	/* The first group whole and out of the count: the second loses a
	 * quarter of its 4. */
	assert_int_equal(pb_model_find_param(out, "c1.weight")->shape[0], 4);
	assert_int_equal(pb_model_find_param(out, "c2.weight")->shape[0], 3);
	pb_model_free(out);
	pb_model_free(m);

	m = tu_parse_model(pt_residual_ini, "test");
	tu_init_params(m, 5);
	args.kv = residual;
	if (pt_run(m, pb_plugin_pruner(p), &args, &out, NULL, &err))
		fail_msg("%s", err.msg);
	/* The add-tied c0/c2 whole; the inner conv loses 2 of its 8. */
	assert_int_equal(pb_model_find_param(out, "c0.weight")->shape[0], 8);
	assert_int_equal(pb_model_find_param(out, "c2.weight")->shape[0], 8);
	assert_int_equal(pb_model_find_param(out, "c1.weight")->shape[0], 6);
	pb_model_free(out);
	pb_model_free(m);
	pb_plugin_close(p);
}

static void test_template_noise_seeded(void **state)
{
	static const char *noisy[] = { "noise=1", NULL };
	pb_plugin *p = open_template();
	pb_model *m = tu_parse_model(pt_small_ini, "test");
	pb_model *a = NULL, *b = NULL;
	pb_error err = { 0 };
	pt_run_args args = { .target = "channels=0.5, scope=global",
			     .kv = noisy, .seed = 8 };

	(void)state;
	tu_init_params(m, 6);
	if (pt_run(m, pb_plugin_pruner(p), &args, &a, NULL, &err) ||
	    pt_run(m, pb_plugin_pruner(p), &args, &b, NULL, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(pb_model_n_params(a), pb_model_n_params(b));
	for (int i = 0; i < pb_model_n_params(a); i++) {
		assert_int_equal(pb_model_param(a, i)->n,
				 pb_model_param(b, i)->n);
		assert_memory_equal(pb_model_param(a, i)->data,
				    pb_model_param(b, i)->data,
				    pb_model_param(a, i)->n * sizeof(float));
	}
	pb_model_free(a);
	pb_model_free(b);
	pb_model_free(m);
	pb_plugin_close(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_template_removes_smallest_mean),
		cmocka_unit_test(test_template_skip),
		cmocka_unit_test(test_template_noise_seeded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
