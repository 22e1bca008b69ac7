/* Writing checkpoints: a model's state tensors (and masks, and an int8
 * file's activation ranges) encoded into one buffer in the encodings the
 * options ask for (float32, sparse, int8), written atomically, alone or
 * with the model's INI as a pair. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "nn/checkpoint_format.h"
#include "nn/mask.h"
#include "nn/model_impl.h"
#include "prunebench/checkpoint.h"
#include "prunebench/tensor.h"

/* ---- saving -------------------------------------------------------------- */

/* One tensor record as it will be written. */
typedef struct rec {
	const char *name;
	char *owned;               /* name, when made here */
	pb_param_kind kind;
	int ndim;
	const int *shape;
	size_t n, rows;
	const float *data;         /* the values (an int8 tensor's are on the
				      grid of its scales) */
	const float *scales;       /* int8: one per row */
	const float *owner;        /* a mask: its weight's values */
	int enc;
	uint64_t nnz, entries;     /* non-zeros; CSR entries */
	uint64_t payload;
} rec;

static size_t rows_of(int ndim, const int *shape, size_t n)
{
	if (ndim > 1)
		return (size_t)shape[0];
	return n ? 1 : 0;
}

static uint64_t bitmap_bytes(size_t n)
{
	return ((uint64_t)n + 7) / 8;
}

/* The int8 code of value v in a row of scale s: the value is q * s. */
static int8_t code_of(float v, float s)
{
	long q;

	if (!(s > 0.0f))
		return 0;
	q = lrintf(v / s);
	return (int8_t)(q > 127 ? 127 : q < -127 ? -127 : q);
}

static float value_of(int8_t q, float s)
{
	return (float)q * s;
}

/* Non-zeros and CSR entries of a float32 tensor. */
static void count_f32(rec *r)
{
	size_t cols = r->rows ? r->n / r->rows : 0;

	r->nnz = r->entries = 0;
	for (size_t row = 0; row < r->rows; row++) {
		const float *d = r->data + row * cols;
		uint64_t gap = 0;

		for (size_t j = 0; j < cols; j++) {
			if (!is_nonzero_f32(d[j])) {
				gap++;
				continue;
			}
			r->nnz++;
			r->entries += 1 + gap / (CSR_MAX_DIST + 1);
			gap = 0;
		}
	}
}

/* An int8 tensor: its non-zero codes, and a check that every value is
 * on the grid (so the file holds exactly what the model holds). */
static int count_i8(rec *r, pb_error *err)
{
	size_t cols = r->rows ? r->n / r->rows : 0;

	r->nnz = 0;
	for (size_t row = 0; row < r->rows; row++) {
		const float s = r->scales[row];

		if (!isfinite(s) || s < 0.0f)
			return pb_error_set(err, PB_EINVAL, "cannot save %s as "
					    "int8: row %zu has scale %g",
					    r->name, row, (double)s);
		for (size_t j = 0; j < cols; j++) {
			float v = r->data[row * cols + j];
			int8_t q = code_of(v, s);
			float back = value_of(q, s);

			if (memcmp(&back, &v, sizeof v))
				return pb_error_set(err, PB_EINVAL, "cannot "
						    "save %s as int8: %g at "
						    "%zu is not a multiple of "
						    "its row's scale %g; "
						    "quantize the model first "
						    "(pb_quant_weights)",
						    r->name, (double)v,
						    row * cols + j, (double)s);
			r->nnz += q != 0;
		}
	}
	return 0;
}

/* A mask is its weight's non-zeros when every pruned entry is +0.0 and
 * every kept one is not: then the file need not store it. */
static int mask_is_zeros(const rec *r)
{
	for (size_t i = 0; i < r->n; i++)
		if ((r->data[i] != 0.0f) != is_nonzero_f32(r->owner[i]))
			return 0;
	return 1;
}

/* Picks the record's encoding and payload size. */
static int plan_rec(rec *r, int sparse, pb_error *err)
{
	r->rows = rows_of(r->ndim, r->shape, r->n);
	if (r->kind == PB_PARAM_MASK) {
		r->enc = mask_is_zeros(r) ? ENC_MASK_ZEROS : ENC_MASK_BITS;
		r->payload = r->enc == ENC_MASK_ZEROS ? 0 : bitmap_bytes(r->n);
		return 0;
	}
	if (r->scales) {
		uint64_t dense = 4 * (uint64_t)r->rows + r->n;
		uint64_t bitmap;
		int rc = count_i8(r, err);

		if (rc)
			return rc;
		bitmap = 4 * (uint64_t)r->rows + bitmap_bytes(r->n) + r->nnz;
		r->enc = sparse && bitmap < dense ? ENC_I8_BITMAP : ENC_I8;
		r->payload = r->enc == ENC_I8 ? dense : bitmap;
		return 0;
	}
	r->enc = ENC_F32;
	r->payload = 4 * (uint64_t)r->n;
	if (sparse && r->kind != PB_PARAM_ACT_QUANT) {
		uint64_t bitmap, csr;

		count_f32(r);
		bitmap = bitmap_bytes(r->n) + 4 * r->nnz;
		csr = 4 * ((uint64_t)r->rows + 1) + 6 * r->entries;
		if (bitmap < r->payload) {
			r->enc = ENC_F32_BITMAP;
			r->payload = bitmap;
		}
		if (csr < r->payload) {
			r->enc = ENC_F32_CSR;
			r->payload = csr;
		}
	}
	return 0;
}

static uint64_t rec_bytes(const rec *r)
{
	return 4 + strlen(r->name) + 4 + 4 + 4 * (uint64_t)r->ndim +
	       r->payload;
}

static unsigned char *put_bitmap(unsigned char *b, const rec *r,
				 int (*on)(const rec *, size_t))
{
	size_t nb = (size_t)bitmap_bytes(r->n);

	memset(b, 0, nb);
	for (size_t i = 0; i < r->n; i++)
		if (on(r, i))
			b[i / 8] |= (unsigned char)(1u << (i % 8));
	return b + nb;
}

static int f32_on(const rec *r, size_t i)
{
	return is_nonzero_f32(r->data[i]);
}

static int mask_on(const rec *r, size_t i)
{
	return r->data[i] != 0.0f;
}

static int i8_on(const rec *r, size_t i)
{
	size_t cols = r->n / r->rows;

	return code_of(r->data[i], r->scales[i / cols]) != 0;
}

static unsigned char *put_csr(unsigned char *b, const rec *r)
{
	size_t cols = r->rows ? r->n / r->rows : 0;
	unsigned char *offs = b, *e = b + 4 * ((size_t)r->rows + 1);
	uint64_t k = 0;

	for (size_t row = 0; row < r->rows; row++) {
		const float *d = r->data + row * cols;
		uint64_t gap = 0;

		put_u32(offs + 4 * row, (uint32_t)k);
		for (size_t j = 0; j < cols; j++) {
			if (!is_nonzero_f32(d[j])) {
				gap++;
				continue;
			}
			while (gap > CSR_MAX_DIST) {
				put_f32(e, 0.0f);
				put_u16(e + 4, CSR_MAX_DIST);
				e += 6;
				k++;
				gap -= CSR_MAX_DIST + 1;
			}
			put_f32(e, d[j]);
			put_u16(e + 4, (uint32_t)gap);
			e += 6;
			k++;
			gap = 0;
		}
	}
	put_u32(offs + 4 * r->rows, (uint32_t)k);
	return e;
}

static unsigned char *encode_rec(unsigned char *b, const rec *r)
{
	size_t len = strlen(r->name), cols = r->rows ? r->n / r->rows : 0;

	put_u32(b, (uint32_t)len);
	memcpy(b + 4, r->name, len);
	b += 4 + len;
	put_u32(b, (uint32_t)r->kind | (uint32_t)r->enc << ENC_SHIFT);
	put_u32(b + 4, (uint32_t)r->ndim);
	b += 8;
	for (int d = 0; d < r->ndim; d++, b += 4)
		put_u32(b, (uint32_t)r->shape[d]);
	switch (r->enc) {
	case ENC_F32:
		for (size_t i = 0; i < r->n; i++, b += 4)
			put_f32(b, r->data[i]);
		break;
	case ENC_F32_BITMAP:
		b = put_bitmap(b, r, f32_on);
		for (size_t i = 0; i < r->n; i++)
			if (is_nonzero_f32(r->data[i])) {
				put_f32(b, r->data[i]);
				b += 4;
			}
		break;
	case ENC_F32_CSR:
		b = put_csr(b, r);
		break;
	case ENC_MASK_BITS:
		b = put_bitmap(b, r, mask_on);
		break;
	case ENC_MASK_ZEROS:
		break;
	case ENC_I8:
	case ENC_I8_BITMAP:
		for (size_t row = 0; row < r->rows; row++, b += 4)
			put_f32(b, r->scales[row]);
		if (r->enc == ENC_I8_BITMAP)
			b = put_bitmap(b, r, i8_on);
		for (size_t i = 0; i < r->n; i++) {
			int8_t q = code_of(r->data[i], r->scales[i / cols]);

			if (r->enc == ENC_I8 || q)
				*b++ = (unsigned char)q;
		}
		break;
	}
	return b;
}

/* The records of m's file: its tensors, then its masks, then (int8) the
 * activation ranges. */
typedef struct plan {
	rec *r;
	int n, cap;
	float *acts;               /* [lo, hi] pairs of the act records */
} plan;

static void plan_free(plan *p)
{
	for (int i = 0; i < p->n; i++)
		free(p->r[i].owned);
	free(p->r);
	free(p->acts);
}

static const int act_shape[1] = { 2 };

static int plan_model(plan *pl, pb_model *m, const pb_checkpoint_opts *o,
		      pb_error *err)
{
	const pb_quant *q = o->quant;
	int n = pb_model_n_params(m), n_acts = 0, rc;

	if (q && (q->n_params != n || q->n_layers != pb_model_n_layers(m)))
		return pb_error_set(err, PB_EINVAL, "cannot save model '%s' as "
				    "int8: the quantization plan is for another "
				    "model", pb_model_name(m));
	if (q && q->activations) {
		n_acts = q->input.on;
		for (int l = 0; l < q->n_layers; l++)
			n_acts += q->acts[l].on;
	}
	pl->cap = 2 * n + n_acts;
	pl->r = calloc((size_t)(pl->cap ? pl->cap : 1), sizeof *pl->r);
	pl->acts = calloc((size_t)(2 * n_acts + 1), sizeof *pl->acts);
	if (!pl->r || !pl->acts)
		return pb_error_set(err, PB_ENOMEM, "out of memory (checkpoint)");
	for (int i = 0; i < n; i++) {
		const pb_param *p = pb_model_param(m, i);
		rec *r = &pl->r[pl->n++];

		if (p->ndim < 1 || p->ndim > 4)
			return pb_error_set(err, PB_EINVAL, "cannot save tensor "
					    "'%s': it has %d dimensions (1 to 4 "
					    "expected)", p->name, p->ndim);
		*r = (rec){ .name = p->name, .kind = p->kind, .ndim = p->ndim,
			    .shape = p->shape, .n = p->n, .data = p->data,
			    .scales = q ? q->scales[i] : NULL };
	}
	for (int i = 0; i < n && !o->no_masks; i++) {
		pb_param *p = pb_model_param(m, i);
		const float *mk = pbi_mask_get(m, p, 0);
		rec *r;

		if (!mk)
			continue;
		r = &pl->r[pl->n++];
		*r = (rec){ .kind = PB_PARAM_MASK, .ndim = p->ndim,
			    .shape = p->shape, .n = p->n, .data = mk,
			    .owner = p->data };
		if (asprintf(&r->owned, "%s" MASK_SUFFIX, p->name) < 0) {
			r->owned = NULL;
			return pb_error_set(err, PB_ENOMEM, "out of memory "
					    "(masks)");
		}
		r->name = r->owned;
	}
	for (int l = -1, k = 0; n_acts && l < q->n_layers; l++) {
		const pb_act_quant *a = l < 0 ? &q->input : &q->acts[l];
		float *v = pl->acts + 2 * k;
		rec *r;

		if (!a->on)
			continue;
		k++;
		v[0] = a->lo;
		v[1] = a->hi;
		r = &pl->r[pl->n++];
		*r = (rec){ .kind = PB_PARAM_ACT_QUANT, .ndim = 1,
			    .shape = act_shape, .n = 2, .data = v };
		if (asprintf(&r->owned, "%s" ACT_SUFFIX, l < 0 ? ACT_INPUT :
			     pb_model_layer(m, l)->name) < 0) {
			r->owned = NULL;
			return pb_error_set(err, PB_ENOMEM, "out of memory");
		}
		r->name = r->owned;
	}
	for (int i = 0; i < pl->n; i++)
		if ((rc = plan_rec(&pl->r[i], o->sparse, err)))
			return rc;
	return 0;
}
/* The oldest version that holds the file: a float32 file without masks
 * (a dense model, the dense cache) is the same bytes in version 2, which
 * older builds read; encodings need version 3. */
static uint32_t plan_version(const plan *pl)
{
	for (int i = 0; i < pl->n; i++)
		if (pl->r[i].enc != ENC_F32)
			return PB_CHECKPOINT_VERSION;
	return 2;
}

/* The whole file in memory, CRC included. */
static int encode_model(pb_model *m, const pb_checkpoint_opts *o,
			unsigned char **out, size_t *out_len, pb_error *err)
{
	static const pb_checkpoint_opts plain;
	const char *name = pb_model_name(m) ? pb_model_name(m) : "";
	const char *tag;
	size_t name_len = strlen(name), tag_len;
	uint64_t len;
	plan pl = { 0 };
	unsigned char *buf, *b;
	int rc;

	if (!o)
		o = &plain;
	tag = o->tag;
	tag_len = tag ? strlen(tag) : 0;
	len = FILE_MIN + name_len + 4 + tag_len;
	if ((rc = plan_model(&pl, m, o, err))) {
		plan_free(&pl);
		return rc;
	}
	for (int i = 0; i < pl.n; i++)
		len += rec_bytes(&pl.r[i]);
	if (len > SIZE_MAX || !(buf = malloc((size_t)len))) {
		plan_free(&pl);
		return pb_error_set(err, PB_ENOMEM, "out of memory encoding a "
				    "%" PRIu64 "-byte checkpoint", len);
	}
	memcpy(buf, pbi_ckpt_magic, sizeof pbi_ckpt_magic);
	put_u32(buf + 8, plan_version(&pl));
	put_u32(buf + 12, (uint32_t)pl.n);
	put_u32(buf + 16, (uint32_t)name_len);
	memcpy(buf + HEADER_MIN, name, name_len);
	b = buf + HEADER_MIN + name_len;
	put_u32(b, (uint32_t)tag_len);
	if (tag_len)
		memcpy(b + 4, tag, tag_len);
	b += 4 + tag_len;
	for (int i = 0; i < pl.n; i++)
		b = encode_rec(b, &pl.r[i]);
	put_u32(b, crc_of(buf, (size_t)(b - buf)));
	plan_free(&pl);
	*out = buf;
	*out_len = (size_t)len;
	return 0;
}

int pb_checkpoint_encode(const pb_model *m, const pb_checkpoint_opts *o,
			 unsigned char **buf, size_t *len, pb_error *err)
{
	if (!m || !buf || !len)
		return pb_error_set(err, PB_EINVAL, "pb_checkpoint_encode: "
				    "model and buffer are required");
	/* pb_model_param is non-const only so that callers can write
	 * through it; encoding only reads. */
	return encode_model((pb_model *)m, o, buf, len, err);
}

int pbi_checkpoint_encode(const pb_model *m, int with_masks,
			  unsigned char **buf, size_t *len, pb_error *err)
{
	pb_checkpoint_opts o = { .no_masks = !with_masks };

	return encode_model((pb_model *)m, &o, buf, len, err);
}

int pb_checkpoint_save_opts(const pb_model *m, const char *path,
			    const pb_checkpoint_opts *o, pb_error *err)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	int rc;

	if (!m || !path)
		return pb_error_set(err, PB_EINVAL, "pb_checkpoint_save: "
				    "model and path are required");
	if ((rc = encode_model((pb_model *)m, o, &buf, &len, err)))
		return rc;
	rc = pbi_write_atomic(path, buf, len, "checkpoint", err);
	free(buf);
	return rc;
}

int pb_checkpoint_save(const pb_model *m, const char *path, pb_error *err)
{
	return pb_checkpoint_save_opts(m, path, NULL, err);
}

int pb_checkpoint_save_tag(const pb_model *m, const char *path,
			   const char *tag, pb_error *err)
{
	pb_checkpoint_opts o = { .tag = tag };

	return pb_checkpoint_save_opts(m, path, &o, err);
}

/* BASE with a trailing .ckpt or .ini removed, then ext, malloc-ed. */
static char *pair_path(const char *base, const char *ext)
{
	size_t n = strlen(base);
	char *p;

	if (n > 5 && !strcmp(base + n - 5, ".ckpt"))
		n -= 5;
	else if (n > 4 && !strcmp(base + n - 4, ".ini"))
		n -= 4;
	if (asprintf(&p, "%.*s%s", (int)n, base, ext) < 0)
		return NULL;
	return p;
}

int pb_model_save(const pb_model *m, const char *base, pb_error *err)
{
	char *ckpt = pair_path(base, ".ckpt"), *ini = pair_path(base, ".ini");
	pbi_atomic a = { 0 }, b = { 0 };
	unsigned char *buf = NULL;
	size_t len = 0;
	int rc;

	if (!ckpt || !ini) {
		rc = pb_error_set(err, PB_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = encode_model((pb_model *)m, NULL, &buf, &len, err)) ||
	    (rc = pbi_atomic_begin(&a, ckpt, "checkpoint", err)))
		goto out;
	if (fwrite(buf, 1, len, a.f) != len) {
		rc = pb_error_set(err, PB_EIO, "cannot write checkpoint '%s': "
				  "%s", ckpt, strerror(errno));
		goto out;
	}
	if ((rc = pbi_atomic_begin(&b, ini, "model file", err)))
		goto out;
	pbi_model_ini_print(b.f, m);
	/* Both files are on disk under their temporary names before either
	 * replaces the old one, so a full disk or a crash while writing
	 * never leaves a new checkpoint beside an old model file. */
	if ((rc = pbi_atomic_finish(&a, err)) ||
	    (rc = pbi_atomic_finish(&b, err)) ||
	    (rc = pbi_atomic_publish(&a, err)))
		goto out;
	rc = pbi_atomic_publish(&b, err);
out:
	pbi_atomic_discard(&a);
	pbi_atomic_discard(&b);
	free(buf);
	free(ckpt);
	free(ini);
	return rc;
}

