/* Trunks: the state after each of the rounds that cells of several
 * targets share (an LTH trajectory, an iterative schedule's rounds
 * toward the method's highest target), kept in the run's cache so that
 * each round is computed once. Used by the plugin context
 * (pb_ctx_trunk_*, ctx_trunk.c) and by the cell pipeline (the iterative
 * schedule and the matched-budget control, core/experiment/cell_schedule.c
 * and cell_matched.c). Internal.
 *
 * A trunk lives in CACHE/trunk-KEY/, KEY the 16 hex digits of a 64-bit
 * FNV-1a hash of the trunk's key text (everything that determines its
 * rounds). Round R is the files rR.ckpt and rR.ini (the model: its
 * tensors, masks and BN statistics, and its shapes), rR.snapS.ckpt and
 * .ini for each snapshot slot S in use, and rR.meta, written last: the
 * key text, the reached amount after each round, the trainings done, the
 * CRC-32 of each of the round's other files, and a CRC-32 of the meta
 * text itself. Every file is written under a temporary name and renamed;
 * a round counts only when its meta verifies and every file it names
 * has the CRC the meta says and loads (checkpoints check their own CRC
 * and carry the key as their tag). Anything else is computed again.
 *
 * Writers of one trunk exclude each other with flock(2) on
 * CACHE/trunk-KEY/lock, taken for as long as a cell computes its trunk
 * rounds: a second cell of the trunk waits, then reads them. */
#ifndef PB_PLUGIN_TRUNK_H
#define PB_PLUGIN_TRUNK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <gsl/gsl_rng.h>

#include "prunebench/data.h"
#include "prunebench/error.h"
#include "prunebench/model.h"
#include "prunebench/plugin.h"

/* One training of a trunk round, as pb_prune_setup.on_train reports it
 * (the stretch of schedule, when there is one, is of the same recipe):
 * replayed through on_train when the round is read, so that the record
 * (prune_epochs) and the matched control see the same trainings. */
typedef struct pbi_trunk_train {
	int round;              /* the trunk round it belongs to */
	int which;              /* pb_recipe_which */
	double epochs;
	long steps;
	int has_span;
	double span_from, span_to;
} pbi_trunk_train;

/* The state after a round. */
typedef struct pbi_trunk_state {
	pb_model *model;
	pb_model *snap[PB_CTX_SNAPSHOTS];
	double *rounds;         /* reached amount after each round so far */
	int n_rounds;
	pbi_trunk_train *trains;   /* every training of rounds 1 ... R */
	int n_trains;
} pbi_trunk_state;

void pbi_trunk_state_free(pbi_trunk_state *st);

/* 64-bit FNV-1a of text, as 16 hex digits into key[17]. */
void pbi_trunk_hash(const char *text, char key[17]);

/* The random stream of round r of the trunk `key` (what): seeded from
 * the key and the round alone, so a round draws the same whoever
 * computes it. */
void pbi_trunk_rng_set(gsl_rng *rng, const char *key, int r,
		       const char *what);

/* The options of a plugin as text ("a=1 b=x"), without those named in
 * its trunk_final_options: the part of a trunk's key they give. */
void pbi_trunk_options(const pb_pruner *pr, const pb_options *o, char *buf,
		       size_t n);

/* CRC-32 of every state tensor of m (the dense model a trunk starts
 * from). */
uint32_t pbi_model_crc(pb_model *m);

/* "N:YCRC:XCRC": the training split's size, the CRC-32 of its labels
 * and of its first 64 images, into buf: which data a trunk trained on. */
void pbi_trunk_data(const pb_dataset *tr, char *buf, size_t n);

typedef struct pbi_trunk pbi_trunk;

/* Opens (creating) DIR/trunk-KEY for key text `text` and takes its lock,
 * waiting for another writer to finish. log (may be NULL) gets a line
 * when it has to wait and when a cached round is unusable. */
int pbi_trunk_open(pbi_trunk **out, const char *dir, const char *text,
		   FILE *log, pb_error *err);
/* Round r's state into *st (a fresh model of each of its shapes), when
 * it is cached and verifies; *found 0 otherwise (unusable files are
 * said in the log and left to be overwritten). */
int pbi_trunk_load(pbi_trunk *t, int r, pbi_trunk_state *st, int *found,
		   pb_error *err);
/* Stores round r's state. */
int pbi_trunk_store(pbi_trunk *t, int r, const pbi_trunk_state *st,
		    pb_error *err);
/* The deepest round in [1, n] that loads, into *st and *found (0: none). */
int pbi_trunk_deepest(pbi_trunk *t, int n, pbi_trunk_state *st, int *found,
		      pb_error *err);
/* Releases the lock; NULL is fine. */
void pbi_trunk_close(pbi_trunk *t);

#endif
