/* Direct 3x3 stride-1 pad-1 convolution with AVX-512.
 *
 * Why not im2col + sgemm here: the models we prune have few channels
 * (16-64), so im2col writes a column matrix nine times the input, and
 * OpenBLAS packs it again, for GEMMs whose M (= OC) is 16-64 and K only
 * 9*C. Measured on VGG-S (docs/performance.md, "Convolution: the
 * design choice and why"), that lowering spent most of its time moving
 * memory. A direct kernel reads each input vector once per
 * tap and reuses it across up to 8 output channels held in registers.
 *
 * The trick that keeps the kernel simple: with stride 1 and "same"
 * padding the output plane has the input's shape, so a run of 16
 * consecutive output pixels p (flattened over rows) reads, for tap
 * (ki, kj), the 16 consecutive inputs at p + (ki-1)*W + (kj-1). Lanes
 * whose input falls in the padding (off the row ends or off the plane)
 * are switched off by a per-(chunk, tap) mask; AVX-512 masked loads do
 * not fault on masked lanes, so no padded copy is ever made. Rows need
 * not fill whole vectors: a 7x7 plane is 4 vectors, not 7.
 *
 * Every output element is computed by one work item from start to end,
 * and weight gradients are summed in a fixed order over samples, so the
 * results do not depend on the thread count at all. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn/layers/conv2d_direct.h"
#include "nn/layers/threads.h"

/* PB_NO_DIRECT_CONV: the fuzz build's (configure --enable-fuzzing).
 * clang's ASan and UBSan take over ten minutes and 2.4 GB on the 48
 * unrolled kernel instances below (4 s without them); the harnesses
 * fuzz readers, not arithmetic, and the suite's sanitizer build (gcc)
 * runs these kernels. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(PB_NO_DIRECT_CONV)
#include <immintrin.h>
#define HAVE_DIRECT 1
#endif

/* Largest plane (in 16-float chunks) the mask table on the stack holds:
 * 64x64. Bigger planes take the im2col path. */
#define MAX_CHUNKS 256
/* Output channels and chunks one forward work item keeps in registers:
 * 8 x 3 = 24 accumulators of the 32 zmm registers. */
#define OB 8
#define NX 3
/* Output channels per pixel-vectorized weight-gradient work item. */
#define BWW_OB 3
/* Smaller batches take the pixel-vectorized weight gradient: the other
 * one's copies into its layout cost more than they save (VGG-S at batch
 * 1 trained 5% slower with it). */
#define WGRAD_MIN_BATCH 8

int pbi_conv_direct_ok(int H, int W, int K, int stride, int pad)
{
#ifdef HAVE_DIRECT
	const char *force = getenv("PB_CONV");

	if (force && !strcmp(force, "im2col"))
		return 0;
	if (K != 3 || stride != 1 || pad != 1 || H < 1 || W < 1 ||
	    ((size_t)H * W + 15) / 16 > MAX_CHUNKS)
		return 0;
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f");
#else
	(void)H; (void)W; (void)K; (void)stride; (void)pad;
	return 0;
#endif
}

/* The input gradient's flipped weights, then the weight gradient's
 * blocks: the two never run at once. */
size_t pbi_conv_direct_workspace(int C, int H, int W, int OC)
{
	const size_t wt = (size_t)C * OC * 9;
	const size_t wg = pbi_conv_wgrad_workspace(C, H, W, OC);

	return wt > wg ? wt : wg;
}

#ifdef HAVE_DIRECT

/* masks[q*9 + t]: lanes of chunk q whose tap-t input lies inside the
 * plane; tails[q]: lanes of chunk q inside the plane at all. */
static void build_masks(uint16_t *masks, uint16_t *tails, int H, int W)
{
	const int HW = H * W, nch = (HW + 15) / 16;
	int y = 0, x = 0;

	/* Rebuilt on every call (a batch-1 forward calls this six times),
	 * so no divisions: walk (y, x) along the plane, collect per chunk
	 * the lanes whose row above/below and column left/right exist, and
	 * AND them per tap. */
	for (int q = 0; q < nch; q++) {
		uint16_t row[3] = { 0, 0, 0 }, col[3] = { 0, 0, 0 }, tail = 0;

		for (int l = 0; l < 16 && q * 16 + l < HW; l++) {
			const uint16_t bit = (uint16_t)(1u << l);

			tail |= bit;
			row[0] |= y > 0 ? bit : 0;
			row[1] |= bit;
			row[2] |= y < H - 1 ? bit : 0;
			col[0] |= x > 0 ? bit : 0;
			col[1] |= bit;
			col[2] |= x < W - 1 ? bit : 0;
			if (++x == W) {
				x = 0;
				y++;
			}
		}
		tails[q] = tail;
		for (int t = 0; t < 9; t++)
			masks[q * 9 + t] = row[t / 3] & col[t % 3];
	}
}

/* A mask straight from memory into a mask register. Given a mask
 * value, GCC goes through a general register, and kmovw k, r32 issues
 * on port 5, one of the two ports 512-bit FMAs issue on (Intel); alone
 * that measured no slower, but with opaque() below every mask is then
 * one load at a constant displacement from one register. */
static inline __attribute__((always_inline, target("avx512f"))) __mmask16
mask_load(const uint16_t *p)
{
	__mmask16 m;

	__asm__("kmovw %1, %0" : "=k"(m) : "m"(*p));
	return m;
}

/* The mask table's pointer made opaque to the optimiser: otherwise it
 * hoists the 27 mask addresses of a work item out of the channel loop,
 * keeps them in general registers, and spills them. Opaque, each mask
 * is loaded at a constant displacement from one register. */
static inline __attribute__((always_inline)) const uint16_t *
opaque(const uint16_t *p)
{
	__asm__("" : "+r"(p));
	return p;
}

/* Chunks [*q0, *q1) of an H x W plane whose loads for every tap stay
 * inside the plane: every lane has a row above and below, so only the
 * left and right column taps need a mask, and a plain load cannot touch
 * memory outside the plane. */
static void inner_chunks(int H, int W, int *q0, int *q1)
{
	*q0 = (W + 1 + 15) / 16;
	*q1 = (H * W - W - 1) / 16;
}

/* What every forward work item shares. */
typedef struct fwd_args {
	const float *in, *weight, *bias;
	float *out;
	int C, W, HW, OC, accumulate;
	const pbi_conv_epilogue *ep;
	const uint16_t *masks, *tails;
} fwd_args;

/* Output channels [oc0, oc0+ob) at chunks [q0, q0+nx) of sample b. ob
 * and nx are constants in each instantiation below, so the accumulators
 * live in registers. */
static inline __attribute__((always_inline, target("avx512f"))) void
fwd_body(const fwd_args *a, int b, int oc0, int q0, const int ob,
	 const int nx, const int inner)
{
	const int C = a->C, W = a->W, HW = a->HW;
	const size_t cstride = (size_t)C * 9;
	const float *x = a->in + (size_t)b * C * HW + (size_t)q0 * 16;
	/* One pointer per row of the taps, stepped per channel: every
	 * input load then sits at a constant displacement from one of
	 * three registers. */
	const float *r0 = x - W, *r1 = x, *r2 = x + W;
	const float *wc = a->weight + (size_t)oc0 * cstride;
	const uint16_t *mk = a->masks + q0 * 9;
	__mmask16 ml[NX], mr[NX];
	__m512 acc[OB][NX];

#pragma GCC unroll 8
	for (int o = 0; o < ob; o++)
#pragma GCC unroll 3
		for (int j = 0; j < nx; j++)
			acc[o][j] = _mm512_setzero_ps();
	/* Inner chunks keep their two column masks in mask registers
	 * through the whole channel loop. */
	if (inner)
#pragma GCC unroll 3
		for (int j = 0; j < nx; j++) {
			ml[j] = mask_load(&mk[j * 9 + 3]);
			mr[j] = mask_load(&mk[j * 9 + 5]);
		}

	for (int c = 0; c < C; c++) {
		const uint16_t *m = opaque(mk);

#pragma GCC unroll 9
		for (int t = 0; t < 9; t++) {
			const float *row = t < 3 ? r0 : t < 6 ? r1 : r2;
			const int kj = t % 3;
			__m512 v[NX];
#pragma GCC unroll 3
			for (int j = 0; j < nx; j++) {
				const float *p = row + j * 16 + (kj - 1);

				if (!inner)
					v[j] = _mm512_maskz_loadu_ps(
						mask_load(&m[j * 9 + t]), p);
				else if (kj == 1)
					v[j] = _mm512_loadu_ps(p);
				else
					v[j] = _mm512_maskz_loadu_ps(
						kj == 0 ? ml[j] : mr[j], p);
			}
#pragma GCC unroll 8
			for (int o = 0; o < ob; o++) {
				const __m512 wv =
					_mm512_set1_ps(wc[o * cstride + t]);
#pragma GCC unroll 3
				for (int j = 0; j < nx; j++)
					acc[o][j] = _mm512_fmadd_ps(v[j], wv,
								    acc[o][j]);
			}
		}
		r0 += HW;
		r1 += HW;
		r2 += HW;
		wc += 9;
	}

#pragma GCC unroll 8
	for (int o = 0; o < ob; o++) {
		const int oc = oc0 + o;
		const size_t plane = ((size_t)b * a->OC + oc) * HW;
#pragma GCC unroll 3
		for (int j = 0; j < nx; j++) {
			const int q = q0 + j;
			const __mmask16 tm = a->tails[q];
			float *dst = a->out ? a->out + plane + (size_t)q * 16 :
					      NULL;
			__m512 r = acc[o][j];

			if (a->bias)
				r = _mm512_add_ps(r, _mm512_set1_ps(a->bias[oc]));
			if (a->accumulate)
				r = _mm512_add_ps(_mm512_maskz_loadu_ps(tm, dst),
						  r);
			if (dst)
				_mm512_mask_storeu_ps(dst, tm, r);
			if (a->ep) {
				/* Multiply then add, as pb_bn_forward_eval
				 * does, so fused and unfused agree bitwise. */
				const __m512 bn = _mm512_add_ps(
					_mm512_mul_ps(r, _mm512_set1_ps(
						a->ep->scale[oc])),
					_mm512_set1_ps(a->ep->shift[oc]));
				const size_t at = plane + (size_t)q * 16;
				__m512 y = bn;

				if (a->ep->bn_out)
					_mm512_mask_storeu_ps(a->ep->bn_out + at,
							      tm, bn);
				/* The add, in the add layer's order of
				 * operands, then the ReLU of the sum. */
				if (a->ep->residual) {
					const __m512 s = _mm512_maskz_loadu_ps(
						tm, a->ep->residual + at);

					y = a->ep->residual_first ?
					    _mm512_add_ps(s, bn) :
					    _mm512_add_ps(bn, s);
					if (a->ep->add_out)
						_mm512_mask_storeu_ps(
							a->ep->add_out + at,
							tm, y);
				}
				if (a->ep->relu_out)
					_mm512_mask_storeu_ps(
						a->ep->relu_out + at, tm,
						_mm512_max_ps(y,
							_mm512_setzero_ps()));
			}
		}
	}
}

#define DEF_FWD(ob, nx)                                                     \
	static __attribute__((target("avx512f"), noinline)) void            \
	fwd_##ob##_##nx(const fwd_args *a, int b, int oc0, int q0)          \
	{                                                                   \
		fwd_body(a, b, oc0, q0, ob, nx, 0);                         \
	}                                                                   \
	static __attribute__((target("avx512f"), noinline)) void            \
	fwdi_##ob##_##nx(const fwd_args *a, int b, int oc0, int q0)         \
	{                                                                   \
		fwd_body(a, b, oc0, q0, ob, nx, 1);                         \
	}
#define DEF_FWD_NX(ob) DEF_FWD(ob, 1) DEF_FWD(ob, 2) DEF_FWD(ob, 3)
DEF_FWD_NX(1) DEF_FWD_NX(2) DEF_FWD_NX(3) DEF_FWD_NX(4)
DEF_FWD_NX(5) DEF_FWD_NX(6) DEF_FWD_NX(7) DEF_FWD_NX(8)

typedef void (*fwd_fn)(const fwd_args *, int, int, int);
#define FWD_ROW(ob) { fwd_##ob##_1, fwd_##ob##_2, fwd_##ob##_3 }
#define FWDI_ROW(ob) { fwdi_##ob##_1, fwdi_##ob##_2, fwdi_##ob##_3 }
/* [inner][ob - 1][nx - 1] */
static const fwd_fn fwd_table[2][OB][NX] = {
	{ FWD_ROW(1), FWD_ROW(2), FWD_ROW(3), FWD_ROW(4),
	  FWD_ROW(5), FWD_ROW(6), FWD_ROW(7), FWD_ROW(8) },
	{ FWDI_ROW(1), FWDI_ROW(2), FWDI_ROW(3), FWDI_ROW(4),
	  FWDI_ROW(5), FWDI_ROW(6), FWDI_ROW(7), FWDI_ROW(8) },
};

/* Blocks cut by pbi_block_start (threads.h). Pruned layers have channel
 * counts like 11, 23 or 45: cut as 8 + 3 the small block keeps only 3 x 3
 * accumulators, too few to hide the FMA latency, and runs at a third of
 * the speed; cut as 6 + 5 both blocks stay near full speed. The same
 * goes for chunks: a 7x7 plane is 4 chunks, run as 2 + 2 rather than
 * 3 + 1. */

static void forward_impl(float *out, const float *in, const float *weight,
			 const float *bias, int B, int C, int H, int W,
			 int OC, int accumulate, const pbi_conv_epilogue *ep)
{
	const int HW = H * W, nch = (HW + 15) / 16;
	const int nob = (OC + OB - 1) / OB, nqg = (nch + NX - 1) / NX;
	const long items = (long)B * nqg * nob;
	const double macs = 9.0 * B * C * OC * HW;
	uint16_t masks[MAX_CHUNKS * 9], tails[MAX_CHUNKS];
	fwd_args a = { in, weight, bias, out, C, W, HW, OC, accumulate, ep,
		       masks, tails };
	int qi0, qi1;

	build_masks(masks, tails, H, W);
	inner_chunks(H, W, &qi0, &qi1);
	/* Items run sample by sample, chunk group by chunk group, so
	 * neighbouring items (one thread's run) share their input. */
#pragma omp parallel for schedule(static) if (macs >= PBI_PAR_MIN_MACS)
	for (long i = 0; i < items; i++) {
		const int b = (int)(i / ((long)nqg * nob));
		const int r = (int)(i % ((long)nqg * nob));
		const int qi = r / nob, oi = r % nob;
		const int q0 = pbi_block_start(qi, nch, nqg);
		const int oc0 = pbi_block_start(oi, OC, nob);
		const int nx = pbi_block_start(qi + 1, nch, nqg) - q0;
		const int ob = pbi_block_start(oi + 1, OC, nob) - oc0;
		const int inner = q0 >= qi0 && q0 + nx <= qi1;

		fwd_table[inner][ob - 1][nx - 1](&a, b, oc0, q0);
	}
}

/* ---- weight gradient ----------------------------------------------------
 * dW[oc][c][t] = sum over samples b and pixels p of
 *   dout[b][oc][p] * in[b][c][p + off(t)]  (masked).
 * A work item owns up to three output channels and half of the input
 * channels, and keeps, for one input channel at a time, the 3 x 9 taps
 * as vector sums (27 of the 32 registers) over a block of samples;
 * blocks are added in sample order. */
typedef struct bww_args {
	const float *dout, *in;
	float *dw;
	int C, W, HW, OC, nch, qi0, qi1;
	const uint16_t *masks, *tails;
} bww_args;

static inline __attribute__((always_inline, target("avx512f"))) void
bww_body(const bww_args *a, int oc0, int c0, int c1, int b0, int b1,
	 const int ob)
{
	const int C = a->C, W = a->W, HW = a->HW, nch = a->nch;

	for (int c = c0; c < c1; c++) {
		__m512 acc[3][9];

#pragma GCC unroll 3
		for (int o = 0; o < ob; o++)
#pragma GCC unroll 9
			for (int t = 0; t < 9; t++)
				acc[o][t] = _mm512_setzero_ps();
		for (int b = b0; b < b1; b++) {
			const float *xp = a->in + ((size_t)b * C + c) * HW;
			const float *gp =
				a->dout + ((size_t)b * a->OC + oc0) * HW;
			for (int q = 0; q < nch; q++) {
				const uint16_t *mk = a->masks + q * 9;
				const float *xq = xp + q * 16;
				__m512 g[3];

				/* Inner chunks (inner_chunks): plain loads, two
				 * column masks. Written out beside the edge path on
				 * purpose: one inlined body choosing per chunk gave
				 * the same bits but a 15% slower weight gradient
				 * (GCC 12, 2026-12-03). */
				if (q >= a->qi0 && q < a->qi1) {
					const __mmask16 ml = mask_load(&mk[3]);
					const __mmask16 mr = mask_load(&mk[5]);

#pragma GCC unroll 3
					for (int o = 0; o < ob; o++)
						g[o] = _mm512_loadu_ps(
							gp + (size_t)o * HW +
							q * 16);
#pragma GCC unroll 9
					for (int t = 0; t < 9; t++) {
						const int kj = t % 3;
						const float *p = xq + kj - 1 +
								 (t / 3 - 1) * W;
						const __m512 v =
							kj == 1 ?
							_mm512_loadu_ps(p) :
							_mm512_maskz_loadu_ps(
								kj ? mr : ml, p);
#pragma GCC unroll 3
						for (int o = 0; o < ob; o++)
							acc[o][t] = _mm512_fmadd_ps(
								g[o], v,
								acc[o][t]);
					}
					continue;
				}
#pragma GCC unroll 3
				for (int o = 0; o < ob; o++)
					g[o] = _mm512_maskz_loadu_ps(
						mask_load(&a->tails[q]),
						gp + (size_t)o * HW + q * 16);
#pragma GCC unroll 9
				for (int t = 0; t < 9; t++) {
					const ptrdiff_t off =
						(ptrdiff_t)(t / 3 - 1) * W +
						(t % 3 - 1);
					const __m512 v = _mm512_maskz_loadu_ps(
						mask_load(&mk[t]), xq + off);
#pragma GCC unroll 3
					for (int o = 0; o < ob; o++)
						acc[o][t] = _mm512_fmadd_ps(
							g[o], v, acc[o][t]);
				}
			}
		}
#pragma GCC unroll 3
		for (int o = 0; o < ob; o++) {
			float *d = a->dw + ((size_t)(oc0 + o) * C + c) * 9;
#pragma GCC unroll 9
			for (int t = 0; t < 9; t++)
				d[t] += _mm512_reduce_add_ps(acc[o][t]);
		}
	}
}

static __attribute__((target("avx512f"), noinline)) void
bww_3(const bww_args *a, int oc0, int c0, int c1, int b0, int b1)
{
	bww_body(a, oc0, c0, c1, b0, b1, 3);
}

static __attribute__((target("avx512f"), noinline)) void
bww_2(const bww_args *a, int oc0, int c0, int c1, int b0, int b1)
{
	bww_body(a, oc0, c0, c1, b0, b1, 2);
}

static __attribute__((target("avx512f"), noinline)) void
bww_1(const bww_args *a, int oc0, int c0, int c1, int b0, int b1)
{
	bww_body(a, oc0, c0, c1, b0, b1, 1);
}

/* The pixel-vectorized weight gradient, for layers of at most 16
 * output channels: there the output-channel kernel (conv2d_wgrad.c)
 * has a single vector of them, too few accumulators (9 with one input
 * channel), and measured slower (VGG-S's conv1 and conv2 at two
 * threads: 0.17 against 0.40 ms, 2.38 against 2.53 ms). */
static void wgrad_pixels(float *dweight, const float *dout, const float *in,
			 int B, int C, int H, int W, int OC)
{
	const int HW = H * W, nch = (HW + 15) / 16;
	/* Items: blocks of 3 output channels, times two halves of the input
	 * channels, halves outermost: with two threads each takes one half
	 * of every block, so the split is even for any OC. */
	const int nob = (OC + BWW_OB - 1) / BWW_OB, ncs = C >= 2 ? 2 : 1;
	const int items = nob * ncs;
	const double macs = 9.0 * B * C * OC * HW;
	/* Samples per block: their inputs and gradients (about 512 KiB)
	 * stay in L2 while every item of the thread sweeps them. */
	int sb = (int)(131072 / ((size_t)(C + OC) * HW));
	uint16_t masks[MAX_CHUNKS * 9], tails[MAX_CHUNKS];
	bww_args a = { dout, in, dweight, C, W, HW, OC, nch, 0, 0, masks, tails };

	if (sb < 1)
		sb = 1;
	build_masks(masks, tails, H, W);
	inner_chunks(H, W, &a.qi0, &a.qi1);
#pragma omp parallel if (macs >= PBI_PAR_MIN_MACS)
	for (int b0 = 0; b0 < B; b0 += sb) {
		const int b1 = B - b0 < sb ? B : b0 + sb;
		/* Static with the same bounds every block: a thread keeps its
		 * items, and so the order of its sums. */
#pragma omp for schedule(static) nowait
		for (int it = 0; it < items; it++) {
			const int cs = it / nob, oc0 = it % nob * BWW_OB;
			const int c0 = cs * C / ncs;
			const int c1 = (cs + 1) * C / ncs;

			if (BWW_OB == 3 && OC - oc0 >= 3)
				bww_3(&a, oc0, c0, c1, b0, b1);
			else if (OC - oc0 == 2)
				bww_2(&a, oc0, c0, c1, b0, b1);
			else
				bww_1(&a, oc0, c0, c1, b0, b1);
		}
	}
}

#endif /* HAVE_DIRECT */

void pbi_conv_direct_forward(float *out, const float *in,
			     const float *weight, const float *bias, int B,
			     int C, int H, int W, int OC, int accumulate,
			     const pbi_conv_epilogue *ep)
{
#ifdef HAVE_DIRECT
	forward_impl(out, in, weight, bias, B, C, H, W, OC, accumulate, ep);
#else
	(void)out; (void)in; (void)weight; (void)bias; (void)B; (void)C;
	(void)H; (void)W; (void)OC; (void)accumulate; (void)ep;
#endif
}

/* The input gradient of a stride-1 same convolution is again one, over
 * dout, with weights transposed (C <-> OC) and flipped (tap t -> 8-t). */
void pbi_conv_direct_backward_data(float *din, const float *dout,
				   const float *weight, int B, int C, int H,
				   int W, int OC, float *wt, int accumulate)
{
	for (int oc = 0; oc < OC; oc++)
		for (int c = 0; c < C; c++)
			for (int t = 0; t < 9; t++)
				wt[((size_t)c * OC + oc) * 9 + t] =
					weight[((size_t)oc * C + c) * 9 + 8 - t];
	pbi_conv_direct_forward(din, dout, wt, NULL, B, OC, H, W, C,
				accumulate, NULL);
}

void pbi_conv_direct_backward_weight(float *dweight, float *dbias,
				     const float *dout, const float *in,
				     int B, int C, int H, int W, int OC,
				     float *ws)
{
	const size_t HW = (size_t)H * W;

#ifdef HAVE_DIRECT
	if (dweight && (OC <= 16 || B < WGRAD_MIN_BATCH))
		wgrad_pixels(dweight, dout, in, B, C, H, W, OC);
	else if (dweight)
		pbi_conv_wgrad(dweight, dout, in, B, C, H, W, OC, ws);
#else
	(void)ws;
#endif
	if (dbias)
		for (int oc = 0; oc < OC; oc++) {
			float s = 0.0f;
			for (int b = 0; b < B; b++) {
				const float *g =
					dout + ((size_t)b * OC + oc) * HW;
				for (size_t p = 0; p < HW; p++)
					s += g[p];
			}
			dbias[oc] += s;
		}
}
