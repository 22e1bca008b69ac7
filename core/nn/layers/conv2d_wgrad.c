/* Weight gradient of the direct 3x3 stride-1 pad-1 convolution, with
 * AVX-512, vectorized over output channels.
 *
 * dW[oc][c][t] = sum over samples b and pixels p of
 *   dout[b][oc][p] * in[b][c][p + off(t)]   (zero off the plane).
 *
 * Why over output channels and not over pixels (as the forward): summed
 * over pixels, every weight ends in a horizontal reduction of a vector,
 * and the 7x7 and 14x14 planes of these models fill their 16-lane chunks
 * badly (49 pixels take 64 lanes) and need a mask at every tap. Held as
 * 16 output channels per register, a weight's sum is one lane of one
 * accumulator: each pixel loads one vector of gradients per 16 output
 * channels and multiplies it by nine broadcast inputs, one per tap, with
 * no mask and no reduction. That ran at 124-135 GFLOP/s on VGG-S's
 * layers of 32 and 64 output channels against 64-100 for the
 * pixel-vectorized kernel (conv2d_direct.c), which keeps layers of at
 * most 16 output channels and small batches (docs/performance.md, "The
 * weight gradient over output channels").
 *
 * It needs the gradient with channels last and the input with a zero
 * border, so each block of samples is first copied into that layout
 * (a block sized for L2, its copies then read by every work item).
 *
 * The order of the sums: a work item owns some output channels x input
 * channels, sums their weights over a sample's pixels in row order in
 * registers and adds that to the weights' sums in memory, sample after
 * sample; samples in parts add up in part order at the end (plan_of).
 * No sum is split by thread, so the result does not depend on the
 * thread count. */
#include <stdint.h>
#include <string.h>

#include "nn/layers/conv2d_direct.h"
#include "nn/layers/threads.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_WGRAD 1
#endif

/* A block's channels-last gradient and padded input: 1 MiB, which stays
 * in this machine's 2 MiB L2 while every item of the block reads it. */
#define BLOCK_FLOATS 262144
/* Output channels rounded up to whole vectors. */
static int oc_pad(int OC)
{
	return (OC + 15) & ~15;
}

static int block_samples(int C, int H, int W, int OC)
{
	const size_t per = (size_t)H * W * oc_pad(OC) +
			   (size_t)C * (H + 2) * (W + 2);
	const size_t sb = BLOCK_FLOATS / per;

	return sb < 1 ? 1 : sb > 4096 ? 4096 : (int)sb;
}

/* Floats of one part's sums (C, 9, OCP), a whole workspace slice. */
static size_t part_floats(int C, int OCP)
{
	return pbi_round16((size_t)C * 9 * OCP);
}

/* How items cut the work: ov vectors of output channels (3 or 2 when
 * they divide the vectors, enough accumulators to keep both FMA pipes
 * busy), cb input channels (3 with a single vector: the broadcasts are
 * then what each gradient load feeds), and the samples of each block
 * in parts with sums of their own, added in part order at the end: two
 * let two threads each sum the samples they copied (the schedule
 * below), more keep both cores busy when there are fewer than 4 items,
 * none when the batch is one sample. All of it depends on the shape
 * alone, never on the thread count. */
typedef struct wg_plan {
	int ov, cb, n_oc, n_c, parts;
} wg_plan;

static wg_plan plan_of(int C, int OC, int B)
{
	const int nv = oc_pad(OC) / 16;
	wg_plan p;
	int items;

	p.ov = nv % 3 == 0 ? 3 : nv % 2 == 0 ? 2 : 1;
	p.cb = p.ov == 1 ? 3 : 1;
	p.n_oc = nv / p.ov;
	p.n_c = (C + p.cb - 1) / p.cb;
	items = p.n_oc * p.n_c;
	p.parts = items >= 4 ? 2 : (8 + items - 1) / items;
	if (p.parts > B)
		p.parts = B < 1 ? 1 : B;
	return p;
}

size_t pbi_conv_wgrad_workspace(int C, int H, int W, int OC)
{
	const size_t sb = (size_t)block_samples(C, H, W, OC);
	/* The most parts any batch takes. */
	const wg_plan p = plan_of(C, OC, 8);

	return pbi_round16(sb * H * W * oc_pad(OC)) +
	       pbi_round16(sb * C * (H + 2) * (W + 2)) +
	       (size_t)p.parts * part_floats(C, oc_pad(OC));
}

#ifdef HAVE_WGRAD

typedef struct wg_args {
	const float *gt;   /* block: (sb, HW, OCP), zero past OC */
	const float *xp;   /* block: (sb, C, (H+2)(W+2)), zero border */
	float *dwt;        /* (C, 9, OCP): a part's sums so far */
	int b0, b1;        /* the part's samples in the block */
	int C, H, W, OCP;
} wg_args;

/* One item: output channels oc0 .. oc0 + 16 ov - 1 and input channels
 * c0 .. c0 + cb - 1 over the samples b0 .. b1 - 1 of the block; ov * cb
 * * 9 accumulators (27 at most of the 32 registers). */
static inline __attribute__((always_inline, target("avx512f"))) void
wg_body(const wg_args *a, int oc0, int c0, const int ov, const int cb)
{
	const int H = a->H, W = a->W, PW = W + 2, PHW = (H + 2) * PW;
	const int OCP = a->OCP;
	__m512 acc[3][3][9];

	for (int b = a->b0; b < a->b1; b++) {
		const float *g = a->gt + (size_t)b * H * W * OCP + oc0;
		const float *x = a->xp + ((size_t)b * a->C + c0) * PHW;

#pragma GCC unroll 3
		for (int v = 0; v < ov; v++)
#pragma GCC unroll 3
			for (int c = 0; c < cb; c++)
#pragma GCC unroll 9
				for (int t = 0; t < 9; t++)
					acc[v][c][t] = _mm512_setzero_ps();
		for (int y = 0; y < H; y++) {
			for (int i = 0; i < W; i++) {
				const float *gp = g + (size_t)(y * W + i) * OCP;
				const float *xr = x + y * PW + i;
				__m512 gv[3];

				/* Hidden from the optimiser: GCC otherwise keeps
				 * the inputs a pixel shares with its neighbour
				 * in registers and broadcasts them from there,
				 * on port 5, which the FMAs need; a broadcast
				 * from memory takes a load port instead (10%
				 * faster on VGG-S's shapes, GCC 12). */
				__asm__("" : "+r"(xr));

#pragma GCC unroll 3
				for (int v = 0; v < ov; v++)
					gv[v] = _mm512_loadu_ps(gp + 16 * v);
#pragma GCC unroll 3
				for (int c = 0; c < cb; c++)
#pragma GCC unroll 9
					for (int t = 0; t < 9; t++) {
						const __m512 xv = _mm512_set1_ps(
							xr[c * PHW +
							   (t / 3) * PW +
							   t % 3]);
#pragma GCC unroll 3
						for (int v = 0; v < ov; v++)
							acc[v][c][t] =
								_mm512_fmadd_ps(
									gv[v], xv,
									acc[v][c][t]);
					}
			}
		}
		/* Added per sample: a sum runs over one plane in registers
		 * and over samples in memory, not over a whole block in one
		 * register (thousands of terms, a hundredfold larger
		 * rounding error than the pixel-vectorized kernel's). */
#pragma GCC unroll 3
		for (int c = 0; c < cb; c++)
#pragma GCC unroll 9
			for (int t = 0; t < 9; t++) {
				float *d = a->dwt +
					   ((size_t)(c0 + c) * 9 + t) * OCP +
					   oc0;
#pragma GCC unroll 3
				for (int v = 0; v < ov; v++)
					_mm512_storeu_ps(d + 16 * v,
						_mm512_add_ps(
							_mm512_loadu_ps(
								d + 16 * v),
							acc[v][c][t]));
			}
	}
}

#define WG_FN(ov, cb) \
	static __attribute__((target("avx512f"), noinline)) void \
	wg_##ov##_##cb(const wg_args *a, int oc0, int c0) \
	{ \
		wg_body(a, oc0, c0, ov, cb); \
	}
WG_FN(3, 1)
WG_FN(2, 1)
WG_FN(1, 3)
WG_FN(1, 2)
WG_FN(1, 1)

/* Item it of the block of nb samples. */
static void run_item(const wg_args *a, const wg_plan *p, int it, int nb)
{
	const int per = p->n_oc * p->n_c, part = it / per, r = it % per;
	const int oc0 = r % p->n_oc * p->ov * 16, c0 = r / p->n_oc * p->cb;
	const int left = a->C - c0;
	wg_args l = *a;

	l.dwt = a->dwt + (size_t)part * part_floats(a->C, a->OCP);
	l.b0 = pbi_block_start(part, nb, p->parts);
	l.b1 = pbi_block_start(part + 1, nb, p->parts);
	if (p->ov == 3)
		wg_3_1(&l, oc0, c0);
	else if (p->ov == 2)
		wg_2_1(&l, oc0, c0);
	else if (left >= 3)
		wg_1_3(&l, oc0, c0);
	else if (left == 2)
		wg_1_2(&l, oc0, c0);
	else
		wg_1_1(&l, oc0, c0);
}

/* Transposes the 16 x 16 floats of r in registers (rows become
 * columns): interleave pairs, then groups of four, then 128-bit lanes
 * twice. */
static inline __attribute__((always_inline, target("avx512f"))) void
transpose16(__m512 r[16])
{
	__m512 t[16];

	for (int i = 0; i < 8; i++) {
		t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
		t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
	}
	for (int q = 0; q < 4; q++) {
		r[4 * q] = _mm512_shuffle_ps(t[4 * q], t[4 * q + 2], 0x44);
		r[4 * q + 1] = _mm512_shuffle_ps(t[4 * q], t[4 * q + 2], 0xee);
		r[4 * q + 2] = _mm512_shuffle_ps(t[4 * q + 1], t[4 * q + 3],
						 0x44);
		r[4 * q + 3] = _mm512_shuffle_ps(t[4 * q + 1], t[4 * q + 3],
						 0xee);
	}
	for (int j = 0; j < 4; j++) {
		t[j] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88);
		t[4 + j] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xdd);
		t[8 + j] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88);
		t[12 + j] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xdd);
	}
	for (int j = 0; j < 4; j++) {
		r[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
		r[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xdd);
		r[4 + j] = _mm512_shuffle_f32x4(t[4 + j], t[12 + j], 0x88);
		r[12 + j] = _mm512_shuffle_f32x4(t[4 + j], t[12 + j], 0xdd);
	}
}

/* Sample b of the block: its gradient channels-last, by 16 x 16 tiles
 * (lanes past OC zero, so no padding lane holds a denormal or NaN), and
 * its input inside the zero border. */
static __attribute__((target("avx512f"))) void
copy_sample(float *gt, float *xp, const float *dout, const float *in, int C,
	    int H, int W, int OC, int OCP)
{
	const int HW = H * W, PW = W + 2, PHW = (H + 2) * PW;

	for (int oc0 = 0; oc0 < OCP; oc0 += 16)
		for (int p0 = 0; p0 < HW; p0 += 16) {
			const int n = HW - p0 < 16 ? HW - p0 : 16;
			const __mmask16 m = (__mmask16)((1u << n) - 1);
			__m512 r[16];

			for (int i = 0; i < 16; i++)
				r[i] = oc0 + i < OC ?
				       _mm512_maskz_loadu_ps(m, dout +
					       (size_t)(oc0 + i) * HW + p0) :
				       _mm512_setzero_ps();
			transpose16(r);
			for (int j = 0; j < n; j++)
				_mm512_storeu_ps(gt + (size_t)(p0 + j) * OCP +
						 oc0, r[j]);
		}
	for (int c = 0; c < C; c++)
		for (int y = 0; y < H; y++)
			memcpy(xp + (size_t)c * PHW + (y + 1) * PW + 1,
			       in + ((size_t)c * H + y) * W,
			       (size_t)W * sizeof *in);
}

void pbi_conv_wgrad(float *dweight, const float *dout, const float *in,
		    int B, int C, int H, int W, int OC, float *ws)
{
	const int HW = H * W, OCP = oc_pad(OC);
	const int sb = block_samples(C, H, W, OC);
	const size_t gt_n = pbi_round16((size_t)sb * HW * OCP);
	const size_t xp_n = pbi_round16((size_t)sb * C * (H + 2) * (W + 2));
	const wg_plan p = plan_of(C, OC, B);
	const int items = p.n_oc * p.n_c * p.parts;
	const size_t dwt_n = part_floats(C, OCP);
	const double macs = 9.0 * B * C * OC * HW;
	wg_args a = { ws, ws + gt_n, ws + gt_n + xp_n, 0, 0, C, H, W, OCP };

	/* The border is never written: zero it once, for the samples a
	 * block of this batch holds (batch 1: one, not a block's 41). */
	memset(ws + gt_n, 0, (size_t)(B < sb ? B : sb) * C * (H + 2) *
			     (W + 2) * sizeof *ws);
	memset(a.dwt, 0, p.parts * dwt_n * sizeof *ws);
#pragma omp parallel if (macs >= PBI_PAR_MIN_MACS)
	for (int b0 = 0; b0 < B; b0 += sb) {
		const int nb = B - b0 < sb ? B - b0 : sb;

#pragma omp for schedule(static)
		for (int b = 0; b < nb; b++)
			copy_sample(ws + (size_t)b * HW * OCP,
				    ws + gt_n + (size_t)b * C * (H + 2) *
					    (W + 2),
				    dout + (size_t)(b0 + b) * OC * HW,
				    in + (size_t)(b0 + b) * C * HW, C, H, W,
				    OC, OCP);
		/* Any thread may take any item (an item's sums are its own);
		 * static, part after part, two threads each sum the samples
		 * they copied, in their own L2. */
#pragma omp for schedule(static)
		for (int it = 0; it < items; it++)
			run_item(&a, &p, it, nb);
	}
	for (int oc = 0; oc < OC; oc++)
		for (int c = 0; c < C; c++)
			for (int t = 0; t < 9; t++) {
				const size_t k = ((size_t)c * 9 + t) * OCP + oc;
				float s = a.dwt[k];

				for (int q = 1; q < p.parts; q++)
					s += a.dwt[q * dwt_n + k];
				dweight[((size_t)oc * C + c) * 9 + t] += s;
			}
}

#else

void pbi_conv_wgrad(float *dweight, const float *dout, const float *in,
		    int B, int C, int H, int W, int OC, float *ws)
{
	(void)dweight; (void)dout; (void)in; (void)B; (void)C; (void)H;
	(void)W; (void)OC; (void)ws;
}

#endif
