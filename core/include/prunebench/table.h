/* The comparison table of an experiment: results/NAME/runs.jsonl (one JSON
 * line per finished cell, written by the runner) turned into table.md,
 * table.csv and table.tex, one row per method x target aggregated over
 * seeds, the dense baseline and the dense + fine-tune control first.
 *
 * Statistics over seeds: mean and sample standard deviation, the 95%
 * confidence half-width t(0.975, n-1) * sd / sqrt(n), and Welch's t-test of
 * each row against the best row (highest mean top-1 after fine-tune) at the
 * same target. Cells whose status is not "ok" are never averaged; they are
 * counted and reported. */
#ifndef PRUNEBENCH_TABLE_H
#define PRUNEBENCH_TABLE_H

#include <stdio.h>

#include "prunebench/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum pb_cell_kind {
	PB_CELL_DENSE,     /* dense baseline */
	PB_CELL_DENSE_FT,  /* dense + fine-tune control */
	PB_CELL_PRUNE,     /* pruned, then fine-tuned */
	PB_CELL_SCRATCH,   /* pruned shape re-initialised, trained from scratch */
	/* The dense model trained exactly as a pruned cell was, unpruned
	 * (matched_dense = yes). Not a line of its own in runs.jsonl: read
	 * from its pruned cell's "matched_*" keys. */
	PB_CELL_MATCHED
} pb_cell_kind;

typedef enum pb_cell_status {
	PB_CELL_OK,
	PB_CELL_DIVERGED,
	PB_CELL_FAILED
} pb_cell_status;

/* One line of runs.jsonl. Strings are malloc-ed (NULL when the key was
 * null or missing); numbers are NaN when null or missing. */
typedef struct pb_cell {
	char *id, *experiment, *method, *plugin, *granularity, *target;
	char *target_kind, *scope, *schedule, *error;
	pb_cell_kind kind;
	pb_cell_status status;
	long seed;
	double target_amount, reached;
	double *rounds;   /* reached amount after each round, or NULL */
	int n_rounds;
	double acc_before, acc_after, val_after;    /* fractions, 0..1 */
	double params, params_dense, nonzero;
	double macs, macs_dense, macs_effective;
	double size_dense_mib, size_sparse_mib, size_compressed_mib;
	double latency_b1_ms, latency_b128_ms, speedup_b1, speedup_b128;
	double time_prune_s, time_finetune_s, time_total_s;
	double prune_epochs;   /* training epochs of the pruning phase */
	/* matched_dense: the unpruned copy with the same training. */
	double matched_top1, matched_val, matched_epochs, matched_time_s;
	char *matched_error;
	char *dense_fingerprint;  /* CRC-32 of the dense model it came from */
	int line;         /* line number in runs.jsonl */
} pb_cell;

/* Mean, sample standard deviation and 95% confidence half-width of the
 * finite values among n; n counts those values. sd and ci are NaN when
 * n < 2; mean is NaN when n == 0. */
typedef struct pb_stat {
	int n;
	double mean, sd, ci95;
} pb_stat;

void pb_stat_compute(const double *x, int n, pb_stat *out);

/* Welch's two-sample t-test from summary statistics: the two-sided p-value
 * with Welch-Satterthwaite degrees of freedom. NaN when either n < 2. */
double pb_welch_p(const pb_stat *a, const pb_stat *b);

typedef struct pb_table_row {
	char *label;        /* "dense", "dense+ft", "l1", "l1 (scratch)" */
	char *method;       /* the cells' method */
	char *target;       /* as asked; NULL for the controls */
	pb_cell_kind kind;
	int n_cells, n_ok, n_diverged, n_failed;
	/* Over the ok cells. Accuracies and deltas in percent points, kept
	 * fractions in percent. */
	pb_stat target_amount, reached, acc_before, acc_after, val_after;
	double delta_after;     /* mean after - dense mean, points; NaN if none */
	pb_stat params_kept, macs_kept, macs_eff_kept;
	pb_stat size_dense, size_sparse, size_compressed;
	pb_stat latency_b1, latency_b128, speedup_b1, speedup_b128;
	pb_stat time_prune, time_finetune, time_total;
	double *rounds;         /* mean reached per round, over ok cells */
	int n_rounds;
	/* Welch's test against the best row at the same target. */
	int is_best;            /* this row is the best at its target */
	double p_vs_best;       /* NaN when not tested */
	int differs;            /* p_vs_best < 0.05: gets the marker */
} pb_table_row;

typedef struct pb_table {
	pb_table_row *rows;
	int n_rows;
	int n_cells;            /* cells read */
	int n_superseded;       /* older lines replaced by a newer same cell */
	/* Seeds whose cells came from different dense models (their
	 * "dense_fingerprint" differs): the table warns. */
	int n_mixed_dense;
	int n_bad_lines;        /* malformed lines skipped */
} pb_table;

/* Reads path (runs.jsonl). Malformed lines -- a half-written last line
 * after a crash, garbage, a line of another format version -- are reported
 * to warn (when not NULL) as "path:line: ..." and skipped; *n_bad counts
 * them. Fails only when the file cannot be read. The caller frees the cells
 * with pb_cells_free. */
int pb_cells_read(const char *path, pb_cell **cells, int *n_cells, int *n_bad,
		  FILE *warn, pb_error *err);
void pb_cells_free(pb_cell *cells, int n);

/* Parses one line of runs.jsonl into *cell. Returns 0, or -1 with the
 * reason in why. */
int pb_cell_parse(const char *line, size_t len, pb_cell *cell, char *why,
		  size_t why_len);
void pb_cell_clear(pb_cell *cell);

/* Groups cells into rows (dense, dense+ft, then by target and method; the
 * scratch row after its method's pruned row) and computes the statistics.
 * When two cells share kind, method, target and seed, the later one in the
 * array wins (a re-run after the experiment definition changed). */
int pb_table_build(const pb_cell *cells, int n_cells, pb_table *t,
		   pb_error *err);
void pb_table_free(pb_table *t);

typedef struct pb_table_opts {
	int ci;          /* show ± 95% CI instead of ± sd */
} pb_table_opts;

/* The three formats; a NULL opts means the defaults. */
int pb_table_write_md(const pb_table *t, const pb_table_opts *o, FILE *f);
int pb_table_write_csv(const pb_table *t, FILE *f);
int pb_table_write_tex(const pb_table *t, const pb_table_opts *o, FILE *f);

/* Data files for scripts/plots: DIR/plots/NN.dat, one per pruned row
 * group (label), columns "macs_kept params_kept acc_after_mean
 * acc_after_sd target", plus DIR/plots/series.txt listing
 * "file<TAB>label" and DIR/plots/dense.txt with the dense accuracy. */
int pb_table_write_plot_data(const pb_table *t, const char *results_dir,
			     pb_error *err);

/* Reads results_dir/runs.jsonl (warnings to warn, may be NULL), writes
 * results_dir/table.md, table.csv and table.tex, and prints the Markdown
 * to md_out when not NULL. */
int pb_table_write_ex(const char *results_dir, const pb_table_opts *o,
		      FILE *md_out, FILE *warn, pb_error *err);

/* pb_table_write_ex with default options and warnings on stderr: what the
 * runner calls at the end of `prunebench run`. */
int pb_table_write(const char *results_dir, FILE *md_out, pb_error *err);

#ifdef __cplusplus
}
#endif
#endif
