/* Sensitivity scans and the amounts derived from them. A crafted model
 * where one layer carries the signal: every weight of fc2 matters, while
 * fc1 is an identity drowned in tiny weights that magnitude pruning
 * removes first; the scan sees it and fc2 gets the smallest amount. The
 * scan does not depend on the thread count; its CSV reads back; the
 * max-drop rule and the scaling to a goal work as documented, and what
 * they predict is what the plugin then reaches. In an experiment,
 * layers = sensitivity:D caches the scan, copies it next to the table,
 * labels the row, and its keys are checked. */
#include "testutil.h"

#include "experiment/tiny.h"

#include "prunebench/experiment.h"
#include "prunebench/plugin.h"
#include "prunebench/sensitivity.h"
#include "prunebench/table.h"
#include "prunebench/target.h"
#include "prunebench/tensor.h"

/* 8 features -> fc1 (8x8) -> fc2 (8x2), no biases, no nonlinearity. */
static const char crafted[] =
	"[model]\nname = crafted\ninput = 1x1x8\nclasses = 2\n"
	"[flat]\ntype = flatten\n"
	"[fc1]\ntype = linear\nout = 8\nbias = no\n"
	"[fc2]\ntype = linear\nout = 2\nbias = no\n";

#define N_VAL 4000

static pb_splits val;         /* only its validation split is used */
static pb_plugin *magnitude;

static pb_model *crafted_model(void);

/* Random features, labelled by the crafted model itself: it is right
 * on all of them, and a scan measures how much pruning changes its
 * answers. */
static int setup(void **state)
{
	pb_model *m = crafted_model();
	pb_error err = { 0 };

	(void)state;
	memset(&val, 0, sizeof val);
	val.val = (pb_dataset){ .n = N_VAL, .c = 1, .h = 1, .w = 8,
				.classes = 2 };
	val.val.x = pb_falloc((size_t)N_VAL * 8);
	val.val.y = malloc(N_VAL);
	tu_fill_uniform(val.val.x, (size_t)N_VAL * 8, -1.0f, 1.0f, 17);
	for (int i = 0; i < N_VAL; i++) {
		const float *z;

		if (pb_model_forward(m, val.val.x + 8 * i, 1, 0, NULL, &z,
				     &err))
			return -1;
		val.val.y[i] = z[0] > z[1] ? 0 : 1;
	}
	pb_model_free(m);
	magnitude = tu_open_plugin("magnitude");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pb_ffree(val.val.x);
	free(val.val.y);
	pb_plugin_close(magnitude);
	return 0;
}

/* fc1: the identity plus 56 weights of 0.001 (noise magnitude pruning
 * takes first). fc2: row 0 weighs the features, row 1 the same with
 * the other sign, feature j at magnitude 1 + 0.01 j in both, so each
 * pruning step takes a feature away from both rows: every weight
 * matters. */
static pb_model *crafted_model(void)
{
	pb_model *m = tu_parse_model(crafted, "crafted.ini");
	float *a = pb_model_find_param(m, "fc1.weight")->data;
	float *b = pb_model_find_param(m, "fc2.weight")->data;

	for (int i = 0; i < 8; i++)
		for (int j = 0; j < 8; j++)
			a[i * 8 + j] = i == j ? 1.0f : 0.001f;
	for (int j = 0; j < 8; j++) {
		b[j] = 1.0f + 0.01f * (float)j;
		b[8 + j] = -b[j];
	}
	return m;
}

static pb_sensitivity *scan(const pb_model *m, int threads)
{
	static const double levels[] = { 0.1, 0.3, 0.5, 0.7, 0.8, 0.9 };
	pb_sens_opts o = {
		.pruner = pb_plugin_pruner(magnitude), .n_levels = 6,
		.levels = levels, .splits = &val, .eval_batch = 256,
		.threads = threads, .stream = "test",
	};
	pb_sensitivity *s = NULL;
	pb_error err = { 0 };

	if (pb_sensitivity_scan(m, &o, &s, &err))
		fail_msg("%s", err.msg);
	return s;
}

static void test_signal_layer_gets_least(void **state)
{
	pb_model *m = crafted_model();
	pb_sensitivity *s = scan(m, 2);
	pb_target goal, t;
	pb_error err = { 0 };
	double reached;

	(void)state;
	assert_int_equal(s->n_layers, 2);
	assert_string_equal(s->layers[0].name, "fc1");
	assert_int_equal(s->layers[0].size, 64);
	assert_string_equal(s->layers[1].name, "fc2");
	assert_int_equal(s->layers[1].size, 16);
	assert_true(pb_sens_acc(s, 0, -1) == 100.0);
	/* fc1 loses next to nothing until its identity is cut (level 0.9
	 * takes 58 of 64 weights); fc2 loses a feature at the first level
	 * already. */
	for (int j = 0; j < 5; j++)
		assert_true(pb_sens_acc(s, 0, j) > 99.0);
	assert_true(pb_sens_acc(s, 0, 5) < 95.0);
	assert_true(pb_sens_acc(s, 1, 0) < 97.0);
	assert_true(pb_sens_acc(s, 1, 3) < pb_sens_acc(s, 1, 0));

	/* At most 1 point: fc1 up to 0.8, fc2 nothing. */
	assert_int_equal(pb_sensitivity_amounts(s, m, 1.0, NULL, &t, &reached,
						&err), 0);
	assert_int_equal(t.kind, PB_TARGET_SPARSITY);
	assert_int_equal(t.scope, PB_SCOPE_LAYER);
	assert_int_equal(t.n_overrides, 2);
	assert_string_equal(t.overrides[0].layer, "fc1");
	assert_true(t.overrides[0].amount == 0.8);
	assert_string_equal(t.overrides[1].layer, "fc2");
	assert_true(t.overrides[1].amount == 0.0);
	/* round(0.8 * 64) = 51 of 80 weights. */
	assert_true(fabs(reached - 51.0 / 80.0) < 1e-12);
	assert_true(t.amount == reached);

	/* Scaled to 50% of all weights: fc2 still keeps everything, fc1
	 * takes all of it (40 of 64, the smallest amount that rounds so). */
	assert_int_equal(pb_target_parse(&goal, "sparsity=0.5", &err), 0);
	assert_int_equal(pb_sensitivity_amounts(s, m, 1.0, &goal, &t, &reached,
						&err), 0);
	assert_true(t.overrides[1].amount == 0.0);
	assert_int_equal(lround(t.overrides[0].amount * 64), 40);
	assert_true(t.overrides[0].amount < 0.62);
	assert_true(fabs(reached - 0.5) < 1e-12);
	assert_true(t.amount == 0.5);
	/* More than the scaled amounts can give (fc1 at most 0.9). */
	assert_int_equal(pb_target_parse(&goal, "sparsity=0.8", &err), 0);
	assert_int_equal(pb_sensitivity_amounts(s, m, 1.0, &goal, &t, &reached,
						&err), PB_EIMPOSSIBLE);
	assert_non_null(strstr(err.msg, "allow a larger drop"));
	/* A channel goal for a weight scan is refused. */
	assert_int_equal(pb_target_parse(&goal, "macs=0.5", &err), 0);
	assert_int_equal(pb_sensitivity_amounts(s, m, 1.0, &goal, &t, &reached,
						&err), PB_EINVAL);
	pb_sensitivity_free(s);
	pb_model_free(m);
}

/* The same numbers with 1 and 2 threads; the CSV reads back to them. */
static void test_threads_and_csv(void **state)
{
	pb_model *m = crafted_model();
	pb_sensitivity *a = scan(m, 1), *b = scan(m, 2), *c = NULL;
	char *dir = tu_temp_dir(), path[600];
	pb_error err = { 0 };
	FILE *f;

	(void)state;
	assert_int_equal(a->n_layers, b->n_layers);
	assert_int_equal(a->dense_correct, b->dense_correct);
	for (int l = 0; l < a->n_layers; l++)
		assert_memory_equal(a->layers[l].correct, b->layers[l].correct,
				    sizeof a->layers[l].correct);
	snprintf(path, sizeof path, "%s/s.csv", dir);
	f = fopen(path, "w");
	assert_int_equal(pb_sensitivity_write_csv(a, "k123", f), 0);
	fclose(f);
	if (pb_sensitivity_read_csv(path, "k123", &c, &err))
		fail_msg("%s", err.msg);
	assert_string_equal(c->plugin, "magnitude");
	assert_int_equal(c->granularity, PB_GRANULARITY_WEIGHT);
	assert_int_equal(c->n_levels, a->n_levels);
	assert_memory_equal(c->levels, a->levels,
			    sizeof a->levels[0] * (size_t)a->n_levels);
	assert_int_equal(c->total, a->total);
	assert_int_equal(c->dense_correct, a->dense_correct);
	for (int l = 0; l < a->n_layers; l++) {
		assert_string_equal(c->layers[l].name, a->layers[l].name);
		assert_int_equal(c->layers[l].size, a->layers[l].size);
		assert_memory_equal(c->layers[l].correct, a->layers[l].correct,
				    sizeof a->layers[l].correct);
	}
	pb_sensitivity_free(c);
	/* A scan of something else is refused. */
	assert_int_equal(pb_sensitivity_read_csv(path, "other", &c, &err),
			 PB_EMISMATCH);
	/* A cut file is not a scan. */
	f = fopen(path, "w");
	fputs("# x\nlayer,size,amount,correct,total,val_top1_pct,drop_pt\n"
	      "fc1,64,0.1,5,10,50,0\n", f);
	fclose(f);
	assert_int_equal(pb_sensitivity_read_csv(path, NULL, &c, &err),
			 PB_EFORMAT);
	assert_non_null(strstr(err.msg, "s.csv:3"));
	pb_sensitivity_free(a);
	pb_sensitivity_free(b);
	pb_model_free(m);
	tu_rm_tree(dir);
}

static void test_levels(void **state)
{
	double v[PB_SENS_LEVELS_MAX];
	int n = 0;
	pb_error err = { 0 };

	(void)state;
	assert_int_equal(pb_sensitivity_parse_levels("0.1, 0.5 0.9", v, &n,
						     &err), 0);
	assert_int_equal(n, 3);
	assert_true(v[2] == 0.9);
	assert_int_equal(pb_sensitivity_parse_levels("0.5,0.2", v, &n, &err),
			 PB_EPARSE);
	assert_int_equal(pb_sensitivity_parse_levels("0.5,1", v, &n, &err),
			 PB_EPARSE);
	assert_int_equal(pb_sensitivity_parse_levels("", v, &n, &err),
			 PB_EPARSE);
}

/* What the amounts predict is what the plugin reaches with them: whole
 * weights for magnitude, whole channels (and MACs) for l1, on a tiny
 * model scanned on synthetic data. */
static void test_prediction_matches_plugin(void **state)
{
	static const double levels[] = { 0.25, 0.5, 0.75 };
	static const char *const names[] = { "magnitude", "l1" };
	static const char *const goals[] = { "sparsity=0.6", "macs=0.4" };
	pb_splits sp;
	pb_data_spec spec;
	pb_error err = { 0 };
	pb_model *m = tu_parse_model(tiny_model, "tiny.ini");

	(void)state;
	tu_init_params(m, 3);
	if (pb_data_spec_parse(&spec, "synthetic:300", &err) ||
	    pb_splits_load(&sp, &spec, 60, 42, &err))
		fail_msg("%s", err.msg);
	for (int k = 0; k < 2; k++) {
		pb_plugin *p = tu_open_plugin(names[k]);
		pb_sens_opts o = {
			.pruner = pb_plugin_pruner(p), .n_levels = 3,
			.levels = levels, .splits = &sp, .threads = 2,
		};
		pb_prune_setup su = { .pruner = pb_plugin_pruner(p),
				      .splits = &sp };
		pb_sensitivity *s = NULL;
		pb_prune_report rep;
		pb_target goal, t;
		pb_model *out = NULL;
		double reached;

		if (pb_sensitivity_scan(m, &o, &s, &err))
			fail_msg("%s", err.msg);
		/* A channel pruner is scanned per prunable group. */
		assert_int_equal(s->n_layers, k ? 2 : 3);
		assert_int_equal(pb_target_parse(&goal, goals[k], &err), 0);
		/* Any drop allowed: the levels' largest, scaled down. */
		if (pb_sensitivity_amounts(s, m, 100.0, &goal, &t, &reached,
					   &err))
			fail_msg("%s", err.msg);
		su.target = &t;
		if (tu_prune_run(m, &su, NULL, 1, &out, &rep, &err))
			fail_msg("%s: %s", names[k], err.msg);
		/* Channels move MACs in big steps here (4 and 8 channels,
		 * cut in proportion): the closer bracket is still far. */
		if (fabs(rep.reached - reached) > 1e-9 ||
		    fabs(reached - goal.amount) > (k ? 0.2 : 0.01))
			fail_msg("%s: predicted %g, reached %g, goal %g",
				 names[k], reached, rep.reached, goal.amount);
		pb_model_free(out);
		pb_sensitivity_free(s);
		pb_plugin_close(p);
	}
	pb_splits_free(&sp);
	pb_model_free(m);
}

/* ---- in an experiment ---------------------------------------------------- */

static const char exp_head[] =
	"[experiment]\nname = sens\nmodel = tiny.ini\ndata = synthetic:300\n"
	"cache = cache\noutput = out\nval_size = 60\nlatency = no\n"
	"dense_ft = no\n"
	"[train]\nepochs = 1\nbatch = 30\n[finetune]\nepochs = 1\nbatch = 30\n";

static int parse(const char *dir, const char *body, pb_experiment **e,
		 pb_error *err)
{
	char text[4096], path[600];
	pb_plugin_path *sp = tu_plugin_path();
	int rc;

	snprintf(text, sizeof text, "%s%s", exp_head, body);
	snprintf(path, sizeof path, "%s/e.ini", dir);
	rc = pb_experiment_parse(e, text, path, sp, err);
	pb_plugin_path_free(sp);
	return rc;
}

static void test_experiment_keys(void **state)
{
	char *dir = tu_temp_dir();
	pb_experiment *e = NULL;
	pb_error err = { 0 };

	(void)state;
	tu_write_text(dir, "tiny.ini", tiny_model);
	assert_int_equal(parse(dir, "[prune.m]\nplugin = magnitude\n"
			       "targets = sparsity=0.5\n"
			       "layers = sensitivity:1.5\n", &e, &err), 0);
	assert_true(e->methods[0].sens_drop == 1.5);
	assert_int_equal(e->methods[0].n_sens_levels, 9);
	assert_string_equal(e->methods[0].label, "m (sensitivity, 1.5 pt)");
	pb_experiment_free(e);
	assert_int_equal(parse(dir, "[prune.m]\nplugin = magnitude\n"
			       "targets = sparsity=0.5\n"
			       "layers = sensitivity\n", &e, &err), PB_EPARSE);
	assert_non_null(strstr(err.msg, "e.ini:"));
	assert_non_null(strstr(err.msg, "expected sensitivity:D"));
	assert_int_equal(parse(dir, "[prune.m]\nplugin = magnitude\n"
			       "targets = sparsity=0.5\n"
			       "sensitivity_levels = 0.2,0.4\n", &e, &err),
			 PB_EPARSE);
	assert_non_null(strstr(err.msg, "without layers = sensitivity"));
	assert_int_equal(parse(dir, "[prune.m]\nplugin = magnitude\n"
			       "targets = sparsity=0.5\n"
			       "layers = sensitivity:1\nlayer.fc = 0.5\n", &e,
			       &err), PB_EPARSE);
	assert_non_null(strstr(err.msg, "sets every layer's amount"));
	assert_int_equal(parse(dir, "[prune.m]\nplugin = magnitude\n"
			       "targets = sparsity=0.5\nquantize = int4\n",
			       &e, &err), PB_EPARSE);
	assert_non_null(strstr(err.msg, "quantize = 'int4'"));
	tu_rm_tree(dir);
}

static void test_experiment_run(void **state)
{
	char *dir = tu_temp_dir(), path[700], *text = NULL;
	pb_experiment *e = NULL;
	pb_error err = { 0 };
	pb_run_summary sum;
	pb_run_opts o = { .threads = 2 };
	pb_record *recs = NULL;
	int n = 0, found = 0;
	FILE *f;
	long len;

	(void)state;
	tu_write_text(dir, "tiny.ini", tiny_model);
	if (parse(dir, "[prune.m]\nplugin = magnitude\nquantize = int8\n"
		  "targets = sparsity=0.5\nlayers = sensitivity:5\n"
		  "sensitivity_levels = 0.3,0.6,0.9\n", &e, &err) ||
	    pb_experiment_run(e, &o, &sum, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(sum.ok, 2);
	snprintf(path, sizeof path, "%s/out/sensitivity/m-s1.csv", dir);
	f = fopen(path, "r");
	assert_non_null(f);
	fclose(f);
	snprintf(path, sizeof path, "%s/out/runs.jsonl", dir);
	if (pb_records_read(path, 0, &recs, &n, NULL, NULL, &err))
		fail_msg("%s", err.msg);
	for (int i = 0; i < n; i++) {
		if (strcmp(recs[i].method, "m"))
			continue;
		found = 1;
		assert_string_equal(recs[i].label, "m (sensitivity, 5 pt)");
		assert_true(fabs(recs[i].reached - 0.5) < 0.01);
		assert_string_equal(recs[i].quantize, "int8");
		assert_true(recs[i].acc_int8 >= 0 && recs[i].acc_int8 <= 1);
		assert_true(recs[i].size_int8_zlib_mib > 0);
		/* The log lists the amounts the cell used. */
		snprintf(path, sizeof path, "%s/out/cells/%s.log", dir,
			 recs[i].id);
		f = fopen(path, "r");
		assert_non_null(f);
		fseek(f, 0, SEEK_END);
		len = ftell(f);
		rewind(f);
		text = calloc(1, (size_t)len + 1);
		assert_int_equal(fread(text, 1, (size_t)len, f), (size_t)len);
		fclose(f);
		assert_non_null(strstr(text, "layers = sensitivity:5 for "
				       "sparsity=0.5"));
		assert_non_null(strstr(text, "  layer.conv2 = "));
		free(text);
		/* The int8 checkpoint is there. */
		snprintf(path, sizeof path, "%s/out/cells/%s.int8.ckpt", dir,
			 recs[i].id);
		f = fopen(path, "rb");
		assert_non_null(f);
		fclose(f);
	}
	assert_true(found);
	pb_records_free(recs, n);
	/* Run again: the cached scan is read, not made again (its file is
	 * the same), and nothing is left to run. */
	pb_experiment_free(e);
	if (parse(dir, "[prune.m]\nplugin = magnitude\nquantize = int8\n"
		  "targets = sparsity=0.5\nlayers = sensitivity:5\n"
		  "sensitivity_levels = 0.3,0.6,0.9\n", &e, &err) ||
	    pb_experiment_run(e, &o, &sum, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(sum.skipped, 2);
	pb_experiment_free(e);
	tu_rm_tree(dir);
}

/* activations = float: int8 weights, float activations; the record says
 * which ("int8-weights"), and the int8 column holds that model's top-1. */
static void test_activations_float(void **state)
{
	char *dir = tu_temp_dir(), path[700];
	pb_experiment *e = NULL;
	pb_error err = { 0 };
	pb_run_summary sum;
	pb_run_opts o = { .threads = 1 };
	pb_record *recs = NULL;
	int n = 0, found = 0;

	(void)state;
	tu_write_text(dir, "tiny.ini", tiny_model);
	assert_int_equal(parse(dir, "[prune.w]\nplugin = magnitude\n"
			       "targets = sparsity=0.5\nquantize = int8\n"
			       "activations = int4\n", &e, &err), PB_EPARSE);
	assert_non_null(strstr(err.msg, "e.ini:"));
	assert_non_null(strstr(err.msg, "float (int8 weights only)"));
	if (parse(dir, "[prune.w]\nplugin = magnitude\nquantize = int8\n"
		  "activations = float\ntargets = sparsity=0.5\n", &e,
		  &err) ||
	    pb_experiment_run(e, &o, &sum, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(sum.ok, 2);
	snprintf(path, sizeof path, "%s/out/runs.jsonl", dir);
	if (pb_records_read(path, 0, &recs, &n, NULL, NULL, &err))
		fail_msg("%s", err.msg);
	for (int i = 0; i < n; i++) {
		if (strcmp(recs[i].method, "w"))
			continue;
		found = 1;
		assert_string_equal(recs[i].quantize, "int8-weights");
		assert_true(recs[i].acc_int8 >= 0 && recs[i].acc_int8 <= 1);
		assert_true(recs[i].size_int8_zlib_mib > 0);
	}
	assert_true(found);
	pb_records_free(recs, n);
	pb_experiment_free(e);
	tu_rm_tree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_signal_layer_gets_least),
		cmocka_unit_test(test_threads_and_csv),
		cmocka_unit_test(test_levels),
		cmocka_unit_test(test_prediction_matches_plugin),
		cmocka_unit_test(test_experiment_keys),
		cmocka_unit_test(test_experiment_run),
		cmocka_unit_test(test_activations_float),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
