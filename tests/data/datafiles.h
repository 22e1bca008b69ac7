/* Helpers shared by the data set tests (tests/data/): errors with a
 * message, and small IDX and CIFAR-10 files (raw or gzip-ed, whole or
 * damaged) written into temporary folders. */
#ifndef PB_TESTS_DATAFILES_H
#define PB_TESTS_DATAFILES_H

#include "testutil.h"

#include <zlib.h>

#include "prunebench/data.h"

static inline void expect_err(int rc, const pb_error *err, int code,
			      const char *sub)
{
	if (rc != code || !strstr(err->msg, sub))
		fail_msg("expected code %d with '%s', got %d: '%s'", code, sub,
			 rc, err->msg);
}

static inline char *path_in(const char *dir, const char *name)
{
	char *p = malloc(strlen(dir) + strlen(name) + 2);

	assert_non_null(p);
	sprintf(p, "%s/%s", dir, name);
	return p;
}

static inline void write_bytes(const char *path, const void *data,
			       size_t len, int gz)
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

static inline void put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* An IDX file: magic, nd dimensions, then len payload bytes (len may
 * disagree with the dimensions, to make damaged files). */
static inline void write_idx(const char *path, uint32_t magic,
			     const uint32_t *dims, int nd,
			     const unsigned char *data, size_t len, int gz)
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

static inline void write_ref_idx(const char *img, const char *lab, int gz)
{
	write_idx(img, 0x803, ref_idims, 3, ref_pixels, 18, gz);
	write_idx(lab, 0x801, ref_ldims, 1, ref_labels, 3, gz);
}

/* d is the reference set, as loaded from IDX files. */
static inline void check_ref_dataset(const pb_dataset *d)
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

/* Byte k of CIFAR-10 record rec. */
static inline unsigned char cifar_pixel(int rec, int k)
{
	return (unsigned char)((k * 7 + rec * 13) & 0xff);
}

/* Writes records first..first+n-1 with label (record % 10). */
static inline void write_cifar(const char *path, int first, int n,
			       int bad_label)
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

#endif
