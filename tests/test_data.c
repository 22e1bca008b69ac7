/* Dataset loaders, spec strings, the stratified split, normalisation and
 * batch augmentation. Loader tests write small IDX and CIFAR-10 files
 * (raw and gzip-ed) into temporary folders, including damaged ones whose
 * error messages must say what is wrong. */
#include "testutil.h"

#include <sys/stat.h>
#include <omp.h>
#include <zlib.h>

#include "prunebench/data.h"
#include "prunebench/tensor.h"

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"

/* ---- helpers ---------------------------------------------------------- */

static void expect_err(int rc, const pb_error *err, int code, const char *sub)
{
	if (rc != code || !strstr(err->msg, sub))
		fail_msg("expected code %d with '%s', got %d: '%s'", code, sub,
			 rc, err->msg);
}

static char *path_in(const char *dir, const char *name)
{
	char *p = malloc(strlen(dir) + strlen(name) + 2);

	assert_non_null(p);
	sprintf(p, "%s/%s", dir, name);
	return p;
}

static void write_bytes(const char *path, const void *data, size_t len,
			int gz)
{
	if (gz) {
		gzFile f = gzopen(path, "wb");
		assert_non_null(f);
		assert_int_equal(gzwrite(f, data, (unsigned)len), (int)len);
		assert_int_equal(gzclose(f), Z_OK);
	} else {
		FILE *f = fopen(path, "wb");
		assert_non_null(f);
		assert_int_equal(fwrite(data, 1, len, f), len);
		assert_int_equal(fclose(f), 0);
	}
}

static void put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* An IDX file: magic, nd dimensions, then len payload bytes (len may
 * disagree with the dimensions, to make damaged files). */
static void write_idx(const char *path, uint32_t magic, const uint32_t *dims,
		      int nd, const unsigned char *data, size_t len, int gz)
{
	size_t hdr = 4 + 4 * (size_t)nd;
	unsigned char *buf = malloc(hdr + len + 1);

	assert_non_null(buf);
	put_be32(buf, magic);
	for (int i = 0; i < nd; i++)
		put_be32(buf + 4 + 4 * i, dims[i]);
	if (len)
		memcpy(buf + hdr, data, len);
	write_bytes(path, buf, hdr + len, gz);
	free(buf);
}

/* The reference image set: 3 images of 2x3 with distinct bytes. */
static const unsigned char ref_pixels[18] = {
	0, 255, 17, 34, 51, 68,
	85, 102, 119, 136, 153, 170,
	187, 204, 221, 238, 1, 2,
};
static const unsigned char ref_labels[3] = { 7, 0, 9 };
static const uint32_t ref_idims[3] = { 3, 2, 3 };
static const uint32_t ref_ldims[1] = { 3 };

static void write_ref_idx(const char *img, const char *lab, int gz)
{
	write_idx(img, 0x803, ref_idims, 3, ref_pixels, 18, gz);
	write_idx(lab, 0x801, ref_ldims, 1, ref_labels, 3, gz);
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

/* ---- IDX ---------------------------------------------------------------- */

static void check_ref_dataset(const pb_dataset *d)
{
	assert_int_equal(d->n, 3);
	assert_int_equal(d->c, 1);
	assert_int_equal(d->h, 2);
	assert_int_equal(d->w, 3);
	assert_int_equal(d->classes, 10);
	assert_true(((uintptr_t)d->x & 63) == 0);
	for (int i = 0; i < 18; i++)
		assert_float_equal(d->x[i], ref_pixels[i] / 255.0f, 1e-7);
	assert_float_equal(d->x[0], 0.0f, 0.0);
	assert_float_equal(d->x[1], 1.0f, 0.0);
	assert_memory_equal(d->y, ref_labels, 3);
}

static void idx_load_case(int gz, const char *img_name, const char *lab_name)
{
	char *dir = tu_temp_dir(), *img = path_in(dir, img_name),
	     *lab = path_in(dir, lab_name);
	pb_dataset d;
	pb_error err = { 0 };

	write_ref_idx(img, lab, gz);
	assert_int_equal(pb_idx_load(&d, img, lab, &err), 0);
	check_ref_dataset(&d);
	pb_dataset_free(&d);
	free(img);
	free(lab);
	tu_rm_tree(dir);
}

static void test_idx_raw(void **state)
{
	(void)state;
	idx_load_case(0, "img-idx3-ubyte", "lab-idx1-ubyte");
}

static void test_idx_gzip(void **state)
{
	(void)state;
	idx_load_case(1, "img-idx3-ubyte.gz", "lab-idx1-ubyte.gz");
	/* Gzip is recognised by content, not by name. */
	idx_load_case(1, "img-idx3-ubyte", "lab.bin");
}

/* Writes images and labels with the given pieces and expects an error. */
typedef struct idx_case {
	uint32_t imagic, lmagic;
	uint32_t idims[3], ldims[1];
	size_t npix, nlab;
	const unsigned char *labels;
	int gz;
	int code;
	const char *sub;
} idx_case;

static void run_idx_case(const idx_case *c)
{
	char *dir = tu_temp_dir(), *img = path_in(dir, "images"),
	     *lab = path_in(dir, "labels");
	unsigned char pixels[64] = { 0 };
	pb_dataset d = { .n = 99 };
	pb_error err = { 0 };
	int rc;

	write_idx(img, c->imagic, c->idims, 3, pixels, c->npix, c->gz);
	write_idx(lab, c->lmagic, c->ldims, 1,
		  c->labels ? c->labels : ref_labels, c->nlab, c->gz);
	rc = pb_idx_load(&d, img, lab, &err);
	expect_err(rc, &err, c->code, c->sub);
	assert_int_equal(d.n, 0);
	assert_null(d.x);
	free(img);
	free(lab);
	tu_rm_tree(dir);
}

static void test_idx_missing(void **state)
{
	char *dir = tu_temp_dir(), *img = path_in(dir, "img"),
	     *lab = path_in(dir, "nothere-labels");
	pb_dataset d;
	pb_error err = { 0 };

	(void)state;
	write_idx(img, 0x803, ref_idims, 3, ref_pixels, 18, 0);
	expect_err(pb_idx_load(&d, img, lab, &err), &err, PB_EIO,
		   "nothere-labels: cannot open: No such file");
	free(img);
	free(lab);
	tu_rm_tree(dir);
}

static void test_idx_wrong_magic(void **state)
{
	idx_case c = { 0x801, 0x801, { 3, 2, 3 }, { 3 }, 18, 3, NULL, 0,
		       PB_EFORMAT, "images: not an IDX image file (magic "
		       "0x00000801, expected 0x00000803)" };

	(void)state;
	run_idx_case(&c);
	c.sub = "swapped";
	run_idx_case(&c);
	c.imagic = 0x803;
	c.lmagic = 0x12345678;
	c.sub = "labels: not an IDX label file (magic 0x12345678, expected "
		"0x00000801)";
	run_idx_case(&c);
	c.gz = 1;
	run_idx_case(&c);
	/* Right shape, wrong element type (0x0D is float). */
	c.gz = 0;
	c.lmagic = 0xD01;
	c.sub = "not unsigned bytes";
	run_idx_case(&c);
}

static void test_idx_truncated(void **state)
{
	idx_case c = { 0x803, 0x801, { 3, 2, 3 }, { 3 }, 10, 3, NULL, 0,
		       PB_EFORMAT, "images: truncated: header says 3 images "
		       "of 2x3, file holds 10 bytes of pixels" };

	(void)state;
	run_idx_case(&c);
	c.gz = 1;
	run_idx_case(&c);
	c.gz = 0;
	c.npix = 18;
	c.nlab = 2;
	c.sub = "labels: truncated: header says 3 labels, file holds 2";
	run_idx_case(&c);
	/* More pixels than announced is as wrong as fewer. */
	c.nlab = 3;
	c.npix = 19;
	c.sub = "images: more data than the header announces";
	run_idx_case(&c);
}

static void test_idx_count_mismatch(void **state)
{
	idx_case c = { 0x803, 0x801, { 3, 2, 3 }, { 2 }, 18, 2, NULL, 1,
		       PB_EMISMATCH, "holds 3 images but" };

	(void)state;
	run_idx_case(&c);
	c.sub = "labels holds 2 labels";
	run_idx_case(&c);
}

static void test_idx_label_range(void **state)
{
	static const unsigned char bad[3] = { 1, 10, 2 };
	idx_case c = { 0x803, 0x801, { 3, 2, 3 }, { 3 }, 18, 3, bad, 0,
		       PB_EFORMAT, "labels: label 10 of sample 1 is out of "
		       "range 0..9" };

	(void)state;
	run_idx_case(&c);
}

static void test_idx_bad_dims(void **state)
{
	idx_case c = { 0x803, 0x801, { 0, 2, 3 }, { 0 }, 0, 0, NULL, 0,
		       PB_EFORMAT, "header says 0 images" };

	(void)state;
	run_idx_case(&c);
	c.idims[0] = 3;
	c.idims[2] = 0;
	c.ldims[0] = 3;
	c.sub = "header says images of 2x0";
	run_idx_case(&c);
	/* An absurd count is reported as truncation, not as an attempt to
	 * allocate terabytes. */
	c.idims[0] = 0x7fffffff;
	c.idims[1] = c.idims[2] = 60000;
	c.ldims[0] = 0x7fffffff;
	c.nlab = 3;
	c.sub = "labels: truncated: header says 2147483647 labels, file "
		"holds 3";
	run_idx_case(&c);
}

static void test_idx_gzip_garbage(void **state)
{
	char *dir = tu_temp_dir(), *img = path_in(dir, "img.gz"),
	     *lab = path_in(dir, "lab.gz"), *data;
	unsigned char junk[200];
	pb_dataset d;
	pb_error err = { 0 };
	FILE *f;
	long size;

	(void)state;
	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (unsigned char)(i * 37 + 11);
	junk[0] = 0x1f;
	junk[1] = 0x8b;
	write_bytes(img, junk, sizeof junk, 0);
	write_idx(lab, 0x801, ref_ldims, 1, ref_labels, 3, 1);
	expect_err(pb_idx_load(&d, img, lab, &err), &err, PB_EFORMAT,
		   "img.gz: corrupt gzip data (zlib: ");
	assert_non_null(strstr(err.msg, "download it again"));

	/* A gzip file missing its 8-byte trailer holds all the data but
	 * is still damaged. */
	write_ref_idx(img, lab, 1);
	f = fopen(img, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	rewind(f);
	data = malloc((size_t)size);
	assert_int_equal(fread(data, 1, (size_t)size, f), (size_t)size);
	fclose(f);
	write_bytes(img, data, (size_t)size - 8, 0);
	expect_err(pb_idx_load(&d, img, lab, &err), &err, PB_EFORMAT,
		   "img.gz: truncated");
	/* Cut in the middle of the pixels. */
	write_bytes(img, data, (size_t)size / 2, 0);
	expect_err(pb_idx_load(&d, img, lab, &err), &err, PB_EFORMAT,
		   "img.gz: ");
	assert_non_null(strstr(err.msg, "truncated") ?
			strstr(err.msg, "truncated") :
			strstr(err.msg, "too short"));
	/* A raw file of two bytes. */
	write_bytes(img, junk + 5, 2, 0);
	expect_err(pb_idx_load(&d, img, lab, &err), &err, PB_EFORMAT,
		   "only 2 bytes, too short to be an IDX image file");
	free(data);
	free(img);
	free(lab);
	tu_rm_tree(dir);
}

/* ---- CIFAR-10 ----------------------------------------------------------- */

static unsigned char cifar_pixel(int rec, int k)
{
	return (unsigned char)((k * 7 + rec * 13) & 0xff);
}

/* Writes records first..first+n-1 with label (record % 10). */
static void write_cifar(const char *path, int first, int n, int bad_label)
{
	unsigned char *buf = malloc((size_t)n * 3073);

	assert_non_null(buf);
	for (int r = 0; r < n; r++) {
		unsigned char *rec = buf + (size_t)r * 3073;
		rec[0] = (unsigned char)((first + r) % 10);
		for (int k = 0; k < 3072; k++)
			rec[1 + k] = cifar_pixel(first + r, k);
	}
	if (bad_label && n > 1)
		buf[3073] = (unsigned char)bad_label;
	write_bytes(path, buf, (size_t)n * 3073, 0);
	free(buf);
}

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

/* ---- spec strings and pb_data_load ------------------------------------ */

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

/* ---- dataset operations ------------------------------------------------- */

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
		cmocka_unit_test(test_idx_raw),
		cmocka_unit_test(test_idx_gzip),
		cmocka_unit_test(test_idx_missing),
		cmocka_unit_test(test_idx_wrong_magic),
		cmocka_unit_test(test_idx_truncated),
		cmocka_unit_test(test_idx_count_mismatch),
		cmocka_unit_test(test_idx_label_range),
		cmocka_unit_test(test_idx_bad_dims),
		cmocka_unit_test(test_idx_gzip_garbage),
		cmocka_unit_test(test_cifar_load),
		cmocka_unit_test(test_cifar_errors),
		cmocka_unit_test(test_spec_good),
		cmocka_unit_test(test_spec_bad),
		cmocka_unit_test(test_load_idx_folder),
		cmocka_unit_test(test_load_cifar_folder),
		cmocka_unit_test(test_load_synthetic),
		cmocka_unit_test(test_fashion_mnist_real),
		cmocka_unit_test(test_alloc_free),
		cmocka_unit_test(test_synthetic),
		cmocka_unit_test(test_synthetic_prototypes),
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
