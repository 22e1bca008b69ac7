/* Reading experiment INI files. ini_doc.c reads the text into sections
 * first (a method's plugin may be named after its options), then each
 * section is checked key by key; every message is
 * "FILE:LINE: [section] key ...". */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "experiment/experiment_impl.h"
#include "base/ini_doc.h"
#include "prune/prune_impl.h"
#include "base/util.h"

static const pbi_ini_rules exp_rules = {
	.key_home = "[experiment], [train], [finetune] or [prune.NAME]",
};

/* ---- values ---------------------------------------------------------------- */

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
			if (pbi_ini_long(c, s, k, 0, 1024, &v))
				return -1;
			e->threads = (int)v;
		} else if (!strcmp(k->name, "output")) {
			output = k;
		} else if (!strcmp(k->name, "cache")) {
			cache = k;
		} else if (!strcmp(k->name, "val_size")) {
			if (pbi_ini_long(c, s, k, 0, 10000000, &v))
				return -1;
			e->val_size = (int)v;
		} else if (!strcmp(k->name, "split_seed")) {
			if (pbi_ini_long(c, s, k, 0, 0x7fffffffL, &v))
				return -1;
			e->split_seed = (unsigned long)v;
		} else if (!strcmp(k->name, "dense_ft")) {
			if (pbi_ini_bool(c, s, k, &e->dense_ft))
				return -1;
		} else if (!strcmp(k->name, "latency")) {
			if (pbi_ini_bool(c, s, k, &e->latency))
				return -1;
		} else if (!strcmp(k->name, "quantize") ||
			   !strcmp(k->name, "activations")) {
			if (pbi_parse_int8_key(c, s, k, &e->quantize,
					       &e->quant_act))
				return -1;
		} else {
			return pbi_ini_err(c, PB_EPARSE, k->line, "[%s] "
					   "unknown key '%s' (known: name, "
					   "model, data, seeds, threads, "
					   "output, cache, val_size, "
					   "split_seed, dense_ft, latency, "
					   "quantize, activations)",
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

/* A recipe that cannot train as written (no epochs, a floor above the
 * rate) is refused, at the key that makes it so. */
static int check_recipe(pbi_ini_doc *c, const pb_recipe *r,
			const pbi_ini_section *s, const char *name)
{
	pb_error rerr = { 0 };
	const char *key;
	int line;

	if (!pb_recipe_check(r, &key, &rerr))
		return 0;
	line = s ? s->line : 1;
	for (int i = 0; s && i < s->n_keys; i++)
		if (!strcmp(s->keys[i].name, key))
			line = s->keys[i].line;
	return pbi_ini_err(c, PB_EPARSE, line, "[%s] %s", name, rerr.msg);
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
	    (ft && parse_recipe(c, &e->finetune, ft)) ||
	    check_recipe(c, &e->dense, train, "train") ||
	    check_recipe(c, &e->finetune, ft, "finetune"))
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
		rc = pbi_parse_method(c, e, &e->methods[e->n_methods++], s, sp,
				  model);
		if (!rc)
			rc = pbi_at_init_check_method(c, &e->methods[
						      e->n_methods - 1], s);
		if (rc)
			break;
	}
	pb_model_free(model);
	if (!c->err_line)
		pbi_check_streams(c, e);
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
	e->quant_act = 1;
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
