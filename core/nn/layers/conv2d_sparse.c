/* Sparse direct convolution for inference: only the non-zero weights are
 * multiplied, so a layer with 90% of its weights pruned does about a
 * tenth of the work (Park et al., "Faster CNNs with Direct Sparse
 * Convolutions and Guided Pruning", ICLR 2017; the 1x1 case is the
 * sparse-times-dense product of Elsen et al., "Fast Sparse ConvNets",
 * CVPR 2020, and XNNPACK's sparse inference).
 *
 * How: the input sample is copied once into a zero-padded layout in
 * which every tap (c, ki, kj) of every output pixel lies at one fixed
 * offset from that pixel (sparse.h, pbi_sparse_geom: for a 3x3 stride-2
 * conv the padded plane is split into four phase planes, for a 1x1
 * stride-2 one only the even rows and columns are kept). A run of 16 output
 * pixels of one output channel then reads, for each non-zero weight, 16
 * consecutive floats at that weight's offset: one broadcast and one FMA
 * with a memory operand per 16 MACs, with up to 16 runs (256 pixels) in
 * registers, and no masks. The grid is "wide" (Wq columns per output
 * row, of which OW are kept), so rows need not fill vectors.
 *
 * Each output value is one FMA chain over its channel's non-zeros in
 * weight order, computed by one work item, so the result is the same
 * for any thread count and on either ISA; it equals the dense kernels'
 * within float rounding (they sum the zero products too, and in another
 * order for the im2col path).
 *
 * This file holds the kernels and their work items; the layouts they
 * read (geometry, compressed weights, the padded sample, the run masks)
 * are built in conv2d_sparse_layout.c. */
#include <stdlib.h>
#include <string.h>

#include "prunebench/error.h"
#include "nn/layers/sparse.h"
#include "nn/layers/threads.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_SPARSE 1
#endif

/* Output runs are 16 floats whatever the ISA (AVX2 does a run as two
 * vectors), so work items and slack are the same on both. */
#define RUN 16
/* Runs one AVX-512 work item keeps in registers: 16 of the 32 zmm. */
#define NX512 16
/* ... and one AVX2 item: 6 runs = 12 of the 16 ymm. */
#define NX256 6
/* Samples are spread over threads only when there are at least this
 * many per thread; with fewer (batch 1) the samples are padded first and
 * their work items (output channels times runs) shared out. */
#define SAMPLES_PER_THREAD 4
/* Below this many effective MACs a layer runs on one thread (fork/join
 * costs more, as for the dense kernel). */
#define PAR_MIN_MACS 100000.0
/* At a few samples every thread pads its own copy of them (below);
 * that pays only when a layer does enough MACs per padded float. Set
 * from batch-1 runs on 2 threads (docs/performance.md, 2026-12-03):
 * with 20, VGG-S at 75% sparsity went from 10.7k to 12.8k images/s
 * against one thread per layer; ResNet-S at 90% lost (11.8k to 10.3k),
 * and no simple rule we tried told its layers from VGG-S's. */
#define PAD_WORK_MIN 20.0

/* Padded sample slices (SAMPLES_PER_THREAD per thread, for the shared
 * mode), one run buffer per thread, then the run layout (a 16-bit mask
 * and a 32-bit index per run). */
size_t pbi_sparse_conv_workspace(const pbi_sparse_geom *g)
{
	const size_t nt = (size_t)pbi_max_threads();
	const size_t nq = ((size_t)g->nw + RUN - 1) / RUN;

	return nt * SAMPLES_PER_THREAD * g->slice + nt * NX512 * RUN +
	       (nq + 1) / 2 + nq;
}

/* One work item: an output channel's runs [q0, q0 + nx) of one sample.
 * Its output values are conv (+ bias), and with an epilogue BN as a
 * multiply and an add, then ReLU: the direct kernel's order. */
typedef struct item {
	const float *x;          /* the padded sample at the first run */
	const int32_t *off;      /* the channel's non-zeros */
	const float *val;
	int nnz;
	const uint16_t *keep;    /* per run: lanes on kept columns */
	const int32_t *at;       /* per run: output index of its first */
	float *out, *bn, *relu;  /* the channel's planes, NULL where not
				    stored (no epilogue, no ReLU, or a
				    lean forward's intermediates) */
	int has_ep;
	int has_bias;
	float bias, scale, shift;
	float *tmp;              /* nx runs, for the AVX2 kernel's emit */
} item;

#ifdef HAVE_SPARSE

/* AVX-512: sums in registers, then the kept lanes of each run are
 * compressed to the front and stored as one contiguous piece. */
static inline __attribute__((always_inline, target("avx512f"))) void
body512(const item *it, const int nx)
{
	__m512 acc[NX512];

#pragma GCC unroll 16
	for (int j = 0; j < nx; j++)
		acc[j] = _mm512_setzero_ps();
	for (int k = 0; k < it->nnz; k++) {
		const float *p = it->x + it->off[k];
		const __m512 w = _mm512_set1_ps(it->val[k]);
#pragma GCC unroll 16
		for (int j = 0; j < nx; j++)
			acc[j] = _mm512_fmadd_ps(_mm512_loadu_ps(p + 16 * j),
						 w, acc[j]);
	}
#pragma GCC unroll 16
	for (int j = 0; j < nx; j++) {
		const __mmask16 keep = it->keep[j];
		const __mmask16 head = (__mmask16)((1u << __builtin_popcount(
						   keep)) - 1u);
		const int32_t at = it->at[j];
		__m512 r = acc[j];

		if (it->has_bias)
			r = _mm512_add_ps(r, _mm512_set1_ps(it->bias));
		if (it->out)
			_mm512_mask_storeu_ps(it->out + at, head,
					      _mm512_maskz_compress_ps(keep, r));
		if (it->has_ep) {
			const __m512 bn = _mm512_add_ps(
				_mm512_mul_ps(r, _mm512_set1_ps(it->scale)),
				_mm512_set1_ps(it->shift));

			if (it->bn)
				_mm512_mask_storeu_ps(
					it->bn + at, head,
					_mm512_maskz_compress_ps(keep, bn));
			if (it->relu)
				_mm512_mask_storeu_ps(
					it->relu + at, head,
					_mm512_maskz_compress_ps(keep,
						_mm512_max_ps(bn,
							_mm512_setzero_ps())));
		}
	}
}

/* Scalar copy of runs [0, nx) from it->tmp to the planes, with the same
 * operations per value as body512. */
static void emit(const item *it, int nx)
{
	for (int j = 0; j < nx; j++) {
		const float *src = it->tmp + 16 * j;
		int n = 0;

		for (int l = 0; l < 16; l++) {
			float r;
			size_t o;

			if (!(it->keep[j] >> l & 1u))
				continue;
			r = it->has_bias ? src[l] + it->bias : src[l];
			o = (size_t)it->at[j] + (size_t)n++;
			if (it->out)
				it->out[o] = r;
			if (it->has_ep) {
				const float bn = r * it->scale + it->shift;

				if (it->bn)
					it->bn[o] = bn;
				if (it->relu)
					it->relu[o] = bn > 0.0f ? bn : 0.0f;
			}
		}
	}
}

/* AVX2: sums in registers, stored to tmp, then emitted. */
static inline __attribute__((always_inline, target("avx2,fma"))) void
body256(const item *it, const int nx)
{
	__m256 acc[2 * NX256];

#pragma GCC unroll 12
	for (int j = 0; j < 2 * nx; j++)
		acc[j] = _mm256_setzero_ps();
	for (int k = 0; k < it->nnz; k++) {
		const float *p = it->x + it->off[k];
		const __m256 w = _mm256_set1_ps(it->val[k]);
#pragma GCC unroll 12
		for (int j = 0; j < 2 * nx; j++)
			acc[j] = _mm256_fmadd_ps(_mm256_loadu_ps(p + 8 * j),
						 w, acc[j]);
	}
#pragma GCC unroll 12
	for (int j = 0; j < 2 * nx; j++)
		_mm256_storeu_ps(it->tmp + 8 * j, acc[j]);
	emit(it, nx);
}

typedef void (*run_fn)(const item *);

#define DEF512(nx)                                                         \
	static __attribute__((target("avx512f"), noinline)) void           \
	k512_##nx(const item *it)                                          \
	{                                                                  \
		body512(it, nx);                                           \
	}
#define DEF256(nx)                                                         \
	static __attribute__((target("avx2,fma"), noinline)) void          \
	k256_##nx(const item *it)                                          \
	{                                                                  \
		body256(it, nx);                                           \
	}
DEF512(1) DEF512(2) DEF512(3) DEF512(4) DEF512(5) DEF512(6) DEF512(7)
DEF512(8) DEF512(9) DEF512(10) DEF512(11) DEF512(12) DEF512(13)
DEF512(14) DEF512(15) DEF512(16)
DEF256(1) DEF256(2) DEF256(3) DEF256(4) DEF256(5) DEF256(6)

static const run_fn table512[NX512] = {
	k512_1, k512_2, k512_3, k512_4, k512_5, k512_6, k512_7, k512_8,
	k512_9, k512_10, k512_11, k512_12, k512_13, k512_14, k512_15, k512_16,
};
static const run_fn table256[NX256] = {
	k256_1, k256_2, k256_3, k256_4, k256_5, k256_6,
};

/* 2: AVX-512F, 1: AVX2 + FMA, 0: neither. PB_SPARSE=avx2 holds an
 * AVX-512 CPU to the AVX2 kernels (the tests compare the two). */
int pbi_sparse_isa(void)
{
	const char *force = getenv("PB_SPARSE");

	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f") &&
	    !(force && !strcmp(force, "avx2")))
		return 2;
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		return 1;
	return 0;
}

int pbi_sparse_available(void)
{
	const char *force = getenv("PB_SPARSE");

	if (force && !strcmp(force, "off"))
		return 0;
	return pbi_sparse_isa() > 0;
}

#else

int pbi_sparse_available(void)
{
	return 0;
}

#endif /* HAVE_SPARSE */

/* Break-even densities (the non-zero fraction below which the sparse
 * kernel is faster), measured layer by layer on the Xeon of
 * docs/performance.md, with a margin: against the direct 3x3 kernel
 * (even at density 0.50 on every VGG-S and ResNet-S shape), and against
 * im2col + sgemm (stride 2, 1x1, 5x5: even at 0.70-0.80), which does
 * less per MAC. The sparse kernel reaches about half the dense one's
 * rate per MAC: its input loads straddle cache lines. The sparse linear
 * kernel (scalar dot products over a row's non-zeros) loses to sgemm on
 * the shipped models' small classifier layers down to 10% density (0.5x
 * at batch 1, 0.85x at batch 128 for 576 x 10), so it is taken only
 * below 3%. */
#define PAYS_VS_DIRECT 0.45
#define PAYS_VS_IM2COL 0.65
#define PAYS_LINEAR 0.03

int pbi_sparse_conv_pays(const pbi_sparse_geom *g, size_t nnz, size_t n)
{
	const int direct = pbi_conv_direct_ok(g->H, g->W, g->K, g->stride,
					      g->pad);
	const double d = n ? (double)nnz / (double)n : 1.0;

	if (!pbi_sparse_available())
		return 0;
	return d <= (direct ? PAYS_VS_DIRECT : PAYS_VS_IM2COL);
}

int pbi_sparse_linear_pays(int IN, int OUT, size_t nnz, size_t n)
{
	(void)IN;
	(void)OUT;
	if (!pbi_sparse_available())
		return 0;
	return n && (double)nnz / (double)n <= PAYS_LINEAR;
}

/* What every work item of a call shares. */
typedef struct conv_args {
	const pbi_sparse_w *sw;
	const float *bias;
	const pbi_sparse_geom *g;
	const pbi_conv_epilogue *ep;
	float *out;
	int nq, ng;
	const uint16_t *keep;
	const int32_t *at;
#ifdef HAVE_SPARSE
	const run_fn *table;
#endif
} conv_args;

/* Work item i (group of runs, output channel) of sample b, whose
 * padded copy is x. */
static void run_item(const conv_args *a, int b, long i, const float *x,
		     float *tmp)
{
	const pbi_sparse_geom *g = a->g;
	/* Group-major: consecutive items read the same stretch of the
	 * padded sample, which stays in L1 across the output channels. */
	const int gi = (int)(i / g->OC), oc = (int)(i % g->OC);
	const int q0 = pbi_block_start(gi, a->nq, a->ng);
	const int nx = pbi_block_start(gi + 1, a->nq, a->ng) - q0;
	const size_t plane = ((size_t)b * g->OC + oc) * g->OH * g->OW;
	const int32_t k0 = a->sw->start[oc];
	item it;

	it.x = x + (size_t)q0 * RUN;
	it.off = a->sw->off + k0;
	it.val = a->sw->val + k0;
	it.nnz = a->sw->start[oc + 1] - k0;
	it.keep = a->keep + q0;
	it.at = a->at + q0;
	it.out = a->out ? a->out + plane : NULL;
	it.has_ep = a->ep != NULL;
	it.bn = a->ep && a->ep->bn_out ? a->ep->bn_out + plane : NULL;
	it.relu = a->ep && a->ep->relu_out ? a->ep->relu_out + plane : NULL;
	it.has_bias = a->bias != NULL;
	it.bias = a->bias ? a->bias[oc] : 0.0f;
	it.scale = a->ep ? a->ep->scale[oc] : 0.0f;
	it.shift = a->ep ? a->ep->shift[oc] : 0.0f;
	it.tmp = tmp;
#ifdef HAVE_SPARSE
	a->table[nx - 1](&it);
#else
	(void)nx;
	(void)it;
#endif
}

void pbi_sparse_conv_forward(float *out, const float *in,
			     const pbi_sparse_w *sw, const float *bias,
			     const pbi_sparse_geom *g, int B,
			     const pbi_conv_epilogue *ep, float *ws)
{
	const size_t chw = (size_t)g->C * g->H * g->W;
	const double macs = (double)B * (double)sw->nnz * g->nw;
	const int par = macs >= PAR_MIN_MACS &&
			(B > SAMPLES_PER_THREAD ||
			 macs >= PAD_WORK_MIN * (double)B * g->slice);
	const int nt = par ? pbi_max_threads() : 1;
	const size_t slices = (size_t)pbi_max_threads() * SAMPLES_PER_THREAD;
	float *runs = ws + slices * g->slice;
	uint16_t *keep;
	int32_t *at;
	conv_args a;
	long per;

	a.sw = sw;
	a.bias = bias;
	a.g = g;
	a.ep = ep;
	a.out = out;
	a.nq = (g->nw + RUN - 1) / RUN;
	/* the run layout lives after the run buffers */
	keep = (uint16_t *)(runs + (size_t)pbi_max_threads() * NX512 * RUN);
	at = (int32_t *)(runs + (size_t)pbi_max_threads() * NX512 * RUN +
			 ((size_t)a.nq + 1) / 2);
	pbi_phase_run_layout(keep, at, a.nq, g);
	a.keep = keep;
	a.at = at;
#ifdef HAVE_SPARSE
	a.table = pbi_sparse_isa() == 2 ? table512 : table256;
	a.ng = (a.nq + (pbi_sparse_isa() == 2 ? NX512 : NX256) - 1) /
	       (pbi_sparse_isa() == 2 ? NX512 : NX256);
#else
	a.ng = a.nq;
#endif
	per = (long)g->OC * a.ng;

	if (B >= SAMPLES_PER_THREAD * nt) {
		/* A thread pads a sample into its slice and computes all of
		 * it, while the sample is in its cache. */
#pragma omp parallel for schedule(static) if (par)
		for (int b = 0; b < B; b++) {
			const int t = pbi_thread_num();
			float *x = ws + (size_t)t * SAMPLES_PER_THREAD *
					g->slice;

			pbi_phase_pad_sample(x, in + (size_t)b * chw, g);
			for (long i = 0; i < per; i++)
				run_item(&a, b, i, x,
					 runs + (size_t)t * NX512 * RUN);
		}
		return;
	}
	/* Few samples: every thread's work items span all of them, so they
	 * are padded before any item runs. With at most SAMPLES_PER_THREAD
	 * (batch-1 latency) every thread pads them all into its own slices:
	 * padding twice is cheap, a thread reading the padded sample out of
	 * the other core's cache is not (two threads sharing one padded copy
	 * ran slower than one thread). With more, they are padded once,
	 * shared out. */
	{
		const int own = B <= SAMPLES_PER_THREAD;

#pragma omp parallel if (par)
		{
			const int t = pbi_thread_num();
			float *x = own ? ws + (size_t)t * SAMPLES_PER_THREAD *
						   g->slice : ws;

			if (own) {
				for (int b = 0; b < B; b++)
					pbi_phase_pad_sample(
						x + (size_t)b * g->slice,
						in + (size_t)b * chw, g);
			} else {
#pragma omp for schedule(static)
				for (int b = 0; b < B; b++)
					pbi_phase_pad_sample(
						x + (size_t)b * g->slice,
						in + (size_t)b * chw, g);
			}
#pragma omp for schedule(static)
			for (long i = 0; i < (long)B * per; i++)
				run_item(&a, (int)(i / per), i % per,
					 x + (size_t)(i / per) * g->slice,
					 runs + (size_t)t * NX512 * RUN);
		}
	}
}
