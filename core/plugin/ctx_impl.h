/* The plugin context's internals, shared by the ctx*.c files (the
 * pb_ctx_* helpers a plugin calls) and run.c (pb_prune_run, which makes a
 * context, drives the hooks and reports). Not installed. */
#ifndef PB_PRUNE_CTX_IMPL_H
#define PB_PRUNE_CTX_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "prune/prune_impl.h"
#include "prunebench/plugin.h"

struct pb_prune_ctx {
	pb_model *model;                /* owned; replaced by channel removal */
	const pb_prune_setup *setup;
	const pb_pruner *pr;
	const pb_options *opts;         /* setup's, or own_opts */
	pb_options *own_opts;
	void *state;                    /* from create() */
	pb_error *err;

	/* Channel groups of the current model, derived on first use. */
	pb_channel_group *groups;
	int n_groups;
	int have_groups;

	pb_model *snap[PB_CTX_SNAPSHOTS];

	/* Inside pb_ctx_train: the model must not be replaced. */
	int training;

	/* pb_prune_run's report, its *_before fields filled: what
	 * pb_ctx_report_round measures against and appends to. */
	pb_prune_report *report;
	pbi_measure before;             /* the model the plugin was given */

	/* Calibration: a fixed order of training images for the cell. */
	size_t *calib_perm;
	float *calib_x;
	size_t calib_x_cap;
	float *act;
	size_t act_cap;

	/* The random stream the helpers draw from: the setup's (the
	 * cell's), or a trunk round's between pb_ctx_trunk_begin and
	 * pb_ctx_trunk_end. */
	gsl_rng *rng;

	/* Trunk sharing (ctx_trunk.c): the key of the trunk begun, its
	 * stream, the cache folder's lock while held, the round being
	 * computed (0: none), and the trainings of rounds 1 ... round. */
	int trunk_on;
	char trunk_key[17];
	char *trunk_text;
	gsl_rng *trunk_rng;
	struct pbi_trunk *trunk;
	int trunk_round, trunk_n;
	struct pbi_trunk_train *trains;
	int n_trains, cap_trains;

	/* pb_ctx_train_batch's own shuffled stream. */
	size_t *batch_perm;
	long batch_pos;
	float *batch_x;
	uint8_t *batch_y;
	size_t batch_cap;
};

/* Sets up ctx around a model it takes ownership of. */
void pbi_ctx_init(pb_prune_ctx *ctx, pb_model *model,
		  const pb_prune_setup *setup, const pb_options *opts,
		  pb_error *err);
/* Frees everything but ctx->model (the caller keeps or frees it). */
void pbi_ctx_release(pb_prune_ctx *ctx);
/* Replaces the model (after surgery); frees the old one. */
void pbi_ctx_replace_model(pb_prune_ctx *ctx, pb_model *m);
/* Measures m into rep's *_after fields and rep->reached (rep->kind set),
 * relative to `before`. */
int pbi_report_measure(pb_model *m, const pbi_measure *before,
		       pb_prune_report *rep, pb_error *err);
/* Releases what a trunk holds (its lock, stream and records). */
void pbi_ctx_trunk_release(pb_prune_ctx *ctx);
/* Notes a training of the plugin's (ctx_train.c) for the trunk's
 * record, and reports it to the runner. */
void pbi_ctx_on_train(pb_prune_ctx *ctx, pb_recipe_which which,
		      double epochs, long steps, const pb_lr_span *span);

/* Derives the groups when needed. */
int pbi_ctx_groups(pb_prune_ctx *ctx);

/* Checks the ctx files share; each fails with a message naming the
 * plugin. Inside pb_ctx_train (the model cannot be replaced under a
 * running pb_train; `what` names the helper called): */
int pbi_ctx_refuse_in_training(pb_prune_ctx *ctx, const char *what);
/* Inside pb_ctx_train, for helpers a hook must not call at all: */
int pbi_ctx_refuse_in_hook(pb_prune_ctx *ctx, const char *what);
/* A channel configuration with a kept[g] outside [1, n_channels] (the
 * groups derived): */
int pbi_ctx_check_kept(pb_prune_ctx *ctx, const int *kept);
/* An amount outside [0, 1) (`what`: "sparsity", "channel"): */
int pbi_ctx_check_amount(pb_prune_ctx *ctx, double amount, const char *what);
/* A sparsity target given to a channel helper: */
int pbi_ctx_check_channel_target(pb_prune_ctx *ctx, const pb_target *t);
/* No training data in this run (`what` needed it): */
int pbi_ctx_need_data(pb_prune_ctx *ctx, const char *what);

/* pb_prune_run on *model itself rather than a copy: the pruner's masks
 * land on that model (a training run's, for the gradual schedule), and
 * channel removal replaces it (*model is then the new one; the old is
 * freed). On failure *model is still a valid model, in whatever state
 * the pruner left it. */
int pbi_prune_apply(pb_model **model, const pb_prune_setup *su,
		    pb_prune_report *rep, pb_error *err);

#endif
