/* IDX files (core/data/idx.c): the reference set raw and gzip-ed, and
 * damaged files (wrong magic, truncated, counts that disagree, labels out
 * of range, bad dimensions, gzip garbage) whose messages must say what is
 * wrong. */
#include "datafiles.h"

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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
