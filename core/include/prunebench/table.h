/* The comparison table of an experiment: results/NAME/runs.jsonl (one JSON
 * line per finished cell; record.h) turned into table.md,
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
#include "prunebench/record.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Mean, sample standard deviation and 95% confidence half-width of the
 * finite values among n; n counts those values. sd and ci are NaN when
 * n < 2; mean is NaN when n == 0. */
typedef struct pb_stat {
	int n;
	double mean, sd, ci95;
} pb_stat;

void pb_stat_compute(const double *x, int n, pb_stat *out);

/* Welch's two-sample t-test from summary statistics: the difference of
 * the means (a - b), t, the Welch-Satterthwaite degrees of freedom and the
 * two-sided p-value. All NaN but diff when either n < 2 (diff NaN when
 * either n is 0); when both samples are constant, t and df are NaN and p
 * is 1 for equal means, 0 otherwise. */
typedef struct pb_welch_test {
	double diff, t, df, p;
} pb_welch_test;

void pb_welch(const pb_stat *a, const pb_stat *b, pb_welch_test *out);

/* pb_welch's p alone. */
double pb_welch_p(const pb_stat *a, const pb_stat *b);

typedef struct pb_table_row {
	char *label;        /* "dense", "dense+ft", "l1", "l1 (scratch)" */
	char *method;       /* the cells' method */
	char *target;       /* as asked; NULL for the controls */
	pb_cell_kind kind;
	int n_cells, n_ok, n_diverged, n_failed, n_crashed;
	int n_off_target;       /* ok cells whose reached amount is far
				   from the target (their "warning") */
	/* Over the ok cells. Accuracies and deltas in percent points, kept
	 * fractions in percent. */
	pb_stat target_amount, reached, acc_before, acc_after, val_after;
	double delta_after;     /* mean after - dense mean, points; NaN if none */
	pb_stat params_kept, macs_kept, macs_eff_kept;
	pb_stat size_dense, size_sparse, size_compressed;
	pb_stat latency_b1, latency_b128, speedup_b1, speedup_b128;
	/* on the sparse kernels */
	pb_stat latency_sparse_b1, latency_sparse_b128;
	pb_stat speedup_sparse_b1, speedup_sparse_b128;
	pb_stat time_prune, time_finetune, time_total;
	/* quantize = int8: the int8 model's top-1 (percent) and its file
	 * sparse + zlib (MiB); the int8 file's size for every row. */
	pb_stat acc_int8, size_int8, size_int8_zlib;
	int int8_weights_only;  /* its int8 cells kept float activations */
	double *rounds;         /* mean reached per round, over ok cells */
	int n_rounds;
	/* Welch's test against the best row at the same target. */
	int is_best;            /* this row is the best at its target */
	double p_vs_best;       /* NaN when not tested */
	int differs;            /* p_vs_best < 0.05: gets the marker */
	/* Its cells were pruned at initialisation (record.h at_init):
	 * the label says "(at init)" and a footnote explains it. */
	int at_init;
} pb_table_row;

typedef struct pb_table {
	pb_table_row *rows;
	int n_rows;
	int n_cells;            /* cells read */
	int n_superseded;       /* older lines replaced by a newer same cell */
	/* Seeds whose cells came from different dense models (their
	 * "dense_fingerprint" differs): the table warns. */
	int n_mixed_dense;
	/* The lowest and highest "numerics" (engine arithmetic) of the
	 * kept cells, 0 when none says (lines before the key); when they
	 * differ the table warns. */
	int numerics_lo, numerics_hi;
	int n_bad_lines;        /* malformed lines skipped */
} pb_table;

/* Groups records (pb_records_read) into rows (dense, dense+ft, then by
 * target and method; the scratch and matched-training rows after their
 * method's pruned row) and computes the statistics. A pruned cell that
 * carries a matched-budget control adds a record of kind
 * PB_CELL_MATCHED to its own row. When two records share kind, method,
 * target and seed, the later one in the array wins (a re-run after the
 * experiment definition changed). */
int pb_table_build(const pb_record *cells, int n_cells, pb_table *t,
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
 * group (label), columns "macs_kept params_kept sparsity acc_after_mean
 * acc_after_sd target speedup_b128 acc_int8" (NaN when not measured),
 * plus DIR/plots/series.txt listing "file<TAB>label<TAB>kind" (prune,
 * scratch, scratch_b, matched), DIR/plots/dense.txt with the dense
 * accuracy and DIR/plots/controls.dat with the controls' points (the
 * same columns, the label last, quoted). */
int pb_table_write_plot_data(const pb_table *t, const char *results_dir,
			     pb_error *err);

/* Reads results_dir/runs.jsonl (warnings to warn, may be NULL), writes
 * results_dir/table.md, table.csv and table.tex, and prints the Markdown
 * to md_out when not NULL. */
int pb_table_write_ex(const char *results_dir, const pb_table_opts *o,
		      FILE *md_out, FILE *warn, pb_error *err);

/* Welch's test of row a against row b (labels as the table prints them,
 * e.g. "l1" or "l1-scratch (scratch-E)") on top-1 after fine-tune, at
 * every target the two share, as a Markdown table on out. A control
 * without a target ("dense", "dense + fine-tune") is compared with the
 * other row at each of its targets. Errors (with the table's labels) for
 * an unknown label or two rows that share no target. */
int pb_table_compare(const pb_table *t, const char *a, const char *b,
		     FILE *out, pb_error *err);

/* pb_table_write_ex with default options and warnings on stderr: what the
 * runner calls at the end of `prunebench run`. */
int pb_table_write(const char *results_dir, FILE *md_out, pb_error *err);

#ifdef __cplusplus
}
#endif
#endif
