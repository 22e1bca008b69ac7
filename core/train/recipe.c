/* Training recipes: defaults, parsing from key = value text, and the
 * learning rate at any point of training. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "prunebench/train.h"
#include "base/util.h"
#include "train/train_impl.h"

void pb_recipe_default(pb_recipe *r)
{
	memset(r, 0, sizeof *r);
	r->epochs = 15;
	r->batch = 128;
	r->lr = 0.05;
	r->momentum = 0.9;
	r->nesterov = 1;
	r->weight_decay = 5e-4;
	r->decay_bn_bias = 0;
	r->schedule = PB_SCHED_COSINE;
	r->min_lr = 0.0;
	r->gamma = 0.1;
	r->warmup_epochs = 1.0;
	r->aug.crop_pad = 0;
	r->aug.hflip = 0;
	r->val_size = 5000;
	r->keep_best = 0;
	r->eval_batch = 500;
}

static int bad_value(pb_error *err, const char *key, const char *value,
		     const char *want)
{
	return pb_error_set(err, PB_EPARSE, "%s = '%s': expected %s", key,
			    value, want);
}

static int set_int(int *dst, const char *key, const char *value, long lo,
		   long hi, pb_error *err)
{
	long v;

	if (pbi_parse_long(value, &v) || v < lo || v > hi) {
		char want[96];
		snprintf(want, sizeof want, "an integer in [%ld, %ld]", lo, hi);
		return bad_value(err, key, value, want);
	}
	*dst = (int)v;
	return 0;
}

static int set_double(double *dst, const char *key, const char *value,
		      double lo, double hi, pb_error *err)
{
	double v;

	if (pbi_parse_double(value, &v) || v < lo || v > hi) {
		char want[96];
		snprintf(want, sizeof want, "a number in [%g, %g]", lo, hi);
		return bad_value(err, key, value, want);
	}
	*dst = v;
	return 0;
}

static int set_bool(int *dst, const char *key, const char *value,
		    pb_error *err)
{
	if (pbi_parse_bool(value, dst))
		return bad_value(err, key, value, "yes or no");
	return 0;
}

static int set_milestones(pb_recipe *r, const char *value, pb_error *err)
{
	char buf[256], *save = NULL, *tok;
	int n = 0;

	if (strlen(value) >= sizeof buf)
		return bad_value(err, "milestones", value, "a short list");
	strcpy(buf, value);
	for (tok = strtok_r(buf, ", ", &save); tok;
	     tok = strtok_r(NULL, ", ", &save)) {
		long v;
		if (n == PB_MAX_MILESTONES)
			return pb_error_set(err, PB_EPARSE,
					    "milestones: at most %d epochs",
					    PB_MAX_MILESTONES);
		if (pbi_parse_long(tok, &v) || v < 1 ||
		    (n && v <= r->milestones[n - 1]))
			return bad_value(err, "milestones", value,
					 "increasing epoch numbers, e.g. 30,60");
		r->milestones[n++] = (int)v;
	}
	r->n_milestones = n;
	return 0;
}

int pb_recipe_set(pb_recipe *r, const char *key, const char *value,
		  pb_error *err)
{
	if (!strcmp(key, "epochs"))
		return set_int(&r->epochs, key, value, 0, 100000, err);
	if (!strcmp(key, "batch"))
		return set_int(&r->batch, key, value, 2, 65536, err);
	if (!strcmp(key, "eval_batch"))
		return set_int(&r->eval_batch, key, value, 1, 65536, err);
	if (!strcmp(key, "lr"))
		return set_double(&r->lr, key, value, 0.0, 100.0, err);
	if (!strcmp(key, "min_lr"))
		return set_double(&r->min_lr, key, value, 0.0, 100.0, err);
	if (!strcmp(key, "momentum"))
		return set_double(&r->momentum, key, value, 0.0, 0.9999, err);
	if (!strcmp(key, "nesterov"))
		return set_bool(&r->nesterov, key, value, err);
	if (!strcmp(key, "weight_decay"))
		return set_double(&r->weight_decay, key, value, 0.0, 1.0, err);
	if (!strcmp(key, "decay_bn_bias"))
		return set_bool(&r->decay_bn_bias, key, value, err);
	if (!strcmp(key, "gamma"))
		return set_double(&r->gamma, key, value, 0.0, 1.0, err);
	if (!strcmp(key, "milestones"))
		return set_milestones(r, value, err);
	if (!strcmp(key, "warmup"))
		return set_double(&r->warmup_epochs, key, value, 0.0, 1000.0,
				  err);
	if (!strcmp(key, "crop_pad"))
		return set_int(&r->aug.crop_pad, key, value, 0, 64, err);
	if (!strcmp(key, "hflip"))
		return set_bool(&r->aug.hflip, key, value, err);
	if (!strcmp(key, "val_size"))
		return set_int(&r->val_size, key, value, 0, 10000000, err);
	if (!strcmp(key, "keep_best"))
		return set_bool(&r->keep_best, key, value, err);
	if (!strcmp(key, "init")) {
		if (!strcasecmp(value, "kaiming_out"))
			r->init = PB_INIT_KAIMING_OUT;
		else if (!strcasecmp(value, "torch_default"))
			r->init = PB_INIT_TORCH_DEFAULT;
		else
			return bad_value(err, key, value,
					 "kaiming_out or torch_default");
		return 0;
	}
	if (!strcmp(key, "drop_last")) {
		int drop;
		int rc = set_bool(&drop, key, value, err);

		if (!rc)
			r->keep_last = !drop;
		return rc;
	}
	if (!strcmp(key, "schedule")) {
		if (!strcasecmp(value, "constant"))
			r->schedule = PB_SCHED_CONSTANT;
		else if (!strcasecmp(value, "step"))
			r->schedule = PB_SCHED_STEP;
		else if (!strcasecmp(value, "cosine"))
			r->schedule = PB_SCHED_COSINE;
		else
			return bad_value(err, key, value,
					 "constant, step or cosine");
		return 0;
	}
	return pb_error_set(err, PB_ENOTFOUND,
			    "unknown recipe key '%s' (known: epochs, batch, "
			    "eval_batch, lr, min_lr, momentum, nesterov, "
			    "weight_decay, decay_bn_bias, schedule, gamma, "
			    "milestones, warmup, crop_pad, hflip, val_size, "
			    "keep_best, init, drop_last)", key);
}

long pb_recipe_steps_per_epoch(const pb_recipe *r, long n)
{
	if (r->batch < 1)
		return 0;
	/* A last batch of one sample gives batch norm no variance. */
	return n / r->batch + (r->keep_last && n % r->batch > 1);
}

double pb_recipe_lr(const pb_recipe *r, double t)
{
	double lr = r->lr;

	switch (r->schedule) {
	case PB_SCHED_CONSTANT:
		break;
	case PB_SCHED_STEP:
		for (int i = 0; i < r->n_milestones; i++)
			if (t >= r->milestones[i])
				lr *= r->gamma;
		break;
	case PB_SCHED_COSINE:
		if (r->epochs > 0) {
			double f = t / r->epochs;
			if (f > 1.0)
				f = 1.0;
			lr = r->min_lr + 0.5 * (r->lr - r->min_lr) *
					     (1.0 + cos(M_PI * f));
		}
		break;
	}
	/* Linear warm-up multiplies whatever the schedule gives, starting
	 * from a small but non-zero rate so the first step still moves. */
	if (r->warmup_epochs > 0 && t < r->warmup_epochs)
		lr *= (t + 1e-3) / (r->warmup_epochs + 1e-3);
	return lr;
}

int pb_recipe_check(const pb_recipe *r, const char **key, pb_error *err)
{
	const char *k = NULL;

	if (r->epochs < 1)
		pb_error_set(err, PB_EINVAL, "epochs = %d: a recipe trains at "
			     "least one epoch (the accuracy right after "
			     "pruning is the table's \"before FT\" column)",
			     r->epochs), k = "epochs";
	else if (r->schedule == PB_SCHED_COSINE && r->min_lr > r->lr)
		pb_error_set(err, PB_EINVAL, "min_lr = %g is above lr = %g: the "
			     "cosine would rise; set min_lr <= lr", r->min_lr,
			     r->lr), k = "min_lr";
	else if (r->warmup_epochs > r->epochs)
		pb_error_set(err, PB_EINVAL, "warmup = %g epochs is longer than "
			     "the %d epochs of training", r->warmup_epochs,
			     r->epochs), k = "warmup";
	if (key)
		*key = k;
	return k ? PB_EINVAL : 0;
}

void pbi_recipe_for(const pb_recipe *base, double epochs, long steps,
		    long per_epoch, pb_recipe *r, long *max_steps)
{
	*r = *base;
	r->keep_best = 0; /* a plugin's training must not look at val */
	r->epochs = epochs > 0 ? (int)ceil(epochs) : 1;
	*max_steps = steps > 0 ? steps :
		(epochs != floor(epochs) ? (long)(epochs * per_epoch) : 0);
	if (steps > 0 && !(epochs > 0) && per_epoch > 0)
		r->epochs = (int)((steps + per_epoch - 1) / per_epoch);
}

/* ---- canonical text (hashing: cell ids, the dense cache, trunks) ------- */

void pbi_recipe_canon(const pb_recipe *r, char *buf, size_t n)
{
	int k = snprintf(buf, n, "epochs=%d batch=%d lr=%.17g momentum=%.17g "
			 "nesterov=%d wd=%.17g decay_bn_bias=%d schedule=%d "
			 "min_lr=%.17g gamma=%.17g warmup=%.17g crop_pad=%d "
			 "hflip=%d keep_best=%d eval_batch=%d milestones=",
			 r->epochs, r->batch, r->lr, r->momentum, r->nesterov,
			 r->weight_decay, r->decay_bn_bias, (int)r->schedule,
			 r->min_lr, r->gamma, r->warmup_epochs, r->aug.crop_pad,
			 r->aug.hflip, r->keep_best, r->eval_batch);
	for (int i = 0; i < r->n_milestones && k > 0 && (size_t)k < n; i++)
		k += snprintf(buf + k, n - (size_t)k, "%d,", r->milestones[i]);
	/* Keys added later appear only when not at their default, so every
	 * definition made before them keeps its hash (cell ids, cache). */
	if (r->init != PB_INIT_KAIMING_OUT && k > 0 && (size_t)k < n)
		k += snprintf(buf + k, n - (size_t)k, " init=%d", (int)r->init);
	if (r->keep_last && k > 0 && (size_t)k < n)
		snprintf(buf + k, n - (size_t)k, " keep_last=1");
}
