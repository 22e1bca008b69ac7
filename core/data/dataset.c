/* Dataset storage, per-channel normalisation, the stratified validation
 * split, shuffling and batch assembly with augmentation. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>

#include "prunebench/data.h"
#include "prunebench/tensor.h"

/* Random draws for augmentation are made in chunks of this many samples
 * so they fit on the stack and pb_dataset_batch needs no allocation. */
#define AUG_CHUNK 256
/* Below this many floats a batch copy is not worth waking threads for. */
#define PAR_MIN 65536

int pb_dataset_alloc(pb_dataset *d, int n, int c, int h, int w, int classes,
		     pb_error *err)
{
	size_t sample, total;

	memset(d, 0, sizeof *d);
	if (n < 0 || c < 1 || c > PB_MAX_CHANNELS || h < 1 || w < 1 ||
	    classes < 1 || classes > 256)
		return pb_error_set(err, PB_EINVAL, "cannot make a dataset of "
				    "%d samples of %dx%dx%d with %d classes: "
				    "need n >= 0, 1..%d channels, positive "
				    "sizes and 1..256 classes", n, c, h, w,
				    classes, PB_MAX_CHANNELS);
	sample = (size_t)c * (size_t)h * (size_t)w;
	if (sample > SIZE_MAX / sizeof(float) / ((size_t)n + 1))
		return pb_error_set(err, PB_ENOMEM, "a dataset of %d samples "
				    "of %dx%dx%d is too large to address", n,
				    c, h, w);
	total = sample * (size_t)n;
	d->x = pb_falloc(total);
	/* calloc(0) may return NULL; keep y a real pointer like x. */
	d->y = calloc(n ? (size_t)n : 1, 1);
	if (!d->x || !d->y) {
		pb_dataset_free(d);
		return pb_error_set(err, PB_ENOMEM, "out of memory for a "
				    "dataset of %d samples of %dx%dx%d "
				    "(%zu MiB)", n, c, h, w,
				    total * sizeof(float) >> 20);
	}
	d->n = n;
	d->c = c;
	d->h = h;
	d->w = w;
	d->classes = classes;
	return 0;
}

void pb_dataset_free(pb_dataset *d)
{
	if (!d)
		return;
	pb_ffree(d->x);
	free(d->y);
	memset(d, 0, sizeof *d);
}

/* Serial, two-pass and in double: the statistics must not depend on the
 * thread count (runs are compared bit for bit), and a one-pass sum of
 * squares loses precision over tens of millions of pixels. */
void pb_dataset_channel_stats(const pb_dataset *d, float *mean, float *std)
{
	const size_t plane = (size_t)d->h * d->w;
	const double count = (double)d->n * (double)plane;

	for (int ch = 0; ch < d->c; ch++) {
		double sum = 0.0, ss = 0.0, m;

		if (d->n == 0) {
			mean[ch] = 0.0f;
			std[ch] = 1.0f;
			continue;
		}
		for (int i = 0; i < d->n; i++) {
			const float *p = d->x + ((size_t)i * d->c + ch) * plane;
			for (size_t k = 0; k < plane; k++)
				sum += p[k];
		}
		m = sum / count;
		for (int i = 0; i < d->n; i++) {
			const float *p = d->x + ((size_t)i * d->c + ch) * plane;
			for (size_t k = 0; k < plane; k++)
				ss += (p[k] - m) * (p[k] - m);
		}
		mean[ch] = (float)m;
		std[ch] = (float)sqrt(ss / count);
	}
}

void pb_dataset_normalize(pb_dataset *d, const float *mean, const float *std)
{
	const size_t plane = (size_t)d->h * d->w;
	float inv[PB_MAX_CHANNELS];

	/* A constant channel has std 0; centring it alone beats making it
	 * inf or NaN everywhere. */
	for (int ch = 0; ch < d->c; ch++)
		inv[ch] = std[ch] > 1e-12f ? 1.0f / std[ch] : 1.0f;
	#pragma omp parallel for schedule(static)
	for (int i = 0; i < d->n; i++) {
		for (int ch = 0; ch < d->c; ch++) {
			float *p = d->x + ((size_t)i * d->c + ch) * plane;
			const float m = mean[ch], s = inv[ch];
			for (size_t k = 0; k < plane; k++)
				p[k] = (p[k] - m) * s;
		}
	}
}

/* How many validation samples each class gets: proportional to its size,
 * rounding by largest remainder so the total is exactly n_val. When n_val
 * allows it, every present class gets at least one, taken from the class
 * with the largest quota. */
static void split_quotas(const int *count, int classes, int n, int n_val,
			 int *quota)
{
	double frac[256];
	int given = 0, present = 0;

	memset(quota, 0, sizeof *quota * (size_t)classes);
	if (n_val == 0)
		return;
	for (int k = 0; k < classes; k++) {
		double exact = (double)n_val * count[k] / n;
		quota[k] = (int)floor(exact);
		frac[k] = exact - quota[k];
		given += quota[k];
		present += count[k] > 0;
	}
	while (given < n_val) {
		int best = -1;
		for (int k = 0; k < classes; k++)
			if (quota[k] < count[k] &&
			    (best < 0 || frac[k] > frac[best]))
				best = k;
		quota[best]++;
		frac[best] = -1.0;
		given++;
	}
	if (n_val < present)
		return;
	for (int k = 0; k < classes; k++) {
		int big = 0;
		if (count[k] == 0 || quota[k] > 0)
			continue;
		for (int j = 1; j < classes; j++)
			if (quota[j] > quota[big])
				big = j;
		if (quota[big] < 2)
			return;
		quota[big]--;
		quota[k]++;
	}
}

/* Marks in in_val[] the samples that go to validation: within each class
 * a seeded shuffle of its members picks the first quota[k]. */
static int pick_val(const pb_dataset *full, int n_val, unsigned long seed,
		    uint8_t *in_val, pb_error *err)
{
	int count[256] = { 0 }, start[256], quota[256];
	size_t *members = malloc(sizeof *members * ((size_t)full->n + 1));
	gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);

	if (!members || !rng) {
		free(members);
		gsl_rng_free(rng);
		return pb_error_set(err, PB_ENOMEM, "out of memory (splitting "
				    "%d samples)", full->n);
	}
	gsl_rng_set(rng, seed);
	for (int i = 0; i < full->n; i++)
		count[full->y[i]]++;
	split_quotas(count, full->classes, full->n, n_val, quota);
	/* Counting sort by class, stable, so the draw depends only on seed
	 * and the data, not on any earlier state. */
	start[0] = 0;
	for (int k = 1; k < full->classes; k++)
		start[k] = start[k - 1] + count[k - 1];
	for (int i = 0; i < full->n; i++)
		members[start[full->y[i]]++] = (size_t)i;
	for (int k = 0, off = 0; k < full->classes; off += count[k], k++) {
		gsl_ran_shuffle(rng, members + off, (size_t)count[k],
				sizeof *members);
		for (int j = 0; j < quota[k]; j++)
			in_val[members[off + j]] = 1;
	}
	free(members);
	gsl_rng_free(rng);
	return 0;
}

static void copy_sample(pb_dataset *dst, int di, const pb_dataset *src,
			int si)
{
	const size_t sample = (size_t)src->c * src->h * src->w;

	memcpy(dst->x + (size_t)di * sample, src->x + (size_t)si * sample,
	       sample * sizeof(float));
	dst->y[di] = src->y[si];
}

static int check_labels(const pb_dataset *full, pb_error *err)
{
	for (int i = 0; i < full->n; i++)
		if (full->y[i] >= full->classes)
			return pb_error_set(err, PB_EINVAL, "sample %d has "
					    "label %d but the dataset has %d "
					    "classes", i, full->y[i],
					    full->classes);
	return 0;
}

int pb_dataset_split(const pb_dataset *full, int n_val, unsigned long seed,
		     pb_dataset *train, pb_dataset *val, pb_error *err)
{
	uint8_t *in_val;
	int rc, ti = 0, vi = 0;

	memset(train, 0, sizeof *train);
	memset(val, 0, sizeof *val);
	if (n_val < 0 || n_val > full->n)
		return pb_error_set(err, PB_EINVAL, "cannot hold out %d "
				    "validation samples from a set of %d",
				    n_val, full->n);
	rc = check_labels(full, err);
	if (rc)
		return rc;
	in_val = calloc((size_t)full->n + 1, 1);
	if (!in_val)
		return pb_error_set(err, PB_ENOMEM, "out of memory (splitting "
				    "%d samples)", full->n);
	rc = pick_val(full, n_val, seed, in_val, err);
	if (!rc)
		rc = pb_dataset_alloc(train, full->n - n_val, full->c, full->h,
				      full->w, full->classes, err);
	if (!rc)
		rc = pb_dataset_alloc(val, n_val, full->c, full->h, full->w,
				      full->classes, err);
	if (rc) {
		free(in_val);
		pb_dataset_free(train);
		pb_dataset_free(val);
		return rc;
	}
	for (int i = 0; i < full->n; i++) {
		if (in_val[i])
			copy_sample(val, vi++, full, i);
		else
			copy_sample(train, ti++, full, i);
	}
	free(in_val);
	return 0;
}

void pb_shuffle(size_t *perm, size_t n, gsl_rng *rng)
{
	for (size_t i = 0; i < n; i++)
		perm[i] = i;
	gsl_ran_shuffle(rng, perm, n, sizeof *perm);
}

typedef struct aug_draw {
	int dy, dx, flip;
} aug_draw;

/* out(y, x) = in(y + dy, x' + dx) with x' = w-1-x when flipped, 0 outside:
 * a crop of the zero-padded image followed by a horizontal flip. */
static void augment_copy(float *out, const float *in, int c, int h, int w,
			 aug_draw a)
{
	for (int ch = 0; ch < c; ch++) {
		const float *ip = in + (size_t)ch * h * w;
		float *op = out + (size_t)ch * h * w;
		for (int y = 0; y < h; y++) {
			const int sy = y + a.dy;
			for (int x = 0; x < w; x++) {
				const int sx = (a.flip ? w - 1 - x : x) + a.dx;
				op[(size_t)y * w + x] =
					sy >= 0 && sy < h && sx >= 0 && sx < w
					? ip[(size_t)sy * w + sx] : 0.0f;
			}
		}
	}
}

/* Per sample, in this order: dy, dx (when crop_pad > 0), then the flip
 * (when hflip). Drawn serially so the batch is independent of threads. */
static void draw_aug(aug_draw *a, int n, const pb_augment *aug, gsl_rng *rng)
{
	const int pad = aug->crop_pad > 0 ? aug->crop_pad : 0;

	for (int b = 0; b < n; b++) {
		a[b].dy = a[b].dx = a[b].flip = 0;
		if (pad) {
			a[b].dy = (int)gsl_rng_uniform_int(rng,
				(unsigned long)(2 * pad + 1)) - pad;
			a[b].dx = (int)gsl_rng_uniform_int(rng,
				(unsigned long)(2 * pad + 1)) - pad;
		}
		if (aug->hflip)
			a[b].flip = (int)gsl_rng_uniform_int(rng, 2);
	}
}

void pb_dataset_batch(const pb_dataset *d, const size_t *idx, int B,
		      float *x, uint8_t *y, const pb_augment *aug,
		      gsl_rng *rng)
{
	const size_t sample = (size_t)d->c * d->h * d->w;
	const int active = aug && (aug->crop_pad > 0 || aug->hflip);
	aug_draw draws[AUG_CHUNK];

	for (int b = 0; b < B; b++)
		y[b] = d->y[idx[b]];
	if (!active) {
		const int par = (size_t)B * sample > PAR_MIN;
		#pragma omp parallel for schedule(static) if (par)
		for (int b = 0; b < B; b++)
			memcpy(x + (size_t)b * sample,
			       d->x + idx[b] * sample, sample * sizeof(float));
		return;
	}
	for (int b0 = 0; b0 < B; b0 += AUG_CHUNK) {
		const int n = B - b0 < AUG_CHUNK ? B - b0 : AUG_CHUNK;
		const int par = (size_t)n * sample > PAR_MIN;

		draw_aug(draws, n, aug, rng);
		#pragma omp parallel for schedule(static) if (par)
		for (int b = 0; b < n; b++)
			augment_copy(x + (size_t)(b0 + b) * sample,
				     d->x + idx[b0 + b] * sample, d->c, d->h,
				     d->w, draws[b]);
	}
}
