/* fpgm on a crafted layer: it removes the filter equal to the mean of
 * the others although its norm is the second largest (l1 removes the
 * smallest), in hard mode under either distance and in soft mode without
 * training; soft mode with training trains the kept filters and removes
 * the last selection. */
#include "pruner_test.h"

static const char fpgm_ini[] =
	"[model]\nname = fp\ninput = 1x5x5\nclasses = 3\n"
	"[c1]\ntype = conv\nout = 5\nkernel = 3\npad = 1\nbias = no\n"
	"[b1]\ntype = bn\n"
	"[r1]\ntype = relu\n"
	"[f]\ntype = flatten\n"
	"[fc]\ntype = linear\nout = 3\n";

/* c1's five filters (first three of nine taps; the rest 0):
 *   f0 (4, 0, 0)        L1 4      sum of distances 10.14
 *   f1 (1.5, 0.5, 0)    L1 2      5.13
 *   f2 (1.5, -0.5, 0)   L1 2      5.13
 *   f3 (1, 0, 0.5)      L1 1.5    5.84   <- l1 removes it
 *   f4 mean of f0..f3   L1 2.125  4.51   <- fpgm removes it
 * A mean's norm is at most the mean of the norms (triangle inequality),
 * so the mean filter cannot have the very largest norm; here it has the
 * largest but one, under L1 and L2 alike. */
static void craft_fpgm(pb_model *m)
{
	pb_param *w = pb_model_find_param(m, "c1.weight");
	static const float v[5][3] = { { 4, 0, 0 }, { 1.5f, 0.5f, 0 },
				       { 1.5f, -0.5f, 0 }, { 1, 0, 0.5f },
				       { 2, 0, 0.125f } };

	memset(w->data, 0, w->n * sizeof(float));
	for (int c = 0; c < 5; c++)
		memcpy(w->data + 9 * c, v[c], sizeof v[c]);
	tu_fill_param(m, "fc.weight", -1, 1, 3);
}

/* The dense c1 filter index missing from the pruned model. */
static int removed_filter(pb_model *dense, pb_model *pr)
{
	pb_param *a = pb_model_find_param(dense, "c1.weight");
	pb_param *b = pb_model_find_param(pr, "c1.weight");
	int missing = -1;

	assert_int_equal(b->shape[0], 4);
	for (int c = 0; c < 5; c++) {
		int found = 0;

		for (int i = 0; i < 4; i++)
			found |= !memcmp(a->data + 9 * c, b->data + 9 * i,
					 9 * sizeof(float));
		if (!found) {
			assert_int_equal(missing, -1);
			missing = c;
		}
	}
	return missing;
}

static void test_fpgm_removes_median_not_smallest(void **state)
{
	static const char *hard[] = { "mode=hard", NULL };
	static const char *hard_l1[] = { "mode=hard", "distance=l1", NULL };
	static const char *soft0[] = { "mode=soft", "soft_epochs=0", NULL };
	pb_plugin *fp = tu_open_plugin("fpgm"), *l1 = tu_open_plugin("l1");
	pb_model *m = tu_parse_model(fpgm_ini, "test"), *out = NULL;
	pb_error err = { 0 };

	(void)state;
	craft_fpgm(m);
	if (pt_run_data(m, pb_plugin_pruner(fp), "channels=0.2", hard, NULL,
			NULL, 1, NULL, &out, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(removed_filter(m, out), 4);
	pb_model_free(out);
	if (pt_run_data(m, pb_plugin_pruner(fp), "channels=0.2", hard_l1, NULL,
			NULL, 1, NULL, &out, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(removed_filter(m, out), 4);
	pb_model_free(out);
	/* Soft mode without training selects the same, per layer. */
	if (pt_run_data(m, pb_plugin_pruner(fp), "channels=0.2", soft0, NULL,
			NULL, 1, NULL, &out, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(removed_filter(m, out), 4);
	pb_model_free(out);
	if (pt_run_data(m, pb_plugin_pruner(l1), "channels=0.2", NULL, NULL,
			NULL, 1, NULL, &out, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(removed_filter(m, out), 3);
	pb_model_free(out);
	pb_model_free(m);
	pb_plugin_close(fp);
	pb_plugin_close(l1);
}

static void test_fpgm_soft_trains_and_removes(void **state)
{
	static const char *soft[] = { "mode=soft", "soft_epochs=2", NULL };
	pb_plugin *fp = tu_open_plugin("fpgm");
	pb_model *m, *out = NULL;
	pb_splits sp;
	pb_recipe ft;
	pb_error err = { 0 };

	(void)state;
	pt_small_setup(&m, &sp, &ft);
	if (pt_run_data(m, pb_plugin_pruner(fp), "channels=0.5", soft, &sp, &ft,
			1, NULL, &out, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(pb_model_find_param(out, "c1.weight")->shape[0], 4);
	assert_int_equal(pb_model_find_param(out, "c2.weight")->shape[0], 6);
	assert_int_equal(pb_model_find_param(out, "c3.weight")->shape[0], 5);
	/* The model trained: the kept filters moved off their dense
	 * values (soft mode is not hard mode plus nothing). */
	assert_true(memcmp(pb_model_find_param(out, "fc.bias")->data,
			   pb_model_find_param(m, "fc.bias")->data,
			   4 * sizeof(float)) != 0);
	pb_model_free(out);
	pt_small_free(m, &sp);
	pb_plugin_close(fp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fpgm_removes_median_not_smallest),
		cmocka_unit_test(test_fpgm_soft_trains_and_removes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
