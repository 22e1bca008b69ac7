/* LTH in a sweep: the rewind points the dense training keeps, the cache
 * of a dense model missing one, the matched dense control, and the
 * random-reinitialisation control sharing the ticket's stream. */
#include "experiment/sweep_test.h"

#include "prunebench/checkpoint.h"
#include "prunebench/table.h"

/* LTH in a sweep: the runner's dense training keeps the rewind points
 * the cells name (rewind = 3 and 100%), from the same run as the dense
 * model (the 100% point is the dense checkpoint's weights bitwise); a
 * cached dense model missing a point has the start of its run trained
 * again, giving the same bits; matched_dense replays the cell's
 * trainings on the dense model and the table shows that row. */
#define EXP_LTH(out, rewind2) \
	"[experiment]\nname = tinylth\nmodel = tiny.ini\n" \
	"data = synthetic:600\nseeds = 1\nval_size = 100\n" \
	"cache = cache-lth\nlatency = no\ndense_ft = no\n" \
	"output = " out "\n" \
	"[train]\nepochs = 2\nbatch = 50\nkeep_best = no\n" \
	"[finetune]\nepochs = 1\nbatch = 50\nlr = 0.01\n" \
	"[prune.lth]\ntargets = sparsity=0.36\nscope = global\n" \
	"rewind = 3\nretrain_epochs = 1\nmatched_dense = yes\n" \
	"[prune.lth-end]\nplugin = lth\ntargets = sparsity=0.2\n" \
	"rewind = " rewind2 "\nretrain_epochs = 0\n"

static pb_model *load_point(const char *base, const char *suffix)
{
	char path[1200];
	pb_model *m = tu_parse_model(tiny_model, "tiny");
	pb_error err = { 0 };

	snprintf(path, sizeof path, "%s%s", base, suffix);
	if (pb_checkpoint_load(m, path, &err))
		fail_msg("%s", err.msg);
	return m;
}

static void assert_same_params(pb_model *a, pb_model *b, const char *what)
{
	for (int i = 0; i < pb_model_n_params(a); i++) {
		pb_param *p = pb_model_param(a, i), *q = pb_model_param(b, i);

		assert_int_equal(p->n, q->n);
		if (memcmp(p->data, q->data, p->n * sizeof(float)))
			fail_msg("%s: %s differs", what, p->name);
	}
}

static void test_lth_points(void **state)
{
	pb_experiment *e = load(EXP_LTH("out-lth", "100%"));
	pb_run_summary sum;
	pb_record *cells;
	pb_model *dense, *p20, *p3, *p3b;
	pb_error err = { 0 };
	char base[900], key[17], p3path[1000], *copy;
	const pb_record *lth = NULL;
	int n;

	(void)state;
	run(e, 1, &sum);
	assert_int_equal(sum.failed + sum.diverged, 0);
	pb_experiment_dense_key(e, 1, key);
	snprintf(base, sizeof base, "%s/cache-lth/dense-tiny-s1-%s", dir, key);
	/* 500 training images / 50 = 10 steps per epoch, 2 epochs. */
	dense = load_point(base, ".ckpt");
	p20 = load_point(base, ".step20.ckpt");
	p3 = load_point(base, ".step3.ckpt");
	assert_same_params(dense, p20, "the 100% point vs the dense model");
	cells = read_cells("out-lth", &n);
	for (int i = 0; i < n; i++) {
		if (!strcmp(cells[i].method, "lth") &&
		    cells[i].kind == PB_CELL_PRUNE)
			lth = &cells[i];
	}
	assert_non_null(lth);
	assert_int_equal(lth->status, PB_CELL_OK);
	/* Two rounds (1 - 0.8^2 = 0.36) of one retraining epoch each. */
	assert_int_equal(lth->n_rounds, 2);
	assert_true(lth->prune_epochs == 2.0);
	assert_true(lth->matched_epochs == 3.0);
	assert_true(lth->has_matched);
	assert_null(lth->matched_error);
	assert_true(isfinite(lth->matched_top1));
	{
		pb_table t;
		int found = 0;

		if (pb_table_build(cells, n, &t, &err))
			fail_msg("%s", err.msg);
		for (int i = 0; i < t.n_rows; i++)
			found += !strcmp(t.rows[i].label,
					 "lth (dense, same training)");
		assert_int_equal(found, 1);
		pb_table_free(&t);
	}
	pb_records_free(cells, n);
	pb_experiment_free(e);

	/* The point file gone: a new output on the same cache recovers it
	 * from the start of the same run, bit for bit. */
	snprintf(p3path, sizeof p3path, "%s.step3.ckpt", base);
	copy = strdup(p3path);
	assert_int_equal(unlink(p3path), 0);
	e = load(EXP_LTH("out-lth2", "100%"));
	run(e, 1, &sum);
	assert_int_equal(sum.failed + sum.diverged, 0);
	p3b = load_point(base, ".step3.ckpt");
	assert_same_params(p3, p3b, "the retrained 3-step point");
	pb_experiment_free(e);
	pb_model_free(p3b);

	/* A corrupt point file is made again the same way. */
	{
		FILE *f = fopen(copy, "r+b");

		assert_non_null(f);
		assert_int_equal(fseek(f, 40, SEEK_SET), 0);
		assert_int_equal(fputs("garbage", f) >= 0, 1);
		fclose(f);
	}
	e = load(EXP_LTH("out-lth2b", "100%"));
	run(e, 1, &sum);
	assert_int_equal(sum.failed + sum.diverged, 0);
	p3b = load_point(base, ".step3.ckpt");
	assert_same_params(p3, p3b, "the re-made corrupt 3-step point");
	pb_experiment_free(e);
	free(copy);

	/* A point past the end of the dense training is a sweep error. */
	e = load(EXP_LTH("out-lth3", "150%"));
	{
		pb_run_opts o = { 0 };

		o.threads = 1;
		assert_int_not_equal(pb_experiment_run(e, &o, &sum, &err), 0);
		assert_non_null(strstr(err.msg, "[prune.lth-end] rewind = "
					       "150% is iteration 30, past the "
					       "end of the dense training"));
	}
	pb_experiment_free(e);
	pb_model_free(dense);
	pb_model_free(p20);
	pb_model_free(p3);
	pb_model_free(p3b);
}

/* lth's random-reinitialisation control with stream = lth: it draws as
 * the ticket does, so its final mask is the ticket's bit for bit, and it
 * trains exactly as much. */
static void test_reinit_control_shares_the_ticket(void **state)
{
	pb_experiment *e = load(
		"[experiment]\nname = ctl\nmodel = tiny.ini\n"
		"data = synthetic:300\nseeds = 1\nval_size = 60\n"
		"cache = cache\nlatency = no\ndense_ft = no\n"
		"output = out-ctl\n"
		"[train]\nepochs = 2\nbatch = 40\n"
		"[finetune]\nepochs = 1\nbatch = 40\nlr = 0.01\n"
		"[prune.lth]\ntargets = sparsity=0.36\nscope = global\n"
		"rewind = 3\nretrain_epochs = 1\n"
		"[prune.lth-reinit]\nplugin = lth\ntargets = sparsity=0.36\n"
		"scope = global\nrewind = 3\nretrain_epochs = 1\n"
		"reinit = yes\nstream = lth\nlabel = lth (reinit control)\n");
	pb_run_summary sum;
	pb_table tab;
	int labelled = 0;
	pb_record *r;
	const pb_record *t, *c;
	pb_model *mt, *mc;
	pb_error err = { 0 };
	char path[900];
	size_t zeros = 0;
	int n;

	(void)state;
	/* --dry-run names the ticket cell the control draws as. */
	{
		pb_run_opts o = { 0 };
		char *list = NULL, *line;
		size_t len = 0;

		o.threads = 1;
		o.inner_threads = 1;
		o.dry_run = 1;
		o.list = open_memstream(&list, &len);
		assert_non_null(o.list);
		assert_int_equal(pb_experiment_run(e, &o, &sum, &err), 0);
		fclose(o.list);
		line = strstr(list, "lth-reinit-sparsity=0.36-s1-");
		assert_non_null(line);
		assert_non_null(strstr(line, "  draws as lth-sparsity=0.36-s1-"));
		/* The ticket draws as itself. */
		line = strstr(list, " lth-sparsity=0.36-s1-");
		assert_non_null(line);
		*strchr(line, '\n') = 0;
		assert_null(strstr(line, "draws as"));
		free(list);
	}
	run(e, 1, &sum);
	assert_int_equal(sum.ok, 3);
	r = read_cells("out-ctl", &n);
	t = NULL;
	c = NULL;
	for (int i = 0; i < n; i++) {
		if (!strcmp(r[i].method, "lth"))
			t = &r[i];
		if (!strcmp(r[i].method, "lth-reinit"))
			c = &r[i];
	}
	assert_non_null(t);
	assert_non_null(c);
	assert_true(t->prune_epochs == c->prune_epochs);
	assert_true(t->prune_epochs > 0);
	snprintf(path, sizeof path, "%s/out-ctl/cells/%s.ini", dir, t->id);
	assert_int_equal(pb_model_load(&mt, path, &err), 0);
	snprintf(path, sizeof path, "%s/out-ctl/cells/%s.ckpt", dir, t->id);
	assert_int_equal(pb_checkpoint_load(mt, path, &err), 0);
	snprintf(path, sizeof path, "%s/out-ctl/cells/%s.ini", dir, c->id);
	assert_int_equal(pb_model_load(&mc, path, &err), 0);
	snprintf(path, sizeof path, "%s/out-ctl/cells/%s.ckpt", dir, c->id);
	assert_int_equal(pb_checkpoint_load(mc, path, &err), 0);
	for (int i = 0; i < pb_model_n_params(mt); i++) {
		pb_param *a = pb_model_param(mt, i), *b = pb_model_param(mc, i);

		if (a->kind != PB_PARAM_WEIGHT)
			continue;
		for (size_t j = 0; j < a->n; j++) {
			assert_int_equal(a->data[j] == 0.0f,
					 b->data[j] == 0.0f);
			zeros += a->data[j] == 0.0f;
		}
	}
	assert_true(zeros > 0);
	/* The section's label is the table's. */
	assert_string_equal(c->label, "lth (reinit control)");
	assert_null(t->label);
	assert_int_equal(pb_table_build(r, n, &tab, &err), 0);
	for (int i = 0; i < tab.n_rows; i++)
		labelled += !strcmp(tab.rows[i].label, "lth (reinit control)");
	assert_int_equal(labelled, 1);
	pb_table_free(&tab);
	pb_model_free(mt);
	pb_model_free(mc);
	pb_records_free(r, n);
	pb_experiment_free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lth_points),
		cmocka_unit_test(test_reinit_control_shares_the_ticket),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
