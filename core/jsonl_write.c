/* runs.jsonl: building one JSON object per cell, appending it so a crash
 * can never leave half a line in the middle of the file, and reading back
 * which cells are already there (for resuming). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "experiment_impl.h"

/* ---- building a line ------------------------------------------------------ */

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

static void put_string(pbi_jw *j, const char *s)
{
	put(j, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		char esc[8];
		switch (*p) {
		case '"': puts_(j, "\\\""); break;
		case '\\': puts_(j, "\\\\"); break;
		case '\n': puts_(j, "\\n"); break;
		case '\r': puts_(j, "\\r"); break;
		case '\t': puts_(j, "\\t"); break;
		default:
			if (*p < 0x20 || *p == 0x7f) {
				snprintf(esc, sizeof esc, "\\u%04x", *p);
				puts_(j, esc);
			} else {
				put(j, (const char *)p, 1);
			}
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
	puts_(j, buf);
}

void pbi_jw_int(pbi_jw *j, const char *k, long long v)
{
	char buf[32];

	key(j, k);
	snprintf(buf, sizeof buf, "%lld", v);
	puts_(j, buf);
}

void pbi_jw_null(pbi_jw *j, const char *k)
{
	key(j, k);
	puts_(j, "null");
}

void pbi_jw_raw(pbi_jw *j, const char *k, const char *v)
{
	key(j, k);
	puts_(j, v ? v : "null");
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

/* ---- appending ---------------------------------------------------------------- */

int pbi_jsonl_append(const char *path, const char *line, size_t len,
		     pb_error *err)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
	struct stat st;
	size_t done = 0;

	if (fd < 0)
		return pb_error_set(err, PB_EIO, "%s: cannot open for "
				    "appending: %s", path, strerror(errno));
	if (!fstat(fd, &st) && st.st_size > 0) {
		char last = '\n';
		int rfd = open(path, O_RDONLY | O_CLOEXEC);
		if (rfd >= 0) {
			if (pread(rfd, &last, 1, st.st_size - 1) != 1)
				last = '\n';
			close(rfd);
		}
		if (last != '\n' && write(fd, "\n", 1) != 1)
			goto fail;
	}
	while (done < len) {
		ssize_t w = write(fd, line + done, len - done);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		done += (size_t)w;
	}
	if (fsync(fd))
		goto fail;
	if (close(fd))
		return pb_error_set(err, PB_EIO, "%s: write failed: %s", path,
				    strerror(errno));
	return 0;
fail:
	pb_error_set(err, PB_EIO, "%s: write failed: %s", path,
		     strerror(errno));
	close(fd);
	return PB_EIO;
}

/* ---- reading ids back ------------------------------------------------------- */

/* The string value of "key" in a one-line JSON object (escapes kept as
 * written, which ids never contain), malloc-ed, or NULL. */
static char *string_member(const char *line, const char *key)
{
	char pat[64];
	const char *p, *q;

	snprintf(pat, sizeof pat, "\"%s\"", key);
	for (p = strstr(line, pat); p; p = strstr(p + 1, pat)) {
		q = p + strlen(pat);
		while (*q == ' ')
			q++;
		if (*q != ':')
			continue;
		q++;
		while (*q == ' ')
			q++;
		if (*q != '"')
			return NULL;
		p = ++q;
		while (*q && *q != '"') {
			if (*q == '\\' && q[1])
				q++;
			q++;
		}
		if (*q != '"')
			return NULL;
		return strndup(p, (size_t)(q - p));
	}
	return NULL;
}

int pbi_jsonl_read_ids(const char *path, char ***ids, char ***status,
		       int *n, pb_error *err)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	char **ids_ = NULL, **st = NULL;
	int count = 0, cap_ids = 0;

	*ids = NULL;
	if (status)
		*status = NULL;
	*n = 0;
	if (!f) {
		if (errno == ENOENT)
			return 0;
		return pb_error_set(err, PB_EIO, "%s: cannot read: %s", path,
				    strerror(errno));
	}
	while ((len = getline(&line, &cap, f)) > 0) {
		char *id;
		/* A line without its newline was cut by a crash: the cell
		 * was not finished. */
		if (line[len - 1] != '\n' || line[0] != '{')
			continue;
		while (len > 0 && (line[len - 1] == '\n' ||
				   line[len - 1] == '\r' || line[len - 1] == ' '))
			line[--len] = '\0';
		if (len < 2 || line[len - 1] != '}')
			continue;
		id = string_member(line, "id");
		if (!id)
			continue;
		if (count == cap_ids) {
			int c2 = cap_ids ? 2 * cap_ids : 64;
			char **a = realloc(ids_, sizeof *a * (size_t)c2);
			char **b = a ? realloc(st, sizeof *b * (size_t)c2) : NULL;
			if (a)
				ids_ = a;
			if (b)
				st = b;
			if (!a || !b) {
				free(id);
				pbi_jsonl_ids_free(ids_, st, count);
				free(line);
				fclose(f);
				return pb_error_set(err, PB_ENOMEM,
						    "out of memory");
			}
			cap_ids = c2;
		}
		ids_[count] = id;
		st[count] = string_member(line, "status");
		count++;
	}
	free(line);
	fclose(f);
	*ids = ids_;
	if (status)
		*status = st;
	else
		pbi_jsonl_ids_free(NULL, st, count);
	*n = count;
	return 0;
}

void pbi_jsonl_ids_free(char **ids, char **status, int n)
{
	for (int i = 0; i < n; i++) {
		if (ids)
			free(ids[i]);
		if (status)
			free(status[i]);
	}
	free(ids);
	free(status);
}
