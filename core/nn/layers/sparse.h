/* Sparse inference kernels: convolution and linear layers that skip zero
 * weights (see conv2d_sparse.c and linear_sparse.c for how; the conv's
 * layouts are built in conv2d_sparse_layout.c). Internal:
 * pbi_ prefix, not exported, reached by model_run.c and the tests.
 *
 * A layer's weights are compressed once (pbi_sparse_build_*) into rows of
 * (offset, value) pairs, one row per output channel or unit; the forward
 * reads only those. Whether a layer takes the sparse kernel is decided
 * per layer from its measured density (pbi_sparse_*_pays): above the
 * break-even density the dense kernel runs, so a model is never slower
 * for having the sparse kernel. */
#ifndef PB_SPARSE_H
#define PB_SPARSE_H

#include <stddef.h>
#include <stdint.h>

#include "nn/layers/conv2d_direct.h"

/* Rows of non-zero weights: row r holds entries [start[r], start[r+1])
 * of off and val. off is, for a conv, where the weight's input lies in
 * the padded sample (pbi_sparse_geom) relative to the output pixel; for
 * a linear layer, the input index. */
typedef struct pbi_sparse_w {
	int rows;
	size_t n, nnz;        /* weights in all, and non-zero */
	int32_t *start;       /* rows + 1 */
	int32_t *off;         /* nnz */
	float *val;           /* nnz */
} pbi_sparse_w;

/* The layout a sparse convolution reads its input in: each channel
 * zero-padded, and for stride s split into phase planes of Hq x Wq
 * (plane (py, px) holds padded pixels (s*i + py, s*j + px); only phases
 * below K are read, so np = min(s, K) per dimension), so that a tap is
 * one fixed offset for every output pixel. The output is computed
 * on a "wide" grid of OH rows x Wq columns whose columns >= OW are
 * discarded. */
typedef struct pbi_sparse_geom {
	int C, H, W, OC, K, stride, pad;
	int OH, OW, Hq, Wq;
	int np;               /* phases per dimension, min(stride, K) */
	size_t plane;         /* Hq * Wq */
	int nw;               /* wide output pixels, OH * Wq */
	/* pbi_sparse_geom_align: `shifts` copies of the padded sample, copy
	 * r shifted left by r floats, each `copy` floats, so that tap column
	 * kj reads copy kj at a multiple of 16 (Wq a multiple of 16): every
	 * load aligned. Else shifts = 1, copy = slice. */
	int shifts;
	size_t copy;
	size_t slice;         /* floats of one padded sample, slack included */
} pbi_sparse_geom;

/* A layer's sparse state during a sparse inference session
 * (pbi_model_sparse_begin): its geometry (convs) and weights. */
typedef struct pbi_sparse_layer {
	pbi_sparse_geom g;
	pbi_sparse_w w;
} pbi_sparse_layer;

void pbi_sparse_geom_init(pbi_sparse_geom *g, int C, int H, int W, int OC,
			  int K, int stride, int pad);
/* Switches g (stride 1) to the aligned layout when rounding the padded
 * width up to 16 wastes at most 1/8 of the work (28x28 and 14x14 planes,
 * not 7x7): the sparse kernel's loads then never straddle cache lines.
 * Only for the sparse kernel; weights must be compressed after it. */
void pbi_sparse_geom_align(pbi_sparse_geom *g);

/* One sample (C,H,W) into the padded, phase-split layout of g
 * (g->slice floats, the slack zeroed). */
void pbi_phase_pad_sample(float *dst, const float *x,
			  const pbi_sparse_geom *g);
/* For each of the nq runs of 16 wide pixels: keep[q], the lanes on kept
 * columns; at[q], the output index of the first of them. */
void pbi_phase_run_layout(uint16_t *keep, int32_t *at, int nq,
			  const pbi_sparse_geom *g);

/* ---- the dense kernel on the same layout (conv2d_phase.c) ----
 * For the convs the direct 3x3 kernel does not take (stride 2, 1x1,
 * 5x5): 1 when this CPU and shape take it (AVX-512F; PB_CONV=im2col
 * forces 0). */
int pbi_conv_phase_ok(const pbi_sparse_geom *g);
/* Floats of workspace with the current thread count. */
size_t pbi_conv_phase_workspace(const pbi_sparse_geom *g);
/* in (B,C,H,W), weight (OC,C,K,K), bias (OC) or NULL -> out
 * (B,OC,OH,OW) (may be NULL with ep), with the eval BN (+ ReLU)
 * epilogue ep (may be NULL). Each output is one FMA chain over
 * (c, ki, kj), one work item: the same bits for any thread count. */
void pbi_conv_phase_forward(float *out, const float *in,
			    const float *weight, const float *bias,
			    const pbi_sparse_geom *g, int B,
			    const pbi_conv_epilogue *ep, float *ws);

/* 1 when this CPU has a sparse kernel (AVX-512F, or AVX2 with FMA);
 * PB_SPARSE=off in the environment forces 0 (for measurements). */
int pbi_sparse_available(void);
/* The sparse kernels this CPU runs: 2 AVX-512F, 1 AVX2 + FMA, 0 neither
 * (PB_SPARSE=avx2 holds an AVX-512 CPU to the AVX2 kernels). Defined
 * only where the kernels are built (x86-64 with GCC). */
int pbi_sparse_isa(void);

/* 1 when a conv of geometry g whose weight has nnz non-zeros of n runs
 * faster on the sparse kernel than on the dense one (break-even
 * densities measured on the shapes of experiments/models; see
 * docs/performance.md). */
int pbi_sparse_conv_pays(const pbi_sparse_geom *g, size_t nnz, size_t n);
/* The same for a linear layer of IN inputs and OUT outputs. */
int pbi_sparse_linear_pays(int IN, int OUT, size_t nnz, size_t n);

/* Non-zeros of w (n floats): entries that compare unequal to 0. */
size_t pbi_sparse_count(const float *w, size_t n);

/* Compresses weight (OC, C, K, K) for geometry g, or weight (OUT, IN).
 * Returns 0 or PB_ENOMEM; free with pbi_sparse_w_free. */
int pbi_sparse_build_conv(pbi_sparse_w *s, const float *weight,
			  const pbi_sparse_geom *g);
int pbi_sparse_build_linear(pbi_sparse_w *s, const float *weight, int IN,
			    int OUT);
void pbi_sparse_w_free(pbi_sparse_w *s);

/* Floats of workspace pbi_sparse_conv_forward needs with the current
 * OpenMP thread count (the batch does not matter). */
size_t pbi_sparse_conv_workspace(const pbi_sparse_geom *g);

/* in (B,C,H,W), bias (OC) or NULL -> out (B,OC,OH,OW), with the eval
 * BatchNorm (+ ReLU) epilogue ep (may be NULL) as the direct kernel
 * applies it (with ep, out and ep->bn_out may be NULL: not stored).
 * Every output is summed over its non-zero weights in the order (c, ki,
 * kj), by one work item, so the bits do not depend on the thread count
 * (nor on the ISA: both kernels use FMA). */
void pbi_sparse_conv_forward(float *out, const float *in,
			     const pbi_sparse_w *sw, const float *bias,
			     const pbi_sparse_geom *g, int B,
			     const pbi_conv_epilogue *ep, float *ws);

/* in (B,IN), bias (OUT) or NULL -> out (B,OUT). Each output is one
 * sequential sum over its row's non-zeros. */
void pbi_sparse_linear_forward(float *out, const float *in,
			       const pbi_sparse_w *sw, const float *bias,
			       int B, int IN, int OUT);

#endif
