/* Shards of a sweep (--shard I/N) and its phases (--phase dense|cells):
 * the cost rule; shards partition the cells, each cell once, the same
 * assignment for the same file whatever the order or the run, balanced
 * within the stated bound; the sweep selects exactly its shard's cells;
 * the cells phase refuses to start without the dense models; and a
 * sharded run gives bitwise the numbers and models of an unsharded one. */
#include "testutil.h"

#include "experiment/tiny.h"
#include "prunebench/experiment.h"
#include "prunebench/plugin.h"

/* D = 6 dense epochs, F = 2 fine-tune epochs. */
static const char cost_exp[] =
	"[experiment]\nname = cost\nmodel = tiny.ini\ndata = synthetic:600\n"
	"seeds = 1 2\nval_size = 100\ncache = cache\nlatency = no\n"
	"[train]\nepochs = 6\nbatch = 50\n"
	"[finetune]\nepochs = 2\nbatch = 50\n"
	"[prune.mag]\nplugin = magnitude\ntargets = sparsity=0.5\n"
	"[prune.mag-it]\nplugin = magnitude\ntargets = sparsity=0.5\n"
	"schedule = iterative:3\nround_epochs = 1\n"
	"[prune.l1-matched]\nplugin = l1\ntargets = channels=0.5\n"
	"matched_dense = yes\n"
	"[prune.l1-scratch]\nplugin = l1\ntargets = channels=0.5\n"
	"finetune = scratch\n"
	"[prune.l1-scratch-b]\nplugin = l1\ntargets = macs=0.25 macs=0.5\n"
	"finetune = scratch-b\n"
	"[prune.lth]\ntargets = sparsity=0.5 sparsity=0.9\n"
	"retrain_epochs = 3\n"
	"[prune.lth-d]\nplugin = lth\ntargets = sparsity=0.5\n"
	"[prune.slim]\nplugin = slimming\ntargets = channels=0.25\n"
	"from = dense\nsparsity_epochs = 4\n"
	"[prune.fpgm]\ntargets = channels=0.25\n";

static const struct {
	const char *prefix;
	double cost;
} expected[] = {
	{ "dense-s", 0.25 },
	{ "dense+ft-s", 0.25 + 2 },
	{ "mag-sparsity=0.5-", 0.25 + 2 },
	/* two rounds of training between three prunes, then F */
	{ "mag-it-sparsity=0.5-", 0.25 + 2 * 1 + 2 },
	/* the matched control trains as long again */
	{ "l1-matched-channels=0.5-", 0.25 + 2 * 2 },
	{ "l1-scratch-channels=0.5-", 0.25 + 6 },
	/* D x 1 / (1 - 0.25), and D x 2 (1 / (1 - 0.5), the cap) */
	{ "l1-scratch-b-macs=0.25-", 0.25 + 8 },
	{ "l1-scratch-b-macs=0.5-", 0.25 + 12 },
	/* rate 0.2: ceil(log 0.5 / log 0.8) = 4 and ceil(log 0.1 /
	 * log 0.8) = 11 rounds of retrain_epochs, then F */
	{ "lth-sparsity=0.5-", 0.25 + 4 * 3 + 2 },
	{ "lth-sparsity=0.9-", 0.25 + 11 * 3 + 2 },
	/* retrain_epochs = -1: the dense recipe's epochs */
	{ "lth-d-sparsity=0.5-", 0.25 + 4 * 6 + 2 },
	{ "slim-channels=0.25-", 0.25 + 4 + 2 },
	/* fpgm's soft_epochs, 5 by default */
	{ "fpgm-channels=0.25-", 0.25 + 5 + 2 },
};

#define EXP(name, cache) \
	"[experiment]\nname = " name "\nmodel = tiny.ini\n" \
	"data = synthetic:600\nseeds = 1 2\nval_size = 100\n" \
	"cache = " cache "\nlatency = no\n" \
	"[train]\nepochs = 1\nbatch = 50\n" \
	"[finetune]\nepochs = 1\nbatch = 50\nlr = 0.01\n" \
	"[prune.magnitude]\ntargets = sparsity=0.5 sparsity=0.8\n" \
	"scope = global\n" \
	"[prune.l1]\ntargets = channels=0.25 channels=0.5\n" \
	"[prune.l1-scratch]\nplugin = l1\ntargets = channels=0.5\n" \
	"finetune = scratch\n" \
	"[prune.lth]\ntargets = sparsity=0.5\nscope = global\n" \
	"retrain_epochs = 0.5\nrewind = 2\n"

/* 2 seeds x (dense, dense+ft, magnitude x2, l1 x2, l1-scratch, lth) */
#define N_CELLS 16

static char *dir, exec_path[4096];
static pb_plugin_path *sp;

static int setup(void **state)
{
	const char *b = getenv("PB_BUILDDIR");

	(void)state;
	dir = tu_temp_dir();
	tu_write_text(dir, "tiny.ini", tiny_model);
	sp = tu_plugin_path();
	snprintf(exec_path, sizeof exec_path, "%s/prunebench", b ? b : ".");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tu_rm_tree(dir);
	pb_plugin_path_free(sp);
	return 0;
}

static pb_experiment *load_file(const char *name, const char *text)
{
	pb_experiment *e = NULL;
	pb_error err = { 0 };
	char path[600];

	tu_write_text(dir, name, text);
	snprintf(path, sizeof path, "%s/%s", dir, name);
	if (pb_experiment_load(&e, path, sp, &err))
		fail_msg("%s", err.msg);
	return e;
}

static void set_output(pb_experiment *e, const char *out)
{
	char path[700];

	snprintf(path, sizeof path, "%s/%s", dir, out);
	free(e->output);
	e->output = strdup(path);
}

/* ---- the cost rule ------------------------------------------------------ */

static void test_cost_rule(void **state)
{
	pb_experiment *e = load_file("cost.ini", cost_exp);
	pb_cell *cells;
	int n, matched = 0;
	pb_error err = { 0 };

	(void)state;
	assert_int_equal(pb_experiment_cells(e, &cells, &n, &err), 0);
	for (int i = 0; i < n; i++) {
		size_t best = 0;
		int k = -1;

		/* The longest matching prefix ("l1-scratch-b-" over
		 * "l1-scratch-"). */
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
			fail_msg("no expected cost for %s", cells[i].id);
		if (fabs(pb_cell_cost(e, &cells[i]) - expected[k].cost) > 1e-12)
			fail_msg("%s: cost %g, expected %g", cells[i].id,
				 pb_cell_cost(e, &cells[i]), expected[k].cost);
		matched++;
	}
	assert_int_equal(matched, n);
	free(cells);
	pb_experiment_free(e);
}

/* ---- the assignment --------------------------------------------------------- */

/* Shards of the shipped full comparison: a partition, balanced within
 * the bound, and the same from a fresh load and from the cells in
 * reverse order. */
static void test_partition_balance_stable(void **state)
{
	static const int counts[] = { 1, 2, 3, 5, 8, 17, 40, 200 };
	char path[4096];
	pb_experiment *e = NULL, *e2 = NULL;
	pb_cell *cells, *cells2, *rev;
	pb_error err = { 0 };
	int n, n2;

	(void)state;
	snprintf(path, sizeof path, "%s/experiments/fmnist-vggs.ini",
		 PB_SRCDIR);
	if (pb_experiment_load(&e, path, sp, &err) ||
	    pb_experiment_load(&e2, path, sp, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(pb_experiment_cells(e, &cells, &n, &err), 0);
	assert_int_equal(pb_experiment_cells(e2, &cells2, &n2, &err), 0);
	assert_int_equal(n, n2);
	assert_true(n > 100);
	rev = malloc(sizeof *rev * (size_t)n);
	for (int i = 0; i < n; i++)
		rev[i] = cells[n - 1 - i];
	for (size_t t = 0; t < sizeof counts / sizeof counts[0]; t++) {
		const int N = counts[t];
		int *a = malloc(sizeof *a * (size_t)n);
		int *b = malloc(sizeof *b * (size_t)n);
		int *r = malloc(sizeof *r * (size_t)n);
		double *load = calloc((size_t)N, sizeof *load);
		double *sum = calloc((size_t)N, sizeof *sum);
		double total = 0, max_cost = 0, lo, hi;

		assert_int_equal(pb_experiment_shards(e, cells, n, N, a, load,
						      &err), 0);
		assert_int_equal(pb_experiment_shards(e2, cells2, n, N, b,
						      NULL, &err), 0);
		assert_int_equal(pb_experiment_shards(e, rev, n, N, r, NULL,
						      &err), 0);
		for (int i = 0; i < n; i++) {
			double c = pb_cell_cost(e, &cells[i]);

			/* Each cell in exactly one shard: a valid index. */
			assert_true(a[i] >= 0 && a[i] < N);
			sum[a[i]] += c;
			total += c;
			if (c > max_cost)
				max_cost = c;
			/* Stable: another load of the file, another order. */
			assert_string_equal(cells[i].id, cells2[i].id);
			assert_int_equal(a[i], b[i]);
			assert_int_equal(a[i], r[n - 1 - i]);
		}
		lo = hi = load[0];
		for (int s = 0; s < N; s++) {
			assert_true(fabs(sum[s] - load[s]) < 1e-9);
			lo = load[s] < lo ? load[s] : lo;
			hi = load[s] > hi ? load[s] : hi;
		}
		/* The bound of experiment.h: max - min <= the largest
		 * cell, so max <= mean + the largest cell. */
		if (hi - lo > max_cost + 1e-9)
			fail_msg("%d shards: %g to %g, largest cell %g", N, lo,
				 hi, max_cost);
		assert_true(hi <= total / N + max_cost + 1e-9);
		/* Fewer shards than cells: none empty. */
		if (N <= n)
			assert_true(lo > 0);
		free(a);
		free(b);
		free(r);
		free(load);
		free(sum);
	}
	assert_int_equal(pb_experiment_shards(e, cells, n, 0, NULL, NULL,
					      &err), PB_EINVAL);
	free(rev);
	free(cells);
	free(cells2);
	pb_experiment_free(e);
	pb_experiment_free(e2);
}

/* What the sweep selects with --shard I/N (its dry run) is shard I of
 * pb_experiment_shards: over I, every cell exactly once. */
static void test_sweep_selects_its_shard(void **state)
{
	pb_experiment *e = load_file("sel.ini", EXP("sel", "cache-sel"));
	pb_cell *cells;
	int n, *times, N = 3;
	pb_error err = { 0 };

	(void)state;
	set_output(e, "out-sel");
	assert_int_equal(pb_experiment_cells(e, &cells, &n, &err), 0);
	assert_int_equal(n, N_CELLS);
	times = calloc((size_t)n, sizeof *times);
	for (int s = 0; s < N; s++) {
		pb_run_opts o = { 0 };
		pb_run_summary sum;
		char *text = NULL, line[400];
		size_t len = 0;
		FILE *f = open_memstream(&text, &len);

		o.dry_run = 1;
		o.list = f;
		o.phase = PB_PHASE_CELLS;
		o.shard = s;
		o.n_shards = N;
		if (pb_experiment_run(e, &o, &sum, &err))
			fail_msg("%s", err.msg);
		fclose(f);
		f = fmemopen(text, len, "r");
		while (fgets(line, sizeof line, f)) {
			char state_[8], kind[16], id[200];

			if (sscanf(line, "%7s %15s %199s", state_, kind,
				   id) != 3 || strcmp(state_, "todo"))
				continue;
			for (int i = 0; i < n; i++)
				times[i] += !strcmp(cells[i].id, id);
		}
		fclose(f);
		free(text);
	}
	for (int i = 0; i < n; i++)
		if (times[i] != 1)
			fail_msg("%s listed by %d shards", cells[i].id,
				 times[i]);
	free(times);
	free(cells);
	pb_experiment_free(e);
}

/* ---- phases ----------------------------------------------------------------- */

static int cache_files(const char *cache)
{
	char cmd[800];
	FILE *p;
	int n = 0;

	snprintf(cmd, sizeof cmd, "ls %s/%s 2>/dev/null | grep -c '\\.ckpt$'",
		 dir, cache);
	p = popen(cmd, "r");
	if (!p || fscanf(p, "%d", &n) != 1)
		n = 0;
	if (p)
		pclose(p);
	return n;
}

/* --phase cells without the dense models: an error that says to run the
 * dense phase, nothing trained, nothing recorded. --seed and the dense
 * phase's shards of seeds train one seed each. */
static void test_cells_wait_for_dense(void **state)
{
	pb_experiment *e = load_file("wait.ini", EXP("wait", "cache-wait"));
	pb_run_opts o = { 0 };
	pb_run_summary sum;
	pb_error err = { 0 };
	char path[700];

	(void)state;
	set_output(e, "out-wait");
	o.threads = 2;
	o.inner_threads = 1;
	o.phase = PB_PHASE_CELLS;
	o.shard = 1;
	o.n_shards = 2;
	assert_int_not_equal(pb_experiment_run(e, &o, &sum, &err), 0);
	assert_non_null(strstr(err.msg, "--phase dense"));
	assert_non_null(strstr(err.msg, "not in the cache"));
	assert_int_equal(cache_files("cache-wait"), 0);
	snprintf(path, sizeof path, "%s/out-wait/runs.jsonl", dir);
	assert_int_not_equal(access(path, F_OK), 0);

	/* A seed the file does not have. */
	memset(&err, 0, sizeof err);
	o.phase = PB_PHASE_DENSE;
	o.n_shards = 0;
	o.has_seed = 1;
	o.seed = 7;
	assert_int_equal(pb_experiment_run(e, &o, &sum, &err), PB_EINVAL);
	assert_non_null(strstr(err.msg, "--seed 7"));
	/* --seed 2: seed 2's model (and its rewind point) only. */
	o.seed = 2;
	if (pb_experiment_run(e, &o, &sum, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(sum.dense_trained, 1);
	assert_int_equal(sum.dense_loaded, 0);
	assert_int_equal(cache_files("cache-wait"), 2);
	/* Shards of seeds: seed index 0 is shard 0 of 2; seed 2 (index 1)
	 * is shard 1, already there. */
	o.has_seed = 0;
	o.shard = 1;
	o.n_shards = 2;
	if (pb_experiment_run(e, &o, &sum, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(sum.dense_trained, 0);
	assert_int_equal(sum.dense_loaded, 1);
	o.shard = 0;
	if (pb_experiment_run(e, &o, &sum, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(sum.dense_trained, 1);
	assert_int_equal(cache_files("cache-wait"), 4);
	/* The dense phase records nothing. */
	assert_int_not_equal(access(path, F_OK), 0);
	pb_experiment_free(e);
}

/* ---- sharded = unsharded ---------------------------------------------------- */

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

static void same(double a, double b, const char *what, const char *id)
{
	if (isnan(a) && isnan(b))
		return;
	if (memcmp(&a, &b, sizeof a))
		fail_msg("%s: %s differs: %.17g vs %.17g", id, what, a, b);
}

static int same_file(const char *a, const char *b)
{
	FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
	int ca, cb, eq = fa && fb;

	while (eq) {
		ca = getc(fa);
		cb = getc(fb);
		if (ca != cb)
			eq = 0;
		if (ca == EOF || cb == EOF)
			break;
	}
	if (fa)
		fclose(fa);
	if (fb)
		fclose(fb);
	return eq;
}

/* The same experiment with separate caches: unsharded, then as a dense
 * phase and three shards (one of them running its cells in child
 * processes, as the CLI does): the same cells, each once, with bitwise
 * the same numbers, dense fingerprints and final models. */
static void test_sharded_equals_unsharded(void **state)
{
	pb_experiment *a = load_file("a.ini", EXP("same", "cache-a"));
	pb_experiment *b = load_file("b.ini", EXP("same", "cache-b"));
	pb_run_opts o = { 0 };
	pb_run_summary sum;
	pb_error err = { 0 };
	pb_record *ra, *rb;
	int na, nb;
	char *child_args[2] = { NULL, NULL };

	(void)state;
	set_output(a, "out-a");
	set_output(b, "out-b");
	o.threads = 2;
	o.inner_threads = 1;
	if (pb_experiment_run(a, &o, &sum, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(sum.ok, N_CELLS);

	o.phase = PB_PHASE_DENSE;
	if (pb_experiment_run(b, &o, &sum, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(sum.dense_trained, 2);
	for (int s = 0; s < 3; s++) {
		o.phase = PB_PHASE_CELLS;
		o.shard = s;
		o.n_shards = 3;
		/* Shard 1 as the CLI runs it: each cell in a child. */
		o.cell_exec = s == 1 && !access(exec_path, X_OK) ? exec_path :
			      NULL;
		o.child_args = child_args;
		if (pb_experiment_run(b, &o, &sum, &err))
			fail_msg("shard %d: %s", s, err.msg);
		assert_int_equal(sum.failed + sum.crashed, 0);
		assert_int_equal(sum.duplicates, 0);
	}
	ra = records("out-a", &na);
	rb = records("out-b", &nb);
	assert_int_equal(na, N_CELLS);
	assert_int_equal(nb, N_CELLS);
	for (int i = 0; i < na; i++) {
		const pb_record *x = &ra[i], *y = NULL;
		char pa[800], pbuf[800];

		for (int k = 0; k < nb; k++)
			if (!strcmp(rb[k].id, x->id)) {
				assert_null(y);   /* once */
				y = &rb[k];
			}
		if (!y)
			fail_msg("%s: not in the sharded run", x->id);
		assert_int_equal(y->status, PB_CELL_OK);
		assert_non_null(y->host);
		assert_string_equal(x->dense_fingerprint,
				    y->dense_fingerprint);
		same(x->acc_before, y->acc_before, "acc_before", x->id);
		same(x->acc_after, y->acc_after, "acc_after", x->id);
		same(x->val_after, y->val_after, "val_after", x->id);
		same(x->reached, y->reached, "reached", x->id);
		same(x->nonzero, y->nonzero, "nonzero", x->id);
		same(x->params, y->params, "params", x->id);
		same(x->macs_effective, y->macs_effective, "macs_effective",
		     x->id);
		same(x->size_compressed_mib, y->size_compressed_mib,
		     "size_compressed_mib", x->id);
		same(x->prune_epochs, y->prune_epochs, "prune_epochs", x->id);
		same(x->scratch_epochs, y->scratch_epochs, "scratch_epochs",
		     x->id);
		assert_int_equal(x->n_rounds, y->n_rounds);
		for (int k = 0; k < x->n_rounds; k++)
			same(x->rounds[k], y->rounds[k], "rounds", x->id);
		snprintf(pa, sizeof pa, "%s/out-a/cells/%s.ckpt", dir, x->id);
		snprintf(pbuf, sizeof pbuf, "%s/out-b/cells/%s.ckpt", dir,
			 x->id);
		if (!same_file(pa, pbuf))
			fail_msg("%s: the final models differ", x->id);
	}
	pb_records_free(ra, na);
	pb_records_free(rb, nb);
	pb_experiment_free(a);
	pb_experiment_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cost_rule),
		cmocka_unit_test(test_partition_balance_stable),
		cmocka_unit_test(test_sweep_selects_its_shard),
		cmocka_unit_test(test_cells_wait_for_dense),
		cmocka_unit_test(test_sharded_equals_unsharded),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
