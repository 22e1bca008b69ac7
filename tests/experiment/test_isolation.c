/* Cells in processes of their own: a sweep whose plugins segfault, abort
 * or call exit(0) inside prune records those cells as crashed (with the
 * signal or exit status and its log's tail) and runs every other cell;
 * the table shows them as crashed; a re-run runs them again (--no-retry
 * keeps them); and the cells that ran in child processes give bitwise
 * the numbers they give in-process. */
#include "testutil.h"

#include "experiment/tiny.h"

#include "prunebench/experiment.h"
#include "prunebench/plugin.h"
#include "prunebench/table.h"


#define EXP(out) \
	"[experiment]\nname = iso\nmodel = tiny.ini\ndata = synthetic:300\n" \
	"seeds = 1\nval_size = 60\ncache = cache\nlatency = no\n" \
	"output = " out "\n" \
	"[train]\nepochs = 1\nbatch = 40\n" \
	"[finetune]\nepochs = 1\nbatch = 40\nlr = 0.01\n" \
	"[prune.magnitude]\ntargets = sparsity=0.5\nscope = global\n" \
	"[prune.segv]\nplugin = crash_segv\ntargets = sparsity=0.5\n" \
	"[prune.abort]\nplugin = crash_abort\ntargets = sparsity=0.5\n" \
	"[prune.exit]\nplugin = crash_exit\ntargets = sparsity=0.5\n" \
	"[prune.l1]\ntargets = channels=0.25\n"

/* dense, dense+ft, magnitude, the three crashing ones, l1 */
#define N_CELLS 7

static char *dir, crash_dir[4096], exec_path[4096];
static char *child_args[2];
static pb_plugin_path *sp;

static int setup(void **state)
{
	const char *b = getenv("PB_BUILDDIR");
	pb_error err = { 0 };

	(void)state;
	dir = tu_temp_dir();
	tu_write_text(dir, "tiny.ini", tiny_model);
	sp = tu_plugin_path();
	snprintf(crash_dir, sizeof crash_dir, "%s/tests/experiment/plugins/"
		 ".libs", b ? b : ".");
	snprintf(exec_path, sizeof exec_path, "%s/prunebench", b ? b : ".");
	if (access(exec_path, X_OK) || pb_plugin_path_add(sp, crash_dir,
							  &err)) {
		fprintf(stderr, "no %s or %s: %s\n", exec_path, crash_dir,
			err.msg);
		return -1;
	}
	child_args[0] = "--plugin-dir";
	child_args[1] = crash_dir;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tu_rm_tree(dir);
	pb_plugin_path_free(sp);
	return 0;
}

static pb_experiment *load(const char *name, const char *text)
{
	pb_experiment *e = NULL;
	pb_error err = { 0 };
	char path[600];

	/* A child reads the experiment from its file. */
	tu_write_text(dir, name, text);
	snprintf(path, sizeof path, "%s/%s", dir, name);
	if (pb_experiment_load(&e, path, sp, &err))
		fail_msg("%s", err.msg);
	return e;
}

static void run(pb_experiment *e, int isolated, int no_retry,
		pb_run_summary *sum)
{
	pb_run_opts o = { 0 };
	pb_error err = { 0 };

	o.threads = 2;
	o.inner_threads = 1;
	o.no_retry = no_retry;
	if (isolated) {
		o.cell_exec = exec_path;
		o.child_args = child_args;
		o.n_child_args = 2;
	}
	if (pb_experiment_run(e, &o, sum, &err))
		fail_msg("%s", err.msg);
}

static pb_record *records(const char *out, int *n)
{
	char path[700];
	pb_record *r = NULL;
	pb_error err = { 0 };
	int bad = -1;

	snprintf(path, sizeof path, "%s/%s/runs.jsonl", dir, out);
	if (pb_records_read(path, 0, &r, n, &bad, stderr, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(bad, 0);
	return r;
}

static const pb_record *last(const pb_record *r, int n, const char *method)
{
	const pb_record *found = NULL;

	for (int i = 0; i < n; i++)
		if (!strcmp(r[i].method, method))
			found = &r[i];
	return found;
}

static void test_crashes_are_recorded(void **state)
{
	pb_experiment *e = load("exp.ini", EXP("out"));
	pb_run_summary sum;
	pb_record *r;
	pb_table t;
	pb_error err = { 0 };
	int n, crashed_rows = 0, crashed_cells = 0;
	const pb_record *c;
	char *md = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	run(e, 1, 0, &sum);
	assert_int_equal(sum.total, N_CELLS);
	assert_int_equal(sum.ok, N_CELLS - 3);
	assert_int_equal(sum.crashed, 3);
	r = records("out", &n);
	assert_int_equal(n, N_CELLS);
	c = last(r, n, "segv");
	assert_int_equal(c->status, PB_CELL_CRASHED);
	/* Killed by SIGSEGV, or (under AddressSanitizer, which catches the
	 * signal) exited with its error status. */
	assert_true(strstr(c->error, "signal 11") ||
		    strstr(c->error, "exited with status"));
	assert_non_null(strstr(c->error, "last lines of cells/"));
	c = last(r, n, "abort");
	assert_int_equal(c->status, PB_CELL_CRASHED);
	assert_non_null(strstr(c->error, "signal 6"));
	c = last(r, n, "exit");
	assert_int_equal(c->status, PB_CELL_CRASHED);
	assert_non_null(strstr(c->error, "exited with status 0"));
	assert_int_equal(last(r, n, "l1")->status, PB_CELL_OK);
	assert_int_equal(last(r, n, "magnitude")->status, PB_CELL_OK);
	assert_int_equal(pb_table_build(r, n, &t, &err), 0);
	for (int i = 0; i < t.n_rows; i++)
		crashed_rows += t.rows[i].n_crashed == 1 &&
				t.rows[i].n_ok == 0;
	assert_int_equal(crashed_rows, 3);
	/* The printed table says so: each crashed method's cells show
	 * "crashed" instead of numbers, and the note below names them. */
	assert_int_equal(pb_table_write_md(&t, NULL, f = open_memstream(&md,
									 &len)), 0);
	fclose(f);
	for (const char *m = md; (m = strstr(m, "| crashed")); m++)
		crashed_cells++;
	assert_true(crashed_cells >= 3);
	assert_non_null(strstr(md, "1 of 1 cells crashed (their process "
				   "died; see cells/ID.log)"));
	free(md);
	pb_table_free(&t);
	pb_records_free(r, n);

	/* --no-retry: crashed cells stay as they are. */
	run(e, 1, 1, &sum);
	assert_int_equal(sum.skipped, N_CELLS);
	/* A re-run runs the crashed cells again (and they crash again). */
	run(e, 1, 0, &sum);
	assert_int_equal(sum.skipped, N_CELLS - 3);
	assert_int_equal(sum.crashed, 3);
	r = records("out", &n);
	assert_int_equal(n, N_CELLS + 3);
	pb_records_free(r, n);
	pb_experiment_free(e);
}

/* The cells that did not crash: bitwise what they are in-process. */
static void test_same_numbers_in_process(void **state)
{
	static const char in_proc[] = EXP("out-inproc")
		"";
	pb_experiment *e = load("exp2.ini", EXP("out-iso"));
	pb_experiment *e2;
	pb_run_summary sum;
	pb_record *a, *b;
	int na, nb, compared = 0;
	char text[sizeof in_proc + 64];

	(void)state;
	run(e, 1, 0, &sum);
	a = records("out-iso", &na);
	/* In-process without the crashing methods (they would take the
	 * test down with them). */
	snprintf(text, sizeof text, "%s", in_proc);
	*strstr(text, "[prune.segv]") = '\0';
	strcat(text, "[prune.l1]\ntargets = channels=0.25\n");
	e2 = load("exp3.ini", text);
	run(e2, 0, 0, &sum);
	b = records("out-inproc", &nb);
	for (int i = 0; i < na; i++) {
		for (int j = 0; j < nb; j++) {
			if (strcmp(a[i].id, b[j].id))
				continue;
			assert_int_equal(a[i].status, PB_CELL_OK);
			assert_true(a[i].acc_before == b[j].acc_before ||
				    (isnan(a[i].acc_before) &&
				     isnan(b[j].acc_before)));
			assert_true(a[i].acc_after == b[j].acc_after);
			assert_true(a[i].val_after == b[j].val_after);
			assert_true(a[i].nonzero == b[j].nonzero);
			assert_string_equal(a[i].dense_fingerprint,
					    b[j].dense_fingerprint);
			compared++;
		}
	}
	/* dense, dense+ft, magnitude, l1 */
	assert_int_equal(compared, 4);
	pb_records_free(a, na);
	pb_records_free(b, nb);
	pb_experiment_free(e);
	pb_experiment_free(e2);
}

/* A plugin that returns success without pruning: its cell is ok (the
 * numbers are real) but says it is far from its target, and the table
 * says so under its row. */
static void test_off_target_is_flagged(void **state)
{
	pb_experiment *e = load("exp4.ini",
		"[experiment]\nname = off\nmodel = tiny.ini\n"
		"data = synthetic:300\nseeds = 1\nval_size = 60\n"
		"cache = cache\nlatency = no\ndense_ft = no\n"
		"output = out-off\n"
		"[train]\nepochs = 1\nbatch = 40\n"
		"[finetune]\nepochs = 1\nbatch = 40\nlr = 0.01\n"
		"[prune.nothing]\nplugin = prune_nothing\n"
		"targets = sparsity=0.5\n");
	pb_run_summary sum;
	pb_record *r;
	pb_error err = { 0 };
	char path[700], *md = NULL;
	size_t len = 0;
	FILE *f;
	int n;

	(void)state;
	run(e, 0, 0, &sum);
	assert_int_equal(sum.ok, 2);
	r = records("out-off", &n);
	assert_int_equal(n, 2);
	/* The two cells ran side by side: their lines in either order. */
	{
		const pb_record *p = last(r, n, "nothing");
		const pb_record *d = last(r, n, "dense");

		assert_non_null(p);
		assert_non_null(d);
		assert_int_equal(p->status, PB_CELL_OK);
		assert_true(p->reached == 0.0);
		assert_non_null(p->warning);
		assert_non_null(strstr(p->warning, "far from the target 0.500"));
		assert_null(d->warning);
	}
	pb_records_free(r, n);
	snprintf(path, sizeof path, "%s/out-off", dir);
	f = open_memstream(&md, &len);
	assert_int_equal(pb_table_write_ex(path, NULL, f, NULL, &err), 0);
	fclose(f);
	assert_non_null(strstr(md, "1 of 1 cells reached an amount far from "
				   "the target"));
	free(md);
	pb_experiment_free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crashes_are_recorded),
		cmocka_unit_test(test_same_numbers_in_process),
		cmocka_unit_test(test_off_target_is_flagged),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
