/* prunebench table --compare: Welch's test of two rows at every target
 * they share (pb_table_compare), and the t, df and p it reports
 * (pb_welch). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runs_fixture.h"

/* pb_table_compare's output (or its error, code in *rc). */
static char *compare(const pb_table *t, const char *a, const char *b,
		     int *rc, pb_error *err)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	*rc = pb_table_compare(t, a, b, f, err);
	fclose(f);
	return buf;
}

/* The Markdown line of target in out, or NULL. */
static const char *line_of(const char *out, const char *target)
{
	char key[64];

	snprintf(key, sizeof key, "\n| %s |", target);
	return strstr(out, key);
}

/* compare(a, b) succeeds and its line at target (the "—" line for two
 * controls) holds text. */
static void expect_line(const pb_table *t, const char *a, const char *b,
			const char *target, const char *text)
{
	pb_error err = { 0 };
	int rc;
	char *out = compare(t, a, b, &rc, &err), *line, *end;
	const char *l;

	assert_int_equal(rc, 0);
	l = line_of(out, target);
	if (!l)
		fail_msg("%s / %s: no line at %s in\n%s", a, b, target, out);
	line = strdup(l + 1);
	if ((end = strchr(line, '\n')))
		*end = '\0';
	if (!strstr(line, text))
		fail_msg("%s / %s at %s: '%s' not in '%s'", a, b, target, text,
			 line);
	free(line);
	free(out);
}

static void test_welch_fields(void **state)
{
	/* a = (1, 2, 3, 4), b = (10, 10.5, 11), by hand. */
	pb_stat a = { 4, 2.5, sqrt(5.0 / 3.0), NAN };
	pb_stat b = { 3, 10.5, 0.5, NAN };
	double va = 5.0 / 3.0 / 4, vb = 0.25 / 3;
	pb_welch_test w;
	(void)state;

	pb_welch(&a, &b, &w);
	assert_near(w.diff, -8.0, 1e-12);
	assert_near(w.t, -8.0 / sqrt(va + vb), 1e-12);
	assert_near(w.df, (va + vb) * (va + vb) / (va * va / 3 + vb * vb / 2),
		    1e-12);
	assert_near(w.p, pb_welch_p(&a, &b), 0);
	/* One value on a side: the difference, no test. */
	b.n = 1;
	pb_welch(&a, &b, &w);
	assert_near(w.diff, -8.0, 1e-12);
	assert_true(isnan(w.t) && isnan(w.df) && isnan(w.p));
	/* Both constant: no t, p says equal or not. */
	a = (pb_stat){ 3, 90.0, 0.0, 0.0 };
	b = (pb_stat){ 3, 90.0, 0.0, 0.0 };
	pb_welch(&a, &b, &w);
	assert_true(isnan(w.t) && w.p == 1.0);
	b.mean = 89.0;
	pb_welch(&a, &b, &w);
	assert_true(w.p == 0.0);
}

static void test_compare_rows(void **state)
{
	char *dir = write_fixture(NULL), *out;
	pb_error err = { 0 };
	pb_table t;
	const char *l;
	char want[128];
	double tv = (90.2 - 90.3) / sqrt(0.04 / 3 + 0.04 / 3);
	int rc;
	(void)state;

	load(dir, &t, NULL, NULL);
	/* l1 and magnitude share macs=0.5 only (magnitude has no 0.7). */
	out = compare(&t, "l1", "magnitude", &rc, &err);
	assert_int_equal(rc, 0);
	l = line_of(out, "macs=0.5");
	assert_non_null(l);
	/* Means 90.2 and 90.3, sd 0.2 each, n 3: df 4. */
	snprintf(want, sizeof want, "| macs=0.5 | 90.20 ± 0.20 (n = 3) | "
		 "90.30 ± 0.20 (n = 3) | -0.10 | %.2f | 4.0 | %.3f |", tv,
		 p_two_sided_df4(tv));
	assert_memory_equal(l + 1, want, strlen(want));
	assert_null(line_of(out, "macs=0.7"));
	assert_non_null(strstr(out, "two-sided"));
	free(out);

	/* random is far below magnitude: p printed as a bound. */
	expect_line(&t, "random", "magnitude", "macs=0.5", "| -5.10 |");
	expect_line(&t, "random", "magnitude", "macs=0.5", "| < 0.001 |");

	/* A control is compared at each target of the other row: dense
	 * (91.2 ± 0.2) against l1 at macs=0.5 and at macs=0.7 (two ok
	 * seeds of three), and no line without a target. */
	expect_line(&t, "dense", "l1", "macs=0.5", "| 91.20 ± 0.20 (n = 3) | "
		    "90.20 ± 0.20 (n = 3) | +1.00 |");
	expect_line(&t, "dense", "l1", "macs=0.7",
		    "| 87.20 ± 0.28 (n = 2) | +4.00 |");
	out = compare(&t, "dense", "l1", &rc, &err);
	assert_null(line_of(out, "—"));
	free(out);

	/* Two controls: one line, no target. */
	expect_line(&t, "dense", "dense + fine-tune", "—", "| +0.60 |");

	/* One seed on a side (the scratch row): the difference, no test. */
	expect_line(&t, "l1 (scratch-E)", "l1", "macs=0.5", "| 88.00 (n = 1) | "
		    "90.20 ± 0.20 (n = 3) | -2.20 | — | — | — |");

	/* Every seed diverged: no value, no test. */
	expect_line(&t, "slimming", "l1", "macs=0.7", "| — | 87.20 ± 0.28 "
		    "(n = 2) | — | — | — | — |");
	pb_table_free(&t);
	tu_rm_tree(dir);
}

static void test_compare_errors(void **state)
{
	char *dir = write_fixture(NULL), *out;
	pb_error err = { 0 };
	pb_table t;
	int rc;
	(void)state;

	load(dir, &t, NULL, NULL);
	/* An unknown label names the table's rows, each once. */
	out = compare(&t, "l2", "l1", &rc, &err);
	assert_int_equal(rc, PB_ENOTFOUND);
	assert_non_null(strstr(err.msg, "no row 'l2'"));
	assert_non_null(strstr(err.msg, "'dense', 'dense + fine-tune'"));
	assert_non_null(strstr(err.msg, "'l1 (scratch-E)'"));
	assert_null(strstr(strstr(err.msg, "'l1',") + 1, "'l1',"));
	assert_string_equal(out, "");
	free(out);
	out = compare(&t, "l1", "magnitude ", &rc, &err);
	assert_int_equal(rc, PB_ENOTFOUND);
	assert_non_null(strstr(err.msg, "no row 'magnitude '"));
	free(out);
	/* No target in common: an error, and nothing printed. */
	out = compare(&t, "lth", "magnitude", &rc, &err);
	assert_int_equal(rc, PB_ENOTFOUND);
	assert_non_null(strstr(err.msg, "share no target"));
	assert_string_equal(out, "");
	free(out);
	pb_table_free(&t);
	tu_rm_tree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_welch_fields),
		cmocka_unit_test(test_compare_rows),
		cmocka_unit_test(test_compare_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
