/* Fully connected layer as one SGEMM per pass over the whole batch;
 * OpenBLAS threads it (these calls are outside our parallel regions). */
#include <gsl/gsl_cblas.h>

#include "prunebench/layers.h"
#include "nn/layers/layers_impl.h"

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
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, OUT, IN, 1.0f,
		    in, IN, weight, IN, beta, out, OUT);
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
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, IN,
			    OUT, 1.0f, dout, OUT, weight, IN,
			    overwrite ? 0.0f : 1.0f, din, IN);
	if (dweight)
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OUT, IN,
			    B, 1.0f, dout, OUT, in, IN, 1.0f, dweight, IN);
	if (dbias)
		for (int b = 0; b < B; b++)
			for (int o = 0; o < OUT; o++)
				dbias[o] += dout[(size_t)b * OUT + o];
}
