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

/* ---- the dense cache (core/experiment/dense_cache.c) ------------------------------- */

/* The dense model of `seed`: loaded from the cache when there, otherwise
 * trained with e->dense on sp (threads inside) and stored (checkpoint and
 * training curve CSV, both written to a temporary name and renamed).
 * The model at each training point in points[] (iterations, sorted) is
 * kept as BASE.stepN.ckpt; a cached model missing some has the start of
 * its training run again to write them. *csv gets the curve's path and
 * *base the points' BASE (both malloc-ed). log may be NULL. */
int pbi_dense_get(const pb_experiment *e, const pb_splits *sp,
		  unsigned long seed, const long *points, int n_points,
		  FILE *log, pb_model **out, char **csv, char **base,
		  int *trained, pb_error *err);
/* CACHE/dense-MODEL-sSEED-KEY (no extension), malloc-ed. */
char *pbi_dense_base(const pb_experiment *e, const pb_model *m,
		     unsigned long seed);

/* ---- hashing (core/experiment/cells.c) ------------------------------------ */

/* Canonical text of a recipe (every field), for hashing. */
void pbi_recipe_canon(const pb_recipe *r, char *buf, size_t n);
/* Seeds an RNG stream from text: FNV-1a folded to 32 bits, never 0. */
unsigned long pbi_seed_from(const char *text);

/* ---- one [prune.NAME] section (core/experiment/method_ini.c) ------------- */

/* Reads section s into m: the runner's keys, per-layer overrides
 * checked against `model`, the plugin (opened from sp) and its options.
 * Errors go to c (FILE:LINE). */
int pbi_parse_method(pbi_ini_doc *c, pb_experiment *e, pb_exp_method *m,
		     const pbi_ini_section *s, const pb_plugin_path *sp,
		     const pb_model *model);

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

#endif
