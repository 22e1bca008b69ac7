/* prunebench table: results/NAME/runs.jsonl -> table.md, table.csv,
 * table.tex (and plot data with --plots). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "prunebench/table.h"

static const char table_usage[] =
	"Usage: prunebench table RESULTS_DIR [--ci] [--plots] [--quiet]\n"
	"       prunebench table RESULTS_DIR --compare ROW_A ROW_B\n"
	"\n"
	"Reads RESULTS_DIR/runs.jsonl (written by prunebench run) and writes\n"
	"RESULTS_DIR/table.md, table.csv and table.tex: one row per method x\n"
	"target over seeds, the dense baseline and the dense + fine-tune\n"
	"control first. Prints the Markdown table.\n"
	"\n"
	"  --ci      show the 95% confidence half-width (t distribution)\n"
	"            instead of the standard deviation\n"
	"  --plots   also write RESULTS_DIR/plots/*.dat for scripts/plots\n"
	"  --quiet   do not print the table\n"
	"  --compare ROW_A ROW_B\n"
	"            only print Welch's t-test of two rows (labels as the\n"
	"            table prints them, e.g. l1 'l1-scratch (scratch-E)')\n"
	"            at every target they share; a control (dense, 'dense +\n"
	"            fine-tune') is compared at each target of the other row.\n"
	"            Writes no files\n"
	"\n"
	"Malformed lines of runs.jsonl (a half-written last line after a\n"
	"crash) are reported and skipped.\n";

/* The table of dir's runs.jsonl, built without writing anything;
 * warnings (skipped lines) on warn. */
static int build(const char *dir, FILE *warn, pb_table *t, pb_error *err)
{
	pb_record *cells = NULL;
	char path[4096];
	int n = 0, rc;

	snprintf(path, sizeof path, "%s/runs.jsonl", dir);
	if ((rc = pb_records_read(path, 0, &cells, &n, NULL, warn, err)))
		return rc;
	rc = pb_table_build(cells, n, t, err);
	pb_records_free(cells, n);
	return rc;
}

static int compare(const char *dir, const char *a, const char *b)
{
	pb_error err = { 0 };
	pb_table t;

	if (build(dir, stderr, &t, &err))
		return cli_fail("table", &err);
	if (pb_table_compare(&t, a, b, stdout, &err)) {
		pb_table_free(&t);
		return cli_fail("table", &err);
	}
	pb_table_free(&t);
	return 0;
}

int cmd_table(int argc, char **argv)
{
	pb_table_opts o = { 0 };
	pb_error err = { 0 };
	const char *dir = NULL, *cmp_a = NULL, *cmp_b = NULL;
	int plots = 0, quiet = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(table_usage, stdout);
			return 0;
		} else if (!strcmp(argv[i], "--ci")) {
			o.ci = 1;
		} else if (!strcmp(argv[i], "--plots")) {
			plots = 1;
		} else if (!strcmp(argv[i], "--quiet")) {
			quiet = 1;
		} else if (!strcmp(argv[i], "--compare")) {
			if (i + 2 >= argc)
				return cli_usage_error("table", "--compare "
						       "needs two row labels");
			cmp_a = argv[++i];
			cmp_b = argv[++i];
		} else if (argv[i][0] == '-' && argv[i][1]) {
			return cli_usage_error("table", "unknown option '%s'",
					       argv[i]);
		} else if (dir) {
			return cli_usage_error("table", "expected one "
					       "RESULTS_DIR, got '%s' and '%s'",
					       dir, argv[i]);
		} else {
			dir = argv[i];
		}
	}
	if (!dir)
		return cli_usage_error("table", "expected RESULTS_DIR "
				       "(e.g. results/quickstart)");
	if (cmp_a) {
		if (o.ci || plots || quiet)
			return cli_usage_error("table", "--compare prints "
					       "only the test: no --ci, "
					       "--plots or --quiet with it");
		return compare(dir, cmp_a, cmp_b);
	}
	if (pb_table_write_ex(dir, &o, quiet ? NULL : stdout, stderr, &err))
		return cli_fail("table", &err);
	if (plots) {
		pb_table t;

		/* Warnings were already printed while writing the tables. */
		if (build(dir, NULL, &t, &err))
			return cli_fail("table", &err);
		if (pb_table_write_plot_data(&t, dir, &err)) {
			pb_table_free(&t);
			return cli_fail("table", &err);
		}
		pb_table_free(&t);
		fprintf(stderr, "plot data in %s/plots; draw the PNGs with "
			"scripts/plots %s\n", dir, dir);
	}
	return 0;
}
