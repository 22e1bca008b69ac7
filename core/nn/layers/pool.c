/* Max and average pooling without padding. Threads own whole (H,W) planes,
 * so overlapping windows add into din in a fixed order. */
#include <math.h>

#include <string.h>

#include "prunebench/layers.h"
#include "nn/layers/layers_impl.h"

/* Planes of fewer values in all run on one thread (batch-1 inference). */
#define POOL_PAR_MIN 32768

/* The common 2x2/2 window, straight-line: the same comparisons in the
 * same order as the general loop (first max wins, NaN wins), without its
 * loop overhead. */
static inline void pool_take(float *bv, int32_t *best, float v, int32_t i)
{
	/* Branch-free: the winner is data-dependent, so a branch here
	 * mispredicts about half the time. */
	const int take = (v > *bv) | (v != v);

	*bv = take ? v : *bv;
	*best = take ? i : *best;
}

static void pool2x2_plane(float *y, int32_t *am, const float *x, int W,
			  int OH, int OW)
{
	for (int oh = 0; oh < OH; oh++) {
		const float *r0 = x + (size_t)2 * oh * W, *r1 = r0 + W;
		const int32_t base = 2 * oh * W;

		for (int ow = 0; ow < OW; ow++) {
			const int j = 2 * ow;
			float bv = r0[j];
			int32_t best = base + j;

			pool_take(&bv, &best, r0[j + 1], base + j + 1);
			pool_take(&bv, &best, r1[j], base + W + j);
			pool_take(&bv, &best, r1[j + 1], base + W + j + 1);
			y[oh * OW + ow] = bv;
			am[oh * OW + ow] = best;
		}
	}
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* One comparison step of the 2x2 window on 16 outputs at once: the
 * candidate v (indices vi) wins where it is greater or NaN. */
static inline __attribute__((always_inline, target("avx512f"))) void
take16(__m512 *bv, __m512i *bi, __m512 v, __m512i vi)
{
	const __mmask16 m = _mm512_cmp_ps_mask(v, *bv, _CMP_GT_OQ) |
			    _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);

	*bv = _mm512_mask_mov_ps(*bv, m, v);
	*bi = _mm512_mask_mov_epi32(*bi, m, vi);
}

/* pool2x2_plane vectorised over 16 output columns: the pairs of a row
 * are split into even and odd lanes, then compared in the scalar order
 * (top-left, top-right, bottom-left, bottom-right), so values and argmax
 * are identical. Masked loads stop at the row's last used column. */
static __attribute__((target("avx512f"))) void
pool2x2_plane_avx512(float *y, int32_t *am, const float *x, int W, int OH,
		     int OW)
{
	const __m512i ev = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16,
					    14, 12, 10, 8, 6, 4, 2, 0);
	const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
	const __m512i lane2 = _mm512_slli_epi32(
		_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3,
				 2, 1, 0), 1);

	for (int oh = 0; oh < OH; oh++) {
		const float *r0 = x + (size_t)2 * oh * W, *r1 = r0 + W;

		for (int ow = 0; ow < OW; ow += 16) {
			const int n = OW - ow < 16 ? OW - ow : 16;
			const __mmask16 lo = (__mmask16)(2 * n >= 16 ? 0xffff :
					     (1u << (2 * n)) - 1);
			const __mmask16 hi = (__mmask16)(2 * n <= 16 ? 0 :
					     (1u << (2 * n - 16)) - 1);
			const __mmask16 out = (__mmask16)((1u << n) - 1);
			const int j = 2 * ow;
			const __m512 a0 = _mm512_maskz_loadu_ps(lo, r0 + j);
			const __m512 a1 = _mm512_maskz_loadu_ps(hi, r0 + j + 16);
			const __m512 b0 = _mm512_maskz_loadu_ps(lo, r1 + j);
			const __m512 b1 = _mm512_maskz_loadu_ps(hi, r1 + j + 16);
			const __m512i i00 = _mm512_add_epi32(
				lane2, _mm512_set1_epi32(2 * oh * W + j));
			const __m512i one = _mm512_set1_epi32(1);
			const __m512i wv = _mm512_set1_epi32(W);
			__m512 bv = _mm512_permutex2var_ps(a0, ev, a1);
			__m512i bi = i00;

			take16(&bv, &bi, _mm512_permutex2var_ps(a0, od, a1),
			       _mm512_add_epi32(i00, one));
			take16(&bv, &bi, _mm512_permutex2var_ps(b0, ev, b1),
			       _mm512_add_epi32(i00, wv));
			take16(&bv, &bi, _mm512_permutex2var_ps(b0, od, b1),
			       _mm512_add_epi32(_mm512_add_epi32(i00, wv), one));
			_mm512_mask_storeu_ps(y + oh * OW + ow, out, bv);
			_mm512_mask_storeu_epi32(am + oh * OW + ow, out, bi);
		}
	}
}
#define HAVE_POOL_AVX512 1
#endif

/* in (B,C,H,W) -> out, argmax (B,C,OH,OW); argmax indexes the plane. */
void pb_maxpool_forward(float *out, int32_t *argmax, const float *in, int B,
			int C, int H, int W, int K, int stride)
{
	const int OH = pb_out_dim(H, K, stride, 0);
	const int OW = pb_out_dim(W, K, stride, 0);
	const int planes = B * C;
	int vec = 0;

#ifdef HAVE_POOL_AVX512
	__builtin_cpu_init();
	vec = __builtin_cpu_supports("avx512f");
#endif
	(void)vec;
#pragma omp parallel for schedule(static) if ((long)planes * H * W >= POOL_PAR_MIN)
	for (int p = 0; p < planes; p++) {
		const float *x = in + (size_t)p * H * W;
		float *y = out + (size_t)p * OH * OW;
		int32_t *am = argmax + (size_t)p * OH * OW;

		if (K == 2 && stride == 2) {
#ifdef HAVE_POOL_AVX512
			if (vec) {
				pool2x2_plane_avx512(y, am, x, W, OH, OW);
				continue;
			}
#endif
			pool2x2_plane(y, am, x, W, OH, OW);
			continue;
		}
		for (int oh = 0; oh < OH; oh++)
		for (int ow = 0; ow < OW; ow++) {
			int32_t best = oh * stride * W + ow * stride;
			float bv = x[best];

			/* Strictly greater keeps the first of equal maxima; a
			 * NaN wins so that divergence reaches the loss, as in
			 * PyTorch. */
			for (int ki = 0; ki < K; ki++)
			for (int kj = 0; kj < K; kj++) {
				const int32_t i =
					(oh * stride + ki) * W + ow * stride + kj;
				if (x[i] > bv || isnan(x[i])) {
					bv = x[i];
					best = i;
				}
			}
			y[oh * OW + ow] = bv;
			am[oh * OW + ow] = best;
		}
	}
}

/* dout, argmax (B,C,OH,OW); adds into din (B,C,H,W). */
void pb_maxpool_backward(float *din, const float *dout,
			 const int32_t *argmax, int B, int C, int H, int W,
			 int K, int stride)
{
	pbi_maxpool_backward(din, dout, argmax, B, C, H, W, K, stride, 0);
}

/* Overwriting zeroes each plane just before its scatter, while it is in
 * the cache. */
void pbi_maxpool_backward(float *din, const float *dout,
			  const int32_t *argmax, int B, int C, int H, int W,
			  int K, int stride, int overwrite)
{
	const int ohw = pb_out_dim(H, K, stride, 0) * pb_out_dim(W, K, stride, 0);
	const int planes = B * C;

#pragma omp parallel for schedule(static) if ((long)planes * H * W >= POOL_PAR_MIN)
	for (int p = 0; p < planes; p++) {
		float *dx = din + (size_t)p * H * W;
		const float *dy = dout + (size_t)p * ohw;
		const int32_t *am = argmax + (size_t)p * ohw;

		if (overwrite)
			memset(dx, 0, (size_t)H * W * sizeof *dx);
		for (int j = 0; j < ohw; j++)
			dx[am[j]] += dy[j];
	}
}

/* in (B,C,H,W) -> out (B,C,OH,OW), window KH x KW. */
void pb_avgpool_forward(float *out, const float *in, int B, int C, int H,
			int W, int KH, int KW, int stride)
{
	const int OH = pb_out_dim(H, KH, stride, 0);
	const int OW = pb_out_dim(W, KW, stride, 0);
	const int planes = B * C;
	const float inv = 1.0f / (float)(KH * KW);

#pragma omp parallel for schedule(static) if ((long)planes * H * W >= POOL_PAR_MIN)
	for (int p = 0; p < planes; p++) {
		const float *x = in + (size_t)p * H * W;
		float *y = out + (size_t)p * OH * OW;

		for (int oh = 0; oh < OH; oh++)
		for (int ow = 0; ow < OW; ow++) {
			const float *w = x + (size_t)oh * stride * W +
					 (size_t)ow * stride;
			float s = 0.0f;
			for (int ki = 0; ki < KH; ki++)
				for (int kj = 0; kj < KW; kj++)
					s += w[(size_t)ki * W + kj];
			y[oh * OW + ow] = s * inv;
		}
	}
}

/* dout (B,C,OH,OW); adds into din (B,C,H,W). */
void pb_avgpool_backward(float *din, const float *dout, int B, int C, int H,
			 int W, int KH, int KW, int stride)
{
	pbi_avgpool_backward(din, dout, B, C, H, W, KH, KW, stride, 0);
}

void pbi_avgpool_backward(float *din, const float *dout, int B, int C,
			  int H, int W, int KH, int KW, int stride,
			  int overwrite)
{
	const int OH = pb_out_dim(H, KH, stride, 0);
	const int OW = pb_out_dim(W, KW, stride, 0);
	const int planes = B * C;
	const float inv = 1.0f / (float)(KH * KW);

#pragma omp parallel for schedule(static)
	for (int p = 0; p < planes; p++) {
		float *dx = din + (size_t)p * H * W;
		const float *dy = dout + (size_t)p * OH * OW;

		if (overwrite)
			memset(dx, 0, (size_t)H * W * sizeof *dx);
		for (int oh = 0; oh < OH; oh++)
		for (int ow = 0; ow < OW; ow++) {
			float *w = dx + (size_t)oh * stride * W +
				   (size_t)ow * stride;
			const float g = dy[oh * OW + ow] * inv;
			for (int ki = 0; ki < KH; ki++)
				for (int kj = 0; kj < KW; kj++)
					w[(size_t)ki * W + kj] += g;
		}
	}
}
