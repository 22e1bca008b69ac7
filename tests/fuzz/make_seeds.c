/* Writes the generated seeds of the binary harnesses into
 * CORPUS/{idx,cifar10,checkpoint}/gen-*: tiny IDX pairs (raw, gzip-ed
 * here and by the harness, cut), CIFAR-10 records, and checkpoints of
 * the checkpoint harness's model saved by prunebench itself (with and
 * without masks and a tag), each behind the flag bytes its harness reads
 * (see fuzz_idx.c, fuzz_cifar10.c, fuzz_checkpoint.c).
 *
 *   make fuzz-seeds          (runs tests/fuzz/make_seeds SRCDIR/tests/fuzz/corpus)
 *
 * The output is committed; run it again when a harness's input layout or
 * the checkpoint format changes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <gsl/gsl_rng.h>
#include <zlib.h>

#include "fuzz_common.h"
#include "nn/mask.h"
#include "prunebench/checkpoint.h"
#include "prunebench/model.h"

static const char *corpus;

static void die(const char *what)
{
	fprintf(stderr, "make_seeds: %s\n", what);
	exit(1);
}

/* CORPUS/harness/name = flags (n_flags bytes) + a + b. */
static void put(const char *harness, const char *name, const uint8_t *flags,
		size_t n_flags, const void *a, size_t na, const void *b,
		size_t nb)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", corpus, harness);
	if (mkdir(path, 0777) && errno != EEXIST)
		die(path);
	snprintf(path, sizeof path, "%s/%s/%s", corpus, harness, name);
	f = fopen(path, "wb");
	if (!f || fwrite(flags, 1, n_flags, f) != n_flags ||
	    (na && fwrite(a, 1, na, f) != na) ||
	    (nb && fwrite(b, 1, nb, f) != nb) || fclose(f))
		die(path);
	printf("%s\n", path);
}

/* ---- IDX ------------------------------------------------------------------ */

static size_t be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
	return 4;
}

static size_t gz(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
	z_stream z;

	memset(&z, 0, sizeof z);
	if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY))
		die("deflateInit2");
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)n;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END)
		die("deflate");
	n = z.total_out;
	deflateEnd(&z);
	return n;
}

static void idx_seeds(void)
{
	uint8_t img[64], lab[16], zimg[256], zlab[256], head[3];
	size_t ni = 0, nl = 0, nzi, nzl;

	/* Three 4x4 images and their labels. */
	ni += be32(img + ni, 0x00000803);
	ni += be32(img + ni, 3);
	ni += be32(img + ni, 4);
	ni += be32(img + ni, 4);
	for (int i = 0; i < 48; i++)
		img[ni++] = (uint8_t)(i * 37);
	nl += be32(lab + nl, 0x00000801);
	nl += be32(lab + nl, 3);
	lab[nl++] = 1;
	lab[nl++] = 9;
	lab[nl++] = 0;
	nzi = gz(img, ni, zimg, sizeof zimg);
	nzl = gz(lab, nl, zlab, sizeof zlab);

	head[1] = (uint8_t)nl;
	head[2] = 0;
	head[0] = 0;
	put("idx", "gen-raw", head, 3, lab, nl, img, ni);
	head[0] = 3;
	put("idx", "gen-gzip-by-harness", head, 3, lab, nl, img, ni);
	head[0] = 3 | 4 | (5 << 3);
	put("idx", "gen-gzip-cut", head, 3, lab, nl, img, ni);
	head[0] = 0;
	head[1] = (uint8_t)nzl;
	put("idx", "gen-gzip-files", head, 3, zlab, nzl, zimg, nzi);
	/* The files swapped: each reader meets the other's magic. */
	head[1] = (uint8_t)ni;
	put("idx", "gen-swapped", head, 3, img, ni, lab, nl);
	/* A label of 10. */
	lab[nl - 1] = 10;
	head[1] = (uint8_t)nl;
	put("idx", "gen-bad-label", head, 3, lab, nl, img, ni);
}

/* ---- CIFAR-10 --------------------------------------------------------------- */

static void cifar_seeds(void)
{
	static uint8_t rec[3 * 3073 + 1];
	uint8_t flags;

	for (int r = 0; r < 3; r++) {
		rec[r * 3073] = (uint8_t)(3 + 3 * r);
		for (int k = 1; k < 3073; k++)
			rec[r * 3073 + k] = (uint8_t)(k * 13 + r);
	}
	flags = 0;
	put("cifar10", "gen-one-record", &flags, 1, rec, 3073, NULL, 0);
	flags = 1 | 4;
	put("cifar10", "gen-two-files", &flags, 1, rec, 2 * 3073, NULL, 0);
	flags = 2 | 4;
	put("cifar10", "gen-three-files", &flags, 1, rec, 3 * 3073, NULL, 0);
	/* CIFAR-100's records are one byte longer. */
	flags = 0;
	put("cifar10", "gen-cifar100-size", &flags, 1, rec, 3074, NULL, 0);
	rec[3073] = 10;
	flags = 4;
	put("cifar10", "gen-bad-label", &flags, 1, rec, 2 * 3073 + 5, NULL, 0);
}

/* ---- checkpoints ------------------------------------------------------------ */

static void put_file(const char *name, uint8_t flags, const char *path)
{
	uint8_t buf[1 << 16];
	FILE *f = fopen(path, "rb");
	size_t n;

	if (!f)
		die(path);
	n = fread(buf, 1, sizeof buf, f);
	fclose(f);
	put("checkpoint", name, &flags, 1, buf, n, NULL, 0);
}

static void checkpoint_seeds(void)
{
	char path[4096];
	pb_model *m;
	pb_error err = { 0 };
	gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
	float *mask;

	snprintf(path, sizeof path, "%s/seed.ckpt", fuzz_dir());
	if (pb_model_parse(&m, fuzz_checkpoint_model, "fuzz-model.ini", &err))
		die(err.msg);
	gsl_rng_set(rng, 7);
	if (pb_model_init_params(m, rng, &err) ||
	    pb_checkpoint_save(m, path, &err))
		die(err.msg);
	put_file("gen-plain", 0, path);
	put_file("gen-plain-fixcrc", 1, path);
	if (pb_checkpoint_save_tag(m, path, "fuzz-key", &err))
		die(err.msg);
	put_file("gen-tag", 2, path);
	put_file("gen-tag-fixcrc", 3, path);
	/* Masks on the conv and linear weights, a few weights pruned. */
	mask = pbi_mask_get(m, pb_model_find_param(m, "conv1.weight"), 1);
	mask[0] = mask[5] = mask[17] = 0.0f;
	mask = pbi_mask_get(m, pb_model_find_param(m, "fc.weight"), 1);
	mask[2] = 0.0f;
	pbi_mask_apply(m);
	if (pb_checkpoint_save(m, path, &err))
		die(err.msg);
	put_file("gen-masks", 0, path);
	put_file("gen-masks-fixcrc", 1, path);
	pb_model_free(m);
	gsl_rng_free(rng);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: make_seeds CORPUS_DIR\n");
		return 2;
	}
	corpus = argv[1];
	fuzz_setup();
	idx_seeds();
	cifar_seeds();
	checkpoint_seeds();
	return 0;
}
