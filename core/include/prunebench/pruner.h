/* The prunebench plugin ABI: everything a pruning algorithm needs, in one
 * header. A plugin is one C file compiled into a shared object:
 *
 *   cc -shared -fPIC $(pkg-config --cflags prunebench) mypruner.c \
 *      -o mypruner.so
 *
 * It exports exactly one symbol, pb_pruner_entry (use PB_PRUNER_EXPORT),
 * which returns a const descriptor. The host checks the descriptor's ABI
 * version and size before using anything else in it.
 *
 * The plugin sees the model through the opaque pb_prune_ctx and the
 * pb_model accessors of model.h, and acts only through the pb_ctx_*
 * helpers below (score-and-select under the cell's target, masks, channel
 * removal, training, evaluation, calibration activations, its RNG
 * stream). It never frees or reallocates core memory, and it keeps its own
 * state in the void * it returns from create(), never in globals: cells
 * run in parallel in one process.
 *
 * Compatibility rules: new fields only ever go at the end of pb_pruner;
 * the host copies the plugin's struct_size bytes into a zeroed struct,
 * so a plugin built against an older header with the same ABI version
 * still loads (its missing fields read as 0 / NULL). A plugin whose
 * descriptor is larger than the host's (built against a newer header)
 * or smaller than version 1's is refused. Changing the meaning of a
 * field, or of a pb_ctx_* function, bumps PB_PRUNER_ABI_VERSION, and the
 * host refuses other versions with both numbers in the message. New
 * pb_ctx_* functions may be added without a bump: a plugin using one
 * fails to load on an older host (dlopen with RTLD_NOW), never mid-run.
 *
 * This header must compile on its own with -std=c99 -pedantic. */
#ifndef PRUNEBENCH_PRUNER_H
#define PRUNEBENCH_PRUNER_H

#include <stddef.h>
#include <stdint.h>

#include <gsl/gsl_rng.h>

#include "prunebench/error.h"
#include "prunebench/model.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PB_PRUNER_ABI_VERSION 1u

typedef enum pb_granularity {
	PB_GRANULARITY_WEIGHT = 0,   /* individual weights (masks) */
	PB_GRANULARITY_CHANNEL = 1   /* whole channels (physical removal) */
} pb_granularity;

/* ---- options a plugin declares -------------------------------------------
 * The core validates a cell's options against this list before the plugin
 * runs: unknown names, values of the wrong type or out of range, and
 * choices not in the list are errors naming the file, line and plugin. */
typedef enum pb_opt_type {
	PB_OPT_INT,
	PB_OPT_DOUBLE,
	PB_OPT_BOOL,     /* yes/no, true/false, 1/0, on/off */
	PB_OPT_CHOICE,   /* one of `choices`, "a|b|c" */
	PB_OPT_STRING,
	/* A point of the dense training: N (iterations), Xep (epochs) or X%
	 * (of the dense training). The runner keeps the dense model at
	 * every point its cells' options of this type name (see
	 * pb_ctx_dense_point). Added after version 1. */
	PB_OPT_POINT
} pb_opt_type;

typedef struct pb_pruner_option {
	const char *name;
	pb_opt_type type;
	const char *def;      /* default, as text; never NULL */
	const char *help;     /* one line */
	const char *choices;  /* PB_OPT_CHOICE: "a|b|c"; otherwise NULL */
	double min, max;      /* PB_OPT_INT/DOUBLE: inclusive range; min > max
				 means unbounded */
} pb_pruner_option;

/* ---- targets ------------------------------------------------------------- */
typedef enum pb_target_kind {
	PB_TARGET_SPARSITY,  /* fraction of prunable weights zeroed */
	PB_TARGET_CHANNELS,  /* fraction of prunable channels removed */
	PB_TARGET_PARAMS,    /* fraction of parameters removed */
	PB_TARGET_MACS       /* fraction of MACs removed */
} pb_target_kind;

typedef enum pb_scope {
	PB_SCOPE_LAYER,      /* the same fraction in every layer */
	PB_SCOPE_GLOBAL      /* one ranking across layers, with a floor */
} pb_scope;

#define PB_TARGET_MAX_OVERRIDES 64

typedef struct pb_target_override {
	char layer[48];      /* layer name from the model file */
	double amount;       /* fraction removed in that layer */
} pb_target_override;

typedef struct pb_target {
	pb_target_kind kind;
	double amount;       /* in [0, 1) */
	pb_scope scope;
	int n_overrides;
	pb_target_override overrides[PB_TARGET_MAX_OVERRIDES];
} pb_target;

/* ---- channel groups ------------------------------------------------------
 * Channels that must be removed together. A group's channels are the
 * output channels of its producers (convs, or linears' output neurons),
 * normalised by its BNs, and read by its consumers (the input channels of
 * the next convs, or the input features of the next linear, where one
 * channel fans out to H*W features after flatten). A residual add ties the
 * channels of several producers into one group. Groups feeding the
 * classifier's outputs are not prunable. */
#define PB_GROUP_MAX_MEMBERS 32

typedef struct pb_channel_group {
	int id;
	int n_channels;
	int prunable;             /* 0 for the classes, or when a plugin may
				     not remove these channels */
	int n_producers;
	int producers[PB_GROUP_MAX_MEMBERS]; /* conv/linear layer indices */
	int n_bns;
	int bns[PB_GROUP_MAX_MEMBERS];       /* bn layer indices */
	int n_consumers;
	int consumers[PB_GROUP_MAX_MEMBERS]; /* conv/linear reading them */
	int fanout[PB_GROUP_MAX_MEMBERS];    /* features per channel at each
						consumer (H*W after flatten,
						else 1) */
	int residual;             /* 1 when tied by an add */
} pb_channel_group;

/* ---- the context a plugin works in --------------------------------------- */
typedef struct pb_prune_ctx pb_prune_ctx;

/* The model as it is now. Removing channels replaces the model, so call
 * this again after pb_ctx_remove_channels / pb_ctx_apply_channel_scores. */
pb_model *pb_ctx_model(pb_prune_ctx *ctx);
const pb_target *pb_ctx_target(pb_prune_ctx *ctx);
/* The plugin's RNG stream, derived from (experiment, cell, seed). */
gsl_rng *pb_ctx_rng(pb_prune_ctx *ctx);

/* Option values, already validated against the declared list (defaults
 * filled in). Asking for an undeclared name, or with the wrong accessor
 * for its type, returns 0 / NULL. pb_ctx_opt_int reads PB_OPT_INT;
 * pb_ctx_opt_double reads PB_OPT_DOUBLE and PB_OPT_INT; pb_ctx_opt_bool
 * reads PB_OPT_BOOL; pb_ctx_opt_string returns the validated text of any
 * option (the way to read PB_OPT_CHOICE and PB_OPT_STRING). */
long pb_ctx_opt_int(pb_prune_ctx *ctx, const char *name);
double pb_ctx_opt_double(pb_prune_ctx *ctx, const char *name);
int pb_ctx_opt_bool(pb_prune_ctx *ctx, const char *name);
const char *pb_ctx_opt_string(pb_prune_ctx *ctx, const char *name);

/* The conv/linear/bn tensor of `kind` owned by layer index `layer`
 * ("conv1.weight"; a BN scale is "bn1.weight"), or NULL when it has none. */
pb_param *pb_ctx_layer_param(pb_prune_ctx *ctx, int layer,
			     pb_param_kind kind);

/* A line of progress on the run's progress stream (silent when the run
 * has none); the host adds the cell's label. */
void pb_ctx_log(pb_prune_ctx *ctx, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 2, 3)))
#endif
	;

/* Reports a plugin error: sets the cell's error and returns PB_EINVAL, so
 * a hook can `return pb_ctx_fail(ctx, "...", ...);`. */
int pb_ctx_fail(pb_prune_ctx *ctx, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 2, 3)))
#endif
	;

/* ---- weight masks ---------------------------------------------------------
 * Prunable weights are conv and linear weights (biases and BN never,
 * unless a plugin sets a mask on them explicitly). A mask is 1 (kept) or 0
 * (pruned); masked weights, their gradients and their momentum are zeroed
 * after every optimizer step, so they stay exactly zero. */

/* The mask of a weight parameter (same layout as p->data), created all
 * ones on first use. NULL when p is not a conv/linear weight. */
float *pb_ctx_mask(pb_prune_ctx *ctx, pb_param *p);
/* Re-applies all masks to the weights (after a plugin edited weights). */
void pb_ctx_apply_masks(pb_prune_ctx *ctx);

/* Per-weight scores: one array per prunable weight (same layout), to be
 * filled by the plugin; higher = more important. Scores start at 0.
 * Setting exclude[i] = 1 leaves tensor i out of the selection: it is
 * neither pruned nor ranked (e.g. "do not prune the first conv"). */
typedef struct pb_weight_scores {
	int n;               /* number of prunable weight tensors */
	pb_param **params;   /* the tensors, in model order */
	float **score;       /* score[i] has params[i]->n entries */
	uint8_t *exclude;    /* n entries, all 0 at first */
} pb_weight_scores;

int pb_ctx_weight_scores(pb_prune_ctx *ctx, pb_weight_scores **out);
/* Frees scores a plugin will not pass to pb_ctx_select_weights (on its
 * error paths). NULL is fine. */
void pb_ctx_weight_scores_free(pb_weight_scores *s);
/* Masks the lowest-scored weights so the cell's target (kind SPARSITY,
 * scope, per-layer overrides) is reached; already-masked weights stay
 * masked and count toward it. amount_override < 0 means "use the cell's
 * target amount" (iterative methods pass a per-round amount). Frees s,
 * also on error. */
int pb_ctx_select_weights(pb_prune_ctx *ctx, pb_weight_scores *s,
			  double amount_override);

/* ---- channel removal ----------------------------------------------------- */
int pb_ctx_n_groups(pb_prune_ctx *ctx);
const pb_channel_group *pb_ctx_group(pb_prune_ctx *ctx, int g);

/* Per-channel scores, one array per group (n_channels entries each; a
 * non-prunable group's array is ignored); higher = more important.
 * Scores start at 0. Setting exclude[g] = 1 keeps group g whole and out
 * of the ranking. */
typedef struct pb_channel_scores {
	int n;               /* number of groups */
	float **score;
	uint8_t *exclude;    /* n entries, all 0 at first */
} pb_channel_scores;

int pb_ctx_channel_scores(pb_prune_ctx *ctx, pb_channel_scores **out);
/* Frees scores not passed to pb_ctx_select_channels. NULL is fine. */
void pb_ctx_channel_scores_free(pb_channel_scores *s);
/* Removes the lowest-scored channels so the cell's target (CHANNELS,
 * PARAMS or MACS; layer or global scope; overrides) is reached, never
 * emptying a group (at least min_keep channels stay). amount_override < 0
 * uses the cell's amount. Rebuilds the model smaller. Frees s, also on
 * error. */
int pb_ctx_select_channels(pb_prune_ctx *ctx, pb_channel_scores *s,
			   double amount_override, int min_keep);
/* Removes exactly these channels of group g (indices into its current
 * channels). Rebuilds the model smaller; group ids stay valid, channel
 * indices shift down. */
int pb_ctx_remove_channels(pb_prune_ctx *ctx, int g, const int *channels,
			   int n);
/* Keeps exactly the channels with keep[g][c] != 0 in every group at once
 * (keep[g] == NULL keeps group g whole): one rebuild for a whole
 * configuration, as random or ThiNet choose it. */
int pb_ctx_keep_channels(pb_prune_ctx *ctx, const uint8_t *const *keep);
/* The number of channels per group that removing the cell's target amount
 * with scope `layer` would keep, for plugins that choose channels
 * themselves (keep[g] for every group). */
int pb_ctx_layer_budget(pb_prune_ctx *ctx, double amount, int *keep);
/* Parameters and MACs (as model.h counts them) the current model would
 * have with kept[g] channels in each group, without building it: how a
 * plugin checks a candidate configuration against a budget. */
int pb_ctx_config_cost(pb_prune_ctx *ctx, const int *kept, uint64_t *params,
		       uint64_t *macs);

/* ---- training and evaluation --------------------------------------------- */
typedef enum pb_recipe_which {
	PB_RECIPE_FINETUNE,   /* the cell's fine-tune recipe */
	PB_RECIPE_DENSE       /* the dense training recipe */
} pb_recipe_which;

/* Trains the current model with a recipe for `epochs` epochs, or for
 * `steps` optimizer steps when steps > 0 (epochs then only shapes the LR
 * schedule). The plugin's after_backward and after_epoch hooks run during
 * it; masks are enforced. */
int pb_ctx_train(pb_prune_ctx *ctx, pb_recipe_which which, double epochs,
		 long steps);
/* Top-1 accuracy on the validation split (never the test set). */
int pb_ctx_evaluate_val(pb_prune_ctx *ctx, double *acc);

/* Calibration: `n` images from the training split (fixed for the cell),
 * run through the current model in eval mode; returns the INPUT of layer
 * `layer` (B, C, H, W of that layer's input) in a buffer owned by the
 * context and valid until the next call. */
int pb_ctx_layer_input(pb_prune_ctx *ctx, int layer, int n,
		       const float **act, int *B);
/* A training batch with labels (from the cell's own shuffled stream),
 * valid until the next call. */
int pb_ctx_train_batch(pb_prune_ctx *ctx, int B, const float **x,
		       const uint8_t **y);

/* Snapshots of the whole model (shapes, every state tensor, masks), for
 * rewinding (LTH) and for trying candidates (random). slot in
 * [0, PB_CTX_SNAPSHOTS). Saving again overwrites the slot. */
#define PB_CTX_SNAPSHOTS 4
int pb_ctx_snapshot_save(pb_prune_ctx *ctx, int slot);
/* Rewinding: copies the saved values of the weights that are not masked
 * now, and of all other state, back into the model; current masks stay.
 * The shapes must not have changed since the save. */
int pb_ctx_snapshot_restore(pb_prune_ctx *ctx, int slot);
/* Going back: replaces the current model by a copy of the saved one,
 * shapes and masks included (undoes channel removal). */
int pb_ctx_snapshot_revert(pb_prune_ctx *ctx, int slot);

/* ---- the descriptor ------------------------------------------------------ */
typedef struct pb_pruner {
	uint32_t abi_version;        /* PB_PRUNER_ABI_VERSION */
	uint32_t struct_size;        /* sizeof(pb_pruner) */
	const char *name;            /* short, [a-z0-9_-]+ */
	const char *version;         /* the plugin's own version */
	pb_granularity granularity;
	const char *description;     /* one line */
	const char *citation;        /* paper, venue, year */
	const pb_pruner_option *options;
	int n_options;

	/* All hooks receive the plugin's state from create() (NULL when
	 * there is no create). Each returns 0 or a negative error after
	 * pb_ctx_fail. Only prune is required. */
	int (*create)(pb_prune_ctx *ctx, void **state);
	void (*destroy)(void *state);
	/* Before the first step of every training run made for this cell:
	 * each pb_ctx_train, and the dense training when the runner trains
	 * the dense model inside the cell (a plugin that must see dense
	 * training from its start, like LTH, trains with PB_RECIPE_DENSE
	 * itself or keeps its rewind point in after_backward). */
	int (*on_train_begin)(void *state, pb_prune_ctx *ctx);
	/* After each backward pass, before the optimizer step (Slimming's L1
	 * sub-gradient on BN scales, Taylor's accumulation). */
	int (*after_backward)(void *state, pb_prune_ctx *ctx, long step);
	/* After each epoch (0-based) and its validation. */
	int (*after_epoch)(void *state, pb_prune_ctx *ctx, int epoch);
	/* The pruning decision itself: called once per cell on the dense
	 * model (a copy); whatever the model is when it returns 0 is the
	 * pruned model. */
	int (*prune)(void *state, pb_prune_ctx *ctx);
} pb_pruner;

/* Fills the ABI fields; use as the first initialiser of a descriptor:
 *   static const pb_pruner desc = { PB_PRUNER_HEADER, .name = "x", ... }; */
#define PB_PRUNER_HEADER \
	.abi_version = PB_PRUNER_ABI_VERSION, .struct_size = sizeof(pb_pruner)

#define PB_PRUNER_ENTRY_SYMBOL "pb_pruner_entry"

#if defined(__GNUC__)
#define PB_PRUNER_VISIBLE __attribute__((visibility("default")))
#else
#define PB_PRUNER_VISIBLE
#endif

/* Defines the one exported symbol. */
#define PB_PRUNER_EXPORT(desc) \
	PB_PRUNER_VISIBLE const pb_pruner *pb_pruner_entry(void); \
	PB_PRUNER_VISIBLE const pb_pruner *pb_pruner_entry(void) \
	{ \
		return &(desc); \
	}

/* ---- added after version 1 (no ABI bump: new functions only) ------------ */

/* Optimizer steps per epoch of recipe `which` on this cell's training
 * split, and (epochs != NULL) the recipe's epochs: how a plugin turns
 * "1% of training" into iterations. Fails when there is no such recipe
 * or no data. */
int pb_ctx_recipe_steps(pb_prune_ctx *ctx, pb_recipe_which which,
			long *per_epoch, int *epochs);
/* Records one round of a plugin that prunes in rounds itself (LTH): the
 * core measures the target's quantity on the current model, relative to
 * the model the plugin was given (as pb_prune_report.reached), and
 * appends it to the report's rounds. Not from a training hook. */
int pb_ctx_report_round(pb_prune_ctx *ctx);

/* The iteration of the dense recipe that PB_OPT_POINT option `name`
 * names ("1%" of 15 epochs of 390 steps is 59). */
int pb_ctx_opt_point(pb_prune_ctx *ctx, const char *name, long *step);
/* Loads into snapshot slot `slot` the model as it was at the point named
 * by PB_OPT_POINT option `name` of the training run that produced the
 * dense model this cell was given: the weights after that many updates,
 * from the same run (LTH's rewind point). The runner keeps every such
 * point; `prunebench prune` finds them beside the dense checkpoint
 * (DENSE.stepN.ckpt, from `prunebench train --keep`). Fails, saying how
 * to get it, when the point was not kept. Restore it with
 * pb_ctx_snapshot_restore. */
int pb_ctx_dense_point(pb_prune_ctx *ctx, const char *name, int slot);

#ifdef __cplusplus
}
#endif
#endif
