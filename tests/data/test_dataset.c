/* Data set operations (core/data/dataset.c): allocation, channel
 * statistics and normalisation, the stratified split, shuffling, and
 * batches with and without augmentation. */
#include "datafiles.h"

#include <omp.h>

#include "prunebench/tensor.h"

/* ---- data set operations ------------------------------------------------ */

static void test_alloc_free(void **state)
{
	pb_dataset d;
	pb_error err = { 0 };

	(void)state;
	assert_int_equal(pb_dataset_alloc(&d, 0, 1, 2, 2, 3, &err), 0);
	assert_non_null(d.x);
	assert_non_null(d.y);
	pb_dataset_free(&d);
	assert_null(d.x);
	pb_dataset_free(&d);
	expect_err(pb_dataset_alloc(&d, 4, PB_MAX_CHANNELS + 1, 2, 2, 3, &err),
		   &err, PB_EINVAL, "channels");
	expect_err(pb_dataset_alloc(&d, 4, 1, 2, 2, 257, &err), &err,
		   PB_EINVAL, "1..256 classes");
	expect_err(pb_dataset_alloc(&d, -1, 1, 2, 2, 3, &err), &err,
		   PB_EINVAL, "n >= 0");
	assert_null(d.x);
}

static void test_stats_normalize(void **state)
{
	pb_dataset d;
	pb_error err = { 0 };
	float mean[PB_MAX_CHANNELS], std[PB_MAX_CHANNELS];

	(void)state;
	/* Known values: channel 0 holds {1, 3}, channel 1 is constant. */
	assert_int_equal(pb_dataset_alloc(&d, 2, 2, 1, 1, 2, &err), 0);
	d.x[0] = 1.0f;
	d.x[1] = 5.0f;
	d.x[2] = 3.0f;
	d.x[3] = 5.0f;
	pb_dataset_channel_stats(&d, mean, std);
	assert_float_equal(mean[0], 2.0f, 1e-7);
	assert_float_equal(std[0], 1.0f, 1e-7);
	assert_float_equal(mean[1], 5.0f, 1e-7);
	assert_float_equal(std[1], 0.0f, 1e-7);
	pb_dataset_normalize(&d, mean, std);
	assert_float_equal(d.x[0], -1.0f, 1e-7);
	assert_float_equal(d.x[2], 1.0f, 1e-7);
	/* A constant channel is centred, not turned into NaN. */
	assert_true(d.x[1] == 0.0f && d.x[3] == 0.0f);
	pb_dataset_free(&d);

	assert_int_equal(pb_dataset_synthetic(&d, 300, 3, 6, 5, 3, 0.2f, 4,
					      &err), 0);
	pb_dataset_channel_stats(&d, mean, std);
	for (int ch = 0; ch < 3; ch++) {
		assert_true(fabsf(mean[ch] - 0.5f) < 0.25f);
		assert_true(std[ch] > 0.1f);
	}
	pb_dataset_normalize(&d, mean, std);
	pb_dataset_channel_stats(&d, mean, std);
	for (int ch = 0; ch < 3; ch++) {
		assert_true(fabsf(mean[ch]) < 1e-5f);
		assert_true(fabsf(std[ch] - 1.0f) < 1e-4f);
	}
	pb_dataset_free(&d);
}

/* A dataset whose sample i has x[0] = i, so samples can be traced. */
static void make_traced(pb_dataset *d, const int *per_class, int classes)
{
	pb_error err = { 0 };
	int n = 0, i = 0;

	for (int k = 0; k < classes; k++)
		n += per_class[k];
	assert_int_equal(pb_dataset_alloc(d, n, 1, 2, 2, classes, &err), 0);
	/* Interleave the classes so the order check means something. */
	for (int left = n; left > 0;) {
		for (int k = 0; k < classes; k++) {
			int seen = 0;
			for (int j = 0; j < i; j++)
				seen += d->y[j] == k;
			if (seen < per_class[k]) {
				d->y[i] = (uint8_t)k;
				d->x[4 * i] = (float)i;
				d->x[4 * i + 1] = (float)k;
				i++;
				left--;
			}
		}
	}
}

/* Checks the split of full into train and val: disjoint, complete, order
 * kept, and per-class val counts as expected. */
static void check_split(const pb_dataset *full, const pb_dataset *train,
			const pb_dataset *val, const int *want_val)
{
	int *seen = calloc((size_t)full->n, sizeof *seen);
	int per_class[8] = { 0 };
	float last;

	assert_int_equal(train->n + val->n, full->n);
	assert_int_equal(train->classes, full->classes);
	assert_int_equal(val->h, full->h);
	last = -1.0f;
	for (int i = 0; i < train->n; i++) {
		int id = (int)train->x[4 * i];
		assert_true(train->x[4 * i] > last);
		last = train->x[4 * i];
		assert_int_equal(train->y[i], full->y[id]);
		assert_float_equal(train->x[4 * i + 1], full->y[id], 0.0);
		seen[id]++;
	}
	last = -1.0f;
	for (int i = 0; i < val->n; i++) {
		int id = (int)val->x[4 * i];
		assert_true(val->x[4 * i] > last);
		last = val->x[4 * i];
		assert_int_equal(val->y[i], full->y[id]);
		per_class[val->y[i]]++;
		seen[id]++;
	}
	for (int i = 0; i < full->n; i++)
		assert_int_equal(seen[i], 1);
	for (int k = 0; k < full->classes; k++)
		assert_int_equal(per_class[k], want_val[k]);
	free(seen);
}

static void test_split(void **state)
{
	static const int sizes[3] = { 50, 30, 20 }, want[3] = { 5, 3, 2 };
	static const int rare[3] = { 97, 2, 1 }, want_rare[3] = { 3, 1, 1 };
	pb_dataset full, train, val, train2, val2;
	pb_error err = { 0 };
	float *copy;

	(void)state;
	make_traced(&full, sizes, 3);
	copy = malloc(100 * 4 * sizeof *copy);
	memcpy(copy, full.x, 100 * 4 * sizeof *copy);
	assert_int_equal(pb_dataset_split(&full, 10, 7, &train, &val, &err), 0);
	check_split(&full, &train, &val, want);
	assert_memory_equal(copy, full.x, 100 * 4 * sizeof *copy);
	assert_int_equal(pb_dataset_split(&full, 10, 7, &train2, &val2, &err),
			 0);
	assert_memory_equal(val.x, val2.x, 10 * 4 * sizeof(float));
	pb_dataset_free(&train2);
	pb_dataset_free(&val2);
	assert_int_equal(pb_dataset_split(&full, 10, 8, &train2, &val2, &err),
			 0);
	check_split(&full, &train2, &val2, want);
	assert_true(memcmp(val.x, val2.x, 10 * 4 * sizeof(float)) != 0);
	pb_dataset_free(&train2);
	pb_dataset_free(&val2);
	pb_dataset_free(&train);
	pb_dataset_free(&val);
	expect_err(pb_dataset_split(&full, 101, 1, &train, &val, &err), &err,
		   PB_EINVAL, "cannot hold out 101");
	assert_null(train.x);
	pb_dataset_free(&full);

	/* A rare class still reaches validation. */
	make_traced(&full, rare, 3);
	assert_int_equal(pb_dataset_split(&full, 5, 1, &train, &val, &err), 0);
	check_split(&full, &train, &val, want_rare);
	pb_dataset_free(&train);
	pb_dataset_free(&val);
	pb_dataset_free(&full);
	free(copy);
}

static void test_shuffle(void **state)
{
	size_t a[50], b[50];
	int seen[50] = { 0 }, moved = 0;
	gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);

	(void)state;
	gsl_rng_set(r, 3);
	memset(a, 0xff, sizeof a);
	pb_shuffle(a, 50, r);
	gsl_rng_set(r, 3);
	pb_shuffle(b, 50, r);
	assert_memory_equal(a, b, sizeof a);
	for (int i = 0; i < 50; i++) {
		assert_true(a[i] < 50);
		seen[a[i]]++;
		moved += a[i] != (size_t)i;
	}
	for (int i = 0; i < 50; i++)
		assert_int_equal(seen[i], 1);
	assert_true(moved > 25);
	gsl_rng_free(r);
}

/* ---- batches and augmentation ------------------------------------------- */

/* n copies-worth of distinct images: pixel value 1 + position + 100 i. */
static void make_images(pb_dataset *d, int n, int c, int h, int w)
{
	pb_error err = { 0 };
	size_t S = (size_t)c * h * w;

	assert_int_equal(pb_dataset_alloc(d, n, c, h, w, 3, &err), 0);
	for (int i = 0; i < n; i++) {
		d->y[i] = (uint8_t)(i % 3);
		for (size_t k = 0; k < S; k++)
			d->x[i * S + k] = (float)(1 + k + 100 * (size_t)i);
	}
}

static void test_batch_plain(void **state)
{
	pb_dataset d;
	size_t idx[4] = { 3, 0, 3, 1 };
	float x[4 * 12];
	uint8_t y[4];
	pb_augment off = { 0, 0 };
	gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937), *r2;

	(void)state;
	make_images(&d, 4, 1, 3, 4);
	pb_dataset_batch(&d, idx, 4, x, y, NULL, r);
	for (int b = 0; b < 4; b++) {
		assert_memory_equal(x + b * 12, d.x + idx[b] * 12,
				    12 * sizeof(float));
		assert_int_equal(y[b], d.y[idx[b]]);
	}
	/* Augmentation switched off copies exactly and draws nothing. */
	memset(x, 0, sizeof x);
	r2 = gsl_rng_clone(r);
	pb_dataset_batch(&d, idx, 4, x, y, &off, r);
	for (int b = 0; b < 4; b++)
		assert_memory_equal(x + b * 12, d.x + idx[b] * 12,
				    12 * sizeof(float));
	assert_int_equal(gsl_rng_get(r), gsl_rng_get(r2));
	gsl_rng_free(r);
	gsl_rng_free(r2);
	pb_dataset_free(&d);
}

/* Replays the draws pb_dataset_batch makes (dy, dx when cropping, then
 * the flip) and checks every output pixel against the formula
 * out(y, x) = in(y + dy, x' + dx), x' = flipped ? w-1-x : x, else 0. */
static void check_aug(int pad, int flip, int *n_flips, int *n_shifts)
{
	enum { B = 64, C = 2, H = 5, W = 4 };
	pb_dataset d;
	pb_augment aug = { pad, flip };
	size_t idx[B];
	float x[B * C * H * W];
	uint8_t y[B];
	gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937),
		*replay = gsl_rng_alloc(gsl_rng_mt19937);

	make_images(&d, 3, C, H, W);
	for (int b = 0; b < B; b++)
		idx[b] = (size_t)(b % 3);
	gsl_rng_set(r, 12);
	gsl_rng_set(replay, 12);
	pb_dataset_batch(&d, idx, B, x, y, &aug, r);
	*n_flips = *n_shifts = 0;
	for (int b = 0; b < B; b++) {
		int dy = 0, dx = 0, fl = 0;
		const float *in = d.x + idx[b] * C * H * W;
		const float *out = x + (size_t)b * C * H * W;

		if (pad) {
			const unsigned long span = 2 * (unsigned long)pad + 1;
			dy = (int)gsl_rng_uniform_int(replay, span) - pad;
			dx = (int)gsl_rng_uniform_int(replay, span) - pad;
		}
		if (flip)
			fl = (int)gsl_rng_uniform_int(replay, 2);
		*n_flips += fl;
		*n_shifts += dy != 0 || dx != 0;
		assert_int_equal(y[b], d.y[idx[b]]);
		for (int ch = 0; ch < C; ch++)
			for (int yy = 0; yy < H; yy++)
				for (int xx = 0; xx < W; xx++) {
					int sy = yy + dy;
					int sx = (fl ? W - 1 - xx : xx) + dx;
					int inside = sy >= 0 && sy < H &&
						     sx >= 0 && sx < W;
					float want = inside
						? in[(ch * H + sy) * W + sx]
						: 0.0f;
					assert_float_equal(
						out[(ch * H + yy) * W + xx],
						want, 0.0);
				}
	}
	gsl_rng_free(r);
	gsl_rng_free(replay);
	pb_dataset_free(&d);
}

static void test_batch_flip(void **state)
{
	int flips, shifts;
	pb_dataset d;
	size_t idx[1] = { 0 };
	float x[6], mirrored[6] = { 3, 2, 1, 6, 5, 4 };
	uint8_t y[1];
	pb_augment aug = { 0, 1 };
	gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
	int saw_flip = 0, saw_plain = 0;

	(void)state;
	check_aug(0, 1, &flips, &shifts);
	assert_true(flips > 16 && flips < 48);
	assert_int_equal(shifts, 0);
	/* A 2x3 image: when it flips, each row is reversed. */
	make_images(&d, 1, 1, 2, 3);
	gsl_rng_set(r, 1);
	for (int t = 0; t < 20; t++) {
		pb_dataset_batch(&d, idx, 1, x, y, &aug, r);
		if (!memcmp(x, mirrored, sizeof x))
			saw_flip = 1;
		else if (!memcmp(x, d.x, sizeof x))
			saw_plain = 1;
		else
			fail_msg("neither the image nor its mirror");
	}
	assert_true(saw_flip && saw_plain);
	gsl_rng_free(r);
	pb_dataset_free(&d);
}

static void test_batch_crop(void **state)
{
	int flips, shifts;

	(void)state;
	check_aug(2, 0, &flips, &shifts);
	assert_int_equal(flips, 0);
	assert_true(shifts > 32);
	check_aug(1, 1, &flips, &shifts);
	assert_true(flips > 0 && shifts > 0);
}

/* Same seed, same batch; and the batch does not depend on the number of
 * threads (big enough here for the copy to run in parallel). */
static void test_batch_reproducible(void **state)
{
	enum { N = 40, B = 600, S = 3 * 16 * 16 };
	pb_dataset d;
	pb_augment aug = { 3, 1 };
	size_t *idx = malloc(B * sizeof *idx);
	float *x1 = pb_falloc((size_t)B * S), *x2 = pb_falloc((size_t)B * S);
	uint8_t y1[B], y2[B];
	gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
	int threads = omp_get_max_threads();

	(void)state;
	make_images(&d, N, 3, 16, 16);
	for (int b = 0; b < B; b++)
		idx[b] = (size_t)((b * 7) % N);
	omp_set_num_threads(1);
	gsl_rng_set(r, 99);
	pb_dataset_batch(&d, idx, B, x1, y1, &aug, r);
	omp_set_num_threads(4);
	gsl_rng_set(r, 99);
	pb_dataset_batch(&d, idx, B, x2, y2, &aug, r);
	assert_memory_equal(x1, x2, (size_t)B * S * sizeof(float));
	assert_memory_equal(y1, y2, B);
	gsl_rng_set(r, 100);
	pb_dataset_batch(&d, idx, B, x2, y2, &aug, r);
	assert_true(memcmp(x1, x2, (size_t)B * S * sizeof(float)) != 0);
	omp_set_num_threads(threads);
	gsl_rng_free(r);
	pb_ffree(x1);
	pb_ffree(x2);
	free(idx);
	pb_dataset_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alloc_free),
		cmocka_unit_test(test_stats_normalize),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_shuffle),
		cmocka_unit_test(test_batch_plain),
		cmocka_unit_test(test_batch_flip),
		cmocka_unit_test(test_batch_crop),
		cmocka_unit_test(test_batch_reproducible),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
