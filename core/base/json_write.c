/* Building one JSON object on one line, for runs.jsonl and any other
 * machine-read output: strings escaped, non-finite numbers as null,
 * allocation failure remembered and reported once at the end. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json_write.h"

static void put(pbi_jw *j, const char *s, size_t n)
{
	if (j->oom)
		return;
	if (j->len + n + 1 > j->cap) {
		size_t cap = j->cap ? j->cap : 512;
		char *p;
		while (cap < j->len + n + 1)
			cap *= 2;
		p = realloc(j->buf, cap);
		if (!p) {
			j->oom = 1;
			return;
		}
		j->buf = p;
		j->cap = cap;
	}
	memcpy(j->buf + j->len, s, n);
	j->len += n;
	j->buf[j->len] = '\0';
}

static void puts_(pbi_jw *j, const char *s)
{
	put(j, s, strlen(s));
}

/* Bytes of the well-formed UTF-8 sequence at p (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0. */
static int utf8_len(const unsigned char *p)
{
	int n;
	unsigned cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4, cp = p[0] & 0x07;
	else
		return 0;
	for (int i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

/* A JSON string any strict reader accepts: control characters escaped,
 * and a byte that does not start well-formed UTF-8 (a plugin's message
 * may hold anything) written as U+FFFD, the replacement character. */
static void put_string(pbi_jw *j, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	put(j, "\"", 1);
	while (*p) {
		char esc[8];
		int n;

		switch (*p) {
		case '"': puts_(j, "\\\""); p++; continue;
		case '\\': puts_(j, "\\\\"); p++; continue;
		case '\n': puts_(j, "\\n"); p++; continue;
		case '\r': puts_(j, "\\r"); p++; continue;
		case '\t': puts_(j, "\\t"); p++; continue;
		}
		if (*p < 0x20 || *p == 0x7f) {
			snprintf(esc, sizeof esc, "\\u%04x", *p);
			puts_(j, esc);
			p++;
		} else if ((n = utf8_len(p)) > 0) {
			put(j, (const char *)p, (size_t)n);
			p += n;
		} else {
			puts_(j, "\\ufffd");
			p++;
		}
	}
	put(j, "\"", 1);
}

static void key(pbi_jw *j, const char *k)
{
	if (j->n++)
		put(j, ",", 1);
	put_string(j, k);
	put(j, ":", 1);
}

void pbi_jw_begin(pbi_jw *j)
{
	memset(j, 0, sizeof *j);
	put(j, "{", 1);
}

void pbi_jw_str(pbi_jw *j, const char *k, const char *v)
{
	key(j, k);
	if (v)
		put_string(j, v);
	else
		puts_(j, "null");
}

void pbi_jw_num(pbi_jw *j, const char *k, double v)
{
	char buf[40];

	key(j, k);
	if (!isfinite(v)) {
		puts_(j, "null");
		return;
	}
	snprintf(buf, sizeof buf, "%.10g", v);
	/* Ten digits round the largest doubles (above 1.7976931345e308) up
	 * past DBL_MAX: the text would read back as infinity, which readers
	 * refuse, and the whole line with it. Those get every digit. */
	if (!isfinite(strtod(buf, NULL)))
		snprintf(buf, sizeof buf, "%.17g", v);
	puts_(j, buf);
}

void pbi_jw_int(pbi_jw *j, const char *k, long long v)
{
	char buf[32];

	key(j, k);
	snprintf(buf, sizeof buf, "%lld", v);
	puts_(j, buf);
}

void pbi_jw_bool(pbi_jw *j, const char *k, int v)
{
	key(j, k);
	puts_(j, v ? "true" : "false");
}

void pbi_jw_null(pbi_jw *j, const char *k)
{
	key(j, k);
	puts_(j, "null");
}

int pbi_jw_end(pbi_jw *j, pb_error *err)
{
	put(j, "}\n", 2);
	if (j->oom)
		return pb_error_set(err, PB_ENOMEM, "out of memory (JSON line)");
	return 0;
}

void pbi_jw_free(pbi_jw *j)
{
	free(j->buf);
	memset(j, 0, sizeof *j);
}

void pbi_jw_nums(pbi_jw *j, const char *k, const double *v, int n)
{
	char buf[40];

	if (!v) {
		pbi_jw_null(j, k);
		return;
	}
	key(j, k);
	put(j, "[", 1);
	for (int i = 0; i < n; i++) {
		snprintf(buf, sizeof buf, "%s%.6g", i ? "," : "",
			 isfinite(v[i]) ? v[i] : 0.0);
		puts_(j, buf);
	}
	put(j, "]", 1);
}
