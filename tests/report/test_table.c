/* Tables from hand-written runs.jsonl files (core/report/table.c and
 * stats.c): statistics checked against values worked out here by hand,
 * Welch markers, row order, bad lines, diverged, superseded and matched
 * cells. */
#include "runs_fixture.h"

/* t quantile t(0.975, 2), from printed tables (not from GSL). */
#define T975_DF2 4.302652729911275

static const pb_table_row *find(const pb_table *t, const char *label,
				const char *target)
{
	for (int i = 0; i < t->n_rows; i++)
		if (!strcmp(t->rows[i].label, label) &&
		    (!target ? !t->rows[i].target :
		     (t->rows[i].target && !strcmp(t->rows[i].target, target))))
			return &t->rows[i];
	fail_msg("no row %s @ %s", label, target ? target : "-");
	return NULL;
}

/* Sample statistics of three values, written out. */
static void by_hand(double a, double b, double c, double *mean, double *sd,
		    double *ci)
{
	*mean = (a + b + c) / 3.0;
	*sd = sqrt(((a - *mean) * (a - *mean) + (b - *mean) * (b - *mean) +
		    (c - *mean) * (c - *mean)) / (3 - 1));
	*ci = T975_DF2 * *sd / sqrt(3.0);
}

static void test_statistics(void **state)
{
	char *dir = write_fixture(NULL);
	pb_table t;
	const pb_table_row *r;
	double m, sd, ci;
	(void)state;

	load(dir, &t, NULL, NULL);

	r = find(&t, "dense", NULL);
	by_hand(91.0, 91.2, 91.4, &m, &sd, &ci);
	assert_int_equal(r->acc_after.n, 3);
	assert_near(r->acc_after.mean, m, 1e-9);
	assert_near(r->acc_after.sd, sd, 1e-9);
	assert_near(r->acc_after.sd, 0.2, 1e-9);
	assert_near(r->acc_after.ci95, ci, 1e-9);
	assert_near(r->acc_after.ci95, 0.496827, 1e-6);
	assert_near(r->params_kept.mean, 100.0, 1e-9);

	r = find(&t, "dense + fine-tune", NULL);
	by_hand(90.5, 90.6, 90.7, &m, &sd, &ci);
	assert_near(r->acc_after.mean, m, 1e-9);
	assert_near(r->acc_after.sd, sd, 1e-9);
	assert_near(r->acc_before.mean, 91.2, 1e-9);
	assert_near(r->delta_after, 90.6 - 91.2, 1e-9);

	r = find(&t, "l1", "macs=0.5");
	by_hand(90.0, 90.2, 90.4, &m, &sd, &ci);
	assert_int_equal(r->acc_after.n, 3);
	assert_near(r->acc_after.mean, m, 1e-9);
	assert_near(r->acc_after.sd, sd, 1e-9);
	assert_near(r->acc_after.ci95, ci, 1e-9);
	by_hand(70, 71, 72, &m, &sd, &ci);
	assert_near(r->acc_before.mean, m, 1e-9);
	assert_near(r->acc_before.sd, sd, 1e-9);
	assert_near(r->delta_after, 90.2 - 91.2, 1e-9);
	assert_near(r->reached.mean, 0.497, 1e-12);
	assert_near(r->params_kept.mean, 100.0 * 40000 / 77786, 1e-9);
	assert_near(r->macs_kept.mean, 50.0, 1e-9);
	assert_near(r->speedup_b128.mean, 1.9, 1e-12);
	assert_near(r->time_finetune.mean, 40.3, 1e-12);

	/* n = 1: the value itself, no spread, no test. */
	r = find(&t, "l1 (scratch-E)", "macs=0.5");
	assert_int_equal(r->kind, PB_CELL_SCRATCH);
	assert_int_equal(r->acc_after.n, 1);
	assert_near(r->acc_after.mean, 88.0, 1e-9);
	assert_true(isnan(r->acc_after.sd));
	assert_true(isnan(r->p_vs_best));
	assert_int_equal(r->differs, 0);

	/* LTH rounds averaged per round. */
	r = find(&t, "lth", "sparsity=0.8");
	assert_int_equal(r->n_rounds, 3);
	assert_near(r->rounds[2], 0.488, 1e-12);

	pb_table_free(&t);
	tu_rm_tree(dir);
}

static void test_welch(void **state)
{
	char *dir = write_fixture(NULL);
	pb_table t;
	const pb_table_row *best, *l1, *rnd;
	double tl1, trnd;
	(void)state;

	load(dir, &t, NULL, NULL);
	best = find(&t, "magnitude", "macs=0.5");
	l1 = find(&t, "l1", "macs=0.5");
	rnd = find(&t, "random", "macs=0.5");
	assert_int_equal(best->is_best, 1);
	assert_int_equal(best->differs, 0);

	/* Equal n = 3 and equal sd = 0.2: Welch-Satterthwaite gives
	 * df = (2 v)^2 / (2 v^2 / 2) = 4 with v = 0.2^2 / 3. */
	tl1 = (90.2 - 90.3) / sqrt(0.04 / 3 + 0.04 / 3);
	trnd = (85.2 - 90.3) / sqrt(0.04 / 3 + 0.04 / 3);
	assert_near(l1->p_vs_best, p_two_sided_df4(tl1), 1e-9);
	assert_near(rnd->p_vs_best, p_two_sided_df4(trnd), 1e-9);
	assert_true(l1->p_vs_best > 0.5);
	assert_true(rnd->p_vs_best < 1e-4);
	assert_int_equal(l1->differs, 0);
	assert_int_equal(rnd->differs, 1);

	/* Only one row in the whole table carries the marker. */
	{
		int n = 0;
		for (int i = 0; i < t.n_rows; i++)
			n += t.rows[i].differs;
		assert_int_equal(n, 1);
	}
	/* macs=0.7: l1 is alone among rows with values. */
	assert_int_equal(find(&t, "l1", "macs=0.7")->is_best, 1);
	pb_table_free(&t);
	tu_rm_tree(dir);
}

static void test_welch_unequal(void **state)
{
	/* Unequal variances, by hand: a = (1,2,3,4), b = (10,10.5,11).
	 * va = 1.6667/4, vb = 0.25/3. */
	pb_stat a = { 4, 2.5, sqrt(5.0 / 3.0), NAN };
	pb_stat b = { 3, 10.5, 0.5, NAN };
	double va = 5.0 / 3.0 / 4, vb = 0.25 / 3;
	double df = (va + vb) * (va + vb) /
		    (va * va / 3 + vb * vb / 2);
	double p;
	(void)state;

	p = pb_welch_p(&a, &b);
	assert_true(df > 4 && df < 5);
	/* |t| = 8 / sqrt(va + vb) = 11.31: p far below 0.001 whatever
	 * the df between 4 and 5 (t_4 at 0.999 two-sided is 8.61). */
	assert_true(p < 1e-3 && p > 0);
	/* Symmetric. */
	assert_near(p, pb_welch_p(&b, &a), 1e-15);
	/* n < 2: no test. */
	b.n = 1;
	assert_true(isnan(pb_welch_p(&a, &b)));
}

static void test_row_order(void **state)
{
	char *dir = write_fixture(NULL);
	pb_table t;
	static const char *const want[][2] = {
		{ "dense", NULL }, { "dense + fine-tune", NULL },
		{ "l1", "macs=0.5" }, { "l1 (scratch-E)", "macs=0.5" },
		{ "magnitude", "macs=0.5" }, { "random", "macs=0.5" },
		{ "l1", "macs=0.7" }, { "slimming", "macs=0.7" },
		{ "lth", "sparsity=0.8" },
	};
	(void)state;

	load(dir, &t, NULL, NULL);
	assert_int_equal(t.n_rows, (int)(sizeof want / sizeof want[0]));
	for (int i = 0; i < t.n_rows; i++) {
		assert_string_equal(t.rows[i].label, want[i][0]);
		if (want[i][1])
			assert_string_equal(t.rows[i].target, want[i][1]);
		else
			assert_null(t.rows[i].target);
	}
	pb_table_free(&t);
	tu_rm_tree(dir);
}

static void test_bad_lines_skipped(void **state)
{
	/* A crash mid-write leaves half a line with no newline. */
	char *dir = write_fixture("{\"v\": 1, \"id\": \"l1-macs=0.5-s4-0000\","
				  " \"kind\": \"prune\", \"acc_af");
	pb_table t;
	int n_bad = -1;
	char *warn = NULL;
	(void)state;

	load(dir, &t, &n_bad, &warn);
	assert_int_equal(n_bad, 2);
	assert_int_equal(t.n_cells, (int)(sizeof fixture / sizeof fixture[0]));
	assert_non_null(strstr(warn, "runs.jsonl:6: warning: line skipped"));
	assert_non_null(strstr(warn, "runs.jsonl:25: warning: line skipped"));
	assert_non_null(strstr(warn, "cut short"));
	free(warn);
	pb_table_free(&t);
	tu_rm_tree(dir);
}

static void test_diverged(void **state)
{
	char *dir = write_fixture(NULL);
	pb_table t;
	const pb_table_row *r;
	double m, sd, ci;
	(void)state;

	load(dir, &t, NULL, NULL);
	r = find(&t, "l1", "macs=0.7");
	assert_int_equal(r->n_cells, 3);
	assert_int_equal(r->n_ok, 2);
	assert_int_equal(r->n_diverged, 1);
	assert_int_equal(r->acc_after.n, 2);
	/* Mean and sd of the two ok seeds only (87.0, 87.4). */
	m = (87.0 + 87.4) / 2;
	sd = sqrt(((87.0 - m) * (87.0 - m) + (87.4 - m) * (87.4 - m)) / 1);
	(void)ci;
	assert_near(r->acc_after.mean, m, 1e-9);
	assert_near(r->acc_after.sd, sd, 1e-9);

	r = find(&t, "slimming", "macs=0.7");
	assert_int_equal(r->n_ok, 0);
	assert_int_equal(r->n_diverged, 2);
	assert_int_equal(r->acc_after.n, 0);
	assert_int_equal(r->differs, 0);
	pb_table_free(&t);
	tu_rm_tree(dir);
}

static void test_superseded(void **state)
{
	/* The same cell (prune l1 macs=0.5 seed 1) finished again after a
	 * definition change: the later line wins. */
	char *dir = write_fixture(NULL), path[512];
	spec again = { "prune", "l1", "macs=0.5", "macs", 0.5, 1, "ok", 0.7,
		       0.930, NULL };
	pb_table t;
	FILE *f;
	(void)state;

	snprintf(path, sizeof path, "%s/runs.jsonl", dir);
	f = fopen(path, "a");
	put_line(f, &again);
	fclose(f);
	load(dir, &t, NULL, NULL);
	assert_int_equal(t.n_superseded, 1);
	assert_int_equal(find(&t, "l1", "macs=0.5")->acc_after.n, 3);
	assert_near(find(&t, "l1", "macs=0.5")->acc_after.mean,
			   (93.0 + 90.2 + 90.4) / 3, 1e-9);
	pb_table_free(&t);
	tu_rm_tree(dir);
}

/* Cells made by engines of different arithmetic ("numerics") make the
 * table warn with the versions; lines without the key (written before
 * it) and superseded lines do not count. */
/* Appends line l to the runs.jsonl at path and reads dir's table. */
static void append_and_load(const char *path, const char *dir,
			    const spec *l, pb_table *t)
{
	FILE *f = fopen(path, "a");

	assert_non_null(f);
	put_line(f, l);
	fclose(f);
	load(dir, t, NULL, NULL);
}

static void test_mixed_numerics(void **state)
{
	char *dir = write_fixture(NULL), path[512], *md = NULL;
	spec v3 = { "prune", "l1", "macs=0.5", "macs", 0.5, 1, "ok", 0.7,
		    0.930, "\"numerics\": 3" };
	spec v4 = { "prune", "l1", "macs=0.5", "macs", 0.5, 2, "ok", 0.7,
		    0.931, "\"numerics\": 4" };
	spec v4again = { "prune", "l1", "macs=0.5", "macs", 0.5, 1, "ok", 0.7,
			 0.932, "\"numerics\": 4" };
	pb_table t;
	size_t len = 0;
	FILE *f;
	(void)state;

	snprintf(path, sizeof path, "%s/runs.jsonl", dir);
	load(dir, &t, NULL, NULL);
	assert_int_equal(t.numerics_lo, 0);
	assert_int_equal(t.numerics_hi, 0);
	pb_table_free(&t);
	append_and_load(path, dir, &v3, &t);
	assert_int_equal(t.numerics_lo, 3);
	assert_int_equal(t.numerics_hi, 3);
	pb_table_free(&t);
	append_and_load(path, dir, &v4, &t);
	assert_int_equal(t.numerics_lo, 3);
	assert_int_equal(t.numerics_hi, 4);
	f = open_memstream(&md, &len);
	assert_int_equal(pb_table_write_md(&t, NULL, f), 0);
	fclose(f);
	assert_non_null(strstr(md, "different arithmetic (numerics 3 to 4"));
	free(md);
	pb_table_free(&t);
	/* seed 1 re-run with the newer engine: its numerics-3 line is
	 * superseded, and every kept cell that says is numerics 4 */
	append_and_load(path, dir, &v4again, &t);
	assert_int_equal(t.numerics_lo, 4);
	assert_int_equal(t.numerics_hi, 4);
	pb_table_free(&t);
	tu_rm_tree(dir);
}

/* dir/runs.jsonl holding the n lines. */
static void write_specs(const char *dir, const spec *lines, size_t n)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof path, "%s/runs.jsonl", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	for (size_t i = 0; i < n; i++)
		put_line(f, &lines[i]);
	fclose(f);
}

/* A pruned cell with matched_dense carries its control: one more row,
 * "NAME (dense, same training)", from its matched_* keys; cells of one
 * seed from two different dense models make the table warn. */
static void test_matched_and_mixed_dense(void **state)
{
	char *dir = tu_temp_dir(), path[512], *md = NULL;
	spec lines[] = {
		{ "dense", "dense", NULL, NULL, 0, 1, "ok", 0.92, 0.92,
		  "\"dense_fingerprint\": \"0000aaaa\"" },
		{ "prune", "lth", "sparsity=0.75", "sparsity", 0.75, 1, "ok",
		  0.90, 0.906, "\"dense_fingerprint\": \"0000aaaa\", "
		  "\"prune_epochs\": 7, \"matched_top1\": 0.9265, "
		  "\"matched_val\": 0.93, \"matched_epochs\": 8, "
		  "\"matched_time_s\": 232.1, \"matched_error\": null" },
	};
	spec other = { "prune", "l1", "macs=0.5", "macs", 0.5, 1, "ok", 0.4,
		       0.91, "\"dense_fingerprint\": \"0000bbbb\"" };
	const pb_table_row *r;
	pb_table t;
	size_t len = 0;
	FILE *f;
	(void)state;

	snprintf(path, sizeof path, "%s/runs.jsonl", dir);
	write_specs(dir, lines, 2);
	load(dir, &t, NULL, NULL);
	assert_int_equal(t.n_mixed_dense, 0);
	r = find(&t, "lth (dense, same training)", "sparsity=0.75");
	assert_int_equal(r->kind, PB_CELL_MATCHED);
	assert_near(r->acc_after.mean, 92.65, 1e-9);
	assert_near(r->delta_after, 92.65 - 92.0, 1e-9);
	assert_near(find(&t, "lth", "sparsity=0.75")->acc_after.mean, 90.6,
		    1e-9);
	pb_table_free(&t);

	f = fopen(path, "a");
	put_line(f, &other);
	fclose(f);
	load(dir, &t, NULL, NULL);
	assert_int_equal(t.n_mixed_dense, 1);
	f = open_memstream(&md, &len);
	assert_int_equal(pb_table_write_md(&t, NULL, f), 0);
	fclose(f);
	assert_non_null(strstr(md, "pruned from different dense models"));
	assert_non_null(strstr(md, "(dense, same training): the dense model"));
	free(md);
	pb_table_free(&t);
	tu_rm_tree(dir);
}

/* The "dense, same training" control is the unpruned model: it is not
 * the best row of its target (that would mark every method as "below
 * the dense model"), and it is not marked itself. */
static void test_best_is_a_pruned_model(void **state)
{
	char *dir = tu_temp_dir();
	spec lines[7] = {
		{ "dense", "dense", NULL, NULL, 0, 1, "ok", 0.92, 0.92, NULL },
	};
	const double lth[3] = { 0.900, 0.902, 0.904 },
		     mag[3] = { 0.910, 0.912, 0.914 },
		     matched[3] = { 0.930, 0.932, 0.934 };
	char extra[3][200];
	const pb_table_row *best, *l, *m;
	pb_table t;
	(void)state;

	for (int s = 0; s < 3; s++) {
		snprintf(extra[s], sizeof extra[s],
			 "\"prune_epochs\": 7, \"matched_top1\": %.3f, "
			 "\"matched_val\": 0.93, \"matched_epochs\": 8, "
			 "\"matched_time_s\": 1.0, \"matched_error\": null",
			 matched[s]);
		lines[1 + s] = (spec){ "prune", "lth", "sparsity=0.75",
				       "sparsity", 0.75, s + 1, "ok", 0.5,
				       lth[s], extra[s] };
		lines[4 + s] = (spec){ "prune", "magnitude", "sparsity=0.75",
				       "sparsity", 0.75, s + 1, "ok", 0.5,
				       mag[s], NULL };
	}
	write_specs(dir, lines, 7);
	load(dir, &t, NULL, NULL);
	best = find(&t, "magnitude", "sparsity=0.75");
	l = find(&t, "lth", "sparsity=0.75");
	m = find(&t, "lth (dense, same training)", "sparsity=0.75");
	assert_near(m->acc_after.mean, 93.2, 1e-9);
	assert_int_equal(best->is_best, 1);
	assert_int_equal(m->is_best, 0);
	assert_int_equal(m->differs, 0);
	assert_true(isnan(m->p_vs_best));
	/* lth against magnitude: means 90.2 and 91.2, sd 0.2 each, df 4. */
	assert_near(l->p_vs_best,
		    p_two_sided_df4((90.2 - 91.2) / sqrt(0.04 / 3 + 0.04 / 3)),
		    1e-9);
	assert_int_equal(l->differs, 1);
	pb_table_free(&t);
	tu_rm_tree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_statistics),
		cmocka_unit_test(test_welch),
		cmocka_unit_test(test_welch_unequal),
		cmocka_unit_test(test_row_order),
		cmocka_unit_test(test_bad_lines_skipped),
		cmocka_unit_test(test_diverged),
		cmocka_unit_test(test_superseded),
		cmocka_unit_test(test_matched_and_mixed_dense),
		cmocka_unit_test(test_best_is_a_pruned_model),
		cmocka_unit_test(test_mixed_numerics),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
