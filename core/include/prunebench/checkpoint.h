/* Checkpoints: every state tensor of a model (parameters and running
 * statistics) with its name and shape, in a versioned little-endian file
 * closed by a CRC32 (zlib) of everything before it.
 *
 * Layout: "PBCKPT01" magic, u32 version, u32 tensor count, u32 length +
 * model name, u32 length + tag (version 2; version 1 files, which have no
 * tag, still load); per tensor: u32 name length, name, u32 kind, u32 ndim,
 * u32 dims[ndim], float32 data; then u32 crc32. The model's tensors come
 * first, in pb_model_param order; after them, one tensor per weight that
 * has a pruning mask, named "<param>.mask" (kind PB_PARAM_MASK, the
 * param's shape, 1 kept / 0 pruned). Loading re-creates exactly those
 * masks; a file without mask tensors loads as a model without masks.
 * Files are written to a temporary name and renamed, so a crash never
 * leaves half a checkpoint. */
#ifndef PRUNEBENCH_CHECKPOINT_H
#define PRUNEBENCH_CHECKPOINT_H

#include "prunebench/error.h"
#include "prunebench/model.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PB_CHECKPOINT_VERSION 2

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

#ifdef __cplusplus
}
#endif
#endif
