/* The sweep on a tiny model and synthetic data: every cell exactly once
 * in runs.jsonl with intact JSON, a re-run skips everything, a changed
 * option adds new cells beside the old lines, 2 threads give the same
 * numbers as 1 cell by cell, and a diverged cell is recorded as such. */
#include "testutil.h"

#include "prunebench/experiment.h"
#include "prunebench/plugin.h"
#include "prunebench/table.h"

static const char tiny_model[] =
	"[model]\nname = tiny\ninput = 1x28x28\nclasses = 10\n"
	"[conv1]\ntype = conv\nout = 4\nkernel = 3\npad = 1\nbias = no\n"
	"[bn1]\ntype = bn\n[relu1]\ntype = relu\n"
	"[pool1]\ntype = maxpool\nkernel = 4\n"
	"[conv2]\ntype = conv\nout = 8\nkernel = 3\npad = 1\nbias = no\n"
	"[bn2]\ntype = bn\n[relu2]\ntype = relu\n"
	"[pool2]\ntype = maxpool\nkernel = 7\n"
	"[flatten]\ntype = flatten\n[fc]\ntype = linear\nout = 10\n";

#define EXP(out, norm, ft) \
	"[experiment]\nname = tiny\nmodel = tiny.ini\ndata = synthetic:600\n" \
	"seeds = 1 2\nval_size = 100\ncache = cache\nlatency = no\n" \
	"output = " out "\n" \
	"[train]\nepochs = 1\nbatch = 50\n" \
	"[finetune]\nbatch = 50\n" ft "\n" \
	"[prune.magnitude]\ntargets = sparsity=0.5 sparsity=0.8\n" \
	"scope = global\n" \
	"[prune.l1]\ntargets = channels=0.25\nnorm = " norm "\n" \
	"[prune.mag-grad]\nplugin = magnitude\ntargets = sparsity=0.7\n" \
	"schedule = gradual\ngradual_steps = 3\ngradual_epochs = 1\n"

#define FT_OK "epochs = 1\nlr = 0.01"
/* Weights grow 99-fold per step until the loss is inf or NaN. */
#define FT_DIVERGE "epochs = 4\nlr = 100\nweight_decay = 1\ndecay_bn_bias = yes"

/* 2 seeds x (dense, dense+ft, magnitude x2, l1, mag-grad) */
#define N_CELLS 12

static char *dir;
static pb_plugin_path *sp;

static int setup(void **state)
{
	(void)state;
	dir = tu_temp_dir();
	tu_write_text(dir, "tiny.ini", tiny_model);
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

static pb_experiment *load(const char *text)
{
	pb_experiment *e = NULL;
	pb_error err = { 0 };
	char path[600];

	snprintf(path, sizeof path, "%s/exp.ini", dir);
	if (pb_experiment_parse(&e, text, path, sp, &err))
		fail_msg("%s", err.msg);
	return e;
}

static void run(pb_experiment *e, int threads, pb_run_summary *sum)
{
	pb_run_opts o = { 0 };
	pb_error err = { 0 };

	o.threads = threads;
	o.inner_threads = 1;
	if (pb_experiment_run(e, &o, sum, &err))
		fail_msg("%s", err.msg);
}

/* Reads out/runs.jsonl; every line must parse. */
static pb_cell *read_cells(const char *out, int *n)
{
	char path[700];
	pb_cell *cells = NULL;
	pb_error err = { 0 };
	int bad = -1;

	snprintf(path, sizeof path, "%s/%s/runs.jsonl", dir, out);
	if (pb_cells_read(path, &cells, n, &bad, stderr, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(bad, 0);
	return cells;
}

static const pb_cell *find(const pb_cell *c, int n, const char *id)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(c[i].id, id))
			return &c[i];
	return NULL;
}

static void same(double a, double b, const char *what, const char *id)
{
	if (isnan(a) && isnan(b))
		return;
	if (a != b)
		fail_msg("%s: %s differs: %.17g vs %.17g", id, what, a, b);
}

static void test_sweep(void **state)
{
	pb_experiment *e = load(EXP("out1", "1", FT_OK));
	pb_experiment *e2, *ep;
	pb_run_summary sum;
	pb_exp_cell *def;
	pb_cell *cells, *cells2, *par;
	int n, n2, np, n_def;
	pb_error err = { 0 };

	(void)state;
	/* Serial: every cell once, all ok, intact lines. */
	run(e, 1, &sum);
	assert_int_equal(sum.total, N_CELLS);
	assert_int_equal(sum.ok, N_CELLS);
	cells = read_cells("out1", &n);
	assert_int_equal(n, N_CELLS);
	assert_int_equal(pb_experiment_cells(e, &def, &n_def, &err), 0);
	assert_int_equal(n_def, N_CELLS);
	for (int i = 0; i < n_def; i++) {
		const pb_cell *c = find(cells, n, def[i].id);
		assert_non_null(c);
		assert_int_equal(c->status, PB_CELL_OK);
		assert_int_equal(c->kind, def[i].kind);
		assert_true(c->acc_after >= 0.0 && c->acc_after <= 1.0);
		assert_true(c->params > 0);
		for (int j = i + 1; j < n; j++)
			assert_string_not_equal(cells[i].id, cells[j].id);
	}
	free(def);

	/* Re-run: nothing to do. */
	run(e, 1, &sum);
	assert_int_equal(sum.skipped, N_CELLS);
	assert_int_equal(sum.ok + sum.failed + sum.diverged, 0);

	/* One option changed: new l1 cells, old lines kept. */
	e2 = load(EXP("out1", "2", FT_OK));
	run(e2, 1, &sum);
	assert_int_equal(sum.ok, 2);
	assert_int_equal(sum.skipped, N_CELLS - 2);
	cells2 = read_cells("out1", &n2);
	assert_int_equal(n2, N_CELLS + 2);
	for (int i = 0; i < n; i++) {
		const pb_cell *c = find(cells2, n2, cells[i].id);
		assert_non_null(c);
		same(c->acc_after, cells[i].acc_after, "acc_after", c->id);
	}

	/* Parallel (2 cells at once, 1 thread inside each) = serial. */
	ep = load(EXP("out2", "1", FT_OK));
	run(ep, 2, &sum);
	assert_int_equal(sum.ok, N_CELLS);
	par = read_cells("out2", &np);
	assert_int_equal(np, N_CELLS);
	for (int i = 0; i < n; i++) {
		const pb_cell *a = &cells[i], *b = find(par, np, a->id);
		assert_non_null(b);
		assert_int_equal(b->seed, a->seed);
		same(a->acc_before, b->acc_before, "acc_before", a->id);
		same(a->acc_after, b->acc_after, "acc_after", a->id);
		same(a->val_after, b->val_after, "val_after", a->id);
		same(a->reached, b->reached, "reached", a->id);
		same(a->params, b->params, "params", a->id);
		same(a->nonzero, b->nonzero, "nonzero", a->id);
		same(a->macs, b->macs, "macs", a->id);
		same(a->macs_effective, b->macs_effective, "macs_eff", a->id);
		same(a->size_compressed_mib, b->size_compressed_mib,
		     "size_compressed", a->id);
	}
	pb_cells_free(cells, n);
	pb_cells_free(cells2, n2);
	pb_cells_free(par, np);
	pb_experiment_free(e);
	pb_experiment_free(e2);
	pb_experiment_free(ep);
}

/* A fine-tune with a huge learning rate diverges: recorded, not fatal. */
static void test_diverged(void **state)
{
	pb_experiment *e = load(EXP("out3", "1", FT_DIVERGE));
	pb_run_summary sum;
	pb_cell *cells;
	int n, diverged = 0;

	(void)state;
	run(e, 2, &sum);
	assert_int_equal(sum.total, N_CELLS);
	assert_true(sum.diverged > 0);
	cells = read_cells("out3", &n);
	assert_int_equal(n, N_CELLS);
	for (int i = 0; i < n; i++) {
		if (cells[i].kind == PB_CELL_DENSE) {
			assert_int_equal(cells[i].status, PB_CELL_OK);
			continue;
		}
		if (cells[i].status == PB_CELL_DIVERGED) {
			diverged++;
			assert_non_null(cells[i].error);
			assert_non_null(strstr(cells[i].error, "diverged"));
		}
	}
	assert_int_equal(diverged, sum.diverged);
	pb_cells_free(cells, n);
	pb_experiment_free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sweep),
		cmocka_unit_test(test_diverged),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
