/* CIFAR-10 binary batches: records of one label byte followed by the
 * 32x32 red, green and blue planes (1024 bytes each, row-major), which is
 * already the CHW layout we store. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "prunebench/data.h"

#define CIFAR_SIDE 32
#define CIFAR_PIXELS (3 * CIFAR_SIDE * CIFAR_SIDE)
#define CIFAR_RECORD (1 + CIFAR_PIXELS)
#define CIFAR_CLASSES 10
/* Records converted per fread, to keep the staging buffer small. */
#define CIFAR_CHUNK 512

/* Number of records in path, from its size. */
static int count_records(const char *path, long *records, pb_error *err)
{
	struct stat st;

	if (stat(path, &st) != 0)
		return pb_error_set(err, PB_EIO, "%s: cannot open: %s", path,
				    strerror(errno));
	if (!S_ISREG(st.st_mode))
		return pb_error_set(err, PB_EIO, "%s: not a regular file; "
				    "expected a CIFAR-10 binary batch", path);
	if (st.st_size == 0 || st.st_size % CIFAR_RECORD != 0)
		return pb_error_set(err, PB_EFORMAT, "%s: size %lld bytes is "
				    "not a positive multiple of %d (one "
				    "CIFAR-10 record): not a CIFAR-10 binary "
				    "batch (CIFAR-100's records are 3074 "
				    "bytes), or the file is truncated",
				    path, (long long)st.st_size, CIFAR_RECORD);
	*records = (long)(st.st_size / CIFAR_RECORD);
	return 0;
}

static int convert_chunk(pb_dataset *out, long first, const unsigned char *buf,
			 long n, const char *path, long rec0, pb_error *err)
{
	for (long r = 0; r < n; r++) {
		const unsigned char *rec = buf + r * CIFAR_RECORD;
		float *x = out->x + (size_t)(first + r) * CIFAR_PIXELS;

		if (rec[0] >= CIFAR_CLASSES)
			return pb_error_set(err, PB_EFORMAT, "%s: record %ld "
					    "(from 1) has label %d, expected "
					    "0..%d: not a CIFAR-10 batch, or "
					    "the file is damaged", path,
					    rec0 + r + 1, rec[0],
					    CIFAR_CLASSES - 1);
		out->y[first + r] = rec[0];
		for (int k = 0; k < CIFAR_PIXELS; k++)
			x[k] = rec[1 + k] / 255.0f;
	}
	return 0;
}

/* Reads the records of one file into out starting at sample first. */
static int read_file(pb_dataset *out, long first, const char *path,
		     long records, unsigned char *buf, pb_error *err)
{
	FILE *f = fopen(path, "rb");
	int rc = 0;

	if (!f)
		return pb_error_set(err, PB_EIO, "%s: cannot open: %s", path,
				    strerror(errno));
	for (long r = 0; r < records && !rc; r += CIFAR_CHUNK) {
		long n = records - r < CIFAR_CHUNK ? records - r : CIFAR_CHUNK;
		size_t got = fread(buf, CIFAR_RECORD, (size_t)n, f);

		if (got != (size_t)n)
			rc = pb_error_set(err, PB_EIO, "%s: %s after %ld of "
					  "%ld records", path, ferror(f)
					  ? strerror(errno) : "file shrank",
					  r + (long)got, records);
		else
			rc = convert_chunk(out, first + r, buf, n, path, r,
					   err);
	}
	fclose(f);
	return rc;
}

int pb_cifar10_load(pb_dataset *out, const char *const *paths, int n_paths,
		    pb_error *err)
{
	long total = 0, first = 0, *records;
	unsigned char *buf = NULL;
	int rc = 0;

	memset(out, 0, sizeof *out);
	if (n_paths < 1)
		return pb_error_set(err, PB_EINVAL, "no CIFAR-10 files given");
	records = calloc((size_t)n_paths, sizeof *records);
	if (!records)
		return pb_error_set(err, PB_ENOMEM, "out of memory");
	/* Sizes first, so every file is checked before any is read. */
	for (int i = 0; i < n_paths && !rc; i++) {
		rc = count_records(paths[i], &records[i], err);
		total += records[i];
		if (!rc && total > INT_MAX)
			rc = pb_error_set(err, PB_EINVAL, "%s: more than %d "
					  "CIFAR-10 records in all", paths[i],
					  INT_MAX);
	}
	if (!rc)
		rc = pb_dataset_alloc(out, (int)total, 3, CIFAR_SIDE,
				      CIFAR_SIDE, CIFAR_CLASSES, err);
	if (!rc && !(buf = malloc((size_t)CIFAR_CHUNK * CIFAR_RECORD)))
		rc = pb_error_set(err, PB_ENOMEM, "out of memory");
	for (int i = 0; i < n_paths && !rc; i++) {
		rc = read_file(out, first, paths[i], records[i], buf, err);
		first += records[i];
	}
	if (rc)
		pb_dataset_free(out);
	free(buf);
	free(records);
	return rc;
}
