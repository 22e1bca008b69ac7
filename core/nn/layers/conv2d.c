/* 2-D convolution. 3x3 stride-1 "same" convolutions (the bulk of our
 * models) take the direct AVX-512 kernels of conv2d_direct.c when the CPU
 * has them; the forward of the other shapes takes the direct kernel of
 * conv2d_phase.c on AVX-512; everything else runs as im2col + SGEMM, one
 * sample per GEMM, samples spread over OpenMP threads. Each thread owns a
 * slice of the workspace: a column buffer and private partial sums for
 * the weight and bias gradients, which are reduced afterwards in thread
 * order so that a given thread count always gives the same bits. */
#include <string.h>

#include <gsl/gsl_cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "prunebench/layers.h"
#include "nn/layers/layers_impl.h"
#include "nn/layers/conv2d_direct.h"
#include "nn/layers/sparse.h"
#include "nn/layers/threads.h"

/* A 1x1 stride-1 unpadded kernel's column matrix is the input plane
 * itself, so it needs neither im2col nor a column buffer. */
static int is_pointwise(int K, int stride, int pad)
{
	return K == 1 && stride == 1 && pad == 0;
}

/* The weight gradient of the im2col path is summed in this many
 * partials (fewer when the batch is smaller), each over a fixed block of
 * samples, then the partials in order: the same additions in the same
 * order at any thread count, so training is the same bits with 1 thread
 * or 8. Eight keep two to eight threads busy. */
enum { CONV_PARTIALS = 8 };

static int n_partials(int B)
{
	return B < CONV_PARTIALS ? (B > 0 ? B : 1) : CONV_PARTIALS;
}

/* Layout of the workspace: a column buffer (C*K*K, OH*OW) per thread
 * (none when pointwise), then CONV_PARTIALS partials of the weight
 * gradient (OC, C*K*K) each followed by its bias gradient (OC). */
struct conv_slice {
	size_t col, dw, part;
};

static struct conv_slice slice_layout(int C, int H, int W, int OC, int K,
				      int stride, int pad)
{
	const size_t ckk = (size_t)C * K * K;
	const size_t ohw = (size_t)pb_out_dim(H, K, stride, pad) *
			   pb_out_dim(W, K, stride, pad);
	struct conv_slice s;

	s.col = is_pointwise(K, stride, pad) ? 0 : pbi_round16(ckk * ohw);
	s.dw = pbi_round16((size_t)OC * ckk);
	s.part = s.dw + pbi_round16((size_t)OC);
	return s;
}

/* Sized per thread and per partial, not per sample: the batch only
 * decides how many samples go through each. */
size_t pb_conv2d_workspace(int B, int C, int H, int W, int OC, int K,
			   int stride, int pad)
{
	pbi_sparse_geom g;
	struct conv_slice sl;
	size_t n;

	(void)B;
	if (pbi_conv_direct_ok(H, W, K, stride, pad))
		return pbi_conv_direct_workspace(C, H, W, OC);
	/* im2col for backward; forward may take the phase kernel */
	sl = slice_layout(C, H, W, OC, K, stride, pad);
	n = (size_t)pbi_max_threads() * sl.col + CONV_PARTIALS * sl.part;
	pbi_sparse_geom_init(&g, C, H, W, OC, K, stride, pad);
	if (pbi_conv_phase_ok(&g) && pbi_conv_phase_workspace(&g) > n)
		n = pbi_conv_phase_workspace(&g);
	return n;
}

/* The output columns [*lo, *hi) whose input column ow*stride - pad + kj
 * lies inside [0, W); the rest of the row reads padding. */
static void valid_cols(int *lo, int *hi, int W, int OW, int kj, int stride,
		       int pad)
{
	int first = pad - kj, last = W - 1 + pad - kj;

	*lo = first <= 0 ? 0 : (first + stride - 1) / stride;
	*hi = last < 0 ? 0 : last / stride + 1;
	if (*hi > OW)
		*hi = OW;
	if (*lo > *hi)
		*lo = *hi;
}

/* in (C,H,W) -> col (C*K*K, OH*OW), zeros where the kernel reads padding. */
static void im2col(float *col, const float *in, int C, int H, int W, int K,
		   int stride, int pad, int OH, int OW)
{
	for (int c = 0; c < C; c++)
	for (int ki = 0; ki < K; ki++)
	for (int kj = 0; kj < K; kj++) {
		float *row = col + ((size_t)(c * K + ki) * K + kj) * OH * OW;
		int lo, hi;

		valid_cols(&lo, &hi, W, OW, kj, stride, pad);
		for (int oh = 0; oh < OH; oh++) {
			const int ih = oh * stride - pad + ki;
			float *dst = row + (size_t)oh * OW;
			const float *src;

			if (ih < 0 || ih >= H) {
				memset(dst, 0, (size_t)OW * sizeof *dst);
				continue;
			}
			src = in + ((size_t)c * H + ih) * W;
			memset(dst, 0, (size_t)lo * sizeof *dst);
			if (stride == 1 && hi > lo)
				memcpy(dst + lo, src + lo - pad + kj,
				       (size_t)(hi - lo) * sizeof *dst);
			else
				for (int ow = lo; ow < hi; ow++)
					dst[ow] = src[ow * stride - pad + kj];
			memset(dst + hi, 0, (size_t)(OW - hi) * sizeof *dst);
		}
	}
}

/* col (C*K*K, OH*OW) added into din (C,H,W); the transpose of im2col, so
 * overlapping windows sum and padding positions are dropped. */
static void col2im_add(float *din, const float *col, int C, int H, int W,
		       int K, int stride, int pad, int OH, int OW)
{
	for (int c = 0; c < C; c++)
	for (int ki = 0; ki < K; ki++)
	for (int kj = 0; kj < K; kj++) {
		const float *row =
			col + ((size_t)(c * K + ki) * K + kj) * OH * OW;
		int lo, hi;

		valid_cols(&lo, &hi, W, OW, kj, stride, pad);
		for (int oh = 0; oh < OH; oh++) {
			const int ih = oh * stride - pad + ki;
			const float *src = row + (size_t)oh * OW;
			float *dst;

			if (ih < 0 || ih >= H)
				continue;
			dst = din + ((size_t)c * H + ih) * W;
			for (int ow = lo; ow < hi; ow++)
				dst[ow * stride - pad + kj] += src[ow];
		}
	}
}

const char *pbi_conv2d_path(int C, int H, int W, int OC, int K, int stride,
			    int pad)
{
	pbi_sparse_geom g;

	if (pbi_conv_direct_ok(H, W, K, stride, pad))
		return "direct";
	pbi_sparse_geom_init(&g, C, H, W, OC, K, stride, pad);
	return pbi_conv_phase_ok(&g) ? "phase/im2col" : "im2col";
}

/* in (B,C,H,W), weight (OC,C,K,K), bias (OC) or NULL -> out (B,OC,OH,OW) */
void pb_conv2d_forward(float *out, const float *in, const float *weight,
		       const float *bias, int B, int C, int H, int W, int OC,
		       int K, int stride, int pad, float *ws)
{
	const int OH = pb_out_dim(H, K, stride, pad);
	const int OW = pb_out_dim(W, K, stride, pad);
	const int ckk = C * K * K, ohw = OH * OW;
	const int pointwise = is_pointwise(K, stride, pad);
	const struct conv_slice sl = slice_layout(C, H, W, OC, K, stride, pad);

	if (pbi_conv_direct_ok(H, W, K, stride, pad)) {
		pbi_conv_direct_forward(out, in, weight, bias, B, C, H, W, OC,
					0, NULL);
		return;
	}
	{
		pbi_sparse_geom g;

		pbi_sparse_geom_init(&g, C, H, W, OC, K, stride, pad);
		if (pbi_conv_phase_ok(&g)) {
			pbi_conv_phase_forward(out, in, weight, bias, &g, B,
					       NULL, ws);
			return;
		}
	}
#pragma omp parallel
	{
		float *col = ws + (size_t)pbi_thread_num() * sl.col;
#pragma omp for schedule(static)
		for (int b = 0; b < B; b++) {
			const float *x = in + (size_t)b * C * H * W;
			float *y = out + (size_t)b * OC * ohw;
			float beta = 0.0f;

			if (!pointwise) {
				im2col(col, x, C, H, W, K, stride, pad, OH, OW);
				x = col;
			}
			/* Starting from the bias lets the GEMM add into it. */
			if (bias) {
				for (int oc = 0; oc < OC; oc++)
					for (int j = 0; j < ohw; j++)
						y[(size_t)oc * ohw + j] = bias[oc];
				beta = 1.0f;
			}
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
				    OC, ohw, ckk, 1.0f, weight, ckk, x, ohw,
				    beta, y, ohw);
		}
	}
}

/* One sample's backward into its thread's partials (dw, db) and into din
 * (C,H,W), which this sample owns. col is the thread's column buffer. */
static void backward_sample(float *din, float *dw, float *db,
			    const float *dout, const float *in,
			    const float *weight, int C, int H, int W, int OC,
			    int K, int stride, int pad, int OH, int OW,
			    float *col)
{
	const int ckk = C * K * K, ohw = OH * OW;
	const int pointwise = is_pointwise(K, stride, pad);

	if (db)
		for (int oc = 0; oc < OC; oc++) {
			const float *g = dout + (size_t)oc * ohw;
			float s = 0.0f;
			for (int j = 0; j < ohw; j++)
				s += g[j];
			db[oc] += s;
		}
	if (dw) {
		const float *x = in;
		if (!pointwise) {
			im2col(col, in, C, H, W, K, stride, pad, OH, OW);
			x = col;
		}
		/* dW (OC,CKK) += dout (OC,OHW) * col^T (OHW,CKK) */
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, OC, ckk,
			    ohw, 1.0f, dout, ohw, x, ohw, 1.0f, dw, ckk);
	}
	if (!din)
		return;
	/* dcol (CKK,OHW) = W^T (CKK,OC) * dout (OC,OHW); a pointwise
	 * kernel's dcol is din itself, so the GEMM adds straight into it. */
	if (pointwise) {
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ckk, ohw,
			    OC, 1.0f, weight, ckk, dout, ohw, 1.0f, din, ohw);
		return;
	}
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ckk, ohw, OC,
		    1.0f, weight, ckk, dout, ohw, 0.0f, col, ohw);
	col2im_add(din, col, C, H, W, K, stride, pad, OH, OW);
}

/* dout (B,OC,OH,OW), in (B,C,H,W), weight (OC,C,K,K); adds into
 * din (B,C,H,W), dweight (OC,C,K,K), dbias (OC); each may be NULL. */
void pb_conv2d_backward(float *din, float *dweight, float *dbias,
			const float *dout, const float *in,
			const float *weight, int B, int C, int H, int W,
			int OC, int K, int stride, int pad, float *ws)
{
	pbi_conv2d_backward(din, dweight, dbias, dout, in, weight, B, C, H, W,
			    OC, K, stride, pad, ws, 0);
}

void pbi_conv2d_backward(float *din, float *dweight, float *dbias,
			 const float *dout, const float *in,
			 const float *weight, int B, int C, int H, int W,
			 int OC, int K, int stride, int pad, float *ws,
			 int overwrite)
{
	const int OH = pb_out_dim(H, K, stride, pad);
	const int OW = pb_out_dim(W, K, stride, pad);
	const size_t chw = (size_t)C * H * W, ohw = (size_t)OH * OW;
	const size_t nw = (size_t)OC * C * K * K;
	const struct conv_slice sl = slice_layout(C, H, W, OC, K, stride, pad);
	const int P = n_partials(B);
	float *part;

	if (pbi_conv_direct_ok(H, W, K, stride, pad)) {
		if (dweight || dbias)
			pbi_conv_direct_backward_weight(dweight, dbias, dout,
							in, B, C, H, W, OC,
							ws);
		if (din)
			pbi_conv_direct_backward_data(din, dout, weight, B, C,
						      H, W, OC, ws, !overwrite);
		return;
	}
	/* col2im scatters: a fresh gradient starts from zeros. */
	if (din && overwrite)
		memset(din, 0, (size_t)B * chw * sizeof *din);
	/* After every thread's column buffer (counted before the region:
	 * inside it the count is the nested one). */
	part = ws + (size_t)pbi_max_threads() * sl.col;
#pragma omp parallel
	{
		float *col = ws + (size_t)pbi_thread_num() * sl.col;

		/* Partial p: samples [p*B/P, (p+1)*B/P) in order, whichever
		 * thread runs it; din rows belong to their sample. */
#pragma omp for schedule(static)
		for (int p = 0; p < P; p++) {
			float *dw = dweight ? part + (size_t)p * sl.part : NULL;
			float *db = dbias ? part + (size_t)p * sl.part + sl.dw :
					    NULL;

			if (dw)
				memset(dw, 0, nw * sizeof *dw);
			if (db)
				memset(db, 0, (size_t)OC * sizeof *db);
			for (int b = (int)((long)p * B / P);
			     b < (int)((long)(p + 1) * B / P); b++)
				backward_sample(din ? din + (size_t)b * chw :
						NULL, dw, db,
						dout + (size_t)b * OC * ohw,
						in + (size_t)b * chw, weight, C,
						H, W, OC, K, stride, pad, OH,
						OW, col);
		}
		/* The implicit barrier above makes every partial complete;
		 * they are summed 0..P-1 for each weight. */
		if (dweight) {
#pragma omp for schedule(static)
			for (size_t i = 0; i < nw; i++) {
				float s = 0.0f;
				for (int u = 0; u < P; u++)
					s += part[(size_t)u * sl.part + i];
				dweight[i] += s;
			}
		}
		if (dbias) {
#pragma omp single
			for (int oc = 0; oc < OC; oc++) {
				float s = 0.0f;
				for (int u = 0; u < P; u++)
					s += part[(size_t)u * sl.part + sl.dw +
						  oc];
				dbias[oc] += s;
			}
		}
	}
}
