/* Table rows -> table.csv: one line per row, every number in full
 * precision (%.10g), empty when not a number. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "prunebench/table.h"

static void csv_text(FILE *f, const char *s)
{
	if (!s)
		return;
	if (strpbrk(s, ",\"\n\r")) {
		fputc('"', f);
		for (; *s; s++) {
			if (*s == '"')
				fputc('"', f);
			fputc(*s, f);
		}
		fputc('"', f);
	} else {
		fputs(s, f);
	}
}

static void csv_num(FILE *f, double v)
{
	fputc(',', f);
	if (isfinite(v))
		fprintf(f, "%.10g", v);
}

static const char *kind_name(pb_cell_kind k)
{
	return pb_cell_kind_name(k);
}

int pb_table_write_csv(const pb_table *t, FILE *f)
{
	fputs("label,method,kind,target,target_amount,reached,n_cells,n_ok,"
	      "n_diverged,n_failed,n_crashed,acc_before_pct,acc_before_sd,"
	      "acc_before_ci95,acc_after_pct,acc_after_sd,acc_after_ci95,"
	      "val_after_pct,delta_after_pt,p_vs_best,differs,is_best,"
	      "params_kept_pct,macs_kept_pct,macs_effective_kept_pct,"
	      "size_dense_mib,size_sparse_mib,size_compressed_mib,"
	      "latency_b1_ms,latency_b128_ms,speedup_b1,speedup_b128,"
	      "latency_sparse_b1_ms,latency_sparse_b128_ms,speedup_sparse_b1,"
	      "speedup_sparse_b128,time_prune_s,time_finetune_s,time_total_s,"
	      "rounds,acc_int8_pct,acc_int8_sd,size_int8_mib,size_int8_zlib_mib\n",
	      f);
	for (int i = 0; i < t->n_rows; i++) {
		const pb_table_row *r = &t->rows[i];
		csv_text(f, r->label);
		fputc(',', f);
		csv_text(f, r->method);
		fprintf(f, ",%s,", kind_name(r->kind));
		csv_text(f, r->target);
		csv_num(f, r->target_amount.mean);
		csv_num(f, r->reached.mean);
		fprintf(f, ",%d,%d,%d,%d,%d", r->n_cells, r->n_ok,
			r->n_diverged, r->n_failed, r->n_crashed);
		csv_num(f, r->acc_before.mean);
		csv_num(f, r->acc_before.sd);
		csv_num(f, r->acc_before.ci95);
		csv_num(f, r->acc_after.mean);
		csv_num(f, r->acc_after.sd);
		csv_num(f, r->acc_after.ci95);
		csv_num(f, r->val_after.mean);
		csv_num(f, r->delta_after);
		csv_num(f, r->p_vs_best);
		fprintf(f, ",%d,%d", r->differs, r->is_best);
		csv_num(f, r->params_kept.mean);
		csv_num(f, r->macs_kept.mean);
		csv_num(f, r->macs_eff_kept.mean);
		csv_num(f, r->size_dense.mean);
		csv_num(f, r->size_sparse.mean);
		csv_num(f, r->size_compressed.mean);
		csv_num(f, r->latency_b1.mean);
		csv_num(f, r->latency_b128.mean);
		csv_num(f, r->speedup_b1.mean);
		csv_num(f, r->speedup_b128.mean);
		csv_num(f, r->latency_sparse_b1.mean);
		csv_num(f, r->latency_sparse_b128.mean);
		csv_num(f, r->speedup_sparse_b1.mean);
		csv_num(f, r->speedup_sparse_b128.mean);
		csv_num(f, r->time_prune.mean);
		csv_num(f, r->time_finetune.mean);
		csv_num(f, r->time_total.mean);
		fputc(',', f);
		for (int k = 0; k < r->n_rounds; k++)
			fprintf(f, "%s%.10g", k ? ";" : "", r->rounds[k]);
		csv_num(f, r->acc_int8.mean);
		csv_num(f, r->acc_int8.sd);
		csv_num(f, r->size_int8.mean);
		csv_num(f, r->size_int8_zlib.mean);
		fputc('\n', f);
	}
	return ferror(f) ? -1 : 0;
}
