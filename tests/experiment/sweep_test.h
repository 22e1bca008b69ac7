/* What the sweep's test programs share (test_sweep.c, test_sweep_lth.c):
 * a temporary folder with tiny.ini, the plugin path, and loading,
 * running and reading back an experiment there. */
#ifndef PB_TESTS_EXPERIMENT_SWEEP_TEST_H
#define PB_TESTS_EXPERIMENT_SWEEP_TEST_H

#include "testutil.h"

#include "experiment/exp_fixture.h"

#include "prunebench/experiment.h"
#include "prunebench/plugin.h"


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

/* Reads out/runs.jsonl; `bad` lines must not parse. */
static pb_record *read_cells_bad(const char *out, int *n, int bad_lines)
{
	char path[700];
	pb_record *cells = NULL;
	pb_error err = { 0 };
	int bad = -1;

	snprintf(path, sizeof path, "%s/%s/runs.jsonl", dir, out);
	if (pb_records_read(path, 0, &cells, n, &bad, NULL, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(bad, bad_lines);
	return cells;
}

/* Reads out/runs.jsonl; every line must parse. */
static pb_record *read_cells(const char *out, int *n)
{
	return read_cells_bad(out, n, 0);
}

#endif
