/* The state of a running cell, shared by the files of one cell's
 * pipeline (cell.c and cell_*.c): its environment, result, random
 * streams, the trainings of its pruning phase and its trunk. Internal;
 * the public side is pb_cell_run in prunebench/experiment.h. */
#ifndef PB_EXPERIMENT_CELL_IMPL_H
#define PB_EXPERIMENT_CELL_IMPL_H

#include <gsl/gsl_rng.h>

#include "plugin/ctx_impl.h"
#include "plugin/trunk.h"
#include "prune/schedule.h"
#include "prunebench/experiment.h"
#include "prunebench/train.h"

/* One training of the pruning phase, as it ran: replayed on the dense
 * model for the matched-budget control. */
typedef struct pbi_train_rec {
	pb_recipe r;
	long max_steps;
	pb_lr_span span;              /* sched NULL: r's own schedule */
	int trunk;                    /* the trunk round it belongs to; 0:
					 the cell's own */
} pbi_train_rec;

/* A running cell: its environment, result and what it has recorded. */
typedef struct pbi_cell {
	const pb_cell_env *env;
	pb_cell_result *res;
	pb_error *err;
	gsl_rng *rng;                 /* the cell's stream */
	pb_prune_setup su;            /* the pruner's set-up */
	pbi_rounds rounds;
	const char *phase;
	int epochs;
	pb_trainer *gradual;          /* the gradual schedule's fine-tune */
	pbi_train_rec *recs;
	int n_recs, cap_recs, recs_failed;
	pb_recipe round_r;            /* iterative: training between rounds */
	long round_steps;
	/* Trunk sharing. The random streams of training phases are seeded
	 * from "seed_prefix|phase": the cell's stream, or in a trunk round
	 * the trunk's key. */
	const char *seed_prefix;
	pb_trunk_info trunk_info;     /* the plugin's trunk (pb_ctx_trunk_*) */
	char trunk_key[17];           /* the schedule's trunk, once begun */
	char *trunk_text;
	char trunk_seed[40];          /* "trunk KEY" */
	int trunk_K;                  /* its rounds this cell takes */
	int cur_round;                /* the schedule's round (1-based) */
	pbi_trunk *trunk;             /* the cache, locked, while computing */
	gsl_rng *trunk_rng;           /* a trunk round's pruning stream */
	pbi_trunk_train *trunk_trains;  /* trainings of the trunk rounds */
	int n_trunk_trains, cap_trunk_trains;
	/* The threads the cell started with, and what spare cores raised
	 * them to inside its own trainings (env->spare_threads). */
	int threads_base, threads_now;
	int threads_said;             /* the most its log has told of */
} pbi_cell;

/* The splits pbi_cell_evaluate measures. */
enum { PBI_CELL_TEST, PBI_CELL_VAL };

/* ---- training inside a cell (core/experiment/cell_train.c) --------------- */

/* Notes the threads the cell starts with. */
void pbi_cell_threads_init(pbi_cell *x);
/* Back to the threads the cell started with (after a training that took
 * spare cores, and before any plugin code). */
void pbi_cell_threads_base(pbi_cell *x);
/* Tells env->status the phase and epoch, when it listens. */
void pbi_cell_status(pbi_cell *x, const char *phase, int epoch, int epochs);
/* FILES + ext, malloc-ed; NULL when the cell writes no files. */
char *pbi_cell_file(const pbi_cell *x, const char *ext);
long pbi_cell_steps_per_epoch(const pbi_cell *x, const pb_recipe *r);
/* Top-1 on the test or validation split (PBI_CELL_TEST, PBI_CELL_VAL);
 * NaN without data. */
int pbi_cell_evaluate(pbi_cell *x, pb_model *m, int split, double *acc);
/* A fresh training session of phase `phase` on its own random stream. */
int pbi_cell_trainer(pbi_cell *x, pb_model *m, const pb_recipe *r,
		     long max_steps, const pb_lr_span *span, const char *csv,
		     const char *phase, gsl_rng **rng, pb_trainer **t,
		     pb_train_hooks *hooks);
/* One whole training of phase `phase` (pbi_cell_trainer, run to its end). */
int pbi_cell_train(pbi_cell *x, pb_model *m, const pb_recipe *r,
		   long max_steps, const pb_lr_span *span, const char *csv,
		   const char *phase);
/* Notes a training of a schedule's trunk round for the cache. */
void pbi_cell_note_trunk_training(pbi_cell *x, const pbi_trunk_train *t);
/* Records a training of the pruning phase, for the matched control and
 * the record's prune_epochs. */
void pbi_cell_record_training(pbi_cell *x, const pb_recipe *r,
			      long max_steps, const pb_lr_span *span);
/* pb_prune_setup.on_train: a plugin's pb_ctx_train. */
void pbi_cell_plugin_training(void *user, pb_recipe_which which,
			      double epochs, long steps,
			      const pb_lr_span *span);

/* ---- the pruning schedule (core/experiment/cell_schedule.c) -------------- */

/* Prunes *m to t once with the cell's pruner (the schedule's prune
 * callback; user is the pbi_cell). */
int pbi_cell_prune(void *user, pb_model **m, const pb_target *t,
		   pb_error *err);
/* The pruned model of a one-shot or iterative schedule. */
int pbi_cell_prune_rounds(pbi_cell *x, pb_model **m);
/* The gradual schedule: the fine-tune itself, pruned along the ramp. */
int pbi_cell_prune_gradually(pbi_cell *x, pb_model **m, const char *csv);

/* ---- the scratch controls (core/experiment/cell_scratch.c) --------------- */

/* The pruned shape and mask trained from a fresh initialisation
 * (Scratch-E, Scratch-B). */
int pbi_cell_train_from_scratch(pbi_cell *x, pb_model *m, const char *csv);

/* ---- the matched-budget control (core/experiment/cell_matched.c) --------- */

/* The unpruned dense model trained as the cell's model was; its failure
 * is recorded with it and leaves the pruned result standing. */
void pbi_cell_matched_control(pbi_cell *x);

/* ---- measurement (core/experiment/cell_measure.c) ------------------------ */

/* Measures the final model against the dense one and saves it. */
int pbi_cell_measure_and_save(pbi_cell *x, pb_model *m);
/* The metrics' numbers into the record. */
void pbi_cell_fill_metrics(pb_record *r, const pb_metrics *mt);
/* A warning in the record when the reached amount is far from t's. */
void pbi_cell_off_target(pb_record *r, const pb_target *t);

#endif
