/* The layouts of the sparse convolution (conv2d_sparse.c has how they
 * are used): its geometry (the padded, phase-split planes and the wide
 * output grid), the weights compressed into rows of (offset, value)
 * pairs at their taps' offsets, one sample copied into the padded
 * layout, and which lanes of each output run are kept. The dense phase
 * kernel (conv2d_phase.c) reads the same padded sample and runs. */
#include <stdlib.h>
#include <string.h>

#include "prunebench/error.h"
#include "nn/layers/sparse.h"
#include "nn/layers/threads.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_SPARSE 1
#endif

/* Output runs are 16 floats, as the kernels compute them. */
#define RUN 16

/* Plane, wide grid and slice sizes from the dimensions. */
static void layout(pbi_sparse_geom *g)
{
	const int s = g->stride, K = g->K;
	size_t planes, need, runs, last;

	g->plane = (size_t)g->Hq * g->Wq;
	g->nw = g->OH * g->Wq;
	/* The last run of the last tap reads up to a run past the wide
	 * grid: the slack after the planes is zeroed. */
	planes = (size_t)g->C * g->np * g->np * g->plane;
	runs = ((size_t)g->nw + RUN - 1) / RUN;
	last = ((size_t)g->C * g->np * g->np - 1) * g->plane +
	       (size_t)((K - 1) / s) * g->Wq + (size_t)((K - 1) / s);
	need = last + runs * RUN;
	g->copy = pbi_round16(need > planes ? need : planes);
	g->slice = g->copy * (size_t)g->shifts;
}

void pbi_sparse_geom_init(pbi_sparse_geom *g, int C, int H, int W, int OC,
			  int K, int stride, int pad)
{
	const int s = stride, Hp = H + 2 * pad, Wp = W + 2 * pad;

	g->C = C;
	g->H = H;
	g->W = W;
	g->OC = OC;
	g->K = K;
	g->stride = s;
	g->pad = pad;
	g->OH = (Hp - K) / s + 1;
	g->OW = (Wp - K) / s + 1;
	g->Hq = (Hp + s - 1) / s;
	g->Wq = (Wp + s - 1) / s;
	g->np = s < K ? s : K;
	g->shifts = 1;
	layout(g);
}

void pbi_sparse_geom_align(pbi_sparse_geom *g)
{
	const int Wp = g->W + 2 * g->pad, W16 = (Wp + 15) / 16 * 16;

	if (g->stride != 1 || g->K < 2 || (W16 - Wp) * 8 > Wp)
		return;
	g->Wq = W16;
	g->shifts = g->K;
	layout(g);
}

size_t pbi_sparse_count(const float *w, size_t n)
{
	size_t c = 0;

	for (size_t i = 0; i < n; i++)
		c += w[i] != 0.0f;
	return c;
}

void pbi_sparse_w_free(pbi_sparse_w *s)
{
	free(s->start);
	free(s->off);
	free(s->val);
	memset(s, 0, sizeof *s);
}

static int sparse_alloc(pbi_sparse_w *s, int rows, size_t n, size_t nnz)
{
	memset(s, 0, sizeof *s);
	s->rows = rows;
	s->n = n;
	s->nnz = nnz;
	s->start = malloc(((size_t)rows + 1) * sizeof *s->start);
	s->off = malloc((nnz ? nnz : 1) * sizeof *s->off);
	s->val = malloc((nnz ? nnz : 1) * sizeof *s->val);
	if (!s->start || !s->off || !s->val) {
		pbi_sparse_w_free(s);
		return PB_ENOMEM;
	}
	return 0;
}

int pbi_sparse_build_conv(pbi_sparse_w *s, const float *weight,
			  const pbi_sparse_geom *g)
{
	const int K = g->K, st = g->stride, C = g->C;
	const size_t per = (size_t)C * K * K, n = per * g->OC;
	size_t k = 0;

	if (sparse_alloc(s, g->OC, n, pbi_sparse_count(weight, n)))
		return PB_ENOMEM;
	for (int oc = 0; oc < g->OC; oc++) {
		const float *w = weight + (size_t)oc * per;

		s->start[oc] = (int32_t)k;
		for (int c = 0; c < C; c++)
		for (int ki = 0; ki < K; ki++)
		for (int kj = 0; kj < K; kj++) {
			const float v = w[((size_t)c * K + ki) * K + kj];
			const size_t ph = ((size_t)c * g->np + ki % st) *
					  g->np + kj % st;

			if (v == 0.0f)
				continue;
			if (g->shifts > 1)
				/* stride 1: copy kj, aligned */
				s->off[k] = (int32_t)((size_t)kj * g->copy +
						      c * g->plane +
						      (size_t)ki * g->Wq);
			else
				s->off[k] = (int32_t)(ph * g->plane +
						      (size_t)(ki / st) * g->Wq +
						      (size_t)(kj / st));
			s->val[k++] = v;
		}
	}
	s->start[g->OC] = (int32_t)k;
	return 0;
}

#ifdef HAVE_SPARSE

/* Stride 1 with AVX-512: each padded row as whole vectors, the input
 * row read with a lane mask (masked lanes do not fault, so reading from
 * before the row is safe) and written over the full width; a row's
 * spill past Wq lands on the next row or plane, written after it, or on
 * the slack, zeroed after all. This runs for every sample of every
 * sparse layer: libc's memcpy and memset per row cost as much as the
 * convolution itself at 90% sparsity. */
static __attribute__((target("avx512f"))) void
pad_s1_avx512(float *dst, const float *x, const pbi_sparse_geom *g)
{
	const int H = g->H, W = g->W, pad = g->pad, Wq = g->Wq;
	const int nv = (Wq + 15) / 16;

	for (int c = 0; c < g->C; c++) {
		float *pl = dst + (size_t)c * g->plane;
		const float *xc = x + (size_t)c * H * W;

		for (int i = 0; i < g->Hq; i++) {
			const int r = i - pad;
			float *row = pl + (size_t)i * Wq;

			for (int v = 0; v < nv; v++) {
				__m512 val = _mm512_setzero_ps();

				if (r >= 0 && r < H) {
					/* lanes l with 0 <= 16 v + l - pad < W */
					const int lo = pad - 16 * v;
					const int hi = W + pad - 16 * v;
					uint32_t m = 0xffffu;

					if (lo > 0)
						m = lo >= 16 ? 0 : m << lo & 0xffffu;
					if (hi < 16)
						m &= hi <= 0 ? 0 : (1u << hi) - 1u;
					val = _mm512_maskz_loadu_ps(
						(__mmask16)m,
						xc + (ptrdiff_t)r * W + 16 * v -
						pad);
				}
				_mm512_storeu_ps(row + 16 * v, val);
			}
		}
	}
}

/* Lanes l of a 16-float load at input column q0 + l inside [0, W). */
static inline __mmask16 cols_in(int q0, int W)
{
	const int lo = q0 < 0 ? -q0 : 0, hi = W - q0;
	uint32_t m;

	if (lo >= 16 || hi <= 0)
		return 0;
	m = 0xffffu << lo & 0xffffu;
	if (hi < 16)
		m &= (1u << hi) - 1u;
	return (__mmask16)m;
}

/* Stride 2 with AVX-512: the phase rows of each input row taken apart
 * with a two-vector permute (even or odd columns), whole vectors
 * written as in pad_s1_avx512. */
static __attribute__((target("avx512f"))) void
pad_s2_avx512(float *dst, const float *x, const pbi_sparse_geom *g)
{
	const int H = g->H, W = g->W, pad = g->pad, Wq = g->Wq, np = g->np;
	const int nv = (Wq + 15) / 16;
	const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16,
					      14, 12, 10, 8, 6, 4, 2, 0);

	for (int c = 0; c < g->C; c++)
	for (int py = 0; py < np; py++)
	for (int px = 0; px < np; px++) {
		float *pl = dst + (((size_t)c * np + py) * np + px) * g->plane;
		const float *xc = x + (size_t)c * H * W;

		for (int i = 0; i < g->Hq; i++) {
			const int r = 2 * i + py - pad;
			float *row = pl + (size_t)i * Wq;

			for (int v = 0; v < nv; v++) {
				/* row[j] = in[r][2 j + px - pad] */
				const int q0 = 32 * v + px - pad;
				__m512 val = _mm512_setzero_ps();

				if (r >= 0 && r < H) {
					const float *xr = xc + (ptrdiff_t)r * W;
					const __m512 a = _mm512_maskz_loadu_ps(
						cols_in(q0, W), xr + q0);
					const __m512 b = _mm512_maskz_loadu_ps(
						cols_in(q0 + 16, W),
						xr + q0 + 16);

					val = _mm512_permutex2var_ps(a, even, b);
				}
				_mm512_storeu_ps(row + 16 * v, val);
			}
		}
	}
}
#endif

/* One sample (C,H,W) into the padded, phase-split layout of g. */
void pbi_phase_pad_sample(float *dst, const float *x,
			  const pbi_sparse_geom *g)
{
	const int s = g->stride, H = g->H, W = g->W, pad = g->pad;
	const int Hq = g->Hq, Wq = g->Wq, np = g->np;
	size_t planes = (size_t)g->C * np * np * g->plane;

#ifdef HAVE_SPARSE
	/* a row's spill must stay inside the slice: the slack holds at
	 * least a run past the planes */
	if (s == 1 && pbi_sparse_isa() == 2 && g->copy >= planes + 16) {
		pad_s1_avx512(dst, x, g);
		goto tail;
	}
	if (s == 2 && pbi_sparse_isa() == 2 && g->copy >= planes + 16) {
		pad_s2_avx512(dst, x, g);
		goto tail;
	}
#endif
	for (int c = 0; c < g->C; c++)
	for (int py = 0; py < np; py++)
	for (int px = 0; px < np; px++) {
		float *pl = dst + (((size_t)c * np + py) * np + px) * g->plane;
		const float *xc = x + (size_t)c * H * W;

		for (int i = 0; i < Hq; i++) {
			const int r = s * i + py - pad;
			float *row = pl + (size_t)i * Wq;

			if (r < 0 || r >= H) {
				memset(row, 0, (size_t)Wq * sizeof *row);
				continue;
			}
			if (s == 1) {
				/* columns j - pad: pad zeros, W values,
				 * the rest zeros */
				const int lo = pad < Wq ? pad : Wq;
				const int n = W < Wq - lo ? W : Wq - lo;

				memset(row, 0, (size_t)lo * sizeof *row);
				memcpy(row + lo, xc + (size_t)r * W,
				       (size_t)n * sizeof *row);
				memset(row + lo + n, 0,
				       (size_t)(Wq - lo - n) * sizeof *row);
				continue;
			}
			/* columns j whose input s*j + px - pad is in
			 * [0, W): [lo, hi) */
			{
				const float *xr = xc + (size_t)r * W;
				int lo = pad - px > 0 ?
					 (pad - px + s - 1) / s : 0;
				int hi = W - 1 + pad - px < 0 ? 0 :
					 (W - 1 + pad - px) / s + 1;

				if (hi > Wq)
					hi = Wq;
				if (lo > hi)
					lo = hi;
				for (int j = 0; j < lo; j++)
					row[j] = 0.0f;
				for (int j = lo; j < hi; j++)
					row[j] = xr[s * j + px - pad];
				for (int j = hi; j < Wq; j++)
					row[j] = 0.0f;
			}
		}
	}
#ifdef HAVE_SPARSE
tail:
#endif
	memset(dst + planes, 0, (g->copy - planes) * sizeof *dst);
	/* the shifted copies: copy r holds copy 0 from float r on */
	for (int r = 1; r < g->shifts; r++) {
		float *cp = dst + (size_t)r * g->copy;

		memcpy(cp, dst + r, (g->copy - (size_t)r) * sizeof *dst);
		memset(cp + g->copy - r, 0, (size_t)r * sizeof *dst);
	}
}

/* Per run of the wide grid: which lanes fall on kept columns (x < OW,
 * inside the grid), and the output index of the first of them. */
void pbi_phase_run_layout(uint16_t *keep, int32_t *at, int nq,
			  const pbi_sparse_geom *g)
{
	int y = 0, x = 0;   /* where run q starts on the wide grid */

	/* Row segments rather than lanes: this runs on every call. */
	for (int q = 0; q < nq; q++) {
		uint32_t k = 0;
		int l = 0, yy = y, xx = x;

		at[q] = y * g->OW + (x < g->OW ? x : g->OW);
		while (l < RUN && yy < g->OH) {
			const int seg = g->Wq - xx < RUN - l ? g->Wq - xx :
				       RUN - l;
			const int kept = g->OW - xx < seg ? g->OW - xx : seg;

			if (kept > 0)
				k |= ((1u << kept) - 1u) << l;
			l += seg;
			yy++;
			xx = 0;
		}
		keep[q] = (uint16_t)k;
		x += RUN;
		while (x >= g->Wq) {
			x -= g->Wq;
			y++;
		}
	}
}
