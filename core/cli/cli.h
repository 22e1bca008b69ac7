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
/* Prints "prunebench CMD: message" to stderr; returns 1. */
int cli_fail(const char *cmd, const pb_error *err);
int cli_usage_error(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

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
/* The PNG terminal of a script, w x h pixels. */
void cli_gp_terminal(FILE *f, int w, int h);

#endif
