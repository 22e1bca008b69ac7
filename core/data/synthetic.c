/* Synthetic classification data for tests and smoke runs.
 *
 * Each class has a prototype made of a few low-frequency plane waves per
 * channel: smooth, so a small convnet learns it quickly and a shift of a
 * pixel or two (crop augmentation) keeps it recognisable. A sample is its
 * class prototype plus gaussian noise.
 *
 * The prototypes come from a fixed generator seed and depend only on the
 * shape and class count; `seed` picks the labels and the noise. Sets drawn
 * with different seeds are therefore different samples of the same task,
 * which is what a training set and its test set must be. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "prunebench/data.h"
#include "prunebench/tensor.h"

#define PROTO_SEED 20240917UL
#define WAVES 3
/* Prototypes closer than this mean squared difference are redrawn, so no
 * two classes are accidentally near-identical; after PROTO_TRIES attempts
 * the last draw is kept (tiny images cannot always be told apart). */
#define PROTO_MIN_MSD 0.03
#define PROTO_TRIES 64

/* One channel of a prototype, scaled to [0.1, 0.9] to leave room for
 * noise inside roughly [0, 1]. */
static void wave_pattern(float *p, int h, int w, gsl_rng *rng)
{
	const size_t n = (size_t)h * w;
	double fy[WAVES], fx[WAVES], phase[WAVES], amp[WAVES];
	float lo = INFINITY, hi = -INFINITY;

	for (int k = 0; k < WAVES; k++) {
		do {
			fy[k] = (double)gsl_rng_uniform_int(rng, 3);
			fx[k] = (double)gsl_rng_uniform_int(rng, 5) - 2.0;
		} while (fy[k] == 0.0 && fx[k] == 0.0);
		phase[k] = 2.0 * M_PI * gsl_rng_uniform(rng);
		amp[k] = 0.5 + 0.5 * gsl_rng_uniform(rng);
	}
	for (int y = 0; y < h; y++) {
		for (int x = 0; x < w; x++) {
			double v = 0.0;
			for (int k = 0; k < WAVES; k++)
				v += amp[k] * cos(2.0 * M_PI * (fy[k] * y / h +
							     fx[k] * x / w) +
						  phase[k]);
			p[(size_t)y * w + x] = (float)v;
			lo = fminf(lo, (float)v);
			hi = fmaxf(hi, (float)v);
		}
	}
	for (size_t i = 0; i < n; i++)
		p[i] = hi > lo ? 0.1f + 0.8f * (p[i] - lo) / (hi - lo) : 0.5f;
}

static double mean_sq_diff(const float *a, const float *b, size_t n)
{
	double s = 0.0;

	for (size_t i = 0; i < n; i++)
		s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
	return s / (double)n;
}

static int too_close(const float *proto, int k, size_t sample)
{
	for (int j = 0; j < k; j++)
		if (mean_sq_diff(proto + (size_t)j * sample,
				 proto + (size_t)k * sample, sample) <
		    PROTO_MIN_MSD)
			return 1;
	return 0;
}

static void make_prototypes(float *proto, int classes, int c, int h, int w,
			    gsl_rng *rng)
{
	const size_t plane = (size_t)h * w, sample = (size_t)c * plane;

	for (int k = 0; k < classes; k++) {
		int tries = 0;
		do {
			for (int ch = 0; ch < c; ch++)
				wave_pattern(proto + k * sample + ch * plane,
					     h, w, rng);
		} while (too_close(proto, k, sample) && ++tries < PROTO_TRIES);
	}
}

/* Balanced labels (counts differ by at most one) in a seeded order. */
static void draw_labels(uint8_t *y, int n, int classes, gsl_rng *rng)
{
	for (int i = 0; i < n; i++)
		y[i] = (uint8_t)(i % classes);
	gsl_ran_shuffle(rng, y, (size_t)n, 1);
}

int pb_dataset_synthetic(pb_dataset *out, int n, int c, int h, int w,
			 int classes, float noise, unsigned long seed,
			 pb_error *err)
{
	size_t sample;
	float *proto;
	gsl_rng *rng;
	int rc;

	memset(out, 0, sizeof *out);
	if (!(noise >= 0.0f) || !isfinite(noise))
		return pb_error_set(err, PB_EINVAL, "synthetic data: noise %g "
				    "must be a finite value >= 0", noise);
	rc = pb_dataset_alloc(out, n, c, h, w, classes, err);
	if (rc)
		return rc;
	sample = (size_t)c * h * w;
	proto = pb_falloc(sample * (size_t)classes);
	rng = gsl_rng_alloc(gsl_rng_mt19937);
	if (!proto || !rng) {
		pb_ffree(proto);
		gsl_rng_free(rng);
		pb_dataset_free(out);
		return pb_error_set(err, PB_ENOMEM, "synthetic data: out of "
				    "memory");
	}
	gsl_rng_set(rng, PROTO_SEED);
	make_prototypes(proto, classes, c, h, w, rng);
	gsl_rng_set(rng, seed);
	draw_labels(out->y, n, classes, rng);
	for (int i = 0; i < n; i++) {
		const float *p = proto + (size_t)out->y[i] * sample;
		float *x = out->x + (size_t)i * sample;
		for (size_t k = 0; k < sample; k++)
			x[k] = p[k] + (float)gsl_ran_gaussian_ziggurat(rng,
								       noise);
	}
	pb_ffree(proto);
	gsl_rng_free(rng);
	return 0;
}
