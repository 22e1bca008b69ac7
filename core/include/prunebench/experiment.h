/* Experiments: an INI file that describes a comparison, its expansion into
 * cells, and the sweep that runs them in parallel and appends one JSON line
 * per finished cell to OUTPUT/runs.jsonl.
 *
 * Experiment INI format (read with inih; every error is FILE:LINE):
 *
 *   [experiment]
 *   name = quickstart            ; [A-Za-z0-9_.-]+, required
 *   model = models/vgg-s.ini     ; required; relative to this file's folder
 *   data = fashion-mnist         ; a data.h spec; relative DIRs resolve
 *                                ; against this file's folder
 *   seeds = 1 2 3                ; default 1
 *   threads = 2                  ; default 0 = all cores
 *   output = ../results/NAME     ; default <this folder>/results/NAME
 *   cache = DIR                  ; dense models; default
 *                                ; $XDG_CACHE_HOME/prunebench or
 *                                ; ~/.cache/prunebench
 *   val_size = 5000              ; held out of the training file
 *   split_seed = 42
 *   dense_ft = yes               ; the dense + fine-tune control
 *   latency = yes                ; measure latency and speedup
 *   quantize = no | int8         ; also quantize every cell's final model
 *                                ; to int8 (quantize.h), evaluate it and
 *                                ; write OUT.int8.ckpt
 *   activations = int8 | float   ; with quantize: round activations too
 *                                ; (default int8), calibrated on the
 *                                ; validation split
 *
 *   [train]                      ; the dense recipe: pb_recipe_set keys
 *   [finetune]                   ; the recipe after pruning (defaults:
 *                                ; epochs 5, lr 0.01, cosine, no warm-up)
 *
 *   [prune.NAME]                 ; one per compared method
 *   plugin = l1                  ; default: NAME
 *   targets = macs=0.3 macs=0.5  ; required
 *   scope = layer | global       ; default layer
 *   schedule = oneshot | iterative:N | gradual      ; default oneshot;
 *                                ; only oneshot for a plugin that prunes
 *                                ; at initialisation (pb_pruner.at_init),
 *                                ; which takes no matched_dense either
 *   round_epochs = 1             ; iterative: fine-tune epochs between
 *                                ; rounds (default: the fine-tune's)
 *   gradual_begin = 0            ; gradual (weight pruners): first epoch
 *   gradual_epochs = 3           ; of the ramp and its length (default
 *   gradual_steps = 10           ; 3/4 of the fine-tune); pruning points;
 *   gradual_initial = 0          ; s_i
 *   finetune = yes | scratch-e | scratch-b
 *                                ; scratch-e (or scratch): re-initialise
 *                                ; the pruned architecture and train it
 *                                ; with the dense recipe (Scratch-E,
 *                                ; cells of kind "scratch"); scratch-b:
 *                                ; the same for the dense epochs x dense
 *                                ; MACs / pruned MACs (effective MACs
 *                                ; for weight pruning), at most
 *                                ; scratch_b_cap times (default 2, as
 *                                ; Liu et al. 2019) ("scratch_b")
 *   label = TEXT                 ; the method's label in the table
 *                                ; (default NAME), e.g. to say how it
 *                                ; departs from its paper
 *   stream = METHOD              ; use METHOD's cells' random streams
 *                                ; (same target and seed): a control
 *                                ; that must draw as its method does
 *   matched_dense = no           ; yes: also train a copy of the dense
 *                                ; model with exactly the training this
 *                                ; method's cell got (its pruning
 *                                ; phase's trainings, replayed, then the
 *                                ; fine-tune), unpruned: the control at
 *                                ; matched training budget (the table's
 *                                ; "NAME (dense, same training)" rows)
 *   layer.conv4 = 0.8            ; per-layer override of the amount
 *   layers = sensitivity:D       ; the per-layer amounts from a
 *                                ; sensitivity scan of the dense model
 *                                ; (sensitivity.h): the largest drop of
 *                                ; validation top-1 in points a layer
 *                                ; may cost, scaled to each target
 *   sensitivity_levels = 0.1,0.2 ; the amounts the scan tries (default
 *                                ; 0.1 to 0.9 by 0.1)
 *   quantize, activations        ; as in [experiment], for this method
 *   anything else                ; the plugin's own options
 */
#ifndef PRUNEBENCH_EXPERIMENT_H
#define PRUNEBENCH_EXPERIMENT_H

#include <stdint.h>
#include <stdio.h>

#include "prunebench/data.h"
#include "prunebench/error.h"
#include "prunebench/metrics.h"
#include "prunebench/plugin.h"
#include "prunebench/pruner.h"
#include "prunebench/record.h"  /* pb_cell_kind */
#include "prunebench/schedule.h"
#include "prunebench/sensitivity.h"
#include "prunebench/train.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PB_EXP_NAME_MAX 64
#define PB_EXP_MAX_SEEDS 64
#define PB_EXP_MAX_TARGETS 32

enum { PB_SCRATCH_E = 1, PB_SCRATCH_B = 2 };

typedef struct pb_exp_method {
	char name[PB_EXP_NAME_MAX];      /* after "prune." */
	char plugin_name[PB_EXP_NAME_MAX];
	pb_plugin *plugin;               /* opened by pb_experiment_load */
	pb_options *options;             /* validated plugin options */
	int n_targets;
	char target_text[PB_EXP_MAX_TARGETS][48];  /* as written */
	pb_target targets[PB_EXP_MAX_TARGETS];     /* scope, overrides set */
	pb_scope scope;
	pb_prune_plan plan;              /* schedule and its parameters */
	int scratch;                     /* 0, PB_SCRATCH_E or PB_SCRATCH_B */
	double scratch_b_cap;            /* most Scratch-B stretches the
					    dense epochs (default 2) */
	int matched;                     /* matched_dense = yes */
	/* stream = METHOD: this method's cells use the random streams of
	 * METHOD's cells (same target and seed), as a control must to
	 * share its method's draws (lth's reinit control its ticket's
	 * mask). "" when the cells have their own. */
	char stream[PB_EXP_NAME_MAX];
	int stream_line;
	char label[PB_EXP_NAME_MAX];     /* the table's row label; "": NAME */
	int line;                        /* of the section header */
	/* quantize = int8 (1), no (0), or -1: the experiment's; and
	 * activations = int8 (1), float (0), -1: the experiment's. */
	int quantize, quant_act;
	/* layers = sensitivity:D: sens_drop = D (points), else < 0; the
	 * scan's amounts. */
	double sens_drop;
	int n_sens_levels;
	double sens_levels[PB_SENS_LEVELS_MAX];
} pb_exp_method;

typedef struct pb_experiment {
	char *path;          /* the INI file */
	char *dir;           /* its folder */
	char name[PB_EXP_NAME_MAX];
	char *model_path;    /* resolved */
	char *data_text;     /* resolved spec text */
	pb_data_spec data;
	int n_seeds;
	unsigned long seeds[PB_EXP_MAX_SEEDS];
	int threads;         /* 0: all cores */
	char *output;        /* resolved */
	char *cache;         /* resolved */
	int val_size;
	unsigned long split_seed;
	int dense_ft;
	int latency;
	int quantize;        /* quantize = int8 */
	int quant_act;       /* activations = int8 (default) */
	pb_recipe dense, finetune;
	uint64_t model_hash; /* FNV-1a of the model file's contents */
	int n_methods;
	pb_exp_method *methods;
} pb_experiment;

/* Reads and checks an experiment file: every key, value and referenced
 * file, each plugin (opened from sp; NULL = the default search path) and
 * its options, and per-layer overrides against the model's layer names. */
int pb_experiment_load(pb_experiment **out, const char *path,
		       const pb_plugin_path *sp, pb_error *err);
/* The same from text; `path` names it and its folder resolves relative
 * paths. */
int pb_experiment_parse(pb_experiment **out, const char *text,
			const char *path, const pb_plugin_path *sp,
			pb_error *err);
void pb_experiment_free(pb_experiment *e);

/* ---- cells ------------------------------------------------------------- */
/* A cell as the experiment defines it: one method x target x seed, or a
 * control. What it produced is its pb_record (record.h). */
typedef struct pb_cell {
	char id[160];        /* "l1-macs=0.5-s1-3fa9c2d1" */
	char method[PB_EXP_NAME_MAX];   /* "dense", "dense+ft" or NAME */
	pb_cell_kind kind;
	int method_index;    /* into e->methods, -1 for controls */
	int target_index;    /* -1 for controls */
	unsigned long seed;
	uint32_t hash;       /* of the cell's full definition */
} pb_cell;

/* Expands e into cells, in run order: per seed the dense baseline and
 * the dense + fine-tune control, then every method x target x seed.
 * *cells is malloc-ed. */
int pb_experiment_cells(const pb_experiment *e, pb_cell **cells, int *n,
			pb_error *err);

/* The 16-hex key of seed's dense model in the cache (model contents,
 * data, val split, dense recipe, seed). */
void pb_experiment_dense_key(const pb_experiment *e, unsigned long seed,
			     char key[17]);

/* 64-bit FNV-1a, chained through h (start with PB_FNV64_INIT). */
#define PB_FNV64_INIT 0xcbf29ce484222325ull
uint64_t pb_fnv64(uint64_t h, const void *data, size_t n);

/* ---- one cell ------------------------------------------------------------
 * The pipeline every cell runs, whether the sweep runs it or `prunebench
 * prune` does: start from the dense model, prune (on the method's
 * schedule), evaluate, fine-tune (or train the pruned shape from
 * scratch), evaluate, measure, save. A plugin that prunes at
 * initialisation starts instead from the model the dense training
 * started from and trains with the dense recipe instead of the
 * fine-tune (one-shot only, no matched control). Everything it needs is
 * in the environment; nothing is global, so cells run side by side. */
typedef struct pb_cell_env {
	/* What it starts from; read only. */
	pb_model *dense;
	const char *dense_points;    /* BASE of the dense run's training
					points (BASE.stepN.ckpt), or NULL */
	const char *dense_curve;     /* the dense training's CSV (a dense
					cell copies it), or NULL */
	const pb_splits *splits;     /* NULL: no data (data-free pruning;
					no accuracy, no training) */
	const pb_recipe *dense_recipe;  /* scratch training, plugins */
	const pb_recipe *finetune;   /* NULL or 0 epochs: no fine-tune */
	int eval_batch;
	/* What it does. */
	pb_cell_kind kind;
	const pb_pruner *pruner;     /* PRUNE and SCRATCH cells */
	const pb_options *options;   /* NULL: the declared defaults */
	const pb_target *target;
	const pb_prune_plan *plan;   /* NULL: one-shot */
	double scratch_b_cap;        /* SCRATCH_B cells: the most the dense
					epochs are stretched (<= 0: 2) */
	int matched;                 /* also train the matched-budget control */
	int latency;                 /* measure latency and speedup */
	/* Its random streams: the cell's own is seeded from `stream`, each
	 * training phase's from "stream|phase", so adding a phase never
	 * shifts the draws of the others. */
	const char *stream;
	/* The seed the dense model was trained from (with has_seed set):
	 * its training started from pb_model_init with the dense recipe's
	 * init and an RNG seeded with the seed alone (the dense cache,
	 * `prunebench train --seed`). A plugin that prunes at
	 * initialisation (pb_pruner.at_init) gets that model, drawn again;
	 * its cell fails without has_seed. */
	unsigned long seed;
	int has_seed;
	/* Where it writes; each may be NULL. */
	const char *out;             /* OUT.ckpt and OUT.ini, as a pair */
	const char *files;           /* FILES.csv (the fine-tune's curve),
					FILES.roundK.csv, FILES.matched.csv */
	FILE *log;                   /* the cell's progress lines */
	const char *label;           /* prefix of those lines */
	/* Called as each phase starts and after each of its epochs (for
	 * a one-line display); may be NULL. */
	void (*status)(void *user, const char *phase, int epoch, int epochs);
	void *status_user;
	/* After measuring: the final model quantized to int8 (quantize.h),
	 * activations too with quant_act (calibrated on the validation
	 * split), evaluated on the test split and saved as OUT.int8.ckpt. */
	int quantize, quant_act;
	/* Trunk sharing (docs/experiments.md): an iterative schedule follows
	 * the trajectory of trunk_hi, the method's highest target (NULL:
	 * target's own), taking its rounds below target and then one that
	 * lands on target; trunk rounds (the schedule's and a plugin's,
	 * pb_ctx_trunk_*) and the matched control's training through them
	 * are kept in trunk_dir (the experiment's cache; NULL: nowhere,
	 * every cell computes its own, with the same numbers). */
	const pb_target *trunk_hi;
	const char *trunk_dir;
	/* Spare cores (a sweep's last cells, when its other workers have
	 * nothing left to run): called between the steps of the cell's own
	 * trainings (fine-tune, scratch, the schedule's rounds, the matched
	 * control), it returns how many threads the cell may use now (0:
	 * as it started). Those trainings give the same bits at any thread
	 * count; everything else (the plugin's code and trainings,
	 * evaluation after training, latency) runs on the threads the cell
	 * started with. May be NULL. */
	int (*spare_threads)(void *user);
	void *spare_user;
} pb_cell_env;

typedef struct pb_cell_result {
	/* Every measured field (accuracies, reached, rounds, metrics,
	 * times, matched control, status and error); the identity fields
	 * (id, experiment, method, target, ...) are the caller's. */
	pb_record rec;
	/* The pruned model's metrics (latency and speedup against the
	 * dense model when env->latency). */
	int have_metrics;
	pb_metrics mt;
	/* What the pruner reported on its (last) run. */
	int have_report;
	pb_prune_report rep;
	int wrote_curve;             /* FILES.csv was written */
	pb_model *model;             /* the final model; the caller frees */
} pb_cell_result;

/* Runs one cell. Its own failure (a plugin error, divergence, a file it
 * could not write) is the return value and also res->rec.status and
 * res->rec.error; res is always filled as far as the cell got. Free res
 * with pb_cell_result_free. */
int pb_cell_run(const pb_cell_env *env, pb_cell_result *res, pb_error *err);
void pb_cell_result_free(pb_cell_result *res);

/* ---- the sweep ------------------------------------------------------------ */
typedef struct pb_run_opts {
	int threads;          /* total threads; 0: the experiment's */
	int inner_threads;    /* threads inside each cell; 0: automatic
				 (spare threads go inside when there are
				 fewer cells than threads) */
	const char *only;     /* run only this method ("dense", "dense+ft"
				 or a NAME); NULL: all */
	int dry_run;          /* list the cells and their state, and the
				 epochs and time they cost; run none */
	int no_calibrate;     /* dry run: no timing on this machine, epochs
				 only */
	int no_retry;         /* keep failed and crashed cells as they are
				 (by default they run again; diverged cells
				 are results and never run again) */
	FILE *progress;       /* progress and cell lines; NULL: silent */
	FILE *list;           /* where --dry-run lists cells; NULL: stdout */
	/* Each cell in a process of its own: the prunebench program to
	 * start for it (`EXEC run FILE --cell ID ...`, plus child_args,
	 * e.g. the --plugin-dir options), so that a plugin that crashes,
	 * aborts or exits takes only its cell with it. The experiment
	 * must then come from its file. NULL: cells run in this process
	 * (the library's default, and `run --in-process` for debugging). */
	const char *cell_exec;
	char *const *child_args;
	int n_child_args;
	/* Scaling out over several processes or machines (docs/cluster.md).
	 * phase: PB_PHASE_ALL (default) loads or trains the dense models the
	 * cells need, then runs the cells; PB_PHASE_DENSE only loads or
	 * trains those dense models (one task per seed, before the cells);
	 * PB_PHASE_CELLS only runs cells, and a dense model (or training
	 * point) missing from the cache is an error that says to run the
	 * dense phase first. */
	int phase;
	/* n_shards > 0: only shard `shard` (0 ... n_shards - 1): its cells
	 * (pb_experiment_shards), or in the dense phase the seeds whose
	 * index in the file is shard modulo n_shards. Shards share
	 * runs.jsonl: each appends under a lock, never twice for a cell. */
	int shard, n_shards;
	int has_seed;         /* 1: only the cells and dense model of seed */
	unsigned long seed;
	/* A cell in a process of its own (pb_experiment_run_cell): the
	 * socket on which the sweep grants it more threads ("T N" lines)
	 * once the other workers have no cell left to start; 0: none. */
	int control_fd;
} pb_run_opts;

enum { PB_PHASE_ALL = 0, PB_PHASE_DENSE = 1, PB_PHASE_CELLS = 2 };

typedef struct pb_run_summary {
	int total;            /* cells selected */
	int skipped;          /* already in runs.jsonl */
	int ok, diverged, failed, crashed;
	double seconds;
	int duplicates;       /* cells another run recorded first: not
				 recorded again */
	int dense_trained, dense_loaded;   /* dense models, by seed */
} pb_run_summary;

/* Runs every cell of e not yet in OUTPUT/runs.jsonl. A cell's own failure
 * is recorded in its line and does not fail the sweep; the return value
 * is an error only when the sweep itself could not run (data, output
 * folder, cache). */
int pb_experiment_run(const pb_experiment *e, const pb_run_opts *opts,
		      pb_run_summary *sum, pb_error *err);

/* The child's side of a sweep that runs cells in their own processes:
 * runs the one cell `id` of e (its dense model from the cache the parent
 * filled) exactly as pb_experiment_run would in-process, with
 * opts->threads threads, and writes its record to report_fd as the line
 * "R <json>", after "S <what it does>" lines as it goes. Returns an error
 * only when the cell could not be set up (unknown id, no data); the
 * cell's own failure is in its record. */
int pb_experiment_run_cell(const pb_experiment *e, const char *id,
			   const pb_run_opts *opts, int report_fd,
			   pb_error *err);

/* ---- shards ------------------------------------------------------------------
 * Splitting a sweep into shards that run at once, e.g. as the tasks of a
 * Slurm job array (docs/cluster.md). */

/* The epochs of training cell c does, by where they go (one epoch = one
 * pass over the training split, pruned models counted as if dense),
 * estimated from the experiment file alone:
 *   dense       D, the dense recipe's epochs: the seed's dense training
 *               (done once per seed, before the cells; 0 when cached)
 *   dense+ft    finetune F
 *   pruned      prune P, finetune F, and with matched_dense the matched
 *               control P + F
 *   scratch-e   prune P, scratch D
 *   scratch-b   prune P, scratch D x min(scratch_b_cap, 1 / (1 - X)),
 *               X the target
 *   at init     prune P, scratch D (the dense recipe instead of F)
 * P, the pruning phase: per call of the plugin what its estimate hook
 * says (pb_pruner.estimate), else every number option whose name ends
 * in "_epochs" (negative: D), times ceil(log(1 - X) / log(1 - rate))
 * rounds for a plugin with a number option `rate` in (0, 1) and a
 * sparsity target; an iterative schedule adds its rounds: K trunk
 * rounds (pbi_trunk_rounds: the method's highest target's trajectory
 * below X) of a call and round_epochs each, then one call more.
 * trunk: the epochs of P in rounds shared with the method's other
 * targets (and with methods of the same trunk, such as lth's reinit
 * control), which a sweep computes once per seed; matched_trunk the
 * same for the matched control. */
typedef struct pb_epochs {
	double dense, prune, finetune, matched, scratch;
	double trunk, matched_trunk;
	int trunk_rounds;
} pb_epochs;

int pb_cell_epochs(const pb_experiment *e, const pb_cell *c, pb_epochs *out);
/* dense + prune + finetune + matched + scratch. */
double pb_cell_epochs_total(const pb_epochs *x);

/* The estimated cost of cell c in epochs of training (one unit = one
 * epoch over the training set; pruned models are counted as if dense),
 * from what the cell trains:
 * pb_cell_epochs' total without the dense training (the dense phase
 * does that, before the shards), plus 0.25 for every cell (its start,
 * evaluations and measurement). A trunk shared across targets is
 * counted in full in every cell: which shard computes it and which
 * reads it depends on timing. An estimate for balancing shards, not a
 * prediction of time. */
double pb_cell_cost(const pb_experiment *e, const pb_cell *c);

/* Assigns each of the n cells to one of n_shards shards, into
 * shard_of[n]: cells by decreasing cost (ties by id), each to the shard
 * with the least cost so far (ties: the lowest shard). The assignment
 * depends only on the cells (ids and costs), so the same experiment file
 * gives the same shards on every machine and every run, whatever is
 * already done. Bound: the most loaded shard exceeds the least loaded
 * by at most the largest single cell's cost. load[n_shards] (may be
 * NULL) gets each shard's estimated cost. */
int pb_experiment_shards(const pb_experiment *e, const pb_cell *cells,
			 int n, int n_shards, int *shard_of, double *load,
			 pb_error *err);

#ifdef __cplusplus
}
#endif
#endif
