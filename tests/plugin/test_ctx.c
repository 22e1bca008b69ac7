/* The context a plugin works in, through pruners defined here: channel
 * removal and snapshots, errors and the checks pb_prune_run makes, and
 * which training runs call the plugin's hooks (its own pb_ctx_train
 * only, on_train_begin once per call). */
#include "../plugins/pruner_test.h"

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
	pb_model *m = tu_parse_model(pt_two_conv_ini, "test"), *out = NULL;
	pb_error err = { 0 };
	pb_param *a, *b;
	pt_run_args half = { .target = "channels=0.5" };

	(void)state;
	pt_craft_filters(m);
	if (pt_run(m, &ctx_pruner, &half, &out, NULL, &err))
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
	pb_model *m = tu_parse_model(pt_conv_linear_ini, "test"), *out = NULL;
	pb_error err = { 0 };
	pt_run_args half = { .target = "sparsity=0.5" };

	(void)state;
	/* The plugin's message arrives, named; destroy still runs (the
	 * sanitizer build would report the leak otherwise). */
	assert_int_equal(pt_run(m, &failing_pruner, &half, &out, NULL, &err),
			 PB_EINVAL);
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

/* ---- which training calls the hooks -------------------------------------- */

typedef struct hook_counts {
	int train_begin, backward, epochs, trains_done;
	long last_step;
} hook_counts;

static hook_counts g_seen;

static int count_train_begin(void *state, pb_prune_ctx *ctx)
{
	(void)state;
	(void)ctx;
	g_seen.train_begin++;
	return 0;
}

static int count_backward(void *state, pb_prune_ctx *ctx, long step)
{
	(void)state;
	(void)ctx;
	g_seen.backward++;
	g_seen.last_step = step;
	return 0;
}

static int count_epoch(void *state, pb_prune_ctx *ctx, int epoch)
{
	(void)state;
	(void)ctx;
	(void)epoch;
	g_seen.epochs++;
	return 0;
}

/* Two trainings of its own: 3 steps, then one epoch of 4 steps (16
 * images, batch 4); a hook must not train. */
static int train_twice(void *state, pb_prune_ctx *ctx)
{
	int rc;

	(void)state;
	if ((rc = pb_ctx_train(ctx, PB_RECIPE_FINETUNE, 1, 3)))
		return rc;
	g_seen.trains_done++;
	if ((rc = pb_ctx_train(ctx, PB_RECIPE_DENSE, 1, 0)))
		return rc;
	g_seen.trains_done++;
	return 0;
}

static int train_in_hook(void *state, pb_prune_ctx *ctx, int epoch)
{
	(void)state;
	(void)epoch;
	return pb_ctx_train(ctx, PB_RECIPE_FINETUNE, 1, 1);
}

static void test_ctx_hooks_run_in_own_training(void **state)
{
	pb_pruner hooked = {
		PB_PRUNER_HEADER, .name = "hooked", .version = "0",
		.granularity = PB_GRANULARITY_WEIGHT,
		.on_train_begin = count_train_begin,
		.after_backward = count_backward,
		.after_epoch = count_epoch, .prune = train_twice,
	};
	pb_model *m = tu_parse_model(pt_conv_linear_ini, "test"), *out = NULL;
	pb_splits sp;
	pb_recipe r;
	pb_error err = { 0 };
	pt_run_args a = { .target = "sparsity=0.5", .splits = &sp,
			  .dense = &r, .finetune = &r, .seed = 1 };

	(void)state;
	tu_init_params(m, 2);
	pt_tiny_splits(&sp, 16);
	pt_plain_recipe(&r, 1, 4, 0.01);
	memset(&g_seen, 0, sizeof g_seen);
	if (pt_run(m, &hooked, &a, &out, NULL, &err))
		fail_msg("%s", err.msg);
	/* Once per pb_ctx_train, before its first step. */
	assert_int_equal(g_seen.train_begin, 2);
	assert_int_equal(g_seen.backward, 3 + 4);
	assert_int_equal(g_seen.epochs, 1 + 1);
	assert_int_equal(g_seen.trains_done, 2);
	pb_model_free(out);

	/* Training from a hook is refused, with the helper named. */
	hooked.after_epoch = train_in_hook;
	assert_int_equal(pt_run(m, &hooked, &a, &out, NULL, &err), PB_EINVAL);
	assert_non_null(strstr(err.msg, "called pb_ctx_train from a training "
			       "hook"));
	pb_splits_free(&sp);
	pb_model_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ctx_remove_and_revert),
		cmocka_unit_test(test_ctx_failure_and_checks),
		cmocka_unit_test(test_ctx_hooks_run_in_own_training),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
