/* Internal pieces of the experiment runner: the dense-model cache and
 * hashing helpers. Not installed; pbi_ functions are not exported. */
#ifndef PB_EXPERIMENT_IMPL_H
#define PB_EXPERIMENT_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/file.h"
#include "base/ini_doc.h"
#include "prunebench/experiment.h"
#include "prunebench/model.h"
#include "prunebench/train.h"
#include "train/train_impl.h"

/* ---- the dense cache (core/experiment/dense_cache.c) ------------------------------- */

/* The dense model of `seed`: loaded from the cache when there, otherwise
 * trained with e->dense on sp (threads inside) and stored (checkpoint and
 * training curve CSV, both written to a temporary name and renamed).
 * The model at each training point in points[] (iterations, sorted) is
 * kept as BASE.stepN.ckpt; a cached model missing some has the start of
 * its training run again to write them. *csv gets the curve's path and
 * *base the points' BASE (both malloc-ed). log may be NULL. load_only:
 * a missing or unusable model, or missing points, is an error rather
 * than a training (the cells phase). */
int pbi_dense_get(const pb_experiment *e, const pb_splits *sp,
		  unsigned long seed, const long *points, int n_points,
		  int load_only, FILE *log, pb_model **out, char **csv,
		  char **base, int *trained, pb_error *err);
/* CACHE/dense-MODEL-sSEED-KEY (no extension), malloc-ed. */
char *pbi_dense_base(const pb_experiment *e, const pb_model *m,
		     unsigned long seed);

/* ---- hashing (core/experiment/cells.c) ------------------------------------ */

/* Whether the cells of method mi (-1: the controls) are quantized to
 * int8 (the method's quantize key, else the experiment's), and *act
 * whether activations are too. */
int pbi_cell_int8(const pb_experiment *e, int mi, int *act);

/* Seeds an RNG stream from text: FNV-1a folded to 32 bits, never 0. */
unsigned long pbi_seed_from(const char *text);

/* ---- epochs and trunks (core/experiment/cell_epochs.c) ------------------ */

/* Images in the training split, from the data spec and val_size (no
 * data loaded): the named sets' sizes, synthetic:N's N. */
double pbi_train_images(const pb_experiment *e);
/* The target whose trajectory method m's cells at target t follow as
 * their trunk: for an iterative schedule, the method's highest target of
 * the same kind, scope and overrides (none with layers = sensitivity);
 * else t. */
int pbi_method_trunk_hi(const pb_experiment *e, const pb_exp_method *m,
			int t);
/* The text that identifies cell c's trunk within its seed (the plugin
 * and its options without trunk_final_options, scope, schedule, the
 * trunk's target kind and overrides): cells with the same text share
 * their trunk rounds. 0 when c shares none. */
int pbi_trunk_group(const pb_experiment *e, const pb_cell *c, char *buf,
		    size_t n);

/* ---- one [prune.NAME] section (core/experiment/method_ini.c) ------------- */

/* Reads section s into m: the runner's keys, per-layer overrides
 * checked against `model`, the plugin (opened from sp) and its options.
 * Errors go to c (FILE:LINE). */
int pbi_parse_method(pbi_ini_doc *c, pb_experiment *e, pb_exp_method *m,
		     const pbi_ini_section *s, const pb_plugin_path *sp,
		     const pb_model *model);

/* ---- layers = sensitivity:D (core/experiment/method_sensitivity.c) ------- */

/* layers = sensitivity:D or sensitivity_levels = ... of section s. */
int pbi_parse_sensitivity_key(pbi_ini_doc *c, const pbi_ini_section *s,
			      const pbi_ini_key *k, pb_exp_method *m);
/* After the section's keys: the levels' default, no layer.X beside
 * sensitivity, layer scope, the label. */
int pbi_check_sensitivity(pbi_ini_doc *c, const pbi_ini_section *s,
			  pb_exp_method *m);
/* The scan of method m on seed's dense model: read from the cache, or run
 * (threads) and stored there atomically. A copy goes to
 * OUTPUT/sensitivity/METHOD-sSEED.csv for the plots. */
int pbi_sens_scan(const pb_experiment *e, const pb_exp_method *m,
		  unsigned long seed, const pb_model *dense,
		  const pb_splits *sp, int threads, FILE *log,
		  pb_sensitivity **out, pb_error *err);
/* Target t of method m with the scan's per-layer amounts as overrides
 * (the scan from the cache, or run with threads). */
int pbi_sens_target(const pb_experiment *e, const pb_exp_method *m, int t,
		    unsigned long seed, const pb_model *dense,
		    const pb_splits *sp, int threads, FILE *log,
		    pb_target *out, pb_error *err);

/* quantize = int8|no or activations = int8|float (key k of section s)
 * into *quantize or *act. */
int pbi_parse_int8_key(pbi_ini_doc *c, const pbi_ini_section *s,
		       const pbi_ini_key *k, int *quantize, int *act);

/* Every stream = METHOD names another method of e whose targets include
 * this one's, and that has streams of its own. */
int pbi_check_streams(pbi_ini_doc *c, const pb_experiment *e);

/* ---- pruning at initialisation (core/experiment/at_init.c) --------------- */

/* Refuses, as FILE:LINE of section s, what a method whose plugin prunes
 * at initialisation cannot have: a schedule other than oneshot,
 * matched_dense. 0 for other plugins. */
int pbi_at_init_check_method(pbi_ini_doc *c, const pb_exp_method *m,
			     const pbi_ini_section *s);
/* The same for a cell's environment, and its seed and dense recipe. */
int pbi_at_init_check(const pb_cell_env *env, pb_error *err);
/* The model the dense training of `seed` started from: a copy of dense
 * (its graph) initialised by pb_model_init with `init` from an RNG
 * seeded with the seed alone, as the dense cache draws it. */
int pbi_at_init_model(const pb_model *dense, unsigned long seed,
		      pb_init_kind init, pb_model **out, pb_error *err);

/* ---- int8 after the cell (core/experiment/cell_int8.c) ------------------ */

/* The cell's final model m quantized to int8 as env asks: evaluated on
 * the test split (rec->acc_int8), saved as OUT.int8.ckpt, its sizes
 * measured from that very file. m is not changed. */
int pbi_cell_quantize(const pb_cell_env *env, const pb_model *m,
		      pb_record *rec, pb_error *err);

#endif
