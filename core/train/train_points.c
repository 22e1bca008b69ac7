/* Training points and the checkpoints kept at them (train_points.h).
 *
 * A point is the model after k optimizer updates: k = 0 is the
 * initialisation. The saver writes it from the training's after_step
 * hook (after the update of step k-1) so that the weights, the BN
 * running statistics and the step count all describe the same moment. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "prunebench/checkpoint.h"
#include "train/train_points.h"

static int parse(const char *text, double *v, const char **unit)
{
	char *end;

	if (!text || !*text)
		return -1;
	*v = strtod(text, &end);
	if (end == text || !(*v >= 0) || !isfinite(*v))
		return -1;
	if (!strcmp(end, "%") || !strcmp(end, "ep")) {
		*unit = end;
		return 0;
	}
	*unit = "";
	return *end || *v != floor(*v) ? -1 : 0;
}

int pbi_point_check(const char *text)
{
	double v;
	const char *unit;

	return parse(text, &v, &unit);
}

int pbi_point_step(const char *text, double epochs, long per_epoch,
		   long *step, pb_error *err)
{
	double v;
	const char *unit;

	if (parse(text, &v, &unit))
		return pb_error_set(err, PB_EINVAL, "'%s' is not a training "
				    "point: expected N (iterations), Xep "
				    "(epochs) or X%% (of the training)",
				    text ? text : "");
	if (!strcmp(unit, "%"))
		v = v / 100.0 * epochs * (double)per_epoch;
	else if (!strcmp(unit, "ep"))
		v *= (double)per_epoch;
	v = floor(v + 0.5);
	/* "1e300" is a point, but no long holds it: converting it would be
	 * undefined behaviour (UBSan, under the options fuzz harness). No
	 * training is that long, so say so rather than let a caller compare
	 * garbage. */
	if (!(v < (double)LONG_MAX))
		return pb_error_set(err, PB_EINVAL, "'%s' is past the end of "
				    "any training (%g iterations)", text, v);
	*step = (long)v;
	return 0;
}

char *pbi_point_path(const char *base, long step)
{
	size_t n = strlen(base) + 32;
	char *p = malloc(n);

	if (p)
		snprintf(p, n, "%s.step%ld.ckpt", base, step);
	return p;
}

char *pbi_point_base(const char *ckpt_path)
{
	size_t n = strlen(ckpt_path);
	char *p = strdup(ckpt_path);

	if (p && n > 5 && !strcmp(p + n - 5, ".ckpt"))
		p[n - 5] = '\0';
	return p;
}

static int save(pbi_point_saver *s, pb_model *m, long step)
{
	char *path = pbi_point_path(s->base, step);
	char *tag = s->tag ? pbi_point_tag(s->tag, step) : NULL;
	int rc;

	if (!path || (s->tag && !tag)) {
		free(path);
		return pb_error_set(s->err, PB_ENOMEM, "out of memory");
	}
	/* Atomic: parallel runs never see half a file, and two identical
	 * points just replace each other. */
	rc = pb_checkpoint_save_tag(m, path, tag, s->err);
	free(path);
	free(tag);
	return rc;
}

int pbi_point_saver_begin(pbi_point_saver *s, pb_model *m)
{
	s->next = 0;
	s->done = 0;
	if (s->n > 0 && s->steps[0] == 0) {
		s->next = 1;
		return save(s, m, 0);
	}
	return 0;
}

int pbi_point_saver_step(void *user, pb_model *m, long step)
{
	pbi_point_saver *s = user;

	s->done = step + 1;
	if (s->next < s->n && s->steps[s->next] == step + 1) {
		s->next++;
		return save(s, m, step + 1);
	}
	return 0;
}

int pbi_point_saver_end(const pbi_point_saver *s)
{
	if (s->next < s->n)
		return pb_error_set(s->err, PB_EINVAL, "training point %ld is "
				    "past the end of the training (%ld "
				    "iterations)", s->steps[s->next], s->done);
	return 0;
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

void pbi_points_sort(long *steps, int *n)
{
	int k = 0;

	qsort(steps, (size_t)*n, sizeof *steps, cmp_long);
	for (int i = 0; i < *n; i++)
		if (!k || steps[i] != steps[k - 1])
			steps[k++] = steps[i];
	*n = k;
}

char *pbi_point_tag(const char *tag, long step)
{
	char *t;

	if (asprintf(&t, "%s step %ld", tag, step) < 0)
		return NULL;
	return t;
}
