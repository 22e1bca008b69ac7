/* A plugin's option values, validated against the options it declares in
 * its descriptor: the core, not each plugin, rejects unknown names, bad
 * numbers, out-of-range values and choices not on the list, so every
 * plugin gets the same messages with the caller's file:line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prunebench/plugin.h"
#include "train/train_points.h"
#include "base/util.h"

typedef struct opt_value {
	const pb_pruner_option *decl;
	char *text;       /* validated text, as given (or the default) */
	long i;
	double d;
	int b;
} opt_value;

struct pb_options {
	const char *plugin;
	const pb_pruner_option *decls;
	int n;
	opt_value *v;
};

const char *pb_opt_type_name(pb_opt_type t)
{
	switch (t) {
	case PB_OPT_INT: return "integer";
	case PB_OPT_DOUBLE: return "number";
	case PB_OPT_BOOL: return "yes/no";
	case PB_OPT_CHOICE: return "choice";
	case PB_OPT_STRING: return "text";
	case PB_OPT_POINT: return "point";
	}
	return "?";
}

/* A declaration that leaves min and max out (both 0) means no range:
 * otherwise a zero-initialised numeric option would accept only 0 and
 * refuse its own default. */
int pb_option_bounded(const pb_pruner_option *d)
{
	if ((d->type != PB_OPT_INT && d->type != PB_OPT_DOUBLE) ||
	    (d->min == 0.0 && d->max == 0.0))
		return 0;
	return d->min <= d->max;
}

/* Is `value` one of "a|b|c"? Whole-word comparison. */
static int in_choices(const char *choices, const char *value)
{
	size_t n = strlen(value);
	const char *p = choices;

	while (p && *p) {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);

		if (len == n && !strncmp(p, value, n))
			return 1;
		p = bar ? bar + 1 : NULL;
	}
	return 0;
}

static int bad_value(pb_error *err, const char *where, const char *plugin,
		     const pb_pruner_option *d, const char *value,
		     const char *what)
{
	return pb_error_set(err, PB_EPARSE, "%s%soption '%s' of plugin '%s': "
			    "'%s' %s", where ? where : "", where ? ": " : "",
			    d->name, plugin, value, what);
}

/* Checks `value` against declaration d and stores it in v. */
static int validate(opt_value *v, const pb_pruner_option *d,
		    const char *value, const char *where, const char *plugin,
		    pb_error *err)
{
	char what[256];
	long i = 0;
	double x = 0;
	int b = 0;
	char *copy;

	switch (d->type) {
	case PB_OPT_INT:
		if (pbi_parse_long(value, &i))
			return bad_value(err, where, plugin, d, value,
					 "is not an integer");
		if (pb_option_bounded(d) && (i < d->min || i > d->max)) {
			snprintf(what, sizeof what, "is out of range: expected "
				 "an integer in [%.15g, %.15g]", d->min, d->max);
			return bad_value(err, where, plugin, d, value, what);
		}
		x = (double)i;
		break;
	case PB_OPT_DOUBLE:
		if (pbi_parse_double(value, &x))
			return bad_value(err, where, plugin, d, value,
					 "is not a number");
		if (pb_option_bounded(d) && (x < d->min || x > d->max)) {
			snprintf(what, sizeof what, "is out of range: expected "
				 "a number in [%.15g, %.15g]", d->min, d->max);
			return bad_value(err, where, plugin, d, value, what);
		}
		break;
	case PB_OPT_BOOL:
		if (pbi_parse_bool(value, &b))
			return bad_value(err, where, plugin, d, value,
					 "is not yes/no (also true/false, "
					 "on/off, 1/0)");
		break;
	case PB_OPT_CHOICE:
		if (!d->choices || !in_choices(d->choices, value)) {
			snprintf(what, sizeof what, "is not one of %s",
				 d->choices ? d->choices : "(no choices "
				 "declared)");
			return bad_value(err, where, plugin, d, value, what);
		}
		break;
	case PB_OPT_STRING:
		break;
	case PB_OPT_POINT:
		if (pbi_point_check(value))
			return bad_value(err, where, plugin, d, value,
					 "is not a training point: expected N "
					 "(iterations), Xep (epochs) or X% (of "
					 "the dense training)");
		break;
	default:
		return pb_error_set(err, PB_EINVAL, "plugin '%s' declares "
				    "option '%s' with unknown type %d: fix the "
				    "plugin's option table", plugin, d->name,
				    (int)d->type);
	}
	copy = strdup(value);
	if (!copy)
		return pb_error_set(err, PB_ENOMEM, "out of memory (options)");
	free(v->text);
	v->text = copy;
	v->i = i;
	v->d = x;
	v->b = b;
	return 0;
}

void pb_options_free(pb_options *o)
{
	if (!o)
		return;
	for (int i = 0; i < o->n; i++)
		free(o->v[i].text);
	free(o->v);
	free(o);
}

int pb_options_new(pb_options **out, const pb_pruner *pr, pb_error *err)
{
	pb_options *o;
	const char *plugin = pr->name ? pr->name : "?";
	int rc;

	*out = NULL;
	if (pr->n_options < 0 || (pr->n_options > 0 && !pr->options))
		return pb_error_set(err, PB_EINVAL, "plugin '%s' declares %d "
				    "options but no option table", plugin,
				    pr->n_options);
	o = calloc(1, sizeof *o);
	if (!o || !(o->v = calloc((size_t)pr->n_options + 1, sizeof *o->v))) {
		free(o);
		return pb_error_set(err, PB_ENOMEM, "out of memory (options)");
	}
	o->plugin = plugin;
	o->decls = pr->options;
	o->n = pr->n_options;
	for (int i = 0; i < o->n; i++) {
		const pb_pruner_option *d = &pr->options[i];

		o->v[i].decl = d;
		if (!d->name || !*d->name || !d->def) {
			pb_options_free(o);
			return pb_error_set(err, PB_EINVAL, "plugin '%s': option "
					    "%d has no name or no default: "
					    "every declared option needs both",
					    plugin, i + 1);
		}
		for (int j = 0; j < i; j++)
			if (!strcmp(pr->options[j].name, d->name)) {
				pb_options_free(o);
				return pb_error_set(err, PB_EINVAL, "plugin "
						    "'%s' declares option '%s' "
						    "twice", plugin, d->name);
			}
		rc = validate(&o->v[i], d, d->def, NULL, plugin, err);
		if (rc) {
			pb_error_prefix(err, "the default of ");
			pb_options_free(o);
			return rc;
		}
	}
	*out = o;
	return 0;
}

static opt_value *find(const pb_options *o, const char *key)
{
	if (!o || !key)
		return NULL;
	for (int i = 0; i < o->n; i++)
		if (!strcmp(o->v[i].decl->name, key))
			return &o->v[i];
	return NULL;
}

/* "norm (integer 1..2), include_first (yes/no)" */
static void list_options(const pb_options *o, char *buf, size_t n)
{
	size_t len = 0;

	buf[0] = '\0';
	if (o->n == 0) {
		snprintf(buf, n, "it takes no options");
		return;
	}
	len += (size_t)snprintf(buf, n, "its options are: ");
	for (int i = 0; i < o->n && len < n; i++) {
		const pb_pruner_option *d = o->v[i].decl;

		if (d->type == PB_OPT_CHOICE)
			len += (size_t)snprintf(buf + len, n - len, "%s%s (%s)",
						i ? ", " : "", d->name,
						d->choices ? d->choices : "");
		else
			len += (size_t)snprintf(buf + len, n - len, "%s%s (%s)",
						i ? ", " : "", d->name,
						pb_opt_type_name(d->type));
	}
}

int pb_options_set(pb_options *o, const char *key, const char *value,
		   const char *where, pb_error *err)
{
	opt_value *v = find(o, key);

	if (!v) {
		char list[512];

		list_options(o, list, sizeof list);
		return pb_error_set(err, PB_ENOTFOUND, "%s%splugin '%s' has no "
				    "option '%s'; %s", where ? where : "",
				    where ? ": " : "", o->plugin, key, list);
	}
	return validate(v, v->decl, value, where, o->plugin, err);
}

int pb_options_set_kv(pb_options *o, const char *kv, const char *where,
		      pb_error *err)
{
	char key[128];
	const char *eq = strchr(kv, '=');
	size_t kn;

	if (!eq || eq == kv)
		return pb_error_set(err, PB_EPARSE, "%s%s'%s': expected "
				    "KEY=VALUE", where ? where : "",
				    where ? ": " : "", kv);
	kn = (size_t)(eq - kv);
	while (kn && (kv[kn - 1] == ' ' || kv[kn - 1] == '\t'))
		kn--;
	if (kn >= sizeof key)
		return pb_error_set(err, PB_EPARSE, "%s%soption name too long "
				    "in '%s'", where ? where : "",
				    where ? ": " : "", kv);
	memcpy(key, kv, kn);
	key[kn] = '\0';
	eq++;
	while (*eq == ' ' || *eq == '\t')
		eq++;
	return pb_options_set(o, key, eq, where, err);
}

const char *pb_options_text(const pb_options *o, const char *key)
{
	opt_value *v = find(o, key);

	return v ? v->text : NULL;
}

long pb_options_int(const pb_options *o, const char *key)
{
	opt_value *v = find(o, key);

	return v && v->decl->type == PB_OPT_INT ? v->i : 0;
}

double pb_options_double(const pb_options *o, const char *key)
{
	opt_value *v = find(o, key);

	return v && (v->decl->type == PB_OPT_DOUBLE ||
		     v->decl->type == PB_OPT_INT) ? v->d : 0.0;
}

int pb_options_bool(const pb_options *o, const char *key)
{
	opt_value *v = find(o, key);

	return v && v->decl->type == PB_OPT_BOOL ? v->b : 0;
}

void pb_options_format(const pb_options *o, char *buf, size_t n)
{
	size_t len = 0;

	if (!n)
		return;
	buf[0] = '\0';
	for (int i = 0; o && i < o->n && len < n; i++)
		len += (size_t)snprintf(buf + len, n - len, "%s%s=%s",
					i ? " " : "", o->v[i].decl->name,
					o->v[i].text);
}

/* ---- options of an estimate (pruner.h, pb_estimate) ---------------------- */

double pb_estimate_opt_double(const pb_estimate *q, const char *name)
{
	return pb_options_double(q->opaque, name);
}

const char *pb_estimate_opt_string(const pb_estimate *q, const char *name)
{
	const char *t = pb_options_text(q->opaque, name);

	return t ? t : "";
}
