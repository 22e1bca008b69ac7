/* Internal pieces of the experiment runner: JSON lines, the dense-model
 * cache and path helpers. Not installed; pbi_ functions are not exported. */
#ifndef PB_EXPERIMENT_IMPL_H
#define PB_EXPERIMENT_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "prunebench/experiment.h"
#include "prunebench/model.h"
#include "prunebench/train.h"

/* ---- JSON lines (core/jsonl_write.c) ------------------------------------ */

/* One JSON object being built: pbi_jw_begin, the pbi_jw_* members in
 * order, pbi_jw_end (adds "}\n"). Allocation failure is remembered and
 * reported by pbi_jw_end. */
typedef struct pbi_jw {
	char *buf;
	size_t len, cap;
	int n;      /* members so far */
	int oom;
} pbi_jw;

void pbi_jw_begin(pbi_jw *j);
void pbi_jw_str(pbi_jw *j, const char *key, const char *val); /* NULL: null */
void pbi_jw_num(pbi_jw *j, const char *key, double v);       /* NaN: null */
void pbi_jw_int(pbi_jw *j, const char *key, long long v);
void pbi_jw_null(pbi_jw *j, const char *key);
/* val is already JSON (an array, for instance); NULL writes null. */
void pbi_jw_raw(pbi_jw *j, const char *key, const char *val);
int pbi_jw_end(pbi_jw *j, pb_error *err);
void pbi_jw_free(pbi_jw *j);

/* Appends one complete line (ending in '\n') with a single write on an
 * O_APPEND descriptor, then fsync. When the file does not end in a
 * newline (a line cut by a crash), a newline goes first so the new line
 * stays intact. */
int pbi_jsonl_append(const char *path, const char *line, size_t len,
		     pb_error *err);

/* The ids of the cells recorded in a runs.jsonl (a missing file has
 * none). Lines that are not complete objects with an "id" are skipped.
 * *ids is malloc-ed, each id too; free with pbi_jsonl_ids_free. status
 * (may be NULL) gets each line's "status" (malloc-ed, may be NULL). */
int pbi_jsonl_read_ids(const char *path, char ***ids, char ***status,
		       int *n, pb_error *err);
void pbi_jsonl_ids_free(char **ids, char **status, int n);

/* ---- the dense cache (core/dense_cache.c) ------------------------------- */

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

/* ---- helpers (core/experiment_ini.c) ------------------------------------- */

/* mkdir -p. */
int pbi_mkdirs(const char *path, pb_error *err);
/* malloc-ed "a/b" (b alone when absolute). */
char *pbi_path_join(const char *a, const char *b);
/* Canonical text of a recipe (every field), for hashing. */
void pbi_recipe_canon(const pb_recipe *r, char *buf, size_t n);
/* Seeds an RNG stream from text: FNV-1a folded to 32 bits, never 0. */
unsigned long pbi_seed_from(const char *text);

#endif
