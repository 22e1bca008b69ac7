/* runs.jsonl -> pb_cell array. A line that does not parse is reported with
 * file:line and skipped, so a half-written last line after a crash never
 * stops the table. */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_read.h"
#include "prunebench/table.h"

void pb_cell_clear(pb_cell *c)
{
	free(c->id);
	free(c->experiment);
	free(c->method);
	free(c->plugin);
	free(c->granularity);
	free(c->target);
	free(c->target_kind);
	free(c->scope);
	free(c->schedule);
	free(c->error);
	free(c->rounds);
	memset(c, 0, sizeof *c);
}

void pb_cells_free(pb_cell *cells, int n)
{
	if (!cells)
		return;
	for (int i = 0; i < n; i++)
		pb_cell_clear(&cells[i]);
	free(cells);
}

static int dup_str(const pbj_object *o, const char *key, char **out,
		   int *bad)
{
	const char *s = pbi_json_str(o, key, bad);
	*out = NULL;
	if (s && !(*out = strdup(s)))
		return -1;
	return 0;
}

int pb_cell_parse(const char *line, size_t len, pb_cell *c, char *why,
		  size_t why_len)
{
	static const struct {
		const char *key;
		size_t off;
	} nums[] = {
#define N(k) { #k, offsetof(pb_cell, k) }
		N(target_amount), N(reached), N(acc_before), N(acc_after),
		N(val_after), N(params), N(params_dense), N(nonzero),
		N(macs), N(macs_dense), N(macs_effective), N(size_dense_mib),
		N(size_sparse_mib), N(size_compressed_mib), N(latency_b1_ms),
		N(latency_b128_ms), N(speedup_b1), N(speedup_b128),
		N(time_prune_s), N(time_finetune_s), N(time_total_s),
#undef N
	};
	static const struct {
		const char *key;
		size_t off;
	} strs[] = {
#define S(k) { #k, offsetof(pb_cell, k) }
		S(id), S(experiment), S(method), S(plugin), S(granularity),
		S(target), S(target_kind), S(scope), S(schedule), S(error),
#undef S
	};
	pbj_object o;
	const char *s;
	const pbj_value *v;
	int bad = 0;
	double d;

	memset(c, 0, sizeof *c);
	if (pbi_json_parse_object(line, len, &o, why, why_len))
		return -1;

	d = pbi_json_num(&o, "v", &bad);
	if (bad || isnan(d)) {
		snprintf(why, why_len, "no format version \"v\"; not a "
			 "runs.jsonl line");
		goto fail;
	}
	if (d != 1) {
		snprintf(why, why_len, "format version %g, this prunebench "
			 "reads version 1; upgrade prunebench", d);
		goto fail;
	}

	s = pbi_json_str(&o, "kind", &bad);
	if (!s) {
		snprintf(why, why_len, "\"kind\" missing");
		goto fail;
	}
	if (!strcmp(s, "dense"))
		c->kind = PB_CELL_DENSE;
	else if (!strcmp(s, "dense_ft"))
		c->kind = PB_CELL_DENSE_FT;
	else if (!strcmp(s, "prune"))
		c->kind = PB_CELL_PRUNE;
	else if (!strcmp(s, "scratch"))
		c->kind = PB_CELL_SCRATCH;
	else {
		snprintf(why, why_len, "unknown kind \"%.40s\"", s);
		goto fail;
	}

	s = pbi_json_str(&o, "status", &bad);
	if (!s) {
		snprintf(why, why_len, "\"status\" missing");
		goto fail;
	}
	if (!strcmp(s, "ok"))
		c->status = PB_CELL_OK;
	else if (!strcmp(s, "diverged"))
		c->status = PB_CELL_DIVERGED;
	else if (!strcmp(s, "failed"))
		c->status = PB_CELL_FAILED;
	else {
		snprintf(why, why_len, "unknown status \"%.40s\"", s);
		goto fail;
	}

	d = pbi_json_num(&o, "seed", &bad);
	if (isnan(d) || d != floor(d)) {
		snprintf(why, why_len, "\"seed\" missing or not an integer");
		goto fail;
	}
	c->seed = (long)d;

	for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
		*(double *)((char *)c + nums[i].off) =
			pbi_json_num(&o, nums[i].key, &bad);
	for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
		if (dup_str(&o, strs[i].key,
			    (char **)((char *)c + strs[i].off), &bad)) {
			snprintf(why, why_len, "out of memory");
			goto fail;
		}

	v = pbi_json_get(&o, "rounds");
	if (v && v->type == PBJ_ARRAY && v->n_arr > 0) {
		c->rounds = malloc((size_t)v->n_arr * sizeof *c->rounds);
		if (!c->rounds) {
			snprintf(why, why_len, "out of memory");
			goto fail;
		}
		memcpy(c->rounds, v->arr, (size_t)v->n_arr * sizeof *v->arr);
		c->n_rounds = v->n_arr;
	} else if (v && v->type != PBJ_ARRAY && v->type != PBJ_NULL) {
		bad = 1;
	}
	if (bad) {
		snprintf(why, why_len, "a known key has a value of the wrong "
			 "type");
		goto fail;
	}

	if (!c->method) {
		if (c->kind == PB_CELL_DENSE || c->kind == PB_CELL_DENSE_FT) {
			c->method = strdup(c->kind == PB_CELL_DENSE ?
					   "dense" : "dense+ft");
			if (!c->method) {
				snprintf(why, why_len, "out of memory");
				goto fail;
			}
		} else {
			snprintf(why, why_len, "\"method\" missing");
			goto fail;
		}
	}
	if ((c->kind == PB_CELL_PRUNE || c->kind == PB_CELL_SCRATCH) &&
	    !c->target) {
		snprintf(why, why_len, "\"target\" missing");
		goto fail;
	}
	pbi_json_object_free(&o);
	return 0;
fail:
	pbi_json_object_free(&o);
	pb_cell_clear(c);
	return -1;
}

int pb_cells_read(const char *path, pb_cell **cells, int *n_cells, int *n_bad,
		  FILE *warn, pb_error *err)
{
	FILE *f = fopen(path, "rb");
	char *line = NULL, why[256];
	size_t cap = 0;
	ssize_t len;
	pb_cell *a = NULL;
	int n = 0, acap = 0, bad = 0, lineno = 0;

	*cells = NULL;
	*n_cells = 0;
	if (n_bad)
		*n_bad = 0;
	if (!f)
		return pb_error_set(err, PB_EIO, "%s: %s; run the experiment "
				    "first (prunebench run FILE.ini)", path,
				    strerror(errno));
	while ((len = getline(&line, &cap, f)) != -1) {
		pb_cell c;
		size_t k = (size_t)len;
		lineno++;
		while (k && (line[k - 1] == '\n' || line[k - 1] == '\r' ||
			     line[k - 1] == ' ' || line[k - 1] == '\t'))
			k--;
		if (k == 0)
			continue;
		if (pb_cell_parse(line, k, &c, why, sizeof why)) {
			bad++;
			if (warn)
				fprintf(warn, "%s:%d: warning: line skipped: "
					"%s\n", path, lineno, why);
			continue;
		}
		c.line = lineno;
		if (n == acap) {
			int nc = acap ? 2 * acap : 64;
			pb_cell *na = realloc(a, (size_t)nc * sizeof *na);
			if (!na) {
				pb_cell_clear(&c);
				pb_cells_free(a, n);
				free(line);
				fclose(f);
				return pb_error_set(err, PB_ENOMEM, "%s: out "
						    "of memory", path);
			}
			a = na;
			acap = nc;
		}
		a[n++] = c;
	}
	if (ferror(f)) {
		int e = errno;
		pb_cells_free(a, n);
		free(line);
		fclose(f);
		return pb_error_set(err, PB_EIO, "%s: read error: %s", path,
				    strerror(e));
	}
	free(line);
	fclose(f);
	*cells = a;
	*n_cells = n;
	if (n_bad)
		*n_bad = bad;
	return 0;
}
