/* A strict recursive-descent reader for one JSON object per line (RFC 8259
 * grammar), keeping only the value types runs.jsonl uses. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json_read.h"

/* Deep enough for any sane extension, shallow enough that a hostile line
 * cannot exhaust the stack. */
#define PBJ_MAX_DEPTH 32

typedef struct pbj_parser {
	const char *s, *end, *p;
	char *why;
	size_t why_len;
	int failed;
} pbj_parser;

static int fail(pbj_parser *ps, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int fail(pbj_parser *ps, const char *fmt, ...)
{
	if (!ps->failed && ps->why && ps->why_len) {
		char msg[200];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof msg, fmt, ap);
		va_end(ap);
		if (ps->p >= ps->end)
			snprintf(ps->why, ps->why_len,
				 "%s at end of line (truncated?)", msg);
		else
			snprintf(ps->why, ps->why_len, "%s at column %ld", msg,
				 (long)(ps->p - ps->s) + 1);
	}
	ps->failed = 1;
	return -1;
}

static void skip_ws(pbj_parser *ps)
{
	while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' ||
				   *ps->p == '\n' || *ps->p == '\r'))
		ps->p++;
}

static int expect(pbj_parser *ps, const char *word)
{
	size_t n = strlen(word);
	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n))
		return fail(ps, "expected '%s'", word);
	ps->p += n;
	return 0;
}

static int hex4(pbj_parser *ps, unsigned *out)
{
	unsigned v = 0;
	if (ps->end - ps->p < 4)
		return fail(ps, "short \\u escape");
	for (int i = 0; i < 4; i++) {
		char c = *ps->p++;
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return fail(ps, "bad hex digit in \\u escape");
	}
	*out = v;
	return 0;
}

static size_t utf8_put(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xC0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xE0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		o[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (char)(0xF0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	o[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* Parses a string at ps->p (which is at the opening quote). When out is not
 * NULL, stores the decoded, malloc-ed text there. */
static int parse_string(pbj_parser *ps, char **out)
{
	const char *start;
	char *buf = NULL, *o = NULL;

	if (ps->p >= ps->end || *ps->p != '"')
		return fail(ps, "expected a string");
	start = ++ps->p;
	/* Decoded text is never longer than the escaped source. */
	if (out) {
		const char *q = start;
		while (q < ps->end && *q != '"') {
			if (*q == '\\' && q + 1 < ps->end)
				q++;
			q++;
		}
		buf = malloc((size_t)(q - start) + 1);
		if (!buf)
			return fail(ps, "out of memory");
		o = buf;
	}
	for (;;) {
		unsigned char c;
		if (ps->p >= ps->end) {
			free(buf);
			return fail(ps, "unterminated string");
		}
		c = (unsigned char)*ps->p;
		if (c == '"') {
			ps->p++;
			break;
		}
		if (c < 0x20) {
			free(buf);
			return fail(ps, "control character in string");
		}
		if (c != '\\') {
			if (o)
				*o++ = (char)c;
			ps->p++;
			continue;
		}
		ps->p++;
		if (ps->p >= ps->end) {
			free(buf);
			return fail(ps, "unterminated escape");
		}
		c = (unsigned char)*ps->p++;
		char lit = 0;
		switch (c) {
		case '"': lit = '"'; break;
		case '\\': lit = '\\'; break;
		case '/': lit = '/'; break;
		case 'b': lit = '\b'; break;
		case 'f': lit = '\f'; break;
		case 'n': lit = '\n'; break;
		case 'r': lit = '\r'; break;
		case 't': lit = '\t'; break;
		case 'u': {
			unsigned cp, lo;
			if (hex4(ps, &cp)) {
				free(buf);
				return -1;
			}
			if (cp >= 0xDC00 && cp <= 0xDFFF) {
				free(buf);
				return fail(ps, "lone low surrogate");
			}
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				if (ps->end - ps->p < 2 || ps->p[0] != '\\' ||
				    ps->p[1] != 'u') {
					free(buf);
					return fail(ps, "lone high surrogate");
				}
				ps->p += 2;
				if (hex4(ps, &lo)) {
					free(buf);
					return -1;
				}
				if (lo < 0xDC00 || lo > 0xDFFF) {
					free(buf);
					return fail(ps, "bad surrogate pair");
				}
				cp = 0x10000 + ((cp - 0xD800) << 10) +
				     (lo - 0xDC00);
			}
			if (cp == 0) {
				free(buf);
				return fail(ps, "\\u0000 is not allowed");
			}
			/* At most 4 output bytes for 6 or 12 input bytes. */
			if (o)
				o += utf8_put(o, cp);
			continue;
		}
		default:
			ps->p--;
			free(buf);
			return fail(ps, "bad escape '\\%c'", c);
		}
		if (o)
			*o++ = lit;
	}
	if (out) {
		*o = '\0';
		*out = buf;
	}
	return 0;
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* The JSON number grammar, checked by hand because strtod also accepts
 * hex, "inf", "nan" and leading '+'. */
static int parse_number(pbj_parser *ps, double *out)
{
	const char *start = ps->p;
	char tmp[64], *endp;
	size_t n;

	if (ps->p < ps->end && *ps->p == '-')
		ps->p++;
	if (ps->p >= ps->end || !is_digit(*ps->p))
		return fail(ps, "bad number");
	if (*ps->p == '0')
		ps->p++;
	else
		while (ps->p < ps->end && is_digit(*ps->p))
			ps->p++;
	if (ps->p < ps->end && *ps->p == '.') {
		ps->p++;
		if (ps->p >= ps->end || !is_digit(*ps->p))
			return fail(ps, "bad number: digit expected after '.'");
		while (ps->p < ps->end && is_digit(*ps->p))
			ps->p++;
	}
	if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
		ps->p++;
		if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
			ps->p++;
		if (ps->p >= ps->end || !is_digit(*ps->p))
			return fail(ps, "bad number: exponent digits expected");
		while (ps->p < ps->end && is_digit(*ps->p))
			ps->p++;
	}
	n = (size_t)(ps->p - start);
	if (n >= sizeof tmp)
		return fail(ps, "number too long");
	memcpy(tmp, start, n);
	tmp[n] = '\0';
	*out = strtod(tmp, &endp);
	if (*endp != '\0' || !isfinite(*out))
		return fail(ps, "number out of range");
	return 0;
}

static int skip_value(pbj_parser *ps, int depth);

/* Parses any value into v (which the caller zeroed). */
static int parse_value(pbj_parser *ps, pbj_value *v, int depth)
{
	if (depth > PBJ_MAX_DEPTH)
		return fail(ps, "nested too deeply");
	skip_ws(ps);
	if (ps->p >= ps->end)
		return fail(ps, "value expected");
	switch (*ps->p) {
	case '"':
		v->type = PBJ_STRING;
		return parse_string(ps, &v->str);
	case 'n':
		v->type = PBJ_NULL;
		return expect(ps, "null");
	case 't':
		v->type = PBJ_BOOL;
		v->boolean = 1;
		return expect(ps, "true");
	case 'f':
		v->type = PBJ_BOOL;
		v->boolean = 0;
		return expect(ps, "false");
	case '{':
		v->type = PBJ_OTHER;
		return skip_value(ps, depth);
	case '[': {
		/* Keep it only if every element is a number. */
		const char *save = ps->p;
		int cap = 0, all_num = 1;
		ps->p++;
		skip_ws(ps);
		v->type = PBJ_ARRAY;
		if (ps->p < ps->end && *ps->p == ']') {
			ps->p++;
			return 0;
		}
		for (;;) {
			double d;
			skip_ws(ps);
			if (ps->p < ps->end &&
			    (*ps->p == '-' || is_digit(*ps->p))) {
				if (parse_number(ps, &d))
					return -1;
			} else {
				all_num = 0;
				break;
			}
			if (v->n_arr == cap) {
				int nc = cap ? 2 * cap : 8;
				double *na = realloc(v->arr, (size_t)nc *
							     sizeof *na);
				if (!na)
					return fail(ps, "out of memory");
				v->arr = na;
				cap = nc;
			}
			v->arr[v->n_arr++] = d;
			skip_ws(ps);
			if (ps->p < ps->end && *ps->p == ',') {
				ps->p++;
				continue;
			}
			if (ps->p < ps->end && *ps->p == ']') {
				ps->p++;
				break;
			}
			return fail(ps, "expected ',' or ']' in array");
		}
		if (all_num)
			return 0;
		free(v->arr);
		v->arr = NULL;
		v->n_arr = 0;
		v->type = PBJ_OTHER;
		ps->p = save;
		return skip_value(ps, depth);
	}
	default:
		if (*ps->p == '-' || is_digit(*ps->p)) {
			v->type = PBJ_NUMBER;
			return parse_number(ps, &v->num);
		}
		return fail(ps, "unexpected character '%c'", *ps->p);
	}
}

/* Validates and steps over any value, keeping nothing. */
static int skip_value(pbj_parser *ps, int depth)
{
	if (depth > PBJ_MAX_DEPTH)
		return fail(ps, "nested too deeply");
	skip_ws(ps);
	if (ps->p >= ps->end)
		return fail(ps, "value expected");
	if (*ps->p == '{' || *ps->p == '[') {
		char close = *ps->p == '{' ? '}' : ']';
		int is_obj = close == '}';
		ps->p++;
		skip_ws(ps);
		if (ps->p < ps->end && *ps->p == close) {
			ps->p++;
			return 0;
		}
		for (;;) {
			skip_ws(ps);
			if (is_obj) {
				if (parse_string(ps, NULL))
					return -1;
				skip_ws(ps);
				if (ps->p >= ps->end || *ps->p != ':')
					return fail(ps, "expected ':'");
				ps->p++;
			}
			if (skip_value(ps, depth + 1))
				return -1;
			skip_ws(ps);
			if (ps->p < ps->end && *ps->p == ',') {
				ps->p++;
				continue;
			}
			if (ps->p < ps->end && *ps->p == close) {
				ps->p++;
				return 0;
			}
			return fail(ps, "expected ',' or '%c'", close);
		}
	}
	pbj_value tmp = { 0 };
	int rc = parse_value(ps, &tmp, depth);
	free(tmp.str);
	free(tmp.arr);
	return rc;
}

static void value_free(pbj_value *v)
{
	free(v->str);
	free(v->arr);
	memset(v, 0, sizeof *v);
}

void pbi_json_object_free(pbj_object *o)
{
	if (!o)
		return;
	for (int i = 0; i < o->n; i++) {
		free(o->m[i].key);
		value_free(&o->m[i].v);
	}
	free(o->m);
	memset(o, 0, sizeof *o);
}

const pbj_value *pbi_json_get(const pbj_object *o, const char *key)
{
	for (int i = 0; i < o->n; i++)
		if (!strcmp(o->m[i].key, key))
			return &o->m[i].v;
	return NULL;
}

double pbi_json_num(const pbj_object *o, const char *key, int *bad)
{
	const pbj_value *v = pbi_json_get(o, key);
	if (!v || v->type == PBJ_NULL)
		return NAN;
	if (v->type != PBJ_NUMBER) {
		if (bad)
			*bad = 1;
		return NAN;
	}
	return v->num;
}

const char *pbi_json_str(const pbj_object *o, const char *key, int *bad)
{
	const pbj_value *v = pbi_json_get(o, key);
	if (!v || v->type == PBJ_NULL)
		return NULL;
	if (v->type != PBJ_STRING) {
		if (bad)
			*bad = 1;
		return NULL;
	}
	return v->str;
}

int pbi_json_parse_object(const char *text, size_t len, pbj_object *out,
			  char *why, size_t why_len)
{
	pbj_parser ps = { text, text + len, text, why, why_len, 0 };

	memset(out, 0, sizeof *out);
	if (why && why_len)
		why[0] = '\0';
	skip_ws(&ps);
	if (ps.p >= ps.end || *ps.p != '{') {
		fail(&ps, "expected '{'");
		return -1;
	}
	ps.p++;
	skip_ws(&ps);
	if (ps.p < ps.end && *ps.p == '}') {
		ps.p++;
		goto tail;
	}
	for (;;) {
		pbj_member m = { 0 };
		skip_ws(&ps);
		if (parse_string(&ps, &m.key))
			goto bad;
		if (pbi_json_get(out, m.key)) {
			fail(&ps, "duplicate key \"%s\"", m.key);
			free(m.key);
			goto bad;
		}
		skip_ws(&ps);
		if (ps.p >= ps.end || *ps.p != ':') {
			fail(&ps, "expected ':'");
			free(m.key);
			goto bad;
		}
		ps.p++;
		if (parse_value(&ps, &m.v, 1)) {
			free(m.key);
			value_free(&m.v);
			goto bad;
		}
		if (out->n == out->cap) {
			int nc = out->cap ? 2 * out->cap : 32;
			pbj_member *nm = realloc(out->m, (size_t)nc *
							 sizeof *nm);
			if (!nm) {
				fail(&ps, "out of memory");
				free(m.key);
				value_free(&m.v);
				goto bad;
			}
			out->m = nm;
			out->cap = nc;
		}
		out->m[out->n++] = m;
		skip_ws(&ps);
		if (ps.p < ps.end && *ps.p == ',') {
			ps.p++;
			continue;
		}
		if (ps.p < ps.end && *ps.p == '}') {
			ps.p++;
			break;
		}
		fail(&ps, "expected ',' or '}'");
		goto bad;
	}
tail:
	skip_ws(&ps);
	if (ps.p != ps.end) {
		fail(&ps, "text after the object");
		goto bad;
	}
	return 0;
bad:
	pbi_json_object_free(out);
	return -1;
}
