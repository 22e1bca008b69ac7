/* lth on a small net: after the rounds the surviving weights equal the
 * rewind point bitwise and the pruned ones are zero; sparsity after r
 * rounds is 1 - (1 - rate)^r of every conv and linear weight within one
 * weight; the last layer is left whole under global scope and pruned at
 * half the rate under layer scope (last_layer = auto, as the paper), at
 * the full rate with last_layer = same, and a target the other layers
 * cannot give alone is refused with the most they can; reinit gives
 * other survivors than rewinding; from = dense
 * reads the dense training's own point, and says how to get it when it
 * was not kept; lr_rewind keeps the survivors where they are. The rewind
 * point is observed through a copy of the plugin's descriptor whose prune
 * calls the plugin's and then reverts to snapshot slot 0. */
#include "pruner_test.h"
#include "prunebench/checkpoint.h"

static const char lth_ini[] =
	"[model]\nname = lthm\ninput = 1x4x4\nclasses = 3\n"
	"[c1]\ntype = conv\nout = 4\nkernel = 3\npad = 1\n"
	"[r1]\ntype = relu\n"
	"[c2]\ntype = conv\nout = 8\nkernel = 3\npad = 1\n"
	"[r2]\ntype = relu\n"
	"[p2]\ntype = maxpool\nkernel = 2\n"
	"[f]\ntype = flatten\n"
	"[fc]\ntype = linear\nout = 3\n";

/* The wrapped plugin's descriptor, and what the wrapper saw: the pruned
 * model and the rewind point in snapshot slot 0. */
static const pb_pruner *g_real;
static pb_model *g_pruned, *g_rewind;
static int g_observe_snapshot = 1;   /* 0: lth kept no slot 0 */

/* Runs lth's prune, keeps its result and the rewind point (slot 0). */
static int lth_observed(void *state, pb_prune_ctx *ctx)
{
	pb_error err = { 0 };
	int rc = g_real->prune(state, ctx);

	if (rc)
		return rc;
	if (pb_model_clone(&g_pruned, pb_ctx_model(ctx), &err))
		return pb_ctx_fail(ctx, "%s", err.msg);
	if (!g_observe_snapshot)
		return 0;
	if ((rc = pb_ctx_snapshot_revert(ctx, 0)))
		return rc;
	if (pb_model_clone(&g_rewind, pb_ctx_model(ctx), &err))
		return pb_ctx_fail(ctx, "%s", err.msg);
	return 0;
}

/* The target of most runs: three rounds at rate 0.2, one ranking. */
static const pb_target three_global = {
	.kind = PB_TARGET_SPARSITY, .amount = 1.0 - 0.8 * 0.8 * 0.8,
	.scope = PB_SCOPE_GLOBAL
};

/* Runs lth (wrapped) with options kv to target t (three_global when
 * NULL), on dense model m when given (else a fresh one), with the dense
 * model's training points at BASE.stepN.ckpt when points is given;
 * returns the error code (want_error) or fails the test on error. */
static int run_lth_to(pb_model *dense, const char *const *kv,
		      const pb_target *t, const char *points, int want_error,
		      pb_prune_report *rep, pb_error *err)
{
	pb_plugin *p = tu_open_plugin("lth");
	pb_pruner w = *pb_plugin_pruner(p);
	pb_model *m = dense ? dense : tu_parse_model(lth_ini, "test");
	pb_model *out = NULL;
	pb_splits sp;
	pb_recipe recipe;
	pt_run_args a = { .exact = t ? t : &three_global, .kv = kv,
			  .dense_points = points, .label = "lth", .seed = 5 };
	int rc;

	g_real = pb_plugin_pruner(p);
	w.prune = lth_observed;
	pt_tiny_splits(&sp, 64);
	/* 2 epochs of 4 steps: iterations 0..8. */
	pt_plain_recipe(&recipe, 2, 16, 0.1);
	a.splits = &sp;
	a.dense = &recipe;
	rc = pt_run(m, &w, &a, &out, rep, err);
	if (rc && !want_error)
		fail_msg("%s", err->msg);
	if (!rc && want_error)
		fail_msg("lth ran, but this run should have failed");
	pb_model_free(out);
	if (!dense)
		pb_model_free(m);
	pb_splits_free(&sp);
	pb_plugin_close(p);
	return rc;
}

static int run_lth_on(pb_model *dense, const char *const *kv,
		      const char *points, int want_error,
		      pb_prune_report *rep, pb_error *err)
{
	return run_lth_to(dense, kv, NULL, points, want_error, rep, err);
}

static void run_lth(const char *const *kv, pb_prune_report *rep)
{
	pb_error err = { 0 };

	run_lth_on(NULL, kv, NULL, 0, rep, &err);
}

static void free_observed(void)
{
	pb_model_free(g_pruned);
	pb_model_free(g_rewind);
	g_pruned = g_rewind = NULL;
}

/* Zeros in the weight tensors; survivors (and every other tensor) equal
 * to the rewind point bitwise (same = 1) or mostly not (same = 0). */
static void check_vs_rewind(int same, size_t *zeros, size_t *total,
			    size_t *fc_zeros, size_t *fc_total)
{
	size_t differ = 0, kept = 0;

	*zeros = *total = *fc_zeros = *fc_total = 0;
	for (int i = 0; i < pb_model_n_params(g_pruned); i++) {
		pb_param *a = pb_model_param(g_pruned, i);
		pb_param *b = pb_model_param(g_rewind, i);

		assert_int_equal(a->n, b->n);
		for (size_t j = 0; j < a->n; j++) {
			int z = a->kind == PB_PARAM_WEIGHT &&
				a->data[j] == 0.0f;

			if (a->kind == PB_PARAM_WEIGHT) {
				*total += 1;
				*zeros += (size_t)z;
				if (!strcmp(a->name, "fc.weight")) {
					*fc_total += 1;
					*fc_zeros += (size_t)z;
				}
			}
			if (z || !a->trainable)
				continue;
			kept++;
			if (memcmp(&a->data[j], &b->data[j], sizeof(float)))
				differ++;
		}
	}
	if (same && differ)
		fail_msg("%zu of %zu surviving values differ from the rewind "
			 "point", differ, kept);
	if (!same && differ < kept / 2)
		fail_msg("reinit: only %zu of %zu surviving values differ from "
			 "the rewind point", differ, kept);
}

static void test_lth_rewind(void **state)
{
	static const char *kv[] = { "rewind=3", "retrain_epochs=0",
				    "from=scratch", NULL };
	pb_prune_report rep;
	size_t zeros, total, fcz, fct;

	(void)state;
	run_lth(kv, &rep);
	check_vs_rewind(1, &zeros, &total, &fcz, &fct);
	/* 1 - 0.8^r after round r, within one weight. */
	assert_int_equal(rep.n_rounds, 3);
	for (int r = 0; r < 3; r++)
		if (fabs(rep.rounds[r] - (1.0 - pow(0.8, r + 1))) >
		    1.0 / (double)total + 1e-12)
			fail_msg("round %d: sparsity %g, wanted %g", r + 1,
				 rep.rounds[r], 1.0 - pow(0.8, r + 1));
	assert_true(fabs((double)zeros - (1.0 - pow(0.8, 3)) * total) <= 1.0);
	/* Global scope: the output layer keeps every weight (the paper's
	 * global runs), the others make up the whole target. */
	assert_int_equal(fcz, 0);
	free_observed();
}

/* The last layer under each last_layer and scope, with the total over
 * every conv and linear weight at the target (within the rounding of
 * each of the three tensors under layer scope). */
static void check_last_layer(const char *opt, pb_scope scope, double fc_rate,
			     const char *what)
{
	const char *kv[] = { "rewind=3", "retrain_epochs=0", "from=scratch",
			     opt, NULL };
	pb_target t = three_global;
	pb_prune_report rep;
	pb_error err = { 0 };
	size_t zeros, total, fcz, fct;

	t.scope = scope;
	run_lth_to(NULL, kv, &t, NULL, 0, &rep, &err);
	check_vs_rewind(1, &zeros, &total, &fcz, &fct);
	assert_int_equal(rep.n_rounds, 3);
	if (fabs((double)zeros - t.amount * total) > 1.5 ||
	    fabs(rep.rounds[2] - t.amount) > 1.5 / total)
		fail_msg("%s: %zu of %zu weights zero (reported %g), wanted "
			 "%g", what, zeros, total, rep.rounds[2], t.amount);
	if (fabs((double)fcz - fc_rate * fct) > 1.0)
		fail_msg("%s: the last layer has %zu of %zu zero, wanted %g",
			 what, fcz, fct, fc_rate * fct);
	free_observed();
}

static void test_lth_last_layer(void **state)
{
	const double half = 1.0 - pow(0.9, 3), full = 1.0 - pow(0.8, 3);

	(void)state;
	check_last_layer("last_layer=auto", PB_SCOPE_GLOBAL, 0.0,
			 "global, auto");
	check_last_layer("last_layer=skip", PB_SCOPE_LAYER, 0.0,
			 "layer, skip");
	check_last_layer("last_layer=auto", PB_SCOPE_LAYER, half,
			 "layer, auto");
	check_last_layer("last_layer=half", PB_SCOPE_LAYER, half,
			 "layer, half");
	check_last_layer("last_layer=half", PB_SCOPE_GLOBAL, half,
			 "global, half");
	check_last_layer("last_layer=same", PB_SCOPE_LAYER, full,
			 "layer, same");
}

/* Under global scope with last_layer = same the output layer is ranked
 * with the others: it loses weights, but not at a fixed rate. */
static void test_lth_last_layer_ranked(void **state)
{
	static const char *kv[] = { "rewind=3", "retrain_epochs=0",
				    "from=scratch", "last_layer=same", NULL };
	pb_prune_report rep;
	size_t zeros, total, fcz, fct;

	(void)state;
	run_lth(kv, &rep);
	check_vs_rewind(1, &zeros, &total, &fcz, &fct);
	assert_true(fabs((double)zeros - (1.0 - pow(0.8, 3)) * total) <= 1.0);
	assert_true(fcz > 0);
	free_observed();
}

/* The output layer holds 96 of the 420 weights; the others can give 320
 * under global scope (c1 keeps 1 of 36, c2 3 of 288), so 0.9 is out of
 * reach with it unpruned: refused before any training, with the most the
 * others can give. */
static void test_lth_skip_unreachable(void **state)
{
	static const char *kv[] = { "rewind=3", "retrain_epochs=0",
				    "from=scratch", NULL };
	pb_target t = three_global;
	pb_prune_report rep;
	pb_error err = { 0 };

	(void)state;
	t.amount = 0.9;
	run_lth_to(NULL, kv, &t, NULL, 1, &rep, &err);
	if (!strstr(err.msg, "last layer 'fc' unpruned") ||
	    !strstr(err.msg, "96 of the 420") ||
	    !strstr(err.msg, "at most 0.7619") ||
	    !strstr(err.msg, "last_layer = half or same"))
		fail_msg("unexpected message: %s", err.msg);
	assert_null(g_pruned);
}

static void test_lth_reinit(void **state)
{
	static const char *kv[] = { "rewind=3", "retrain_epochs=0",
				    "reinit=yes", "from=scratch", NULL };
	pb_prune_report rep;
	size_t zeros, total, fcz, fct;

	(void)state;
	run_lth(kv, &rep);
	check_vs_rewind(0, &zeros, &total, &fcz, &fct);
	assert_true(fabs((double)zeros - (1.0 - pow(0.8, 3)) * total) <= 1.0);
	assert_int_equal(fcz, 0);
	free_observed();
}

/* With retraining, pruned weights stay exactly zero and the sparsity
 * holds. */
static void test_lth_retrain(void **state)
{
	static const char *kv[] = { "rewind=1%", "retrain_epochs=1",
				    "from=scratch", NULL };
	pb_prune_report rep;
	size_t zeros, total, fcz, fct;

	(void)state;
	run_lth(kv, &rep);
	assert_int_equal(rep.n_rounds, 3);
	check_vs_rewind(0, &zeros, &total, &fcz, &fct);
	assert_true(fabs((double)zeros - (1.0 - pow(0.8, 3)) * total) <= 1.0);
	assert_true(fabs(rep.rounds[2] - (1.0 - pow(0.8, 3))) <= 1.0 / total);
	free_observed();
}

/* from = dense (the default): the rewind point is the dense model's own
 * training at iteration k, read from BASE.stepK.ckpt. A stand-in point
 * with weights unlike the dense model's shows where survivors come from:
 * after the rounds they equal the point's values bitwise, and the masks
 * were cut from the dense model's magnitudes in round 1. */
static void test_lth_dense_point(void **state)
{
	static const char *kv[] = { "rewind=3", "retrain_epochs=0", NULL };
	char *dir = tu_temp_dir(), base[512], path[600];
	pb_model *dense = tu_parse_model(lth_ini, "test");
	pb_model *point = tu_parse_model(lth_ini, "test");
	pb_prune_report rep;
	pb_error err = { 0 };
	size_t zeros, total, fcz, fct, same_as_dense = 0, n = 0;

	(void)state;
	tu_init_params(dense, 11);
	tu_init_params(point, 12);
	snprintf(base, sizeof base, "%s/dense", dir);
	snprintf(path, sizeof path, "%s.step3.ckpt", base);
	if (pb_checkpoint_save(point, path, &err))
		fail_msg("%s", err.msg);
	run_lth_on(dense, kv, base, 0, &rep, &err);
	check_vs_rewind(1, &zeros, &total, &fcz, &fct);
	assert_int_equal(rep.n_rounds, 3);
	assert_true(fabs((double)zeros - (1.0 - pow(0.8, 3)) * total) <= 1.0);
	/* Slot 0 holds the point from the file, not the dense weights. */
	for (int i = 0; i < pb_model_n_params(point); i++) {
		pb_param *a = pb_model_param(point, i);
		pb_param *b = pb_model_param(g_rewind, i);
		pb_param *d = pb_model_param(dense, i);

		if (a->kind != PB_PARAM_WEIGHT)
			continue;
		for (size_t j = 0; j < a->n; j++) {
			if (b->data[j] == 0.0f)
				continue;
			assert_memory_equal(&a->data[j], &b->data[j],
					    sizeof(float));
			same_as_dense += d->data[j] == b->data[j];
			n++;
		}
	}
	assert_true(n > 0 && same_as_dense < n / 10);
	free_observed();
	pb_model_free(point);
	pb_model_free(dense);
	unlink(path);
	tu_rm_tree(dir);
}

/* Without the point: a clear error before any pruning, saying how to get
 * it and, when some points were kept, which. */
static void test_lth_point_missing(void **state)
{
	static const char *kv3[] = { "rewind=3", NULL };
	static const char *kv5[] = { "rewind=5", NULL };
	char *dir = tu_temp_dir(), base[512], path[600];
	pb_model *dense = tu_parse_model(lth_ini, "test");
	pb_prune_report rep;
	pb_error err = { 0 };

	(void)state;
	tu_init_params(dense, 11);
	run_lth_on(dense, kv3, NULL, 1, &rep, &err);
	assert_non_null(strstr(err.msg, "without training points"));
	assert_non_null(strstr(err.msg, "--keep 3"));
	snprintf(base, sizeof base, "%s/dense", dir);
	snprintf(path, sizeof path, "%s.step3.ckpt", base);
	if (pb_checkpoint_save(dense, path, &err))
		fail_msg("%s", err.msg);
	pb_error_clear(&err);
	run_lth_on(dense, kv5, base, 1, &rep, &err);
	assert_non_null(strstr(err.msg, "rewind = 5 (iteration 5)"));
	assert_non_null(strstr(err.msg, "points kept (iterations): 3"));
	pb_model_free(dense);
	tu_rm_tree(dir);
}

/* lr_rewind = yes: no weight rewind (learning-rate rewinding); with no
 * retraining the survivors keep the dense values. */
static void test_lth_lr_rewind(void **state)
{
	static const char *kv[] = { "lr_rewind=yes", "retrain_epochs=0",
				    NULL };
	pb_model *dense = tu_parse_model(lth_ini, "test");
	pb_prune_report rep;
	pb_error err = { 0 };

	(void)state;
	tu_init_params(dense, 11);
	g_observe_snapshot = 0;
	run_lth_on(dense, kv, NULL, 0, &rep, &err);
	g_observe_snapshot = 1;
	for (int i = 0; i < pb_model_n_params(dense); i++) {
		pb_param *a = pb_model_param(dense, i);
		pb_param *b = pb_model_param(g_pruned, i);
		int fc = !strcmp(a->name, "fc.weight");

		for (size_t j = 0; j < a->n; j++) {
			if (fc)
				assert_true(b->data[j] != 0.0f);
			if (b->data[j] != 0.0f)
				assert_memory_equal(&a->data[j], &b->data[j],
						    sizeof(float));
		}
	}
	assert_true(fabs(rep.reached - three_global.amount) <= 1.0 / 420);
	pb_model_free(g_pruned);
	g_pruned = NULL;
	pb_model_free(dense);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lth_rewind),
		cmocka_unit_test(test_lth_last_layer),
		cmocka_unit_test(test_lth_last_layer_ranked),
		cmocka_unit_test(test_lth_skip_unreachable),
		cmocka_unit_test(test_lth_reinit),
		cmocka_unit_test(test_lth_retrain),
		cmocka_unit_test(test_lth_dense_point),
		cmocka_unit_test(test_lth_point_missing),
		cmocka_unit_test(test_lth_lr_rewind),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
