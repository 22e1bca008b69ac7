/* Reading one [prune.NAME] section of an experiment INI: the runner's
 * keys (targets, scope, schedule, per-layer overrides, controls), then
 * the plugin's own options checked against its declaration. Every
 * message is "FILE:LINE: [prune.NAME] ...". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/ini_doc.h"
#include "base/util.h"
#include "experiment/experiment_impl.h"
#include "prune/prune_impl.h"
#include "prunebench/target.h"

static int parse_targets(pbi_ini_doc *c, pb_exp_method *m,
			 const pbi_ini_section *s, const pbi_ini_key *k)
{
	char buf[1024], *save = NULL, *tok;

	if (strlen(k->value) >= sizeof buf)
		return pbi_ini_err(c, PB_EPARSE, k->line, "[%s] targets: too "
				   "long", s->name);
	strcpy(buf, k->value);
	m->n_targets = 0;
	for (tok = strtok_r(buf, " \t,", &save); tok;
	     tok = strtok_r(NULL, " \t,", &save)) {
		pb_error terr = { 0 };
		int n = m->n_targets;

		if (n == PB_EXP_MAX_TARGETS)
			return pbi_ini_err(c, PB_EPARSE, k->line, "[%s] "
					   "targets: at most %d", s->name,
					   PB_EXP_MAX_TARGETS);
		if (strlen(tok) >= sizeof m->target_text[0])
			return pbi_ini_err(c, PB_EPARSE, k->line, "[%s] "
					   "targets: '%s' is too long", s->name,
					   tok);
		if (pb_target_parse(&m->targets[n], tok, &terr))
			return pbi_ini_err(c, PB_EPARSE, k->line, "[%s] "
					   "targets: %s", s->name, terr.msg);
		/* One spelling per target ("sparsity=0.50" and "5e-1" are
		 * "sparsity=0.5"), so one target is one cell and one row. */
		pb_target_format(&m->targets[n], m->target_text[n],
				 sizeof m->target_text[n]);
		for (int i = 0; i < n; i++)
			if (!strcmp(m->target_text[i], m->target_text[n]))
				return pbi_ini_err(c, PB_EPARSE, k->line,
						   "[%s] target '%s' is given "
						   "twice (as %s)", s->name,
						   m->target_text[n], tok);
		m->n_targets++;
	}
	if (!m->n_targets)
		return pbi_ini_err(c, PB_EPARSE, k->line, "[%s] targets is "
				   "empty; write e.g. targets = macs=0.3 "
				   "macs=0.5", s->name);
	return 0;
}

static int parse_schedule(pbi_ini_doc *c, pb_exp_method *m,
			  const pbi_ini_section *s, const pbi_ini_key *k)
{
	long n;

	if (!strcmp(k->value, "oneshot")) {
		m->plan.schedule = PB_PRUNE_ONESHOT;
		return 0;
	}
	if (!strcmp(k->value, "gradual")) {
		m->plan.schedule = PB_PRUNE_GRADUAL;
		return 0;
	}
	if (!strncmp(k->value, "iterative:", 10) &&
	    !pbi_parse_long(k->value + 10, &n) && n >= 1 && n <= 100) {
		m->plan.schedule = PB_PRUNE_ITERATIVE;
		m->plan.rounds = (int)n;
		return 0;
	}
	return pbi_ini_err(c, PB_EPARSE, k->line, "[%s] schedule = '%s': "
			   "expected oneshot, iterative:N (N rounds, 1-100) or "
			   "gradual", s->name, k->value);
}

/* Keys the core reads in a [prune.NAME] section; anything else is the
 * plugin's. */
static const char *const core_keys[] = {
	"plugin", "targets", "scope", "schedule", "round_epochs",
	"gradual_begin", "gradual_epochs", "gradual_steps", "gradual_initial",
	"finetune", "matched_dense", "scratch_b_cap", "stream", "label",
	"quantize", "activations", "layers", "sensitivity_levels", NULL
};

static int is_core_key(const char *name)
{
	for (int i = 0; core_keys[i]; i++)
		if (!strcmp(name, core_keys[i]))
			return 1;
	return !strncmp(name, "layer.", 6);
}

/* layer.NAME = X: one per-layer override of the amount. */
static int parse_override(pbi_ini_doc *c, const pbi_ini_section *s,
			  const pbi_ini_key *k, const pb_model *model,
			  pb_target_override *ov, int *lines, int *n_ov)
{
	const char *ln = k->name + 6;
	double a;

	if (pb_model_find_layer(model, ln) < 0)
		return pbi_ini_err(c, PB_ENOTFOUND, k->line, "[%s] %s: model "
				   "'%s' has no layer '%s'", s->name, k->name,
				   pb_model_name(model), ln);
	if (strlen(ln) >= sizeof ov[0].layer)
		return pbi_ini_err(c, PB_EPARSE, k->line, "[%s] %s: layer name "
				   "too long", s->name, k->name);
	if (*n_ov == PB_TARGET_MAX_OVERRIDES)
		return pbi_ini_err(c, PB_EPARSE, k->line, "[%s] at most %d "
				   "per-layer overrides", s->name,
				   PB_TARGET_MAX_OVERRIDES);
	if (pbi_parse_double(k->value, &a) || !(a >= 0.0) || !(a < 1.0))
		return pbi_ini_err(c, PB_EPARSE, k->line, "[%s] %s = '%s': "
				   "expected the fraction removed in that "
				   "layer, in [0, 1)", s->name, k->name,
				   k->value);
	strcpy(ov[*n_ov].layer, ln);
	lines[*n_ov] = k->line;
	ov[(*n_ov)++].amount = a;
	return 0;
}

/* An override names a layer the plugin can prune: a conv or linear
 * weight for a weight pruner; for a channel pruner, a conv or linear
 * whose output channels form a prunable group (not the classifier).
 * Checked here, with its line, rather than in every cell after the dense
 * training. */
static int check_overrides(pbi_ini_doc *c, const pb_exp_method *m,
			   const pbi_ini_section *s, const pb_model *model,
			   const int *lines)
{
	const pb_pruner *pr = pb_plugin_pruner(m->plugin);
	const pb_target *t = &m->targets[0];
	pb_channel_group *g = NULL;
	pb_error gerr = { 0 };
	int n_groups = 0, rc = 0;

	if (pr->granularity == PB_GRANULARITY_CHANNEL &&
	    pbi_groups_derive(model, &g, &n_groups, &gerr))
		return pbi_ini_err(c, gerr.code, s->line, "[%s] %s", s->name,
				   gerr.msg);
	for (int i = 0; i < t->n_overrides && !rc; i++) {
		const char *ln = t->overrides[i].layer;
		int layer = pb_model_find_layer(model, ln), ok = 0;
		pb_layer_type type = pb_model_layer(model, layer)->type;

		if (type != PB_LAYER_CONV && type != PB_LAYER_LINEAR) {
			rc = pbi_ini_err(c, PB_EPARSE, lines[i], "[%s] layer.%s: "
					 "'%s' is a %s layer, which has no "
					 "weights to prune; name a conv or "
					 "linear layer", s->name, ln, ln,
					 pb_layer_type_name(type));
			break;
		}
		if (pr->granularity == PB_GRANULARITY_WEIGHT)
			continue;
		for (int k = 0; k < n_groups && !ok; k++)
			for (int j = 0; j < g[k].n_producers && !ok; j++)
				ok = g[k].producers[j] == layer &&
				     g[k].prunable;
		if (!ok)
			rc = pbi_ini_err(c, PB_EPARSE, lines[i], "[%s] layer.%s: "
					 "plugin '%s' removes channels, and "
					 "the output channels of '%s' cannot "
					 "be removed (the classifier's "
					 "outputs)", s->name, ln, pr->name,
					 ln);
	}
	free(g);
	return rc;
}

/* The plugin named by the section, and its own options (every key that
 * is not the runner's). */
static int plugin_options(pbi_ini_doc *c, pb_exp_method *m,
			  const pbi_ini_section *s,
			  const pbi_ini_key *plugin_key,
			  const pb_plugin_path *sp)
{
	pb_error perr_ = { 0 };
	char where[600];

	if (pb_plugin_open(&m->plugin, sp, m->plugin_name, &perr_))
		return pbi_ini_err(c, perr_.code,
				   plugin_key ? plugin_key->line : s->line,
				   "[%s] %s", s->name, perr_.msg);
	if (pb_options_new(&m->options, pb_plugin_pruner(m->plugin), &perr_))
		return pbi_ini_err(c, perr_.code, s->line, "[%s] %s", s->name,
				   perr_.msg);
	for (int i = 0; i < s->n_keys; i++) {
		const pbi_ini_key *k = &s->keys[i];

		if (is_core_key(k->name))
			continue;
		snprintf(where, sizeof where, "%s:%d: [%s]", c->source, k->line,
			 s->name);
		if (pb_options_set(m->options, k->name, k->value, where,
				   &perr_)) {
			/* The message starts with `where` (FILE:LINE). */
			if (!c->err_line) {
				c->err_line = k->line;
				c->err_code = perr_.code ? perr_.code : PB_EPARSE;
				pb_error_set(c->err, c->err_code, "%s",
					     perr_.msg);
			}
			return -1;
		}
	}
	return 0;
}

/* What the method's keys say together, against its plugin. */
static int check_method(pbi_ini_doc *c, const pb_experiment *e,
			pb_exp_method *m, const pbi_ini_section *s,
			const pbi_ini_key *targets, const pb_model *model,
			const int *lines)
{
	const pb_pruner *pr = pb_plugin_pruner(m->plugin);

	for (int t = 0; t < m->n_targets; t++) {
		int weight = pr->granularity == PB_GRANULARITY_WEIGHT;
		int sparsity = m->targets[t].kind == PB_TARGET_SPARSITY;
		if (weight != sparsity)
			return pbi_ini_err(c, PB_EPARSE, targets->line, "[%s] "
					   "target '%s' does not suit plugin "
					   "'%s', which prunes %s: use %s",
					   s->name, m->target_text[t], pr->name,
					   weight ? "individual weights" :
					   "whole channels", weight ?
					   "sparsity=S" : "channels=R, "
					   "params=P or macs=F");
	}
	if (m->plan.schedule == PB_PRUNE_GRADUAL) {
		double ft = e->finetune.epochs;
		if (pr->granularity != PB_GRANULARITY_WEIGHT)
			return pbi_ini_err(c, PB_EPARSE, s->line, "[%s] "
					   "schedule = gradual needs a weight "
					   "pruner (plugin '%s' removes "
					   "channels); use iterative:N",
					   s->name, pr->name);
		if (m->plan.gradual_epochs < 0)
			m->plan.gradual_epochs = ft > 1 ? 0.75 * ft : ft;
		if (m->plan.gradual_begin + m->plan.gradual_epochs > ft + 1e-9)
			return pbi_ini_err(c, PB_EPARSE, s->line, "[%s] "
					   "gradual_begin + gradual_epochs = "
					   "%g is beyond the fine-tune's %g "
					   "epochs", s->name,
					   m->plan.gradual_begin +
					   m->plan.gradual_epochs, ft);
		if (ft <= 0)
			return pbi_ini_err(c, PB_EPARSE, s->line, "[%s] "
					   "schedule = gradual needs "
					   "[finetune] epochs >= 1", s->name);
		for (int t = 0; t < m->n_targets; t++)
			if (m->plan.gradual_initial >= m->targets[t].amount)
				return pbi_ini_err(c, PB_EPARSE, s->line, "[%s] "
						   "gradual_initial = %g is "
						   "not below the target %s: "
						   "the ramp rises from "
						   "gradual_initial to the "
						   "target", s->name,
						   m->plan.gradual_initial,
						   m->target_text[t]);
	}
	return check_overrides(c, m, s, model, lines);
}

int pbi_parse_method(pbi_ini_doc *c, pb_experiment *e, pb_exp_method *m,
		     const pbi_ini_section *s, const pb_plugin_path *sp,
		     const pb_model *model)
{
	const pbi_ini_key *targets = NULL, *plugin_key = NULL;
	pb_target_override ov[PB_TARGET_MAX_OVERRIDES];
	int ov_lines[PB_TARGET_MAX_OVERRIDES], n_ov = 0;

	m->line = s->line;
	m->scope = PB_SCOPE_LAYER;
	m->plan.round_epochs = -1.0;
	m->plan.gradual_epochs = -1.0;
	m->plan.gradual_steps = 10;
	m->scratch_b_cap = 2.0;
	m->quantize = m->quant_act = -1;
	m->sens_drop = -1.0;
	if (!pbi_ini_name_ok(s->name + 6, "_-.") ||
	    strlen(s->name + 6) >= sizeof m->name)
		return pbi_ini_err(c, PB_EPARSE, s->line, "[%s]: a method name "
				   "uses 1-%zu letters, digits, '_', '-' or "
				   "'.'", s->name, sizeof m->name - 1);
	if (!strcmp(s->name + 6, "dense") || !strcmp(s->name + 6, "dense+ft"))
		return pbi_ini_err(c, PB_EPARSE, s->line, "[%s]: 'dense' names "
				   "the baseline; choose another method name",
				   s->name);
	strcpy(m->name, s->name + 6);
	strcpy(m->plugin_name, m->name);

	for (int i = 0; i < s->n_keys; i++) {
		const pbi_ini_key *k = &s->keys[i];
		long v;

		if (!strcmp(k->name, "plugin")) {
			if (!pbi_ini_name_ok(k->value, "_-.") ||
			    strlen(k->value) >= sizeof m->plugin_name)
				return pbi_ini_err(c, PB_EPARSE, k->line,
						   "[%s] plugin = '%s' is not "
						   "a plugin name", s->name,
						   k->value);
			strcpy(m->plugin_name, k->value);
			plugin_key = k;
		} else if (!strcmp(k->name, "targets")) {
			targets = k;
			if (parse_targets(c, m, s, k))
				return -1;
		} else if (!strcmp(k->name, "scope")) {
			if (!strcmp(k->value, "layer"))
				m->scope = PB_SCOPE_LAYER;
			else if (!strcmp(k->value, "global"))
				m->scope = PB_SCOPE_GLOBAL;
			else
				return pbi_ini_err(c, PB_EPARSE, k->line,
						   "[%s] scope = '%s': "
						   "expected layer or global",
						   s->name, k->value);
		} else if (!strcmp(k->name, "schedule")) {
			if (parse_schedule(c, m, s, k))
				return -1;
		} else if (!strcmp(k->name, "round_epochs")) {
			if (pbi_ini_double(c, s, k, 0.0, 1000.0,
					   &m->plan.round_epochs))
				return -1;
		} else if (!strcmp(k->name, "gradual_begin")) {
			if (pbi_ini_double(c, s, k, 0.0, 100000.0,
					   &m->plan.gradual_begin))
				return -1;
		} else if (!strcmp(k->name, "gradual_epochs")) {
			if (pbi_ini_double(c, s, k, 0.001, 100000.0,
					   &m->plan.gradual_epochs))
				return -1;
		} else if (!strcmp(k->name, "gradual_steps")) {
			if (pbi_ini_long(c, s, k, 1, 100000, &v))
				return -1;
			m->plan.gradual_steps = (int)v;
		} else if (!strcmp(k->name, "gradual_initial")) {
			if (pbi_ini_double(c, s, k, 0.0, 0.999,
					   &m->plan.gradual_initial))
				return -1;
		} else if (!strcmp(k->name, "matched_dense")) {
			if (pbi_ini_bool(c, s, k, &m->matched))
				return -1;
		} else if (!strcmp(k->name, "finetune")) {
			if (!strcmp(k->value, "scratch") ||
			    !strcmp(k->value, "scratch-e"))
				m->scratch = PB_SCRATCH_E;
			else if (!strcmp(k->value, "scratch-b"))
				m->scratch = PB_SCRATCH_B;
			else if (!strcmp(k->value, "yes"))
				m->scratch = 0;
			else
				return pbi_ini_err(c, PB_EPARSE, k->line,
						   "[%s] finetune = '%s': "
						   "expected yes (fine-tune "
						   "the pruned model), "
						   "scratch-e (re-initialise it "
						   "and train it with the "
						   "[train] recipe; also "
						   "'scratch') or scratch-b "
						   "(the same for the dense "
						   "recipe's epochs x dense / "
						   "pruned MACs)", s->name,
						   k->value);
		} else if (!strcmp(k->name, "label")) {
			if (!k->value[0] || strlen(k->value) >= sizeof m->label)
				return pbi_ini_err(c, PB_EPARSE, k->line,
						   "[%s] label: 1 to %zu "
						   "characters", s->name,
						   sizeof m->label - 1);
			strcpy(m->label, k->value);
		} else if (!strcmp(k->name, "stream")) {
			if (!pbi_ini_name_ok(k->value, "_-.") ||
			    strlen(k->value) >= sizeof m->stream)
				return pbi_ini_err(c, PB_EPARSE, k->line,
						   "[%s] stream = '%s' is not "
						   "a method name", s->name,
						   k->value);
			strcpy(m->stream, k->value);
			m->stream_line = k->line;
		} else if (!strcmp(k->name, "quantize") ||
			   !strcmp(k->name, "activations")) {
			if (pbi_parse_int8_key(c, s, k, &m->quantize,
					       &m->quant_act))
				return -1;
		} else if (!strcmp(k->name, "layers") ||
			   !strcmp(k->name, "sensitivity_levels")) {
			if (pbi_parse_sensitivity_key(c, s, k, m))
				return -1;
		} else if (!strcmp(k->name, "scratch_b_cap")) {
			if (pbi_ini_double(c, s, k, 1.0, 1000.0,
					   &m->scratch_b_cap))
				return -1;
		} else if (!strncmp(k->name, "layer.", 6)) {
			if (parse_override(c, s, k, model, ov, ov_lines,
					   &n_ov))
				return -1;
		}
	}
	if (!targets)
		return pbi_ini_err(c, PB_EPARSE, s->line, "[%s] needs targets "
				   "= ... (e.g. targets = macs=0.3 macs=0.5)",
				   s->name);
	for (int t = 0; t < m->n_targets; t++) {
		m->targets[t].scope = m->scope;
		m->targets[t].n_overrides = n_ov;
		memcpy(m->targets[t].overrides, ov, sizeof ov[0] * (size_t)n_ov);
	}

	if (pbi_check_sensitivity(c, s, m) ||
	    plugin_options(c, m, s, plugin_key, sp))
		return -1;
	return check_method(c, e, m, s, targets, model, ov_lines);
}

int pbi_parse_int8_key(pbi_ini_doc *c, const pbi_ini_section *s,
		       const pbi_ini_key *k, int *quantize, int *act)
{
	const int q = !strcmp(k->name, "quantize");
	const char *yes = q ? "int8" : "int8", *no = q ? "no" : "float";

	if (!strcmp(k->value, yes)) {
		*(q ? quantize : act) = 1;
		return 0;
	}
	if (!strcmp(k->value, no)) {
		*(q ? quantize : act) = 0;
		return 0;
	}
	return pbi_ini_err(c, PB_EPARSE, k->line, "[%s] %s = '%s': expected "
			   "%s", s->name, k->name, k->value, q ?
			   "int8 (quantize the final model after pruning) or "
			   "no" : "int8 (round activations to 8 bits too) or "
			   "float (int8 weights only)");
}

int pbi_check_streams(pbi_ini_doc *c, const pb_experiment *e)
{
	for (int i = 0; i < e->n_methods; i++) {
		const pb_exp_method *m = &e->methods[i], *o = NULL;

		if (!m->stream[0])
			continue;
		for (int j = 0; j < e->n_methods; j++)
			if (!strcmp(e->methods[j].name, m->stream))
				o = &e->methods[j];
		if (!o || o == m)
			return pbi_ini_err(c, PB_EPARSE, m->stream_line,
					   "[prune.%s] stream = %s: %s", m->name,
					   m->stream, o ? "a method cannot take "
					   "its own streams" : "no such "
					   "[prune.NAME] in this file");
		if (o->stream[0])
			return pbi_ini_err(c, PB_EPARSE, m->stream_line,
					   "[prune.%s] stream = %s: that method "
					   "takes the streams of %s itself; "
					   "name %s", m->name, m->stream,
					   o->stream, o->stream);
		for (int t = 0; t < m->n_targets; t++) {
			int found = 0;

			for (int u = 0; u < o->n_targets && !found; u++)
				found = !strcmp(m->target_text[t],
						o->target_text[u]);
			if (!found)
				return pbi_ini_err(c, PB_EPARSE,
						   m->stream_line, "[prune.%s] "
						   "stream = %s: target %s is "
						   "not one of %s's", m->name,
						   m->stream, m->target_text[t],
						   m->stream);
		}
	}
	return 0;
}
