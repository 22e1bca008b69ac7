/* Table rows -> table.md and table.tex, and the three table files of a
 * results folder written atomically (table.csv's writer is table_csv.c,
 * the plot data's table_plot.c). Markdown and LaTeX share one writer
 * that differs only in its punctuation. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "prunebench/table.h"

typedef struct style {
	int tex;
	const char *pm, *dash, *dagger, *times, *arrow;
} style;

static const style md_style = { 0, " ± ", "—", " †", "×", " → " };
static const style tex_style = { 1, " $\\pm$ ", "--", "$^\\dagger$",
				 "$\\times$", " $\\to$ " };

#define CELL_MAX 256

static void cat(char *buf, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void cat(char *buf, const char *fmt, ...)
{
	size_t n = strlen(buf);
	va_list ap;
	if (n >= CELL_MAX - 1)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + n, CELL_MAX - n, fmt, ap);
	va_end(ap);
}

/* Writes s with LaTeX's special characters escaped (tex) or '|' escaped
 * (Markdown). */
static void put_text(FILE *f, const style *st, const char *s)
{
	for (; *s; s++) {
		if (st->tex) {
			switch (*s) {
			case '&': case '%': case '$': case '#': case '_':
			case '{': case '}':
				fprintf(f, "\\%c", *s);
				continue;
			case '~': fputs("\\textasciitilde{}", f); continue;
			case '^': fputs("\\textasciicircum{}", f); continue;
			case '\\': fputs("\\textbackslash{}", f); continue;
			}
		} else if (*s == '|') {
			fputs("\\|", f);
			continue;
		}
		fputc(*s, f);
	}
}

static const char *no_value(const pb_table_row *r)
{
	if (r->n_ok > 0)
		return NULL;
	return r->n_diverged > 0 ? "diverged" : r->n_crashed > 0 ? "crashed" :
	       "failed";
}

static void fmt_stat(char *buf, const style *st, const pb_stat *s, int ci,
		     int decimals)
{
	buf[0] = '\0';
	if (s->n == 0) {
		cat(buf, "%s", st->dash);
		return;
	}
	cat(buf, "%.*f", decimals, s->mean);
	if (s->n >= 2)
		cat(buf, "%s%.*f", st->pm, decimals, ci ? s->ci95 : s->sd);
}

static void fmt_mean(char *buf, const style *st, const pb_stat *s,
		     int decimals)
{
	buf[0] = '\0';
	if (s->n == 0)
		cat(buf, "%s", st->dash);
	else
		cat(buf, "%.*f", decimals, s->mean);
}

/* Seconds: two decimals below 10 s (a magnitude prune takes 0.05 s). */
static void fmt_time(char *buf, const style *st, const pb_stat *s)
{
	if (!s->n)
		cat(buf, "%s", st->dash);
	else
		cat(buf, s->mean < 10 ? "%.2f" : "%.1f", s->mean);
}

static int any_rounds(const pb_table *t)
{
	for (int i = 0; i < t->n_rows; i++)
		if (t->rows[i].n_rounds > 0)
			return 1;
	return 0;
}

static int any_differs(const pb_table *t)
{
	for (int i = 0; i < t->n_rows; i++)
		if (t->rows[i].differs)
			return 1;
	return 0;
}

static int any_matched(const pb_table *t)
{
	for (int i = 0; i < t->n_rows; i++)
		if (t->rows[i].kind == PB_CELL_MATCHED)
			return 1;
	return 0;
}

static int any_at_init(const pb_table *t)
{
	for (int i = 0; i < t->n_rows; i++)
		if (t->rows[i].at_init)
			return 1;
	return 0;
}

static int any_eff(const pb_table *t)
{
	for (int i = 0; i < t->n_rows; i++) {
		const pb_table_row *r = &t->rows[i];
		if (r->macs_kept.n && r->macs_eff_kept.n &&
		    fabs(r->macs_kept.mean - r->macs_eff_kept.mean) > 0.5)
			return 1;
	}
	return 0;
}

static int any_int8(const pb_table *t)
{
	for (int i = 0; i < t->n_rows; i++)
		if (t->rows[i].acc_int8.n)
			return 1;
	return 0;
}

enum {
	COL_SPARSE = 11, COL_TIME = 12, COL_ROUNDS = 13, COL_INT8 = 14,
	COL_INT8_SIZE = 15, N_COLS = 16
};

static const char *const headers[N_COLS] = {
	"method", "target", "reached", "top-1 before FT (%)",
	"top-1 after FT (%)", "n", "Δ top-1 (pt)", "params kept (%)",
	"MACs kept (%)", "size MiB (dense / sparse / compr.)",
	"speedup (b128)", "speedup, sparse kernel (b1 / b128)",
	"time prune / FT (s)", "rounds (reached)", "top-1 int8 (%)",
	"size int8+zlib (MiB)"
};
static const char *const tex_headers[N_COLS] = {
	"Method", "Target", "Reached", "Top-1 before FT (\\%)",
	"Top-1 after FT (\\%)", "$n$", "$\\Delta$ top-1 (pt)",
	"Params kept (\\%)", "MACs kept (\\%)",
	"Size MiB (dense / sparse / compr.)", "Speedup (b128)",
	"Speedup, sparse kernel (b1 / b128)", "Time prune / FT (s)", "Rounds",
	"Top-1 int8 (\\%)", "Size int8+zlib (MiB)"
};

/* The columns shown, in order: the int8 ones beside their float
 * counterparts when a row was quantized, rounds last when a row has
 * them (with_rounds). */
static int columns(const pb_table *t, int with_rounds, int *cols)
{
	static const int order[] = { 0, 1, 2, 3, 4, COL_INT8, 5, 6, 7, 8, 9,
				     COL_INT8_SIZE, 10, COL_SPARSE, COL_TIME,
				     COL_ROUNDS };
	const int int8 = any_int8(t), rounds = with_rounds && any_rounds(t);
	int n = 0;

	for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
		int c = order[i];

		if ((c == COL_INT8 || c == COL_INT8_SIZE) && !int8)
			continue;
		if (c == COL_ROUNDS && !rounds)
			continue;
		cols[n++] = c;
	}
	return n;
}

/* The text of column c of row r. */
static void cell_text(char *buf, const style *st, const pb_table_row *r,
		      int c, int ci)
{
	const char *nv = no_value(r);
	buf[0] = '\0';
	switch (c) {
	case 1:
		cat(buf, "%s", r->target ? r->target : st->dash);
		return;
	case 2:
		if (!r->target)
			cat(buf, "%s", st->dash);
		else
			fmt_mean(buf, st, &r->reached, 3);
		return;
	case 3:
	case 4:
		if (nv) {
			cat(buf, "%s", nv);
			return;
		}
		fmt_stat(buf, st, c == 3 ? &r->acc_before : &r->acc_after, ci,
			 2);
		if (c == 4 && r->differs)
			cat(buf, "%s", st->dagger);
		return;
	case 5:
		cat(buf, "%d", r->acc_after.n);
		return;
	case 6:
		if (r->kind == PB_CELL_DENSE || isnan(r->delta_after))
			cat(buf, "%s", st->dash);
		else if (st->tex)
			cat(buf, "$%+.2f$", r->delta_after);
		else
			cat(buf, "%+.2f", r->delta_after);
		return;
	case 7:
		fmt_mean(buf, st, &r->params_kept, 1);
		return;
	case 8:
		fmt_mean(buf, st, &r->macs_kept, 1);
		if (r->macs_kept.n && r->macs_eff_kept.n &&
		    fabs(r->macs_kept.mean - r->macs_eff_kept.mean) > 0.5)
			cat(buf, " (eff. %.1f)", r->macs_eff_kept.mean);
		return;
	case 9:
		if (!r->size_dense.n && !r->size_sparse.n &&
		    !r->size_compressed.n) {
			cat(buf, "%s", st->dash);
			return;
		}
		{
			const pb_stat *s[3] = { &r->size_dense,
						&r->size_sparse,
						&r->size_compressed };
			for (int k = 0; k < 3; k++) {
				if (k)
					cat(buf, " / ");
				/* Three significant digits: models range
				 * from kilobytes to hundreds of MiB. */
				if (s[k]->n)
					cat(buf, "%#.3g", s[k]->mean);
				else
					cat(buf, "%s", st->dash);
			}
		}
		return;
	case 10:
		if (r->speedup_b128.n)
			cat(buf, "%.2f%s", r->speedup_b128.mean, st->times);
		else
			cat(buf, "%s", st->dash);
		return;
	case COL_SPARSE:
		if (!r->speedup_sparse_b1.n && !r->speedup_sparse_b128.n) {
			cat(buf, "%s", st->dash);
			return;
		}
		if (r->speedup_sparse_b1.n)
			cat(buf, "%.2f%s", r->speedup_sparse_b1.mean,
			    st->times);
		else
			cat(buf, "%s", st->dash);
		cat(buf, " / ");
		if (r->speedup_sparse_b128.n)
			cat(buf, "%.2f%s", r->speedup_sparse_b128.mean,
			    st->times);
		else
			cat(buf, "%s", st->dash);
		return;
	case COL_TIME:
		if (!r->time_prune.n && !r->time_finetune.n) {
			cat(buf, "%s", st->dash);
			return;
		}
		fmt_time(buf, st, &r->time_prune);
		cat(buf, " / ");
		fmt_time(buf, st, &r->time_finetune);
		return;
	case COL_INT8:
		if (nv) {
			cat(buf, "%s", nv);
			return;
		}
		fmt_stat(buf, st, &r->acc_int8, ci, 2);
		return;
	case COL_INT8_SIZE:
		if (r->acc_int8.n && r->size_int8_zlib.n)
			cat(buf, "%#.3g", r->size_int8_zlib.mean);
		else
			cat(buf, "%s", st->dash);
		return;
	case COL_ROUNDS:
		if (!r->n_rounds) {
			cat(buf, "%s", st->dash);
			return;
		}
		for (int k = 0; k < r->n_rounds; k++)
			cat(buf, "%s%.3f", k ? st->arrow : "", r->rounds[k]);
		return;
	}
}

/* Footnote lines, shared by both formats (prefix/suffix wrap each). */
static void write_notes(FILE *f, const style *st, const pb_table *t, int ci,
			const char *pre, const char *post)
{
	int tex = st->tex;

	if (tex)
		fprintf(f, "%sTop-1: test accuracy in \\%%, mean $\\pm$ %s over "
			"seeds ($n$ = seeds with status ok; a single value when "
			"$n = 1$).%s\n", pre, ci ? "95\\% confidence half-width "
			"$t_{0.975,n-1}\\,s/\\sqrt{n}$" :
			"sample standard deviation", post);
	else
		fprintf(f, "%sTop-1: test accuracy in %%, mean ± %s over seeds "
			"(n = seeds with status ok; a single value when n = 1).%s\n",
			pre, ci ? "95% confidence half-width t(0.975, n−1)·sd/√n"
			: "sample standard deviation", post);
	fprintf(f, "%s%s top-1: mean top-1 after fine-tune minus the dense "
		"baseline's mean, in points. Params kept: non-zero parameters "
		"vs dense.%s\n", pre, tex ? "$\\Delta$" : "Δ", post);
	fprintf(f, "%sSizes: MiB of the checkpoint files prunebench writes "
		"and loads: float32, sparse (each tensor as float32, bitmap "
		"or CSR, the smallest), and the float32 file compressed by "
		"zlib -9.%s\n", pre, post);
	if (any_int8(t)) {
		const char *sep = " Weights only (activations float): ";

		fprintf(f, "%sTop-1 int8: the final model quantized after "
			"fine-tuning (int8 weights with a scale per output "
			"channel, 8-bit activations per tensor calibrated on "
			"the validation split), evaluated on the test split. "
			"Size int8+zlib: that int8 checkpoint, sparse-encoded, "
			"compressed by zlib -9.", pre);
		for (int i = 0; i < t->n_rows; i++) {
			if (!t->rows[i].int8_weights_only)
				continue;
			fputs(sep, f);
			put_text(f, st, t->rows[i].label);
			if (t->rows[i].target) {
				fputs(" @ ", f);
				put_text(f, st, t->rows[i].target);
			}
			sep = ", ";
		}
		fprintf(f, "%s%s\n", sep[0] == ',' ? "." : "", post);
	}
	if (any_differs(t))
		fprintf(f, "%s%s differs from the best pruned model at the "
			"same target (highest mean top-1 after FT; the dense, "
			"same training controls excluded) by Welch's t-test, "
			"%s, two-sided, each row against the best alone (no "
			"correction for the number of rows).%s\n", pre,
			tex ? "$^\\dagger$" : "†",
			tex ? "$p < 0.05$" : "p < 0.05", post);
	if (any_eff(t))
		fprintf(f, "%seff.: MACs with zero weights skipped "
			"(unstructured sparsity; dense hardware does not "
			"skip them).%s\n", pre, post);
	if (any_at_init(t))
		fprintf(f, "%s(at init): pruned at initialisation, the model "
			"the dense training started from (top-1 before: the "
			"pruned, untrained network), then trained with the "
			"dense recipe instead of fine-tuned; compare it with "
			"the dense row, not with fine-tuned rows.%s\n", pre,
			post);
	if (any_matched(t))
		fprintf(f, "%s(dense, same training): the dense model trained "
			"exactly as that row's pruned model was (the pruning "
			"phase's trainings replayed, then the fine-tune), "
			"unpruned: the control at matched training budget.%s\n",
			pre, post);
	for (int i = 0; i < t->n_rows; i++) {
		const pb_table_row *r = &t->rows[i];
		const char *sep = "";

		if (!r->n_diverged && !r->n_failed && !r->n_crashed &&
		    !r->n_off_target)
			continue;
		fputs(pre, f);
		put_text(f, st, r->label);
		if (r->target) {
			fputs(" @ ", f);
			put_text(f, st, r->target);
		}
		fprintf(f, ": ");
		if (r->n_diverged) {
			fprintf(f, "%d of %d cells diverged", r->n_diverged,
				r->n_cells);
			sep = ", ";
		}
		if (r->n_failed) {
			fprintf(f, "%s%d of %d cells failed", sep, r->n_failed,
				r->n_cells);
			sep = ", ";
		}
		if (r->n_crashed) {
			fprintf(f, "%s%d of %d cells crashed (their process "
				"died; see cells/ID.log)", sep, r->n_crashed,
				r->n_cells);
			sep = ", ";
		}
		if (r->n_diverged || r->n_failed || r->n_crashed)
			fprintf(f, "; excluded from the statistics");
		if (r->n_off_target)
			fprintf(f, "%s%d of %d cells reached an amount far from "
				"the target (kept in the statistics; see the "
				"\"warning\" in runs.jsonl)", sep,
				r->n_off_target, r->n_cells);
		fprintf(f, ".%s\n", post);
	}
	if (t->n_mixed_dense)
		fprintf(f, "%sWarning: the cells of %d seed%s were pruned from "
			"different dense models (the dense model was trained "
			"again, e.g. on another machine, between runs); rows "
			"do not compare like with like. Run the experiment "
			"into a fresh output.%s\n", pre, t->n_mixed_dense,
			t->n_mixed_dense == 1 ? "" : "s", post);
	if (t->numerics_lo != t->numerics_hi)
		fprintf(f, "%sWarning: the cells were made by engines of "
			"different arithmetic (numerics %d to %d: a newer "
			"prunebench trains to other bits); rows may not "
			"compare like with like. Re-run the older cells with "
			"one version.%s\n", pre, t->numerics_lo,
			t->numerics_hi, post);
	if (t->n_superseded)
		fprintf(f, "%s%d older result%s replaced by a later run of "
			"the same cell.%s\n", pre, t->n_superseded,
			t->n_superseded == 1 ? " was" : "s were", post);
}

int pb_table_write_md(const pb_table *t, const pb_table_opts *o, FILE *f)
{
	const style *st = &md_style;
	int ci = o ? o->ci : 0;
	int cols[N_COLS], ncol = columns(t, 1, cols);
	char buf[CELL_MAX];

	fputs("|", f);
	for (int c = 0; c < ncol; c++)
		fprintf(f, " %s |", headers[cols[c]]);
	fputs("\n|", f);
	for (int c = 0; c < ncol; c++)
		fputs(cols[c] <= 1 || cols[c] == COL_ROUNDS ? ":---|" :
		      "---:|", f);
	fputc('\n', f);
	for (int i = 0; i < t->n_rows; i++) {
		const pb_table_row *r = &t->rows[i];
		fputs("| ", f);
		put_text(f, st, r->label);
		fputs(" |", f);
		for (int c = 1; c < ncol; c++) {
			cell_text(buf, st, r, cols[c], ci);
			fputc(' ', f);
			put_text(f, st, buf);
			fputs(" |", f);
		}
		fputc('\n', f);
	}
	fputc('\n', f);
	write_notes(f, st, t, ci, "", "  ");
	return ferror(f) ? -1 : 0;
}

int pb_table_write_tex(const pb_table *t, const pb_table_opts *o, FILE *f)
{
	const style *st = &tex_style;
	int ci = o ? o->ci : 0;
	int cols[N_COLS], ncol = columns(t, 0, cols);
	char buf[CELL_MAX];

	fputs("% Generated by prunebench table from runs.jsonl; needs "
	      "\\usepackage{booktabs}.\n\\begin{tabular}{ll", f);
	for (int c = 2; c < ncol; c++)
		fputc('r', f);
	fputs("}\n\\toprule\n", f);
	for (int c = 0; c < ncol; c++)
		fprintf(f, "%s%s", c ? " & " : "", tex_headers[cols[c]]);
	fputs(" \\\\\n\\midrule\n", f);
	for (int i = 0; i < t->n_rows; i++) {
		const pb_table_row *r = &t->rows[i];
		/* A rule after the controls and between targets. */
		if (i > 0 && r->target &&
		    (!t->rows[i - 1].target ||
		     strcmp(t->rows[i - 1].target, r->target)))
			fputs("\\midrule\n", f);
		put_text(f, st, r->label);
		for (int c = 1; c < ncol; c++) {
			cell_text(buf, st, r, cols[c], ci);
			fputs(" & ", f);
			/* Our own markup is already TeX; only names need
			 * escaping. */
			if (c == 1 && r->target)
				put_text(f, st, buf);
			else
				fputs(buf, f);
		}
		fputs(" \\\\\n", f);
	}
	fputs("\\bottomrule\n", f);
	{
		char pre[64];
		snprintf(pre, sizeof pre, "\\multicolumn{%d}{l}{\\footnotesize "
			 , ncol);
		write_notes(f, st, t, ci, pre, "} \\\\");
	}
	fputs("\\end{tabular}\n", f);
	return ferror(f) ? -1 : 0;
}

/* Writes one output file with fn, atomically, so a reader never sees
 * half a table. */
static int write_file(const char *dir, const char *name,
		      int (*fn)(const pb_table *, const pb_table_opts *,
				FILE *),
		      const pb_table *t, const pb_table_opts *o, pb_error *err)
{
	char *path = pbi_path_join(dir, name);
	pbi_atomic a;
	int rc;

	if (!path)
		return pb_error_set(err, PB_ENOMEM, "out of memory");
	rc = pbi_atomic_begin(&a, path, "table", err);
	free(path);
	if (rc)
		return rc;
	if (fn(t, o, a.f)) {
		pbi_atomic_discard(&a);
		return pb_error_set(err, PB_EIO, "%s/%s: write failed (disk "
				    "full?)", dir, name);
	}
	return pbi_atomic_commit(&a, err);
}

static int csv_fn(const pb_table *t, const pb_table_opts *o, FILE *f)
{
	(void)o;
	return pb_table_write_csv(t, f);
}

int pb_table_write_ex(const char *results_dir, const pb_table_opts *o,
		      FILE *md_out, FILE *warn, pb_error *err)
{
	pb_record *cells = NULL;
	pb_table t;
	char *path = pbi_path_join(results_dir, "runs.jsonl");
	int n = 0, n_bad = 0, rc;

	if (!path)
		return pb_error_set(err, PB_ENOMEM, "out of memory");
	rc = pb_records_read(path, 0, &cells, &n, &n_bad, warn, err);
	if (rc) {
		free(path);
		return rc;
	}
	if (n == 0) {
		rc = pb_error_set(err, PB_EFORMAT, "%s: no finished cell%s; "
				  "run the experiment first", path,
				  n_bad ? " that could be read" : "");
		free(path);
		pb_records_free(cells, n);
		return rc;
	}
	free(path);
	rc = pb_table_build(cells, n, &t, err);
	pb_records_free(cells, n);
	if (rc)
		return rc;
	t.n_bad_lines = n_bad;
	rc = write_file(results_dir, "table.md", pb_table_write_md, &t, o,
			err);
	if (!rc)
		rc = write_file(results_dir, "table.csv", csv_fn, &t, o, err);
	if (!rc)
		rc = write_file(results_dir, "table.tex", pb_table_write_tex,
				&t, o, err);
	if (!rc && md_out)
		pb_table_write_md(&t, o, md_out);
	pb_table_free(&t);
	return rc;
}

int pb_table_write(const char *results_dir, FILE *md_out, pb_error *err)
{
	return pb_table_write_ex(results_dir, NULL, md_out, stderr, err);
}
