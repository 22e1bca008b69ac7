/* Reading experiment INI files. ini_doc.c reads the text into sections
 * first (a method's plugin may be named after its options), then each
 * section is checked key by key; every message is
 * "FILE:LINE: [section] key ...". */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "experiment_impl.h"
#include "ini_doc.h"
#include "prune_impl.h"
#include "util.h"

/* ---- small helpers shared with the runner --------------------------------- */

uint64_t pb_fnv64(uint64_t h, const void *data, size_t n)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

unsigned long pbi_seed_from(const char *text)
{
	uint64_t h = pb_fnv64(PB_FNV64_INIT, text, strlen(text));
	unsigned long s = (unsigned long)((h ^ (h >> 32)) & 0xffffffffu);

	return s ? s : 1;
}

char *pbi_path_join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *p;

	if (b[0] == '/' || !la || !strcmp(a, "."))
		return strdup(b);
	p = malloc(la + lb + 2);
	if (!p)
		return NULL;
	memcpy(p, a, la);
	if (a[la - 1] != '/')
		p[la++] = '/';
	memcpy(p + la, b, lb + 1);
	return p;
}

int pbi_mkdirs(const char *path, pb_error *err)
{
	char *p = strdup(path);
	struct stat st;

	if (!p)
		return pb_error_set(err, PB_ENOMEM, "out of memory");
	for (char *s = p + 1;; s++) {
		if (*s == '/' || !*s) {
			char c = *s;
			*s = '\0';
			if (mkdir(p, 0777) && errno != EEXIST) {
				int e = errno;
				pb_error_set(err, PB_EIO, "cannot create folder "
					     "'%s': %s", p, strerror(e));
				free(p);
				return PB_EIO;
			}
			*s = c;
			if (!c)
				break;
		}
	}
	if (stat(p, &st) || !S_ISDIR(st.st_mode)) {
		pb_error_set(err, PB_EIO, "'%s' exists and is not a folder", p);
		free(p);
		return PB_EIO;
	}
	free(p);
	return 0;
}

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
}

static const pbi_ini_rules exp_rules = {
	.key_home = "[experiment], [train], [finetune] or [prune.NAME]",
};

/* ---- values ---------------------------------------------------------------- */

static int get_long(pbi_ini_doc *c, const pbi_ini_section *s,
		    const pbi_ini_key *k, long lo, long hi, long *out)
{
	if (pbi_parse_long(k->value, out))
		return pbi_ini_err(c, PB_EPARSE, k->line, "[%s] %s = '%s' is "
				   "not a whole number", s->name, k->name,
				   k->value);
	if (*out < lo || *out > hi)
		return pbi_ini_err(c, PB_EPARSE, k->line, "[%s] %s = %ld is "
				   "out of range [%ld, %ld]", s->name, k->name,
				   *out, lo, hi);
	return 0;
}

static int get_double(pbi_ini_doc *c, const pbi_ini_section *s,
		      const pbi_ini_key *k, double lo, double hi,
		      double *out)
{
	if (pbi_parse_double(k->value, out))
		return pbi_ini_err(c, PB_EPARSE, k->line, "[%s] %s = '%s' is "
				   "not a number", s->name, k->name, k->value);
	if (!(*out >= lo && *out <= hi))
		return pbi_ini_err(c, PB_EPARSE, k->line, "[%s] %s = %g is out "
				   "of range [%g, %g]", s->name, k->name, *out,
				   lo, hi);
	return 0;
}

static int get_bool(pbi_ini_doc *c, const pbi_ini_section *s,
		    const pbi_ini_key *k, int *out)
{
	if (pbi_parse_bool(k->value, out))
		return pbi_ini_err(c, PB_EPARSE, k->line, "[%s] %s = '%s': "
				   "expected yes or no", s->name, k->name,
				   k->value);
	return 0;
}

static int file_exists(const char *path, int want_dir)
{
	struct stat st;

	if (stat(path, &st))
		return 0;
	return want_dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode);
}

static int dup_into(pbi_ini_doc *c, int line, char **dst, char *src)
{
	free(*dst);
	*dst = src;
	if (!src)
		return pbi_ini_err(c, PB_ENOMEM, line, "out of memory");
	return 0;
}

static int read_text_file(const char *path, char **out)
{
	FILE *f = fopen(path, "rb");
	size_t cap = 4096, len = 0;
	char *buf;

	*out = NULL;
	if (!f)
		return -1;
	buf = malloc(cap);
	while (buf) {
		len += fread(buf + len, 1, cap - len - 1, f);
		if (len < cap - 1)
			break;
		char *g = realloc(buf, cap * 2);
		if (!g) {
			free(buf);
			buf = NULL;
			break;
		}
		buf = g;
		cap *= 2;
	}
	fclose(f);
	if (!buf)
		return -1;
	buf[len] = '\0';
	*out = buf;
	return (int)(len & 0x7fffffff);
}

/* ---- [experiment] ---------------------------------------------------------- */

static int parse_seeds(pbi_ini_doc *c, pb_experiment *e,
		       const pbi_ini_section *s, const pbi_ini_key *k)
{
	char buf[1024], *save = NULL, *tok;

	if (strlen(k->value) >= sizeof buf)
		return pbi_ini_err(c, PB_EPARSE, k->line, "[%s] seeds: too "
				   "long", s->name);
	strcpy(buf, k->value);
	e->n_seeds = 0;
	for (tok = strtok_r(buf, " ,\t", &save); tok;
	     tok = strtok_r(NULL, " ,\t", &save)) {
		long v;
		if (e->n_seeds == PB_EXP_MAX_SEEDS)
			return pbi_ini_err(c, PB_EPARSE, k->line, "[%s] seeds: "
					   "at most %d", s->name,
					   PB_EXP_MAX_SEEDS);
		if (pbi_parse_long(tok, &v) || v < 0 || v > 0x7fffffffL)
			return pbi_ini_err(c, PB_EPARSE, k->line, "[%s] seeds: "
					   "'%s' is not a whole number >= 0 "
					   "(write e.g. seeds = 1 2 3)",
					   s->name, tok);
		for (int i = 0; i < e->n_seeds; i++)
			if (e->seeds[i] == (unsigned long)v)
				return pbi_ini_err(c, PB_EPARSE, k->line,
						   "[%s] seeds: %ld is given "
						   "twice", s->name, v);
		e->seeds[e->n_seeds++] = (unsigned long)v;
	}
	if (!e->n_seeds)
		return pbi_ini_err(c, PB_EPARSE, k->line, "[%s] seeds is "
				   "empty; write e.g. seeds = 1 2 3", s->name);
	return 0;
}

static int parse_data(pbi_ini_doc *c, pb_experiment *e,
		      const pbi_ini_section *s, const pbi_ini_key *k)
{
	pb_error derr = { 0 };
	char *text;

	if (pb_data_spec_parse(&e->data, k->value, &derr))
		return pbi_ini_err(c, PB_EPARSE, k->line, "[%s] data: %s",
				   s->name, derr.msg);
	if (e->data.dir[0]) {
		char *dir = pbi_path_join(e->dir, e->data.dir);
		size_t n;
		if (!dir)
			return pbi_ini_err(c, PB_ENOMEM, k->line, "out of "
					   "memory");
		if (!file_exists(dir, 1)) {
			pbi_ini_err(c, PB_EIO, k->line, "[%s] data: folder "
				    "'%s' does not exist (relative folders are "
				    "read from '%s')", s->name, dir, e->dir);
			free(dir);
			return -1;
		}
		n = strlen(e->data.kind) + strlen(dir) + 2;
		text = malloc(n);
		if (text)
			snprintf(text, n, "%s:%s", e->data.kind, dir);
		free(dir);
		if (!text || pb_data_spec_parse(&e->data, text, &derr)) {
			free(text);
			return pbi_ini_err(c, PB_EPARSE, k->line, "[%s] data: "
					   "%s", s->name, derr.msg);
		}
	} else {
		text = strdup(k->value);
	}
	return dup_into(c, k->line, &e->data_text, text);
}

static int parse_experiment(pbi_ini_doc *c, pb_experiment *e,
			    const pbi_ini_section *s)
{
	const pbi_ini_key *model = NULL, *output = NULL, *cache = NULL;
	int have_name = 0;

	for (int i = 0; i < s->n_keys; i++) {
		const pbi_ini_key *k = &s->keys[i];
		long v;

		if (!strcmp(k->name, "name")) {
			if (!pbi_ini_name_ok(k->value, "_-.") ||
			    strlen(k->value) >= sizeof e->name)
				return pbi_ini_err(c, PB_EPARSE, k->line,
						   "[%s] name = '%s': use "
						   "1-%zu letters, digits, "
						   "'_', '-' or '.'", s->name,
						   k->value,
						   sizeof e->name - 1);
			strcpy(e->name, k->value);
			have_name = 1;
		} else if (!strcmp(k->name, "model")) {
			model = k;
		} else if (!strcmp(k->name, "data")) {
			if (parse_data(c, e, s, k))
				return -1;
		} else if (!strcmp(k->name, "seeds")) {
			if (parse_seeds(c, e, s, k))
				return -1;
		} else if (!strcmp(k->name, "threads")) {
			if (get_long(c, s, k, 0, 1024, &v))
				return -1;
			e->threads = (int)v;
		} else if (!strcmp(k->name, "output")) {
			output = k;
		} else if (!strcmp(k->name, "cache")) {
			cache = k;
		} else if (!strcmp(k->name, "val_size")) {
			if (get_long(c, s, k, 0, 10000000, &v))
				return -1;
			e->val_size = (int)v;
		} else if (!strcmp(k->name, "split_seed")) {
			if (get_long(c, s, k, 0, 0x7fffffffL, &v))
				return -1;
			e->split_seed = (unsigned long)v;
		} else if (!strcmp(k->name, "dense_ft")) {
			if (get_bool(c, s, k, &e->dense_ft))
				return -1;
		} else if (!strcmp(k->name, "latency")) {
			if (get_bool(c, s, k, &e->latency))
				return -1;
		} else {
			return pbi_ini_err(c, PB_EPARSE, k->line, "[%s] "
					   "unknown key '%s' (known: name, "
					   "model, data, seeds, threads, "
					   "output, cache, val_size, "
					   "split_seed, dense_ft, latency)",
					   s->name, k->name);
		}
	}
	if (!have_name)
		return pbi_ini_err(c, PB_EPARSE, s->line, "[%s] needs name = "
				   "...", s->name);
	if (!model)
		return pbi_ini_err(c, PB_EPARSE, s->line, "[%s] needs model = "
				   "FILE (e.g. models/vgg-s.ini)", s->name);
	if (dup_into(c, model->line, &e->model_path,
		     pbi_path_join(e->dir, model->value)))
		return -1;
	if (!file_exists(e->model_path, 0))
		return pbi_ini_err(c, PB_EIO, model->line, "[%s] model: file "
				   "'%s' does not exist (relative paths are "
				   "read from '%s')", s->name, e->model_path,
				   e->dir);
	if (output) {
		if (dup_into(c, output->line, &e->output,
			     pbi_path_join(e->dir, output->value)))
			return -1;
	} else {
		char rel[PB_EXP_NAME_MAX + 16];
		snprintf(rel, sizeof rel, "results/%s", e->name);
		if (dup_into(c, s->line, &e->output, pbi_path_join(e->dir, rel)))
			return -1;
	}
	if (cache) {
		if (dup_into(c, cache->line, &e->cache,
			     pbi_path_join(e->dir, cache->value)))
			return -1;
	} else {
		const char *xdg = getenv("XDG_CACHE_HOME");
		const char *home = getenv("HOME");
		char *p;
		if (xdg && xdg[0] == '/')
			p = pbi_path_join(xdg, "prunebench");
		else if (home && *home) {
			size_t n = strlen(home) + 32;
			p = malloc(n);
			if (p)
				snprintf(p, n, "%s/.cache/prunebench", home);
		} else {
			p = strdup("/tmp/prunebench-cache");
		}
		if (dup_into(c, s->line, &e->cache, p))
			return -1;
	}
	return 0;
}

/* ---- [train] and [finetune] ----------------------------------------------- */

static int parse_recipe(pbi_ini_doc *c, pb_recipe *r,
			const pbi_ini_section *s)
{
	for (int i = 0; i < s->n_keys; i++) {
		const pbi_ini_key *k = &s->keys[i];
		pb_error rerr = { 0 };

		if (!strcmp(k->name, "val_size"))
			return pbi_ini_err(c, PB_EPARSE, k->line, "[%s] "
					   "val_size belongs in [experiment]: "
					   "every recipe uses the same "
					   "validation split", s->name);
		if (pb_recipe_set(r, k->name, k->value, &rerr))
			return pbi_ini_err(c, rerr.code ? rerr.code : PB_EPARSE,
					   k->line, "[%s] %s", s->name,
					   rerr.msg);
	}
	return 0;
}

/* ---- [prune.NAME] --------------------------------------------------------- */

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
		if (pbi_target_parse(&m->targets[n], tok, &terr))
			return pbi_ini_err(c, PB_EPARSE, k->line, "[%s] "
					   "targets: %s", s->name, terr.msg);
		for (int i = 0; i < n; i++)
			if (!strcmp(m->target_text[i], tok))
				return pbi_ini_err(c, PB_EPARSE, k->line,
						   "[%s] target '%s' is given "
						   "twice", s->name, tok);
		strcpy(m->target_text[n], tok);
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
		m->schedule = PB_PRUNE_ONESHOT;
		return 0;
	}
	if (!strcmp(k->value, "gradual")) {
		m->schedule = PB_PRUNE_GRADUAL;
		return 0;
	}
	if (!strncmp(k->value, "iterative:", 10) &&
	    !pbi_parse_long(k->value + 10, &n) && n >= 1 && n <= 100) {
		m->schedule = PB_PRUNE_ITERATIVE;
		m->rounds = (int)n;
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
	"finetune", "matched_dense", NULL
};

static int is_core_key(const char *name)
{
	for (int i = 0; core_keys[i]; i++)
		if (!strcmp(name, core_keys[i]))
			return 1;
	return !strncmp(name, "layer.", 6);
}

static int parse_method(pbi_ini_doc *c, pb_experiment *e,
			pb_exp_method *m, const pbi_ini_section *s,
			const pb_plugin_path *sp, const pb_model *model)
{
	const pbi_ini_key *targets = NULL, *plugin_key = NULL;
	pb_target_override ov[PB_TARGET_MAX_OVERRIDES];
	int n_ov = 0;
	pb_error perr_ = { 0 };
	const pb_pruner *pr;
	char where[600];

	m->line = s->line;
	m->scope = PB_SCOPE_LAYER;
	m->round_epochs = -1.0;
	m->gradual_epochs = -1.0;
	m->gradual_steps = 10;
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
			if (get_double(c, s, k, 0.0, 1000.0, &m->round_epochs))
				return -1;
		} else if (!strcmp(k->name, "gradual_begin")) {
			if (get_double(c, s, k, 0.0, 100000.0,
				       &m->gradual_begin))
				return -1;
		} else if (!strcmp(k->name, "gradual_epochs")) {
			if (get_double(c, s, k, 0.001, 100000.0,
				       &m->gradual_epochs))
				return -1;
		} else if (!strcmp(k->name, "gradual_steps")) {
			if (get_long(c, s, k, 1, 100000, &v))
				return -1;
			m->gradual_steps = (int)v;
		} else if (!strcmp(k->name, "gradual_initial")) {
			if (get_double(c, s, k, 0.0, 0.999,
				       &m->gradual_initial))
				return -1;
		} else if (!strcmp(k->name, "matched_dense")) {
			if (get_bool(c, s, k, &m->matched))
				return -1;
		} else if (!strcmp(k->name, "finetune")) {
			if (!strcmp(k->value, "scratch"))
				m->scratch = 1;
			else if (!strcmp(k->value, "yes"))
				m->scratch = 0;
			else
				return pbi_ini_err(c, PB_EPARSE, k->line,
						   "[%s] finetune = '%s': "
						   "expected yes (fine-tune "
						   "the pruned model) or "
						   "scratch (re-initialise it "
						   "and train with the [train] "
						   "recipe)", s->name,
						   k->value);
		} else if (!strncmp(k->name, "layer.", 6)) {
			const char *ln = k->name + 6;
			double a;
			if (pb_model_find_layer(model, ln) < 0)
				return pbi_ini_err(c, PB_ENOTFOUND, k->line,
						   "[%s] %s: model '%s' has no "
						   "layer '%s'", s->name,
						   k->name,
						   pb_model_name(model), ln);
			if (strlen(ln) >= sizeof ov[0].layer)
				return pbi_ini_err(c, PB_EPARSE, k->line,
						   "[%s] %s: layer name too "
						   "long", s->name, k->name);
			if (n_ov == PB_TARGET_MAX_OVERRIDES)
				return pbi_ini_err(c, PB_EPARSE, k->line,
						   "[%s] at most %d per-layer "
						   "overrides", s->name,
						   PB_TARGET_MAX_OVERRIDES);
			if (pbi_parse_double(k->value, &a) || !(a >= 0.0) ||
			    !(a < 1.0))
				return pbi_ini_err(c, PB_EPARSE, k->line,
						   "[%s] %s = '%s': expected "
						   "the fraction removed in "
						   "that layer, in [0, 1)",
						   s->name, k->name, k->value);
			strcpy(ov[n_ov].layer, ln);
			ov[n_ov++].amount = a;
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

	/* The plugin, and its own options. */
	if (pb_plugin_open(&m->plugin, sp, m->plugin_name, &perr_))
		return pbi_ini_err(c, perr_.code,
				   plugin_key ? plugin_key->line : s->line,
				   "[%s] %s", s->name, perr_.msg);
	pr = pb_plugin_pruner(m->plugin);
	if (pb_options_new(&m->options, pr, &perr_))
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
	if (m->schedule == PB_PRUNE_GRADUAL) {
		double ft = e->finetune.epochs;
		if (pr->granularity != PB_GRANULARITY_WEIGHT)
			return pbi_ini_err(c, PB_EPARSE, s->line, "[%s] "
					   "schedule = gradual needs a weight "
					   "pruner (plugin '%s' removes "
					   "channels); use iterative:N",
					   s->name, pr->name);
		if (m->gradual_epochs < 0)
			m->gradual_epochs = ft > 1 ? 0.75 * ft : ft;
		if (m->gradual_begin + m->gradual_epochs > ft + 1e-9)
			return pbi_ini_err(c, PB_EPARSE, s->line, "[%s] "
					   "gradual_begin + gradual_epochs = "
					   "%g is beyond the fine-tune's %g "
					   "epochs", s->name,
					   m->gradual_begin + m->gradual_epochs,
					   ft);
		if (ft <= 0)
			return pbi_ini_err(c, PB_EPARSE, s->line, "[%s] "
					   "schedule = gradual needs "
					   "[finetune] epochs >= 1", s->name);
	}
	return 0;
}

/* ---- entry points ---------------------------------------------------------- */

void pb_experiment_free(pb_experiment *e)
{
	if (!e)
		return;
	for (int i = 0; i < e->n_methods; i++) {
		pb_options_free(e->methods[i].options);
		pb_plugin_close(e->methods[i].plugin);
	}
	free(e->methods);
	free(e->path);
	free(e->dir);
	free(e->model_path);
	free(e->data_text);
	free(e->output);
	free(e->cache);
	free(e);
}

static int parse_all(pbi_ini_doc *c, pb_experiment *e,
		     const pb_plugin_path *sp)
{
	const pbi_ini_section *exp = NULL, *train = NULL, *ft = NULL;
	pb_model *model = NULL;
	pb_error merr = { 0 };
	char *text = NULL;
	int n_prune = 0, rc;

	for (int i = 0; i < c->n_secs; i++) {
		const pbi_ini_section *s = &c->secs[i];
		if (!strcmp(s->name, "experiment"))
			exp = s;
		else if (!strcmp(s->name, "train"))
			train = s;
		else if (!strcmp(s->name, "finetune"))
			ft = s;
		else if (!strncmp(s->name, "prune.", 6))
			n_prune++;
		else
			return pbi_ini_err(c, PB_EPARSE, s->line, "unknown "
					   "section [%s] (known: [experiment], "
					   "[train], [finetune], [prune.NAME])",
					   s->name);
	}
	if (!exp)
		return pbi_ini_err(c, PB_EPARSE, 1, "no [experiment] section; "
				   "it needs at least name and model");
	if (parse_experiment(c, e, exp))
		return -1;
	if ((train && parse_recipe(c, &e->dense, train)) ||
	    (ft && parse_recipe(c, &e->finetune, ft)))
		return -1;
	e->dense.val_size = e->finetune.val_size = e->val_size;

	rc = read_text_file(e->model_path, &text);
	if (rc < 0)
		return pbi_ini_err(c, PB_EIO, exp->line, "cannot read model "
				   "file '%s': %s", e->model_path,
				   strerror(errno));
	e->model_hash = pb_fnv64(PB_FNV64_INIT, text, (size_t)rc);
	free(text);
	if (pb_model_load(&model, e->model_path, &merr))
		return pbi_ini_err(c, merr.code, exp->line, "[experiment] "
				   "model: %s", merr.msg);

	e->methods = calloc((size_t)(n_prune ? n_prune : 1),
			    sizeof *e->methods);
	if (!e->methods) {
		pb_model_free(model);
		return pbi_ini_err(c, PB_ENOMEM, 1, "out of memory");
	}
	for (int i = 0; i < c->n_secs; i++) {
		const pbi_ini_section *s = &c->secs[i];
		if (strncmp(s->name, "prune.", 6))
			continue;
		rc = parse_method(c, e, &e->methods[e->n_methods++], s, sp,
				  model);
		if (rc)
			break;
	}
	pb_model_free(model);
	return c->err_line ? -1 : 0;
}

int pb_experiment_parse(pb_experiment **out, const char *text,
			const char *path, const pb_plugin_path *sp,
			pb_error *err)
{
	pbi_ini_doc c = { 0 };
	pb_plugin_path *own = NULL;
	pb_experiment *e;
	const char *slash;
	int rc = 0;

	*out = NULL;
	e = calloc(1, sizeof *e);
	if (!e)
		return pb_error_set(err, PB_ENOMEM, "out of memory");
	e->path = strdup(path ? path : "<string>");
	slash = path ? strrchr(path, '/') : NULL;
	e->dir = slash ? strndup(path, (size_t)(slash - path + (slash == path)))
		       : strdup(".");
	e->n_seeds = 1;
	e->seeds[0] = 1;
	e->val_size = 5000;
	e->split_seed = 42;
	e->dense_ft = 1;
	e->latency = 1;
	pb_recipe_default(&e->dense);
	pb_recipe_default(&e->finetune);
	e->finetune.epochs = 5;
	e->finetune.lr = 0.01;
	e->finetune.warmup_epochs = 0.0;
	if (pb_data_spec_parse(&e->data, "fashion-mnist", err) ||
	    !(e->data_text = strdup("fashion-mnist")) || !e->path || !e->dir) {
		pb_experiment_free(e);
		return pb_error_set(err, PB_ENOMEM, "out of memory");
	}

	if (!sp) {
		rc = pb_plugin_path_new(&own, err);
		if (rc) {
			pb_experiment_free(e);
			return rc;
		}
		sp = own;
	}
	if (pbi_ini_read(&c, text, e->path, &exp_rules, err) ||
	    parse_all(&c, e, sp))
		rc = c.err_code ? c.err_code : PB_EPARSE;
	pbi_ini_free(&c);
	pb_plugin_path_free(own);
	if (rc) {
		pb_experiment_free(e);
		return rc;
	}
	*out = e;
	return 0;
}

int pb_experiment_load(pb_experiment **out, const char *path,
		       const pb_plugin_path *sp, pb_error *err)
{
	char *text = NULL;
	int rc;

	*out = NULL;
	if (read_text_file(path, &text) < 0)
		return pb_error_set(err, PB_EIO, "cannot open experiment file "
				    "'%s': %s; check the path", path,
				    strerror(errno));
	rc = pb_experiment_parse(out, text, path, sp, err);
	free(text);
	return rc;
}
