/* The checkpoint file format (see prunebench/checkpoint.h), shared by
 * the writer (checkpoint_write.c) and the reader (checkpoint_read.c,
 * with its decoders in checkpoint_decode.c).
 *
 * Every integer and float is encoded byte by byte, little-endian, so a
 * file written on one machine loads on any other whatever its byte order.
 * Internal. */
#ifndef PB_NN_CHECKPOINT_FORMAT_H
#define PB_NN_CHECKPOINT_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <zlib.h>

_Static_assert(sizeof(float) == sizeof(uint32_t),
	       "checkpoints store float32 as its 32-bit pattern");

static const char pbi_ckpt_magic[8] = { 'P', 'B', 'C', 'K', 'P', 'T', '0', '1' };

/* A mask is stored as a tensor named after its weight plus this. */
#define MASK_SUFFIX ".mask"

/* Activation ranges of an int8 file are tensors named after their layer
 * (or "input") plus this, of kind PB_PARAM_ACT_QUANT: [lo, hi]. */
#define ACT_SUFFIX ".act"
#define ACT_INPUT "input"

/* Magic, version, tensor count, model name length; the CRC closes it.
 * Version 2 adds a u32 tag length and the tag after the model name.
 * Version 3 puts each tensor's encoding in the high 16 bits of its kind
 * (0, float32, is the only encoding of versions 1 and 2, so a float32
 * record reads the same in every version). */
#define HEADER_MIN (sizeof pbi_ckpt_magic + 3 * 4)
#define FILE_MIN (HEADER_MIN + 4)

/* How a tensor's values are stored (version 3). A value is "non-zero"
 * when its bit pattern is not +0.0, so -0.0 survives every encoding.
 * rows is shape[0] for tensors of 2 or more dimensions, else 1. */
enum {
	ENC_F32 = 0,        /* n float32 */
	ENC_F32_BITMAP = 1, /* ceil(n/8) bytes, bit i (LSB first) set for a
			       non-zero entry, then the non-zero float32s */
	ENC_F32_CSR = 2,    /* rows + 1 u32 entry offsets, then per entry a
			       float32 and a u16 distance: the entry sits
			       distance + 1 places after the previous one of
			       its row (the first: distance places into the
			       row); a gap over 65535 takes filler entries
			       of value 0 (Deep Compression) */
	ENC_MASK_BITS = 3,  /* a mask: ceil(n/8) bytes, bit set = kept */
	ENC_MASK_ZEROS = 4, /* a mask equal to its weight's non-zeros: no
			       payload */
	ENC_I8 = 5,         /* rows float32 scales, then n int8: value =
			       q * scale of its row */
	ENC_I8_BITMAP = 6,  /* rows scales, a bitmap as above, then the
			       non-zero int8s */
	ENC_LAST = 6
};
#define ENC_SHIFT 16
#define KIND_MASK 0xffffu
#define CSR_MAX_DIST 65535u

static inline int is_nonzero_f32(float f)
{
	uint32_t v;

	memcpy(&v, &f, sizeof v);
	return v != 0;
}

static inline void put_u32(unsigned char *b, uint32_t v)
{
	b[0] = (unsigned char)v;
	b[1] = (unsigned char)(v >> 8);
	b[2] = (unsigned char)(v >> 16);
	b[3] = (unsigned char)(v >> 24);
}

static inline uint32_t get_u32(const unsigned char *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
	       (uint32_t)b[3] << 24;
}

static inline void put_f32(unsigned char *b, float f)
{
	uint32_t v;

	memcpy(&v, &f, sizeof v);
	put_u32(b, v);
}

static inline float get_f32(const unsigned char *b)
{
	uint32_t v = get_u32(b);
	float f;

	memcpy(&f, &v, sizeof f);
	return f;
}

static inline void put_u16(unsigned char *b, uint32_t v)
{
	b[0] = (unsigned char)v;
	b[1] = (unsigned char)(v >> 8);
}

static inline uint32_t get_u16(const unsigned char *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8;
}

/* zlib's crc32() takes a uInt length; feed large buffers in pieces. */
static inline uint32_t crc_of(const unsigned char *p, size_t n)
{
	uLong crc = crc32(0L, Z_NULL, 0);

	while (n > 0) {
		uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
		crc = crc32(crc, p, chunk);
		p += chunk;
		n -= chunk;
	}
	return (uint32_t)crc;
}

#endif
