/* Synthetic data sets (core/data/synthetic.c): reproducible per seed,
 * balanced classes in random order, prototypes that do not depend on the
 * seed and stay apart, and noise of the requested deviation. */
#include "datafiles.h"

static void test_synthetic(void **state)
{
	pb_dataset a, b, c, clean;
	pb_error err = { 0 };
	int count[4] = { 0 }, hits = 0, cyclic = 0;
	float proto[4][2 * 8 * 8];
	double sum = 0.0;
	const size_t S = 2 * 8 * 8;

	(void)state;
	assert_int_equal(pb_dataset_synthetic(&a, 402, 2, 8, 8, 4, 0.3f, 9,
					      &err), 0);
	assert_int_equal(pb_dataset_synthetic(&b, 402, 2, 8, 8, 4, 0.3f, 9,
					      &err), 0);
	assert_int_equal(pb_dataset_synthetic(&c, 402, 2, 8, 8, 4, 0.3f, 10,
					      &err), 0);
	assert_memory_equal(a.x, b.x, 402 * S * sizeof(float));
	assert_memory_equal(a.y, b.y, 402);
	assert_true(memcmp(a.x, c.x, 402 * S * sizeof(float)) != 0);
	for (int i = 0; i < 402; i++) {
		count[a.y[i]]++;
		cyclic += a.y[i] == i % 4;
	}
	for (int k = 0; k < 4; k++)
		assert_true(count[k] == 100 || count[k] == 101);
	/* Balanced, but in random order rather than 0, 1, 2, 3, 0, ... */
	assert_true(cyclic < 200);
	for (size_t i = 0; i < 402 * S; i++)
		sum += a.x[i];
	assert_true(sum / (402.0 * S) > 0.3 && sum / (402.0 * S) < 0.7);

	/* Without noise a sample is its prototype, in [0, 1]; prototypes do
	 * not depend on the seed. */
	assert_int_equal(pb_dataset_synthetic(&clean, 40, 2, 8, 8, 4, 0.0f, 3,
					      &err), 0);
	for (int i = 0; i < 40; i++)
		memcpy(proto[clean.y[i]], clean.x + i * S, sizeof proto[0]);
	for (int i = 0; i < 40; i++) {
		assert_memory_equal(proto[clean.y[i]], clean.x + i * S,
				    sizeof proto[0]);
		for (size_t k = 0; k < S; k++)
			assert_true(clean.x[i * S + k] >= 0.0f &&
				    clean.x[i * S + k] <= 1.0f);
	}
	/* The classes are learnable across seeds: nearest prototype of
	 * seed 3 classifies the noisy samples of seed 10. */
	for (int i = 0; i < 402; i++) {
		int best = 0;
		double bd = INFINITY;
		for (int k = 0; k < 4; k++) {
			double dist = 0.0;
			for (size_t j = 0; j < S; j++) {
				double e = c.x[i * S + j] - proto[k][j];
				dist += e * e;
			}
			if (dist < bd) {
				bd = dist;
				best = k;
			}
		}
		hits += best == c.y[i];
	}
	assert_true(hits >= 398);
	/* The noise has the requested standard deviation. */
	sum = 0.0;
	for (int i = 0; i < 402; i++)
		for (size_t j = 0; j < S; j++) {
			double e = c.x[i * S + j] - proto[c.y[i]][j];
			sum += e * e;
		}
	assert_float_equal(sqrt(sum / (402.0 * S)), 0.3, 0.01);
	pb_dataset_free(&clean);
	expect_err(pb_dataset_synthetic(&clean, 4, 1, 2, 2, 2, -1.0f, 1, &err),
		   &err, PB_EINVAL, "noise");
	assert_null(clean.x);
	pb_dataset_free(&a);
	pb_dataset_free(&b);
	pb_dataset_free(&c);
	pb_dataset_free(&clean);
}

/* No two class prototypes are near-identical, for the shape of the
 * synthetic:N spec (10 classes of 1x28x28) and a small test shape. */
static void check_prototypes_apart(int classes, int h, int w)
{
	pb_dataset d;
	pb_error err = { 0 };
	const size_t S = (size_t)h * w;
	int first[16];

	assert_int_equal(pb_dataset_synthetic(&d, classes, 1, h, w, classes,
					      0.0f, 1, &err), 0);
	for (int i = 0; i < classes; i++)
		first[d.y[i]] = i;
	for (int a = 0; a < classes; a++)
		for (int b = a + 1; b < classes; b++) {
			double msd = 0.0;
			for (size_t k = 0; k < S; k++) {
				double e = d.x[first[a] * S + k] -
					   d.x[first[b] * S + k];
				msd += e * e;
			}
			if (msd / S < 0.03)
				fail_msg("classes %d and %d of %dx%d differ "
					 "by %g only", a, b, h, w, msd / S);
		}
	pb_dataset_free(&d);
}

static void test_synthetic_prototypes(void **state)
{
	(void)state;
	check_prototypes_apart(10, 28, 28);
	check_prototypes_apart(4, 12, 12);
	check_prototypes_apart(16, 5, 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_synthetic),
		cmocka_unit_test(test_synthetic_prototypes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
