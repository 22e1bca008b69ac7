/* Fully connected layer as one SGEMM per pass over the whole batch, run
 * on one OpenBLAS thread whatever our thread count.
 *
 * Called outside a parallel region, OpenBLAS's OpenMP build threads a
 * large enough call itself, with as many threads as OpenMP offers, and
 * its threaded GEMM sums in another order than its one-thread GEMM:
 * VGG-S's fc (576 -> 10 at batch 128) then trained to other bits at two
 * threads than at one. Sharing the product out in tiles of our own does
 * not help: OpenBLAS picks its kernels and blocking by the call's shape,
 * so a tile's sums differ from the same elements' sums in the whole call
 * (measured, both core types), and the tiles would change every
 * committed result. One whole call on one thread keeps the one-thread
 * bits at every thread count. The layers' fc products are small (VGG-S:
 * 0.7 MFLOP per pass against about 150 MFLOP of convolution), so the
 * second core is not missed; a test holds 1, 2 and 3 threads to the same
 * bits. */
#include <gsl/gsl_cblas.h>

#include "prunebench/layers.h"
#include "nn/layers/layers_impl.h"
#include "nn/layers/threads.h"

/* OpenBLAS's OpenMP build takes its thread count from OpenMP's for the
 * calling task, so one thread for the call is one thread for this task,
 * and back after it. */
static void sgemm_one_thread(enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb,
			     int M, int N, int K, const float *A, int lda,
			     const float *B, int ldb, float beta, float *C,
			     int ldc)
{
	const int saved = pbi_max_threads();

	pbi_set_max_threads(1);
	cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta,
		    C, ldc);
	pbi_set_max_threads(saved);
}

/* in (B,IN), weight (OUT,IN), bias (OUT) or NULL -> out (B,OUT) */
void pb_linear_forward(float *out, const float *in, const float *weight,
		       const float *bias, int B, int IN, int OUT)
{
	float beta = 0.0f;

	/* Starting from the bias lets the GEMM add into it. */
	if (bias) {
		for (int b = 0; b < B; b++)
			for (int o = 0; o < OUT; o++)
				out[(size_t)b * OUT + o] = bias[o];
		beta = 1.0f;
	}
	sgemm_one_thread(CblasNoTrans, CblasTrans, B, OUT, IN, in, IN, weight,
			 IN, beta, out, OUT);
}

/* dout (B,OUT), in (B,IN), weight (OUT,IN); adds into din (B,IN),
 * dweight (OUT,IN), dbias (OUT); each may be NULL. */
void pb_linear_backward(float *din, float *dweight, float *dbias,
			const float *dout, const float *in,
			const float *weight, int B, int IN, int OUT)
{
	pbi_linear_backward(din, dweight, dbias, dout, in, weight, B, IN, OUT,
			    0);
}

void pbi_linear_backward(float *din, float *dweight, float *dbias,
			 const float *dout, const float *in,
			 const float *weight, int B, int IN, int OUT,
			 int overwrite)
{
	if (din)
		sgemm_one_thread(CblasNoTrans, CblasNoTrans, B, IN, OUT, dout,
				 OUT, weight, IN, overwrite ? 0.0f : 1.0f, din,
				 IN);
	if (dweight)
		sgemm_one_thread(CblasTrans, CblasNoTrans, OUT, IN, B, dout,
				 OUT, in, IN, 1.0f, dweight, IN);
	if (dbias)
		for (int b = 0; b < B; b++)
			for (int o = 0; o < OUT; o++)
				dbias[o] += dout[(size_t)b * OUT + o];
}
