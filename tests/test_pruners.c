/* The shipped pruners and the context they run in, on crafted models
 * whose weights are set by hand: magnitude masks exactly the smallest |w|
 * (global and per layer), l1 removes exactly the filters with the
 * smallest L1 (or L2) norm, and the pb_ctx_* helpers behave as pruner.h
 * says (channel removal, snapshots, errors, target checks). */
#include "testutil.h"
#include "prunebench/plugin.h"

static const char mag_ini[] =
	"[model]\nname = mag\ninput = 1x4x4\nclasses = 3\n"
	"[c1]\ntype = conv\nout = 2\nkernel = 3\npad = 1\n"
	"[r1]\ntype = relu\n"
	"[f]\ntype = flatten\n"
	"[fc]\ntype = linear\nout = 3\n";

static const char l1_ini[] =
	"[model]\nname = l1m\ninput = 1x5x5\nclasses = 3\n"
	"[c1]\ntype = conv\nout = 4\nkernel = 3\npad = 1\nbias = no\n"
	"[b1]\ntype = bn\n"
	"[r1]\ntype = relu\n"
	"[c2]\ntype = conv\nout = 4\nkernel = 3\npad = 1\n"
	"[r2]\ntype = relu\n"
	"[f]\ntype = flatten\n"
	"[fc]\ntype = linear\nout = 3\n";

/* Runs pruner pr with options "k=v" (NULL-terminated) and target text. */
static int run(const pb_model *m, const pb_pruner *pr, const char *target,
	       const char *const *kv, pb_model **out, pb_prune_report *rep,
	       pb_error *err)
{
	pb_target t;
	pb_prune_setup su = { 0 };

	memset(&t, 0, sizeof t);
	/* "KIND=X[,global]" */
	{
		char kind[32];
		double x;
		char scope[16] = "";
		static const char *names[] = { "sparsity", "channels",
					       "params", "macs" };

		assert_true(sscanf(target, "%31[a-z]=%lf,%15s", kind, &x,
				   scope) >= 2);
		for (int k = 0; k < 4; k++)
			if (!strcmp(kind, names[k]))
				t.kind = (pb_target_kind)k;
		t.amount = x;
		t.scope = strcmp(scope, "global") ? PB_SCOPE_LAYER :
			  PB_SCOPE_GLOBAL;
	}
	su.pruner = pr;
	su.target = &t;
	return tu_prune_run(m, &su, kv, 0, out, rep, err);
}

/* ---- magnitude ------------------------------------------------------------ */

/* Every weight gets a distinct magnitude (a shuffled 1..n times 0.01) and
 * a random sign, so "the k smallest" is unambiguous. */
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
	pb_model *m = tu_parse_model(mag_ini, "test"), *out = NULL;
	pb_prune_report rep;
	pb_error err = { 0 };

	(void)state;
	craft_magnitudes(m);
	if (run(m, pb_plugin_pruner(p), "sparsity=0.5,global", NULL, &out,
		&rep, &err))
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
	pb_model *m = tu_parse_model(mag_ini, "test"), *out = NULL;
	pb_error err = { 0 };

	(void)state;
	craft_magnitudes(m);
	if (run(m, pb_plugin_pruner(p), "sparsity=0.75", NULL, &out, NULL,
		&err))
		fail_msg("%s", err.msg);
	check_smallest(m, out, "c1.weight", 0.75);
	check_smallest(m, out, "fc.weight", 0.75);
	pb_model_free(out);

	/* include_first = no leaves the first conv whole. */
	if (run(m, pb_plugin_pruner(p), "sparsity=0.5", no_first, &out, NULL,
		&err))
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
	pb_model *m = tu_parse_model(mag_ini, "test"), *out = NULL;
	pb_error err = { 0 };

	(void)state;
	assert_int_equal(run(m, pb_plugin_pruner(p), "macs=0.5", NULL, &out,
			     NULL, &err), PB_EINVAL);
	assert_non_null(strstr(err.msg, "sparsity=S"));
	assert_null(out);
	pb_model_free(m);
	pb_plugin_close(p);
}

/* ---- l1 ------------------------------------------------------------------- */

/* c1's four 1x3x3 filters, chosen so L1 and L2 rank them differently:
 *   ch0: nine 0.5        L1 4.5  L2 1.5
 *   ch1: one -3.2        L1 3.2  L2 3.2
 *   ch2: nine 1.0        L1 9.0  L2 3.0
 *   ch3: nine +-0.8      L1 7.2  L2 2.4
 * so L1 removes ch1 first and L2 removes ch0. c2's filters are constant
 * 0.3, 0.4, 0.1, 0.2 (ch2 smallest under both norms). BN scales are
 * 1, 2, 3, 4 so the surviving channels can be recognised. */
static void craft_filters(pb_model *m)
{
	pb_param *w1 = pb_model_find_param(m, "c1.weight");
	pb_param *w2 = pb_model_find_param(m, "c2.weight");
	pb_param *g = pb_model_find_param(m, "b1.weight");
	static const float c2v[4] = { 0.3f, 0.4f, 0.1f, 0.2f };

	for (int j = 0; j < 9; j++) {
		w1->data[0 * 9 + j] = 0.5f;
		w1->data[1 * 9 + j] = j == 4 ? -3.2f : 0.0f;
		w1->data[2 * 9 + j] = 1.0f;
		w1->data[3 * 9 + j] = j % 2 ? -0.8f : 0.8f;
	}
	for (int c = 0; c < 4; c++) {
		g->data[c] = (float)(c + 1);
		for (int j = 0; j < 36; j++)
			w2->data[c * 36 + j] = c2v[c] * (j % 3 ? 1.f : -1.f);
	}
	tu_fill_param(m, "fc.weight", -1, 1, 3);
}

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
	pb_model *m = tu_parse_model(l1_ini, "test"), *out = NULL;
	pb_prune_report rep;
	pb_error err = { 0 };

	(void)state;
	craft_filters(m);
	if (run(m, pb_plugin_pruner(p), "channels=0.25", NULL, &out, &rep,
		&err))
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
	pb_model *m = tu_parse_model(l1_ini, "test"), *out = NULL;
	pb_error err = { 0 };

	(void)state;
	craft_filters(m);
	if (run(m, pb_plugin_pruner(p), "channels=0.25", l2, &out, NULL,
		&err))
		fail_msg("%s", err.msg);
	check_kept(m, out, keep1, keep2);
	pb_model_free(out);
	pb_model_free(m);
	pb_plugin_close(p);
}

static void test_l1_wrong_target(void **state)
{
	pb_plugin *p = tu_open_plugin("l1");
	pb_model *m = tu_parse_model(l1_ini, "test"), *out = NULL;
	pb_error err = { 0 };

	(void)state;
	assert_int_equal(run(m, pb_plugin_pruner(p), "sparsity=0.5", NULL,
			     &out, NULL, &err), PB_EINVAL);
	assert_non_null(strstr(err.msg, "macs=F"));
	pb_model_free(m);
	pb_plugin_close(p);
}

/* ---- the context, through pruners defined here ------------------------------ */

static int ctx_remove_revert(void *state, pb_prune_ctx *ctx)
{
	static const int one[1] = { 1 }, two[2] = { 0, 3 };
	int rc;

	(void)state;
	if ((rc = pb_ctx_snapshot_save(ctx, 0)) ||
	    (rc = pb_ctx_remove_channels(ctx, 0, one, 1)))
		return rc;
	if (pb_model_find_param(pb_ctx_model(ctx), "c1.weight")->shape[0] != 3)
		return pb_ctx_fail(ctx, "remove did not shrink c1");
	/* Rewinding values needs equal shapes; going back does not. */
	if (pb_ctx_snapshot_restore(ctx, 0) != PB_EMISMATCH)
		return pb_ctx_fail(ctx, "restore across shapes succeeded");
	if ((rc = pb_ctx_snapshot_revert(ctx, 0)))
		return rc;
	if (pb_model_find_param(pb_ctx_model(ctx), "c1.weight")->shape[0] != 4)
		return pb_ctx_fail(ctx, "revert did not restore c1");
	if (pb_ctx_layer_param(ctx, pb_model_find_layer(pb_ctx_model(ctx),
				"b1"), PB_PARAM_BN_GAMMA) !=
	    pb_model_find_param(pb_ctx_model(ctx), "b1.weight"))
		return pb_ctx_fail(ctx, "layer_param found the wrong tensor");
	if (pb_ctx_remove_channels(ctx, 0, (const int[]){ 9 }, 1) != PB_EINVAL)
		return pb_ctx_fail(ctx, "out-of-range channel accepted");
	return pb_ctx_remove_channels(ctx, 0, two, 2);
}

static const pb_pruner ctx_pruner = {
	PB_PRUNER_HEADER,
	.name = "ctxtest",
	.version = "0",
	.granularity = PB_GRANULARITY_CHANNEL,
	.prune = ctx_remove_revert,
};

static void test_ctx_remove_and_revert(void **state)
{
	pb_model *m = tu_parse_model(l1_ini, "test"), *out = NULL;
	pb_error err = { 0 };
	pb_param *a, *b;

	(void)state;
	craft_filters(m);
	if (run(m, &ctx_pruner, "channels=0.5", NULL, &out, NULL, &err))
		fail_msg("%s", err.msg);
	a = pb_model_find_param(m, "c1.weight");
	b = pb_model_find_param(out, "c1.weight");
	assert_int_equal(b->shape[0], 2);
	assert_memory_equal(b->data, a->data + 9, 18 * sizeof(float));
	assert_int_equal(pb_model_find_param(out, "c2.weight")->shape[1], 2);
	pb_model_free(out);
	pb_model_free(m);
}

static int failing_prune(void *state, pb_prune_ctx *ctx)
{
	(void)state;
	return pb_ctx_fail(ctx, "boom at %d", 42);
}

static int counting_create(pb_prune_ctx *ctx, void **state)
{
	(void)ctx;
	*state = malloc(16);
	return 0;
}

static void counting_destroy(void *state)
{
	free(state);
}

static const pb_pruner failing_pruner = {
	PB_PRUNER_HEADER,
	.name = "failer",
	.version = "0",
	.granularity = PB_GRANULARITY_WEIGHT,
	.create = counting_create,
	.destroy = counting_destroy,
	.prune = failing_prune,
};

static void test_ctx_failure_and_checks(void **state)
{
	pb_model *m = tu_parse_model(mag_ini, "test"), *out = NULL;
	pb_error err = { 0 };

	(void)state;
	/* The plugin's message arrives, named; destroy still runs (the
	 * sanitizer build would report the leak otherwise). */
	assert_int_equal(run(m, &failing_pruner, "sparsity=0.5", NULL, &out,
			     NULL, &err), PB_EINVAL);
	assert_non_null(strstr(err.msg, "plugin 'failer': boom at 42"));
	assert_null(out);
	/* Data-driven helpers without data say what to pass. */
	{
		pb_target t = { .kind = PB_TARGET_SPARSITY, .amount = 0.5,
				.n_overrides = 1 };
		pb_prune_setup su = { 0 };
		gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);

		strcpy(t.overrides[0].layer, "nosuch");
		t.overrides[0].amount = 0.1;
		su.pruner = &failing_pruner;
		su.target = &t;
		su.rng = r;
		assert_int_equal(pb_prune_run(m, &su, &out, NULL, &err),
				 PB_ENOTFOUND);
		assert_non_null(strstr(err.msg, "no layer 'nosuch'"));
		gsl_rng_free(r);
	}
	pb_model_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_magnitude_global),
		cmocka_unit_test(test_magnitude_layer),
		cmocka_unit_test(test_magnitude_wrong_target),
		cmocka_unit_test(test_l1_removes_smallest_l1),
		cmocka_unit_test(test_l1_norm2),
		cmocka_unit_test(test_l1_wrong_target),
		cmocka_unit_test(test_ctx_remove_and_revert),
		cmocka_unit_test(test_ctx_failure_and_checks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
