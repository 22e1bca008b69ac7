/* Points of a training run ("500", "1.5ep", "1%": after that many
 * optimizer updates) and the checkpoints kept at them, BASE.stepN.ckpt
 * next to the run's final BASE.ckpt. The runner's dense training and
 * `prunebench train --keep` write them; pb_ctx_dense_point reads them
 * (LTH's rewind point comes from the same run as the dense model). Not
 * installed. */
#ifndef PB_TRAIN_POINTS_H
#define PB_TRAIN_POINTS_H

#include "prunebench/error.h"
#include "prunebench/model.h"

/* 0 when text is a point: N (iterations, an integer >= 0), Xep (epochs)
 * or X% (of the training), X >= 0. */
int pbi_point_check(const char *text);
/* The iteration of point `text` in a training of `epochs` epochs of
 * `per_epoch` steps (rounded to the nearest step). */
int pbi_point_step(const char *text, double epochs, long per_epoch,
		   long *step, pb_error *err);
/* "BASE.stepN.ckpt", malloc-ed. */
char *pbi_point_path(const char *base, long step);
/* BASE with a trailing ".ckpt" removed, malloc-ed. */
char *pbi_point_base(const char *ckpt_path);

/* Saves m at the points of one training run: pass pbi_point_saver_step
 * as the training's after_step hook and call pbi_point_saver_begin
 * before training and pbi_point_saver_end after it. Each checkpoint is
 * written under a temporary name and renamed. */
typedef struct pbi_point_saver {
	const char *base;
	const long *steps;   /* sorted ascending, no duplicates */
	int n;
	int next;            /* first not yet saved */
	long done;           /* updates seen so far */
	const char *tag;     /* stored in each file with " step N"; NULL:
				none (pb_checkpoint_save_tag) */
	pb_error *err;
} pbi_point_saver;

int pbi_point_saver_begin(pbi_point_saver *s, pb_model *m);
/* A pb_train_hooks.after_step: after the update of step `step` (0-based)
 * the model has had step + 1 updates. */
int pbi_point_saver_step(void *user, pb_model *m, long step);
/* After training: fails for points it never reached (past the end). */
int pbi_point_saver_end(const pbi_point_saver *s);

/* The tag of point `step` of a run whose files carry `tag`, malloc-ed. */
char *pbi_point_tag(const char *tag, long step);

/* Sorts and de-duplicates steps[0..*n). */
void pbi_points_sort(long *steps, int *n);

#endif
