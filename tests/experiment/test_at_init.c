/* The runner's path for a plugin that prunes at initialisation (snip),
 * on the tiny model and synthetic data. The dense recipe has lr = 0, so
 * training with it leaves every weight as it starts, and the fine-tune
 * has a real rate, so a fine-tuned weight moves: a survivor equal to the
 * seed's initial weight, bit for bit, shows both that the plugin pruned
 * the initial model and that the pruned model trained with the dense
 * recipe. The dense model given to the cell is another model, so
 * pruning it would show too.
 *
 * One cell (pb_cell_run): survivors are the seed's initial weights, the
 * record says at_init and the dense recipe's epochs, acc_before is the
 * pruned untrained network's, the curve has the dense recipe's epochs;
 * the scratch control prunes alike and re-initialises; an environment
 * without the seed, an iterative schedule or the matched control is
 * refused. The sweep, end to end: with a dense model planted in the
 * cache (not the seed's training), the snip cell's survivors are the
 * dense run's own iteration 0 (kept for an lth rewind = 0 beside it),
 * runs.jsonl and the table mark the row, the experiment file refuses
 * what cannot apply. */
#include "testutil.h"

#include "experiment/exp_fixture.h"

#include "prunebench/checkpoint.h"
#include "prunebench/experiment.h"
#include "prunebench/plugin.h"
#include "prunebench/table.h"


/* The model seed's dense training starts from: the dense cache's draw. */
static pb_model *seed_init(unsigned long seed, pb_init_kind kind)
{
	pb_model *m = tu_parse_model(tiny_model, "tiny.ini");
	gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
	pb_error err = { 0 };

	gsl_rng_set(r, seed);
	if (pb_model_init(m, r, kind, &err))
		fail_msg("%s", err.msg);
	gsl_rng_free(r);
	return m;
}

/* Every conv and linear weight of got is 0 or exactly want's; returns
 * the fraction that is 0. */
static double survivors_are(pb_model *got, pb_model *want)
{
	size_t zeros = 0, total = 0;

	for (int i = 0; i < pb_model_n_params(got); i++) {
		const pb_param *g = pb_model_param(got, i);
		const pb_param *w = pb_model_param(want, i);

		if (g->kind != PB_PARAM_WEIGHT)
			continue;
		for (size_t j = 0; j < g->n; j++) {
			if (g->data[j] == 0.0f)
				zeros++;
			else if (g->data[j] != w->data[j])
				fail_msg("%s[%zu] is %.9g, the initial weight "
					 "%.9g", g->name, j, g->data[j],
					 w->data[j]);
		}
		total += g->n;
	}
	return (double)zeros / (double)total;
}

/* Test accuracy of `init` with got's zeros applied: the pruned,
 * untrained network. */
static double pruned_init_acc(pb_model *init, pb_model *got,
			      const pb_dataset *test, int batch)
{
	pb_model *m = NULL;
	pb_error err = { 0 };
	double acc, loss;

	assert_int_equal(pb_model_clone(&m, init, &err), 0);
	for (int i = 0; i < pb_model_n_params(m); i++) {
		pb_param *p = pb_model_param(m, i);

		if (p->kind != PB_PARAM_WEIGHT)
			continue;
		for (size_t j = 0; j < p->n; j++)
			if (pb_model_param(got, i)->data[j] == 0.0f)
				p->data[j] = 0.0f;
	}
	if (pb_evaluate(m, test, batch, &acc, &loss, &err))
		fail_msg("%s", err.msg);
	pb_model_free(m);
	return acc;
}

/* Epoch rows of a training curve (a header line, then one per epoch). */
static int curve_rows(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[4096];
	int n = 0;

	assert_non_null(f);
	while (fgets(line, sizeof line, f))
		n++;
	fclose(f);
	return n - 1;
}

/* ---- one cell ------------------------------------------------------------- */

typedef struct cell_fixture {
	pb_splits splits;
	pb_model *dense;
	pb_recipe dense_r, ft_r;
	pb_plugin *snip;
	pb_target target;
	pb_cell_env env;
	char files[600];
} cell_fixture;

static void cell_fixture_init(cell_fixture *f)
{
	pb_data_spec spec;
	pb_error err = { 0 };

	memset(f, 0, sizeof *f);
	if (pb_data_spec_parse(&spec, "synthetic:400", &err) ||
	    pb_splits_load(&f->splits, &spec, 80, 42, &err))
		fail_msg("%s", err.msg);
	pb_recipe_default(&f->dense_r);
	f->dense_r.epochs = 2;
	f->dense_r.batch = 40;
	f->dense_r.lr = 0.0;
	f->dense_r.init = PB_INIT_TORCH_DEFAULT;
	f->ft_r = f->dense_r;
	f->ft_r.epochs = 1;
	f->ft_r.lr = 0.1;
	f->ft_r.warmup_epochs = 0;
	/* Not the seed's initial model: what a trained one would be. */
	f->dense = tu_parse_model(tiny_model, "tiny.ini");
	tu_init_params(f->dense, 5);
	f->snip = tu_open_plugin("snip");
	if (pb_target_parse(&f->target, "sparsity=0.5, scope=global", &err))
		fail_msg("%s", err.msg);
	snprintf(f->files, sizeof f->files, "%s/atinit", dir);
	f->env = (pb_cell_env){
		.dense = f->dense, .splits = &f->splits,
		.dense_recipe = &f->dense_r, .finetune = &f->ft_r,
		.eval_batch = 100, .kind = PB_CELL_PRUNE,
		.pruner = pb_plugin_pruner(f->snip), .target = &f->target,
		.stream = "test|atinit|1", .seed = 1, .has_seed = 1,
		.files = f->files, .label = "atinit",
	};
}

static void cell_fixture_free(cell_fixture *f)
{
	pb_plugin_close(f->snip);
	pb_model_free(f->dense);
	pb_splits_free(&f->splits);
}

static void test_cell_prunes_the_initial_model(void **state)
{
	cell_fixture f;
	pb_cell_result r, s;
	pb_error err = { 0 };
	pb_model *init;
	char csv[700];

	(void)state;
	cell_fixture_init(&f);
	init = seed_init(1, PB_INIT_TORCH_DEFAULT);
	if (pb_cell_run(&f.env, &r, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(r.rec.status, PB_CELL_OK);
	/* Pruned from the seed's initial weights (not the dense model's),
	 * trained with the dense recipe (lr 0: unchanged), not
	 * fine-tuned (lr 0.1 would have moved them). */
	assert_true(fabs(survivors_are(r.model, init) - 0.5) < 0.01);
	assert_true(fabs(r.rec.reached - 0.5) < 0.01);
	assert_int_equal(r.rec.at_init, 1);
	assert_true(r.rec.scratch_epochs == 2.0);
	assert_true(r.rec.prune_epochs == 0.0);
	assert_true(r.have_report && r.rep.reached > 0.49);
	/* acc_before: the pruned network before any training. */
	assert_true(r.rec.acc_before == pruned_init_acc(init, r.model,
							&f.splits.test, 100));
	snprintf(csv, sizeof csv, "%s.csv", f.files);
	assert_true(r.wrote_curve);
	assert_int_equal(curve_rows(csv), 2);

	/* The scratch control: the same pruning (same stream), then a
	 * fresh initialisation of the survivors, trained the same way. */
	f.env.kind = PB_CELL_SCRATCH;
	if (pb_cell_run(&f.env, &s, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(s.rec.at_init, 1);
	assert_true(s.rec.scratch_epochs == 2.0);
	for (int i = 0; i < pb_model_n_params(r.model); i++) {
		const pb_param *a = pb_model_param(r.model, i);
		const pb_param *b = pb_model_param(s.model, i);
		size_t same = 0;

		if (a->kind != PB_PARAM_WEIGHT)
			continue;
		for (size_t j = 0; j < a->n; j++) {
			assert_int_equal(a->data[j] == 0.0f,
					 b->data[j] == 0.0f);
			same += a->data[j] != 0.0f && a->data[j] == b->data[j];
		}
		assert_int_equal(same, 0);
	}
	pb_cell_result_free(&s);
	pb_cell_result_free(&r);
	pb_model_free(init);
	cell_fixture_free(&f);
}

static void expect_refused(cell_fixture *f, const char *what)
{
	pb_cell_result r;
	pb_error err = { 0 };

	assert_int_equal(pb_cell_run(&f->env, &r, &err), PB_EINVAL);
	assert_int_equal(r.rec.status, PB_CELL_FAILED);
	if (!strstr(r.rec.error, what))
		fail_msg("'%s' not in: %s", what, r.rec.error);
	pb_cell_result_free(&r);
}

static void test_cell_refusals(void **state)
{
	cell_fixture f;
	pb_prune_plan iter = { .schedule = PB_PRUNE_ITERATIVE, .rounds = 2,
			       .round_epochs = 1 };

	(void)state;
	cell_fixture_init(&f);
	f.env.has_seed = 0;
	expect_refused(&f, "needs the seed the dense model was trained from");
	f.env.has_seed = 1;
	f.env.plan = &iter;
	expect_refused(&f, "use schedule = oneshot");
	f.env.plan = NULL;
	f.env.matched = 1;
	expect_refused(&f, "remove matched_dense");
	cell_fixture_free(&f);
}

/* ---- the sweep ------------------------------------------------------------ */

#define EXP_HEAD \
	"[experiment]\nname = atinit\nmodel = tiny.ini\n" \
	"data = synthetic:300\nseeds = 1\nval_size = 60\n" \
	"cache = cache-ai\nlatency = no\ndense_ft = no\noutput = out-ai\n" \
	"[train]\nepochs = 2\nbatch = 40\nlr = 0\nwarmup = 0\n" \
	"init = torch_default\n" \
	"[finetune]\nepochs = 1\nbatch = 40\nlr = 0.1\n"

static const char exp_text[] = EXP_HEAD
	"[prune.snip]\ntargets = sparsity=0.5\nscope = global\nbatch = 40\n"
	/* Keeps the dense run's iteration 0, to compare with. */
	"[prune.lth]\ntargets = sparsity=0.2\nscope = global\nrewind = 0\n"
	"retrain_epochs = 0\n";

static pb_experiment *load(const char *text, pb_error *err)
{
	pb_experiment *e = NULL;
	char path[600];

	snprintf(path, sizeof path, "%s/exp.ini", dir);
	pb_experiment_parse(&e, text, path, sp, err);
	return e;
}

static pb_model *load_pair(const char *base)
{
	char ini[1000], ckpt[1000];
	pb_model *m = NULL;
	pb_error err = { 0 };

	snprintf(ini, sizeof ini, "%s.ini", base);
	snprintf(ckpt, sizeof ckpt, "%s.ckpt", base);
	if (pb_model_load(&m, ini, &err) || pb_checkpoint_load(m, ckpt, &err))
		fail_msg("%s", err.msg);
	return m;
}

static void same_params(pb_model *a, pb_model *b, const char *what)
{
	for (int i = 0; i < pb_model_n_params(a); i++)
		if (memcmp(pb_model_param(a, i)->data,
			   pb_model_param(b, i)->data,
			   pb_model_param(a, i)->n * sizeof(float)))
			fail_msg("%s: %s differs", what,
				 pb_model_param(a, i)->name);
}

static void test_sweep_cell(void **state)
{
	pb_experiment *e;
	pb_error err = { 0 };
	pb_run_opts o = { 0 };
	pb_run_summary sum;
	pb_model *planted, *step0, *init, *cell, *cached;
	pb_record *cells = NULL;
	const pb_record *snip = NULL;
	pb_splits splits;
	pb_data_spec spec;
	char key[17], base[700], tag[96], path[900], *lines;
	int n;

	(void)state;
	e = load(exp_text, &err);
	if (!e)
		fail_msg("%s", err.msg);
	/* A dense model in the cache that is not the seed's training:
	 * pruning it would show in every survivor. */
	pb_experiment_dense_key(e, 1, key);
	snprintf(path, sizeof path, "%s/cache-ai", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(base, sizeof base, "%s/cache-ai/dense-tiny-s1-%s", dir, key);
	snprintf(path, sizeof path, "%s.ckpt", base);
	snprintf(tag, sizeof tag, "prunebench dense model %s seed 1", key);
	planted = tu_parse_model(tiny_model, "tiny.ini");
	tu_init_params(planted, 77);
	if (pb_checkpoint_save_tag(planted, path, tag, &err))
		fail_msg("%s", err.msg);

	o.threads = 1;
	o.inner_threads = 1;
	if (pb_experiment_run(e, &o, &sum, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(sum.failed + sum.crashed + sum.diverged, 0);
	/* The planted model was the dense model (not trained again). */
	cached = tu_parse_model(tiny_model, "tiny.ini");
	if (pb_checkpoint_load(cached, path, &err))
		fail_msg("%s", err.msg);
	same_params(cached, planted, "the cached dense model");
	/* The dense run's own iteration 0, which lth's rewind = 0 had the
	 * cache make, is the seed's draw with the dense recipe's init. */
	step0 = tu_parse_model(tiny_model, "tiny.ini");
	snprintf(path, sizeof path, "%s.step0.ckpt", base);
	if (pb_checkpoint_load(step0, path, &err))
		fail_msg("%s", err.msg);
	init = seed_init(1, PB_INIT_TORCH_DEFAULT);
	same_params(step0, init, "iteration 0");

	snprintf(path, sizeof path, "%s/out-ai/runs.jsonl", dir);
	if (pb_records_read(path, 0, &cells, &n, NULL, NULL, &err))
		fail_msg("%s", err.msg);
	for (int i = 0; i < n; i++)
		if (!strcmp(cells[i].method, "snip"))
			snip = &cells[i];
		else
			assert_int_equal(cells[i].at_init, 0);
	assert_non_null(snip);
	assert_int_equal(snip->status, PB_CELL_OK);
	assert_int_equal(snip->kind, PB_CELL_PRUNE);
	assert_int_equal(snip->at_init, 1);
	assert_true(snip->scratch_epochs == 2.0);
	/* The survivors are iteration 0's weights, untouched by the
	 * dense recipe's lr 0 and never fine-tuned. */
	snprintf(path, sizeof path, "%s/out-ai/cells/%s", dir, snip->id);
	cell = load_pair(path);
	assert_true(fabs(survivors_are(cell, step0) - 0.5) < 0.01);
	if (pb_data_spec_parse(&spec, "synthetic:300", &err) ||
	    pb_splits_load(&splits, &spec, 60, e->split_seed, &err))
		fail_msg("%s", err.msg);
	assert_true(snip->acc_before ==
		    pruned_init_acc(step0, cell, &splits.test,
				    e->dense.eval_batch));
	pb_splits_free(&splits);
	snprintf(path, sizeof path, "%s/out-ai/%s", dir, snip->curve);
	assert_int_equal(curve_rows(path), 2);
	/* The line says so; so do the table's row and its footnote. */
	snprintf(path, sizeof path, "%s/out-ai/runs.jsonl", dir);
	{
		FILE *f = fopen(path, "r");
		size_t len = 0;
		char *text = NULL;
		FILE *mem = open_memstream(&text, &len);
		int ch;

		assert_non_null(f);
		while ((ch = fgetc(f)) != EOF)
			fputc(ch, mem);
		fclose(f);
		fclose(mem);
		lines = text;
	}
	assert_non_null(strstr(lines, "\"at_init\":true"));
	free(lines);
	{
		pb_table t;
		char *md = NULL;
		size_t len = 0;
		FILE *mem;
		int found = 0;

		if (pb_table_build(cells, n, &t, &err))
			fail_msg("%s", err.msg);
		for (int i = 0; i < t.n_rows; i++) {
			if (!strcmp(t.rows[i].label, "snip (at init)")) {
				found++;
				assert_int_equal(t.rows[i].at_init, 1);
			}
			if (!strcmp(t.rows[i].label, "lth"))
				assert_int_equal(t.rows[i].at_init, 0);
		}
		assert_int_equal(found, 1);
		mem = open_memstream(&md, &len);
		assert_int_equal(pb_table_write_md(&t, NULL, mem), 0);
		fclose(mem);
		assert_non_null(strstr(md, "| snip (at init) |"));
		assert_non_null(strstr(md, "(at init): pruned at "
				       "initialisation"));
		free(md);
		pb_table_free(&t);
	}
	pb_records_free(cells, n);
	pb_model_free(cell);
	pb_model_free(init);
	pb_model_free(step0);
	pb_model_free(cached);
	pb_model_free(planted);
	pb_experiment_free(e);
}

/* What cannot apply to a plugin pruning at initialisation is refused
 * when the file is read, with its section's line. */
static void test_experiment_refusals(void **state)
{
	pb_error err = { 0 };
	pb_experiment *e;
	char where[128];
	int section_line = 1;

	(void)state;
	for (const char *c = EXP_HEAD; *c; c++)
		section_line += *c == '\n';
	e = load(EXP_HEAD "[prune.snip]\ntargets = sparsity=0.5\n"
		 "schedule = iterative:3\n", &err);
	assert_null(e);
	snprintf(where, sizeof where, "exp.ini:%d: [prune.snip]: plugin "
		 "'snip' prunes at initialisation", section_line);
	if (!strstr(err.msg, where))
		fail_msg("'%s' not in: %s", where, err.msg);
	assert_non_null(strstr(err.msg, "use schedule = oneshot"));
	e = load(EXP_HEAD "[prune.snip]\ntargets = sparsity=0.5\n"
		 "matched_dense = yes\n", &err);
	assert_null(e);
	assert_non_null(strstr(err.msg, "remove matched_dense"));
	/* The scratch controls do apply. */
	e = load(EXP_HEAD "[prune.snip]\ntargets = sparsity=0.5\n"
		 "finetune = scratch-b\n", &err);
	if (!e)
		fail_msg("%s", err.msg);
	pb_experiment_free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cell_prunes_the_initial_model),
		cmocka_unit_test(test_cell_refusals),
		cmocka_unit_test(test_sweep_cell),
		cmocka_unit_test(test_experiment_refusals),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
