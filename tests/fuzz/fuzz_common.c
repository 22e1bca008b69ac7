/* Set-up shared by the fuzz harnesses; see fuzz_common.h. */
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_common.h"

#define FUZZ_SLOTS 8

const char fuzz_checkpoint_model[] =
	"[model]\nname = fuzz\ninput = 2x4x4\nclasses = 3\n"
	"[conv1]\ntype = conv\nout = 3\nkernel = 3\npad = 1\n"
	"[bn1]\ntype = bn\n"
	"[relu1]\ntype = relu\n"
	"[pool1]\ntype = maxpool\nkernel = 2\n"
	"[flat]\ntype = flatten\n"
	"[fc]\ntype = linear\nout = 3\n";

static int slot_fd[FUZZ_SLOTS] = { -1, -1, -1, -1, -1, -1, -1, -1 };
static char slot_path[FUZZ_SLOTS][64];
static char scratch[256];

void fuzz_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("fuzz: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

void fuzz_check_error(int rc, const pb_error *err, const char *what)
{
	if (rc >= 0)
		fuzz_fail("%s failed with code %d, which is not an error code",
			  what, rc);
	if (!err->msg[0])
		fuzz_fail("%s failed (code %d) without a message", what, rc);
	if (!memchr(err->msg, '\0', sizeof err->msg))
		fuzz_fail("%s: the message is not terminated", what);
}

void fuzz_check_samples(const pb_dataset *d, size_t pixels)
{
	for (int i = 0; i < d->n; i++)
		if (d->y[i] >= 10)
			fuzz_fail("label %d of sample %d", d->y[i], i);
	for (size_t i = 0; i < pixels; i++)
		if (!(d->x[i] >= 0.0f && d->x[i] <= 1.0f))
			fuzz_fail("pixel %zu is %g", i, (double)d->x[i]);
}

static int remove_one(const char *path, const struct stat *st, int flag,
		      struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void remove_scratch(void)
{
	if (scratch[0])
		nftw(scratch, remove_one, 8, FTW_DEPTH | FTW_PHYS);
}

void fuzz_setup(void)
{
	static int done;
	const char *base;

	if (done)
		return;
	done = 1;
	/* Read by the OpenMP runtime when its first parallel region starts,
	 * which is after this. */
	setenv("OMP_NUM_THREADS", "1", 1);
	base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" :
	       getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(scratch, sizeof scratch, "%s/pbfuzz-XXXXXX", base);
	if (!mkdtemp(scratch))
		fuzz_fail("cannot make a scratch folder in %s: %s", base,
			  strerror(errno));
	atexit(remove_scratch);
}

const char *fuzz_dir(void)
{
	fuzz_setup();
	return scratch;
}

char *fuzz_text(const uint8_t *data, size_t size)
{
	char *t = malloc(size + 1);

	if (!t)
		return NULL;
	if (size)
		memcpy(t, data, size);
	t[size] = '\0';
	return t;
}

const char *fuzz_file(int slot, const void *data, size_t size)
{
	const char *p = data;
	size_t done = 0;

	if (slot < 0 || slot >= FUZZ_SLOTS)
		fuzz_fail("file slot %d out of range", slot);
	if (slot_fd[slot] < 0) {
		char name[32];

		snprintf(name, sizeof name, "pbfuzz-%d", slot);
		slot_fd[slot] = memfd_create(name, MFD_CLOEXEC);
		if (slot_fd[slot] < 0)
			fuzz_fail("memfd_create: %s", strerror(errno));
		snprintf(slot_path[slot], sizeof slot_path[slot],
			 "/proc/self/fd/%d", slot_fd[slot]);
	}
	if (ftruncate(slot_fd[slot], 0))
		fuzz_fail("ftruncate: %s", strerror(errno));
	while (done < size) {
		ssize_t n = pwrite(slot_fd[slot], p + done, size - done,
				   (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fuzz_fail("writing file slot %d: %s", slot,
				  strerror(errno));
		done += (size_t)n;
	}
	return slot_path[slot];
}
