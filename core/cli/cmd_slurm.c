/* prunebench slurm: an experiment as two Slurm job arrays, the dense
 * models (one task per seed) and then the cells (one task per shard,
 * started when every dense task has succeeded). Writes the sbatch
 * script, prints the sbatch commands or submits them. Slurm does the
 * scheduling; each task is an ordinary `prunebench run --phase ...`. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/file.h"
#include "cli/cli.h"
#include "prunebench/experiment.h"
#include "prunebench/plugin.h"

extern char **environ;

static const char slurm_usage[] =
	"Usage: prunebench slurm EXPERIMENT.ini [options]\n"
	"\n"
	"Writes an sbatch script that runs the experiment as two Slurm job\n"
	"arrays: the dense models (one task per seed), then the cells (one\n"
	"task per shard, balanced by estimated cost), which start once every\n"
	"dense task has succeeded. Each task runs prunebench with --threads\n"
	"$SLURM_CPUS_PER_TASK and logs to OUTPUT/slurm/dense-JOB_TASK.log or\n"
	"cells-JOB_TASK.log. Prints the sbatch commands (a shell script: pipe\n"
	"it to sh), or submits them. Arrays list only the seeds and shards\n"
	"with cells not yet in OUTPUT/runs.jsonl, so submitting again after\n"
	"a failure or a timeout runs only what is missing.\n"
	"\n"
	"  --shards N          cell tasks (default: one per 8 cells, at most\n"
	"                      1000); keep N when submitting again\n"
	"  --cpus-per-task C   CPUs of each task (default: the experiment's\n"
	"                      `threads`, else 4)\n"
	"  --partition P       sbatch --partition (default: the cluster's)\n"
	"  --time T            sbatch --time, per task (default: the\n"
	"                      partition's)\n"
	"  --mem M             sbatch --mem, per task (default: the\n"
	"                      cluster's)\n"
	"  --array-max K       at most K tasks of each array at once\n"
	"  --out FILE          the script (default OUTPUT/slurm/NAME.sbatch)\n"
	"  --output DIR        results folder instead of the experiment's\n"
	"                      `output`\n"
	"  --plugin-dir DIR    also search DIR for plugins, here and in the\n"
	"                      tasks (repeatable)\n"
	"  --inner-threads N   threads inside each cell, in the tasks\n"
	"  --prunebench PATH   the program the tasks run (default: this one)\n"
	"  --submit            submit both arrays (sbatch --parsable) and print\n"
	"                      their job ids\n"
	"\n"
	"When the cells are done: prunebench table OUTPUT. See\n"
	"docs/cluster.md.\n";

enum { OPT_SHARDS = 256, OPT_CPUS, OPT_PARTITION, OPT_TIME, OPT_MEM,
       OPT_ARRAY_MAX, OPT_OUT, OPT_OUTPUT, OPT_INNER, OPT_PROGRAM,
       OPT_SUBMIT };

static const struct option slurm_opts[] = {
	{ "shards", required_argument, NULL, OPT_SHARDS },
	{ "cpus-per-task", required_argument, NULL, OPT_CPUS },
	{ "partition", required_argument, NULL, OPT_PARTITION },
	{ "time", required_argument, NULL, OPT_TIME },
	{ "mem", required_argument, NULL, OPT_MEM },
	{ "array-max", required_argument, NULL, OPT_ARRAY_MAX },
	{ "out", required_argument, NULL, OPT_OUT },
	{ "output", required_argument, NULL, OPT_OUTPUT },
	{ "plugin-dir", required_argument, NULL, 'P' },
	{ "inner-threads", required_argument, NULL, OPT_INNER },
	{ "prunebench", required_argument, NULL, OPT_PROGRAM },
	{ "submit", no_argument, NULL, OPT_SUBMIT },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

#define MAX_SHARDS 1000   /* Slurm's default MaxArraySize is 1001 */

typedef struct slurm_job {
	const pb_experiment *e;
	long shards, cpus, array_max, inner;
	const char *partition, *time, *mem;
	char *dirs[CLI_MAX_DIRS];
	char *abs_dirs[CLI_MAX_DIRS];  /* malloc-ed absolute forms, or NULL */
	int n_dirs;
	char program[PATH_MAX], exp[PATH_MAX], out_dir[PATH_MAX];
	char script[PATH_MAX], logs[PATH_MAX];
	/* Array indices with work: seeds (by index) and shards. */
	char dense_array[4096], cells_array[4096];
	int n_dense, n_cells_tasks, todo, total;
	double load_min, load_max;
} slurm_job;

/* s in single quotes for the shell, quotes inside it escaped. */
static void sh_quote(FILE *f, const char *s)
{
	fputc('\'', f);
	for (; *s; s++)
		if (*s == '\'')
			fputs("'\\''", f);
		else
			fputc(*s, f);
	fputc('\'', f);
}

/* The program the tasks run: this one, or in a build tree the libtool
 * wrapper beside .libs/ that sets the library path for it. */
static int find_program(char *out, size_t n)
{
	char self[PATH_MAX], wrapper[PATH_MAX + 8];
	ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
	char *slash;

	if (len <= 0)
		return -1;
	self[len] = '\0';
	snprintf(out, n, "%s", self);
	slash = strrchr(self, '/');
	if (slash && slash - self >= 6 && !strncmp(slash - 6, "/.libs", 6)) {
		const char *name = slash + 1;

		if (!strncmp(name, "lt-", 3))
			name += 3;
		snprintf(wrapper, sizeof wrapper, "%.*s/%s",
			 (int)(slash - 6 - self), self, name);
		if (!access(wrapper, X_OK) &&
		    snprintf(out, n, "%s", wrapper) >= (int)n)
			return -1;
	}
	return 0;
}

/* "0-3,5,7-9" (then "%K") for the indices where want[i]. */
static int array_spec(const int *want, int n, long max, char *out,
		      size_t cap)
{
	size_t k = 0;
	int count = 0;

	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		int j = i;

		if (!want[i])
			continue;
		while (j + 1 < n && want[j + 1])
			j++;
		k += (size_t)snprintf(out + k, cap - k, j > i ? "%s%d-%d" :
				      "%s%d", k ? "," : "", i, j);
		count += j - i + 1;
		i = j;
		if (k >= cap - 16)
			return -1;
	}
	if (count && max > 0)
		snprintf(out + k, cap - k, "%%%ld", max);
	return count;
}

/* Which seeds and shards have cells not yet in runs.jsonl (the sweep's
 * rule: ok and diverged cells are done, failed and crashed run again). */
static int plan(slurm_job *j, pb_error *err)
{
	const pb_experiment *e = j->e;
	pb_cell *cells = NULL;
	pb_record *recs = NULL;
	int n = 0, n_recs = 0, *shard_of = NULL, *seed_todo = NULL;
	int *shard_todo = NULL, rc;
	double *load = NULL;
	char path[PATH_MAX + 16];

	if ((rc = pb_experiment_cells(e, &cells, &n, err)))
		return rc;
	if (j->shards <= 0)
		j->shards = (n + 7) / 8 > MAX_SHARDS ? MAX_SHARDS :
			    (n + 7) / 8 > 0 ? (n + 7) / 8 : 1;
	snprintf(path, sizeof path, "%s/runs.jsonl", j->out_dir);
	shard_of = calloc((size_t)(n ? n : 1), sizeof *shard_of);
	shard_todo = calloc((size_t)j->shards, sizeof *shard_todo);
	seed_todo = calloc((size_t)e->n_seeds, sizeof *seed_todo);
	load = calloc((size_t)j->shards, sizeof *load);
	if (!shard_of || !shard_todo || !seed_todo || !load) {
		rc = pb_error_set(err, PB_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = pb_experiment_shards(e, cells, n, (int)j->shards, shard_of,
				       load, err)) ||
	    (rc = pb_records_read(path, 1, &recs, &n_recs, NULL, stderr, err)))
		goto out;
	j->total = n;
	j->todo = 0;
	for (int i = 0; i < n; i++) {
		int done = 0;

		for (int k = 0; k < n_recs && !done; k++)
			done = !strcmp(recs[k].id, cells[i].id) &&
			       (recs[k].status == PB_CELL_OK ||
				recs[k].status == PB_CELL_DIVERGED);
		if (done)
			continue;
		j->todo++;
		shard_todo[shard_of[i]] = 1;
		for (int s = 0; s < e->n_seeds; s++)
			if (e->seeds[s] == cells[i].seed)
				seed_todo[s] = 1;
	}
	j->load_min = j->load_max = load[0];
	for (int s = 1; s < j->shards; s++) {
		if (load[s] < j->load_min)
			j->load_min = load[s];
		if (load[s] > j->load_max)
			j->load_max = load[s];
	}
	j->n_dense = array_spec(seed_todo, e->n_seeds, j->array_max,
				j->dense_array, sizeof j->dense_array);
	j->n_cells_tasks = array_spec(shard_todo, (int)j->shards,
				      j->array_max, j->cells_array,
				      sizeof j->cells_array);
	if (j->n_dense < 0 || j->n_cells_tasks < 0)
		rc = pb_error_set(err, PB_EINVAL, "too many array indices for "
				  "one sbatch --array; use fewer --shards");
out:
	pb_records_free(recs, n_recs);
	free(shard_of);
	free(shard_todo);
	free(seed_todo);
	free(load);
	free(cells);
	return rc;
}

/* ---- the script ----------------------------------------------------------- */

static void sbatch_line(FILE *f, const char *opt, const char *value)
{
	if (value)
		fprintf(f, "#SBATCH --%s=%s\n", opt, value);
}

/* The sbatch options of one array, as words. */
static int array_args(const slurm_job *j, int dense, const char *after,
		      char **argv, char *buf, size_t cap)
{
	int n = 0;
	size_t k = 0;
	const char *name = j->e->name, *what = dense ? "dense" : "cells";

#define ADD(...) do { \
		argv[n++] = buf + k; \
		k += (size_t)snprintf(buf + k, cap - k, __VA_ARGS__) + 1; \
	} while (0)
	ADD("--parsable");
	ADD("--job-name=%s-%s", name, what);
	ADD("--array=%s", dense ? j->dense_array : j->cells_array);
	ADD("--output=%s/%s-%%A_%%a.log", j->logs, what);
	if (after) {
		ADD("--dependency=afterok:%s", after);
		/* A failed dense task would leave the cells pending forever. */
		ADD("--kill-on-invalid-dep=yes");
	}
	ADD("%s", j->script);
	ADD("%s", what);
#undef ADD
	argv[n] = NULL;
	return k < cap ? n : -1;
}

static int write_script(const slurm_job *j, pb_error *err)
{
	const pb_experiment *e = j->e;
	char cpus[32], *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	int rc;

	if (!f)
		return pb_error_set(err, PB_ENOMEM, "out of memory");
	snprintf(cpus, sizeof cpus, "%ld", j->cpus);
	fprintf(f, "#!/bin/bash\n"
		"# %s on Slurm, written by `prunebench slurm` (docs/cluster.md).\n"
		"# Two job arrays of this script:\n"
		"#   dense: task I trains (or loads from the cache) the dense "
		"model of seeds[I];\n"
		"#   cells: task I runs the cells of shard I of %ld, once every "
		"dense task has\n"
		"#          succeeded (sbatch --dependency=afterok:DENSE_JOB).\n"
		"# Submit: prunebench slurm EXPERIMENT.ini --submit (or the "
		"sbatch commands it\n"
		"# prints). Submitting again runs only the cells not yet in "
		"runs.jsonl; keep\n"
		"# the shard count (--shards %ld).\n", e->name, j->shards,
		j->shards);
	fprintf(f, "#SBATCH --nodes=1\n#SBATCH --ntasks=1\n");
	sbatch_line(f, "cpus-per-task", cpus);
	sbatch_line(f, "partition", j->partition);
	sbatch_line(f, "time", j->time);
	sbatch_line(f, "mem", j->mem);
	fprintf(f, "\nprunebench=");
	sh_quote(f, j->program);
	fprintf(f, "\nexperiment=");
	sh_quote(f, j->exp);
	fprintf(f, "\noutput=");
	sh_quote(f, j->out_dir);
	fprintf(f, "\nseeds=(");
	for (int s = 0; s < e->n_seeds; s++)
		fprintf(f, "%s%lu", s ? " " : "", e->seeds[s]);
	fprintf(f, ")\nshards=%ld\nextra=(", j->shards);
	for (int i = 0; i < j->n_dirs; i++) {
		fprintf(f, "%s--plugin-dir ", i ? " " : "");
		sh_quote(f, j->dirs[i]);
	}
	if (j->inner > 0)
		fprintf(f, "%s--inner-threads %ld", j->n_dirs ? " " : "",
			j->inner);
	fprintf(f, ")\n"
		"threads=${SLURM_CPUS_PER_TASK:-1}\n"
		"task=${SLURM_ARRAY_TASK_ID:?submit this script with sbatch "
		"--array}\n"
		"\n"
		"echo \"prunebench ${1:-?} task $task of job "
		"${SLURM_ARRAY_JOB_ID:-?} on $(hostname), $threads "
		"threads\" >&2\n"
		"case ${1:-} in\n"
		"dense)\n"
		"\texec \"$prunebench\" run \"$experiment\" --output "
		"\"$output\" --phase dense \\\n"
		"\t\t--seed \"${seeds[$task]}\" --threads \"$threads\" "
		"${extra[@]+\"${extra[@]}\"} ;;\n"
		"cells)\n"
		"\texec \"$prunebench\" run \"$experiment\" --output "
		"\"$output\" --phase cells \\\n"
		"\t\t--shard \"$task/$shards\" --threads \"$threads\" "
		"--no-table ${extra[@]+\"${extra[@]}\"} ;;\n"
		"*)\n"
		"\techo \"usage: sbatch --array=... $0 dense|cells\" >&2\n"
		"\texit 2 ;;\n"
		"esac\n");
	if (fclose(f))
		return pb_error_set(err, PB_ENOMEM, "out of memory");
	rc = pbi_write_atomic(j->script, text, len, "sbatch script", err);
	free(text);
	if (!rc && chmod(j->script, 0755))
		rc = pb_error_set(err, PB_EIO, "%s: %s", j->script,
				  strerror(errno));
	return rc;
}

/* ---- submitting ------------------------------------------------------------ */

/* Runs sbatch with args; its --parsable output's job id into id. Its
 * stderr goes to ours. */
static int sbatch(char **args, char *id, size_t n, pb_error *err)
{
	char *argv[24], buf[256];
	posix_spawn_file_actions_t fa;
	int p[2], status = 0, k = 0;
	size_t len = 0;
	ssize_t r;
	pid_t pid;

	argv[k++] = "sbatch";
	for (int i = 0; args[i] && k < 23; i++)
		argv[k++] = args[i];
	argv[k] = NULL;
	if (pipe(p))
		return pb_error_set(err, PB_EIO, "pipe: %s", strerror(errno));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_addclose(&fa, p[0]);
	errno = posix_spawnp(&pid, "sbatch", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (errno) {
		int e = errno;

		close(p[0]);
		return pb_error_set(err, PB_EIO, "cannot run sbatch: %s; run "
				    "this on a machine that submits Slurm jobs",
				    strerror(e));
	}
	while (len < sizeof buf - 1 &&
	       ((r = read(p[0], buf + len, sizeof buf - 1 - len)) > 0 ||
		(r < 0 && errno == EINTR)))
		len += r > 0 ? (size_t)r : 0;
	buf[len] = '\0';
	close(p[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	/* --parsable prints "ID" or "ID;CLUSTER". */
	buf[strcspn(buf, ";\n")] = '\0';
	if (!WIFEXITED(status) || WEXITSTATUS(status) || !buf[0])
		return pb_error_set(err, PB_EIO, "sbatch failed (%s)",
				    WIFEXITED(status) ? "see its message above" :
				    "killed");
	snprintf(id, n, "%s", buf);
	return 0;
}

static void print_command(FILE *f, char **argv)
{
	for (int i = 0; argv[i]; i++) {
		fputc(' ', f);
		if (strpbrk(argv[i], " '\"$`\\;&|<>()*?[]#~{}!"))
			sh_quote(f, argv[i]);
		else
			fputs(argv[i], f);
	}
}

int cmd_slurm(int argc, char **argv)
{
	slurm_job j = { 0 };
	pb_experiment *e = NULL;
	pb_plugin_path *sp = NULL;
	pb_error err = { 0 };
	const char *output = NULL, *out = NULL, *program = NULL;
	char *dense_argv[16], *cells_argv[16], dbuf[8192], cbuf[8192];
	char dense_id[256], cells_id[256];
	int opt, submit = 0, rc = 1;
	long v;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", slurm_opts, NULL)) != -1) {
		switch (opt) {
		case OPT_SHARDS:
			if (cli_int("--shards", optarg, 1, MAX_SHARDS, &v))
				return 2;
			j.shards = v;
			break;
		case OPT_CPUS:
			if (cli_int("--cpus-per-task", optarg, 1, 4096, &v))
				return 2;
			j.cpus = v;
			break;
		case OPT_ARRAY_MAX:
			if (cli_int("--array-max", optarg, 1, 100000, &v))
				return 2;
			j.array_max = v;
			break;
		case OPT_INNER:
			if (cli_int("--inner-threads", optarg, 1, 1024, &v))
				return 2;
			j.inner = v;
			break;
		case OPT_PARTITION: j.partition = optarg; break;
		case OPT_TIME: j.time = optarg; break;
		case OPT_MEM: j.mem = optarg; break;
		case OPT_OUT: out = optarg; break;
		case OPT_OUTPUT: output = optarg; break;
		case OPT_PROGRAM: program = optarg; break;
		case OPT_SUBMIT: submit = 1; break;
		case 'P':
			if (cli_push("slurm", "--plugin-dir", j.dirs, &j.n_dirs,
				     CLI_MAX_DIRS, optarg))
				return 2;
			break;
		case 'h': fputs(slurm_usage, stdout); return 0;
		default: return cli_usage_error("slurm", "bad option");
		}
	}
	if (optind != argc - 1)
		return cli_usage_error("slurm", "expected one EXPERIMENT.ini");
	if (cli_plugin_path("slurm", j.dirs, j.n_dirs, &sp))
		return 1;
	if (pb_experiment_load(&e, argv[optind], sp, &err)) {
		cli_fail("slurm", &err);
		goto out;
	}
	j.e = e;
	if (!j.cpus)
		j.cpus = e->threads > 0 ? e->threads : 4;
	/* The tasks run elsewhere, from other folders: absolute paths. */
	if (!realpath(e->path, j.exp)) {
		pb_error_set(&err, PB_EIO, "%s: %s", e->path, strerror(errno));
		cli_fail("slurm", &err);
		goto out;
	}
	snprintf(j.logs, sizeof j.logs, "%s/slurm", output ? output :
		 e->output);
	if (pbi_mkdirs(j.logs, &err) ||
	    !realpath(output ? output : e->output, j.out_dir) ||
	    snprintf(j.logs, sizeof j.logs, "%s/slurm", j.out_dir) < 0) {
		if (!err.msg[0])
			pb_error_set(&err, PB_EIO, "%s: %s", j.logs,
				     strerror(errno));
		cli_fail("slurm", &err);
		goto out;
	}
	for (int i = 0; i < j.n_dirs; i++)
		if ((j.abs_dirs[i] = realpath(j.dirs[i], NULL)))
			j.dirs[i] = j.abs_dirs[i];
	if (program)
		snprintf(j.program, sizeof j.program, "%s", program);
	else if (find_program(j.program, sizeof j.program))
		snprintf(j.program, sizeof j.program, "prunebench");
	if ((out ? snprintf(j.script, sizeof j.script, "%s", out) :
	     snprintf(j.script, sizeof j.script, "%s/%s.sbatch", j.logs,
		      e->name)) >= (int)sizeof j.script)
		pb_error_set(&err, PB_EINVAL, "the script's path is too long");
	if (err.msg[0] || plan(&j, &err) || write_script(&j, &err)) {
		cli_fail("slurm", &err);
		goto out;
	}
	fprintf(stderr, "wrote %s: %d seed%s, %ld shard%s of %d cells "
		"(estimated %.1f to %.1f epochs of training each); %d of "
		"the cells to run\n", j.script, e->n_seeds,
		e->n_seeds > 1 ? "s" : "", j.shards, j.shards > 1 ? "s" : "",
		j.total, j.load_min, j.load_max, j.todo);
	if (!j.todo) {
		fprintf(stderr, "all %d cells are in %s/runs.jsonl: nothing "
			"to submit; the table: prunebench table %s\n", j.total,
			j.out_dir, j.out_dir);
		rc = 0;
		goto out;
	}
	if (array_args(&j, 1, NULL, dense_argv, dbuf, sizeof dbuf) < 0 ||
	    array_args(&j, 0, submit ? "DENSE" : "${dense%%;*}", cells_argv,
		       cbuf, sizeof cbuf) < 0) {
		pb_error_set(&err, PB_EINVAL, "paths too long");
		cli_fail("slurm", &err);
		goto out;
	}
	if (!submit) {
		printf("dense=$(sbatch");
		print_command(stdout, dense_argv);
		printf(") &&\nsbatch");
		/* The dependency refers to the shell variable: unquoted. */
		for (int i = 0; cells_argv[i]; i++) {
			if (!strncmp(cells_argv[i], "--dependency=", 13))
				printf(" \"%s\"", cells_argv[i]);
			else
				print_command(stdout, (char *[]){ cells_argv[i],
								  NULL });
		}
		printf("\n");
		fprintf(stderr, "submit with the commands above (or "
			"--submit); logs in %s; when the cells are done: "
			"prunebench table %s\n", j.logs, j.out_dir);
		rc = 0;
		goto out;
	}
	if (sbatch(dense_argv, dense_id, sizeof dense_id, &err)) {
		cli_fail("slurm", &err);
		goto out;
	}
	if (array_args(&j, 0, dense_id, cells_argv, cbuf, sizeof cbuf) < 0 ||
	    sbatch(cells_argv, cells_id, sizeof cells_id, &err)) {
		cli_fail("slurm", &err);
		fprintf(stderr, "the dense array (job %s) was submitted; cancel "
			"it with scancel %s, or submit the cells again\n",
			dense_id, dense_id);
		goto out;
	}
	printf("dense %s\ncells %s\n", dense_id, cells_id);
	fprintf(stderr, "submitted: dense models job %s (array %s), cells job "
		"%s (array %s) after it; logs in %s; when the cells are done: "
		"prunebench table %s\n", dense_id, j.dense_array, cells_id,
		j.cells_array, j.logs, j.out_dir);
	rc = 0;
out:
	for (int i = 0; i < j.n_dirs; i++)
		free(j.abs_dirs[i]);
	pb_experiment_free(e);
	pb_plugin_path_free(sp);
	return rc;
}
