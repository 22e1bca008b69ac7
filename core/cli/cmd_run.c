/* prunebench run: run (or resume) every cell of an experiment, then print
 * its table. */
#include <fcntl.h>
#include <getopt.h>
#include <unistd.h>
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
	"  --dry-run           list the cells (todo/done), the epochs of training\n"
	"                      per method and an estimated wall time; run nothing\n"
	"  --no-calibrate      with --dry-run: epochs only, no timing on this machine\n"
	"  --plugin-dir DIR    also search DIR for plugins (repeatable)\n"
	"  --output DIR        results folder instead of the experiment's\n"
	"                      `output` (a separate copy of the sweep)\n"
	"  --no-retry          keep failed and crashed cells as recorded (by\n"
	"                      default they run again; diverged cells are\n"
	"                      results and never run again)\n"
	"  --in-process        run the cells in this process, not each in a\n"
	"                      process of its own (for debugging a plugin:\n"
	"                      its crash then ends the sweep)\n"
	"  --no-table          do not write or print the table at the end\n"
	"  --quiet             no progress output\n"
	"\n"
	"Many tasks at once (a cluster's job arrays; docs/cluster.md):\n"
	"  --phase dense       only load or train the dense models the cells\n"
	"                      need (one per seed), for the cells phase\n"
	"  --phase cells       only run cells; a dense model missing from the\n"
	"                      cache is an error (run the dense phase first)\n"
	"  --phase all         both, one after the other (the default without\n"
	"                      --shard)\n"
	"  --shard I/N         only shard I of N (0 <= I < N): the cells of\n"
	"                      shard I, balanced by estimated cost, the same\n"
	"                      for every run of the file (implies --phase\n"
	"                      cells unless --phase says otherwise); with\n"
	"                      --phase dense, the seeds whose index is I mod N\n"
	"  --seed S            only the cells and dense model of seed S\n"
	"Shards append to the same OUTPUT/runs.jsonl under a lock; `prunebench\n"
	"slurm` writes and submits the job arrays.\n"
	"\n"
	"Each cell runs in a process of its own (`prunebench run FILE --cell\n"
	"ID --report-fd N`, started by the sweep), so a plugin that crashes,\n"
	"aborts or exits is recorded as crashed and the others go on. Once\n"
	"no cell is left to start, the threads of finished workers go to the\n"
	"cells still running, in their own trainings (the same numbers at\n"
	"any thread count; a cell's log says when).\n"
	"\n"
	"Exit status: 0 when every cell ran (diverged cells included), 1 when\n"
	"a cell failed or crashed or the sweep could not run, 2 for a usage\n"
	"error.\n";

enum { OPT_INNER = 256, OPT_NO_CALIBRATE, OPT_NO_TABLE, OPT_QUIET, OPT_DRY, OPT_OUTPUT,
       OPT_NO_RETRY, OPT_IN_PROCESS, OPT_CELL, OPT_REPORT_FD, OPT_CONTROL_FD, OPT_PHASE,
       OPT_SHARD, OPT_SEED };

static const struct option run_opts[] = {
	{ "threads", required_argument, NULL, 't' },
	{ "inner-threads", required_argument, NULL, OPT_INNER },
	{ "only", required_argument, NULL, 'o' },
	{ "dry-run", no_argument, NULL, OPT_DRY },
	{ "no-calibrate", no_argument, NULL, OPT_NO_CALIBRATE },
	{ "plugin-dir", required_argument, NULL, 'P' },
	{ "no-table", no_argument, NULL, OPT_NO_TABLE },
	{ "output", required_argument, NULL, OPT_OUTPUT },
	{ "quiet", no_argument, NULL, OPT_QUIET },
	{ "no-retry", no_argument, NULL, OPT_NO_RETRY },
	{ "in-process", no_argument, NULL, OPT_IN_PROCESS },
	{ "cell", required_argument, NULL, OPT_CELL },
	{ "report-fd", required_argument, NULL, OPT_REPORT_FD },
	{ "control-fd", required_argument, NULL, OPT_CONTROL_FD },
	{ "phase", required_argument, NULL, OPT_PHASE },
	{ "shard", required_argument, NULL, OPT_SHARD },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

static int phase_of(const char *text)
{
	return !strcmp(text, "all") ? PB_PHASE_ALL : !strcmp(text, "dense") ?
	       PB_PHASE_DENSE : !strcmp(text, "cells") ? PB_PHASE_CELLS : -1;
}

/* "I/N", 0 <= I < N; a usage error otherwise. */
static int parse_shard(const char *text, int *shard, int *n_shards)
{
	const char *slash = strchr(text, '/');
	char first[32];
	long i, n;

	if (!slash || slash == text || (size_t)(slash - text) >= sizeof first) {
		cli_usage_error("run", "--shard %s: expected I/N, e.g. "
				"--shard 0/8", text);
		return 1;
	}
	snprintf(first, sizeof first, "%.*s", (int)(slash - text), text);
	if (cli_int("--shard's N", slash + 1, 1, 100000, &n) ||
	    cli_int("--shard's I", first, 0, n - 1, &i))
		return 1;
	*shard = (int)i;
	*n_shards = (int)n;
	return 0;
}

static int fd_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1;
}

/* The sweep's side of `--cell ID --report-fd N`: one cell, its record on
 * the pipe. */
static int run_child(pb_experiment *e, const char *id, pb_run_opts *ro,
		     long fd)
{
	pb_error err = { 0 };

	if (fd < 0)
		return cli_usage_error("run", "--cell needs --report-fd");
	/* Checked before the cell runs: a closed descriptor would otherwise
	 * surface only when the record is sent, after the whole training. */
	if (!fd_open((int)fd))
		return cli_usage_error("run", "--report-fd %ld: not an open "
				       "file descriptor (the sweep passes "
				       "its pipe)", fd);
	if (ro->control_fd && !fd_open(ro->control_fd))
		return cli_usage_error("run", "--control-fd %d: not an open "
				       "file descriptor (the sweep passes "
				       "its socket)", ro->control_fd);
	if (pb_experiment_run_cell(e, id, ro, (int)fd, &err))
		return cli_fail("run", &err);
	return 0;
}

int cmd_run(int argc, char **argv)
{
	pb_run_opts ro = { 0 };
	pb_run_summary sum = { 0 };
	pb_experiment *e = NULL;
	pb_plugin_path *sp = NULL;
	pb_error err = { 0 };
	char *dirs[CLI_MAX_DIRS], *child_args[2 * CLI_MAX_DIRS], self[4096];
	const char *output = NULL, *cell = NULL;
	int n_dirs = 0, opt, quiet = 0, table = 1, in_process = 0, rc;
	int phase = -1;
	long v, report_fd = -1;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", run_opts, NULL)) != -1) {
		switch (opt) {
		case 't':
			if (cli_threads(optarg, &ro.threads))
				return 2;
			break;
		case OPT_INNER:
			if (cli_int("--inner-threads", optarg, 1, 1024, &v))
				return 2;
			ro.inner_threads = (int)v;
			break;
		case 'o': ro.only = optarg; break;
		case OPT_DRY: ro.dry_run = 1; break;
		case OPT_NO_CALIBRATE: ro.no_calibrate = 1; break;
		case 'P':
			if (cli_push("run", "--plugin-dir", dirs, &n_dirs,
				     CLI_MAX_DIRS, optarg))
				return 2;
			break;
		case OPT_NO_TABLE: table = 0; break;
		case OPT_OUTPUT: output = optarg; break;
		case OPT_QUIET: quiet = 1; break;
		case OPT_NO_RETRY: ro.no_retry = 1; break;
		case OPT_IN_PROCESS: in_process = 1; break;
		case OPT_CELL: cell = optarg; break;
		case OPT_REPORT_FD:
			if (cli_int("--report-fd", optarg, 3, 65535,
				    &report_fd))
				return 2;
			break;
		case OPT_CONTROL_FD:
			if (cli_int("--control-fd", optarg, 3, 65535, &v))
				return 2;
			ro.control_fd = (int)v;
			break;
		case OPT_PHASE:
			if ((phase = phase_of(optarg)) < 0)
				return cli_usage_error("run", "--phase %s: "
						       "expected dense, cells "
						       "or all", optarg);
			break;
		case OPT_SHARD:
			if (parse_shard(optarg, &ro.shard, &ro.n_shards))
				return 2;
			break;
		case OPT_SEED:
			if (cli_int("--seed", optarg, 0, 4294967295L, &v))
				return 2;
			ro.has_seed = 1;
			ro.seed = (unsigned long)v;
			break;
		case 'h': fputs(run_usage, stdout); return 0;
		default: return cli_usage_error("run", "bad option");
		}
	}
	if (optind != argc - 1)
		return cli_usage_error("run", "expected one EXPERIMENT.ini");
	/* Both belong to a cell the sweep starts; on a sweep they would be
	 * ignored, which hides a mistyped command. */
	if (!cell && (report_fd >= 0 || ro.control_fd))
		return cli_usage_error("run", "%s is set by the sweep for the "
				       "cells it starts: it needs --cell",
				       report_fd >= 0 ? "--report-fd" :
				       "--control-fd");
	/* Shards run at once: by default they wait for the dense phase
	 * instead of racing to train the same dense models. */
	ro.phase = phase >= 0 ? phase : ro.n_shards ? PB_PHASE_CELLS :
		   PB_PHASE_ALL;
	if (ro.phase == PB_PHASE_DENSE)
		table = 0;
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
	if (cell) {
		rc = run_child(e, cell, &ro, report_fd);
		pb_experiment_free(e);
		pb_plugin_path_free(sp);
		return rc;
	}
	ro.progress = quiet ? NULL : stderr;
	ro.list = stdout;
	if (!in_process) {
		ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);

		if (n > 0) {
			self[n] = '\0';
			ro.cell_exec = self;
		} else if (!quiet) {
			fprintf(stderr, "run: cannot find this program "
				"(/proc/self/exe); cells run in this process\n");
		}
		for (int i = 0; i < n_dirs; i++) {
			child_args[ro.n_child_args++] = "--plugin-dir";
			child_args[ro.n_child_args++] = dirs[i];
		}
		ro.child_args = child_args;
	}
	/* The sweep manages OpenMP and BLAS threads itself, per phase. */
	rc = pb_experiment_run(e, &ro, &sum, &err);
	if (rc) {
		cli_fail("run", &err);
	} else if (!ro.dry_run && ro.phase == PB_PHASE_DENSE) {
		if (!quiet)
			fprintf(stderr, "%s: dense phase: %d dense model%s "
				"trained, %d loaded from the cache (%.1fs)\n",
				e->name, sum.dense_trained,
				sum.dense_trained == 1 ? "" : "s",
				sum.dense_loaded, sum.seconds);
	} else if (!ro.dry_run) {
		if (!quiet)
			fprintf(stderr, "%s: %d cells: %d ok, %d diverged, %d "
				"failed, %d crashed, %d already done (%.1fs)\n",
				e->name, sum.total, sum.ok, sum.diverged,
				sum.failed, sum.crashed, sum.skipped,
				sum.seconds);
		if (!quiet && sum.duplicates)
			fprintf(stderr, "%s: %d cell%s ran here too but another "
				"run recorded %s first; not recorded twice\n",
				e->name, sum.duplicates, sum.duplicates > 1 ?
				"s" : "", sum.duplicates > 1 ? "them" : "it");
		if (table && pb_table_write(e->output, stdout, &err)) {
			cli_fail("run", &err);
			rc = 1;
		}
	}
	pb_experiment_free(e);
	pb_plugin_path_free(sp);
	if (rc)
		return 1;
	return sum.failed || sum.crashed ? 1 : 0;
}
