/* prunebench run: run (or resume) every cell of an experiment, then print
 * its table. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "prunebench/experiment.h"
#include "prunebench/plugin.h"
#include "prunebench/table.h"

static const char run_usage[] =
	"Usage: prunebench run EXPERIMENT.ini [options]\n"
	"\n"
	"Runs every cell of the experiment that is not yet in\n"
	"OUTPUT/runs.jsonl (dense models come from the cache or are trained\n"
	"once per seed), then writes and prints the table. Re-running the\n"
	"same command resumes an interrupted sweep.\n"
	"\n"
	"  --threads N         total threads (default: the experiment's\n"
	"                      `threads`, else all cores)\n"
	"  --inner-threads N   threads inside each cell (default: spare\n"
	"                      threads go inside when cells are fewer)\n"
	"  --only METHOD       only this method: dense, dense+ft or a NAME\n"
	"                      of [prune.NAME]\n"
	"  --dry-run           list the cells (todo/done) and run nothing\n"
	"  --plugin-dir DIR    also search DIR for plugins (repeatable)\n"
	"  --output DIR        results folder instead of the experiment's\n"
	"                      `output` (a separate copy of the sweep)\n"
	"  --no-table          do not write or print the table at the end\n"
	"  --quiet             no progress output\n"
	"\n"
	"Exit status: 0 when every cell ran (diverged cells included), 1 when\n"
	"a cell failed or the sweep could not run, 2 for a usage error.\n";

enum { OPT_INNER = 256, OPT_NO_TABLE, OPT_QUIET, OPT_DRY, OPT_OUTPUT };

static const struct option run_opts[] = {
	{ "threads", required_argument, NULL, 't' },
	{ "inner-threads", required_argument, NULL, OPT_INNER },
	{ "only", required_argument, NULL, 'o' },
	{ "dry-run", no_argument, NULL, OPT_DRY },
	{ "plugin-dir", required_argument, NULL, 'P' },
	{ "no-table", no_argument, NULL, OPT_NO_TABLE },
	{ "output", required_argument, NULL, OPT_OUTPUT },
	{ "quiet", no_argument, NULL, OPT_QUIET },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

#define MAX_DIRS 32

int cmd_run(int argc, char **argv)
{
	pb_run_opts ro = { 0 };
	pb_run_summary sum = { 0 };
	pb_experiment *e = NULL;
	pb_plugin_path *sp = NULL;
	pb_error err = { 0 };
	char *dirs[MAX_DIRS];
	const char *output = NULL;
	int n_dirs = 0, opt, quiet = 0, table = 1, rc;
	long v;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", run_opts, NULL)) != -1) {
		switch (opt) {
		case 't':
			if (cli_int("--threads", optarg, 1, 1024, &v))
				return 2;
			ro.threads = (int)v;
			break;
		case OPT_INNER:
			if (cli_int("--inner-threads", optarg, 1, 1024, &v))
				return 2;
			ro.inner_threads = (int)v;
			break;
		case 'o': ro.only = optarg; break;
		case OPT_DRY: ro.dry_run = 1; break;
		case 'P':
			if (n_dirs == MAX_DIRS)
				return cli_usage_error("run", "at most %d "
						       "--plugin-dir", MAX_DIRS);
			dirs[n_dirs++] = optarg;
			break;
		case OPT_NO_TABLE: table = 0; break;
		case OPT_OUTPUT: output = optarg; break;
		case OPT_QUIET: quiet = 1; break;
		case 'h': fputs(run_usage, stdout); return 0;
		default: return cli_usage_error("run", "bad option");
		}
	}
	if (optind != argc - 1)
		return cli_usage_error("run", "expected one EXPERIMENT.ini");
	if (cli_plugin_path("run", dirs, n_dirs, &sp))
		return 1;
	rc = pb_experiment_load(&e, argv[optind], sp, &err);
	if (rc) {
		pb_plugin_path_free(sp);
		return cli_fail("run", &err);
	}
	if (output) {
		char *dup = strdup(output);
		if (!dup) {
			pb_experiment_free(e);
			pb_plugin_path_free(sp);
			return cli_usage_error("run", "out of memory");
		}
		free(e->output);
		e->output = dup;
	}
	ro.progress = quiet ? NULL : stderr;
	ro.list = stdout;
	/* The sweep manages OpenMP and BLAS threads itself, per phase. */
	rc = pb_experiment_run(e, &ro, &sum, &err);
	if (rc) {
		cli_fail("run", &err);
	} else if (!ro.dry_run) {
		if (!quiet)
			fprintf(stderr, "%s: %d cells: %d ok, %d diverged, %d "
				"failed, %d already done (%.1fs)\n", e->name,
				sum.total, sum.ok, sum.diverged, sum.failed,
				sum.skipped, sum.seconds);
		if (table && pb_table_write(e->output, stdout, &err)) {
			cli_fail("run", &err);
			rc = 1;
		}
	}
	pb_experiment_free(e);
	pb_plugin_path_free(sp);
	if (rc)
		return 1;
	return sum.failed ? 1 : 0;
}
