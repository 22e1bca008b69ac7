/* The tensor records of a checkpoint file as the reader walks them, and
 * the decoders of their encodings (checkpoint_decode.c), used by the
 * reader (checkpoint_read.c). Internal. */
#ifndef PB_NN_CHECKPOINT_IMPL_H
#define PB_NN_CHECKPOINT_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "nn/checkpoint_format.h"

/* A bounds-checked cursor. On overrun it remembers how far the file would
 * have had to reach, for the "truncated" message. */
typedef struct pbi_ckpt_reader {
	const unsigned char *p;
	size_t len, pos;
	uint64_t need;
} pbi_ckpt_reader;

/* One tensor as it sits in the file; nothing in it is trusted until the
 * CRC has been checked. */
typedef struct pbi_ckpt_tensor {
	const char *name;          /* not NUL-terminated */
	uint32_t name_len;
	uint32_t kind, enc, ndim;
	const unsigned char *dims; /* ndim u32s */
	uint64_t n, rows;
	const unsigned char *scales;  /* int8: rows float32 */
	const unsigned char *bitmap;  /* bitmap encodings */
	const unsigned char *offsets; /* CSR: rows + 1 u32 */
	uint64_t stored;           /* values in data */
	const unsigned char *data; /* the values as the encoding has them */
} pbi_ckpt_tensor;

static inline uint32_t pbi_ckpt_dim(const pbi_ckpt_tensor *t, uint32_t d)
{
	return get_u32(t->dims + 4 * (size_t)d);
}

/* The next n bytes at *out, or -1 (r->need set) past the end. */
int pbi_ckpt_rd_bytes(pbi_ckpt_reader *r, uint64_t n,
		      const unsigned char **out);
int pbi_ckpt_rd_u32(pbi_ckpt_reader *r, uint32_t *v);
/* The next tensor record of a file of `version` into t, its payload
 * walked without being decoded; -1 when the file ends first, -2 for an
 * unknown encoding. */
int pbi_ckpt_read_tensor(pbi_ckpt_reader *r, pbi_ckpt_tensor *t,
			 uint32_t version);
/* Decodes t into dst (t->n floats). owner: the decoded weight of a mask
 * of zeros. Returns 0, or -1 with the reason in why: the CRC says the
 * bytes are as written, but a file written by something else (or a
 * corrupt one whose CRC was recomputed) must still not write out of
 * bounds. */
int pbi_ckpt_decode(const pbi_ckpt_tensor *t, const float *owner, float *dst,
		    char *why, size_t why_len);

#endif
