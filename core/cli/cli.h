/* The prunebench command-line tool: one function per sub-command. Each
 * returns the process exit status (0 ok, 1 failure, 2 usage error). */
#ifndef PB_CLI_H
#define PB_CLI_H

#include <stdio.h>

#include "prunebench/prunebench.h"

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_prune(int argc, char **argv);
int cmd_metrics(int argc, char **argv);
int cmd_plugins(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_table(int argc, char **argv);
int cmd_slurm(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_sensitivity(int argc, char **argv);
int cmd_histogram(int argc, char **argv);

/* Shared option handling. */
typedef struct cli_common {
	const char *data;      /* dataset spec text */
	int threads;           /* 0 = all cores */
	unsigned long seed;
	unsigned long split_seed;
} cli_common;

void cli_common_init(cli_common *c);
/* Applies the thread count to OpenMP and OpenBLAS. */
int cli_apply_threads(int threads);
/* Parses an integer/number option value or reports a usage error. */
int cli_int(const char *opt, const char *val, long lo, long hi, long *out);
int cli_double(const char *opt, const char *val, double *out);
/* --threads N (1 to 1024) and --seed S (0 to 2^31 - 1), parsed alike by
 * every command that takes them; 0, or -1 after reporting. */
int cli_threads(const char *val, int *out);
int cli_seed(const char *val, unsigned long *out);
/* Appends the value of a repeatable option OPT (--opt, --plugin-dir) to
 * list[*n] while fewer than max are there; 0, or the usage error's exit
 * status (2). */
int cli_push(const char *cmd, const char *opt, char **list, int *n,
	     int max, char *val);
/* --set KEY=VALUE into the recipe; 0, or the usage error's status (2). */
int cli_recipe_set_kv(const char *cmd, pb_recipe *r, const char *arg);
/* Prints "prunebench CMD: message" to stderr; returns 1. */
int cli_fail(const char *cmd, const pb_error *err);
int cli_usage_error(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* What the commands load from their arguments (core/cli/inputs.c). Each
 * returns 0 or a negative code with err filled; what it allocated before
 * failing is the caller's to free, as on success. */
/* The model of INI with the weights of CKPT (none when CKPT is NULL). */
int cli_load_trained(pb_model **m, const char *ini, const char *ckpt,
		     pb_error *err);
/* The splits of the dataset spec DATA: val_size validation images split
 * off the training set with split_seed. */
int cli_load_splits(pb_splits *sp, const char *data, int val_size,
		    unsigned long split_seed, pb_error *err);

#define CLI_MAX_OPTS 64
#define CLI_MAX_DIRS 32

/* The pruner a command runs: --plugin NAME, its --opt KEY=VALUE and the
 * --plugin-dir folders searched first. */
typedef struct cli_pruner {
	const char *name;
	char *opts[CLI_MAX_OPTS];
	int n_opts;
	char *dirs[CLI_MAX_DIRS];
	int n_dirs;
} cli_pruner;

/* After the options: the operands MODEL.ini DENSE.ckpt of a command that
 * prunes, and its required --plugin; 0, or the usage error's status. */
int cli_pruner_operands(const char *cmd, const cli_pruner *p, int argc,
			char **argv, const char **model, const char **ckpt);

/* Opens the plugin and sets its options; 0, or the exit status after
 * reporting (1 failure, 2 usage error). *plugin and *opts are the
 * caller's to free either way. */
int cli_pruner_open(const char *cmd, const cli_pruner *p,
		    pb_plugin **plugin, pb_options **opts);

/* The plugin search path with the --plugin-dir folders first
 * (cmd_plugins.c); prints the error and returns non-zero on failure. */
struct pb_plugin_path;
int cli_plugin_path(const char *cmd, char **dirs, int n_dirs,
		    struct pb_plugin_path **out);
/* Fills the reference's latency columns from m's paired measurement
 * (m timed against it: ref latency = m latency x speedup). */
struct pb_metrics;
void cli_reference_latency(struct pb_metrics *ref, const struct pb_metrics *m);

/* gnuplot (core/cli/gnuplot.c): runs `gnuplot SCRIPT`, saying what to
 * install when it is missing; 0 or -1. */
int cli_gnuplot(const char *cmd, const char *script);
/* s as a gnuplot single-quoted string. */
void cli_gp_quote(FILE *f, const char *s);
/* Starts the gnuplot script GP (pbi_atomic_begin: the caller commits
 * it) with the lines that draw it to PNG, w x h pixels. */
struct pbi_atomic;
int cli_gp_begin(struct pbi_atomic *a, const char *gp, const char *png,
		 int w, int h, pb_error *err);

#endif
