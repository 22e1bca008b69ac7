/* slimming on crafted BN scales: after_backward adds exactly
 * lambda*sign(gamma) to the scale gradients; one global |gamma| threshold
 * takes more channels from a layer whose scales are all small (the L1
 * norm of the filters would not); a short sparsity training runs. Hooks
 * are observed through a copy of the plugin's descriptor whose prune
 * calls the plugin's hook and looks at the result. */
#include "pruner_test.h"

static const char two_bn_ini[] =
	"[model]\nname = twobn\ninput = 1x4x4\nclasses = 3\n"
	"[c1]\ntype = conv\nout = 4\nkernel = 3\npad = 1\nbias = no\n"
	"[b1]\ntype = bn\n"
	"[r1]\ntype = relu\n"
	"[c2]\ntype = conv\nout = 4\nkernel = 3\npad = 1\nbias = no\n"
	"[b2]\ntype = bn\n"
	"[r2]\ntype = relu\n"
	"[f]\ntype = flatten\n"
	"[fc]\ntype = linear\nout = 3\n";

/* The wrapped plugin's descriptor: a test copies it and replaces prune
 * to look at the context around the plugin's own hook. */
static const pb_pruner *g_real;
static float g_grad[8], g_gamma[8];   /* b1, b2 after the hook */

/* Sets known gradients, runs slimming's after_backward once, keeps the
 * result; prunes nothing. */
static int slim_hook_only(void *state, pb_prune_ctx *ctx)
{
	pb_model *m = pb_ctx_model(ctx);
	pb_param *g1 = pb_model_find_param(m, "b1.weight");
	pb_param *g2 = pb_model_find_param(m, "b2.weight");
	int rc;

	for (int c = 0; c < 4; c++) {
		g1->grad[c] = 0.25f;
		g2->grad[c] = -0.5f;
	}
	if ((rc = g_real->after_backward(state, ctx, 0)))
		return rc;
	for (int c = 0; c < 4; c++) {
		g_grad[c] = g1->grad[c];
		g_grad[4 + c] = g2->grad[c];
		g_gamma[c] = g1->data[c];
		g_gamma[4 + c] = g2->data[c];
	}
	return 0;
}

static void set_gammas(pb_model *m, const float *b1, const float *b2)
{
	memcpy(pb_model_find_param(m, "b1.weight")->data, b1, 4 * sizeof *b1);
	memcpy(pb_model_find_param(m, "b2.weight")->data, b2, 4 * sizeof *b2);
}

static void test_slimming_subgradient(void **state)
{
	static const float b1[4] = { 1.5f, -2.0f, 0.0f, 0.3f };
	static const float b2[4] = { -0.1f, 0.2f, 3.0f, -4.0f };
	static const char *kv[] = { "lambda=0.001", "sparsity_epochs=0", NULL };
	pb_plugin *p = tu_open_plugin("slimming");
	pb_pruner w = *pb_plugin_pruner(p);
	pb_model *m = tu_parse_model(two_bn_ini, "test"), *out = NULL;
	pb_error err = { 0 };
	pt_run_args a = { .target = "channels=0.25", .kv = kv, .seed = 5 };

	(void)state;
	g_real = pb_plugin_pruner(p);
	w.prune = slim_hook_only;
	set_gammas(m, b1, b2);
	if (pt_run(m, &w, &a, &out, NULL, &err))
		fail_msg("%s", err.msg);
	for (int c = 0; c < 8; c++) {
		float base = c < 4 ? 0.25f : -0.5f;
		float sg = g_gamma[c] > 0 ? 1.f : g_gamma[c] < 0 ? -1.f : 0.f;

		if (g_grad[c] != base + 0.001f * sg)
			fail_msg("gamma %d = %g: grad %.9g, expected %.9g", c,
				 g_gamma[c], g_grad[c], base + 0.001f * sg);
	}
	pb_model_free(out);
	pb_model_free(m);
	pb_plugin_close(p);
}

/* b1's scales are all small, b2's mostly large; c1's filters are large
 * and c2's small, so the L1 criterion would cut c2 and slimming cuts b1. */
static void test_slimming_global_threshold(void **state)
{
	static const float b1[4] = { 0.01f, -0.03f, 0.02f, 0.04f };
	static const float b2[4] = { 1.0f, 0.05f, -2.0f, 3.0f };
	static const char *kv[] = { "sparsity_epochs=0", NULL };
	pb_plugin *p = tu_open_plugin("slimming");
	pb_plugin *l1 = tu_open_plugin("l1");
	pb_model *m = tu_parse_model(two_bn_ini, "test"), *out = NULL;
	pb_param *w1, *w2, *g1, *g2;
	pb_error err = { 0 };
	pt_run_args a = { .target = "channels=0.5, scope=global", .kv = kv,
			  .seed = 5 };

	(void)state;
	set_gammas(m, b1, b2);
	tu_fill_param(m, "c1.weight", 1, 2, 1);
	tu_fill_param(m, "c2.weight", -0.1f, 0.1f, 2);
	tu_fill_param(m, "fc.weight", -1, 1, 3);
	if (pt_run(m, pb_plugin_pruner(p), &a, &out, NULL, &err))
		fail_msg("%s", err.msg);
	/* The four smallest |gamma|: 0.01, 0.02, 0.03 of b1 and 0.05 of b2;
	 * b1 keeps its largest (0.04), b2 keeps 1, -2, 3. */
	g1 = pb_model_find_param(out, "b1.weight");
	g2 = pb_model_find_param(out, "b2.weight");
	assert_int_equal(g1->n, 1);
	assert_int_equal(g2->n, 3);
	assert_true(g1->data[0] == 0.04f);
	assert_true(g2->data[0] == 1.0f && g2->data[1] == -2.0f &&
		    g2->data[2] == 3.0f);
	pb_model_free(out);

	/* L1 on the same model and target (its per-layer-normalised global
	 * ranking, or per layer) does not strip c1 the way |gamma| does. */
	a.kv = NULL;
	if (pt_run(m, pb_plugin_pruner(l1), &a, &out, NULL, &err))
		fail_msg("%s", err.msg);
	w1 = pb_model_find_param(out, "c1.weight");
	w2 = pb_model_find_param(out, "c2.weight");
	assert_true(w1->shape[0] > 1);
	assert_int_equal(w1->shape[0] + w2->shape[0], 4);
	pb_model_free(out);
	pb_model_free(m);
	pb_plugin_close(l1);
	pb_plugin_close(p);
}

/* from = dense with a short sparsity training: runs, and the scales of
 * the channels that remain moved (the penalty acted). */
static void test_slimming_trains(void **state)
{
	static const char *kv[] = { "from=dense", "sparsity_epochs=1",
				    "lambda=0.01", NULL };
	pb_plugin *p = tu_open_plugin("slimming");
	pb_model *m = tu_parse_model(two_bn_ini, "test"), *out = NULL;
	pb_splits sp;
	pb_recipe ft;
	pb_prune_report rep;
	pb_error err = { 0 };
	pt_run_args a = { .target = "channels=0.25, scope=global", .kv = kv,
			  .seed = 5 };

	(void)state;
	tu_init_params(m, 3);
	pt_tiny_splits(&sp, 64);
	pt_plain_recipe(&ft, 1, 16, 0.05);
	a.splits = &sp;
	a.finetune = &ft;
	if (pt_run(m, pb_plugin_pruner(p), &a, &out, &rep, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(rep.channels_after, 6);
	pb_model_free(out);
	pb_model_free(m);
	pb_splits_free(&sp);
	pb_plugin_close(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slimming_subgradient),
		cmocka_unit_test(test_slimming_global_threshold),
		cmocka_unit_test(test_slimming_trains),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
