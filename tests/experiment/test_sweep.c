/* The sweep on a tiny model and synthetic data: every cell exactly once
 * in runs.jsonl with intact JSON, a re-run skips everything, a changed
 * option adds new cells beside the old lines, 2 threads give the same
 * numbers as 1 cell by cell, and a diverged cell is recorded as such. */
#include "experiment/sweep_test.h"

#include "prunebench/table.h"

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

static const pb_record *find(const pb_record *c, int n, const char *id)
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
	pb_cell *def;
	pb_record *cells, *cells2, *par;
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
		const pb_record *c = find(cells, n, def[i].id);
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
		const pb_record *c = find(cells2, n2, cells[i].id);
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
		const pb_record *a = &cells[i], *b = find(par, np, a->id);
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
	pb_records_free(cells, n);
	pb_records_free(cells2, n2);
	pb_records_free(par, np);
	pb_experiment_free(e);
	pb_experiment_free(e2);
	pb_experiment_free(ep);
}

/* A fine-tune with a huge learning rate diverges: recorded, not fatal,
 * and kept on a re-run. */
static void test_diverged(void **state)
{
	pb_experiment *e = load(EXP("out3", "1", FT_DIVERGE));
	pb_run_summary sum;
	pb_record *cells;
	int n, diverged = 0;

	(void)state;
	run(e, 2, &sum);
	assert_int_equal(sum.total, N_CELLS);
	assert_true(sum.diverged > 0);
	/* Also a gradual cell whose ramp reached a pruning point with NaN
	 * weights (before any loss showed it) diverged, not failed. */
	assert_int_equal(sum.failed, 0);
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
	pb_records_free(cells, n);
	/* Divergence is a result, not an accident: a re-run keeps the
	 * diverged cells (retrying is for failed and crashed ones). */
	run(e, 2, &sum);
	assert_int_equal(sum.skipped, N_CELLS);
	assert_int_equal(sum.diverged, 0);
	cells = read_cells("out3", &n);
	assert_int_equal(n, N_CELLS);
	pb_records_free(cells, n);
	pb_experiment_free(e);
}

/* A line that does not validate is not a record: the sweep runs its
 * cell again (the table skips the line by the same rule); a failed cell
 * runs again, unless --no-retry. */
#define EXP_SMALL(out) \
	"[experiment]\nname = small\nmodel = tiny.ini\n" \
	"data = synthetic:300\nseeds = 1\nval_size = 60\ncache = cache\n" \
	"latency = no\noutput = " out "\n" \
	"[train]\nepochs = 1\nbatch = 40\n" \
	"[finetune]\nepochs = 1\nbatch = 40\nlr = 0.01\n" \
	"[prune.l1]\ntargets = channels=0.25\n"

static void test_invalid_and_failed_lines(void **state)
{
	pb_experiment *e = load(EXP_SMALL("out-bad"));
	pb_run_summary sum;
	pb_run_opts o = { 0 };
	pb_error err = { 0 };
	pb_record *r;
	char path[700], *text, *p;
	FILE *f;
	int n;

	(void)state;
	run(e, 1, &sum);
	assert_int_equal(sum.ok, 3);
	snprintf(path, sizeof path, "%s/out-bad/runs.jsonl", dir);
	/* The l1 cell's accuracy turned into text: a wrong type. */
	text = tu_slurp(path, NULL);
	p = strstr(strstr(text, "\"kind\":\"prune\""), "\"acc_after\":");
	assert_non_null(p);
	memcpy(p + 12, "\"x\"", 3);
	f = fopen(path, "wb");
	fputs(text, f);
	fclose(f);
	free(text);
	r = read_cells_bad("out-bad", &n, 1);
	assert_int_equal(n, 2);
	pb_records_free(r, n);
	run(e, 1, &sum);
	assert_int_equal(sum.skipped, 2);
	assert_int_equal(sum.ok, 1);

	/* A failed line: run again, unless --no-retry. */
	f = fopen(path, "ab");
	fprintf(f, "{\"schema\":2,\"id\":\"dense+ft-s9-x\",\"kind\":"
		"\"dense_ft\",\"seed\":9,\"status\":\"failed\"}\n");
	fclose(f);
	text = tu_slurp(path, NULL);
	/* Mark the real dense+ft cell failed as well. */
	p = strstr(text, "\"kind\":\"dense_ft\"");
	assert_non_null(p);
	p = strstr(p, "\"status\":\"ok\"");
	assert_non_null(p);
	f = fopen(path, "wb");
	fprintf(f, "%.*sfailed%s", (int)(p + 10 - text), text, p + 12);
	fclose(f);
	free(text);
	o.threads = 1;
	o.no_retry = 1;
	assert_int_equal(pb_experiment_run(e, &o, &sum, &err), 0);
	assert_int_equal(sum.skipped, 3);
	o.no_retry = 0;
	assert_int_equal(pb_experiment_run(e, &o, &sum, &err), 0);
	assert_int_equal(sum.skipped, 2);
	assert_int_equal(sum.ok, 1);
	pb_experiment_free(e);
}

/* The cache's file names come from the key and a sanitised model name
 * (never from raw text with "../" in it), and a cache file carries the
 * key it was written for: a dense model copied over another seed's name
 * is refused and trained again, to that seed's own bits. */
static void test_cache_names_and_keys(void **state)
{
	pb_experiment *e;
	pb_run_summary sum;
	pb_record *r;
	char path[900], key1[17], key2[17], base1[900], base2[900];
	char *fp2;
	struct stat st;
	int n;

	(void)state;
	tu_write_text(dir, "trav.ini", "[model]\nname = x/../../../trav/pwn\n"
		      "input = 1x28x28\nclasses = 10\n[flatten]\n"
		      "type = flatten\n[fc]\ntype = linear\nout = 10\n");
	e = load("[experiment]\nname = trav\nmodel = trav.ini\n"
		 "data = synthetic:300\nseeds = 1\nval_size = 60\n"
		 "cache = cache-trav\nlatency = no\ndense_ft = no\n"
		 "output = out-trav\n[train]\nepochs = 1\nbatch = 40\n");
	run(e, 1, &sum);
	assert_int_equal(sum.ok, 1);
	pb_experiment_dense_key(e, 1, key1);
	snprintf(path, sizeof path, "%s/cache-trav/dense-x_.._.._.._trav_pwn-"
		 "s1-%s.ckpt", dir, key1);
	assert_int_equal(stat(path, &st), 0);
	snprintf(path, sizeof path, "%s/trav", dir);
	assert_int_not_equal(stat(path, &st), 0);
	pb_experiment_free(e);

	/* Seed 2's cache file replaced by seed 1's model. */
	e = load(EXP_SMALL("out-key"));
	run(e, 1, &sum);
	r = read_cells("out-key", &n);
	fp2 = NULL;
	pb_records_free(r, n);
	pb_experiment_free(e);
	e = load("[experiment]\nname = small\nmodel = tiny.ini\n"
		 "data = synthetic:300\nseeds = 2\nval_size = 60\n"
		 "cache = cache\nlatency = no\noutput = out-key2\n"
		 "[train]\nepochs = 1\nbatch = 40\n"
		 "[finetune]\nepochs = 1\nbatch = 40\nlr = 0.01\n"
		 "[prune.l1]\ntargets = channels=0.25\n");
	run(e, 1, &sum);
	r = read_cells("out-key2", &n);
	fp2 = strdup(r[0].dense_fingerprint);
	pb_records_free(r, n);
	pb_experiment_dense_key(e, 2, key2);
	pb_experiment_free(e);
	e = load(EXP_SMALL("out-key"));
	pb_experiment_dense_key(e, 1, key1);
	pb_experiment_free(e);
	snprintf(base1, sizeof base1, "%s/cache/dense-tiny-s1-%s.ckpt", dir,
		 key1);
	snprintf(base2, sizeof base2, "%s/cache/dense-tiny-s2-%s.ckpt", dir,
		 key2);
	{
		char *one = tu_slurp(base1, NULL);
		FILE *f;

		assert_int_equal(stat(base1, &st), 0);
		f = fopen(base2, "wb");
		fwrite(one, 1, (size_t)st.st_size, f);
		fclose(f);
		free(one);
	}
	e = load("[experiment]\nname = small\nmodel = tiny.ini\n"
		 "data = synthetic:300\nseeds = 2\nval_size = 60\n"
		 "cache = cache\nlatency = no\noutput = out-key3\n"
		 "[train]\nepochs = 1\nbatch = 40\n"
		 "[finetune]\nepochs = 1\nbatch = 40\nlr = 0.01\n"
		 "[prune.l1]\ntargets = channels=0.25\n");
	run(e, 1, &sum);
	r = read_cells("out-key3", &n);
	assert_string_equal(r[0].dense_fingerprint, fp2);
	pb_records_free(r, n);
	free(fp2);
	pb_experiment_free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sweep),
		cmocka_unit_test(test_diverged),
		cmocka_unit_test(test_invalid_and_failed_lines),
		cmocka_unit_test(test_cache_names_and_keys),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
