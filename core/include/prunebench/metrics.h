/* The numbers a pruning paper reports about a model: parameters (total and
 * non-zero), MACs (dense, and effective with zero weights skipped), size
 * (dense float32, sparse encoding, zlib-compressed checkpoint), a
 * per-layer sparsity table, and measured inference latency with speedup
 * against a reference (usually the dense model).
 *
 * Definitions:
 * - params: trainable parameters (conv/linear weights and biases, BN
 *   gamma and beta), as pb_model_count_params; non-zero counts entries
 *   that are not exactly 0.
 * - prunable: conv and linear weights only; prunable_sparsity is their
 *   fraction of zeros (what a `sparsity` target asks for).
 * - macs: one sample's forward through conv and linear layers
 *   (pb_model_count_macs). macs_effective counts, per conv/linear layer,
 *   MACs x (non-zero weights / weights): what a kernel that skips zero
 *   weights would do.
 * - sizes: files, the bytes prunebench writes (checkpoint.h) and loads
 *   back, never estimates, so compressing the checkpoint by hand gives
 *   the table's number. Masks cost nothing when they are the weights'
 *   zeros (a pruned model's are), a bit each otherwise.
 *   bytes_dense (= bytes_checkpoint): the float32 checkpoint
 *     pb_checkpoint_save writes.
 *   bytes_sparse: the same with each tensor in the smallest of float32,
 *     bitmap (one bit per entry, then the non-zero values) and CSR (a
 *     4-byte entry offset per row, then per non-zero a float32 value and
 *     a 2-byte distance from the previous non-zero of its row; a
 *     distance over 65535 inserts a filler zero entry, as in Deep
 *     Compression).
 *   bytes_compressed: the float32 checkpoint compressed by zlib's
 *     compress2 at level 9, the "compressed size" pruning papers quote.
 *   bytes_int8: the int8 checkpoint (quantize.h: conv and linear weights
 *     int8 with a float32 scale per output channel, the rest float32).
 *   bytes_int8_compressed: the int8 checkpoint with each tensor in its
 *     smallest encoding, compressed by zlib at level 9 (int8 + sparse +
 *     zlib, the deployed size).
 *   pb_metrics_sparse_bytes gives the sparse payload of one tensor
 *   (names and shapes not counted).
 * - latency: median wall time of pb_model_forward in eval mode on a fixed
 *   synthetic input, after warm-up runs, with the OpenMP threads in force
 *   for the caller. speedup = reference latency / this latency, the two
 *   models timed in alternation so drift affects both alike.
 * - latency_sparse / speedup_sparse: the same model on the sparse
 *   kernels, which skip zero weights (core/nn/layers/sparse.h): each conv
 *   and linear layer whose measured density is below the kernels'
 *   break-even takes them, the others stay dense (sparse_layers counts
 *   the former). Timed in the same alternation. The reference always
 *   runs on the dense kernels, so speedup is what the pruning buys on the
 *   dense kernels and speedup_sparse what it buys with a sparse one. */
#ifndef PRUNEBENCH_METRICS_H
#define PRUNEBENCH_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "prunebench/error.h"
#include "prunebench/model.h"
#include "prunebench/quantize.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One row of the per-layer table: every layer with trainable parameters. */
typedef struct pb_layer_metrics {
	char name[48];
	pb_layer_type type;
	size_t params, nonzero;      /* trainable parameters of the layer */
	size_t weights, weights_nonzero; /* conv/linear weight only (else 0) */
	double sparsity;             /* zero fraction of the weight (conv and
					linear) or of the scales (bn gamma) */
	uint64_t macs, macs_effective;
} pb_layer_metrics;

#define PB_METRICS_BATCH_SMALL 1
#define PB_METRICS_BATCH_LARGE 128

typedef struct pb_metrics {
	size_t params, params_nonzero;
	size_t prunable, prunable_nonzero;
	double prunable_sparsity;
	uint64_t macs, macs_effective;
	uint64_t bytes_dense, bytes_sparse, bytes_checkpoint, bytes_compressed;
	uint64_t bytes_int8, bytes_int8_compressed;

	/* Latency in milliseconds at batch 1 and 128, 0 when not measured;
	 * speedup over the reference, 0 when there was none. */
	int have_latency;
	double latency_ms[2];
	double speedup[2];

	int n_layers;
	pb_layer_metrics *layers;    /* malloc-ed; pb_metrics_free */

	/* The same on the sparse kernels (0 when not measured); with no
	 * layer sparse enough (sparse_layers 0) they equal the dense ones. */
	int sparse_layers;
	double latency_sparse_ms[2];
	double speedup_sparse[2];
} pb_metrics;

typedef struct pb_metrics_opts {
	int latency;       /* 1: measure latency (slow); default 0 */
	int warmup;        /* untimed forwards before timing; default 3 */
	int repeats;       /* timed forwards at batch 1; default 30 */
	int repeats_large; /* timed forwards at batch 128; default 7 */
	int compressed;    /* 1: compute the compressed sizes; default 1 */
	int sparse;        /* 1: also time the sparse kernels; default 1 */
} pb_metrics_opts;

void pb_metrics_opts_default(pb_metrics_opts *o);

/* Computes everything in opts for m. ref (may be NULL) is the reference
 * for speedup, measured alongside m when opts->latency is set. opts NULL
 * means the defaults. The model's values are not changed (its forward
 * workspaces are). */
int pb_metrics_compute(pb_metrics *out, pb_model *m, pb_model *ref,
		       const pb_metrics_opts *opts, pb_error *err);
void pb_metrics_free(pb_metrics *mt);

/* Sizes of one tensor of n floats whose data is d, as described above. */
uint64_t pb_metrics_sparse_bytes(const float *d, size_t n, int rows);

/* The float32 checkpoint of m (as pb_checkpoint_save writes it) and its
 * zlib level-9 size. */
int pb_metrics_compressed_size(const pb_model *m, uint64_t *raw,
			       uint64_t *compressed, pb_error *err);

/* Median milliseconds of `repeats` eval forwards of batch B on a fixed
 * synthetic input, after `warmup` untimed ones. */
int pb_metrics_latency(pb_model *m, int B, int warmup, int repeats,
		       double *median_ms, pb_error *err);
/* The same for m and ref timed in alternation; *speedup = ref / m.
 * Both run on the dense kernels. */
int pb_metrics_speedup(pb_model *m, pb_model *ref, int B, int warmup,
		       int repeats, double *m_ms, double *ref_ms,
		       double *speedup, pb_error *err);

/* The five sizes of m as files (above), all compressed: with q, m is
 * quantized already (pb_quantize_model) and q's scales and activation
 * ranges go in the int8 files; without, the int8 sizes are of a copy of
 * m with its weights quantized. */
typedef struct pb_file_sizes {
	uint64_t f32, sparse, f32_zlib, int8, int8_zlib;
} pb_file_sizes;
int pb_file_sizes_of(const pb_model *m, const pb_quant *q,
		     pb_file_sizes *out, pb_error *err);

/* The summary table, one row per metric; with `after` (may be NULL) the
 * two models side by side with the ratio after/before. Labels name the
 * columns ("dense", "pruned"; NULL for those). */
void pb_metrics_print(FILE *f, const pb_metrics *before,
		      const pb_metrics *after, const char *label_before,
		      const char *label_after);
/* The per-layer sparsity table of one model. */
void pb_metrics_print_layers(FILE *f, const pb_metrics *mt);

#ifdef __cplusplus
}
#endif
#endif
