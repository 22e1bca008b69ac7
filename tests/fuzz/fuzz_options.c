/* Fuzzing plugin option values (pb_options_set, pb_options_set_kv) against
 * a descriptor declared here with an option of every pb_opt_type: ranged
 * and unbounded numbers, yes/no, a choice, text and training points.
 *
 * Input: one flag byte, then lines. Bit 0 of the flag byte set: each line
 * goes to pb_options_set_kv as "KEY=VALUE" text (as --opt gives it);
 * clear: it is split at its first '=' (none: all key, empty value) and
 * goes to pb_options_set (as an experiment file's keys do).
 *
 * Promises checked: a refused value says why and leaves the option as it
 * was; every accepted value reads back through the typed getters within
 * its declared range; pb_options_format fits any buffer; a training
 * point turns into an iteration of a 15-epoch, 390-step dense training
 * (what the sweep and pb_ctx_opt_point do with it), or is refused as
 * past any training, without overflow. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "prunebench/plugin.h"
#include "train/train_points.h"

static const pb_pruner_option options[] = {
	{ .name = "norm", .type = PB_OPT_INT, .def = "2",
	  .help = "ranged integer", .min = 1, .max = 2 },
	{ .name = "steps", .type = PB_OPT_INT, .def = "-3",
	  .help = "unbounded integer", .min = 1, .max = 0 },
	{ .name = "rate", .type = PB_OPT_DOUBLE, .def = "0.2",
	  .help = "ranged number", .min = 0, .max = 1 },
	{ .name = "scale", .type = PB_OPT_DOUBLE, .def = "-1e300",
	  .help = "unbounded number", .min = 1, .max = 0 },
	{ .name = "include_first", .type = PB_OPT_BOOL, .def = "no",
	  .help = "yes/no" },
	{ .name = "from", .type = PB_OPT_CHOICE, .def = "dense",
	  .help = "choice", .choices = "dense|init|random-init" },
	{ .name = "label", .type = PB_OPT_STRING, .def = "",
	  .help = "text" },
	{ .name = "rewind", .type = PB_OPT_POINT, .def = "1%",
	  .help = "training point" },
	{ .name = "warm", .type = PB_OPT_POINT, .def = "500",
	  .help = "another training point" },
};
#define N_OPTIONS ((int)(sizeof options / sizeof options[0]))

static int prune(void *state, pb_prune_ctx *ctx)
{
	(void)state;
	(void)ctx;
	return 0;
}

static const pb_pruner pruner = {
	PB_PRUNER_HEADER,
	.name = "fuzz",
	.version = "1",
	.granularity = PB_GRANULARITY_CHANNEL,
	.description = "option declarations of every type",
	.options = options,
	.n_options = N_OPTIONS,
	.prune = prune,
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_setup();
	return 0;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Every option through its getter; ranged ones within their range. */
static void check_values(const pb_options *o)
{
	char buf[600];
	long step;
	pb_error err = { 0 };
	static const size_t sizes[] = { 1, 2, 17, sizeof buf };

	for (int i = 0; i < N_OPTIONS; i++) {
		const pb_pruner_option *d = &options[i];
		const char *text = pb_options_text(o, d->name);
		long v = pb_options_int(o, d->name);
		double x = pb_options_double(o, d->name);
		int b = pb_options_bool(o, d->name);

		if (!text)
			fuzz_fail("option '%s' has no text", d->name);
		if (d->min <= d->max && (d->type == PB_OPT_INT ||
					 d->type == PB_OPT_DOUBLE) &&
		    !(x >= d->min && x <= d->max))
			fuzz_fail("option '%s' = %g is out of its range",
				  d->name, x);
		if (d->type == PB_OPT_INT && (double)v != x)
			fuzz_fail("option '%s': integer %ld, number %g",
				  d->name, v, x);
		if (d->type == PB_OPT_DOUBLE && !isfinite(x))
			fuzz_fail("option '%s' = %g", d->name, x);
		if (b != 0 && b != 1)
			fuzz_fail("option '%s': yes/no %d", d->name, b);
		if (d->type == PB_OPT_POINT) {
			/* A point past any training may be refused here,
			 * with a reason, as the sweep would refuse it. */
			int rc = pbi_point_step(text, 15, 390, &step, &err);

			if (rc)
				fuzz_check_error(rc, &err, "pbi_point_step");
			else if (step < 0)
				fuzz_fail("point '%s' is iteration %ld", text,
					  step);
		}
	}
	for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		memset(buf, 'x', sizeof buf);
		pb_options_format(o, buf, sizes[k]);
		if (!memchr(buf, '\0', sizes[k]))
			fuzz_fail("pb_options_format overran a %zu-byte buffer",
				  sizes[k]);
	}
}

static void set_line(pb_options *o, char *line, int kv)
{
	pb_error err = { 0 };
	char *key = line, *before;
	const char *value = "", *after;
	char *eq = strchr(line, '=');
	int rc;

	if (kv) {
		/* The key pb_options_set_kv cuts out: before the '=', without
		 * trailing blanks. */
		size_t n = eq ? (size_t)(eq - line) : strlen(line);

		key = strndup(line, n);
		if (!key)
			return;
		while (n && (key[n - 1] == ' ' || key[n - 1] == '\t'))
			key[--n] = '\0';
	} else if (eq) {
		*eq = '\0';
		value = eq + 1;
	}
	before = dup_or_null(pb_options_text(o, key));
	if (kv)
		rc = pb_options_set_kv(o, line, "fuzz:1", &err);
	else
		rc = pb_options_set(o, key, value, "fuzz:1", &err);
	after = pb_options_text(o, key);
	if (rc) {
		fuzz_check_error(rc, &err, kv ? "pb_options_set_kv" :
				 "pb_options_set");
		if ((before || after) &&
		    (!before || !after || strcmp(before, after)))
			fuzz_fail("a refused value changed option '%s'", key);
	}
	free(before);
	if (kv)
		free(key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pb_options *o = NULL;
	pb_error err = { 0 };
	char *text, *line, *save = NULL;
	int kv;

	if (size < 1)
		return 0;
	kv = data[0] & 1;
	text = fuzz_text(data + 1, size - 1);
	if (!text)
		return 0;
	if (pb_options_new(&o, &pruner, &err))
		fuzz_fail("pb_options_new: %s", err.msg);
	check_values(o);
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save))
		set_line(o, line, kv);
	check_values(o);
	pb_options_free(o);
	free(text);
	return 0;
}
