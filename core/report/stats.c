/* Statistics over seeds for the tables, with GSL: mean, sample standard
 * deviation, t-based 95% confidence half-width, Welch's t-test. */
#include <math.h>
#include <stdlib.h>

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_statistics_double.h>

#include "prunebench/table.h"

void pb_stat_compute(const double *x, int n, pb_stat *out)
{
	double *v = NULL;
	int k = 0;

	out->n = 0;
	out->mean = out->sd = out->ci95 = NAN;
	if (n > 0)
		v = malloc((size_t)n * sizeof *v);
	if (!v)
		return;
	for (int i = 0; i < n; i++)
		if (isfinite(x[i]))
			v[k++] = x[i];
	out->n = k;
	if (k >= 1)
		out->mean = gsl_stats_mean(v, 1, (size_t)k);
	if (k >= 2) {
		out->sd = gsl_stats_sd_m(v, 1, (size_t)k, out->mean);
		out->ci95 = gsl_cdf_tdist_Pinv(0.975, k - 1) * out->sd /
			    sqrt((double)k);
	}
	free(v);
}

void pb_welch(const pb_stat *a, const pb_stat *b, pb_welch_test *out)
{
	double va, vb;

	out->diff = a->n > 0 && b->n > 0 ? a->mean - b->mean : NAN;
	out->t = out->df = out->p = NAN;
	if (a->n < 2 || b->n < 2)
		return;
	va = a->sd * a->sd / a->n;
	vb = b->sd * b->sd / b->n;
	if (va + vb == 0.0) {
		/* Both samples constant: identical or certainly different. */
		out->p = a->mean == b->mean ? 1.0 : 0.0;
		return;
	}
	out->t = (a->mean - b->mean) / sqrt(va + vb);
	/* Welch-Satterthwaite; a zero-variance side contributes no term. */
	out->df = (va + vb) * (va + vb) /
		  ((va > 0 ? va * va / (a->n - 1) : 0.0) +
		   (vb > 0 ? vb * vb / (b->n - 1) : 0.0));
	out->p = 2.0 * gsl_cdf_tdist_Q(fabs(out->t), out->df);
}

double pb_welch_p(const pb_stat *a, const pb_stat *b)
{
	pb_welch_test w;

	pb_welch(a, b, &w);
	return w.p;
}
