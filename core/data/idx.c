/* IDX files (MNIST, Fashion-MNIST): a big-endian header of magic and
 * dimensions followed by unsigned bytes. Images have magic 0x00000803
 * (n, rows, cols), labels 0x00000801 (n).
 *
 * Both files are read through zlib, which passes raw files through
 * unchanged; the gzip magic is sniffed first only so that errors can say
 * whether a damaged gzip stream or a wrong raw file is to blame.
 *
 * The class count is fixed at 10, and labels of 10 or more are rejected:
 * every MNIST-style set has 10 classes, so a larger label means a wrong
 * or damaged file, and a fixed count keeps a small test file that lacks
 * some digits consistent with its training set. */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zlib.h>

#include "prunebench/data.h"

#define IDX_MAGIC_IMAGES 0x00000803u
#define IDX_MAGIC_LABELS 0x00000801u
#define IDX_CLASSES 10
#define IDX_MAX_SIDE 65535u

/* Payload buffers start at this size and double, so a header claiming
 * absurd counts gives a "truncated" error instead of a huge allocation. */
#define IDX_FIRST_CHUNK ((size_t)1 << 24)

typedef struct idx_reader {
	const char *path;
	gzFile gz;
	int gzipped;
	int cut;        /* the gzip stream itself ended early */
} idx_reader;

typedef struct idx_header {
	uint32_t magic;
	uint32_t dims[3];
} idx_header;

static int reader_open(idx_reader *r, const char *path, pb_error *err)
{
	unsigned char magic[2];
	struct stat st;
	size_t got;
	FILE *f;

	memset(r, 0, sizeof *r);
	r->path = path;
	f = fopen(path, "rb");
	if (!f)
		return pb_error_set(err, PB_EIO, "%s: cannot open: %s", path,
				    strerror(errno));
	if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
		fclose(f);
		return pb_error_set(err, PB_EIO, "%s: is a folder, not an IDX "
				    "file", path);
	}
	got = fread(magic, 1, sizeof magic, f);
	fclose(f);
	r->gzipped = got == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
	r->gz = gzopen(path, "rb");
	if (!r->gz)
		return pb_error_set(err, PB_EIO, "%s: cannot open: %s", path,
				    errno ? strerror(errno) : "out of memory");
	gzbuffer(r->gz, 1u << 17);
	return 0;
}

static void reader_close(idx_reader *r)
{
	if (r->gz)
		gzclose(r->gz);
	r->gz = NULL;
}

/* Reads up to len bytes; *got < len only at the end of the data. */
static int reader_read(idx_reader *r, void *buf, size_t len, size_t *got,
		       pb_error *err)
{
	unsigned char *p = buf;
	int zerr;

	*got = 0;
	while (*got < len) {
		size_t want = len - *got;
		int n;

		if (want > (size_t)1 << 30)
			want = (size_t)1 << 30;
		n = gzread(r->gz, p + *got, (unsigned)want);
		if (n < 0) {
			const char *msg = gzerror(r->gz, &zerr);
			if (zerr == Z_ERRNO)
				return pb_error_set(err, PB_EIO, "%s: read "
						    "error: %s", r->path,
						    strerror(errno));
			return pb_error_set(err, PB_EFORMAT, "%s: corrupt gzip "
					    "data (zlib: %s): the file is "
					    "damaged; download it again",
					    r->path, msg);
		}
		if (n == 0)
			break;
		*got += (size_t)n;
	}
	if (*got < len && r->gzipped) {
		gzerror(r->gz, &zerr);
		r->cut = zerr == Z_BUF_ERROR;
	}
	return 0;
}

static uint32_t be32(const unsigned char *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
	       (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

static const char *cut_note(const idx_reader *r)
{
	return r->cut ? " (the gzip stream ends early)" : "";
}

/* Explains a wrong magic number as precisely as the bytes allow. */
static int bad_magic(const idx_reader *r, uint32_t magic, uint32_t want,
		     const char *what, pb_error *err)
{
	const uint32_t other = want == IDX_MAGIC_IMAGES ? IDX_MAGIC_LABELS
							: IDX_MAGIC_IMAGES;
	const char *hint;

	if (magic == other)
		hint = want == IDX_MAGIC_IMAGES
		       ? "this is a label file; are the image and label "
			 "files swapped?"
		       : "this is an image file; are the image and label "
			 "files swapped?";
	else if ((magic >> 16) == 0 && (magic & 0xff) == (want & 0xff))
		hint = "the elements are not unsigned bytes (type 0x08), "
		       "which is all MNIST-style data uses";
	else if (!r->gzipped)
		hint = "check that this is the right file, and download it "
		       "again if it is damaged";
	else
		hint = "the gzip file holds something else; check that this "
		       "is the right file";
	return pb_error_set(err, PB_EFORMAT, "%s: not an IDX %s file (magic "
			    "0x%08x, expected 0x%08x): %s", r->path, what,
			    magic, want, hint);
}

static int read_header(idx_reader *r, uint32_t want, const char *what,
		       idx_header *h, pb_error *err)
{
	const int ndims = (int)(want & 0xff);
	const size_t len = 4 + 4 * (size_t)ndims;
	unsigned char buf[16];
	size_t got;
	int rc;

	rc = reader_read(r, buf, 4, &got, err);
	if (rc)
		return rc;
	if (got < 4)
		return pb_error_set(err, PB_EFORMAT, "%s: only %zu bytes%s, "
				    "too short to be an IDX %s file", r->path,
				    got, cut_note(r), what);
	h->magic = be32(buf);
	if (h->magic != want)
		return bad_magic(r, h->magic, want, what, err);
	rc = reader_read(r, buf + 4, len - 4, &got, err);
	if (rc)
		return rc;
	if (got < len - 4)
		return pb_error_set(err, PB_EFORMAT, "%s: truncated IDX header "
				    "(%zu of %zu bytes)%s: download the file "
				    "again", r->path, 4 + got, len,
				    cut_note(r));
	for (int i = 0; i < ndims; i++)
		h->dims[i] = be32(buf + 4 + 4 * i);
	return 0;
}

static int check_dims(const idx_reader *img, const idx_header *ih,
		      const idx_reader *lab, const idx_header *lh,
		      pb_error *err)
{
	if (ih->dims[0] == 0 || ih->dims[0] > INT_MAX)
		return pb_error_set(err, PB_EFORMAT, "%s: header says %u "
				    "images; expected 1..%d", img->path,
				    ih->dims[0], INT_MAX);
	if (ih->dims[1] == 0 || ih->dims[2] == 0 ||
	    ih->dims[1] > IDX_MAX_SIDE || ih->dims[2] > IDX_MAX_SIDE)
		return pb_error_set(err, PB_EFORMAT, "%s: header says images "
				    "of %ux%u; each side must be 1..%u",
				    img->path, ih->dims[1], ih->dims[2],
				    IDX_MAX_SIDE);
	if (ih->dims[0] != lh->dims[0])
		return pb_error_set(err, PB_EMISMATCH, "%s holds %u images but "
				    "%s holds %u labels: the two files do not "
				    "belong together", img->path, ih->dims[0],
				    lab->path, lh->dims[0]);
	return 0;
}

/* Reads exactly want bytes of payload into a new buffer. *got reports how
 * many were there when the file is short (the buffer is then freed). */
static int read_payload(idx_reader *r, size_t want, unsigned char **out,
			size_t *got, pb_error *err)
{
	size_t cap = want < IDX_FIRST_CHUNK ? want : IDX_FIRST_CHUNK;
	unsigned char *buf = malloc(cap), *grown, extra;
	size_t n;
	int rc;

	*out = NULL;
	*got = 0;
	if (!buf)
		return pb_error_set(err, PB_ENOMEM, "%s: out of memory",
				    r->path);
	for (;;) {
		rc = reader_read(r, buf + *got, cap - *got, &n, err);
		if (rc)
			goto fail;
		*got += n;
		if (*got < cap || cap == want)
			break;
		cap = cap > want / 2 ? want : cap * 2;
		grown = realloc(buf, cap);
		if (!grown) {
			rc = pb_error_set(err, PB_ENOMEM, "%s: out of memory "
					  "(%zu MiB)", r->path, cap >> 20);
			goto fail;
		}
		buf = grown;
	}
	if (*got < want) {
		free(buf);
		return 0;
	}
	rc = reader_read(r, &extra, 1, &n, err);
	if (rc)
		goto fail;
	if (n)
		rc = pb_error_set(err, PB_EFORMAT, "%s: more data than the "
				  "header announces (%zu bytes expected): the "
				  "header is wrong or the file damaged",
				  r->path, want);
	else if (r->cut)
		rc = pb_error_set(err, PB_EFORMAT, "%s: truncated: the gzip "
				  "stream ends before its trailer; download "
				  "the file again", r->path);
	if (rc)
		goto fail;
	*out = buf;
	return 0;
fail:
	free(buf);
	return rc;
}

static int read_labels(idx_reader *r, size_t n, unsigned char **labels,
		       pb_error *err)
{
	size_t got;
	int rc = read_payload(r, n, labels, &got, err);

	if (rc)
		return rc;
	if (!*labels)
		return pb_error_set(err, PB_EFORMAT, "%s: truncated: header "
				    "says %zu labels, file holds %zu%s: "
				    "download it again", r->path, n, got,
				    cut_note(r));
	for (size_t i = 0; i < n; i++) {
		if ((*labels)[i] >= IDX_CLASSES) {
			rc = pb_error_set(err, PB_EFORMAT, "%s: label %d of "
					  "sample %zu is out of range 0..%d: "
					  "MNIST-style data has %d classes; "
					  "is this the right labels file?",
					  r->path, (*labels)[i], i,
					  IDX_CLASSES - 1, IDX_CLASSES);
			free(*labels);
			*labels = NULL;
			return rc;
		}
	}
	return 0;
}

static int read_pixels(idx_reader *r, const idx_header *h,
		       unsigned char **pixels, pb_error *err)
{
	const size_t want = (size_t)h->dims[0] * h->dims[1] * h->dims[2];
	size_t got;
	int rc = read_payload(r, want, pixels, &got, err);

	if (rc)
		return rc;
	if (!*pixels)
		return pb_error_set(err, PB_EFORMAT, "%s: truncated: header "
				    "says %u images of %ux%u, file holds %zu "
				    "bytes of pixels (expected %zu)%s: "
				    "download it again", r->path, h->dims[0],
				    h->dims[1],
				    h->dims[2], got, want, cut_note(r));
	return 0;
}

static int fill_dataset(pb_dataset *out, const idx_header *h,
			const unsigned char *pixels,
			const unsigned char *labels, pb_error *err)
{
	size_t total;
	int rc = pb_dataset_alloc(out, (int)h->dims[0], 1, (int)h->dims[1],
				  (int)h->dims[2], IDX_CLASSES, err);

	if (rc)
		return rc;
	total = (size_t)out->n * out->h * out->w;
	#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < total; i++)
		out->x[i] = pixels[i] / 255.0f;
	memcpy(out->y, labels, (size_t)out->n);
	return 0;
}

int pb_idx_load(pb_dataset *out, const char *images_path,
		const char *labels_path, pb_error *err)
{
	idx_reader img = { 0 }, lab = { 0 };
	idx_header ih = { 0 }, lh = { 0 };
	unsigned char *labels = NULL, *pixels = NULL;
	int rc;

	memset(out, 0, sizeof *out);
	/* Headers first, so a missing or mismatched file is reported before
	 * tens of megabytes are decompressed. */
	rc = reader_open(&img, images_path, err);
	if (!rc)
		rc = reader_open(&lab, labels_path, err);
	if (!rc)
		rc = read_header(&img, IDX_MAGIC_IMAGES, "image", &ih, err);
	if (!rc)
		rc = read_header(&lab, IDX_MAGIC_LABELS, "label", &lh, err);
	if (!rc)
		rc = check_dims(&img, &ih, &lab, &lh, err);
	if (!rc)
		rc = read_labels(&lab, ih.dims[0], &labels, err);
	if (!rc)
		rc = read_pixels(&img, &ih, &pixels, err);
	if (!rc)
		rc = fill_dataset(out, &ih, pixels, labels, err);
	reader_close(&img);
	reader_close(&lab);
	free(labels);
	free(pixels);
	return rc;
}
