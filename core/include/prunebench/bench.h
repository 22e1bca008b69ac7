/* Throughput measurement: images per second for a training step and for
 * inference, the GFLOP/s they achieve, and the two hardware ceilings to
 * compare them with (a large cblas_sgemm and a register-only FMA loop),
 * all measured in the same process. Nothing here asserts a figure:
 * machines are noisy, so the bench prints and people compare. */
#ifndef PRUNEBENCH_BENCH_H
#define PRUNEBENCH_BENCH_H

#include <stdio.h>

#include "prunebench/error.h"
#include "prunebench/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Throughput of one model at one batch size. Images/s are the median
 * over the repeats; the GFLOP/s count 2 FLOP per multiply-accumulate of
 * the conv and linear layers, a training step as 3x the forward MACs
 * (forward, input gradient, weight gradient). */
typedef struct pb_bench_result {
	double train_ips, infer_ips;
	double train_gflops, infer_gflops;
	/* spread of the repeats: (max - min) / median, for the noise note */
	double train_spread, infer_spread;
} pb_bench_result;

/* Times a training step (forward, softmax cross-entropy, zero-grad,
 * backward, SGD with the default recipe) and an eval-mode forward on
 * random data at batch B: `warmup` untimed steps, then `repeats` runs of
 * `iters` steps each (0: as many as take about 0.25 s). Parameters are re-initialised from `seed`. Either
 * figure is skipped (left 0) when its flag is 0. */
int pb_bench_model(pb_model *m, int B, int warmup, int iters, int repeats,
		   int do_train, int do_infer, unsigned long seed,
		   pb_bench_result *res, pb_error *err);

/* Inference of a weight-pruned model on the dense and on the sparse
 * kernels. */
typedef struct pb_bench_sparse_result {
	double sparsity;          /* reached: zero fraction of conv and
				     linear weights */
	int sparse_layers;        /* layers that took the sparse kernels */
	double dense_ips, sparse_ips;        /* images/s, medians */
	double dense_spread, sparse_spread;
} pb_bench_sparse_result;

/* Initialises m's parameters from `seed`, zeroes the smallest-magnitude
 * `sparsity` fraction of its conv and linear weights (one global
 * threshold, as global magnitude pruning), and times eval forwards of
 * batch B on the dense kernels and on the sparse ones, in alternating
 * repeats (warm-up, iters and repeats as pb_bench_model). */
int pb_bench_sparse(pb_model *m, int B, double sparsity, int warmup,
		    int iters, int repeats, unsigned long seed,
		    pb_bench_sparse_result *res, pb_error *err);

/* One conv layer's kernels, each timed alone at the layer's shape on
 * random data: milliseconds per call (medians) and GFLOP/s (2 FLOP per
 * multiply-accumulate, the same count for each of the three). */
typedef struct pb_bench_conv_result {
	double fwd_ms, bwd_data_ms, bwd_weight_ms;
	double fwd_gflops, bwd_data_gflops, bwd_weight_gflops;
	/* the kernels the layer takes: "direct" (3x3 stride 1),
	 * "phase/im2col" (forward on the phase layout, backward im2col +
	 * sgemm) or "im2col" */
	const char *path;
} pb_bench_conv_result;

/* Times pb_conv2d_forward and pb_conv2d_backward (input gradient alone,
 * weight gradient alone) for conv layer li at batch B: one warm-up call
 * each, then `repeats` runs of `iters` calls (0: as many as take about
 * 0.25 s). Data from `seed`. */
int pb_bench_conv(const pb_layer_info *li, int B, int iters, int repeats,
		  unsigned long seed, pb_bench_conv_result *res,
		  pb_error *err);

/* GFLOP/s of cblas_sgemm on n x n matrices with the current BLAS thread
 * count: the best of `repeats` calls after one warm-up call. */
double pb_bench_sgemm_peak(int n, int repeats, pb_error *err);

/* GFLOP/s of one core running independent FMA chains in registers, with
 * the widest vector ISA this CPU has (chosen at run time); *isa receives
 * its name ("avx512f", "avx2+fma", "scalar"). Best of `repeats`. */
double pb_bench_fma_peak(int repeats, const char **isa);

/* The CPU's model name (from /proc/cpuinfo) into buf; "unknown" if not
 * found. Returns buf. */
const char *pb_bench_cpu_model(char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif
