/* Checkpoints: every state tensor of a model (parameters and running
 * statistics) with its name and shape, in a versioned little-endian file
 * closed by a CRC32 (zlib) of everything before it.
 *
 * Layout: "PBCKPT01" magic, u32 version, u32 tensor count, u32 length +
 * model name, u32 length + tag (version 2 on; version 1 files, which have
 * no tag, still load); per tensor: u32 name length, name, u32 kind (low
 * 16 bits; from version 3 the high 16 bits are the encoding, 0 for
 * float32), u32 ndim, u32 dims[ndim], the payload; then u32 crc32. The
 * model's tensors come first, in pb_model_param order; after them, one
 * tensor per weight that has a pruning mask, named "<param>.mask" (kind
 * PB_PARAM_MASK, the param's shape, 1 kept / 0 pruned); in an int8 file
 * then one tensor "<layer>.act" (or "input.act") per rounded activation,
 * kind PB_PARAM_ACT_QUANT, [lo, hi]. Loading re-creates exactly those
 * masks; a file without mask tensors loads as a model without masks.
 *
 * Encodings (version 3; rows = shape[0] for 2 or more dimensions, else 1;
 * "non-zero" means a bit pattern other than +0.0):
 *   0 float32        n float32
 *   1 float32 bitmap ceil(n/8) bytes (bit i, LSB first, set for a
 *                    non-zero entry), then the non-zero float32s
 *   2 float32 CSR    rows + 1 u32 entry offsets, then per entry a float32
 *                    and a u16 distance: it sits distance + 1 places after
 *                    the previous entry of its row (the first, distance
 *                    places into it); a gap of more than 65535 zeros takes
 *                    filler entries of value 0, as in Deep Compression
 *   3 mask bits      ceil(n/8) bytes, bit set = kept
 *   4 mask of zeros  no payload: the mask is 0 exactly where its weight
 *                    (decoded before it) is +0.0
 *   5 int8           rows float32 scales, then n int8; value = q * scale
 *   6 int8 bitmap    rows scales, a bitmap as in 1, the non-zero int8s
 * pb_checkpoint_save writes float32 tensors, and each mask as 4 when it
 * can (a pruned model's mask is its zeros) and as 3 otherwise, so the
 * file costs no more than the model it holds. Sparse files take, per
 * tensor, the smallest of 0, 1 and 2 (int8: 5 and 6). A file whose every
 * tensor is float32 (no masks: a dense model) is written as version 2,
 * the same bytes, so builds from before version 3 read it.
 *
 * Files are written to a temporary name and renamed, so a crash never
 * leaves half a checkpoint. */
#ifndef PRUNEBENCH_CHECKPOINT_H
#define PRUNEBENCH_CHECKPOINT_H

#include "prunebench/error.h"
#include "prunebench/model.h"
#include "prunebench/quantize.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PB_CHECKPOINT_VERSION 3

int pb_checkpoint_save(const pb_model *m, const char *path, pb_error *err);

/* A model as a pair of files: BASE.ckpt (the checkpoint) and BASE.ini
 * (its shapes, pb_model_write_ini), BASE given with or without either
 * extension. Both are written under temporary names and flushed before
 * either is renamed into place, so a failure leaves the old pair (or
 * nothing) and never a new checkpoint beside an old model file. */
int pb_model_save(const pb_model *m, const char *base, pb_error *err);

/* Loads into a model built from the matching INI. Missing file, bad magic,
 * unknown version, truncation, CRC mismatch, and a tensor whose name or
 * shape does not match the model are each a clear error naming the file
 * and the tensor. The model is left unchanged on error. */
int pb_checkpoint_load(pb_model *m, const char *path, pb_error *err);

/* The same with a tag: a short text stored in the file saying what it
 * was written for (the dense cache stores its key there). Loading with a
 * tag refuses, PB_EMISMATCH, a file whose tag differs. */
int pb_checkpoint_save_tag(const pb_model *m, const char *path,
			   const char *tag, pb_error *err);
int pb_checkpoint_load_tag(pb_model *m, const char *path, const char *tag,
			   pb_error *err);

/* How a checkpoint is written: pb_checkpoint_save is all zeros. */
typedef struct pb_checkpoint_opts {
	const char *tag;        /* NULL: none */
	int sparse;             /* each tensor in its smallest encoding */
	int no_masks;           /* leave the masks out */
	/* int8: every weight q quantizes (pb_quant_weights, so the model's
	 * values are on the grid of q's scales) as int8 with its scales,
	 * and q's activation ranges. NULL: float32. */
	const pb_quant *quant;
} pb_checkpoint_opts;

/* The file's bytes in a malloc-ed buffer (what the size metrics measure:
 * a real file, not an estimate). */
int pb_checkpoint_encode(const pb_model *m, const pb_checkpoint_opts *o,
			 unsigned char **buf, size_t *len, pb_error *err);
int pb_checkpoint_save_opts(const pb_model *m, const char *path,
			    const pb_checkpoint_opts *o, pb_error *err);

/* pb_checkpoint_load that also returns, in *q, the int8 weights' scales
 * and the activation ranges of an int8 file (NULL for a float32 file), so
 * it evaluates as it was measured (pb_quant_evaluate). */
int pb_checkpoint_load_quant(pb_model *m, const char *path, pb_quant **q,
			     pb_error *err);

#ifdef __cplusplus
}
#endif
#endif
