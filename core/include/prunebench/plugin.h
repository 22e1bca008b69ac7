/* The host side of the plugin ABI: finding and loading pruner plugins,
 * validating their options, and running one on a model.
 *
 * Search path, first match wins:
 *   1. directories given with pb_plugin_path_add (the --plugin-dir flag),
 *      in the order given;
 *   2. PRUNEBENCH_PLUGIN_PATH, colon-separated;
 *   3. the build tree's plugins/.libs, when the running program lives in
 *      that build tree (so `make check` and ./prunebench find fresh
 *      plugins, and an installed prunebench never picks up stale ones);
 *   4. the installed plugin directory, $(pkglibdir)/plugins.
 * Plugin NAME is the file NAME.so in one of them; its descriptor must
 * declare the same name. */
#ifndef PRUNEBENCH_PLUGIN_H
#define PRUNEBENCH_PLUGIN_H

#include <stdio.h>

#include <gsl/gsl_rng.h>

#include "prunebench/error.h"
#include "prunebench/model.h"
#include "prunebench/pruner.h"
#include "prunebench/target.h"
#include "prunebench/train.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PB_PLUGIN_ENV "PRUNEBENCH_PLUGIN_PATH"

/* ---- the search path ----------------------------------------------------- */
typedef struct pb_plugin_path pb_plugin_path;

/* The default path (environment, build tree, installed directory). */
int pb_plugin_path_new(pb_plugin_path **out, pb_error *err);
/* Adds a --plugin-dir directory; these come before the defaults, in the
 * order added. A directory that does not exist is an error. */
int pb_plugin_path_add(pb_plugin_path *sp, const char *dir, pb_error *err);
int pb_plugin_path_count(const pb_plugin_path *sp);
const char *pb_plugin_path_dir(const pb_plugin_path *sp, int i);
void pb_plugin_path_free(pb_plugin_path *sp);

/* ---- loading ----------------------------------------------------------- */
typedef struct pb_plugin pb_plugin;

/* Finds NAME.so on the path, dlopens it (RTLD_NOW | RTLD_LOCAL) and checks
 * it: the name must be [A-Za-z0-9_-]+ (no slash, no ".."); the file must
 * export pb_pruner_entry; the descriptor's ABI version must equal
 * PB_PRUNER_ABI_VERSION and its struct size must be one this host knows;
 * its name must match the file; prune is required; its declared options
 * must be well-formed (defaults valid). A missing plugin is
 * PB_ENOTFOUND with the available names in the message. */
int pb_plugin_open(pb_plugin **out, const pb_plugin_path *sp,
		   const char *name, pb_error *err);
/* Loads one file by path, with the same checks (tests, tools). */
int pb_plugin_open_file(pb_plugin **out, const char *path, pb_error *err);
/* The host's copy of the descriptor (fields the plugin's older header
 * did not have are zero). Valid until pb_plugin_close. */
const pb_pruner *pb_plugin_pruner(const pb_plugin *p);
const char *pb_plugin_file(const pb_plugin *p);
void pb_plugin_close(pb_plugin *p);

/* Every NAME.so on the path (first occurrence of each name), sorted by
 * name, with the file each came from. Files are not opened. */
typedef struct pb_plugin_entry {
	char *name;
	char *file;
} pb_plugin_entry;

int pb_plugin_list(const pb_plugin_path *sp, pb_plugin_entry **out, int *n,
		   pb_error *err);
void pb_plugin_list_free(pb_plugin_entry *list, int n);

/* ---- options ---------------------------------------------------------------
 * A plugin's option values: its declared defaults, overridden one at a
 * time by pb_options_set, each checked against the declaration. */
typedef struct pb_options pb_options;

/* Defaults of every declared option. Fails when a declaration is
 * malformed (no name, NULL default, a default that does not validate). */
int pb_options_new(pb_options **out, const pb_pruner *pr, pb_error *err);
/* Sets `key` to `value`. `where` prefixes messages ("exp.ini:12",
 * "--opt"); may be NULL. An unknown key names the plugin and lists its
 * options; a value of the wrong type, out of range or not one of the
 * choices says what was expected. */
int pb_options_set(pb_options *o, const char *key, const char *value,
		   const char *where, pb_error *err);
/* "key=value" text, as --opt takes it. */
int pb_options_set_kv(pb_options *o, const char *kv, const char *where,
		      pb_error *err);
void pb_options_free(pb_options *o);

/* Typed values, read as pb_ctx_opt_* reads them: 0 / NULL when the
 * key is undeclared or of another type. */
const char *pb_options_text(const pb_options *o, const char *key);
long pb_options_int(const pb_options *o, const char *key);
double pb_options_double(const pb_options *o, const char *key);
int pb_options_bool(const pb_options *o, const char *key);

/* Whether a numeric option declares a range [min, max]: min <= max, and
 * not both 0 (left out). Other types have none. */
int pb_option_bounded(const pb_pruner_option *o);

/* "norm=2 include_first=yes" (every option, declaration order). */
void pb_options_format(const pb_options *o, char *buf, size_t n);

/* ---- running a pruner ------------------------------------------------------ */

/* Trunk sharing between the runner and a plugin's pb_ctx_trunk_* calls
 * (pruner.h). */
typedef struct pb_trunk_info {
	/* in: the folder trunk rounds are kept in (the run's cache); NULL:
	 * none are kept, every cell computes its own (same numbers). */
	const char *dir;
	/* out: the trunk round the current training belongs to, while
	 * on_train runs (0: not a trunk round's) */
	int round;
	/* out: the trunk's key ("" until begun), the trunk rounds the cell
	 * took and how many of them it read from the cache */
	char key[17];
	int rounds, restored;
} pb_trunk_info;

typedef struct pb_prune_setup {
	const pb_pruner *pruner;
	const pb_options *options;    /* NULL: the declared defaults */
	const pb_target *target;
	/* Recipes for pb_ctx_train; NULL makes pb_ctx_train an error. */
	const pb_recipe *finetune;
	const pb_recipe *dense;
	/* Data for training, validation and calibration; NULL makes the
	 * data-driven helpers an error (data-free pruners need none). */
	const pb_splits *splits;
	gsl_rng *rng;                 /* the cell's stream; required */
	FILE *progress;               /* NULL: silent */
	const char *label;            /* prefix of progress lines */
	/* Where the dense model's training points are kept: BASE.stepN.ckpt
	 * (pb_ctx_dense_point); NULL: none kept. */
	const char *dense_points;
	/* Called before every training a plugin runs (pb_ctx_train,
	 * pb_ctx_train_span), with the recipe, epochs and step cap and the
	 * stretch of schedule it follows (span->sched NULL: its own): the
	 * runner replays them on the dense model for the matched-budget
	 * control. May be NULL. */
	void (*on_train)(void *user, pb_recipe_which which, double epochs,
			 long steps, const pb_lr_span *span);
	void *on_train_user;
	/* Trunk sharing; NULL: none kept, as with trunk->dir NULL. The
	 * trainings of trunk rounds read from the cache are reported to
	 * on_train as if they ran, with trunk->round set. */
	pb_trunk_info *trunk;
} pb_prune_setup;

#define PB_PRUNE_MAX_ROUNDS 64

typedef struct pb_prune_report {
	pb_target_kind kind;
	double asked;             /* target amount */
	double reached;           /* the same quantity, measured afterwards */
	uint64_t params_before, params_after;     /* trainable (shapes) */
	uint64_t nonzero_before, nonzero_after;   /* non-zero trainable */
	uint64_t macs_before, macs_after;         /* dense MACs */
	int channels_before, channels_after;      /* prunable channels */
	double seconds;
	/* Rounds a plugin recorded with pb_ctx_report_round: the reached
	 * amount after each (at most PB_PRUNE_MAX_ROUNDS kept). */
	int n_rounds;
	double rounds[PB_PRUNE_MAX_ROUNDS];
} pb_prune_report;

/* Runs the pruner on a copy of `dense`: create, prune, destroy. On
 * success *pruned is the new model (masks and smaller shapes included)
 * and rep (may be NULL) says what was reached. The target's kind must
 * suit the pruner's granularity (sparsity for weight pruners; channels,
 * params or macs for channel pruners). */
int pb_prune_run(const pb_model *dense, const pb_prune_setup *setup,
		 pb_model **pruned, pb_prune_report *rep, pb_error *err);

const char *pb_granularity_name(pb_granularity g);
const char *pb_opt_type_name(pb_opt_type t);

#ifdef __cplusplus
}
#endif
#endif
