/* Internal interfaces of the pruning core, shared by the channel-group /
 * surgery code, the selection-under-target code, masks, metrics and the
 * plugin context. Not installed; pbi_ functions are not exported. */
#ifndef PB_PRUNE_IMPL_H
#define PB_PRUNE_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "prunebench/error.h"
#include "prunebench/model.h"
#include "prunebench/pruner.h"
#include "prunebench/train.h"

/* ---- channel groups and surgery (core/channel_groups.c, core/surgery.c) */

/* Derives the channel groups of m. *groups is malloc-ed (free()). */
int pbi_groups_derive(const pb_model *m, pb_channel_group **groups,
		      int *n_groups, pb_error *err);

/* Builds a new, smaller model from m: keep[g][c] != 0 keeps channel c of
 * group g (keep[g] == NULL keeps the whole group). Parameters, running
 * statistics and weight masks of the kept channels are copied; m is not
 * changed. Refuses to empty a group or touch a non-prunable one. */
int pbi_remove_channels(const pb_model *m, const pb_channel_group *groups,
			int n_groups, const uint8_t *const *keep,
			pb_model **out, pb_error *err);

/* Parameters and MACs the model would have with kept[g] channels in each
 * group, without building it (kept == NULL: the model as it is). */
void pbi_config_cost(const pb_model *m, const pb_channel_group *groups,
		     int n_groups, const int *kept, uint64_t *params,
		     uint64_t *macs);

/* ---- targets and selection (core/target.c, core/select.c) ------------ */

/* Parses "sparsity=0.75", "channels=0.3", "params=0.5", "macs=0.5". */
int pbi_target_parse(pb_target *t, const char *text, pb_error *err);
/* "macs=0.5" back from a target (amount only, no scope). */
void pbi_target_format(const pb_target *t, char *buf, size_t n);

/* Weight selection (core/select_weights.c, rules there): masks the
 * lowest scores (scores[i] for the i-th prunable weight tensor,
 * params[i]) to reach `amount` of kind SPARSITY with t's scope and
 * overrides (t NULL: layer scope, no overrides). amount is the total
 * sparsity of these n tensors, not an increment. Existing masks are kept
 * and count. *reached gets the sparsity over these n tensors afterwards
 * (all prunable weights when the pruner excluded none). */
int pbi_select_weights(pb_model *m, const pb_target *t, pb_param **params,
		       float *const *scores, int n, double amount,
		       double *reached, pb_error *err);

/* Channel selection: fills keep[g][c] (caller-allocated, n_channels of
 * each group) to reach `amount` of t's kind (CHANNELS, PARAMS, MACS)
 * with t's scope and overrides, keeping at least min_keep channels per
 * prunable group. *reached gets the reached fraction of t's kind. */
int pbi_select_channels(const pb_model *m, const pb_channel_group *groups,
			int n_groups, const pb_target *t,
			float *const *scores, double amount, int min_keep,
			uint8_t **keep, double *reached, pb_error *err);

/* ---- masks (core/mask.c) ----------------------------------------------- */

/* The mask of weight tensor p (conv/linear weight; 1 kept, 0 pruned),
 * created all ones when create != 0; NULL if none or not maskable. */
float *pbi_mask_get(pb_model *m, const pb_param *p, int create);
/* Zeroes masked weights (and their grads). */
void pbi_mask_apply(pb_model *m);
/* The flat mask laid out like pb_model_trainable_data, or NULL when the
 * model has no mask: the optimizer multiplies by it. */
const float *pbi_mask_flat(const pb_model *m);

/* The bytes pb_checkpoint_save writes for m (core/checkpoint.c), in a
 * malloc-ed buffer; with_masks 0 leaves the masks out (what the
 * compressed-size metric measures). */
int pbi_checkpoint_encode(const pb_model *m, int with_masks,
			  unsigned char **buf, size_t *len, pb_error *err);

/* The recipe and step cap pb_ctx_train(which, epochs, steps) trains
 * with, from the recipe `base` it names (per_epoch: steps per epoch). The
 * runner replays a plugin's trainings with it (matched-budget control). */
void pbi_ctx_train_recipe(const pb_recipe *base, double epochs, long steps,
			  long per_epoch, pb_recipe *r, long *max_steps);

#endif
