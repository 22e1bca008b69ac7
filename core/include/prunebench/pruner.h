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
 * pb_ctx_* functions (with the types, macros and inline helpers that go
 * with them) may be added without a bump: a plugin using one fails to
 * load on an older host (dlopen with RTLD_NOW), never mid-run.
 *
 * This header must compile on its own with -std=c99 -pedantic. */
#ifndef PRUNEBENCH_PRUNER_H
#define PRUNEBENCH_PRUNER_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

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
	/* PB_OPT_INT/DOUBLE: the inclusive range [min, max]. Unbounded
	 * when min > max, or when both are 0: a declaration that leaves
	 * them out (zero-initialised) accepts every number, its default
	 * included. (Hosts before this rule read both 0 as the range
	 * [0, 0], which only a default of "0" passed.) Other types ignore
	 * them. */
	double min, max;
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

/* Calibration: `n` images from the training split (fixed for the cell:
 * the first n of one order of the split, drawn from the cell's RNG on
 * first use, so a call with more images extends one with fewer; B is n,
 * or the split's size when smaller), run through the current model in
 * eval mode; returns the INPUT of layer `layer` (B, C, H, W of that
 * layer's input) in a buffer owned by the context and valid until the
 * next call. */
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
/* Masked channels made real (added after version 1): a plugin that held
 * channels at zero with masks while training (soft pruning, pruning
 * events inside a fine-tune) ends with a plain smaller model, as every
 * channel pruner's is. Saves the trained model in slot `scratch`, goes
 * back to slot `start` (saved before the first mask), pours the trained
 * values into it (pb_ctx_snapshot_restore) and keeps exactly keep[][]
 * (pb_ctx_keep_channels). */
int pb_ctx_unmask_keep_channels(pb_prune_ctx *ctx, int start, int scratch,
				const uint8_t *const *keep);

/* ---- estimates before anything runs (added after version 1) -------------
 * What one call of prune will train, asked by the dry run (epochs and
 * wall time of a sweep) and by the Slurm shard balancer, before any data
 * or model is loaded. The core fills the inputs; the plugin's estimate
 * hook fills the outputs. Read the cell's options with pb_estimate_opt_*
 * (the same values pb_ctx_opt_* returns in the cell). */
typedef struct pb_estimate {
	/* in */
	const pb_target *target;
	double dense_epochs;          /* the dense recipe's epochs */
	double finetune_epochs;       /* the fine-tune recipe's */
	double dense_steps_per_epoch; /* optimizer steps per epoch of each */
	double finetune_steps_per_epoch;
	int weight_layers;            /* conv and linear layers */
	const void *opaque;           /* the options; for pb_estimate_opt_* */
	/* out: epochs of training (steps / steps per epoch of the recipe
	 * used) prune does in all, and of those the epochs of the rounds it
	 * shares across targets as a trunk (pb_ctx_trunk_begin), and how
	 * many rounds that trunk has for this target. */
	double epochs;
	double trunk_epochs;
	int trunk_rounds;
} pb_estimate;

double pb_estimate_opt_double(const pb_estimate *q, const char *name);
/* The validated text of any option ("" when undeclared). */
const char *pb_estimate_opt_string(const pb_estimate *q, const char *name);

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
	/* At the start of every pb_ctx_train the plugin calls, before its
	 * first step. Only the plugin's own training runs hooks: the
	 * runner's dense training and its fine-tune after pruning do not
	 * (a plugin that must see dense training from its start, like
	 * LTH, trains with PB_RECIPE_DENSE itself, or reads the dense
	 * run's kept points with pb_ctx_dense_point). */
	int (*on_train_begin)(void *state, pb_prune_ctx *ctx);
	/* After each backward pass of a pb_ctx_train, before the optimizer
	 * step (Slimming's L1 sub-gradient on BN scales, Taylor's
	 * accumulation). */
	int (*after_backward)(void *state, pb_prune_ctx *ctx, long step);
	/* After each epoch (0-based) of a pb_ctx_train (which validates
	 * nothing: call pb_ctx_evaluate_val here when needed). */
	int (*after_epoch)(void *state, pb_prune_ctx *ctx, int epoch);
	/* The pruning decision itself: called once per cell on the dense
	 * model (a copy; with at_init, the model the dense training
	 * started from); whatever the model is when it returns 0 is the
	 * pruned model. */
	int (*prune)(void *state, pb_prune_ctx *ctx);

	/* ---- added after version 1 (a plugin built before reads 0) ---- */

	/* Nonzero: the plugin prunes at initialisation (SNIP, GraSP,
	 * SynFlow). The runner then calls prune on the model the dense
	 * training started from (the same weights: drawn again from the
	 * seed with the dense recipe's init), not on the trained dense
	 * model, and trains the pruned model with the dense recipe instead
	 * of fine-tuning it; runs.jsonl and the table mark its cells
	 * "at init". 0: prune gets the trained dense model. */
	int at_init;

	/* Fills q's outputs: what prune trains for q's target and options
	 * (pb_estimate). Returns 0, or nonzero when it cannot tell (the
	 * core then uses its own rule). NULL: the core's rule (number
	 * options named "*_epochs", a negative value meaning the dense
	 * recipe's epochs). Estimates only: nothing depends on them but the
	 * dry run's figures and how Slurm shards are balanced. */
	int (*estimate)(pb_estimate *q);
	/* For a plugin sharing a trunk (pb_ctx_trunk_begin): the options,
	 * separated by spaces, that change only its last round and so are
	 * left out of the trunk's key (lth's "reinit"). NULL: none. */
	const char *trunk_final_options;
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

/* Trains with the schedule of a stretch of recipe `which`: `steps`
 * optimizer steps (0: to - from) whose learning rates are those of the
 * recipe's iterations [from, to), compressed or stretched to `steps`.
 * LTH's retraining from the rewind point k continues the dense
 * training's schedule (from = k, to = the recipe's last iteration, as
 * pb_ctx_recipe_steps counts them); learning-rate rewinding replays its
 * last t epochs (from = to - t * per_epoch). A warm-up is part of the
 * schedule like any other stretch of it. Hooks and masks as
 * pb_ctx_train. Fails unless 0 <= from < to <= the recipe's iterations. */
int pb_ctx_train_span(pb_prune_ctx *ctx, pb_recipe_which which, long from,
		      long to, long steps);

/* ---- declaring a pruner in one place (added after version 1) ----------
 * PB_PRUNER_DEFINE(NAME, fields...) defines the descriptor of pruner
 * NAME (its file is NAME.so), with PB_PRUNER_HEADER and .name = "NAME"
 * filled in, and the exported symbol that returns it; no ';' after it.
 * NAME must be a C identifier: a pruner named with '-' writes its
 * descriptor out with PB_PRUNER_HEADER and PB_PRUNER_EXPORT.
 *
 *   PB_PRUNER_DEFINE(l1, .version = "1.0", .prune = l1_prune,
 *                    .granularity = PB_GRANULARITY_CHANNEL,
 *                    PB_PRUNER_OPTIONS(l1_options),
 *                    .description = "...", .citation = "...")
 *
 * PB_PRUNER_OPTIONS(table) sets .options and .n_options from a static
 * array of pb_pruner_option. */
#define PB_PRUNER_OPTIONS(table) \
	.options = (table), \
	.n_options = (int)(sizeof(table) / sizeof((table)[0]))

/* The option channel pruners share, declared alike everywhere: the
 * fewest channels a group keeps, passed on as pb_ctx_select_channels'
 * min_keep (read it with pb_ctx_opt_int(ctx, "min_keep")). */
#define PB_OPTION_MIN_KEEP \
	{ .name = "min_keep", .type = PB_OPT_INT, .def = "1", \
	  .help = "channels every group keeps at least", .min = 1, .max = 1e6 }

#define PB_PRUNER_DEFINE(name_, ...) \
	static const pb_pruner name_##_descriptor = { \
		PB_PRUNER_HEADER, .name = #name_, __VA_ARGS__ \
	}; \
	PB_PRUNER_EXPORT(name_##_descriptor)

/* ---- helpers for what several pruners do (added after version 1) -------
 * Each does a job the core knows how to do, so a plugin file is its
 * algorithm and little else. Those taking no context are pure arithmetic
 * or memory of the plugin's own, inline here. */

/* A zeroed state of `size` bytes for create() to return in *state, freed
 * by the plugin (destroy can be `free` itself when the state holds no
 * other allocation). Fails, with the message set, when out of memory. */
static inline int pb_ctx_state_new(pb_prune_ctx *ctx, size_t size,
				   void **state)
{
	*state = calloc(1, size);
	return *state ? 0 : pb_ctx_fail(ctx, "out of memory (state of %lu "
					"bytes)", (unsigned long)size);
}

/* How many of n channels stay when the fraction `removed` of them goes:
 * n - round(removed * n), but at least min(min_keep, n). */
static inline int pb_ctx_kept_count(int n, double removed, int min_keep)
{
	int k = n - (int)lround(removed * n);

	if (min_keep > n)
		min_keep = n;
	return k < min_keep ? min_keep : k;
}

/* The fraction of the cell's target quantity that keeping kept[g]
 * channels in every group g would remove from the current model:
 * CHANNELS counts the prunable channels, PARAMS and MACS the whole
 * model's (as pb_ctx_config_cost), the way pb_ctx_select_channels
 * measures a candidate. How a plugin that picks its own counts checks
 * them against the budget. Fails for a sparsity target, or when a
 * kept[g] is outside [1, n_channels]. */
int pb_ctx_config_reached(pb_prune_ctx *ctx, const int *kept,
			  double *reached);

/* The per-layer override of the cell's target that applies to group g:
 * *amount is the fraction of its channels to remove that the last
 * override naming one of its producers asks for, or -1 when none names
 * one; *layer (when layer is not NULL) the name it gave, for messages,
 * or NULL. Fails when g is not a group, or when any override names a
 * layer that produces no channel group (not a conv or linear). */
int pb_ctx_group_override(pb_prune_ctx *ctx, int g, double *amount,
			  const char **layer);

/* For plugins that derive every group's channel count from one number
 * (a rate, a scale): config(user, x, kept) fills kept[g] for all groups
 * at parameter x, removing no less as x grows. Bisects x over [0, hi]
 * `iters` times against the cell's target (measured as
 * pb_ctx_config_reached does) and leaves in kept the closer of the two
 * configurations that bracket the target (the upper one on a tie), and
 * in *reached its fraction. Fails with PB_EIMPOSSIBLE when even x = hi
 * falls short of the target; *reached is then what x = hi removes (for
 * the plugin's own message, with pb_ctx_fail). */
int pb_ctx_bisect_config(pb_prune_ctx *ctx,
			 void (*config)(void *user, double x, int *kept),
			 void *user, double hi, int iters, int *kept,
			 double *reached);

/* Greedy removal by RAW scores across groups, for criteria that are on
 * one scale across layers (Network Slimming's |gamma|, Taylor
 * importance). pb_ctx_select_channels' global scope divides each score
 * by its group's mean first, so that filter norms of layers of other
 * sizes compare; for a learned or loss-based score that would undo the
 * criterion. Channels go one at a time, lowest score first (ties: lower
 * group, then lower channel), skipping a group at floors[g] channels,
 * until the cell's target is reached (measured against the model the
 * plugin was given, as the run's report measures it), or until
 * max_remove channels went (max_remove < 0: no limit; 0: none go, and
 * *reached only says whether the target is met already; score may then
 * be NULL). score[g] has one entry per current channel of group g;
 * groups with score[g] NULL, and non-prunable ones, are never cut.
 * Unless max_remove is 0 the model is rebuilt once, smaller (call
 * pb_ctx_model again). *reached is 1 when the target is met. Fails with
 * PB_EIMPOSSIBLE, the model unchanged, when every ranked group reaches
 * its floor first; not from a training hook. */
int pb_ctx_remove_lowest(pb_prune_ctx *ctx, const double *const *score,
			 const int *floors, int max_remove, int *reached);

/* The choice pb_ctx_remove_lowest makes, on a keep/kept the plugin holds
 * and without touching the model: for a plugin that removes channels
 * while the model trains (masking them in a training hook, where the
 * model keeps its shapes). Candidates are the channels still kept
 * (keep[g][c] != 0) of the groups with scores; the order, the floors,
 * max_remove and the measure of the target are pb_ctx_remove_lowest's.
 * Each channel chosen is cleared in keep, counted off kept[g], and given
 * to on_remove (may be NULL) at once, with ctx for masking it. *removed gets the count, *reached
 * 1 when the target is met (then nothing is chosen). Allowed in training
 * hooks; never fails for want of channels: compare *removed with what
 * was asked. */
int pb_ctx_pick_lowest(pb_prune_ctx *ctx, const double *const *score,
		       const int *floors, int max_remove, uint8_t *const *keep,
		       int *kept,
		       void (*on_remove)(void *user, pb_prune_ctx *ctx, int g,
					 int c),
		       void *user, int *removed, int *reached);

/* One filter of a channel group's producer: row `channel` of the (OC, C,
 * K, K) conv or (OUT, IN) linear weight of layer `layer`, the weights
 * that make output channel `channel`. Writable, as the model is. */
typedef struct pb_filter {
	int group;            /* g */
	int producer;         /* index into the group's producers[] */
	int layer;            /* that producer's layer index */
	int channel;          /* c, in [0, n) */
	int n;                /* filters of this producer: the group's
				 channels */
	size_t len;           /* weights per filter (C*K*K, or IN) */
	float *weight;        /* this filter's len weights */
	float *grad;          /* their gradients (NULL when not trainable) */
	float *bias;          /* its bias, or NULL when the layer has none */
	const float *all;     /* all n filters of the producer, filter c at
				 all + c * len (FPGM's distances) */
} pb_filter;

/* Calls fn(user, f) for every filter that produces group g's channels:
 * producer by producer in the group's order, channel by channel. A
 * nonzero return from fn stops the walk and is returned. Fails when g is
 * not a group, or a producer has no weight with one row per channel. */
int pb_ctx_each_filter(pb_prune_ctx *ctx, int g,
		       int (*fn)(void *user, const pb_filter *f),
		       void *user);

/* Channel scores (as pb_ctx_channel_scores makes them) filled from the
 * filters, for criteria of one filter at a time (norms, FPGM's distance
 * sums): in every prunable group, score[g][c] += (float)fn(user, f) for
 * filter c of each producer in turn; other groups score 0. *out is NULL
 * on failure (as pb_ctx_each_filter fails). */
int pb_ctx_filter_scores(pb_prune_ctx *ctx,
			 double (*fn)(void *user, const pb_filter *f),
			 void *user, pb_channel_scores **out);

/* keep[g][c] = 1 for every channel c of every group g of the current
 * model, the argument pb_ctx_keep_channels takes, in one allocation:
 * release it with pb_ctx_keep_free. Channel counts are the model's now;
 * after removing channels make a new one. */
int pb_ctx_keep_new(pb_prune_ctx *ctx, uint8_t ***keep);
/* NULL is fine. */
void pb_ctx_keep_free(uint8_t **keep);

/* Marks in keep[0..n) the n_keep channels with the highest score (1) and
 * the others 0: the lowest go first, ties to the lower index, as
 * pb_ctx_select_channels chooses within a group. Fails when n_keep is
 * outside [0, n]. */
int pb_ctx_keep_highest(pb_prune_ctx *ctx, const double *score, int n,
			int n_keep, uint8_t *keep);

/* Re-initialises every parameter of the current model from the cell's
 * RNG, drawn as the dense recipe's `init` draws a fresh model, then
 * re-applies the masks so pruned weights stay zero: training from
 * scratch without touching core internals (Slimming's and LTH's from =
 * scratch, LTH's reinit control). */
int pb_ctx_reinit_params(pb_prune_ctx *ctx);

/* ---- gradients outside training (added after version 1) ----------------
 * For criteria that need a gradient of the model as it is evaluated,
 * not as it trains (SNIP's |g*w|, SynFlow's synaptic flow): the forward
 * runs in eval mode, BN being the fixed affine map of its running
 * statistics (at initialisation mean 0 and variance 1) and dropout off,
 * and the backward goes through that same function. Nothing in the
 * model changes but the parameters' gradients; running statistics are
 * not updated. */

/* A plugin's scalar objective R of the logits: returns R and writes
 * dR/dlogits into dlogits. logits and dlogits are (B, classes), row
 * by row; dlogits is zeroed before the call. */
typedef double (*pb_objective_fn)(void *user, const float *logits, int B,
				  int classes, float *dlogits);

/* Runs the current model on x (B inputs of the model's input shape, C x
 * H x W each) in eval mode, asks fn for R and dR/dlogits, and
 * backpropagates: afterwards every trainable parameter's grad holds
 * dR/dparam, zeroed first (masked weights included: the gradient at
 * their value 0). *value (may be NULL) gets R. Fails, the gradients
 * then meaningless, when R, a logit or a gradient is not finite (say,
 * overflow); not from a training hook. */
int pb_ctx_objective_grad(pb_prune_ctx *ctx, const float *x, int B,
			  pb_objective_fn fn, void *user, double *value);

/* pb_ctx_objective_grad of the training loss, the mean cross-entropy of
 * the logits against labels y (B of them, each below the model's
 * classes): SNIP's objective. *loss (may be NULL) gets it. */
int pb_ctx_loss_grad(pb_prune_ctx *ctx, const float *x, const uint8_t *y,
		     int B, double *loss);

/* ---- sharing a trunk of rounds across targets (added after version 1) ---
 * A plugin that prunes in rounds whose first ones do not depend on the
 * target (LTH's rate per round: 1 - (1 - rate)^r after round r, only the
 * last round landing on the target) computes those rounds once per
 * trunk rather than once per target: the cell of a higher target passes
 * through them on its way. The trunk's key is everything that determines
 * those rounds: the plugin (name, version), its options but the target's
 * amount and trunk_final_options, the scope and per-layer overrides, the
 * recipes, the training data, the dense model the cell was given (its
 * CRC-32), the BLAS kernel and the thread count. The state after each
 * trunk round (the model's tensors, masks and BN statistics, every
 * snapshot slot, the rounds reported, the trainings done) is kept in the
 * run's cache; a cell reads the deepest round it can use, computes the
 * missing ones (storing each) and then its own last round.
 *
 * Reproducibility: round r draws from a random stream seeded by the
 * trunk's key and r, not from the cell's (which depends on the target),
 * so a cell's numbers are the same bits whether its rounds were computed
 * or read. Between pb_ctx_trunk_begin and pb_ctx_trunk_end, pb_ctx_rng
 * and every pb_ctx_* helper that draws (training, pb_ctx_reinit_params,
 * calibration, batches) use that stream; after pb_ctx_trunk_end, the
 * cell's own again. A plugin must keep no state across rounds but the
 * model, its masks and snapshots, or the trunk cannot restore it.
 * Without a cache (`prunebench prune`) nothing is read or stored, the
 * streams are the same: the same numbers.
 *
 * Parallel cells: pb_ctx_trunk_begin takes the trunk's lock (flock(2) on
 * a file of its own in the cache) and holds it until pb_ctx_trunk_end,
 * so a second cell of the same trunk waits, then reads what the first
 * stored. A cached round that does not verify (checksum, key, shapes) is
 * computed again, never trusted.
 *
 * Use:
 *   pb_ctx_trunk_begin(ctx, n, &start);   n = rounds before the last
 *   for (r = 1; r <= rounds; r++) {
 *           if (r == n + 1) pb_ctx_trunk_end(ctx);
 *           if (r <= start) continue;       (read from the cache)
 *           ... prune round r, pb_ctx_report_round, train ...
 *           if (r <= n) pb_ctx_trunk_save(ctx, r);
 *   }
 * A plugin that does not call these works as before. Not from a
 * training hook. */

/* Opens the trunk of this cell's first n rounds (n >= 0) and restores
 * the state after the deepest of them that is cached and intact: *start
 * is that round (0: none; the model untouched). Sets the random stream
 * of round *start + 1. */
int pb_ctx_trunk_begin(pb_prune_ctx *ctx, int n, int *start);
/* After trunk round r (*start < r <= n) is complete: stores its state
 * (unless the cache has it already) and sets the random stream of round
 * r + 1. */
int pb_ctx_trunk_save(pb_prune_ctx *ctx, int r);
/* Releases the trunk's lock; the cell's own random stream again, for the
 * last round. */
int pb_ctx_trunk_end(pb_prune_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
