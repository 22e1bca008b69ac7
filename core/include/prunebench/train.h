/* Training: SGD with momentum (optionally Nesterov) and decoupled-from-BN
 * weight decay, learning-rate schedules with linear warm-up, the epoch
 * loop with a progress line and a per-epoch CSV, and evaluation. */
#ifndef PRUNEBENCH_TRAIN_H
#define PRUNEBENCH_TRAIN_H

#include <stdio.h>

#include <gsl/gsl_rng.h>

#include "prunebench/data.h"
#include "prunebench/error.h"
#include "prunebench/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum pb_schedule_kind {
	PB_SCHED_CONSTANT,
	PB_SCHED_STEP,     /* lr *= gamma at each milestone epoch */
	PB_SCHED_COSINE    /* cosine from lr to min_lr over all epochs */
} pb_schedule_kind;

#define PB_MAX_MILESTONES 8

typedef struct pb_recipe {
	int epochs;
	int batch;
	double lr;
	double momentum;
	int nesterov;
	double weight_decay;
	int decay_bn_bias;        /* 1: also decay BN parameters and biases */
	pb_schedule_kind schedule;
	double min_lr;            /* cosine floor */
	double gamma;             /* step factor */
	int milestones[PB_MAX_MILESTONES]; /* step epochs */
	int n_milestones;
	double warmup_epochs;     /* linear warm-up from lr/warmup_div; may be fractional */
	pb_augment aug;
	int val_size;             /* samples held out of the training set */
	int keep_best;            /* 1: restore the epoch with best val accuracy */
	int eval_batch;
	pb_init_kind init;        /* how a training from scratch starts */
	int keep_last;            /* 1: an epoch's last, partial batch is
				     trained on too (PyTorch's DataLoader
				     default); 0: dropped (so every batch
				     gives BN the same statistics) */
} pb_recipe;

/* A sensible default recipe (docs/models-data-training.md, "Recipes"). */
void pb_recipe_default(pb_recipe *r);
/* Sets one recipe key from text ("lr", "0.05"); used by the CLI and
 * experiment files. Returns PB_ENOTFOUND for an unknown key. */
int pb_recipe_set(pb_recipe *r, const char *key, const char *value,
		  pb_error *err);
/* Refuses a recipe that cannot train as written: no epochs, a cosine
 * floor above the rate, a warm-up longer than the training. *key (may be
 * NULL) gets the recipe key at fault. */
int pb_recipe_check(const pb_recipe *r, const char **key, pb_error *err);
/* Optimizer steps in one epoch of n training samples: n / batch, one
 * more for a kept partial batch of at least two samples. */
long pb_recipe_steps_per_epoch(const pb_recipe *r, long n);
/* Learning rate at a fractional epoch t in [0, epochs). */
double pb_recipe_lr(const pb_recipe *r, double t);

/* Optimizer state: a momentum buffer laid out like the model's flat
 * trainable array, plus a per-element decay flag. */
typedef struct pb_sgd pb_sgd;
int pb_sgd_create(pb_sgd **out, pb_model *m, const pb_recipe *r,
		  pb_error *err);
void pb_sgd_free(pb_sgd *s);
/* One update with learning rate lr using the model's current grads. */
void pb_sgd_step(pb_sgd *s, pb_model *m, double lr);

/* Hooks the training loop calls (all optional). Returning non-zero from a
 * hook stops training with that code. */
typedef struct pb_train_hooks {
	void *user;
	/* after backward, before the optimizer step */
	int (*after_backward)(void *user, pb_model *m, long step);
	/* after the optimizer step */
	int (*after_step)(void *user, pb_model *m, long step);
	int (*after_epoch)(void *user, pb_model *m, int epoch);
} pb_train_hooks;

typedef struct pb_epoch_stats {
	int epoch;
	double lr;
	double train_loss, train_acc;
	double val_loss, val_acc;
	double seconds;
} pb_epoch_stats;

/* The stretch of a recipe's learning-rate schedule a training follows:
 * the rate at its update i of n is sched's at epoch from + (to - from) i
 * / n. A training can so continue another's schedule from a point (LTH's
 * retraining from the rewind iteration) or replay its end (learning-rate
 * rewinding), in as many updates as it makes. */
typedef struct pb_lr_span {
	const pb_recipe *sched;       /* NULL: the training's own recipe */
	double from, to;              /* epochs of sched's schedule */
} pb_lr_span;

typedef struct pb_train_opts {
	const pb_train_hooks *hooks;  /* may be NULL */
	const char *csv_path;         /* per-epoch metrics; NULL = none */
	FILE *progress;               /* progress output; NULL = silent */
	const char *label;            /* prefix of progress lines */
	long max_steps;               /* stop after this many steps; 0 = no cap */
	pb_lr_span span;              /* sched NULL: the usual schedule */
} pb_train_opts;

/* Trains m on train for r->epochs, evaluating on val (may be NULL or
 * empty) after each epoch. rng drives shuffling, augmentation and dropout.
 * A NaN or inf loss stops with PB_EDIVERGED. */
int pb_train(pb_model *m, const pb_dataset *train, const pb_dataset *val,
	     const pb_recipe *r, gsl_rng *rng, const pb_train_opts *opts,
	     pb_epoch_stats *last, pb_error *err);

/* The same training, stoppable after any update and continued later with
 * its optimizer state, learning-rate schedule and data order intact, so
 * that something can happen to the model between updates (a pruning
 * schedule's pruning points). Running it to the end in one go is exactly
 * pb_train. The model may change its weights and masks between calls,
 * never its shapes. */
typedef struct pb_trainer pb_trainer;

int pb_trainer_new(pb_trainer **out, pb_model *m, const pb_dataset *train,
		   const pb_dataset *val, const pb_recipe *r, gsl_rng *rng,
		   const pb_train_opts *opts, pb_error *err);
/* Trains until `until` updates have been made in all (until < 0: to the
 * end). Stopping leaves the end of an epoch whose updates are all made
 * (validation, CSV line, after_epoch hook) to the next call. */
int pb_trainer_run(pb_trainer *t, long until, pb_error *err);
/* Runs to the end, restores the best epoch when the recipe says so and
 * closes the CSV; last (may be NULL) gets the last epoch's statistics. */
int pb_trainer_finish(pb_trainer *t, pb_epoch_stats *last, pb_error *err);
/* Ends a run that is given up (its caller failed between updates): closes
 * the CSV with the epochs done so far and trains nothing more. */
int pb_trainer_close(pb_trainer *t, pb_error *err);
long pb_trainer_steps_done(const pb_trainer *t);
/* Updates the whole run makes (epochs x steps per epoch, or max_steps). */
long pb_trainer_steps_total(const pb_trainer *t);
void pb_trainer_free(pb_trainer *t);

/* Top-1 accuracy and mean loss of m (eval mode) on d. */
int pb_evaluate(pb_model *m, const pb_dataset *d, int batch, double *acc,
		double *loss, pb_error *err);

/* The three splits an experiment uses. Pixel statistics come from the
 * whole training file (never the test set) and normalise all three; val
 * is held out of the training file by a stratified split drawn from
 * split_seed, so it is the same for every training seed. */
typedef struct pb_splits {
	pb_dataset train, val, test;
	float mean[PB_MAX_CHANNELS], std[PB_MAX_CHANNELS];
} pb_splits;

int pb_splits_load(pb_splits *s, const pb_data_spec *spec, int val_size,
		   unsigned long split_seed, pb_error *err);
void pb_splits_free(pb_splits *s);

#ifdef __cplusplus
}
#endif
#endif
