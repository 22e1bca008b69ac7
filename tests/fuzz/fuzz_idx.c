/* Fuzzing the IDX reader (pb_idx_load): an image file and a label file,
 * raw or gzip-ed.
 *
 * Input: one flag byte, a 16-bit little-endian length L, L bytes of the
 * label file, and the rest as the image file. Flags:
 *   bit 0   gzip the image bytes here before the loader reads them
 *   bit 1   gzip the label bytes
 *   bit 2   cut the gzip-ed streams short by (flag byte >> 3) + 1 bytes
 * The gzip done here gives the fuzzer valid streams around its IDX bytes
 * (a mutated gzip stream would almost always stop at its CRC); raw input
 * may still be gzip, as the seed files are, to reach the corrupt-stream
 * paths.
 *
 * A refused pair must say why; a loaded set must be consistent: one
 * channel, ten classes, labels below ten, pixels in [0, 1]. */
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "fuzz_common.h"
#include "prunebench/data.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_setup();
	return 0;
}

/* A gzip stream of in (malloc-ed into *out), or -1. */
static int gzip(const uint8_t *in, size_t n, uint8_t **out, size_t *out_n)
{
	z_stream z;
	size_t cap = n + n / 100 + 64;
	uint8_t *buf = malloc(cap);
	int rc;

	if (!buf)
		return -1;
	memset(&z, 0, sizeof z);
	/* 15 + 16: a gzip header and trailer rather than zlib's. */
	if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK) {
		free(buf);
		return -1;
	}
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)n;
	z.next_out = buf;
	z.avail_out = (uInt)cap;
	rc = deflate(&z, Z_FINISH);
	*out_n = z.total_out;
	deflateEnd(&z);
	if (rc != Z_STREAM_END) {
		free(buf);
		return -1;
	}
	*out = buf;
	return 0;
}

/* Writes part into file slot `slot`, gzip-ed (and cut) when asked. */
static const char *put(int slot, const uint8_t *part, size_t n, int zip,
		       size_t cut)
{
	uint8_t *z;
	size_t zn;
	const char *path;

	if (!zip || gzip(part, n, &z, &zn))
		return fuzz_file(slot, part, n);
	path = fuzz_file(slot, z, zn > cut ? zn - cut : 0);
	free(z);
	return path;
}

static void check_set(const pb_dataset *d)
{
	size_t n = (size_t)d->n * (size_t)d->h * (size_t)d->w;

	if (d->n < 1 || d->c != 1 || d->h < 1 || d->w < 1 ||
	    d->classes != 10 || !d->x || !d->y)
		fuzz_fail("loaded set is inconsistent: n %d, %dx%dx%d, %d "
			  "classes", d->n, d->c, d->h, d->w, d->classes);
	fuzz_check_samples(d, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *images, *labels;
	pb_dataset d;
	pb_error err = { 0 };
	size_t lab_n, cut;
	int flags, rc;

	if (size < 3)
		return 0;
	flags = data[0];
	lab_n = (size_t)data[1] | (size_t)data[2] << 8;
	data += 3;
	size -= 3;
	if (lab_n > size)
		lab_n = size;
	cut = flags & 4 ? (size_t)(flags >> 3) + 1 : 0;
	labels = put(0, data, lab_n, flags & 2, cut);
	images = put(1, data + lab_n, size - lab_n, flags & 1, cut);
	rc = pb_idx_load(&d, images, labels, &err);
	if (rc) {
		fuzz_check_error(rc, &err, "pb_idx_load");
		if (d.x || d.y || d.n)
			fuzz_fail("pb_idx_load failed but left a data set");
	} else {
		check_set(&d);
	}
	pb_dataset_free(&d);
	return 0;
}
