/* Trunks shared across targets (issue 17), on a tiny model and
 * synthetic data, for lth (its own rounds, pb_ctx_trunk_*) and for
 * schedule = iterative (the runner's rounds along the method's highest
 * target): a cell's numbers and final model are the same bits whether
 * it computed its trunk rounds itself or read them from the cache
 * another target's cell wrote, whether 1 or 2 cells run at once, and
 * when a cached round was corrupted (it is computed again, not
 * trusted). The matched-budget control goes through the same trunk. */
#include "testutil.h"

#include "experiment/exp_fixture.h"

#include "prunebench/experiment.h"
#include "prunebench/plugin.h"

/* A: the lower target, B the higher. lth at rate 0.2: A = 0.36 takes 2
 * rounds (trunk round 1), B = 0.59 takes 4 (trunk rounds 1-3).
 * Iterative:3 toward 0.875 goes 0.5, 0.75, 0.875; A = 0.6 takes trunk
 * round 1, then one round to 0.6. */
#define EXP(name, cache, lth_targets, it_targets) \
	"[experiment]\nname = trunk\nmodel = tiny.ini\n" \
	"data = synthetic:300\nseeds = 1\nval_size = 60\n" \
	"cache = " cache "\nlatency = no\ndense_ft = no\n" \
	"output = " name "\n" \
	"[train]\nepochs = 2\nbatch = 40\n" \
	"[finetune]\nepochs = 1\nbatch = 40\nlr = 0.01\n" \
	"[prune.lth]\ntargets = " lth_targets "\nscope = global\n" \
	"rewind = 3\nretrain_epochs = 0.5\nmatched_dense = yes\n" \
	"[prune.lth-reinit]\nplugin = lth\ntargets = " lth_targets "\n" \
	"scope = global\nrewind = 3\nretrain_epochs = 0.5\nreinit = yes\n" \
	"stream = lth\n" \
	"[prune.mag-it]\nplugin = magnitude\ntargets = " it_targets "\n" \
	"scope = global\nschedule = iterative:3\nround_epochs = 0.5\n" \
	"matched_dense = yes\n"

#define AB_LTH "sparsity=0.36 sparsity=0.59"
#define BA_LTH "sparsity=0.59 sparsity=0.36"
#define AB_IT "sparsity=0.6 sparsity=0.875"
#define BA_IT "sparsity=0.875 sparsity=0.6"


/* Runs the experiment text with `threads` cells at once (one thread
 * each) and returns its records. */
static pb_record *run(const char *text, int threads, int *n)
{
	pb_experiment *e = NULL;
	pb_run_opts o = { 0 };
	pb_run_summary sum;
	pb_error err = { 0 };
	pb_record *r = NULL;
	char path[700];

	snprintf(path, sizeof path, "%s/exp.ini", dir);
	if (pb_experiment_parse(&e, text, path, sp, &err))
		fail_msg("%s", err.msg);
	o.threads = threads;
	o.inner_threads = 1;
	if (pb_experiment_run(e, &o, &sum, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(sum.failed + sum.crashed + sum.diverged, 0);
	snprintf(path, sizeof path, "%s/runs.jsonl", e->output);
	if (pb_records_read(path, 0, &r, n, NULL, NULL, &err))
		fail_msg("%s", err.msg);
	pb_experiment_free(e);
	return r;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		fail_msg("cannot open %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void same(double a, double b, const char *what, const char *id)
{
	if (isnan(a) && isnan(b))
		return;
	if (memcmp(&a, &b, sizeof a))
		fail_msg("%s: %s differs: %.17g vs %.17g", id, what, a, b);
}

/* Every pruned cell of run x equals its cell of run y, bit for bit:
 * the record's numbers and the final model's file. */
static void same_cells(const char *out_x, const pb_record *x, int nx,
		       const char *out_y, const pb_record *y, int ny)
{
	int compared = 0;

	for (int i = 0; i < nx; i++) {
		const pb_record *a = &x[i], *b = NULL;
		char pa[900], pb[900];
		char *fa, *fb;
		size_t la, lb;

		if (a->kind != PB_CELL_PRUNE)
			continue;
		for (int j = 0; j < ny; j++)
			if (!strcmp(y[j].id, a->id))
				b = &y[j];
		if (!b)
			fail_msg("%s is missing from %s", a->id, out_y);
		same(a->acc_before, b->acc_before, "acc_before", a->id);
		same(a->acc_after, b->acc_after, "acc_after", a->id);
		same(a->val_after, b->val_after, "val_after", a->id);
		same(a->reached, b->reached, "reached", a->id);
		same(a->prune_epochs, b->prune_epochs, "prune_epochs", a->id);
		same(a->nonzero, b->nonzero, "nonzero", a->id);
		assert_int_equal(a->has_matched, b->has_matched);
		if (a->has_matched) {
			same(a->matched_top1, b->matched_top1, "matched_top1",
			     a->id);
			same(a->matched_val, b->matched_val, "matched_val",
			     a->id);
			same(a->matched_epochs, b->matched_epochs,
			     "matched_epochs", a->id);
		}
		assert_int_equal(a->n_rounds, b->n_rounds);
		for (int k = 0; k < a->n_rounds; k++)
			same(a->rounds[k], b->rounds[k], "rounds", a->id);
		snprintf(pa, sizeof pa, "%s/%s/cells/%s.ckpt", dir, out_x,
			 a->id);
		snprintf(pb, sizeof pb, "%s/%s/cells/%s.ckpt", dir, out_y,
			 a->id);
		fa = slurp(pa, &la);
		fb = slurp(pb, &lb);
		if (la != lb || memcmp(fa, fb, la))
			fail_msg("%s: the final models differ", a->id);
		free(fa);
		free(fb);
		compared++;
	}
	/* lth, lth-reinit and mag-it at two targets */
	assert_int_equal(compared, 6);
}

/* Whether the cell log of method-target in `out` contains `what`. */
static int log_says(const char *out, const pb_record *r, int n,
		    const char *prefix, const char *what)
{
	for (int i = 0; i < n; i++) {
		char path[900], *text;
		size_t len;
		int found;

		if (strncmp(r[i].id, prefix, strlen(prefix)))
			continue;
		snprintf(path, sizeof path, "%s/%s/cells/%s.log", dir, out,
			 r[i].id);
		text = slurp(path, &len);
		found = strstr(text, what) != NULL;
		free(text);
		return found;
	}
	fail_msg("no cell %s in %s", prefix, out);
	return 0;
}

/* Flips a byte in the middle of every file of `cache` whose name is
 * rR.ckpt for round `round`. */
static int corrupt_round(const char *cache, const char *name)
{
	char cmd[1200];

	snprintf(cmd, sizeof cmd, "cd '%s/%s' && for f in trunk-*/%s; do "
		 "[ -f \"$f\" ] || continue; "
		 "n=$(stat -c %%s \"$f\"); "
		 "printf '\\377' | dd of=\"$f\" bs=1 seek=$((n / 2)) "
		 "conv=notrunc 2>/dev/null; echo x; done | wc -l", dir, cache,
		 name);
	{
		FILE *p = popen(cmd, "r");
		int k = 0;

		assert_non_null(p);
		assert_int_equal(fscanf(p, "%d", &k), 1);
		pclose(p);
		return k;
	}
}

static void test_trunk_bits(void **state)
{
	pb_record *r1, *r2, *r3, *r4;
	int n1, n2, n3, n4;

	(void)state;
	/* 1: A before B, empty cache: A computes its trunk round itself
	 * (and B reads it). */
	r1 = run(EXP("o1", "c1", AB_LTH, AB_IT), 1, &n1);
	assert_true(log_says("o1", r1, n1, "lth-sparsity=0.59-",
			     "read from the cache"));
	assert_false(log_says("o1", r1, n1, "lth-sparsity=0.36-",
			      "read from the cache"));
	/* 2: B before A, another empty cache: B writes the trunk, A reads
	 * it; and the reinit control reads the ticket's. */
	r2 = run(EXP("o2", "c2", BA_LTH, BA_IT), 1, &n2);
	assert_true(log_says("o2", r2, n2, "lth-sparsity=0.36-",
			     "read from the cache"));
	assert_true(log_says("o2", r2, n2, "mag-it-sparsity=0.6-",
			     "read from the cache"));
	assert_true(log_says("o2", r2, n2, "lth-reinit-sparsity=0.59-",
			     "read from the cache"));
	same_cells("o1", r1, n1, "o2", r2, n2);
	/* 3: again from cache c2 with every cached first round corrupted:
	 * recomputed, said in the log, the same bits. */
	assert_true(corrupt_round("c2", "r1.ckpt") >= 3);
	r3 = run(EXP("o3", "c2", AB_LTH, AB_IT), 1, &n3);
	assert_true(log_says("o3", r3, n3, "lth-sparsity=0.36-",
			     "unusable"));
	same_cells("o1", r1, n1, "o3", r3, n3);
	/* 4: two cells at once on an empty cache: whichever computes, the
	 * same bits. */
	r4 = run(EXP("o4", "c4", AB_LTH, AB_IT), 2, &n4);
	same_cells("o1", r1, n1, "o4", r4, n4);
	pb_records_free(r1, n1);
	pb_records_free(r2, n2);
	pb_records_free(r3, n3);
	pb_records_free(r4, n4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_trunk_bits),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
