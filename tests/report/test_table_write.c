/* The table files (core/report/table_write.c): Markdown, CSV and LaTeX
 * from a hand-written runs.jsonl, the confidence-interval option, a
 * missing or empty record, and the plot data. */
#include "runs_fixture.h"

static void test_files(void **state)
{
	char *dir = write_fixture("{\"v\": 1, \"kind\": \"pru");
	char *md, *csv, *tex, *printed = NULL;
	size_t plen = 0;
	FILE *out = open_memstream(&printed, &plen);
	FILE *warn = tmpfile();
	pb_error err = { 0 };
	(void)state;

	assert_int_equal(pb_table_write_ex(dir, NULL, out, warn, &err), 0);
	fclose(out);
	fclose(warn);
	md = slurp(dir, "table.md");
	csv = slurp(dir, "table.csv");
	tex = slurp(dir, "table.tex");
	assert_string_equal(printed, md);

	/* Markdown: header, controls first, ±, markers, n = 1, diverged. */
	assert_non_null(strstr(md, "| method | target | reached |"));
	assert_true(strstr(md, "| dense |") < strstr(md,
						      "| dense + fine-tune |"));
	assert_true(strstr(md, "| dense + fine-tune |") < strstr(md, "| l1 |"));
	assert_non_null(strstr(md, "| dense | — | — | 91.20 ± 0.20 | "
			       "91.20 ± 0.20 | 3 | — | 100.0 | 100.0 |"));
	assert_non_null(strstr(md, "| l1 | macs=0.5 | 0.497 | 71.00 ± 1.00 | "
			       "90.20 ± 0.20 | 3 | -1.00 | 51.4 | 50.0 | "
			       "0.297 / 0.100 / 0.0900 | 1.90× | 2.30× / 2.10× | "
			       "1.20 / 40.3 |"));
	assert_non_null(strstr(md, "| random | macs=0.5 | 0.497 | 80.00 ± 0.00"
			       " | 85.20 ± 0.20 † | 3 | -6.00 |"));
	assert_non_null(strstr(md, "| magnitude | macs=0.5 | 0.497 | "
			       "88.00 ± 0.00 | 90.30 ± 0.20 | 3 | -0.90 |"));
	assert_non_null(strstr(md, "| l1 (scratch-E) | macs=0.5 | 0.497 | 10.00"
			       " | 88.00 | 1 | -3.20 |"));
	assert_non_null(strstr(md, "| slimming | macs=0.7 | — | diverged | "
			       "diverged | 0 |"));
	assert_non_null(strstr(md, "0.200 → 0.360 → 0.488"));
	assert_non_null(strstr(md, "† differs from the best pruned model"));
	assert_non_null(strstr(md, "l1 @ macs=0.7: 1 of 3 cells diverged"));
	assert_non_null(strstr(md, "slimming @ macs=0.7: 2 of 2 cells "
			       "diverged"));
	/* The marker appears in exactly one row (plus its footnote). */
	{
		int n = 0;
		for (const char *p = md; (p = strstr(p, "†")); p++)
			n++;
		assert_int_equal(n, 2);
	}

	/* CSV: raw numbers, no ±. */
	assert_null(strstr(csv, "±"));
	assert_non_null(strstr(csv, "label,method,kind,target,"));
	assert_non_null(strstr(csv, "\ndense,dense,dense,,,,3,3,0,0,0,91.2,0.2"));
	assert_non_null(strstr(csv, "\nl1,l1,prune,macs=0.5,0.5,0.497,3,3,0,0,"
			       "0,71,1,"));
	assert_non_null(strstr(csv, "\nslimming,slimming,prune,macs=0.7,,,2,0,"
			       "2,0,0,"));
	assert_non_null(strstr(csv, ",0.2;0.36;0.488,"));
	assert_non_null(strstr(csv, ",1.7,1.9,"));  /* speedup b1, b128 */
	/* then the sparse kernel's: no latencies, speedups b1, b128 */
	assert_non_null(strstr(csv, ",1.7,1.9,,,2.3,2.1,"));

	/* LaTeX: booktabs rules, $\pm$, dagger, escaped names. */
	assert_non_null(strstr(tex, "\\toprule"));
	assert_non_null(strstr(tex, "\\midrule"));
	assert_non_null(strstr(tex, "\\bottomrule"));
	assert_non_null(strstr(tex, "90.20 $\\pm$ 0.20"));
	assert_non_null(strstr(tex, "85.20 $\\pm$ 0.20$^\\dagger$"));
	assert_non_null(strstr(tex, "$-1.00$"));
	assert_null(strstr(tex, "±"));
	assert_non_null(strstr(tex, "\\end{tabular}"));

	free(md);
	free(csv);
	free(tex);
	free(printed);
	tu_rm_tree(dir);
}

static void test_ci_option(void **state)
{
	char *dir = write_fixture(NULL);
	pb_table_opts o = { .ci = 1 };
	pb_error err = { 0 };
	char *md;
	(void)state;

	assert_int_equal(pb_table_write_ex(dir, &o, NULL, NULL, &err), 0);
	md = slurp(dir, "table.md");
	/* 4.3027 * 0.2 / sqrt(3) = 0.4968 */
	assert_non_null(strstr(md, "| dense | — | — | 91.20 ± 0.50 |"));
	assert_non_null(strstr(md, "95% confidence half-width"));
	free(md);
	tu_rm_tree(dir);
}

static void test_missing_and_empty(void **state)
{
	char *dir = tu_temp_dir(), path[512];
	pb_error err = { 0 };
	FILE *f;
	(void)state;

	assert_int_equal(pb_table_write_ex(dir, NULL, NULL, NULL, &err),
			 PB_EIO);
	assert_non_null(strstr(err.msg, "runs.jsonl"));
	snprintf(path, sizeof path, "%s/runs.jsonl", dir);
	f = fopen(path, "w");
	fputs("{\"v\": 2, \"kind\": \"dense\", \"status\": \"ok\", "
	      "\"seed\": 1}\n", f);
	fclose(f);
	assert_int_equal(pb_table_write_ex(dir, NULL, NULL, NULL, &err),
			 PB_EFORMAT);
	assert_non_null(strstr(err.msg, "no finished cell"));
	tu_rm_tree(dir);
}

static void test_plot_data(void **state)
{
	char *dir = write_fixture(NULL), *series, *dat;
	pb_table t;
	pb_error err = { 0 };
	(void)state;

	load(dir, &t, NULL, NULL);
	assert_int_equal(pb_table_write_plot_data(&t, dir, &err), 0);
	series = slurp(dir, "plots/series.txt");
	assert_non_null(strstr(series, "00.dat\tl1\tprune\n"));
	assert_non_null(strstr(series, "\tl1 (scratch-E)\tscratch\n"));
	assert_null(strstr(series, "slimming"));  /* nothing to draw */
	dat = slurp(dir, "plots/00.dat");
	/* l1: both targets, ordered by MACs kept. */
	assert_non_null(strstr(dat, " 90.2 0.2 macs=0.5 "));
	assert_non_null(strstr(dat, " 87.2 "));
	free(series);
	free(dat);
	pb_table_free(&t);
	tu_rm_tree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_files),
		cmocka_unit_test(test_ci_option),
		cmocka_unit_test(test_missing_and_empty),
		cmocka_unit_test(test_plot_data),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
