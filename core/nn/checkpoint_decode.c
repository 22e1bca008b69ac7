/* Format 3's encodings on the reading side: a bounds-checked cursor over
 * the file, walking a tensor record and its payload (float32, bitmap,
 * CSR, mask bits, mask of zeros, int8, int8 bitmap) without decoding it,
 * and decoding it into float32 with every index checked. */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "nn/checkpoint_format.h"
#include "nn/checkpoint_impl.h"

int pbi_ckpt_rd_bytes(pbi_ckpt_reader *r, uint64_t n,
		      const unsigned char **out)
{
	if (n > r->len - r->pos) {
		r->need = (uint64_t)r->pos + n;
		return -1;
	}
	*out = r->p + r->pos;
	r->pos += (size_t)n;
	return 0;
}

int pbi_ckpt_rd_u32(pbi_ckpt_reader *r, uint32_t *v)
{
	const unsigned char *b;

	if (pbi_ckpt_rd_bytes(r, 4, &b))
		return -1;
	*v = get_u32(b);
	return 0;
}

/* Element count, or UINT64_MAX when corrupt dimensions make it too large
 * to compute with: the headroom keeps "offset + 4 * n" from overflowing. */
static uint64_t rec_count(const pbi_ckpt_tensor *t)
{
	const uint64_t limit = UINT64_MAX / 8;
	uint64_t n = 1;

	for (uint32_t d = 0; d < t->ndim; d++) {
		uint64_t dim = pbi_ckpt_dim(t, d);
		if (dim && n > limit / dim)
			return UINT64_MAX;
		n *= dim;
	}
	return n;
}

static uint64_t popcount_bytes(const unsigned char *b, uint64_t n)
{
	uint64_t c = 0;

	for (uint64_t i = 0; i < n; i++)
		c += (uint64_t)__builtin_popcount(b[i]);
	return c;
}

/* The payload of t's encoding: its length follows from the bitmap's bits
 * or the CSR offsets, so the file walks without being decoded. An
 * unknown encoding is reported as -2. */
static int read_payload(pbi_ckpt_reader *r, pbi_ckpt_tensor *t)
{
	const uint64_t bm = (t->n + 7) / 8;

	t->rows = t->ndim > 1 ? pbi_ckpt_dim(t, 0) : t->n ? 1 : 0;
	switch (t->enc) {
	case ENC_F32:
		t->stored = t->n;
		return pbi_ckpt_rd_bytes(r, 4 * t->n, &t->data);
	case ENC_F32_BITMAP:
		if (pbi_ckpt_rd_bytes(r, bm, &t->bitmap))
			return -1;
		t->stored = popcount_bytes(t->bitmap, bm);
		return pbi_ckpt_rd_bytes(r, 4 * t->stored, &t->data);
	case ENC_F32_CSR:
		if (pbi_ckpt_rd_bytes(r, 4 * (t->rows + 1), &t->offsets))
			return -1;
		t->stored = get_u32(t->offsets + 4 * t->rows);
		return pbi_ckpt_rd_bytes(r, 6 * t->stored, &t->data);
	case ENC_MASK_BITS:
		return pbi_ckpt_rd_bytes(r, bm, &t->bitmap);
	case ENC_MASK_ZEROS:
		return 0;
	case ENC_I8:
	case ENC_I8_BITMAP:
		if (pbi_ckpt_rd_bytes(r, 4 * t->rows, &t->scales))
			return -1;
		if (t->enc == ENC_I8) {
			t->stored = t->n;
		} else {
			if (pbi_ckpt_rd_bytes(r, bm, &t->bitmap))
				return -1;
			t->stored = popcount_bytes(t->bitmap, bm);
		}
		return pbi_ckpt_rd_bytes(r, t->stored, &t->data);
	}
	return -2;
}

int pbi_ckpt_read_tensor(pbi_ckpt_reader *r, pbi_ckpt_tensor *t,
			 uint32_t version)
{
	const unsigned char *b;
	uint32_t kind;

	memset(t, 0, sizeof *t);
	if (pbi_ckpt_rd_u32(r, &t->name_len) ||
	    pbi_ckpt_rd_bytes(r, t->name_len, &b))
		return -1;
	t->name = (const char *)b;
	if (pbi_ckpt_rd_u32(r, &kind) || pbi_ckpt_rd_u32(r, &t->ndim) ||
	    pbi_ckpt_rd_bytes(r, 4 * (uint64_t)t->ndim, &t->dims))
		return -1;
	t->kind = version >= 3 ? kind & KIND_MASK : kind;
	t->enc = version >= 3 ? kind >> ENC_SHIFT : ENC_F32;
	t->n = rec_count(t);
	if (t->n == UINT64_MAX) {
		r->need = UINT64_MAX;
		return -1;
	}
	return read_payload(r, t);
}

static int bit_of(const unsigned char *bm, uint64_t i)
{
	return (bm[i / 8] >> (i % 8)) & 1;
}

/* Decodes t into dst (t->n floats). owner: the decoded weight of a mask
 * of zeros. Returns 0, or -1 with the reason in why: the CRC says the
 * bytes are as written, but a file written by something else (or a
 * corrupt one whose CRC was recomputed) must still not write out of
 * bounds. */
int pbi_ckpt_decode(const pbi_ckpt_tensor *t, const float *owner, float *dst,
		    char *why, size_t why_len)
{
	uint64_t k = 0, cols = t->rows ? t->n / t->rows : 0;

	switch (t->enc) {
	case ENC_F32:
		for (uint64_t i = 0; i < t->n; i++)
			dst[i] = get_f32(t->data + 4 * i);
		return 0;
	case ENC_F32_BITMAP:
		for (uint64_t i = 0; i < t->n; i++)
			dst[i] = bit_of(t->bitmap, i) ?
				 get_f32(t->data + 4 * k++) : 0.0f;
		return 0;
	case ENC_F32_CSR:
		for (uint64_t i = 0; i < t->n; i++)
			dst[i] = 0.0f;
		if (get_u32(t->offsets) != 0) {
			snprintf(why, why_len, "CSR offsets do not start at 0");
			return -1;
		}
		for (uint64_t row = 0; row < t->rows; row++) {
			uint64_t a = get_u32(t->offsets + 4 * row);
			uint64_t b = get_u32(t->offsets + 4 * (row + 1));
			int64_t pos = -1;

			if (b < a || b > t->stored) {
				snprintf(why, why_len, "CSR offsets of row %"
					 PRIu64 " out of order", row);
				return -1;
			}
			for (uint64_t e = a; e < b; e++) {
				pos += 1 + (int64_t)get_u16(t->data + 6 * e + 4);
				if ((uint64_t)pos >= cols) {
					snprintf(why, why_len, "CSR entry %"
						 PRIu64 " lies past the end of "
						 "row %" PRIu64, e, row);
					return -1;
				}
				dst[row * cols + (uint64_t)pos] =
					get_f32(t->data + 6 * e);
			}
		}
		return 0;
	case ENC_MASK_BITS:
		for (uint64_t i = 0; i < t->n; i++)
			dst[i] = bit_of(t->bitmap, i) ? 1.0f : 0.0f;
		return 0;
	case ENC_MASK_ZEROS:
		for (uint64_t i = 0; owner && i < t->n; i++)
			dst[i] = is_nonzero_f32(owner[i]) ? 1.0f : 0.0f;
		return 0;
	case ENC_I8:
	case ENC_I8_BITMAP:
		for (uint64_t row = 0; row < t->rows; row++) {
			float s = get_f32(t->scales + 4 * row);

			if (!isfinite(s) || s < 0.0f) {
				snprintf(why, why_len, "row %" PRIu64 " has "
					 "int8 scale %g", row, (double)s);
				return -1;
			}
			for (uint64_t j = 0; j < cols; j++) {
				uint64_t i = row * cols + j;
				int8_t q = 0;

				if (t->enc == ENC_I8 || bit_of(t->bitmap, i))
					q = (int8_t)t->data[k++];
				dst[i] = (float)q * s;
			}
		}
		return 0;
	}
	snprintf(why, why_len, "unknown encoding %" PRIu32, t->enc);
	return -1;
}
