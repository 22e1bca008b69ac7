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
	free(c->matched_error);
	free(c->dense_fingerprint);
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
		N(prune_epochs), N(matched_top1), N(matched_val),
		N(matched_epochs), N(matched_time_s),
#undef N
	};
	static const struct {
		const char *key;
		size_t off;
	} strs[] = {
#define S(k) { #k, offsetof(pb_cell, k) }
		S(id), S(experiment), S(method), S(plugin), S(granularity),
		S(target), S(target_kind), S(scope), S(schedule), S(error),
		S(matched_error), S(dense_fingerprint),
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

static int copy_str(char **dst, const char *src)
{
	*dst = src ? strdup(src) : NULL;
	return src && !*dst ? -1 : 0;
}

/* The matched-budget control carried by pruned cell p, as a cell of its
 * own: same method, target and seed; dense shapes; its accuracies. */
static int derive_matched(const pb_cell *p, pb_cell *c)
{
	memset(c, 0, sizeof *c);
	if (copy_str(&c->id, p->id) || copy_str(&c->experiment, p->experiment) ||
	    copy_str(&c->method, p->method) || copy_str(&c->plugin, p->plugin) ||
	    copy_str(&c->granularity, p->granularity) ||
	    copy_str(&c->target, p->target) ||
	    copy_str(&c->target_kind, p->target_kind) ||
	    copy_str(&c->scope, p->scope) ||
	    copy_str(&c->schedule, p->schedule) ||
	    copy_str(&c->error, p->matched_error) ||
	    copy_str(&c->dense_fingerprint, p->dense_fingerprint)) {
		pb_cell_clear(c);
		return -1;
	}
	c->kind = PB_CELL_MATCHED;
	c->status = p->matched_error ? PB_CELL_FAILED : PB_CELL_OK;
	c->seed = p->seed;
	c->target_amount = p->target_amount;
	c->reached = c->acc_before = NAN;
	c->acc_after = p->matched_top1;
	c->val_after = p->matched_val;
	c->params = c->nonzero = c->params_dense = p->params_dense;
	c->macs = c->macs_effective = c->macs_dense = p->macs_dense;
	c->size_dense_mib = c->size_sparse_mib = NAN;
	c->size_compressed_mib = NAN;
	c->latency_b1_ms = c->latency_b128_ms = NAN;
	c->speedup_b1 = c->speedup_b128 = NAN;
	c->time_prune_s = NAN;
	c->time_finetune_s = c->time_total_s = p->matched_time_s;
	c->prune_epochs = p->prune_epochs;
	c->matched_top1 = c->matched_val = c->matched_epochs = NAN;
	c->matched_time_s = NAN;
	c->line = p->line;
	return 0;
}

static int push(pb_cell **a, int *n, int *cap, pb_cell *c)
{
	if (*n == *cap) {
		int nc = *cap ? 2 * *cap : 64;
		pb_cell *na = realloc(*a, (size_t)nc * sizeof *na);
		if (!na)
			return -1;
		*a = na;
		*cap = nc;
	}
	(*a)[(*n)++] = *c;
	return 0;
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
		if (push(&a, &n, &acap, &c)) {
			pb_cell_clear(&c);
			goto oom;
		}
		if (c.kind == PB_CELL_PRUNE && (isfinite(c.matched_top1) ||
						c.matched_error)) {
			pb_cell m;

			if (derive_matched(&a[n - 1], &m))
				goto oom;
			if (push(&a, &n, &acap, &m)) {
				pb_cell_clear(&m);
				goto oom;
			}
		}
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
oom:
	pb_cells_free(a, n);
	free(line);
	fclose(f);
	return pb_error_set(err, PB_ENOMEM, "%s: out of memory", path);
}
