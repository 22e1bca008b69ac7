/* Reading model INI files. ini_doc.c reads the text into sections first
 * (a section's type may come after its other keys); they are then checked
 * section by section; shapes are checked by pbi_model_build. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/ini_doc.h"
#include "nn/model_impl.h"
#include "base/util.h"

/* ---- layer and key names ------------------------------------------------- */

#define TYPE_LIST "conv, bn, relu, maxpool, avgpool, linear, flatten, " \
		  "dropout, add"

int pbi_layer_type_parse(const char *s)
{
	for (int t = PB_LAYER_CONV; t <= PB_LAYER_ADD; t++)
		if (!strcmp(s, pb_layer_type_name((pb_layer_type)t)))
			return t;
	return -1;
}

enum key_id {
	K_TYPE, K_INPUT, K_INPUTS, K_OUT, K_KERNEL, K_STRIDE, K_PAD, K_BIAS,
	K_GLOBAL, K_EPS, K_MOMENTUM, K_P, N_KEYS
};

static const char *const key_names[N_KEYS] = {
	"type", "input", "inputs", "out", "kernel", "stride", "pad", "bias",
	"global", "eps", "momentum", "p",
};

#define B(k) (1u << (k))
#define COMMON (B(K_TYPE) | B(K_INPUT))

static const unsigned allowed_keys[] = {
	[PB_LAYER_CONV] = COMMON | B(K_OUT) | B(K_KERNEL) | B(K_STRIDE) |
			  B(K_PAD) | B(K_BIAS),
	[PB_LAYER_BN] = COMMON | B(K_EPS) | B(K_MOMENTUM),
	[PB_LAYER_RELU] = COMMON,
	[PB_LAYER_MAXPOOL] = COMMON | B(K_KERNEL) | B(K_STRIDE),
	[PB_LAYER_AVGPOOL] = COMMON | B(K_KERNEL) | B(K_STRIDE) | B(K_GLOBAL),
	[PB_LAYER_LINEAR] = COMMON | B(K_OUT) | B(K_BIAS),
	[PB_LAYER_FLATTEN] = COMMON,
	[PB_LAYER_DROPOUT] = COMMON | B(K_P),
	[PB_LAYER_ADD] = B(K_TYPE) | B(K_INPUTS),
};

static const unsigned required_keys[] = {
	[PB_LAYER_CONV] = B(K_OUT) | B(K_KERNEL),
	[PB_LAYER_MAXPOOL] = B(K_KERNEL),
	[PB_LAYER_LINEAR] = B(K_OUT),
	[PB_LAYER_ADD] = B(K_INPUTS),
};

static int key_parse(const char *s)
{
	for (int k = 0; k < N_KEYS; k++)
		if (!strcmp(s, key_names[k]))
			return k;
	return -1;
}

static void key_list(char *buf, size_t n, unsigned mask)
{
	buf[0] = '\0';
	for (int k = 0; k < N_KEYS; k++) {
		if (!(mask & B(k)))
			continue;
		if (buf[0])
			strncat(buf, ", ", n - strlen(buf) - 1);
		strncat(buf, key_names[k], n - strlen(buf) - 1);
	}
}

/* ---- section names and values ------------------------------------------- */

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* Layer names appear in parameter names ("conv1.weight"), in `inputs`
 * lists and in experiment files, so dots, commas and blanks are out. */
static int section_ok(pbi_ini_doc *c, const char *name, int line,
		      int first_line)
{
	if (strcmp(name, "model") && !pbi_ini_name_ok(name, "_-"))
		return pbi_ini_err(c, PB_EPARSE, line, "bad section name [%s]: "
				   "a layer name uses only letters, digits, "
				   "'_' and '-'", name);
	if (strlen(name) > PBI_NAME_MAX)
		return pbi_ini_err(c, PB_EPARSE, line, "section name [%s] is "
				   "longer than %d characters", name,
				   PBI_NAME_MAX);
	if (!strcmp(name, "input"))
		return pbi_ini_err(c, PB_EPARSE, line, "[input] is reserved "
				   "(`input = input` means the model input); "
				   "rename the layer");
	if (first_line)
		return pbi_ini_err(c, PB_EPARSE, line, "duplicate section name "
				   "[%s] (first at line %d); every layer needs "
				   "a unique name", name, first_line);
	return 0;
}

static const pbi_ini_rules model_rules = {
	.section_ok = section_ok,
	.key_home = "[model] or a layer's [name]",
};

/* ---- values -------------------------------------------------------------- */

static int get_int(pbi_ini_doc *c, const pbi_ini_section *s,
		   const pbi_ini_key *k, int lo, int hi, int *out)
{
	long v;
	int rc = pbi_ini_long(c, s, k, lo, hi, &v);

	if (!rc)
		*out = (int)v;
	return rc;
}

/* lo_open: the range excludes lo itself. */
static int get_float(pbi_ini_doc *c, const pbi_ini_section *s,
		     const pbi_ini_key *k, double lo, int lo_open,
		     double hi, int hi_open, float *out)
{
	double v;
	float f;

	if (pbi_parse_double(k->value, &v))
		return pbi_ini_err(c, PB_EPARSE, k->line, "[%s] %s = '%s' is "
				   "not a number", s->name, k->name, k->value);
	if (v < lo || v > hi || (lo_open && v == lo) ||
	    (hi_open && v == hi))
		return pbi_ini_err(c, PB_EPARSE, k->line, "[%s] %s = %g is out "
				   "of range %c%g, %g%c", s->name, k->name, v,
				   lo_open ? '(' : '[', lo, hi,
				   hi_open ? ')' : ']');
	/* The layer keeps a float: eps = 1e-51 became 0 (a division by
	 * zero in BN) and p = 0.99999999 became 1 (dropout scales by
	 * 1/(1-p)), both past an open end the double was inside of (found
	 * by fuzzing). */
	f = (float)v;
	if ((lo_open && (double)f <= lo) || (hi_open && (double)f >= hi))
		return pbi_ini_err(c, PB_EPARSE, k->line, "[%s] %s = %g rounds "
				   "to %g in single precision, out of range "
				   "%c%g, %g%c", s->name, k->name, v, (double)f,
				   lo_open ? '(' : '[', lo, hi,
				   hi_open ? ')' : ']');
	*out = f;
	return 0;
}

/* ---- [model] ------------------------------------------------------------- */

struct model_head {
	const char *name;
	int c, h, w;
	int classes;
};

static int parse_shape(const char *v, int *c, int *h, int *w)
{
	int dims[3], n = 0;
	const char *p = v;

	while (n < 3) {
		char *end;
		long d;
		while (isspace((unsigned char)*p))
			p++;
		if (!isdigit((unsigned char)*p))
			return -1;
		errno = 0;
		d = strtol(p, &end, 10);
		if (errno || d < 1 || d > 65536)
			return -1;
		dims[n++] = (int)d;
		p = end;
		while (isspace((unsigned char)*p))
			p++;
		if (n < 3 && *p != 'x' && *p != 'X')
			return -1;
		if (n < 3)
			p++;
	}
	if (*p)
		return -1;
	*c = dims[0];
	*h = dims[1];
	*w = dims[2];
	return 0;
}

/* A model name must survive pb_model_write_ini, which writes it as
 * "name = NAME" on a line of its own: a ';' there (after a blank) starts
 * a comment, and a long name makes the line too long to read back. Both
 * were accepted and gave files that do not load (found by fuzzing). */
#define MODEL_NAME_MAX 64

static int name_writable(const char *s)
{
	if (strlen(s) > MODEL_NAME_MAX)
		return 0;
	for (; *s; s++)
		if (*s == ';' || iscntrl((unsigned char)*s))
			return 0;
	return 1;
}

static int model_key(pbi_ini_doc *c, const pbi_ini_section *s,
		     const pbi_ini_key *k, struct model_head *h)
{
	if (!strcmp(k->name, "name")) {
		if (!k->value[0])
			return pbi_ini_err(c, PB_EPARSE, k->line,
					   "[model] name is empty");
		if (!name_writable(k->value))
			return pbi_ini_err(c, PB_EPARSE, k->line, "[model] "
					   "name = '%s': use at most %d "
					   "characters, none of them ';' or "
					   "control characters", k->value,
					   MODEL_NAME_MAX);
		h->name = k->value;
		return 0;
	}
	if (!strcmp(k->name, "input")) {
		if (parse_shape(k->value, &h->c, &h->h, &h->w))
			return pbi_ini_err(c, PB_EPARSE, k->line, "[model] "
					   "input = '%s' is not a shape: write "
					   "C x H x W of one sample, e.g. "
					   "input = 1x28x28", k->value);
		return 0;
	}
	if (!strcmp(k->name, "classes"))
		return get_int(c, s, k, 1, 1 << 20, &h->classes);
	return pbi_ini_err(c, PB_EPARSE, k->line,
			   "unknown key '%s' in [model]; valid keys: name, "
			   "input, classes", k->name);
}

static int parse_model_section(pbi_ini_doc *c, struct model_head *h)
{
	const pbi_ini_section *s = pbi_ini_find(c, "model");
	const char *missing = NULL;

	if (!s)
		return pbi_ini_err(c, PB_EPARSE, 1, "no [model] section; start "
				   "the file with [model] and name, input "
				   "(CxHxW) and classes");
	for (int i = 0; i < s->n_keys; i++)
		if (model_key(c, s, &s->keys[i], h))
			return -1;
	if (!h->name)
		missing = "name";
	else if (!h->c)
		missing = "input";
	else if (!h->classes)
		missing = "classes";
	if (missing)
		return pbi_ini_err(c, PB_EPARSE, s->line,
				   "[model] is missing '%s' (it needs name, "
				   "input = CxHxW and classes)", missing);
	return 0;
}

/* ---- layer sections ------------------------------------------------------ */

/* Resolves one input name: earlier layers by index, "input" as -1. */
static int resolve_input(pbi_ini_doc *c, const pbi_ini_section *s,
			 const pbi_ini_key *k, const char *name,
			 const pb_layer_info *done, int n_done, int *out)
{
	const pbi_ini_section *t;

	if (!strcmp(name, "input")) {
		*out = -1;
		return 0;
	}
	for (int i = 0; i < n_done; i++) {
		if (!strcmp(done[i].name, name)) {
			*out = i;
			return 0;
		}
	}
	t = pbi_ini_find(c, name);
	if (t && t == s)
		pbi_ini_err(c, PB_EPARSE, k->line, "[%s] %s = %s: a layer "
			    "cannot be its own input", s->name, k->name, name);
	else if (t && strcmp(name, "model"))
		pbi_ini_err(c, PB_EPARSE, k->line, "[%s] %s = %s refers to a "
			    "later layer (line %d); inputs must be defined "
			    "earlier in the file", s->name, k->name, name,
			    t->line);
	else
		pbi_ini_err(c, PB_EPARSE, k->line, "[%s] %s: unknown input "
			    "'%s'; name an earlier layer, or 'input' for the "
			    "model input", s->name, k->name, name);
	return -1;
}

/* "a, b": exactly two names, blanks around them ignored. */
static int parse_inputs(pbi_ini_doc *c, const pbi_ini_section *s,
			const pbi_ini_key *k, pb_layer_info *li,
			const pb_layer_info *done, int n_done)
{
	char buf[256], *names[3];
	int n = 0;

	snprintf(buf, sizeof buf, "%s", k->value);
	for (char *p = buf; p && n < 3; n++) {
		char *comma = strchr(p, ',');
		if (comma)
			*comma = '\0';
		names[n] = trim(p);
		p = comma ? comma + 1 : NULL;
	}
	if (n != 2 || !*names[0] || !*names[1])
		return pbi_ini_err(c, PB_EPARSE, k->line,
				   "[%s] add takes exactly two inputs, e.g. "
				   "inputs = bn2, proj1; got '%s'", s->name,
				   k->value);
	for (int i = 0; i < 2; i++)
		if (resolve_input(c, s, k, names[i], done, n_done,
				  &li->inputs[i]))
			return -1;
	li->n_inputs = 2;
	return 0;
}

static int layer_type(pbi_ini_doc *c, const pbi_ini_section *s)
{
	int t;

	for (int i = 0; i < s->n_keys; i++) {
		if (strcmp(s->keys[i].name, "type"))
			continue;
		t = pbi_layer_type_parse(s->keys[i].value);
		if (t < 0)
			pbi_ini_err(c, PB_EPARSE, s->keys[i].line, "[%s] "
				    "unknown layer type '%s'; valid types: "
				    TYPE_LIST, s->name, s->keys[i].value);
		return t;
	}
	return pbi_ini_err(c, PB_EPARSE, s->line,
			   "[%s] has no 'type'; add type = one of " TYPE_LIST,
			   s->name);
}

static void layer_defaults(pb_layer_info *li, int type)
{
	memset(li, 0, sizeof *li);
	li->type = (pb_layer_type)type;
	li->stride = 1;
	li->has_bias = type == PB_LAYER_CONV || type == PB_LAYER_LINEAR;
	li->eps = 1e-5f;
	li->momentum = 0.1f;
	li->p = 0.5f;
}

static int layer_key(pbi_ini_doc *c, const pbi_ini_section *s,
		     const pbi_ini_key *k, pb_layer_info *li,
		     const pb_layer_info *done, int n_done)
{
	const int max = 1 << 16;

	switch (key_parse(k->name)) {
	case K_TYPE:
		return 0;
	case K_INPUT:
		li->n_inputs = 1;
		return resolve_input(c, s, k, trim(k->value), done, n_done,
				     &li->inputs[0]);
	case K_INPUTS:
		return parse_inputs(c, s, k, li, done, n_done);
	case K_OUT:
		return get_int(c, s, k, 1, max * 16, &li->out_c);
	case K_KERNEL:
		return get_int(c, s, k, 1, max, &li->kernel);
	case K_STRIDE:
		return get_int(c, s, k, 1, max, &li->stride);
	case K_PAD:
		return get_int(c, s, k, 0, max, &li->pad);
	case K_BIAS:
		return pbi_ini_bool(c, s, k, &li->has_bias);
	case K_GLOBAL:
		return pbi_ini_bool(c, s, k, &li->global);
	case K_EPS:
		return get_float(c, s, k, 0, 1, 1, 0, &li->eps);
	case K_MOMENTUM:
		return get_float(c, s, k, 0, 0, 1, 0, &li->momentum);
	case K_P:
		return get_float(c, s, k, 0, 0, 1, 1, &li->p);
	}
	return -1;
}

static int check_keys(pbi_ini_doc *c, const pbi_ini_section *s,
		      int type, unsigned *seen)
{
	unsigned allowed = allowed_keys[type], missing;
	const char *tname = pb_layer_type_name((pb_layer_type)type);
	char list[256];

	*seen = 0;
	for (int i = 0; i < s->n_keys; i++) {
		int k = key_parse(s->keys[i].name);
		if (k < 0 || !(allowed & B(k))) {
			key_list(list, sizeof list, allowed);
			return pbi_ini_err(c, PB_EPARSE, s->keys[i].line,
					   "unknown key '%s' in [%s] (type "
					   "%s); valid keys: %s",
					   s->keys[i].name, s->name, tname,
					   list);
		}
		*seen |= B(k);
	}
	missing = required_keys[type] & ~*seen;
	if (type == PB_LAYER_AVGPOOL)
		missing = 0;
	if (missing) {
		key_list(list, sizeof list, missing);
		return pbi_ini_err(c, PB_EPARSE, s->line, "[%s] (type %s) is "
				   "missing required key%s %s", s->name, tname,
				   (missing & (missing - 1)) ? "s" : "", list);
	}
	return 0;
}

/* avgpool is either global or has a kernel, never both or neither. */
static int check_avgpool(pbi_ini_doc *c, const pbi_ini_section *s,
			 const pb_layer_info *li, unsigned seen)
{
	int has_kernel = (seen & B(K_KERNEL)) != 0;

	if (li->global && (seen & (B(K_KERNEL) | B(K_STRIDE))))
		return pbi_ini_err(c, PB_EPARSE, s->line, "[%s] global = yes "
				   "takes no kernel or stride", s->name);
	if (!li->global && !has_kernel)
		return pbi_ini_err(c, PB_EPARSE, s->line, "[%s] (type avgpool) "
				   "is missing required key kernel (or set "
				   "global = yes)", s->name);
	return 0;
}

static int parse_layer(pbi_ini_doc *c, const pbi_ini_section *s,
		       pb_layer_info *li, const pb_layer_info *done,
		       int n_done)
{
	int type = layer_type(c, s);
	unsigned seen;

	if (type < 0 || check_keys(c, s, type, &seen))
		return -1;
	layer_defaults(li, type);
	li->name = s->name;
	li->line = s->line;
	li->n_inputs = 1;
	li->inputs[0] = n_done - 1;   /* the previous layer, or the input */
	for (int i = 0; i < s->n_keys; i++)
		if (layer_key(c, s, &s->keys[i], li, done, n_done))
			return -1;
	/* A pool's stride defaults to its kernel, as in PyTorch. */
	if ((type == PB_LAYER_MAXPOOL || type == PB_LAYER_AVGPOOL) &&
	    !(seen & B(K_STRIDE)))
		li->stride = li->kernel;
	if (type == PB_LAYER_AVGPOOL)
		return check_avgpool(c, s, li, seen);
	return 0;
}

static int parse_layers(pbi_ini_doc *c, pb_layer_info **out, int *n)
{
	pb_layer_info *infos = calloc((size_t)c->n_secs + 1, sizeof *infos);
	int k = 0;

	if (!infos)
		return pbi_ini_err(c, PB_ENOMEM, 1, "out of memory");
	for (int i = 0; i < c->n_secs; i++) {
		if (!strcmp(c->secs[i].name, "model"))
			continue;
		if (parse_layer(c, &c->secs[i], &infos[k], infos, k)) {
			free(infos);
			return -1;
		}
		k++;
	}
	if (k == 0) {
		pbi_ini_err(c, PB_EPARSE, c->line ? c->line : 1, "the model "
			    "has no layers; add one section per layer after "
			    "[model]");
		free(infos);
		return -1;
	}
	*out = infos;
	*n = k;
	return 0;
}

/* ---- entry points -------------------------------------------------------- */

int pb_model_parse(pb_model **out, const char *text, const char *source,
		   pb_error *err)
{
	pbi_ini_doc c;
	struct model_head h = { 0 };
	pb_layer_info *infos = NULL;
	int n = 0, rc;

	*out = NULL;
	if (pbi_ini_read(&c, text, source, &model_rules, err) ||
	    parse_model_section(&c, &h) || parse_layers(&c, &infos, &n)) {
		pbi_ini_free(&c);
		return c.err_code;
	}
	rc = pbi_model_build(out, h.name, h.c, h.h, h.w, h.classes, infos, n,
			     c.source, err);
	free(infos);
	pbi_ini_free(&c);
	return rc;
}

static int read_file(const char *path, char **out, pb_error *err)
{
	FILE *f = fopen(path, "rb");
	size_t cap = 4096, len = 0;
	char *buf, *grown;
	int failed;

	*out = NULL;
	if (!f)
		return pb_error_set(err, PB_EIO,
				    "cannot open model file '%s': %s; check "
				    "the path", path, strerror(errno));
	buf = malloc(cap);
	while (buf) {
		len += fread(buf + len, 1, cap - len - 1, f);
		if (len < cap - 1)
			break;
		cap *= 2;
		grown = realloc(buf, cap);
		if (!grown)
			free(buf);
		buf = grown;
	}
	failed = !buf ? PB_ENOMEM : ferror(f) ? PB_EIO : 0;
	fclose(f);
	if (failed) {
		free(buf);
		return pb_error_set(err, failed, "cannot read model file "
				    "'%s': %s", path, failed == PB_ENOMEM ?
				    "out of memory" : "read error");
	}
	buf[len] = '\0';
	if (strlen(buf) != len) {
		free(buf);
		return pb_error_set(err, PB_EFORMAT,
				    "%s: contains a NUL byte; a model file is "
				    "INI text", path);
	}
	*out = buf;
	return 0;
}

int pb_model_load(pb_model **out, const char *path, pb_error *err)
{
	char *text;
	int rc;

	*out = NULL;
	if ((rc = read_file(path, &text, err)))
		return rc;
	rc = pb_model_parse(out, text, path, err);
	free(text);
	return rc;
}
