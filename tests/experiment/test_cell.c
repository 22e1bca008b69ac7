/* One cell's pipeline (pb_cell_run), as `prunebench prune` and the sweep
 * run it, on a tiny model and synthetic data: the same environment gives
 * the same bits; one-shot, iterative and gradual schedules reach their
 * target and record their rounds; the pruned model is saved as a pair
 * that loads back; without data nothing is trained and accuracies are
 * NaN; a plugin's failure is the cell's status and message; scratch
 * training keeps the mask. */
#include "testutil.h"

#include "experiment/tiny.h"

#include "prunebench/checkpoint.h"
#include "prunebench/experiment.h"
#include "prunebench/plugin.h"


static char *dir;
static pb_plugin_path *sp;
static pb_splits splits;
static pb_model *dense;
static pb_recipe dense_r, ft_r;

static int setup(void **state)
{
	pb_data_spec spec;
	pb_error err = { 0 };

	(void)state;
	dir = tu_temp_dir();
	sp = tu_plugin_path();
	if (pb_data_spec_parse(&spec, "synthetic:400", &err) ||
	    pb_splits_load(&splits, &spec, 80, 42, &err)) {
		fprintf(stderr, "%s\n", err.msg);
		return -1;
	}
	pb_recipe_default(&dense_r);
	dense_r.epochs = 1;
	dense_r.batch = 40;
	ft_r = dense_r;
	ft_r.lr = 0.01;
	ft_r.warmup_epochs = 0;
	dense = tu_parse_model(tiny_model, "tiny.ini");
	tu_init_params(dense, 5);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pb_model_free(dense);
	pb_splits_free(&splits);
	pb_plugin_path_free(sp);
	tu_rm_tree(dir);
	return 0;
}

/* A prune cell of `plugin` toward `target`, with every output off. */
static pb_cell_env env_for(const pb_plugin *p, const pb_target *t)
{
	pb_cell_env env = { 0 };

	env.dense = dense;
	env.splits = &splits;
	env.dense_recipe = &dense_r;
	env.finetune = &ft_r;
	env.eval_batch = 100;
	env.kind = PB_CELL_PRUNE;
	env.pruner = pb_plugin_pruner(p);
	env.target = t;
	env.stream = "test|cell|1";
	env.label = "cell";
	return env;
}

static pb_target target(const char *text)
{
	pb_target t;
	pb_error err = { 0 };

	if (pb_target_parse(&t, text, &err))
		fail_msg("%s", err.msg);
	return t;
}

static void same_model(pb_model *a, pb_model *b)
{
	assert_int_equal(pb_model_n_params(a), pb_model_n_params(b));
	for (int i = 0; i < pb_model_n_params(a); i++) {
		pb_param *p = pb_model_param(a, i), *q = pb_model_param(b, i);

		assert_int_equal(p->n, q->n);
		if (memcmp(p->data, q->data, p->n * sizeof(float)))
			fail_msg("%s differs", p->name);
	}
}

static void test_reproducible_and_saved(void **state)
{
	pb_plugin *p = tu_open_plugin("l1");
	pb_target t = target("channels=0.25");
	pb_cell_env env = env_for(p, &t);
	pb_cell_result a, b;
	pb_error err = { 0 };
	pb_model *back;
	char out[600];

	(void)state;
	snprintf(out, sizeof out, "%s/pruned", dir);
	env.out = out;
	if (pb_cell_run(&env, &a, &err))
		fail_msg("%s", err.msg);
	env.out = NULL;
	if (pb_cell_run(&env, &b, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(a.rec.status, PB_CELL_OK);
	/* 4 + 8 channels, a quarter of each: 3 + 6 left. */
	assert_true(fabs(a.rec.reached - 0.25) < 1e-12);
	assert_true(a.rec.acc_before >= 0 && a.rec.acc_after <= 1);
	assert_true(a.rec.acc_after == b.rec.acc_after);
	assert_true(a.rec.val_after == b.rec.val_after);
	assert_true(a.have_metrics && a.rec.params < a.rec.params_dense);
	assert_true(a.have_report);
	assert_int_equal(a.rep.channels_after, 9);
	same_model(a.model, b.model);
	/* The pair on disk is the cell's final model. */
	snprintf(out, sizeof out, "%s/pruned.ini", dir);
	if (pb_model_load(&back, out, &err))
		fail_msg("%s", err.msg);
	snprintf(out, sizeof out, "%s/pruned.ckpt", dir);
	if (pb_checkpoint_load(back, out, &err))
		fail_msg("%s", err.msg);
	same_model(a.model, back);
	pb_model_free(back);
	pb_cell_result_free(&a);
	pb_cell_result_free(&b);
	pb_plugin_close(p);
}

static void test_schedules(void **state)
{
	pb_plugin *p = tu_open_plugin("magnitude");
	pb_target t = target("sparsity=0.75, scope=global");
	pb_prune_plan iter = { .schedule = PB_PRUNE_ITERATIVE, .rounds = 3,
			       .round_epochs = 0.5 };
	pb_prune_plan grad = { .schedule = PB_PRUNE_GRADUAL,
			       .gradual_epochs = 1, .gradual_steps = 4 };
	pb_cell_env env = env_for(p, &t);
	pb_cell_result r;
	pb_error err = { 0 };

	(void)state;
	env.plan = &iter;
	if (pb_cell_run(&env, &r, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(r.rec.n_rounds, 3);
	assert_true(fabs(r.rec.rounds[0] - (1 - pow(0.25, 1.0 / 3))) < 0.01);
	assert_true(fabs(r.rec.reached - 0.75) < 0.002);
	/* Two trainings between the rounds, half an epoch each. */
	assert_true(r.rec.prune_epochs == 1.0);
	pb_cell_result_free(&r);

	/* Gradual: pruned along the ramp during the fine-tune (epoch 0 to
	 * 1, 5 points, the first of amount 0); no accuracy "before". */
	env.plan = &grad;
	if (pb_cell_run(&env, &r, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(r.rec.n_rounds, 4);
	assert_true(fabs(r.rec.reached - 0.75) < 0.002);
	assert_true(isnan(r.rec.acc_before));
	assert_true(r.rec.acc_after >= 0.0);
	for (int i = 1; i < r.rec.n_rounds; i++)
		assert_true(r.rec.rounds[i] > r.rec.rounds[i - 1]);
	pb_cell_result_free(&r);
	pb_plugin_close(p);
}

static void test_without_data(void **state)
{
	pb_plugin *p = tu_open_plugin("magnitude");
	pb_target t = target("sparsity=0.5");
	pb_cell_env env = env_for(p, &t);
	pb_cell_result r;
	pb_error err = { 0 };

	(void)state;
	env.splits = NULL;
	env.finetune = NULL;
	if (pb_cell_run(&env, &r, &err))
		fail_msg("%s", err.msg);
	assert_true(isnan(r.rec.acc_before) && isnan(r.rec.acc_after));
	assert_true(fabs(r.rec.reached - 0.5) < 0.01);
	assert_false(r.wrote_curve);
	pb_cell_result_free(&r);

	/* Training needs data: asked for, it is an error, not a crash. */
	env.finetune = &ft_r;
	assert_int_equal(pb_cell_run(&env, &r, &err), PB_EINVAL);
	assert_int_equal(r.rec.status, PB_CELL_FAILED);
	assert_non_null(strstr(r.rec.error, "needs data"));
	pb_cell_result_free(&r);
	pb_plugin_close(p);
}

static void test_failure_is_recorded(void **state)
{
	pb_plugin *p = tu_open_plugin("l1");
	pb_target t = target("channels=0.25");
	pb_cell_env env = env_for(p, &t);
	pb_cell_result r;
	pb_options *o = NULL;
	pb_error err = { 0 };

	(void)state;
	/* Every group keeps 100 channels: no channel can go. */
	assert_int_equal(pb_options_new(&o, env.pruner, &err), 0);
	assert_int_equal(pb_options_set_kv(o, "min_keep=100", "test", &err), 0);
	env.options = o;
	assert_true(pb_cell_run(&env, &r, &err) != 0);
	assert_int_equal(r.rec.status, PB_CELL_FAILED);
	assert_non_null(r.rec.error);
	assert_string_equal(r.rec.error, err.msg);
	assert_null(r.model);
	pb_cell_result_free(&r);
	pb_options_free(o);
	pb_plugin_close(p);
}

static void test_scratch_keeps_mask(void **state)
{
	pb_plugin *p = tu_open_plugin("magnitude");
	pb_target t = target("sparsity=0.6, scope=global");
	pb_cell_env env = env_for(p, &t);
	pb_cell_result r;
	pb_error err = { 0 };

	(void)state;
	env.kind = PB_CELL_SCRATCH;
	if (pb_cell_run(&env, &r, &err))
		fail_msg("%s", err.msg);
	/* Re-initialised and trained with the dense recipe, the pruned
	 * weights are still exactly zero. */
	assert_true(fabs(r.rec.reached - 0.6) < 0.002);
	assert_true(r.rec.time_finetune_s > 0);
	pb_cell_result_free(&r);
	pb_plugin_close(p);
}

/* Scratch-B: the dense epochs stretched by dense MACs / pruned MACs
 * (effective MACs for weight pruning), at most scratch_b_cap. */
static void test_scratch_b_budget(void **state)
{
	pb_plugin *mag = tu_open_plugin("magnitude");
	pb_plugin *l1 = tu_open_plugin("l1");
	pb_target ts = target("sparsity=0.6, scope=global");
	pb_target tc = target("channels=0.25");
	pb_cell_env env = env_for(mag, &ts);
	pb_cell_result r;
	pb_recipe four = dense_r;
	pb_error err = { 0 };

	(void)state;
	four.epochs = 4;
	env.kind = PB_CELL_SCRATCH_B;
	env.dense_recipe = &four;
	/* 40% of the weights left: 2.5 times fewer MACs, capped at 2. */
	if (pb_cell_run(&env, &r, &err))
		fail_msg("%s", err.msg);
	assert_true(r.rec.scratch_epochs == 8);
	pb_cell_result_free(&r);
	env.scratch_b_cap = 1.3;
	if (pb_cell_run(&env, &r, &err))
		fail_msg("%s", err.msg);
	assert_true(r.rec.scratch_epochs == 5);
	pb_cell_result_free(&r);
	/* l1 removing a quarter of each layer's channels: conv1 4 -> 3,
	 * conv2 8 -> 6, whose MACs fall from 28*28*4*9 + 7*7*8*4*9 and the
	 * fc's 8*10 to 28*28*3*9 + 7*7*6*3*9 and 6*10: 1.45 times fewer. */
	env = env_for(l1, &tc);
	env.kind = PB_CELL_SCRATCH_B;
	env.dense_recipe = &four;
	if (pb_cell_run(&env, &r, &err))
		fail_msg("%s", err.msg);
	assert_true(r.rec.scratch_epochs ==
		    (int)(4 * (28.0 * 28 * 4 * 9 + 7 * 7 * 8 * 4 * 9 + 80) /
			  (28.0 * 28 * 3 * 9 + 7 * 7 * 6 * 3 * 9 + 60)));
	pb_cell_result_free(&r);
	/* Scratch-E trains the dense recipe's own epochs. */
	env.kind = PB_CELL_SCRATCH;
	if (pb_cell_run(&env, &r, &err))
		fail_msg("%s", err.msg);
	assert_true(r.rec.scratch_epochs == 4);
	pb_cell_result_free(&r);
	pb_plugin_close(mag);
	pb_plugin_close(l1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reproducible_and_saved),
		cmocka_unit_test(test_schedules),
		cmocka_unit_test(test_without_data),
		cmocka_unit_test(test_failure_is_recorded),
		cmocka_unit_test(test_scratch_keeps_mask),
		cmocka_unit_test(test_scratch_b_budget),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
