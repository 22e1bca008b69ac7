/* Checkpoints: a bitwise round trip, the byte layout promised in
 * checkpoint.h (read back here by hand, so the format stays portable), a
 * clear message naming the file for every way a file can be wrong with the
 * model untouched, and replacement of an existing file by rename. */
#include "testutil.h"

#include <dirent.h>
#include <sys/stat.h>
#include <zlib.h>

#include "prunebench/prunebench.h"

#define NET_HEAD "[model]\nname = ck\ninput = 3x8x8\nclasses = 5\n"
#define NET_TAIL \
	"[relu1]\ntype = relu\n[pool1]\ntype = maxpool\nkernel = 2\n" \
	"[conv2]\ntype = conv\nout = 6\nkernel = 3\npad = 1\nbias = no\n" \
	"[bn2]\ntype = bn\n[relu2]\ntype = relu\n" \
	"[gap]\ntype = avgpool\nglobal = yes\n[flat]\ntype = flatten\n" \
	"[fc]\ntype = linear\nout = 5\n"

/* conv1 w,b; bn1 x4; conv2 w; bn2 x4; fc w,b. */
#define NET_TENSORS 13
static const char net[] = NET_HEAD
	"[conv1]\ntype = conv\nout = 8\nkernel = 3\npad = 1\n"
	"[bn1]\ntype = bn\n" NET_TAIL;
/* conv1 pruned to 6 channels: the saved file no longer fits. */
static const char pruned[] = NET_HEAD
	"[conv1]\ntype = conv\nout = 6\nkernel = 3\npad = 1\n"
	"[bn1]\ntype = bn\n" NET_TAIL;
/* Same shapes, bn1 renamed. */
static const char renamed[] = NET_HEAD
	"[conv1]\ntype = conv\nout = 8\nkernel = 3\npad = 1\n"
	"[norm1]\ntype = bn\n" NET_TAIL;
/* conv1 without bias: one tensor fewer. */
static const char no_bias[] = NET_HEAD
	"[conv1]\ntype = conv\nout = 8\nkernel = 3\npad = 1\nbias = no\n"
	"[bn1]\ntype = bn\n" NET_TAIL;

/* A model with seeded weights and BN state far from its (1, 0, 0, 1)
 * initial values, so a loader that skipped any of it would be caught. */
static pb_model *make_model(const char *text, unsigned long seed)
{
	pb_model *m = NULL;
	pb_error err = { 0 };
	gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);

	if (pb_model_parse(&m, text, "ck.ini", &err))
		fail_msg("%s", err.msg);
	gsl_rng_set(rng, seed);
	if (pb_model_init_params(m, rng, &err))
		fail_msg("%s", err.msg);
	gsl_rng_free(rng);
	for (int i = 0; i < pb_model_n_params(m); i++) {
		pb_param *p = pb_model_param(m, i);
		if (p->kind == PB_PARAM_WEIGHT)
			continue;
		tu_fill_uniform(p->data, p->n, 0.1f, 2.0f, seed * 100 + i);
	}
	return m;
}

static void assert_same_state(pb_model *a, pb_model *b)
{
	assert_int_equal(pb_model_n_params(a), pb_model_n_params(b));
	for (int i = 0; i < pb_model_n_params(a); i++) {
		pb_param *p = pb_model_param(a, i), *q = pb_model_param(b, i);
		assert_string_equal(p->name, q->name);
		assert_int_equal(p->n, q->n);
		assert_memory_equal(p->data, q->data, p->n * sizeof(float));
	}
}

/* Every state float of m, concatenated. */
static float *snapshot(pb_model *m, size_t *n)
{
	size_t off = 0;
	float *s;

	*n = 0;
	for (int i = 0; i < pb_model_n_params(m); i++)
		*n += pb_model_param(m, i)->n;
	s = malloc(*n * sizeof *s);
	assert_non_null(s);
	for (int i = 0; i < pb_model_n_params(m); i++) {
		pb_param *p = pb_model_param(m, i);
		memcpy(s + off, p->data, p->n * sizeof *s);
		off += p->n;
	}
	return s;
}

static void spit(const char *path, const void *d, size_t n)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	if (n)
		assert_int_equal(fwrite(d, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

/* ---- fixture: a saved checkpoint of `net` in a fresh folder ------------- */

typedef struct fixture {
	char *dir;
	char path[512];     /* the good checkpoint */
	char bad[512];      /* where broken copies go */
	unsigned char *bytes;
	size_t n;
} fixture;

static int setup(void **state)
{
	fixture *fx = calloc(1, sizeof *fx);
	pb_model *m = make_model(net, 1);
	pb_error err = { 0 };

	assert_non_null(fx);
	fx->dir = tu_temp_dir();
	snprintf(fx->path, sizeof fx->path, "%s/m.ckpt", fx->dir);
	snprintf(fx->bad, sizeof fx->bad, "%s/bad.ckpt", fx->dir);
	if (pb_checkpoint_save(m, fx->path, &err))
		fail_msg("%s", err.msg);
	fx->bytes = tu_slurp(fx->path, &fx->n);
	pb_model_free(m);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	fixture *fx = *state;
	DIR *d = opendir(fx->dir);
	struct dirent *e;
	char p[1024];

	while (d && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof p, "%s/%s", fx->dir, e->d_name);
		remove(p);
	}
	if (d)
		closedir(d);
	rmdir(fx->dir);
	free(fx->dir);
	free(fx->bytes);
	free(fx);
	return 0;
}

/* Entries in dir, and how many of them look like temporary files. */
static int count_entries(const char *dir, int *tmp_files)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	*tmp_files = 0;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		n++;
		if (strstr(e->d_name, ".tmp"))
			(*tmp_files)++;
	}
	closedir(d);
	return n;
}

/* Loads file (already written to path) into a fresh model built from
 * model_text and expects code, every needle in the message (which must
 * name the file), and the model unchanged. */
static void expect_fail_at(const char *path, const char *model_text,
			   int code, const char *const *needles)
{
	pb_model *m = make_model(model_text, 7);
	pb_error err = { 0 };
	size_t n0, n1;
	float *before = snapshot(m, &n0), *after;
	int rc = pb_checkpoint_load(m, path, &err);

	if (rc != code)
		fail_msg("load returned %d (%s), expected %d", rc, err.msg, code);
	assert_int_equal(err.code, code);
	if (!strstr(err.msg, path))
		fail_msg("message '%s' does not name %s", err.msg, path);
	for (; *needles; needles++)
		if (!strstr(err.msg, *needles))
			fail_msg("message '%s' lacks '%s'", err.msg, *needles);
	after = snapshot(m, &n1);
	assert_int_equal(n0, n1);
	assert_memory_equal(before, after, n0 * sizeof *before);
	free(before);
	free(after);
	pb_model_free(m);
}

static void expect_fail(fixture *fx, const void *bytes, size_t n,
			const char *model_text, int code, const char *needle)
{
	const char *needles[] = { needle, NULL };

	spit(fx->bad, bytes, n);
	expect_fail_at(fx->bad, model_text, code, needles);
}

/* ---- round trip and format ---------------------------------------------- */

static void test_round_trip(void **state)
{
	fixture *fx = *state;
	pb_model *a = make_model(net, 1), *b = make_model(net, 2);
	pb_error err = { 0 };

	/* Different seeds: b starts out different in every tensor. */
	for (int i = 0; i < pb_model_n_params(a); i++)
		assert_memory_not_equal(pb_model_param(a, i)->data,
					pb_model_param(b, i)->data,
					pb_model_param(a, i)->n * sizeof(float));
	if (pb_checkpoint_load(b, fx->path, &err))
		fail_msg("%s", err.msg);
	assert_same_state(a, b);
	pb_model_free(a);
	pb_model_free(b);
}

/* Reads one tensor record at *off and checks it against p. */
static void check_record(const fixture *fx, size_t *off, const pb_param *p)
{
	const unsigned char *b = fx->bytes;
	size_t o = *off, len = tu_le32(b + o);

	assert_int_equal(len, strlen(p->name));
	assert_memory_equal(b + o + 4, p->name, len);
	o += 4 + len;
	assert_int_equal(tu_le32(b + o), (uint32_t)p->kind);
	assert_int_equal(tu_le32(b + o + 4), (uint32_t)p->ndim);
	o += 8;
	for (int d = 0; d < p->ndim; d++, o += 4)
		assert_int_equal(tu_le32(b + o), (uint32_t)p->shape[d]);
	for (size_t k = 0; k < p->n; k++, o += 4) {
		uint32_t bits;
		memcpy(&bits, &p->data[k], 4);
		assert_int_equal(tu_le32(b + o), bits);
	}
	*off = o;
}

/* The layout of checkpoint.h, decoded byte by byte: any machine writes
 * the same bytes. */
static void test_layout(void **state)
{
	fixture *fx = *state;
	const unsigned char *b = fx->bytes;
	pb_model *m = make_model(net, 1);
	size_t off;

	assert_memory_equal(b, "PBCKPT01", 8);
	/* Every tensor float32, no masks: version 2's bytes, which builds
	 * before version 3 read. */
	assert_int_equal(tu_le32(b + 8), 2);
	assert_int_equal(tu_le32(b + 12), NET_TENSORS);
	assert_int_equal(pb_model_n_params(m), NET_TENSORS);
	assert_int_equal(tu_le32(b + 16), 2);
	assert_memory_equal(b + 20, "ck", 2);
	/* Version 2: the tag's length (no tag) after the model name. */
	assert_int_equal(tu_le32(b + 22), 0);
	off = 26;
	for (int i = 0; i < pb_model_n_params(m); i++)
		check_record(fx, &off, pb_model_param(m, i));
	assert_int_equal(off + 4, fx->n);
	assert_int_equal(tu_le32(b + off),
			 (uint32_t)crc32(crc32(0L, Z_NULL, 0), b, (uInt)off));
	pb_model_free(m);
}

/* A version-1 file (no tag field) still loads; a tag is stored and a
 * file written for another tag is refused. */
static void test_version1_and_tags(void **state)
{
	fixture *fx = *state;
	pb_model *a = make_model(net, 1), *b = make_model(net, 2);
	unsigned char *v1 = malloc(fx->n);
	pb_error err = { 0 };
	size_t n = fx->n - 4;

	memcpy(v1, fx->bytes, 22);
	memcpy(v1 + 22, fx->bytes + 26, fx->n - 26);
	tu_put_le32(v1 + 8, 1);
	tu_put_le32(v1 + n - 4, (uint32_t)crc32(crc32(0L, Z_NULL, 0), v1,
						(uInt)(n - 4)));
	spit(fx->bad, v1, n);
	if (pb_checkpoint_load(b, fx->bad, &err))
		fail_msg("%s", err.msg);
	assert_same_state(a, b);

	if (pb_checkpoint_save_tag(a, fx->bad, "dense key=1 seed=1", &err))
		fail_msg("%s", err.msg);
	assert_int_equal(pb_checkpoint_load_tag(b, fx->bad, "dense key=1 "
						"seed=1", &err), 0);
	assert_int_equal(pb_checkpoint_load(b, fx->bad, &err), 0);
	assert_int_equal(pb_checkpoint_load_tag(b, fx->bad, "dense key=1 "
						"seed=2", &err), PB_EMISMATCH);
	assert_non_null(strstr(err.msg, "written for 'dense key=1 seed=1', "
				       "not for 'dense key=1 seed=2'"));
	/* An untagged file is refused where a tag is expected. */
	assert_int_equal(pb_checkpoint_load_tag(b, fx->path, "x", &err),
			 PB_EMISMATCH);
	assert_non_null(strstr(err.msg, "(no tag)"));
	free(v1);
	pb_model_free(a);
	pb_model_free(b);
}

/* ---- broken files ------------------------------------------------------- */

static void test_missing_file(void **state)
{
	fixture *fx = *state;
	const char *needles[] = { "cannot open", "No such file", NULL };
	char path[600];

	snprintf(path, sizeof path, "%s/nope.ckpt", fx->dir);
	expect_fail_at(path, net, PB_EIO, needles);
}

static void test_empty_file(void **state)
{
	fixture *fx = *state;

	expect_fail(fx, "", 0, net, PB_EFORMAT, "too short");
	expect_fail(fx, "PBCK", 4, net, PB_EFORMAT, "too short");
}

static void test_bad_magic(void **state)
{
	fixture *fx = *state;
	unsigned char *b = malloc(fx->n);

	memcpy(b, fx->bytes, fx->n);
	b[3] = 'Q';
	expect_fail(fx, b, fx->n, net, PB_EFORMAT,
		    "not a prunebench checkpoint");
	/* An INI file given where the checkpoint belongs. */
	expect_fail(fx, net, strlen(net), net, PB_EFORMAT,
		    "not a prunebench checkpoint");
	free(b);
}

static void test_bad_version(void **state)
{
	fixture *fx = *state;
	const char *needles[] = { "unsupported checkpoint version 258",
				  "versions 1 to 3", NULL };
	unsigned char *b = malloc(fx->n);

	memcpy(b, fx->bytes, fx->n);
	tu_put_le32(b + 8, 258);
	spit(fx->bad, b, fx->n);
	expect_fail_at(fx->bad, net, PB_EFORMAT, needles);
	free(b);
}

static void test_truncated(void **state)
{
	fixture *fx = *state;
	/* Inside the header, the model name, the first tensor's name, its
	 * data, the middle, the last tensor, and the CRC. */
	size_t cuts[] = { 10, 14, 19, 21, 25, 30, 60, fx->n / 2, fx->n - 8,
			  fx->n - 4, fx->n - 1 };

	for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
		expect_fail(fx, fx->bytes, cuts[i], net, PB_EFORMAT,
			    "truncated");
}

/* A dimension corrupted into a huge number must read as "truncated", not
 * overflow the size arithmetic. */
static void test_huge_dims(void **state)
{
	fixture *fx = *state;
	unsigned char *b = malloc(fx->n);
	/* First record: name "conv1.weight" at 22, then kind, ndim, dims. */
	size_t dims = 22 + 4 + strlen("conv1.weight") + 8;

	memcpy(b, fx->bytes, fx->n);
	for (int d = 0; d < 4; d++)
		tu_put_le32(b + dims + 4 * d, 0xffffffffu);
	expect_fail(fx, b, fx->n, net, PB_EFORMAT, "truncated");
	memcpy(b, fx->bytes, fx->n);
	tu_put_le32(b + 16, 0xfffffff0u);   /* model name length */
	expect_fail(fx, b, fx->n, net, PB_EFORMAT, "truncated");
	free(b);
}

static void test_flipped_byte(void **state)
{
	fixture *fx = *state;
	unsigned char *b = malloc(fx->n);
	/* A byte of conv1.weight's data, past name, kind, ndim and dims. */
	size_t data = 22 + 4 + strlen("conv1.weight") + 8 + 16;
	char stored[64], computed[64];
	const char *needles[] = { "corrupt: CRC32 mismatch", stored, computed,
				  NULL };
	uint32_t crc;

	memcpy(b, fx->bytes, fx->n);
	b[data + 5] ^= 0x01;
	crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), b, (uInt)(fx->n - 4));
	snprintf(stored, sizeof stored, "stored 0x%08x",
		 (unsigned)tu_le32(b + fx->n - 4));
	snprintf(computed, sizeof computed, "computed 0x%08x", (unsigned)crc);
	spit(fx->bad, b, fx->n);
	expect_fail_at(fx->bad, net, PB_EFORMAT, needles);
	/* And in the last byte of data, next to the CRC. */
	memcpy(b, fx->bytes, fx->n);
	b[fx->n - 5] ^= 0x80;
	expect_fail(fx, b, fx->n, net, PB_EFORMAT, "CRC32 mismatch");
	free(b);
}

static void test_trailing_garbage(void **state)
{
	fixture *fx = *state;
	unsigned char *b = malloc(fx->n + 3);

	memcpy(b, fx->bytes, fx->n);
	memcpy(b + fx->n, "xyz", 3);
	expect_fail(fx, b, fx->n + 3, net, PB_EFORMAT,
		    "3 bytes of trailing garbage");
	/* A checkpoint saved twice into one file. */
	b = realloc(b, 2 * fx->n);
	memcpy(b + fx->n, fx->bytes, fx->n);
	expect_fail(fx, b, 2 * fx->n, net, PB_EFORMAT, "trailing garbage");
	free(b);
}

/* ---- files that do not fit the model ------------------------------------ */

static void test_other_shape(void **state)
{
	fixture *fx = *state;
	const char *needles[] = {
		"conv1.weight: file has 8x3x3x3, model has 6x3x3x3",
		"pruned model", NULL };

	expect_fail_at(fx->path, pruned, PB_EMISMATCH, needles);
}

static void test_other_name(void **state)
{
	fixture *fx = *state;
	const char *needles[] = {
		"tensor 2 is 'bn1.weight' in the file but model 'ck' expects "
		"'norm1.weight'", NULL };

	expect_fail_at(fx->path, renamed, PB_EMISMATCH, needles);
}

/* A file with fewer tensors than the model (saved from conv1 without its
 * bias) is refused by count. */
static void test_other_count(void **state)
{
	fixture *fx = *state;
	const char *needles[] = { "12 tensors", "has 13", NULL };
	pb_model *small = make_model(no_bias, 1);
	pb_error err = { 0 };

	if (pb_checkpoint_save(small, fx->bad, &err))
		fail_msg("%s", err.msg);
	pb_model_free(small);
	expect_fail_at(fx->bad, net, PB_EMISMATCH, needles);
}

/* ---- saving ------------------------------------------------------------- */

/* Saving over a checkpoint swaps in a new file (a new inode) by rename:
 * a reader holding the old one still sees all of it, and no temporary
 * file is left behind. */
static void test_atomic_replace(void **state)
{
	fixture *fx = *state;
	pb_model *m = make_model(net, 3), *back = make_model(net, 4);
	pb_error err = { 0 };
	struct stat before, after;
	unsigned char *old = malloc(fx->n);
	FILE *reader = fopen(fx->path, "rb");
	int tmp;

	assert_non_null(reader);
	assert_int_equal(stat(fx->path, &before), 0);
	if (pb_checkpoint_save(m, fx->path, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(stat(fx->path, &after), 0);
	assert_int_not_equal(before.st_ino, after.st_ino);
	assert_int_equal(fread(old, 1, fx->n, reader), fx->n);
	assert_memory_equal(old, fx->bytes, fx->n);
	fclose(reader);
	assert_int_equal(count_entries(fx->dir, &tmp), 1);
	assert_int_equal(tmp, 0);
	if (pb_checkpoint_load(back, fx->path, &err))
		fail_msg("%s", err.msg);
	assert_same_state(m, back);
	free(old);
	pb_model_free(m);
	pb_model_free(back);
}

static void test_unwritable(void **state)
{
	fixture *fx = *state;
	pb_model *m = make_model(net, 3);
	pb_error err = { 0 };
	char path[600];
	int tmp;

	snprintf(path, sizeof path, "%s/no/such/dir/x.ckpt", fx->dir);
	assert_int_equal(pb_checkpoint_save(m, path, &err), PB_EIO);
	assert_non_null(strstr(err.msg, path));
	assert_non_null(strstr(err.msg, "No such file"));
	/* A failed save leaves the folder as it was. */
	assert_int_equal(count_entries(fx->dir, &tmp), 1);
	pb_model_free(m);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_round_trip),
		T(test_layout),
		T(test_version1_and_tags),
		T(test_missing_file),
		T(test_empty_file),
		T(test_bad_magic),
		T(test_bad_version),
		T(test_truncated),
		T(test_huge_dims),
		T(test_flipped_byte),
		T(test_trailing_garbage),
		T(test_other_shape),
		T(test_other_name),
		T(test_other_count),
		T(test_atomic_replace),
		T(test_unwritable),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
