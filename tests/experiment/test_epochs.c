/* The epochs a cell trains (pb_cell_epochs), by where they go, on a
 * crafted experiment whose figures are worked out by hand below; the
 * dry run's table of them per method with what trunks save; and its
 * calibrated wall time (and none with no_calibrate). */
#include "testutil.h"

#include "experiment/tiny.h"
#include "prunebench/experiment.h"
#include "prunebench/plugin.h"

/* D = 6 dense epochs, F = 2 fine-tune epochs; 600 - 100 = 500 training
 * images at batch 50: 10 steps an epoch. */
static const char exp_text[] =
	"[experiment]\nname = ep\nmodel = tiny.ini\ndata = synthetic:600\n"
	"seeds = 1\nval_size = 100\ncache = cache\nlatency = no\n"
	"output = out\n"
	"[train]\nepochs = 6\nbatch = 50\n"
	"[finetune]\nepochs = 2\nbatch = 50\n"
	"[prune.lth]\ntargets = sparsity=0.5 sparsity=0.9\nscope = global\n"
	"retrain_epochs = 3\nmatched_dense = yes\n"
	"[prune.lth-reinit]\nplugin = lth\ntargets = sparsity=0.5\n"
	"scope = global\nretrain_epochs = 3\nreinit = yes\nstream = lth\n"
	"[prune.mag-it]\nplugin = magnitude\n"
	"targets = sparsity=0.5 sparsity=0.875\nschedule = iterative:3\n"
	"round_epochs = 1\n"
	"[prune.taylor]\ntargets = channels=0.25\n"
	"[prune.random]\ntargets = channels=0.25\nsamples = 2\n"
	"short_finetune = 20\n"
	"[prune.thinet]\ntargets = channels=0.25\nfinetune_between = 5\n"
	"[prune.snip]\ntargets = sparsity=0.5\n"
	"[prune.fpgm-hard]\nplugin = fpgm\ntargets = channels=0.25\n"
	"mode = hard\n"
	"[prune.snip-b]\nplugin = snip\ntargets = sparsity=0.5\n"
	"finetune = scratch-b\nscratch_b_cap = 1.5\n";

static const struct {
	const char *prefix;
	double dense, prune, finetune, matched, scratch, trunk, mtrunk;
} expected[] = {
	{ "dense-s", 6, 0, 0, 0, 0, 0, 0 },
	{ "dense+ft-s", 0, 0, 2, 0, 0, 0, 0 },
	/* rate 0.2: 4 rounds of 3 epochs to 0.5, 11 to 0.9; all but the
	 * last are the trunk; the matched control trains as long again */
	{ "lth-sparsity=0.5-", 0, 12, 2, 14, 0, 9, 9 },
	{ "lth-sparsity=0.9-", 0, 33, 2, 35, 0, 30, 30 },
	{ "lth-reinit-sparsity=0.5-", 0, 12, 2, 0, 0, 9, 0 },
	/* iterative:3 toward 0.875 goes 0.5, 0.75, 0.875: 0.5 lands on the
	 * trunk's first round (one round, no training), 0.875 takes two
	 * trunk rounds of one epoch */
	{ "mag-it-sparsity=0.5-", 0, 0, 2, 0, 0, 0, 0 },
	{ "mag-it-sparsity=0.875-", 0, 2, 2, 0, 0, 2, 0 },
	/* 25 events (1% of the channels each) of 10 steps: 25 epochs */
	{ "taylor-channels=0.25-", 0, 25, 2, 0, 0, 0, 0 },
	/* 2 samples of 20 steps */
	{ "random-channels=0.25-", 0, 4, 2, 0, 0, 0, 0 },
	/* the tiny model's 3 conv and linear layers: 1 pruned layer
	 * followed by another, 5 steps */
	{ "thinet-channels=0.25-", 0, 0.5, 2, 0, 0, 0, 0 },
	/* at initialisation: the dense recipe instead of the fine-tune */
	{ "snip-sparsity=0.5-", 0, 0, 0, 0, 6, 0, 0 },
	/* Scratch-B at initialisation: 6 x min(1/(1 - 0.5), the cap 1.5) */
	{ "snip-b-sparsity=0.5-", 0, 0, 0, 0, 9, 0, 0 },
	{ "fpgm-hard-channels=0.25-", 0, 0, 2, 0, 0, 0, 0 },
};

static char *dir;
static pb_plugin_path *sp;

static int setup(void **state)
{
	(void)state;
	dir = tu_temp_dir();
	tu_write_text(dir, "tiny.ini", tiny_model);
	tu_write_text(dir, "exp.ini", exp_text);
	sp = tu_plugin_path();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tu_rm_tree(dir);
	pb_plugin_path_free(sp);
	return 0;
}

static pb_experiment *load(void)
{
	pb_experiment *e = NULL;
	pb_error err = { 0 };
	char path[600];

	snprintf(path, sizeof path, "%s/exp.ini", dir);
	if (pb_experiment_load(&e, path, sp, &err))
		fail_msg("%s", err.msg);
	return e;
}

static void near(double a, double b, const char *what, const char *id)
{
	if (fabs(a - b) > 1e-9)
		fail_msg("%s: %s %g, expected %g", id, what, a, b);
}

static void test_cell_epochs(void **state)
{
	pb_experiment *e = load();
	pb_cell *cells;
	pb_error err = { 0 };
	int n, seen = 0;

	(void)state;
	assert_int_equal(pb_experiment_cells(e, &cells, &n, &err), 0);
	for (int i = 0; i < n; i++) {
		size_t best = 0;
		int k = -1;
		pb_epochs x;

		for (size_t j = 0; j < sizeof expected / sizeof expected[0];
		     j++) {
			size_t lp = strlen(expected[j].prefix);

			if (!strncmp(cells[i].id, expected[j].prefix, lp) &&
			    lp > best) {
				best = lp;
				k = (int)j;
			}
		}
		if (k < 0)
			fail_msg("no expected epochs for %s", cells[i].id);
		assert_int_equal(pb_cell_epochs(e, &cells[i], &x), 0);
		near(x.dense, expected[k].dense, "dense", cells[i].id);
		near(x.prune, expected[k].prune, "prune", cells[i].id);
		near(x.finetune, expected[k].finetune, "finetune", cells[i].id);
		near(x.matched, expected[k].matched, "matched", cells[i].id);
		near(x.scratch, expected[k].scratch, "scratch", cells[i].id);
		near(x.trunk, expected[k].trunk, "trunk", cells[i].id);
		near(x.matched_trunk, expected[k].mtrunk, "matched_trunk",
		     cells[i].id);
		/* The shard cost is the same rule, the dense training
		 * left to the dense phase. */
		near(pb_cell_cost(e, &cells[i]),
		     0.25 + pb_cell_epochs_total(&x) - x.dense, "cost",
		     cells[i].id);
		seen++;
	}
	assert_int_equal(seen, (int)(sizeof expected / sizeof expected[0]));
	free(cells);
	pb_experiment_free(e);
}

/* The dry run's text, with or without calibration. */
static char *dry_run(int calibrate)
{
	pb_experiment *e = load();
	pb_run_opts o = { 0 };
	pb_run_summary sum;
	pb_error err = { 0 };
	char *text = NULL;
	size_t len = 0;

	o.threads = 1;
	o.dry_run = 1;
	o.no_calibrate = !calibrate;
	o.list = open_memstream(&text, &len);
	assert_non_null(o.list);
	if (pb_experiment_run(e, &o, &sum, &err))
		fail_msg("%s", err.msg);
	fclose(o.list);
	pb_experiment_free(e);
	return text;
}

/* The figures of a method's row: cells to run and all, epochs to run
 * and all, saved of those to run and of all. */
static void row(const char *text, const char *name, double want[6])
{
	char pat[80];
	const char *p;
	double got[6];
	int todo, all;

	snprintf(pat, sizeof pat, "\n  %-24s ", name);
	p = strstr(text, pat);
	if (!p)
		fail_msg("no row '%s' in:\n%s", name, text);
	assert_int_equal(sscanf(p + strlen(pat), "%d/%d %lf %lf %lf %lf",
				&todo, &all, &got[2], &got[3], &got[4],
				&got[5]), 6);
	got[0] = todo;
	got[1] = all;
	for (int i = 0; i < 6; i++)
		if (fabs(got[i] - want[i]) > 0.05)
			fail_msg("row %s, figure %d: %g, expected %g", name, i,
				 got[i], want[i]);
}

static void test_dry_run(void **state)
{
	char *text = dry_run(0);

	(void)state;
	/* lth's trunk per seed: 30 epochs (0.9's rounds 1-10) computed
	 * once; 0.5's 9 and the reinit control's 9 read; the matched
	 * controls' likewise, 9 of 0.5's read. */
	row(text, "lth", (double[]){ 2, 2, 98 - 18, 98 - 18, 18, 18 });
	row(text, "lth-reinit", (double[]){ 1, 1, 14 - 9, 14 - 9, 9, 9 });
	/* mag-it's 0.5 uses none of the trunk: nothing to save */
	row(text, "mag-it", (double[]){ 2, 2, 6, 6, 0, 0 });
	row(text, "dense", (double[]){ 1, 1, 6, 6, 0, 0 });
	row(text, "snip-b", (double[]){ 1, 1, 9, 9, 0, 0 });
	row(text, "total", (double[]){ 13, 13,
		6 + 2 + 80 + 5 + 6 + 27 + 6 + 2.5 + 6 + 2 + 9,
		6 + 2 + 80 + 5 + 6 + 27 + 6 + 2.5 + 6 + 2 + 9, 27, 27 });
	/* The existing lines stay. */
	assert_non_null(strstr(text, "  draws as lth-sparsity=0.5-s1-"));
	assert_non_null(strstr(text, "  + dense, same training"));
	assert_null(strstr(text, "estimated wall time"));
	free(text);
	text = dry_run(1);
	assert_non_null(strstr(text, "calibration: tiny at batch 50, 1 "
			       "thread: "));
	{
		const char *p = strstr(text, "estimated wall time of the cells "
				       "to run: ");
		assert_non_null(p);
		/* A duration ("12s", "3m05s"), never "?" */
		p += strlen("estimated wall time of the cells to run: ");
		assert_true(*p >= '0' && *p <= '9');
	}
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cell_epochs),
		cmocka_unit_test(test_dry_run),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
