/* lth on a small net: after the rounds the surviving weights equal the
 * rewind point bitwise and the pruned ones are zero; sparsity after r
 * rounds is 1 - (1 - rate)^r within one weight, the last layer at half
 * the rate; reinit gives other survivors than rewinding; from = dense
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

/* Runs lth (wrapped) with options kv to sparsity 1 - 0.8^3, on dense
 * model m when given (else a fresh one), with the dense model's training
 * points at BASE.stepN.ckpt when points is given; returns the error code
 * (want_error) or fails the test on error. */
static int run_lth_on(pb_model *dense, const char *const *kv,
		      const char *points, int want_error,
		      pb_prune_report *rep, pb_error *err)
{
	pb_plugin *p = tu_open_plugin("lth");
	pb_pruner w = *pb_plugin_pruner(p);
	pb_model *m = dense ? dense : tu_parse_model(lth_ini, "test");
	pb_model *out = NULL;
	pb_splits sp;
	pb_recipe recipe;
	pb_target t = { .kind = PB_TARGET_SPARSITY,
			.amount = 1.0 - 0.8 * 0.8 * 0.8,
			.scope = PB_SCOPE_GLOBAL };
	pt_run_args a = { .exact = &t, .kv = kv, .dense_points = points,
			  .label = "lth", .seed = 5 };
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
		fail_msg("lth ran without the rewind point it needs");
	pb_model_free(out);
	if (!dense)
		pb_model_free(m);
	pb_splits_free(&sp);
	pb_plugin_close(p);
	return rc;
}

static void run_lth(const char *const *kv, pb_prune_report *rep)
{
	pb_error err = { 0 };

	run_lth_on(NULL, kv, NULL, 0, rep, &err);
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
	/* The last layer at half the rate. */
	assert_true(fabs((double)fcz - (1.0 - pow(0.9, 3)) * fct) <= 1.0);
	pb_model_free(g_pruned);
	pb_model_free(g_rewind);
	g_pruned = g_rewind = NULL;
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
	pb_model_free(g_pruned);
	pb_model_free(g_rewind);
	g_pruned = g_rewind = NULL;
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
	pb_model_free(g_pruned);
	pb_model_free(g_rewind);
	g_pruned = g_rewind = NULL;
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
	pb_model_free(g_pruned);
	pb_model_free(g_rewind);
	g_pruned = g_rewind = NULL;
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

		for (size_t j = 0; j < a->n; j++)
			if (b->data[j] != 0.0f)
				assert_memory_equal(&a->data[j], &b->data[j],
						    sizeof(float));
	}
	pb_model_free(g_pruned);
	g_pruned = NULL;
	pb_model_free(dense);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lth_rewind),
		cmocka_unit_test(test_lth_reinit),
		cmocka_unit_test(test_lth_retrain),
		cmocka_unit_test(test_lth_dense_point),
		cmocka_unit_test(test_lth_point_missing),
		cmocka_unit_test(test_lth_lr_rewind),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
