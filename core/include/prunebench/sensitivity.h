/* Sensitivity scans: how much validation accuracy each layer loses when
 * it alone is pruned, and the per-layer amounts a practitioner derives
 * from that (the "prune the insensitive layers more" recipe).
 *
 * The scan prunes one layer at a time, at each level, with the plugin's
 * own criterion: a target of the plugin's kind (sparsity for weight
 * pruners, channels for channel pruners), layer scope, amount 0, and an
 * override giving that layer the level, run through pb_prune_run. Every
 * other layer keeps everything. The pruned model is evaluated on the
 * validation split without fine-tuning. Channel pruners are scanned per
 * prunable channel group, named by its first producer layer. Jobs (layer
 * x level) run in parallel, each on its own copy of the model with its
 * own random stream, so the result does not depend on the thread count.
 *
 * Amounts from a scan (pb_sensitivity_amounts): each layer gets the
 * largest level before the first one whose validation drop exceeds
 * max_drop points. With a goal (a target), those amounts are scaled by
 * one factor k (each capped at the largest level scanned) until the goal
 * is reached (for a channel pruner, whose amounts move in whole
 * channels, the closer of the two factors that bracket it): the least
 * sensitive layers, which got the most, are pruned the most. The result
 * is a target whose overrides name every scanned layer, with layer
 * scope. */
#ifndef PRUNEBENCH_SENSITIVITY_H
#define PRUNEBENCH_SENSITIVITY_H

#include <stdint.h>
#include <stdio.h>

#include "prunebench/error.h"
#include "prunebench/model.h"
#include "prunebench/plugin.h"
#include "prunebench/pruner.h"
#include "prunebench/train.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PB_SENS_LEVELS_MAX 32

typedef struct pb_sens_layer {
	char name[48];        /* the layer (a group's first producer) */
	uint64_t size;        /* its weights, or its group's channels */
	/* Correct validation predictions at each level, of `total`. */
	long correct[PB_SENS_LEVELS_MAX];
} pb_sens_layer;

typedef struct pb_sensitivity {
	char plugin[64];
	pb_granularity granularity;
	long total;           /* validation images */
	long dense_correct;   /* ... the dense model gets right */
	int n_levels;
	double levels[PB_SENS_LEVELS_MAX];   /* increasing, in (0, 1) */
	int n_layers;
	pb_sens_layer *layers;
} pb_sensitivity;

/* Top-1 in percent of layer l at level j; j = -1: the dense model. */
double pb_sens_acc(const pb_sensitivity *s, int l, int j);

typedef struct pb_sens_opts {
	const pb_pruner *pruner;
	const pb_options *options;   /* NULL: the declared defaults */
	int n_levels;
	const double *levels;        /* increasing, in (0, 1) */
	const pb_splits *splits;     /* validation for the accuracy; train
					and val for data-driven plugins */
	const pb_recipe *recipe;     /* for plugins that train; may be NULL */
	int eval_batch;              /* 0: 500 */
	int threads;                 /* 0: all cores */
	const char *stream;          /* seeds each job's stream; NULL: "sens" */
	FILE *progress;              /* a line per finished layer; may be NULL */
} pb_sens_opts;

int pb_sensitivity_scan(const pb_model *dense, const pb_sens_opts *o,
			pb_sensitivity **out, pb_error *err);
void pb_sensitivity_free(pb_sensitivity *s);

/* The scan as CSV: "#" comment lines (key, plugin, dense top-1), a
 * header, then per layer a line for the dense model (amount 0) and one
 * per level: layer,size,amount,correct,total,val_top1_pct,drop_pt. key
 * (may be NULL) is written as "# key KEY" and checked when reading. */
int pb_sensitivity_write_csv(const pb_sensitivity *s, const char *key,
			     FILE *f);
/* Reads a CSV written above; with key, a file of another key is
 * refused (PB_EMISMATCH). */
int pb_sensitivity_read_csv(const char *path, const char *key,
			    pb_sensitivity **out, pb_error *err);

/* "0.1,0.2,...": up to PB_SENS_LEVELS_MAX increasing amounts in (0, 1),
 * separated by commas or blanks. */
int pb_sensitivity_parse_levels(const char *text, double *levels, int *n,
				pb_error *err);

/* Per-layer amounts (above) into *out: with goal, of goal's kind, and
 * goal's amount for a sparsity goal; otherwise (a channel goal, or none:
 * the scan's kind, sparsity or channels) the amount the overrides reach.
 * *reached (may be NULL) gets what the overrides reach of out's kind on
 * dense, computed as the selection rounds (whole weights, whole
 * channels). */
int pb_sensitivity_amounts(const pb_sensitivity *s, const pb_model *dense,
			   double max_drop, const pb_target *goal,
			   pb_target *out, double *reached, pb_error *err);

#ifdef __cplusplus
}
#endif
#endif
