/* The sweep's state, shared by its parts: the cells to run
 * (core/experiment/sweep.c), the dense models they start from
 * (core/experiment/sweep_dense.c) and the progress display
 * (core/experiment/sweep_progress.c). Internal. */
#ifndef PB_EXPERIMENT_SWEEP_H
#define PB_EXPERIMENT_SWEEP_H

#include <stdint.h>

#include "base/util.h"
#include "prunebench/experiment.h"

#define PBI_SWEEP_MAX_POINTS 64

typedef struct pbi_sweep {
	const pb_experiment *e;
	const pb_run_opts *o;
	pb_run_summary *sum;
	const pb_cell *cells;     /* every cell of e */
	int n_cells;
	pb_splits sp;
	int have_splits;
	/* Per seed index. */
	pb_model **dense;
	char **dense_csv;
	char **dense_base;        /* BASE of BASE.stepN.ckpt training points */
	uint32_t *dense_fp;       /* CRC-32 of each dense model's tensors */
	int *dense_rc;
	char (*dense_msg)[PB_ERROR_MSG_MAX];
	long points[PBI_SWEEP_MAX_POINTS]; /* dense iterations kept */
	int n_points;
	char *jsonl, *cells_dir;
	/* Progress: one line per finished cell, and on a terminal one
	 * updating line with what each outer thread is doing. */
	pbi_progress prog;
	int total, done;
	double t0;
	char (*status)[200];      /* per outer thread */
	int outer, inner;
	int threads;              /* all the sweep's threads */
	/* In a child process running one cell: where its status lines and
	 * record go (pb_experiment_run_cell). */
	int child;
	int report_fd;
	/* ... and the threads its sweep granted it (pb_run_opts.control_fd;
	 * 0: none yet), with a partial line read so far. */
	int granted;
	char grant_buf[32];
	size_t grant_len;
	/* Per cell of e: its shard (NULL: not sharded) and how many lines
	 * of runs.jsonl it had when the run planned (another run's line
	 * since then is not duplicated). */
	int *shard_of;
	int *seen;
	struct pbi_appends *appends;  /* what the appends have read since */
} pbi_sweep;

/* ---- cells (sweep.c) ------------------------------------------------------ */

/* CELLS/ID.EXT (ext "" for the base name), or NULL when out of memory. */
char *pbi_sweep_cell_file(const pbi_sweep *S, const pb_cell *c,
			  const char *ext);
/* Runs cell c on outer thread `slot` (in this process) into res. */
void pbi_sweep_run_one(pbi_sweep *S, const pb_cell *c, int slot,
		       pb_cell_result *res);
/* Fills the experiment's side of c's record. */
int pbi_sweep_identify(const pbi_sweep *S, const pb_cell *c, pb_record *r,
		       int wrote_curve);
/* Appends c's record to runs.jsonl and prints its line. */
void pbi_sweep_finish(pbi_sweep *S, const pb_cell *c, pb_record *r);

/* ---- the dry run's estimate (sweep_estimate.c) ---------------------------- */

/* Prints to f the epochs of the selected cells per method and in all
 * (done[i]: cell i is recorded already), what trunks save, and unless
 * S->o->no_calibrate a wall time timed on this machine. */
int pbi_sweep_estimate(pbi_sweep *S, const pb_cell *cells, int n,
		       const unsigned char *done, FILE *f, pb_error *err);

/* ---- cells in processes of their own (sweep_spawn.c) ---------------------- */

/* Runs the cells of todo, each in a child process (S->o->cell_exec), at
 * most S->outer at a time; a child that dies without a record gives a
 * crashed record with its signal or exit status and its log's tail. */
int pbi_sweep_spawn(pbi_sweep *S, const pb_cell *cells, const int *todo,
		    int n_todo, pb_error *err);

/* ---- the dense phase (sweep_dense.c) -------------------------------------- */

/* The dense training's points that the cells to run ask for (PB_OPT_POINT
 * options), as iterations: the dense training keeps the model at each. */
int pbi_sweep_points(pbi_sweep *S, const pb_cell *cells, const int *todo,
		     int n_todo, pb_error *err);
/* Loads or trains the dense model of every seed that a cell to run
 * needs, in parallel over seeds. A seed that fails is remembered with its
 * message; its cells fail with it. Fails only when out of memory. */
int pbi_sweep_dense(pbi_sweep *S, const pb_cell *cells, const int *todo,
		    int n_todo, int threads, pb_error *err);
/* The sensitivity scans that methods with layers = sensitivity:D need
 * for the cells to run, made (threads) and cached before the cells, so
 * cells side by side never scan twice. A scan that fails fails only its
 * cells (they report it when they find no scan). */
int pbi_sweep_scans(pbi_sweep *S, const pb_cell *cells, const int *todo,
		    int n_todo, int threads, pb_error *err);
/* Frees the dense models and their paths. */
void pbi_sweep_dense_free(pbi_sweep *S);

/* ---- phases and shards (sweep_phase.c) ------------------------------------ */

/* Whether cell c is part of this run: --only, --seed and the shard. */
int pbi_sweep_selected(const pbi_sweep *S, const pb_cell *c);
/* Sets up S->seen and, when sharded, S->shard_of, for S->cells. */
int pbi_sweep_shards(pbi_sweep *S, const pb_cell *cells, int n,
		     pb_error *err);
/* The cells phase trains nothing: every dense model and training point
 * the cells of todo start from must be in the cache; else an error that
 * names the missing file and the dense phase's command. */
int pbi_sweep_dense_ready(pbi_sweep *S, const pb_cell *cells,
			  const int *todo, int n_todo, pb_error *err);
/* After the dense phase: counts in S->sum; an error when a seed's dense
 * model could not be had (the cells would fail with it). */
int pbi_sweep_dense_done(pbi_sweep *S, pb_error *err);

/* ---- the shared output (sweep_append.c) ---------------------------------- */

/* Locks OUTPUT/.lock for the whole run: exclusively, or shared when
 * sharded (shards run side by side; a whole run excludes them all). */
int pbi_sweep_lock(const pbi_sweep *S, int *fd, pb_error *err);
/* 1 when dir's file system keeps its locks on this machine (NFS with
 * nolock or local_lock=flock|all, Lustre with localflock), described in
 * why; 0 when they reach every machine or it cannot tell. mountinfo:
 * NULL for /proc/self/mountinfo. */
int pbi_locks_local(const char *dir, const char *mountinfo, char *why,
		    size_t n);
/* Counts, per cell, its lines among recs (S->seen). */
void pbi_sweep_note_seen(pbi_sweep *S, int n_cells, const pb_record *recs,
			 int n_recs);
/* Appends c's record to runs.jsonl under OUTPUT/.runs.lock, unless
 * another run has recorded c since this one planned (a result, or ours
 * is none): then *dup = 1 and nothing is written. Each append reads
 * only the lines added since the previous one. */
int pbi_sweep_append(pbi_sweep *S, const pb_cell *c, const pb_record *r,
		     int *dup, pb_error *err);
void pbi_sweep_appends_free(pbi_sweep *S);

/* ---- progress (sweep_progress.c) ----------------------------------------- */

/* "12m05s", "1h02m", "?" */
void pbi_fmt_duration(char *buf, size_t n, double s);
/* The time left, from the cells done so far. */
void pbi_sweep_eta(const pbi_sweep *S, char *buf, size_t n);
/* What outer thread `slot` is doing (terminal only; "" clears it). */
void pbi_sweep_status(pbi_sweep *S, int slot, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
