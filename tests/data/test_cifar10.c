/* CIFAR-10 binary batches (core/data/cifar10.c): records of several files
 * in order, planes as stored, and files of the wrong size, with bad labels
 * or missing. */
#include "datafiles.h"

static void test_cifar_load(void **state)
{
	char *dir = tu_temp_dir(), *a = path_in(dir, "a.bin"),
	     *b = path_in(dir, "b.bin");
	const char *paths[2] = { a, b };
	pb_dataset d;
	pb_error err = { 0 };

	(void)state;
	write_cifar(a, 0, 2, 0);
	write_cifar(b, 2, 12, 0);
	assert_int_equal(pb_cifar10_load(&d, paths, 2, &err), 0);
	assert_int_equal(d.n, 14);
	assert_int_equal(d.c, 3);
	assert_int_equal(d.h, 32);
	assert_int_equal(d.w, 32);
	assert_int_equal(d.classes, 10);
	for (int i = 0; i < 14; i++) {
		assert_int_equal(d.y[i], i % 10);
		/* R plane first, then G, then B: CHW as stored. */
		for (int k = 0; k < 3072; k += 97)
			assert_float_equal(d.x[(size_t)i * 3072 + k],
					   cifar_pixel(i, k) / 255.0f, 1e-7);
		assert_float_equal(d.x[(size_t)i * 3072 + 3071],
				   cifar_pixel(i, 3071) / 255.0f, 1e-7);
	}
	pb_dataset_free(&d);
	free(a);
	free(b);
	tu_rm_tree(dir);
}

static void test_cifar_errors(void **state)
{
	char *dir = tu_temp_dir(), *a = path_in(dir, "a.bin"),
	     *b = path_in(dir, "b.bin"), *m = path_in(dir, "missing.bin");
	const char *paths[2] = { a, b };
	unsigned char junk[3074] = { 0 };
	pb_dataset d = { .n = 5 };
	pb_error err = { 0 };

	(void)state;
	write_cifar(a, 0, 2, 0);
	write_bytes(b, junk, sizeof junk, 0);
	expect_err(pb_cifar10_load(&d, paths, 2, &err), &err, PB_EFORMAT,
		   "b.bin: size 3074 bytes is not a positive multiple of "
		   "3073");
	assert_null(d.x);
	write_bytes(b, junk, 0, 0);
	expect_err(pb_cifar10_load(&d, paths, 2, &err), &err, PB_EFORMAT,
		   "b.bin: size 0 bytes");
	write_cifar(b, 0, 3, 10);
	expect_err(pb_cifar10_load(&d, paths, 2, &err), &err, PB_EFORMAT,
		   "b.bin: record 2 (from 1) has label 10, expected 0..9");
	assert_null(d.x);
	paths[1] = m;
	expect_err(pb_cifar10_load(&d, paths, 2, &err), &err, PB_EIO,
		   "missing.bin: cannot open");
	paths[1] = dir;
	expect_err(pb_cifar10_load(&d, paths, 2, &err), &err, PB_EIO,
		   "not a regular file");
	expect_err(pb_cifar10_load(&d, paths, 0, &err), &err, PB_EINVAL,
		   "no CIFAR-10 files");
	free(a);
	free(b);
	free(m);
	tu_rm_tree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cifar_load),
		cmocka_unit_test(test_cifar_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
