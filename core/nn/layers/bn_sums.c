/* BatchNorm's per-channel sums, in the engine's fixed order, several
 * planes at a time.
 *
 * The order (PB_NUMERICS 3): a plane of n values is summed in four float
 * lanes, lane l taking values l, l+4, l+8, ... of the first n & ~3 in
 * turn; the last n % 4 values are added to lane 0 in turn; the plane's
 * sum is ((((0 + lane 0) + lane 1) + lane 2) + lane 3). The channel's
 * sum adds the planes' sums into a double in sample order. That is the
 * order GCC gave the former `omp simd` loops on the x86-64-v2 build in
 * which every committed result was computed; written out here, it no
 * longer depends on a compiler's choice of vector width.
 *
 * Why it is fast: one plane's four lanes form one chain of dependent
 * additions (4 cycles each), so a loop over one plane ran at a quarter of
 * what the core can add. Here GROUP planes' chains run side by side; each
 * keeps its own order, so the bits do not change. */
#include "nn/layers/layers_impl.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#define HAVE_SSE 1
#endif

/* Planes summed side by side: enough independent chains to hide the
 * latency of an addition; two accumulators per plane for the gradient
 * sums fit the 16 SSE registers at GRAD_GROUP 4. */
enum { GROUP = 8, GRAD_GROUP = 4 };

/* The plane's sum from its four lanes. */
static inline float fold(const float l[4])
{
	return (((0.0f + l[0]) + l[1]) + l[2]) + l[3];
}

/* Planes p < np at x + p * stride: sum of x (sq = 0) or of (x - m)^2
 * (sq = 1), each plane's into *sum in order. np and sq are constants
 * after inlining. */
static inline __attribute__((always_inline)) void
group_sums(double *sum, const float *x, size_t stride, int np, int HW,
	   float m, int sq)
{
	const int n4 = HW & ~3;
	float l[GROUP][4];

#ifdef HAVE_SSE
	const __m128 vm = _mm_set1_ps(m);
	__m128 acc[GROUP];

	for (int p = 0; p < np; p++)
		acc[p] = _mm_setzero_ps();
	for (int j = 0; j < n4; j += 4)
		for (int p = 0; p < np; p++) {
			__m128 v = _mm_loadu_ps(x + (size_t)p * stride + j);

			if (sq) {
				v = _mm_sub_ps(v, vm);
				v = _mm_mul_ps(v, v);
			}
			acc[p] = _mm_add_ps(acc[p], v);
		}
	for (int p = 0; p < np; p++)
		_mm_storeu_ps(l[p], acc[p]);
#else
	for (int p = 0; p < np; p++)
		l[p][0] = l[p][1] = l[p][2] = l[p][3] = 0.0f;
	for (int j = 0; j < n4; j += 4)
		for (int p = 0; p < np; p++)
			for (int k = 0; k < 4; k++) {
				float v = x[(size_t)p * stride + j + k];

				if (sq) {
					v = v - m;
					v = v * v;
				}
				l[p][k] += v;
			}
#endif
	for (int p = 0; p < np; p++) {
		for (int j = n4; j < HW; j++) {
			float v = x[(size_t)p * stride + j];

			if (sq) {
				v = v - m;
				v = v * v;
			}
			l[p][0] += v;
		}
		*sum += fold(l[p]);
	}
}

/* Channels [0, nc) of B samples, channel c's plane of sample b at x + b *
 * stride + c * HW: GROUP samples at a time, their planes of every channel
 * of the block in turn, so that each of the GROUP streams runs through
 * nc * HW consecutive values (short planes, e.g. 7x7, read one by one are
 * latency-bound, not bandwidth-bound). Channel c's sum still gets its
 * planes in sample order. */
static inline __attribute__((always_inline)) void
block_sums(double *sum, const float *x, size_t stride, int nc, int B,
	   int HW, const float *m, int sq)
{
	int b = 0;

	for (int c = 0; c < nc; c++)
		sum[c] = 0.0;
	for (; b + GROUP <= B; b += GROUP)
		for (int c = 0; c < nc; c++)
			group_sums(&sum[c], x + (size_t)b * stride +
				   (size_t)c * HW, stride, GROUP, HW,
				   sq ? m[c] : 0.0f, sq);
	for (; b < B; b++)
		for (int c = 0; c < nc; c++)
			group_sums(&sum[c], x + (size_t)b * stride +
				   (size_t)c * HW, stride, 1, HW,
				   sq ? m[c] : 0.0f, sq);
}

void pbi_bn_block_sum(double *sum, const float *x, size_t stride, int nc,
		      int B, int HW)
{
	block_sums(sum, x, stride, nc, B, HW, NULL, 0);
}

void pbi_bn_block_sqdev(double *sq, const float *x, size_t stride, int nc,
			int B, int HW, const float *m)
{
	block_sums(sq, x, stride, nc, B, HW, m, 1);
}

/* Planes p < np of the gradient sums: g = dout (or, with r, dout where
 * r > 0, else +0), xhat = (x - m) * is; sums of g and of g * xhat. pf:
 * the offset of the planes to prefetch meanwhile, 0 for none. */
static inline __attribute__((always_inline)) void
group_grad(double *sdy, double *sdyx, const float *dout, const float *r,
	   const float *x, size_t stride, int np, int HW, float m, float is,
	   size_t pf)
{
	const int n4 = HW & ~3;
	float la[GRAD_GROUP][4], lb[GRAD_GROUP][4];

#ifdef HAVE_SSE
	const __m128 vm = _mm_set1_ps(m), vis = _mm_set1_ps(is);
	__m128 a[GRAD_GROUP], bb[GRAD_GROUP];

	for (int p = 0; p < np; p++)
		a[p] = bb[p] = _mm_setzero_ps();
	for (int j = 0; j < n4; j += 4) {
		/* The next samples' planes: each plane is one short stream
		 * (a few KiB), too short for the hardware to prefetch. */
		if (pf && !(j & 15))
			for (int p = 0; p < np; p++) {
				const size_t o = pf + (size_t)p * stride + j;

				__builtin_prefetch(dout + o);
				__builtin_prefetch(x + o);
				if (r)
					__builtin_prefetch(r + o);
			}
		for (int p = 0; p < np; p++) {
			const size_t o = (size_t)p * stride + j;
			__m128 g = _mm_loadu_ps(dout + o);
			const __m128 xh = _mm_mul_ps(_mm_sub_ps(
				_mm_loadu_ps(x + o), vm), vis);

			/* +0 where r <= 0 (or NaN), as the select */
			if (r)
				g = _mm_and_ps(g, _mm_cmpgt_ps(
					_mm_loadu_ps(r + o),
					_mm_setzero_ps()));
			a[p] = _mm_add_ps(a[p], g);
			bb[p] = _mm_add_ps(bb[p], _mm_mul_ps(g, xh));
		}
	}
	for (int p = 0; p < np; p++) {
		_mm_storeu_ps(la[p], a[p]);
		_mm_storeu_ps(lb[p], bb[p]);
	}
#else
	for (int p = 0; p < np; p++)
		for (int k = 0; k < 4; k++)
			la[p][k] = lb[p][k] = 0.0f;
	for (int j = 0; j < n4; j += 4)
		for (int p = 0; p < np; p++)
			for (int k = 0; k < 4; k++) {
				const size_t o = (size_t)p * stride + j + k;
				const float xh = (x[o] - m) * is;
				const float g = !r || r[o] > 0.0f ? dout[o] :
						0.0f;

				la[p][k] += g;
				lb[p][k] += g * xh;
			}
#endif
	for (int p = 0; p < np; p++) {
		for (int j = n4; j < HW; j++) {
			const size_t o = (size_t)p * stride + j;
			const float xh = (x[o] - m) * is;
			const float g = !r || r[o] > 0.0f ? dout[o] : 0.0f;

			la[p][0] += g;
			lb[p][0] += g * xh;
		}
		*sdy += fold(la[p]);
		*sdyx += fold(lb[p]);
	}
}

/* with_r is a constant after inlining, so each caller gets a loop
 * without the select or one with it. */
static inline __attribute__((always_inline)) void
block_grad(double *sdy, double *sdyx, const float *dout, const float *r,
	   const float *x, size_t stride, int nc, int B, int HW,
	   const float *m, const float *is, int with_r)
{
	int b = 0;

	for (int c = 0; c < nc; c++)
		sdy[c] = sdyx[c] = 0.0;
	for (; b + GRAD_GROUP <= B; b += GRAD_GROUP)
		for (int c = 0; c < nc; c++) {
			const size_t o = (size_t)b * stride + (size_t)c * HW;
			/* a one-channel block's next planes are the next
			 * samples'; a wider block's, the next channel's,
			 * which follow in memory */
			const size_t pf = nc == 1 && b + 2 * GRAD_GROUP <= B ?
					  GRAD_GROUP * stride : 0;

			group_grad(&sdy[c], &sdyx[c], dout + o,
				   with_r ? r + o : NULL, x + o, stride,
				   GRAD_GROUP, HW, m[c], is[c], pf);
		}
	for (; b < B; b++)
		for (int c = 0; c < nc; c++) {
			const size_t o = (size_t)b * stride + (size_t)c * HW;

			group_grad(&sdy[c], &sdyx[c], dout + o,
				   with_r ? r + o : NULL, x + o, stride, 1, HW,
				   m[c], is[c], 0);
		}
}

void pbi_bn_block_grad_sums(double *sdy, double *sdyx, const float *dout,
			    const float *r, const float *x, size_t stride,
			    int nc, int B, int HW, const float *m,
			    const float *is)
{
	if (r)
		block_grad(sdy, sdyx, dout, r, x, stride, nc, B, HW, m, is, 1);
	else
		block_grad(sdy, sdyx, dout, NULL, x, stride, nc, B, HW, m, is,
			   0);
}
