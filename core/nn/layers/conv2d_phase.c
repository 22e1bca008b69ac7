/* Direct convolution for the shapes the 3x3 stride-1 kernel does not take
 * (ResNet's stride-2 3x3 and 1x1 projection convs, LeNet's 5x5), on the
 * padded phase layout of the sparse kernel (sparse.h, pbi_sparse_geom):
 * there every tap (c, ki, kj) of every output pixel is one fixed offset,
 * so the kernel is the direct one's, without masks: 8 output channels x
 * 3 runs of 16 pixels in 24 zmm accumulators, per tap 3 loads, 8
 * broadcasts and 24 FMAs, and the kept lanes of each run compressed into
 * the output. It replaces im2col + sgemm in the forward pass (training
 * and inference, with the eval BN + ReLU epilogue); backward keeps
 * im2col. Measured in docs/performance.md. */
#include <stdlib.h>
#include <string.h>

#include "nn/layers/sparse.h"
#include "nn/layers/threads.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_PHASE 1
#endif

#define RUN 16
#define OB 8
#define NX 3
#define SAMPLES_PER_THREAD 4

int pbi_conv_phase_ok(const pbi_sparse_geom *g)
{
#ifdef HAVE_PHASE
	const char *force = getenv("PB_CONV");

	if (force && !strcmp(force, "im2col"))
		return 0;
	/* offsets are int32, the run layout is per call */
	if ((double)g->slice * SAMPLES_PER_THREAD > 1e8)
		return 0;
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f");
#else
	(void)g;
	return 0;
#endif
}

/* Padded slices (SAMPLES_PER_THREAD per thread), the tap offsets (C K K
 * int32), then the run layout (16-bit mask, 32-bit index per run); all
 * of it counted per thread, as every conv workspace is sized. */
size_t pbi_conv_phase_workspace(const pbi_sparse_geom *g)
{
	const size_t nq = ((size_t)g->nw + RUN - 1) / RUN;

	return (size_t)pbi_max_threads() *
	       (SAMPLES_PER_THREAD * g->slice + (size_t)g->C * g->K * g->K +
		(nq + 1) / 2 + nq);
}

#ifdef HAVE_PHASE

typedef struct phase_args {
	const float *weight, *bias;
	const pbi_sparse_geom *g;
	const pbi_conv_epilogue *ep;
	float *out;
	const int32_t *off;
	const uint16_t *keep;
	const int32_t *at;
	int ntap, nq, ng, nob;
} phase_args;

/* Output channels [oc0, oc0 + ob) at runs [q0, q0 + nx) of sample b,
 * whose padded copy is x. */
static inline __attribute__((always_inline, target("avx512f"))) void
phase_body(const phase_args *a, int b, int oc0, int q0, const float *x,
	   const int ob, const int nx)
{
	const pbi_sparse_geom *g = a->g;
	const int ntap = a->ntap;
	const float *xq = x + (size_t)q0 * RUN;
	const float *wp = a->weight + (size_t)oc0 * ntap;
	__m512 acc[OB][NX];

#pragma GCC unroll 8
	for (int o = 0; o < ob; o++)
#pragma GCC unroll 3
		for (int j = 0; j < nx; j++)
			acc[o][j] = _mm512_setzero_ps();
	for (int t = 0; t < ntap; t++) {
		const float *p = xq + a->off[t];
		__m512 v[NX];

#pragma GCC unroll 3
		for (int j = 0; j < nx; j++)
			v[j] = _mm512_loadu_ps(p + RUN * j);
#pragma GCC unroll 8
		for (int o = 0; o < ob; o++) {
			const __m512 w = _mm512_set1_ps(wp[(size_t)o * ntap + t]);
#pragma GCC unroll 3
			for (int j = 0; j < nx; j++)
				acc[o][j] = _mm512_fmadd_ps(v[j], w, acc[o][j]);
		}
	}
#pragma GCC unroll 8
	for (int o = 0; o < ob; o++) {
		const int oc = oc0 + o;
		const size_t plane = ((size_t)b * g->OC + oc) * g->OH * g->OW;
		const pbi_conv_epilogue *ep = a->ep;
#pragma GCC unroll 3
		for (int j = 0; j < nx; j++) {
			const __mmask16 keep = a->keep[q0 + j];
			const __mmask16 head = (__mmask16)((1u <<
				__builtin_popcount(keep)) - 1u);
			const size_t at = plane + (size_t)a->at[q0 + j];
			__m512 r = acc[o][j];

			if (a->bias)
				r = _mm512_add_ps(r, _mm512_set1_ps(a->bias[oc]));
			if (a->out)
				_mm512_mask_storeu_ps(a->out + at, head,
					_mm512_maskz_compress_ps(keep, r));
			if (ep) {
				/* multiply then add, as pb_bn_forward_eval */
				const __m512 bn = _mm512_add_ps(
					_mm512_mul_ps(r, _mm512_set1_ps(
						ep->scale[oc])),
					_mm512_set1_ps(ep->shift[oc]));

				if (ep->bn_out)
					_mm512_mask_storeu_ps(ep->bn_out + at,
						head, _mm512_maskz_compress_ps(
							keep, bn));
				if (ep->relu_out)
					_mm512_mask_storeu_ps(ep->relu_out + at,
						head, _mm512_maskz_compress_ps(
							keep, _mm512_max_ps(bn,
							_mm512_setzero_ps())));
			}
		}
	}
}

typedef void (*phase_fn)(const phase_args *, int, int, int, const float *);

#define DEF_PH(ob, nx)                                                      \
	static __attribute__((target("avx512f"), noinline)) void            \
	ph_##ob##_##nx(const phase_args *a, int b, int oc0, int q0,         \
		       const float *x)                                      \
	{                                                                   \
		phase_body(a, b, oc0, q0, x, ob, nx);                       \
	}
#define DEF_PH_NX(ob) DEF_PH(ob, 1) DEF_PH(ob, 2) DEF_PH(ob, 3)
DEF_PH_NX(1) DEF_PH_NX(2) DEF_PH_NX(3) DEF_PH_NX(4)
DEF_PH_NX(5) DEF_PH_NX(6) DEF_PH_NX(7) DEF_PH_NX(8)

#define PH_ROW(ob) { ph_##ob##_1, ph_##ob##_2, ph_##ob##_3 }
static const phase_fn ph_table[OB][NX] = {
	PH_ROW(1), PH_ROW(2), PH_ROW(3), PH_ROW(4),
	PH_ROW(5), PH_ROW(6), PH_ROW(7), PH_ROW(8),
};

/* Item i of a sample: (run group, output-channel block), groups outer so
 * that consecutive items read the same stretch of the padded sample. */
static void phase_item(const phase_args *a, int b, long i, const float *x)
{
	const int gi = (int)(i / a->nob), oi = (int)(i % a->nob);
	const int q0 = pbi_block_start(gi, a->nq, a->ng);
	const int nx = pbi_block_start(gi + 1, a->nq, a->ng) - q0;
	const int oc0 = pbi_block_start(oi, a->g->OC, a->nob);
	const int ob = pbi_block_start(oi + 1, a->g->OC, a->nob) - oc0;

	ph_table[ob - 1][nx - 1](a, b, oc0, q0, x);
}

#endif /* HAVE_PHASE */

void pbi_conv_phase_forward(float *out, const float *in,
			    const float *weight, const float *bias,
			    const pbi_sparse_geom *g, int B,
			    const pbi_conv_epilogue *ep, float *ws)
{
#ifdef HAVE_PHASE
	const size_t chw = (size_t)g->C * g->H * g->W;
	const size_t slices = (size_t)pbi_max_threads() * SAMPLES_PER_THREAD;
	const double macs = (double)B * g->OC * g->OH * g->OW * g->C * g->K *
			    g->K;
	const int par = macs >= PBI_PAR_MIN_MACS;
	const int nt = par ? pbi_max_threads() : 1;
	const int K = g->K, s = g->stride, np = g->np;
	int32_t *off = (int32_t *)(ws + slices * g->slice);
	uint16_t *keep;
	int32_t *at;
	phase_args a;
	long per;
	int t = 0;

	a.nq = (g->nw + RUN - 1) / RUN;
	keep = (uint16_t *)(off + (size_t)g->C * K * K);
	at = (int32_t *)(off + (size_t)g->C * K * K + ((size_t)a.nq + 1) / 2);
	for (int c = 0; c < g->C; c++)
		for (int ki = 0; ki < K; ki++)
			for (int kj = 0; kj < K; kj++)
				off[t++] = (int32_t)(((((size_t)c * np +
					ki % s) * np + kj % s)) * g->plane +
					(size_t)(ki / s) * g->Wq +
					(size_t)(kj / s));
	pbi_phase_run_layout(keep, at, a.nq, g);
	a.weight = weight;
	a.bias = bias;
	a.g = g;
	a.ep = ep;
	a.out = out;
	a.off = off;
	a.keep = keep;
	a.at = at;
	a.ntap = g->C * K * K;
	a.ng = (a.nq + NX - 1) / NX;
	a.nob = (g->OC + OB - 1) / OB;
	per = (long)a.ng * a.nob;

	if (B >= SAMPLES_PER_THREAD * nt) {
#pragma omp parallel for schedule(static) if (par)
		for (int b = 0; b < B; b++) {
			float *x = ws + (size_t)pbi_thread_num() *
					SAMPLES_PER_THREAD * g->slice;

			pbi_phase_pad_sample(x, in + (size_t)b * chw, g);
			for (long i = 0; i < per; i++)
				phase_item(&a, b, i, x);
		}
		return;
	}
#pragma omp parallel if (par)
	{
#pragma omp for schedule(static)
		for (int b = 0; b < B; b++)
			pbi_phase_pad_sample(ws + (size_t)b * g->slice,
					     in + (size_t)b * chw, g);
#pragma omp for schedule(static)
		for (long i = 0; i < (long)B * per; i++)
			phase_item(&a, (int)(i / per), i % per,
				   ws + (size_t)(i / per) * g->slice);
	}
#else
	(void)out; (void)in; (void)weight; (void)bias; (void)g; (void)B;
	(void)ep; (void)ws;
#endif
}
