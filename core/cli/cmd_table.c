/* prunebench table: results/NAME/runs.jsonl -> table.md, table.csv,
 * table.tex (and plot data with --plots). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "prunebench/table.h"

static const char table_usage[] =
	"Usage: prunebench table RESULTS_DIR [--ci] [--plots] [--quiet]\n"
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
	"\n"
	"Malformed lines of runs.jsonl (a half-written last line after a\n"
	"crash) are reported and skipped.\n";

int cmd_table(int argc, char **argv)
{
	pb_table_opts o = { 0 };
	pb_error err = { 0 };
	const char *dir = NULL;
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
	if (pb_table_write_ex(dir, &o, quiet ? NULL : stdout, stderr, &err))
		return cli_fail("table", &err);
	if (plots) {
		pb_record *cells = NULL;
		pb_table t;
		char path[4096];
		int n = 0;

		snprintf(path, sizeof path, "%s/runs.jsonl", dir);
		/* Warnings were already printed while writing the tables. */
		if (pb_records_read(path, 0, &cells, &n, NULL, NULL, &err))
			return cli_fail("table", &err);
		if (pb_table_build(cells, n, &t, &err)) {
			pb_records_free(cells, n);
			return cli_fail("table", &err);
		}
		pb_records_free(cells, n);
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
