/* The checkpoint file format (see prunebench/checkpoint.h), shared by
 * the writer (checkpoint_write.c) and the reader (checkpoint_read.c).
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

/* Magic, version, tensor count, model name length; the CRC closes it.
 * Version 2 adds a u32 tag length and the tag after the model name. */
#define HEADER_MIN (sizeof pbi_ckpt_magic + 3 * 4)
#define FILE_MIN (HEADER_MIN + 4)

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
