/* runs.jsonl: the one place that knows its keys. A record is formatted
 * and parsed from the same two tables below, so a key added to one is
 * added to both. */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/json_read.h"
#include "base/json_write.h"
#include "prunebench/record.h"

static const char *const kind_names[] = {
	[PB_CELL_DENSE] = "dense",
	[PB_CELL_DENSE_FT] = "dense_ft",
	[PB_CELL_PRUNE] = "prune",
	[PB_CELL_SCRATCH] = "scratch",
	[PB_CELL_SCRATCH_B] = "scratch_b",
	[PB_CELL_MATCHED] = "matched",
};

static const char *const status_names[] = {
	[PB_CELL_OK] = "ok",
	[PB_CELL_DIVERGED] = "diverged",
	[PB_CELL_FAILED] = "failed",
	[PB_CELL_CRASHED] = "crashed",
};

const char *pb_cell_kind_name(pb_cell_kind k)
{
	return (unsigned)k < sizeof kind_names / sizeof kind_names[0] ?
	       kind_names[k] : "?";
}

const char *pb_cell_status_name(pb_cell_status s)
{
	return (unsigned)s < sizeof status_names / sizeof status_names[0] ?
	       status_names[s] : "?";
}

/* The string and number keys, in the order they are written. The
 * identity keys (id ... schedule) come first, then rounds and seed, then
 * the provenance, status and results; prune_epochs and the matched_*
 * keys are written only where they apply. */
#define STR(k) { #k, offsetof(pb_record, k) }
#define NUM(k) { #k, offsetof(pb_record, k) }

typedef struct key_off {
	const char *key;
	size_t off;
} key_off;

static const key_off ident_strs[] = {
	STR(id), STR(experiment),
};
static const key_off method_strs[] = {
	STR(method), STR(plugin), STR(granularity), STR(target),
	STR(target_kind),
};
static const key_off result_nums[] = {
	NUM(acc_before), NUM(acc_after), NUM(val_after), NUM(params),
	NUM(params_dense), NUM(nonzero), NUM(macs), NUM(macs_dense),
	NUM(macs_effective), NUM(size_dense_mib), NUM(size_sparse_mib),
	NUM(size_compressed_mib), NUM(size_int8_mib), NUM(size_int8_zlib_mib),
	NUM(latency_b1_ms), NUM(latency_b128_ms),
	NUM(speedup_b1), NUM(speedup_b128), NUM(latency_sparse_b1_ms),
	NUM(latency_sparse_b128_ms), NUM(speedup_sparse_b1),
	NUM(speedup_sparse_b128), NUM(time_prune_s), NUM(time_finetune_s),
	NUM(time_total_s),
};
static const key_off matched_nums[] = {
	NUM(matched_top1), NUM(matched_val), NUM(matched_epochs),
	NUM(matched_time_s),
};
/* Read from every line, whatever its kind. */
static const key_off all_strs[] = {
	STR(id), STR(experiment), STR(method), STR(label), STR(plugin),
	STR(granularity), STR(target), STR(target_kind), STR(scope),
	STR(schedule), STR(error),
	STR(warning), STR(dense_fingerprint), STR(blas), STR(host),
	STR(matched_error), STR(curve),
	STR(finished), STR(quantize),
};
static const key_off all_nums[] = {
	NUM(target_amount), NUM(reached), NUM(acc_before), NUM(acc_after),
	NUM(val_after), NUM(params), NUM(params_dense), NUM(nonzero),
	NUM(macs), NUM(macs_dense), NUM(macs_effective), NUM(size_dense_mib),
	NUM(size_sparse_mib), NUM(size_compressed_mib), NUM(latency_b1_ms),
	NUM(latency_b128_ms), NUM(speedup_b1), NUM(speedup_b128),
	NUM(latency_sparse_b1_ms), NUM(latency_sparse_b128_ms),
	NUM(speedup_sparse_b1), NUM(speedup_sparse_b128), NUM(time_prune_s), NUM(time_finetune_s), NUM(time_total_s),
	NUM(prune_epochs), NUM(scratch_epochs), NUM(matched_top1),
	NUM(matched_val), NUM(matched_epochs), NUM(matched_time_s),
	NUM(size_int8_mib), NUM(size_int8_zlib_mib), NUM(acc_int8),
};
#undef STR
#undef NUM

#define N_OF(a) (sizeof (a) / sizeof (a)[0])
#define STR_AT(r, o) (*(char **)((char *)(r) + (o)))
#define NUM_AT(r, o) (*(double *)((char *)(r) + (o)))

void pb_record_init(pb_record *r)
{
	memset(r, 0, sizeof *r);
	r->schema = PB_RECORD_SCHEMA;
	for (size_t i = 0; i < N_OF(all_nums); i++)
		NUM_AT(r, all_nums[i].off) = NAN;
}

void pb_record_clear(pb_record *r)
{
	for (size_t i = 0; i < N_OF(all_strs); i++)
		free(STR_AT(r, all_strs[i].off));
	free(r->rounds);
	memset(r, 0, sizeof *r);
}

int pb_record_set(char **field, const char *value)
{
	char *c = value ? strdup(value) : NULL;

	if (value && !c)
		return PB_ENOMEM;
	free(*field);
	*field = c;
	return 0;
}

/* ---- writing ------------------------------------------------------------- */

static void put_strs(pbi_jw *j, const pb_record *r, const key_off *k,
		     size_t n)
{
	for (size_t i = 0; i < n; i++)
		pbi_jw_str(j, k[i].key, STR_AT(r, k[i].off));
}

static void put_nums(pbi_jw *j, const pb_record *r, const key_off *k,
		     size_t n)
{
	for (size_t i = 0; i < n; i++)
		pbi_jw_num(j, k[i].key, NUM_AT(r, k[i].off));
}

/* What pb_record_parse would refuse, refused before it is written. */
static const char *unreadable(const pb_record *r)
{
	if (!r->id || !r->id[0])
		return "it has no id";
	if ((unsigned)r->kind >= PB_CELL_MATCHED)
		return "its kind cannot be a line";
	if ((unsigned)r->status >= N_OF(status_names))
		return "its status is unknown";
	if ((r->kind == PB_CELL_PRUNE || r->kind == PB_CELL_SCRATCH ||
	     r->kind == PB_CELL_SCRATCH_B) && (!r->method || !r->target))
		return "a pruned cell needs its method and target";
	return NULL;
}

int pb_record_format(const pb_record *r, char **line, size_t *len,
		     pb_error *err)
{
	const char *why = unreadable(r);
	pbi_jw j;
	int rc;

	*line = NULL;
	*len = 0;
	if (why)
		return pb_error_set(err, PB_EINVAL, "cannot record cell '%s': "
				    "%s", r->id ? r->id : "?", why);
	pbi_jw_begin(&j);
	pbi_jw_int(&j, "schema", PB_RECORD_SCHEMA);
	put_strs(&j, r, ident_strs, N_OF(ident_strs));
	pbi_jw_str(&j, "kind", pb_cell_kind_name(r->kind));
	put_strs(&j, r, method_strs, N_OF(method_strs));
	if (r->label)
		pbi_jw_str(&j, "label", r->label);
	pbi_jw_num(&j, "target_amount", r->target_amount);
	pbi_jw_num(&j, "reached", r->reached);
	pbi_jw_str(&j, "scope", r->scope);
	pbi_jw_str(&j, "schedule", r->schedule);
	pbi_jw_nums(&j, "rounds", r->n_rounds ? r->rounds : NULL,
		    r->n_rounds);
	pbi_jw_int(&j, "seed", r->seed);
	if (r->dense_fingerprint)
		pbi_jw_str(&j, "dense_fingerprint", r->dense_fingerprint);
	pbi_jw_int(&j, "threads", r->threads);
	if (r->numerics)
		pbi_jw_int(&j, "numerics", r->numerics);
	pbi_jw_str(&j, "blas", r->blas);
	if (r->host)
		pbi_jw_str(&j, "host", r->host);
	pbi_jw_str(&j, "status", pb_cell_status_name(r->status));
	pbi_jw_str(&j, "error", r->status == PB_CELL_OK ? NULL : r->error);
	if (r->warning)
		pbi_jw_str(&j, "warning", r->warning);
	put_nums(&j, r, result_nums, N_OF(result_nums));
	if (r->quantize) {
		pbi_jw_str(&j, "quantize", r->quantize);
		pbi_jw_num(&j, "acc_int8", r->acc_int8);
	}
	if (r->kind == PB_CELL_PRUNE)
		pbi_jw_num(&j, "prune_epochs", r->prune_epochs);
	if (r->at_init)
		pbi_jw_bool(&j, "at_init", 1);
	if (r->kind == PB_CELL_SCRATCH || r->kind == PB_CELL_SCRATCH_B ||
	    r->at_init)
		pbi_jw_num(&j, "scratch_epochs", r->scratch_epochs);
	if (r->has_matched) {
		put_nums(&j, r, matched_nums, N_OF(matched_nums));
		pbi_jw_str(&j, "matched_error", r->matched_error);
	}
	pbi_jw_str(&j, "curve", r->curve);
	pbi_jw_str(&j, "finished", r->finished);
	if ((rc = pbi_jw_end(&j, err))) {
		pbi_jw_free(&j);
		return rc;
	}
	*line = j.buf;
	*len = j.len;
	return 0;
}

int pb_record_append(const char *path, const pb_record *r, pb_error *err)
{
	char *line;
	size_t len;
	int rc;

	if ((rc = pb_record_format(r, &line, &len, err)))
		return rc;
	rc = pbi_append_line(path, line, len, err);
	free(line);
	return rc;
}

/* ---- reading ------------------------------------------------------------- */

static int enum_of(const char *s, const char *const *names, int n)
{
	for (int i = 0; s && i < n; i++)
		if (names[i] && !strcmp(s, names[i]))
			return i;
	return -1;
}

/* The line's schema: "schema": N, or schema 1's "v": 1. */
static int schema_of(const pbj_object *o, pb_record *r, char *why,
		     size_t why_len)
{
	int bad = 0;
	double d = pbi_json_num(o, "schema", &bad);

	if (bad || isnan(d)) {
		bad = 0;
		d = pbi_json_num(o, "v", &bad);
		if (bad || d != 1) {
			snprintf(why, why_len, "no \"schema\" version: not a "
				 "runs.jsonl line");
			return -1;
		}
	}
	if (d != floor(d) || d < 1) {
		snprintf(why, why_len, "schema %g is not a version", d);
		return -1;
	}
	if (d > PB_RECORD_SCHEMA) {
		snprintf(why, why_len, "written with schema %g by a newer "
			 "prunebench; this one reads schemas 1 to %d: "
			 "upgrade prunebench", d, PB_RECORD_SCHEMA);
		return -1;
	}
	r->schema = (int)d;
	return 0;
}

int pb_record_parse(const char *line, size_t len, pb_record *r, char *why,
		    size_t why_len)
{
	pbj_object o;
	const pbj_value *v;
	int bad = 0, k;
	double d;

	pb_record_init(r);
	if (pbi_json_parse_object(line, len, &o, why, why_len))
		return -1;
	if (schema_of(&o, r, why, why_len))
		goto fail;
	k = enum_of(pbi_json_str(&o, "kind", &bad), kind_names,
		    PB_CELL_MATCHED);
	if (k < 0) {
		snprintf(why, why_len, "\"kind\" missing or not one of dense, "
			 "dense_ft, prune, scratch, scratch_b");
		goto fail;
	}
	r->kind = (pb_cell_kind)k;
	k = enum_of(pbi_json_str(&o, "status", &bad), status_names,
		    (int)N_OF(status_names));
	if (k < 0) {
		snprintf(why, why_len, "\"status\" missing or not one of ok, "
			 "diverged, failed, crashed");
		goto fail;
	}
	r->status = (pb_cell_status)k;
	d = pbi_json_num(&o, "seed", &bad);
	if (isnan(d) || d != floor(d) || d < 0 || d > 4294967295.0) {
		snprintf(why, why_len, "\"seed\" missing or not a seed");
		goto fail;
	}
	r->seed = (long)d;
	d = pbi_json_num(&o, "threads", &bad);
	r->threads = isfinite(d) && d >= 0 && d <= 4096 ? (int)d : 0;
	d = pbi_json_num(&o, "numerics", &bad);
	r->numerics = isfinite(d) && d >= 1 && d <= 1e6 && d == floor(d) ?
		      (int)d : 0;

	for (size_t i = 0; i < N_OF(all_nums); i++)
		NUM_AT(r, all_nums[i].off) = pbi_json_num(&o, all_nums[i].key,
							  &bad);
	for (size_t i = 0; i < N_OF(all_strs); i++) {
		const char *s = pbi_json_str(&o, all_strs[i].key, &bad);

		if (s && !(STR_AT(r, all_strs[i].off) = strdup(s))) {
			snprintf(why, why_len, "out of memory");
			goto fail;
		}
	}
	r->has_matched = isfinite(r->matched_top1) || r->matched_error;
	v = pbi_json_get(&o, "at_init");
	if (v && v->type == PBJ_BOOL)
		r->at_init = v->boolean;
	else if (v && v->type != PBJ_NULL)
		bad = 1;

	v = pbi_json_get(&o, "rounds");
	if (v && v->type == PBJ_ARRAY && v->n_arr > 0) {
		r->rounds = malloc((size_t)v->n_arr * sizeof *r->rounds);
		if (!r->rounds) {
			snprintf(why, why_len, "out of memory");
			goto fail;
		}
		memcpy(r->rounds, v->arr, (size_t)v->n_arr * sizeof *v->arr);
		r->n_rounds = v->n_arr;
	} else if (v && v->type != PBJ_ARRAY && v->type != PBJ_NULL) {
		bad = 1;
	}
	if (bad) {
		snprintf(why, why_len, "a known key has a value of the wrong "
			 "type");
		goto fail;
	}
	if (!r->id || !r->id[0]) {
		snprintf(why, why_len, "\"id\" missing");
		goto fail;
	}
	if (!r->method && (r->kind == PB_CELL_DENSE ||
			   r->kind == PB_CELL_DENSE_FT) &&
	    pb_record_set(&r->method, r->kind == PB_CELL_DENSE ? "dense" :
			  "dense+ft")) {
		snprintf(why, why_len, "out of memory");
		goto fail;
	}
	if (!r->method) {
		snprintf(why, why_len, "\"method\" missing");
		goto fail;
	}
	if ((r->kind == PB_CELL_PRUNE || r->kind == PB_CELL_SCRATCH ||
	     r->kind == PB_CELL_SCRATCH_B) && !r->target) {
		snprintf(why, why_len, "\"target\" missing");
		goto fail;
	}
	pbi_json_object_free(&o);
	return 0;
fail:
	pbi_json_object_free(&o);
	pb_record_clear(r);
	return -1;
}

static int push(pb_record **a, int *n, int *cap, const pb_record *r)
{
	if (*n == *cap) {
		int nc = *cap ? 2 * *cap : 64;
		pb_record *na = realloc(*a, (size_t)nc * sizeof *na);

		if (!na)
			return -1;
		*a = na;
		*cap = nc;
	}
	(*a)[(*n)++] = *r;
	return 0;
}

void pb_records_free(pb_record *r, int n)
{
	for (int i = 0; r && i < n; i++)
		pb_record_clear(&r[i]);
	free(r);
}

int pb_records_read(const char *path, int missing_ok, pb_record **out,
		    int *n_out, int *n_bad, FILE *warn, pb_error *err)
{
	FILE *f = fopen(path, "rb");
	char *line = NULL, why[256];
	size_t cap = 0;
	ssize_t len;
	pb_record *a = NULL;
	int n = 0, acap = 0, bad = 0, lineno = 0, rc = 0;

	*out = NULL;
	*n_out = 0;
	if (n_bad)
		*n_bad = 0;
	if (!f) {
		if (missing_ok && errno == ENOENT)
			return 0;
		return pb_error_set(err, PB_EIO, "%s: %s; run the experiment "
				    "first (prunebench run FILE.ini)", path,
				    strerror(errno));
	}
	while ((len = getline(&line, &cap, f)) != -1) {
		pb_record r;
		size_t k = (size_t)len;

		lineno++;
		while (k && (line[k - 1] == '\n' || line[k - 1] == '\r' ||
			     line[k - 1] == ' ' || line[k - 1] == '\t'))
			k--;
		if (k == 0)
			continue;
		/* A last line without its newline was cut by a crash: the
		 * cell did not finish, whatever the bytes say. */
		if (line[len - 1] != '\n') {
			snprintf(why, sizeof why, "cut short (no newline at the "
				 "end of the file): the cell did not finish");
		} else if (!pb_record_parse(line, k, &r, why, sizeof why)) {
			r.line = lineno;
			if (push(&a, &n, &acap, &r)) {
				pb_record_clear(&r);
				rc = pb_error_set(err, PB_ENOMEM, "%s: out of "
						  "memory", path);
				break;
			}
			continue;
		}
		bad++;
		if (warn)
			fprintf(warn, "%s:%d: warning: line skipped: %s\n", path,
				lineno, why);
	}
	if (!rc && ferror(f))
		rc = pb_error_set(err, PB_EIO, "%s: read error: %s", path,
				  strerror(errno));
	free(line);
	fclose(f);
	if (rc) {
		pb_records_free(a, n);
		return rc;
	}
	*out = a;
	*n_out = n;
	if (n_bad)
		*n_bad = bad;
	return 0;
}
