/* Pruning targets as text, the form the CLI (--target) and experiment
 * files use:
 *
 *   KIND=AMOUNT[, scope=layer|global][, LAYER=AMOUNT]...
 *
 * KIND is sparsity, channels, params or macs; AMOUNT is the fraction
 * removed, in [0, 1). Items after the first set the scope (default layer)
 * or override the amount of one layer by its name in the model file:
 * "sparsity=0.8, scope=global, fc=0.5". Layer names are checked against
 * the model where the target is used, not here. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prune/prune_impl.h"
#include "prunebench/target.h"

static const char *const kind_names[] = {
	[PB_TARGET_SPARSITY] = "sparsity",
	[PB_TARGET_CHANNELS] = "channels",
	[PB_TARGET_PARAMS] = "params",
	[PB_TARGET_MACS] = "macs",
};

#define KINDS_HELP "sparsity=S, channels=R, params=P or macs=F"

/* One "key=value" item with surrounding blanks removed. */
struct item {
	char key[64];
	char value[64];
};

static void trim(const char **b, const char **e)
{
	while (*b < *e && isspace((unsigned char)**b))
		(*b)++;
	while (*e > *b && isspace((unsigned char)(*e)[-1]))
		(*e)--;
}

static int split_item(struct item *it, const char *b, const char *e,
		      const char *text, pb_error *err)
{
	const char *eq, *kb, *ke, *vb, *ve;
	size_t kl, vl;

	trim(&b, &e);
	if (b == e)
		return pb_error_set(err, PB_EPARSE,
				    "target '%s': empty item (two commas in a "
				    "row, or a trailing comma)", text);
	eq = memchr(b, '=', (size_t)(e - b));
	if (!eq)
		return pb_error_set(err, PB_EPARSE,
				    "target '%s': '%.*s' is not KEY=VALUE; "
				    "write e.g. sparsity=0.75, scope=global, "
				    "fc=0.5", text, (int)(e - b), b);
	kb = b;
	ke = eq;
	vb = eq + 1;
	ve = e;
	trim(&kb, &ke);
	trim(&vb, &ve);
	kl = (size_t)(ke - kb);
	vl = (size_t)(ve - vb);
	if (kl == 0 || vl == 0)
		return pb_error_set(err, PB_EPARSE,
				    "target '%s': '%.*s' has an empty %s", text,
				    (int)(e - b), b, kl == 0 ? "name" : "value");
	if (kl >= sizeof it->key || vl >= sizeof it->value)
		return pb_error_set(err, PB_EPARSE,
				    "target '%s': '%.*s' is too long", text,
				    (int)(e - b), b);
	memcpy(it->key, kb, kl);
	it->key[kl] = '\0';
	memcpy(it->value, vb, vl);
	it->value[vl] = '\0';
	return 0;
}

static int parse_amount(double *out, const struct item *it, const char *text,
			pb_error *err)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(it->value, &end);
	if (end == it->value || *end || errno || !isfinite(v))
		return pb_error_set(err, PB_EPARSE,
				    "target '%s': %s = '%s' is not a number; "
				    "give the fraction removed, e.g. 0.75",
				    text, it->key, it->value);
	if (v < 0.0 || v >= 1.0)
		return pb_error_set(err, PB_EIMPOSSIBLE,
				    "target '%s': %s = %g is out of range; "
				    "the amount is the fraction removed, in "
				    "[0, 1) (write 0.75 for 75%%)", text,
				    it->key, v);
	*out = v;
	return 0;
}

static int parse_kind(pb_target *t, const struct item *it, const char *text,
		      pb_error *err)
{
	for (int k = 0; k < (int)(sizeof kind_names / sizeof *kind_names);
	     k++) {
		if (!strcmp(it->key, kind_names[k])) {
			t->kind = (pb_target_kind)k;
			return parse_amount(&t->amount, it, text, err);
		}
	}
	return pb_error_set(err, PB_EPARSE,
			    "target '%s': unknown kind '%s'; a target starts "
			    "with " KINDS_HELP, text, it->key);
}

static int parse_option(pb_target *t, const struct item *it, int *seen_scope,
			const char *text, pb_error *err)
{
	pb_target_override *o;
	int rc;

	if (!strcmp(it->key, "scope")) {
		if (*seen_scope)
			return pb_error_set(err, PB_EPARSE,
					    "target '%s': scope given twice",
					    text);
		*seen_scope = 1;
		if (!strcmp(it->value, "layer"))
			t->scope = PB_SCOPE_LAYER;
		else if (!strcmp(it->value, "global"))
			t->scope = PB_SCOPE_GLOBAL;
		else
			return pb_error_set(err, PB_EPARSE,
					    "target '%s': scope = '%s'; use "
					    "scope=layer or scope=global",
					    text, it->value);
		return 0;
	}
	for (int k = 0; k < (int)(sizeof kind_names / sizeof *kind_names);
	     k++)
		if (!strcmp(it->key, kind_names[k]))
			return pb_error_set(err, PB_EPARSE,
					    "target '%s': a target has one "
					    "kind, but '%s' comes after the "
					    "first item", text, it->key);
	for (int i = 0; i < t->n_overrides; i++)
		if (!strcmp(t->overrides[i].layer, it->key))
			return pb_error_set(err, PB_EPARSE,
					    "target '%s': layer '%s' is "
					    "overridden twice", text, it->key);
	if (t->n_overrides == PB_TARGET_MAX_OVERRIDES)
		return pb_error_set(err, PB_EPARSE,
				    "target '%s': more than %d per-layer "
				    "overrides", text, PB_TARGET_MAX_OVERRIDES);
	if (strlen(it->key) >= sizeof t->overrides[0].layer)
		return pb_error_set(err, PB_EPARSE,
				    "target '%s': layer name '%s' is longer "
				    "than %zu characters", text, it->key,
				    sizeof t->overrides[0].layer - 1);
	o = &t->overrides[t->n_overrides];
	strcpy(o->layer, it->key);
	rc = parse_amount(&o->amount, it, text, err);
	if (!rc)
		t->n_overrides++;
	return rc;
}

int pb_target_parse(pb_target *t, const char *text, pb_error *err)
{
	pb_target tmp;
	const char *p;
	int seen_scope = 0, first = 1;

	memset(&tmp, 0, sizeof tmp);
	tmp.scope = PB_SCOPE_LAYER;
	if (!text || !*text)
		return pb_error_set(err, PB_EPARSE,
				    "empty target; give " KINDS_HELP
				    ", e.g. sparsity=0.75");
	p = text;
	for (;;) {
		const char *e = strchr(p, ',');
		struct item it;
		int rc;

		if (!e)
			e = p + strlen(p);
		rc = split_item(&it, p, e, text, err);
		if (!rc)
			rc = first ? parse_kind(&tmp, &it, text, err)
				   : parse_option(&tmp, &it, &seen_scope, text,
						  err);
		if (rc)
			return rc;
		first = 0;
		if (!*e)
			break;
		p = e + 1;
	}
	*t = tmp;
	return 0;
}

void pb_target_format(const pb_target *t, char *buf, size_t n)
{
	const char *k = "?";
	char num[32];

	if (!n)
		return;
	if ((unsigned)t->kind < sizeof kind_names / sizeof *kind_names)
		k = kind_names[t->kind];
	/* The shortest spelling that reads back as the same amount: "%g"
	 * alone wrote 0.9999999 as "1", which is out of range, and made
	 * nearby targets one cell (found by fuzzing). */
	for (int prec = 6; prec <= 17; prec++) {
		snprintf(num, sizeof num, "%.*g", prec, t->amount);
		if (strtod(num, NULL) == t->amount)
			break;
	}
	snprintf(buf, n, "%s=%s", k, num);
}

const char *pb_target_kind_name(pb_target_kind k)
{
	return (unsigned)k < sizeof kind_names / sizeof kind_names[0] &&
	       kind_names[k] ? kind_names[k] : "?";
}
