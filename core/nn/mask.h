/* Weight masks, stored with the model they belong to (1 kept, 0 pruned),
 * and the checkpoint encoding that carries them. The optimizer, the
 * checkpoint writer and the pruning core all read them. Not installed. */
#ifndef PB_NN_MASK_H
#define PB_NN_MASK_H

#include <stddef.h>

#include "prunebench/error.h"
#include "prunebench/model.h"

/* ---- masks (core/nn/mask.c) ----------------------------------------------- */

/* The mask of weight tensor p (conv/linear weight; 1 kept, 0 pruned),
 * created all ones when create != 0; NULL if none or not maskable. */
float *pbi_mask_get(pb_model *m, const pb_param *p, int create);
/* Zeroes masked weights (and their grads). */
void pbi_mask_apply(pb_model *m);
/* The flat mask laid out like pb_model_trainable_data, or NULL when the
 * model has no mask: the optimizer multiplies by it. */
const float *pbi_mask_flat(const pb_model *m);

/* The bytes pb_checkpoint_save writes for m (core/nn/checkpoint.c), in a
 * malloc-ed buffer; with_masks 0 leaves the masks out (what the
 * compressed-size metric measures). */
int pbi_checkpoint_encode(const pb_model *m, int with_masks,
			  unsigned char **buf, size_t *len, pb_error *err);

#endif
