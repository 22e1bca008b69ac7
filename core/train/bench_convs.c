/* The per-layer bench behind `prunebench bench --convs`: each conv
 * layer's three kernels (forward, input gradient, weight gradient) timed
 * alone at the layer's shape, so that a kernel change can be measured
 * where it acts instead of inside a whole training step. */
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "prunebench/bench.h"
#include "prunebench/layers.h"
#include "prunebench/tensor.h"
#include "nn/layers/layers_impl.h"
#include "train/bench_impl.h"

typedef struct conv_state {
	const pb_layer_info *li;
	int B;
	float *in, *out, *w, *din, *dw, *ws;
} conv_state;

static int fwd_step(void *ctx, pb_error *err)
{
	const conv_state *s = ctx;
	const pb_layer_info *li = s->li;

	(void)err;
	pb_conv2d_forward(s->out, s->in, s->w, NULL, s->B, li->in_c,
			  li->in_h, li->in_w, li->out_c, li->kernel,
			  li->stride, li->pad, s->ws);
	return 0;
}

static int bwd_data_step(void *ctx, pb_error *err)
{
	const conv_state *s = ctx;
	const pb_layer_info *li = s->li;

	(void)err;
	pb_conv2d_backward(s->din, NULL, NULL, s->out, s->in, s->w, s->B,
			   li->in_c, li->in_h, li->in_w, li->out_c,
			   li->kernel, li->stride, li->pad, s->ws);
	return 0;
}

static int bwd_weight_step(void *ctx, pb_error *err)
{
	const conv_state *s = ctx;
	const pb_layer_info *li = s->li;

	(void)err;
	pb_conv2d_backward(NULL, s->dw, NULL, s->out, s->in, s->w, s->B,
			   li->in_c, li->in_h, li->in_w, li->out_c,
			   li->kernel, li->stride, li->pad, s->ws);
	return 0;
}

/* Milliseconds per call: the median of `repeats` runs of `iters` calls
 * (0: calibrated) after one warm-up call. */
static int time_ms(pbi_bench_step step, conv_state *s, int iters,
		   int repeats, double *ms, pb_error *err)
{
	double *v = malloc((size_t)repeats * sizeof *v);
	int rc;

	if (!v)
		return pb_error_set(err, PB_ENOMEM, "out of memory (bench)");
	rc = pbi_bench_runs(step, s, 1, iters, repeats, v, err);
	if (!rc)
		*ms = 1e3 * pbi_bench_median(v, repeats, NULL);
	free(v);
	return rc;
}

int pb_bench_conv(const pb_layer_info *li, int B, int iters, int repeats,
		  unsigned long seed, pb_bench_conv_result *res,
		  pb_error *err)
{
	const size_t nin = (size_t)B * li->in_c * li->in_h * li->in_w;
	const size_t nout = (size_t)B * li->out_c * li->out_h * li->out_w;
	const size_t nw = (size_t)li->out_c * li->in_c * li->kernel *
			  li->kernel;
	const double gflop = 2e-9 * (double)nw * li->out_h * li->out_w * B;
	conv_state s = { li, B, NULL, NULL, NULL, NULL, NULL, NULL };
	gsl_rng *rng = NULL;
	int rc;

	memset(res, 0, sizeof *res);
	if (li->type != PB_LAYER_CONV || B < 1 || iters < 0 || repeats < 1)
		return pb_error_set(err, PB_EINVAL, "pb_bench_conv: a conv "
				    "layer, batch and repeats >= 1, iters "
				    ">= 0");
	res->path = pbi_conv2d_path(li->in_c, li->in_h, li->in_w, li->out_c,
				    li->kernel, li->stride, li->pad);
	s.in = pb_falloc(nin);
	s.din = pb_falloc(nin);
	s.out = pb_falloc(nout);
	s.w = pb_falloc(nw);
	s.dw = pb_falloc(nw);
	s.ws = pb_falloc(pb_conv2d_workspace(B, li->in_c, li->in_h, li->in_w,
					     li->out_c, li->kernel, li->stride,
					     li->pad) + 1);
	rng = gsl_rng_alloc(gsl_rng_mt19937);
	if (!s.in || !s.din || !s.out || !s.w || !s.dw || !s.ws || !rng) {
		rc = pb_error_set(err, PB_ENOMEM, "out of memory (bench)");
		goto done;
	}
	gsl_rng_set(rng, seed);
	for (size_t i = 0; i < nin; i++)
		s.in[i] = (float)(gsl_rng_uniform(rng) * 2.0 - 1.0);
	for (size_t i = 0; i < nout; i++)
		s.out[i] = (float)(gsl_rng_uniform(rng) * 2.0 - 1.0);
	for (size_t i = 0; i < nw; i++)
		s.w[i] = (float)(gsl_rng_uniform(rng) - 0.5);
	memset(s.din, 0, nin * sizeof *s.din);
	memset(s.dw, 0, nw * sizeof *s.dw);
	/* The forward last: it overwrites out, which the backward reads
	 * as the output gradient. */
	rc = time_ms(bwd_data_step, &s, iters, repeats, &res->bwd_data_ms,
		     err);
	if (!rc)
		rc = time_ms(bwd_weight_step, &s, iters, repeats,
			     &res->bwd_weight_ms, err);
	if (!rc)
		rc = time_ms(fwd_step, &s, iters, repeats, &res->fwd_ms, err);
	if (!rc) {
		res->fwd_gflops = gflop / (1e-3 * res->fwd_ms);
		res->bwd_data_gflops = gflop / (1e-3 * res->bwd_data_ms);
		res->bwd_weight_gflops = gflop / (1e-3 * res->bwd_weight_ms);
	}
done:
	gsl_rng_free(rng);
	pb_ffree(s.in);
	pb_ffree(s.din);
	pb_ffree(s.out);
	pb_ffree(s.w);
	pb_ffree(s.dw);
	pb_ffree(s.ws);
	return rc;
}
