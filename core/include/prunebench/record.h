/* The record of an experiment: OUTPUT/runs.jsonl, one JSON object per
 * finished cell, appended by the sweep and read back by the sweep (which
 * cells are done) and by the tables. This header and core/experiment/
 * record.c own its schema: every key is written and read in one place.
 *
 * Every line carries "schema": PB_RECORD_SCHEMA. Lines of schema 1 (which
 * said "v": 1 and had the same keys) are read as they are; a line of a
 * newer schema, or one that is not a record, is refused with the reason.
 * A line that does not validate is not a finished cell: the sweep runs
 * that cell again and the table leaves it out, both by the same rule. */
#ifndef PRUNEBENCH_RECORD_H
#define PRUNEBENCH_RECORD_H

#include <stddef.h>
#include <stdio.h>

#include "prunebench/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PB_RECORD_SCHEMA 2

typedef enum pb_cell_kind {
	PB_CELL_DENSE,     /* dense baseline */
	PB_CELL_DENSE_FT,  /* dense + fine-tune control */
	PB_CELL_PRUNE,     /* pruned, then fine-tuned */
	PB_CELL_SCRATCH,   /* pruned shape re-initialised, trained from
			      scratch for the dense recipe's epochs
			      (Scratch-E of "Rethinking the Value of
			      Network Pruning") */
	PB_CELL_SCRATCH_B, /* the same for the dense recipe's epochs x
			      dense MACs / pruned MACs (Scratch-B) */
	/* The dense model trained exactly as a pruned cell was, unpruned
	 * (matched_dense = yes). Never a line of its own: a table row
	 * derived from its pruned cell's "matched_*" keys. */
	PB_CELL_MATCHED
} pb_cell_kind;

typedef enum pb_cell_status {
	PB_CELL_OK,
	PB_CELL_DIVERGED,   /* training produced NaN or inf: a result */
	PB_CELL_FAILED,     /* an error stopped the cell */
	PB_CELL_CRASHED     /* its process died (signal, or exit without
			       a result): a plugin's crash, not the sweep's */
} pb_cell_status;

/* "dense", "dense_ft", "prune", "scratch", "scratch_b", "matched". */
const char *pb_cell_kind_name(pb_cell_kind k);
/* "ok", "diverged", "failed", "crashed". */
const char *pb_cell_status_name(pb_cell_status s);

/* One line of runs.jsonl. Strings are malloc-ed and owned by the record
 * (NULL: null or absent); numbers are NaN when null or absent. */
typedef struct pb_record {
	int schema;          /* of the line read; PB_RECORD_SCHEMA when made */
	char *id, *experiment, *method, *plugin, *granularity;
	char *label;         /* the method's label in the table, or NULL */
	char *target, *target_kind, *scope, *schedule;
	pb_cell_kind kind;
	pb_cell_status status;
	char *error;         /* why it failed, crashed or diverged */
	char *warning;       /* an ok cell that is suspect: its reached
				amount is far from its target */
	long seed;
	int threads;         /* threads inside the cell; 0 unknown */
	int numerics;        /* PB_NUMERICS of the engine that ran it (its
				arithmetic: a bump changes training bits);
				0: not known (lines before the key) */
	char *blas;          /* the BLAS kernel it ran on */
	char *host;          /* the machine it ran on (a cluster's node);
				NULL: not known (lines before the key) */
	char *dense_fingerprint; /* CRC-32 of the dense model it came from */
	double target_amount, reached;
	double *rounds;      /* reached amount after each round, or NULL */
	int n_rounds;
	double acc_before, acc_after, val_after;    /* fractions, 0..1 */
	double params, params_dense, nonzero;
	double macs, macs_dense, macs_effective;
	double size_dense_mib, size_sparse_mib, size_compressed_mib;
	/* The int8 checkpoint, and it sparse-encoded and zlib-compressed. */
	double size_int8_mib, size_int8_zlib_mib;
	/* quantize = int8: "int8" (weights and activations) or
	 * "int8-weights" (activations float), and the int8 model's test
	 * top-1; NULL and NaN otherwise. */
	char *quantize;
	double acc_int8;
	double latency_b1_ms, latency_b128_ms, speedup_b1, speedup_b128;
	/* The same on the sparse kernels (layers sparse enough skip their
	 * zero weights; the reference stays on the dense ones). Absent from
	 * lines written before they existed: NaN. */
	double latency_sparse_b1_ms, latency_sparse_b128_ms;
	double speedup_sparse_b1, speedup_sparse_b128;
	double time_prune_s, time_finetune_s, time_total_s;
	double prune_epochs; /* training epochs of the pruning phase */
	double scratch_epochs; /* scratch cells, and cells pruned at
				  initialisation: epochs trained from an
				  initialisation (the dense recipe's) */
	/* Its plugin pruned at initialisation (pb_pruner.at_init): the
	 * model the dense training started from, then trained with the
	 * dense recipe, not fine-tuned. Written only when set. */
	int at_init;
	/* matched_dense: the unpruned copy trained the same way. */
	int has_matched;
	double matched_top1, matched_val, matched_epochs, matched_time_s;
	char *matched_error;
	char *curve;         /* per-epoch CSV, relative to the output folder */
	char *finished;      /* UTC time the line was written */
	int line;            /* line number in the file it was read from */
} pb_record;

/* An empty record: every number NaN, every string NULL, schema current. */
void pb_record_init(pb_record *r);
void pb_record_clear(pb_record *r);
/* Replaces *field (one of r's strings) by a copy of value (NULL: null).
 * Returns 0 or PB_ENOMEM. */
int pb_record_set(char **field, const char *value);

/* The line for r, "{...}\n", in a malloc-ed buffer. A record that would
 * not read back (no id, a pruned cell without method or target) is
 * refused with the reason. */
int pb_record_format(const pb_record *r, char **line, size_t *len,
		     pb_error *err);
/* Parses one line (without its newline). Returns 0, or -1 with the
 * reason in why. */
int pb_record_parse(const char *line, size_t len, pb_record *r, char *why,
		    size_t why_len);

/* Appends r to path with one write on an O_APPEND descriptor, then
 * fsync: a crash leaves at most a cut last line, which readers skip. A
 * file whose last line was cut gets a newline first. */
int pb_record_append(const char *path, const pb_record *r, pb_error *err);

/* Every valid line of path, in file order. Lines that do not validate
 * are reported to warn (may be NULL) as "path:line: ..." and counted in
 * *n_bad (may be NULL). A missing file is an error unless missing_ok,
 * when it gives no records. Free with pb_records_free. */
int pb_records_read(const char *path, int missing_ok, pb_record **out,
		    int *n, int *n_bad, FILE *warn, pb_error *err);
void pb_records_free(pb_record *r, int n);

#ifdef __cplusplus
}
#endif
#endif
