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
#include "prunebench/target.h"

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

/* ---- selection under a target (core/prune/select_*.c) ------------------ */

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

/* ---- measurement (core/prune/measure.c) ----------------------------------- */

/* What a model holds of each quantity a target can name. */
typedef struct pbi_measure {
	uint64_t params;     /* trainable parameters (shapes) */
	uint64_t nonzero;    /* non-zero trainable parameters */
	uint64_t macs;       /* dense MACs */
	uint64_t macs_effective; /* MACs with zero weights skipped */
	uint64_t weights;    /* prunable (conv/linear) weights */
	uint64_t zeros;      /* ... of them exactly zero */
	int channels;        /* prunable channels */
} pbi_measure;

int pbi_measure_model(pb_model *m, pbi_measure *out, pb_error *err);
/* The fraction of kind's quantity removed from `before` to `after`
 * (sparsity: the zeros of `after` over its prunable weights). */
double pbi_measure_reached(pb_target_kind kind, const pbi_measure *before,
			   const pbi_measure *after);
/* pbi_measure_reached of two models. */
int pbi_reached_between(pb_model *before, pb_model *after,
			pb_target_kind kind, double *reached, pb_error *err);

#endif
