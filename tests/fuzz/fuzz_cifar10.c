/* Fuzzing the CIFAR-10 reader (pb_cifar10_load): one to four binary
 * batch files, loaded together.
 *
 * Input: one flag byte, then the bytes of the files. Flags:
 *   bits 0-1   the number of files - 1; the bytes are split evenly
 *   bit 2      trim each file to a whole number of 3073-byte records
 *              (kept whole when it holds less than one), so the
 *              records themselves are read rather than the size
 *              refused
 *
 * A refused set must say why; a loaded one must be 3x32x32 with ten
 * classes, labels below ten and pixels in [0, 1]. */
#include <stdlib.h>

#include "fuzz_common.h"
#include "prunebench/data.h"

#define RECORD 3073

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_setup();
	return 0;
}

static void check_set(const pb_dataset *d, size_t records)
{
	size_t n = (size_t)d->n * 3 * 32 * 32;

	if ((size_t)d->n != records || d->c != 3 || d->h != 32 ||
	    d->w != 32 || d->classes != 10 || !d->x || !d->y)
		fuzz_fail("loaded set is inconsistent: n %d of %zu records, "
			  "%dx%dx%d, %d classes", d->n, records, d->c, d->h,
			  d->w, d->classes);
	fuzz_check_samples(d, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *paths[4];
	pb_dataset d;
	pb_error err = { 0 };
	size_t part, records = 0;
	int flags, n_files, rc;

	if (size < 1)
		return 0;
	flags = data[0];
	data++;
	size--;
	n_files = (flags & 3) + 1;
	part = size / (size_t)n_files;
	for (int i = 0; i < n_files; i++) {
		/* The last file takes what the even split leaves. */
		size_t n = i == n_files - 1 ? size - part * (size_t)i : part;

		if ((flags & 4) && n >= RECORD)
			n -= n % RECORD;
		records += n / RECORD;
		paths[i] = fuzz_file(i, data + part * (size_t)i, n);
	}
	rc = pb_cifar10_load(&d, paths, n_files, &err);
	if (rc) {
		fuzz_check_error(rc, &err, "pb_cifar10_load");
		if (d.x || d.y || d.n)
			fuzz_fail("pb_cifar10_load failed but left a data set");
	} else {
		check_set(&d, records);
	}
	pb_dataset_free(&d);
	return 0;
}
