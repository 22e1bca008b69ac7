/* Internal helpers of the training layer shared with the layers above
 * it. Not installed; pbi_ functions are not exported. */
#ifndef PB_TRAIN_IMPL_H
#define PB_TRAIN_IMPL_H

#include <stddef.h>

#include "prunebench/quantize.h"
#include "prunebench/train.h"

/* The recipe and step cap of a training of `epochs` epochs (fractional
 * allowed) or `steps` optimizer steps of recipe `base` (per_epoch: steps
 * per epoch): pb_ctx_train trains with it, and the runner replays a
 * plugin's trainings with it (matched-budget control). The result never
 * keeps the best epoch (a plugin's training must not look at val). */
void pbi_recipe_for(const pb_recipe *base, double epochs, long steps,
		    long per_epoch, pb_recipe *r, long *max_steps);

/* Canonical text of a recipe (every field), for hashing: cell ids, the
 * dense cache's key, trunk keys. */
void pbi_recipe_canon(const pb_recipe *r, char *buf, size_t n);

/* pb_evaluate's loop, in the model's current mode (pb_evaluate makes its
 * forwards lean; the int8 evaluation must not, as its hook rounds the
 * outputs a lean forward leaves out): top-1 and mean cross-entropy over
 * d in batches of `batch` (>= 1), NaN for an empty d. in_q: NULL, or
 * each batch's input is a copy rounded by it (the input as int8 stores
 * it). */
int pbi_evaluate_batches(pb_model *m, const pb_dataset *d, int batch,
			 const pb_act_quant *in_q, double *acc, double *loss,
			 pb_error *err);

#endif
