/* Records -> table rows: grouping, ordering and the statistics over
 * seeds. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "prunebench/table.h"

/* Welch's test level for the "differs from the best" marker. */
#define PB_TABLE_ALPHA 0.05

static int str_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return !strcmp(a, b);
}

static int str_cmp(const char *a, const char *b)
{
	if (!a || !b)
		return (a != NULL) - (b != NULL);
	return strcmp(a, b);
}

static int is_control(pb_cell_kind k)
{
	return k == PB_CELL_DENSE || k == PB_CELL_DENSE_FT;
}

/* Same row: controls by kind alone; others by kind, method and target. */
static int same_row(const pb_record *a, const pb_record *b)
{
	if (a->kind != b->kind)
		return 0;
	if (is_control(a->kind))
		return 1;
	return str_eq(a->method, b->method) && str_eq(a->target, b->target);
}

typedef struct group {
	const pb_record *first;
	int *idx;
	int n;
} group;

static int group_cmp(const void *pa, const void *pb)
{
	const pb_record *a = ((const group *)pa)->first;
	const pb_record *b = ((const group *)pb)->first;
	int c;

	if (is_control(a->kind) || is_control(b->kind)) {
		int ra = is_control(a->kind) ? (int)a->kind : 9;
		int rb = is_control(b->kind) ? (int)b->kind : 9;
		return (ra > rb) - (ra < rb);
	}
	if ((c = str_cmp(a->target_kind, b->target_kind)))
		return c;
	if (!isnan(a->target_amount) && !isnan(b->target_amount) &&
	    a->target_amount != b->target_amount)
		return a->target_amount < b->target_amount ? -1 : 1;
	if ((c = str_cmp(a->target, b->target)))
		return c;
	if ((c = str_cmp(a->method, b->method)))
		return c;
	return ((int)a->kind > (int)b->kind) - ((int)a->kind < (int)b->kind);
}

static void stat_of(const pb_record *cells, const int *idx, int n,
		    double (*get)(const pb_record *), double *buf, pb_stat *out)
{
	int k = 0;
	for (int i = 0; i < n; i++)
		if (cells[idx[i]].status == PB_CELL_OK)
			buf[k++] = get(&cells[idx[i]]);
	pb_stat_compute(buf, k, out);
}

static double ratio_pct(double a, double b)
{
	return (isfinite(a) && isfinite(b) && b > 0) ? 100.0 * a / b : NAN;
}

static double g_amount(const pb_record *c) { return c->target_amount; }
static double g_reached(const pb_record *c) { return c->reached; }
static double g_before(const pb_record *c) { return 100.0 * c->acc_before; }
static double g_after(const pb_record *c) { return 100.0 * c->acc_after; }
static double g_val(const pb_record *c) { return 100.0 * c->val_after; }
static double g_params(const pb_record *c)
{
	double dense = isfinite(c->params_dense) ? c->params_dense : c->params;
	double kept = isfinite(c->nonzero) ? c->nonzero : c->params;
	return ratio_pct(kept, dense);
}
static double g_macs(const pb_record *c)
{
	double dense = isfinite(c->macs_dense) ? c->macs_dense : c->macs;
	return ratio_pct(c->macs, dense);
}
static double g_macs_eff(const pb_record *c)
{
	double dense = isfinite(c->macs_dense) ? c->macs_dense : c->macs;
	return ratio_pct(c->macs_effective, dense);
}
static double g_sz_d(const pb_record *c) { return c->size_dense_mib; }
static double g_sz_s(const pb_record *c) { return c->size_sparse_mib; }
static double g_sz_c(const pb_record *c) { return c->size_compressed_mib; }
static double g_lat1(const pb_record *c) { return c->latency_b1_ms; }
static double g_lat128(const pb_record *c) { return c->latency_b128_ms; }
static double g_sp1(const pb_record *c) { return c->speedup_b1; }
static double g_sp128(const pb_record *c) { return c->speedup_b128; }
static double g_lats1(const pb_record *c) { return c->latency_sparse_b1_ms; }
static double g_lats128(const pb_record *c)
{
	return c->latency_sparse_b128_ms;
}
static double g_sps1(const pb_record *c) { return c->speedup_sparse_b1; }
static double g_sps128(const pb_record *c) { return c->speedup_sparse_b128; }
static double g_tp(const pb_record *c) { return c->time_prune_s; }
static double g_tf(const pb_record *c) { return c->time_finetune_s; }
static double g_tt(const pb_record *c) { return c->time_total_s; }
static double g_int8(const pb_record *c) { return 100.0 * c->acc_int8; }
static double g_sz_8(const pb_record *c) { return c->size_int8_mib; }
static double g_sz_8z(const pb_record *c) { return c->size_int8_zlib_mib; }

static int fill_row(pb_table_row *r, const pb_record *cells, const group *g,
		    double *buf)
{
	const pb_record *c0 = g->first;
	const char *label;
	int max_rounds = 0;

	r->kind = c0->kind;
	switch (c0->kind) {
	case PB_CELL_DENSE: label = "dense"; break;
	case PB_CELL_DENSE_FT: label = "dense + fine-tune"; break;
	default: label = c0->label ? c0->label : c0->method; break;
	}
	r->at_init = c0->at_init;
	if (c0->kind == PB_CELL_SCRATCH || c0->kind == PB_CELL_SCRATCH_B ||
	    c0->kind == PB_CELL_MATCHED || c0->at_init) {
		/* A row pruned at initialisation says so in its label, so it
		 * is not read as one more fine-tuned row. */
		const char *what = c0->kind == PB_CELL_SCRATCH ?
				   (c0->at_init ? " (at init, scratch-E)" :
				    " (scratch-E)") :
				   c0->kind == PB_CELL_SCRATCH_B ?
				   (c0->at_init ? " (at init, scratch-B)" :
				    " (scratch-B)") :
				   c0->kind == PB_CELL_MATCHED ?
				   " (dense, same training)" : " (at init)";
		size_t n = strlen(label) + strlen(what) + 1;
		r->label = malloc(n);
		if (r->label)
			snprintf(r->label, n, "%s%s", label, what);
	} else {
		r->label = strdup(label);
	}
	r->method = strdup(c0->method);
	r->target = c0->target && !is_control(c0->kind) ? strdup(c0->target)
							: NULL;
	if (!r->label || !r->method ||
	    (c0->target && !is_control(c0->kind) && !r->target))
		return PB_ENOMEM;

	r->n_cells = g->n;
	for (int i = 0; i < g->n; i++) {
		const pb_record *c = &cells[g->idx[i]];
		if (c->status == PB_CELL_OK) {
			r->n_ok++;
			r->int8_weights_only |= c->quantize &&
				!strcmp(c->quantize, "int8-weights");
			r->n_off_target += c->warning != NULL;
			if (c->n_rounds > max_rounds)
				max_rounds = c->n_rounds;
		} else if (c->status == PB_CELL_DIVERGED) {
			r->n_diverged++;
		} else if (c->status == PB_CELL_CRASHED) {
			r->n_crashed++;
		} else {
			r->n_failed++;
		}
	}
#define ST(field, fn) stat_of(cells, g->idx, g->n, fn, buf, &r->field)
	ST(target_amount, g_amount);
	ST(reached, g_reached);
	ST(acc_before, g_before);
	ST(acc_after, g_after);
	ST(val_after, g_val);
	ST(params_kept, g_params);
	ST(macs_kept, g_macs);
	ST(macs_eff_kept, g_macs_eff);
	ST(size_dense, g_sz_d);
	ST(size_sparse, g_sz_s);
	ST(size_compressed, g_sz_c);
	ST(latency_b1, g_lat1);
	ST(latency_b128, g_lat128);
	ST(speedup_b1, g_sp1);
	ST(speedup_b128, g_sp128);
	ST(latency_sparse_b1, g_lats1);
	ST(latency_sparse_b128, g_lats128);
	ST(speedup_sparse_b1, g_sps1);
	ST(speedup_sparse_b128, g_sps128);
	ST(time_prune, g_tp);
	ST(time_finetune, g_tf);
	ST(time_total, g_tt);
	ST(acc_int8, g_int8);
	ST(size_int8, g_sz_8);
	ST(size_int8_zlib, g_sz_8z);
#undef ST
	if (max_rounds > 0) {
		r->rounds = malloc((size_t)max_rounds * sizeof *r->rounds);
		if (!r->rounds)
			return PB_ENOMEM;
		r->n_rounds = max_rounds;
		for (int k = 0; k < max_rounds; k++) {
			int m = 0;
			pb_stat s;
			for (int i = 0; i < g->n; i++) {
				const pb_record *c = &cells[g->idx[i]];
				if (c->status == PB_CELL_OK &&
				    c->n_rounds > k)
					buf[m++] = c->rounds[k];
			}
			pb_stat_compute(buf, m, &s);
			r->rounds[k] = s.mean;
		}
	}
	r->delta_after = NAN;
	r->p_vs_best = NAN;
	return 0;
}

/* Whether row r is in the running for its target's best: a pruned
 * model's row with top-1 after fine-tune. A "dense, same training"
 * control is the unpruned model, which would otherwise be the best at
 * every target and turn the marker into "below the dense model" for
 * every method (it was, until 2026-12-03); those rows are neither the
 * best nor marked. */
static int competes(const pb_table_row *r)
{
	return r->target && r->acc_after.n > 0 && r->kind != PB_CELL_MATCHED;
}

/* Marks, per target, the best row (highest mean top-1 after fine-tune)
 * and the rows that differ from it by Welch's test. */
static void mark_best(pb_table *t)
{
	for (int i = 0; i < t->n_rows; i++) {
		pb_table_row *r = &t->rows[i];
		int best = -1;

		if (!competes(r))
			continue;
		for (int j = 0; j < t->n_rows; j++) {
			pb_table_row *q = &t->rows[j];
			if (!competes(q) || strcmp(q->target, r->target))
				continue;
			if (best < 0 || q->acc_after.mean >
					t->rows[best].acc_after.mean)
				best = j;
		}
		if (best == i) {
			r->is_best = 1;
			continue;
		}
		r->p_vs_best = pb_welch_p(&r->acc_after,
					  &t->rows[best].acc_after);
		r->differs = !isnan(r->p_vs_best) &&
			     r->p_vs_best < PB_TABLE_ALPHA;
	}
}

void pb_table_free(pb_table *t)
{
	if (!t)
		return;
	for (int i = 0; i < t->n_rows; i++) {
		free(t->rows[i].label);
		free(t->rows[i].method);
		free(t->rows[i].target);
		free(t->rows[i].rounds);
	}
	free(t->rows);
	memset(t, 0, sizeof *t);
}

/* The matched-budget control carried by pruned cell p, as a record of
 * its own: same method, target and seed; dense shapes; its accuracies.
 * Its strings are p's (shallow copy). */
static pb_record matched_of(const pb_record *p)
{
	pb_record c = *p;

	c.kind = PB_CELL_MATCHED;
	c.status = p->matched_error ? PB_CELL_FAILED : PB_CELL_OK;
	c.error = p->matched_error;
	c.rounds = NULL;
	c.n_rounds = 0;
	c.reached = c.acc_before = NAN;
	c.acc_after = p->matched_top1;
	c.val_after = p->matched_val;
	c.params = c.nonzero = c.params_dense = p->params_dense;
	c.macs = c.macs_effective = c.macs_dense = p->macs_dense;
	c.size_dense_mib = c.size_sparse_mib = c.size_compressed_mib = NAN;
	c.size_int8_mib = c.size_int8_zlib_mib = c.acc_int8 = NAN;
	c.quantize = NULL;
	c.latency_b1_ms = c.latency_b128_ms = NAN;
	c.speedup_b1 = c.speedup_b128 = NAN;
	c.latency_sparse_b1_ms = c.latency_sparse_b128_ms = NAN;
	c.speedup_sparse_b1 = c.speedup_sparse_b128 = NAN;
	c.time_prune_s = NAN;
	c.time_finetune_s = c.time_total_s = p->matched_time_s;
	c.has_matched = 0;
	c.matched_top1 = c.matched_val = c.matched_epochs = NAN;
	c.matched_time_s = NAN;
	return c;
}

static int build(const pb_record *cells, int n_cells, pb_table *t,
		 pb_error *err);

int pb_table_build(const pb_record *recs, int n_recs, pb_table *t,
		   pb_error *err)
{
	pb_record *all;
	int n = 0, rc;

	memset(t, 0, sizeof *t);
	all = malloc(sizeof *all * (2 * (size_t)n_recs + 1));
	if (!all)
		return pb_error_set(err, PB_ENOMEM, "building the table: out "
				    "of memory");
	for (int i = 0; i < n_recs; i++) {
		all[n++] = recs[i];
		if (recs[i].kind == PB_CELL_PRUNE && recs[i].has_matched)
			all[n++] = matched_of(&recs[i]);
	}
	rc = build(all, n, t, err);
	free(all);
	return rc;
}

static int build(const pb_record *cells, int n_cells, pb_table *t,
		 pb_error *err)
{
	group *groups = NULL;
	int *keep = NULL, *idx = NULL, n_groups = 0, rc = 0;
	double *buf = NULL;
	const pb_table_row *dense = NULL;

	memset(t, 0, sizeof *t);
	t->n_cells = n_cells;
	if (n_cells == 0)
		return 0;
	keep = calloc((size_t)n_cells, sizeof *keep);
	idx = malloc((size_t)n_cells * sizeof *idx);
	groups = calloc((size_t)n_cells, sizeof *groups);
	buf = malloc((size_t)n_cells * sizeof *buf);
	if (!keep || !idx || !groups || !buf) {
		rc = pb_error_set(err, PB_ENOMEM, "building the table: out of "
				  "memory");
		goto out;
	}
	/* A later line for the same kind, method, target and seed replaces
	 * an earlier one: the definition changed and the cell ran again. */
	for (int i = 0; i < n_cells; i++) {
		keep[i] = 1;
		for (int j = i + 1; j < n_cells; j++)
			if (same_row(&cells[i], &cells[j]) &&
			    cells[i].seed == cells[j].seed) {
				keep[i] = 0;
				t->n_superseded++;
				break;
			}
	}
	/* Per seed, every kept cell must come from one dense model. */
	for (int i = 0; i < n_cells; i++) {
		int first = 1, mixed = 0;

		if (!keep[i] || !cells[i].dense_fingerprint)
			continue;
		for (int j = 0; j < i && first; j++)
			if (keep[j] && cells[j].dense_fingerprint &&
			    cells[j].seed == cells[i].seed)
				first = 0;
		for (int j = i + 1; first && j < n_cells && !mixed; j++)
			mixed = keep[j] && cells[j].dense_fingerprint &&
				cells[j].seed == cells[i].seed &&
				strcmp(cells[j].dense_fingerprint,
				       cells[i].dense_fingerprint);
		t->n_mixed_dense += first && mixed;
	}
	/* Which arithmetic made the kept cells. */
	for (int i = 0; i < n_cells; i++) {
		const int v = cells[i].numerics;

		if (!keep[i] || v <= 0)
			continue;
		if (!t->numerics_lo || v < t->numerics_lo)
			t->numerics_lo = v;
		if (v > t->numerics_hi)
			t->numerics_hi = v;
	}
	/* Groups own consecutive slices of idx, filled group by group. */
	{
		int used = 0;
		for (int i = 0; i < n_cells; i++) {
			int found = 0;
			if (!keep[i])
				continue;
			for (int g = 0; g < n_groups; g++)
				if (same_row(groups[g].first, &cells[i]))
					found = 1;
			if (found)
				continue;
			groups[n_groups].first = &cells[i];
			groups[n_groups].idx = idx + used;
			for (int j = i; j < n_cells; j++)
				if (keep[j] && same_row(&cells[i], &cells[j]))
					groups[n_groups].idx[groups[n_groups]
							     .n++] = j;
			used += groups[n_groups].n;
			n_groups++;
		}
	}
	qsort(groups, (size_t)n_groups, sizeof *groups, group_cmp);

	t->rows = calloc((size_t)n_groups, sizeof *t->rows);
	if (!t->rows) {
		rc = pb_error_set(err, PB_ENOMEM, "building the table: out of "
				  "memory");
		goto out;
	}
	for (int g = 0; g < n_groups; g++) {
		t->n_rows++;
		if (fill_row(&t->rows[g], cells, &groups[g], buf)) {
			rc = pb_error_set(err, PB_ENOMEM, "building the "
					  "table: out of memory");
			goto out;
		}
		if (t->rows[g].kind == PB_CELL_DENSE)
			dense = &t->rows[g];
	}
	if (dense && dense->acc_after.n > 0)
		for (int g = 0; g < t->n_rows; g++)
			if (t->rows[g].acc_after.n > 0)
				t->rows[g].delta_after =
					t->rows[g].acc_after.mean -
					dense->acc_after.mean;
	mark_best(t);
out:
	if (rc)
		pb_table_free(t);
	free(keep);
	free(idx);
	free(groups);
	free(buf);
	return rc;
}
