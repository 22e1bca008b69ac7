/* Reading an INI text into sections and keys with line numbers; see
 * ini_doc.h. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "base/ini_doc.h"
#include "base/util.h"

int pbi_ini_err(pbi_ini_doc *d, int code, int line, const char *fmt, ...)
{
	char msg[PB_ERROR_MSG_MAX];
	va_list ap;

	if (d->err_line)
		return -1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	d->err_line = line > 0 ? line : 1;
	d->err_code = code;
	pb_error_set(d->err, code, "%s:%d: %s", d->source, d->err_line, msg);
	return -1;
}

void pbi_ini_free(pbi_ini_doc *d)
{
	for (int i = 0; i < d->n_secs; i++) {
		pbi_ini_section *s = &d->secs[i];
		for (int k = 0; k < s->n_keys; k++) {
			free(s->keys[k].name);
			free(s->keys[k].value);
		}
		free(s->keys);
		free(s->name);
	}
	free(d->secs);
	d->secs = NULL;
	d->n_secs = d->cap_secs = 0;
}

const pbi_ini_section *pbi_ini_find(const pbi_ini_doc *d, const char *name)
{
	for (int i = 0; i < d->n_secs; i++)
		if (!strcmp(d->secs[i].name, name))
			return &d->secs[i];
	return NULL;
}

int pbi_ini_name_ok(const char *s, const char *also)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr(also, *s))
			return 0;
	return 1;
}

static int new_section(pbi_ini_doc *d, const char *line)
{
	const char *close = strchr(line, ']');
	const pbi_ini_section *first;
	pbi_ini_section *s;
	char name[256];
	size_t len;

	if (!close)
		return 0;   /* inih reports the malformed header */
	len = (size_t)(close - line - 1);
	if (len >= sizeof name)
		len = sizeof name - 1;
	memcpy(name, line + 1, len);
	name[len] = '\0';
	first = pbi_ini_find(d, name);
	if (d->rules->section_ok &&
	    d->rules->section_ok(d, name, d->line, first ? first->line : 0))
		return -1;
	if (first)
		return pbi_ini_err(d, PB_EPARSE, d->line, "section [%s] is "
				   "given twice (first at line %d)", name,
				   first->line);
	if (d->n_secs == d->cap_secs) {
		int cap = d->cap_secs ? 2 * d->cap_secs : 16;
		void *p = realloc(d->secs, (size_t)cap * sizeof *d->secs);
		if (!p)
			return pbi_ini_err(d, PB_ENOMEM, d->line,
					   "out of memory");
		d->secs = p;
		d->cap_secs = cap;
	}
	s = &d->secs[d->n_secs];
	memset(s, 0, sizeof *s);
	s->name = strdup(name);
	s->line = d->line;
	if (!s->name)
		return pbi_ini_err(d, PB_ENOMEM, d->line, "out of memory");
	d->n_secs++;
	return 0;
}

/* fgets over the text. Leading blanks are dropped because inih's
 * multi-line mode would otherwise read an indented "key = value" as a
 * continuation of the previous value. */
static char *read_line(char *str, int num, void *stream)
{
	pbi_ini_doc *d = stream;
	const char *p = d->text + d->pos, *nl;
	size_t len, max = (size_t)num - 1;

	if (!*p)
		return NULL;
	d->line++;
	nl = strchr(p, '\n');
	len = nl ? (size_t)(nl - p) + 1 : strlen(p);
	d->pos += len;
	if (d->line == 1 && !strncmp(p, "\xEF\xBB\xBF", 3)) {
		p += 3;
		len -= 3;
	}
	while (len && (*p == ' ' || *p == '\t')) {
		p++;
		len--;
	}
	if (len > max) {
		pbi_ini_err(d, PB_EPARSE, d->line,
			    "line is longer than %d characters", num - 2);
		len = 0;
	}
	memcpy(str, p, len);
	str[len] = '\0';
	if (str[0] == '[')
		new_section(d, str);
	return str;
}

static int add_key(pbi_ini_section *s, const char *name, const char *value,
		   int line)
{
	pbi_ini_key *k;

	if (s->n_keys == s->cap_keys) {
		int cap = s->cap_keys ? 2 * s->cap_keys : 8;
		void *p = realloc(s->keys, (size_t)cap * sizeof *s->keys);
		if (!p)
			return -1;
		s->keys = p;
		s->cap_keys = cap;
	}
	k = &s->keys[s->n_keys];
	k->name = strdup(name);
	k->value = strdup(value);
	k->line = line;
	k->used = 0;
	if (!k->name || !k->value) {
		free(k->name);
		free(k->value);
		return -1;
	}
	s->n_keys++;
	return 0;
}

static int handler(void *user, const char *section, const char *name,
		   const char *value)
{
	pbi_ini_doc *d = user;
	pbi_ini_section *s;

	if (!name || d->err_line)
		return 1;   /* a new-section call (some inih builds), or done */
	if (!section[0] || !d->n_secs) {
		pbi_ini_err(d, PB_EPARSE, d->line, "'%s' is outside any "
			    "section; put it under %s", name,
			    d->rules->key_home);
		return 0;
	}
	s = &d->secs[d->n_secs - 1];
	for (int k = 0; k < s->n_keys; k++) {
		if (!strcmp(s->keys[k].name, name)) {
			pbi_ini_err(d, PB_EPARSE, d->line, "[%s] key '%s' is "
				    "given twice (first at line %d)", s->name,
				    name, s->keys[k].line);
			return 0;
		}
	}
	if (add_key(s, name, value, d->line)) {
		pbi_ini_err(d, PB_ENOMEM, d->line, "out of memory");
		return 0;
	}
	return 1;
}

int pbi_ini_read(pbi_ini_doc *d, const char *text, const char *source,
		 const pbi_ini_rules *rules, pb_error *err)
{
	int rc;

	memset(d, 0, sizeof *d);
	d->source = source ? source : "<string>";
	d->text = text ? text : "";
	d->rules = rules;
	d->err = err;
	rc = ini_parse_stream(read_line, d, handler, d);
	if (rc > 0 && (!d->err_line || rc < d->err_line)) {
		d->err_line = 0;
		pbi_ini_err(d, PB_EPARSE, rc, "syntax error: expected "
			    "[section], key = value, or a comment starting "
			    "with ';' or '#'");
	} else if (rc < 0 && !d->err_line) {
		pbi_ini_err(d, PB_ENOMEM, 1, "out of memory reading the file");
	}
	return d->err_line ? -1 : 0;
}

int pbi_ini_long(pbi_ini_doc *d, const pbi_ini_section *s,
		 const pbi_ini_key *k, long lo, long hi, long *out)
{
	if (pbi_parse_long(k->value, out))
		return pbi_ini_err(d, PB_EPARSE, k->line, "[%s] %s = '%s' is "
				   "not an integer", s->name, k->name,
				   k->value);
	if (*out < lo || *out > hi)
		return pbi_ini_err(d, PB_EPARSE, k->line, "[%s] %s = %ld is "
				   "out of range [%ld, %ld]", s->name, k->name,
				   *out, lo, hi);
	return 0;
}

int pbi_ini_double(pbi_ini_doc *d, const pbi_ini_section *s,
		   const pbi_ini_key *k, double lo, double hi, double *out)
{
	if (pbi_parse_double(k->value, out))
		return pbi_ini_err(d, PB_EPARSE, k->line, "[%s] %s = '%s' is "
				   "not a number", s->name, k->name, k->value);
	if (!(*out >= lo && *out <= hi))
		return pbi_ini_err(d, PB_EPARSE, k->line, "[%s] %s = %g is out "
				   "of range [%g, %g]", s->name, k->name, *out,
				   lo, hi);
	return 0;
}

int pbi_ini_bool(pbi_ini_doc *d, const pbi_ini_section *s,
		 const pbi_ini_key *k, int *out)
{
	if (pbi_parse_bool(k->value, out))
		return pbi_ini_err(d, PB_EPARSE, k->line, "[%s] %s = '%s' is "
				   "not yes or no", s->name, k->name, k->value);
	return 0;
}
