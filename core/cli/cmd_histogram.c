/* prunebench histogram: per-layer weight histograms of a checkpoint, with
 * the dense model it came from and the dense weights under its masks
 * ("pruned", before fine-tuning) overlaid: the gap pruning leaves around
 * zero, and how fine-tuning moves the weights that stayed. */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_histogram.h>

#include "base/file.h"
#include "cli/cli.h"

static const char hist_usage[] =
	"Usage: prunebench histogram MODEL.ini FILE.ckpt [options]\n"
	"\n"
	"Histograms of every conv and linear weight of FILE.ckpt (\"final\"),\n"
	"and with --ref of the dense model too, plus the dense weights under\n"
	"FILE's masks (\"pruned\": what weight pruning left, before\n"
	"fine-tuning), overlaid per layer. Zeros are counted, not drawn, so\n"
	"the gap pruning leaves around zero shows. Writes the histograms as\n"
	"data (DIR/histograms/LAYER.SERIES.dat, GSL's bin lower, upper,\n"
	"count), DIR/histograms.gp and DIR/histograms.png (gnuplot).\n"
	"\n"
	"  --ref DENSE.ckpt     the dense model it was pruned from\n"
	"  --ref-model D.ini    its model file (default MODEL.ini; give the\n"
	"                       dense one when FILE was channel-pruned)\n"
	"  --bins N             bins per histogram (default 80)\n"
	"  --out DIR            output folder (default: the current one)\n";

enum { OPT_REF = 256, OPT_REF_MODEL, OPT_BINS };

static const struct option hist_opts[] = {
	{ "ref", required_argument, NULL, OPT_REF },
	{ "ref-model", required_argument, NULL, OPT_REF_MODEL },
	{ "bins", required_argument, NULL, OPT_BINS },
	{ "out", required_argument, NULL, 'o' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

enum { DENSE, PRUNED, FINAL, N_SERIES };
static const char *const series_name[N_SERIES] = { "dense", "pruned",
						     "final" };

/* One layer's weights in each series (NULL when absent). */
typedef struct layer_hist {
	const char *name;
	const float *w[N_SERIES];
	size_t n[N_SERIES];
	float *pruned;            /* owned: dense x mask */
	size_t zeros[N_SERIES];
} layer_hist;

static float amax_of(const layer_hist *L)
{
	float a = 0.0f;

	for (int s = 0; s < N_SERIES; s++)
		for (size_t i = 0; L->w[s] && i < L->n[s]; i++)
			if (fabsf(L->w[s][i]) > a)
				a = fabsf(L->w[s][i]);
	return a > 0.0f ? a : 1.0f;
}

static int write_hist(const char *path, const float *w, size_t n,
		      size_t bins, double a, size_t *zeros, pb_error *err)
{
	gsl_histogram *h = gsl_histogram_alloc(bins);
	pbi_atomic at;
	int rc;

	if (!h)
		return pb_error_set(err, PB_ENOMEM, "out of memory");
	/* The top edge is exclusive in GSL: widen it by a hair so the
	 * largest weight counts. */
	gsl_histogram_set_ranges_uniform(h, -a * (1 + 1e-6), a * (1 + 1e-6));
	*zeros = 0;
	for (size_t i = 0; i < n; i++) {
		if (w[i] == 0.0f)
			(*zeros)++;
		else
			gsl_histogram_increment(h, w[i]);
	}
	if ((rc = pbi_atomic_begin(&at, path, "histogram", err))) {
		gsl_histogram_free(h);
		return rc;
	}
	gsl_histogram_fprintf(at.f, h, "%.6g", "%.0f");
	gsl_histogram_free(h);
	return pbi_atomic_commit(&at, err);
}

static int write_script(const char *gp, const char *png, const char *dir,
			const layer_hist *L, int n, const char *file,
			pb_error *err)
{
	static const char *const colors[N_SERIES] = { "#4477aa", "#ee6677",
						      "#228833" };
	int cols = (int)ceil(sqrt((double)n)), rows = (n + cols - 1) / cols;
	pbi_atomic a;
	FILE *f;
	int rc;

	if ((rc = cli_gp_begin(&a, gp, png, 420 * cols, 320 * rows + 40,
			       err)))
		return rc;
	f = a.f;
	fputs("set multiplot layout ", f);
	fprintf(f, "%d,%d title ", rows, cols);
	{
		char t[512];

		snprintf(t, sizeof t, "Weights of %s (zeros counted in the "
			 "legend, not drawn)", file);
		cli_gp_quote(f, t);
	}
	fputs("\nset key top right font ',8'\nset offsets graph 0, graph 0, graph 0.35, graph 0\nset grid\nset style fill "
	      "transparent solid 0.25 noborder\nset ylabel 'weights per "
	      "bin'\n", f);
	for (int l = 0; l < n; l++) {
		fputs("set title ", f);
		cli_gp_quote(f, L[l].name);
		fputs("\nplot ", f);
		for (int s = 0, first = 1; s < N_SERIES; s++) {
			char path[1024], title[128];

			if (!L[l].w[s])
				continue;
			snprintf(path, sizeof path, "%s/histograms/%s.%s.dat",
				 dir, L[l].name, series_name[s]);
			snprintf(title, sizeof title, "%s (%.1f%% zero)",
				 series_name[s], L[l].n[s] ?
				 100.0 * (double)L[l].zeros[s] /
				 (double)L[l].n[s] : 0.0);
			fputs(first ? "" : ", ", f);
			cli_gp_quote(f, path);
			fprintf(f, " using (($1+$2)/2):3 with boxes lc rgb '%s' "
				"title ", colors[s]);
			cli_gp_quote(f, title);
			fputs(", ", f);
			cli_gp_quote(f, path);
			fprintf(f, " using (($1+$2)/2):3 with histeps lw 1.5 "
				"lc rgb '%s' notitle", colors[s]);
			first = 0;
		}
		fputc('\n', f);
	}
	fputs("unset multiplot\n", f);
	return pbi_atomic_commit(&a, err);
}

int cmd_histogram(int argc, char **argv)
{
	const char *ref = NULL, *ref_model = NULL, *out = ".";
	pb_error err = { 0 };
	pb_model *m = NULL, *d = NULL;
	layer_hist *L = NULL;
	char *dir = NULL, *gp = NULL, *png = NULL;
	long bins = 80;
	int opt, rc, n = 0;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", hist_opts, NULL)) != -1) {
		switch (opt) {
		case OPT_REF: ref = optarg; break;
		case OPT_REF_MODEL: ref_model = optarg; break;
		case OPT_BINS:
			if (cli_int("--bins", optarg, 2, 10000, &bins))
				return 2;
			break;
		case 'o': out = optarg; break;
		case 'h': fputs(hist_usage, stdout); return 0;
		default: return cli_usage_error("histogram", "bad option");
		}
	}
	if (optind != argc - 2)
		return cli_usage_error("histogram", "expected MODEL.ini and "
				       "FILE.ckpt");
	if (ref_model && !ref)
		return cli_usage_error("histogram", "--ref-model needs --ref");
	dir = pbi_path_join(out, "histograms");
	gp = pbi_path_join(out, "histograms.gp");
	png = pbi_path_join(out, "histograms.png");
	if (!dir || !gp || !png) {
		rc = pb_error_set(&err, PB_ENOMEM, "out of memory");
		goto done;
	}
	if ((rc = cli_load_trained(&m, argv[optind], argv[optind + 1],
				   &err)) ||
	    (ref && (rc = cli_load_trained(&d, ref_model ? ref_model :
					   argv[optind], ref, &err))) ||
	    (rc = pbi_mkdirs(dir, &err)))
		goto done;
	L = calloc((size_t)pb_model_n_params(m) + 1, sizeof *L);
	if (!L) {
		rc = pb_error_set(&err, PB_ENOMEM, "out of memory");
		goto done;
	}
	for (int i = 0; i < pb_model_n_params(m); i++) {
		pb_param *p = pb_model_param(m, i), *q;
		layer_hist *h;
		float a;

		if (p->kind != PB_PARAM_WEIGHT)
			continue;
		h = &L[n++];
		h->name = pb_model_layer(m, p->layer)->name;
		h->w[FINAL] = p->data;
		h->n[FINAL] = p->n;
		q = d ? pb_model_find_param(d, p->name) : NULL;
		if (q) {
			h->w[DENSE] = q->data;
			h->n[DENSE] = q->n;
		}
		/* Weight pruning keeps the shapes: the dense weights under
		 * the final mask (its zeros) are the model as pruned. */
		if (q && q->n == p->n) {
			size_t z = 0;

			for (size_t k = 0; k < p->n; k++)
				z += p->data[k] == 0.0f;
			if (z && (h->pruned = malloc(p->n * sizeof(float)))) {
				for (size_t k = 0; k < p->n; k++)
					h->pruned[k] = p->data[k] == 0.0f ?
						       0.0f : q->data[k];
				h->w[PRUNED] = h->pruned;
				h->n[PRUNED] = p->n;
			}
		}
		a = amax_of(h);
		for (int s = 0; s < N_SERIES && !rc; s++) {
			char path[1024];

			if (!h->w[s])
				continue;
			snprintf(path, sizeof path, "%s/%s.%s.dat", dir, h->name,
				 series_name[s]);
			rc = write_hist(path, h->w[s], h->n[s], (size_t)bins, a,
					&h->zeros[s], &err);
		}
		if (rc)
			goto done;
	}
	if (!n) {
		rc = pb_error_set(&err, PB_EINVAL, "%s has no conv or linear "
				  "weights", argv[optind]);
		goto done;
	}
	if ((rc = write_script(gp, png, out, L, n, argv[optind + 1], &err)))
		goto done;
	for (int l = 0; l < n; l++) {
		printf("%-16s %9zu weights", L[l].name, L[l].n[FINAL]);
		for (int s = 0; s < N_SERIES; s++)
			if (L[l].w[s])
				printf("  %s %.1f%% zero", series_name[s],
				       100.0 * (double)L[l].zeros[s] /
				       (double)L[l].n[s]);
		printf("\n");
	}
	printf("wrote %s/*.dat and %s\n", dir, gp);
	if (!cli_gnuplot("histogram", gp))
		printf("wrote %s\n", png);
done:
	for (int l = 0; L && l < n; l++)
		free(L[l].pruned);
	free(L);
	free(dir);
	free(gp);
	free(png);
	pb_model_free(m);
	pb_model_free(d);
	return rc ? cli_fail("histogram", &err) : 0;
}
