/* Data spec strings and pb_data_load (core/data/spec.c): good and bad
 * specs, IDX and CIFAR-10 folders with files missing or damaged, the
 * synthetic spec, and the real Fashion-MNIST when its Debian package is
 * installed. */
#include "datafiles.h"

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"

static void test_spec_good(void **state)
{
	pb_data_spec s;
	pb_error err = { 0 };

	(void)state;
	assert_int_equal(pb_data_spec_parse(&s, "fashion-mnist:/d/f", &err), 0);
	assert_string_equal(s.kind, "fashion-mnist");
	assert_string_equal(s.dir, "/d/f");
	assert_int_equal(pb_data_spec_parse(&s, "fashion-mnist", &err), 0);
	assert_string_equal(s.dir, FMNIST_DIR);
	assert_int_equal(pb_data_spec_parse(&s, "mnist:rel/a:b", &err), 0);
	assert_string_equal(s.kind, "mnist");
	assert_string_equal(s.dir, "rel/a:b");
	assert_int_equal(pb_data_spec_parse(&s, "cifar10:/c", &err), 0);
	assert_string_equal(s.kind, "cifar10");
	assert_string_equal(s.dir, "/c");
	assert_int_equal(pb_data_spec_parse(&s, "synthetic:500", &err), 0);
	assert_string_equal(s.kind, "synthetic");
	assert_int_equal(s.synthetic_n, 500);
	assert_int_equal(s.synthetic_seed, 1);
	assert_int_equal(pb_data_spec_parse(&s, "synthetic:64:42", &err), 0);
	assert_int_equal(s.synthetic_n, 64);
	assert_int_equal(s.synthetic_seed, 42);
}

static void test_spec_bad(void **state)
{
	static const struct {
		const char *text, *sub;
	} bad[] = {
		{ "imagenet:/x", "unknown kind 'imagenet'" },
		{ "Fashion-MNIST", "unknown kind" },
		{ "mnist", "which folder? write mnist:DIR" },
		{ "cifar10", "write cifar10:DIR" },
		{ "cifar10:", "the folder is empty" },
		{ "synthetic", "N must be a whole number" },
		{ "synthetic:abc", "N must be a whole number" },
		{ "synthetic:4", "from 5 to" },
		{ "synthetic:100:-1", "SEED must be" },
		{ "synthetic:100:7:9", "SEED must be" },
		{ "synthetic:100:", "SEED must be" },
		{ "", "no dataset given" },
	};
	pb_data_spec s;
	pb_error err = { 0 };
	char *long_dir;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		expect_err(pb_data_spec_parse(&s, bad[i].text, &err), &err,
			   PB_EPARSE, bad[i].sub);
	expect_err(pb_data_spec_parse(&s, "imagenet:/x", &err), &err,
		   PB_EPARSE, "fashion-mnist:DIR, mnist:DIR, cifar10:DIR, "
		   "synthetic:N[:SEED]");
	expect_err(pb_data_spec_parse(&s, NULL, &err), &err, PB_EPARSE,
		   "no dataset");
	long_dir = malloc(sizeof s.dir + 16);
	strcpy(long_dir, "mnist:");
	memset(long_dir + 6, 'a', sizeof s.dir);
	long_dir[6 + sizeof s.dir] = '\0';
	expect_err(pb_data_spec_parse(&s, long_dir, &err), &err, PB_EPARSE,
		   "longer than");
	free(long_dir);
}

static void test_load_idx_folder(void **state)
{
	char *dir = tu_temp_dir(), *p[6];
	pb_data_spec s;
	pb_dataset train, test;
	pb_error err = { 0 };
	static const unsigned char other[18] = { 9 };

	(void)state;
	p[0] = path_in(dir, "train-images-idx3-ubyte.gz");
	p[1] = path_in(dir, "train-labels-idx1-ubyte.gz");
	p[2] = path_in(dir, "t10k-images-idx3-ubyte");
	p[3] = path_in(dir, "t10k-labels-idx1-ubyte");
	p[4] = path_in(dir, "train-images-idx3-ubyte");
	p[5] = path_in(dir, "train-labels-idx1-ubyte");
	memset(&s, 0, sizeof s);
	strcpy(s.kind, "fashion-mnist");
	strcpy(s.dir, dir);

	expect_err(pb_data_load(&s, &train, &test, &err), &err, PB_EIO,
		   "missing train-images-idx3-ubyte[.gz], "
		   "train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], "
		   "t10k-labels-idx1-ubyte[.gz]");
	assert_non_null(strstr(err.msg, "apt-get install "
			       "dataset-fashion-mnist"));
	write_ref_idx(p[0], p[1], 1);
	expect_err(pb_data_load(&s, &train, &test, &err), &err, PB_EIO,
		   "missing t10k-images-idx3-ubyte[.gz], "
		   "t10k-labels-idx1-ubyte[.gz];");
	assert_null(strstr(err.msg, "train-"));
	assert_null(train.x);
	strcpy(s.kind, "mnist");
	expect_err(pb_data_load(&s, &train, &test, &err), &err, PB_EIO,
		   "missing t10k");
	assert_null(strstr(err.msg, "apt-get"));

	/* Raw test files; for training both exist and .gz wins. */
	write_ref_idx(p[2], p[3], 0);
	write_idx(p[4], 0x803, ref_idims, 3, other, 18, 0);
	write_idx(p[5], 0x801, ref_ldims, 1, other, 3, 0);
	assert_int_equal(pb_data_load(&s, &train, &test, &err), 0);
	check_ref_dataset(&train);
	check_ref_dataset(&test);
	pb_dataset_free(&train);
	pb_dataset_free(&test);

	/* A damaged test file: the training set loaded first is freed. */
	write_idx(p[3], 0x801, ref_ldims, 1, ref_labels, 2, 0);
	expect_err(pb_data_load(&s, &train, &test, &err), &err, PB_EFORMAT,
		   "t10k-labels-idx1-ubyte: truncated");
	assert_null(train.x);
	assert_null(test.x);

	strcpy(s.dir, "/nonexistent/prunebench");
	strcpy(s.kind, "fashion-mnist");
	expect_err(pb_data_load(&s, &train, &test, &err), &err, PB_EIO,
		   "/nonexistent/prunebench: no such folder: install");
	for (int i = 0; i < 6; i++)
		free(p[i]);
	tu_rm_tree(dir);
}

static void test_load_cifar_folder(void **state)
{
	static const char *names[6] = {
		"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
		"data_batch_4.bin", "data_batch_5.bin", "test_batch.bin",
	};
	char *dir = tu_temp_dir(), *sub = path_in(dir, "cifar-10-batches-bin");
	pb_data_spec s;
	pb_dataset train, test;
	pb_error err = { 0 };

	(void)state;
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(pb_data_spec_parse(&s, "cifar10:/x", &err), 0);
	strcpy(s.dir, dir);
	expect_err(pb_data_load(&s, &train, &test, &err), &err, PB_EIO,
		   "missing data_batch_1.bin, data_batch_2.bin, "
		   "data_batch_3.bin, data_batch_4.bin, data_batch_5.bin, "
		   "test_batch.bin");
	for (int i = 0; i < 5; i++) {
		char *p = path_in(sub, names[i]);
		write_cifar(p, 2 * i, 2, 0);
		free(p);
	}
	expect_err(pb_data_load(&s, &train, &test, &err), &err, PB_EIO,
		   "cifar-10-batches-bin: missing test_batch.bin;");
	{
		char *p = path_in(sub, names[5]);
		write_cifar(p, 0, 3, 0);
		free(p);
	}
	assert_int_equal(pb_data_load(&s, &train, &test, &err), 0);
	assert_int_equal(train.n, 10);
	assert_int_equal(test.n, 3);
	assert_int_equal(train.c, 3);
	for (int i = 0; i < 10; i++)
		assert_int_equal(train.y[i], i);
	pb_dataset_free(&train);
	pb_dataset_free(&test);
	/* Naming the batches folder itself works too. */
	strcpy(s.dir, sub);
	assert_int_equal(pb_data_load(&s, &train, &test, &err), 0);
	assert_int_equal(train.n, 10);
	pb_dataset_free(&train);
	pb_dataset_free(&test);
	free(sub);
	tu_rm_tree(dir);
}

static void test_load_synthetic(void **state)
{
	pb_data_spec s;
	pb_dataset a, b, a2, b2, same_seed;
	pb_error err = { 0 };

	(void)state;
	assert_int_equal(pb_data_spec_parse(&s, "synthetic:103:5", &err), 0);
	assert_int_equal(pb_data_load(&s, &a, &b, &err), 0);
	assert_int_equal(a.n, 103);
	assert_int_equal(b.n, 20);
	assert_int_equal(a.c, 1);
	assert_int_equal(a.h, 28);
	assert_int_equal(a.w, 28);
	assert_int_equal(a.classes, 10);
	assert_int_equal(b.h, 28);
	assert_int_equal(b.classes, 10);
	/* The test set is not a copy of the start of the training set, nor
	 * the draw a training set of its size with the same seed gets. */
	assert_true(memcmp(a.x, b.x, 20 * 784 * sizeof(float)) != 0);
	assert_int_equal(pb_dataset_synthetic(&same_seed, 20, 1, 28, 28, 10,
					      0.3f, 5, &err), 0);
	assert_true(memcmp(same_seed.x, b.x, 20 * 784 * sizeof(float)) != 0);
	pb_dataset_free(&same_seed);
	assert_int_equal(pb_data_load(&s, &a2, &b2, &err), 0);
	assert_memory_equal(a.x, a2.x, 103 * 784 * sizeof(float));
	assert_memory_equal(b.y, b2.y, 20);
	pb_dataset_free(&a);
	pb_dataset_free(&b);
	pb_dataset_free(&a2);
	pb_dataset_free(&b2);
	strcpy(s.kind, "bogus");
	expect_err(pb_data_load(&s, &a, &b, &err), &err, PB_EINVAL,
		   "unknown dataset kind 'bogus'");
}

/* The real Fashion-MNIST, when the Debian package is installed. */
static void test_fashion_mnist_real(void **state)
{
	pb_data_spec s;
	pb_dataset train, test;
	pb_error err = { 0 };
	int count[10] = { 0 };
	float lo = 1.0f, hi = 0.0f;

	(void)state;
	if (access(FMNIST_DIR "/train-images-idx3-ubyte.gz", R_OK) != 0 &&
	    access(FMNIST_DIR "/train-images-idx3-ubyte", R_OK) != 0)
		skip();
	assert_int_equal(pb_data_spec_parse(&s, "fashion-mnist", &err), 0);
	if (pb_data_load(&s, &train, &test, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(train.n, 60000);
	assert_int_equal(test.n, 10000);
	assert_int_equal(train.c, 1);
	assert_int_equal(train.h, 28);
	assert_int_equal(train.w, 28);
	assert_int_equal(test.h, 28);
	assert_int_equal(test.w, 28);
	for (int i = 0; i < train.n; i++) {
		assert_true(train.y[i] < 10);
		count[train.y[i]]++;
	}
	for (int k = 0; k < 10; k++)
		assert_int_equal(count[k], 6000);
	for (int i = 0; i < test.n; i++)
		assert_true(test.y[i] < 10);
	for (size_t i = 0; i < (size_t)test.n * 784; i++) {
		lo = fminf(lo, test.x[i]);
		hi = fmaxf(hi, test.x[i]);
	}
	assert_float_equal(lo, 0.0f, 0.0);
	assert_float_equal(hi, 1.0f, 0.0);
	pb_dataset_free(&train);
	pb_dataset_free(&test);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_good),
		cmocka_unit_test(test_spec_bad),
		cmocka_unit_test(test_load_idx_folder),
		cmocka_unit_test(test_load_cifar_folder),
		cmocka_unit_test(test_load_synthetic),
		cmocka_unit_test(test_fashion_mnist_real),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
