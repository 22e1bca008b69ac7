/* A model's sizes as files (prunebench/metrics.h): the checkpoint in
 * each encoding, measured by writing it to memory, and zlib level 9 of
 * it. Internal. */
#ifndef PB_PRUNE_SIZES_H
#define PB_PRUNE_SIZES_H

#include <stddef.h>
#include <stdint.h>

#include "prunebench/checkpoint.h"
#include "prunebench/error.h"
#include "prunebench/model.h"

#include "prunebench/metrics.h"

/* f32: pb_checkpoint_save's file; sparse: the same, each tensor in its
 * smallest encoding; f32_zlib: zlib -9 of the float32 file; int8:
 * weights int8 with their scales; int8_zlib: zlib -9 of the sparse int8
 * file. */
typedef pb_file_sizes pbi_sizes;

/* zlib's compress2 at level 9 of buf: its length. */
int pbi_zlib_size(const unsigned char *buf, size_t len, uint64_t *out,
		  pb_error *err);

/* Encodes m with o and measures it (and, with compressed, its zlib -9). */
int pbi_file_size(const pb_model *m, const pb_checkpoint_opts *o,
		  int compressed, uint64_t *bytes, uint64_t *zbytes,
		  pb_error *err);

/* All of pbi_sizes for m. With q, m is quantized already (q's scales and
 * activation ranges go in the int8 files); without, the int8 sizes are
 * of a copy of m with its weights quantized (m is not changed). zlib
 * sizes only with compressed. */
int pbi_file_sizes(const pb_model *m, const pb_quant *q, int compressed,
		   pbi_sizes *out, pb_error *err);

#endif
