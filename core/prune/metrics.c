/* Metrics of a model as pruning papers report them; definitions in
 * prunebench/metrics.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>

#include "nn/mask.h"
#include "prunebench/metrics.h"
#include "prunebench/tensor.h"
#include "nn/model_impl.h"
#include "prune/prune_impl.h"
#include "prune/sizes.h"

void pb_metrics_opts_default(pb_metrics_opts *o)
{
	memset(o, 0, sizeof *o);
	o->latency = 0;
	o->warmup = 3;
	o->repeats = 30;
	o->repeats_large = 7;
	o->compressed = 1;
	o->sparse = 1;
}

/* ---- counts and sizes ---------------------------------------------------- */

static size_t count_nonzero(const float *d, size_t n)
{
	size_t c = 0;

	for (size_t i = 0; i < n; i++)
		c += d[i] != 0.0f;
	return c;
}

/* A CSR distance is 2 bytes: a gap of more than 65535 zeros needs filler
 * entries, each standing for itself and 65535 zeros before it. */
#define CSR_MAX_GAP 65535u

uint64_t pb_metrics_sparse_bytes(const float *d, size_t n, int rows)
{
	uint64_t dense = 4 * (uint64_t)n, nnz = 0, entries = 0, bitmap, csr;
	size_t cols;

	if (rows < 1 || (size_t)rows > n || n % (size_t)rows)
		rows = 1;
	cols = n / (size_t)rows;
	for (int r = 0; r < rows; r++) {
		const float *row = d + (size_t)r * cols;
		size_t zeros = 0;
		for (size_t j = 0; j < cols; j++) {
			if (row[j] == 0.0f) {
				zeros++;
				continue;
			}
			entries += 1 + zeros / (CSR_MAX_GAP + 1);
			nnz++;
			zeros = 0;
		}
	}
	bitmap = ((uint64_t)n + 7) / 8 + 4 * nnz;
	csr = 4 * ((uint64_t)rows + 1) + 6 * entries;
	if (bitmap < dense)
		dense = bitmap;
	return csr < dense ? csr : dense;
}

/* A BN layer's sparsity is that of its scales: a zero gamma switches a
 * channel off (what Network Slimming drives to zero); its shifts are
 * biases, which are not pruned and often start at zero. */
static double gamma_sparsity(const pb_model *m, int layer)
{
	for (int i = 0; i < m->n_params; i++) {
		const pb_param *p = &m->params[i];
		if (p->layer == layer && p->kind == PB_PARAM_BN_GAMMA)
			return 1.0 - (double)count_nonzero(p->data, p->n) /
				     (double)p->n;
	}
	return 0.0;
}

static int fill_layers(pb_metrics *mt, const pb_model *m)
{
	int n = 0;

	for (int l = 0; l < m->n_nodes; l++)
		n += pb_model_layer_params(m, l) > 0;
	mt->layers = calloc(n ? (size_t)n : 1, sizeof *mt->layers);
	if (!mt->layers)
		return PB_ENOMEM;
	for (int l = 0; l < m->n_nodes; l++) {
		const pbi_node *nd = &m->nodes[l];
		pb_layer_metrics *lm;
		if (!pb_model_layer_params(m, l))
			continue;
		lm = &mt->layers[mt->n_layers++];
		snprintf(lm->name, sizeof lm->name, "%s", nd->name);
		lm->type = nd->info.type;
		for (int i = 0; i < m->n_params; i++) {
			const pb_param *p = &m->params[i];
			size_t nz;
			if (p->layer != l || !p->trainable)
				continue;
			nz = count_nonzero(p->data, p->n);
			lm->params += p->n;
			lm->nonzero += nz;
			if (p->kind == PB_PARAM_WEIGHT) {
				lm->weights += p->n;
				lm->weights_nonzero += nz;
			}
		}
		lm->macs = pb_model_layer_macs(m, l);
		lm->macs_effective = lm->macs;
		if (lm->weights) {
			/* MACs are a whole multiple of the weight count
			 * (each weight is used out_h*out_w times), so this
			 * is exact. */
			lm->macs_effective = lm->macs / lm->weights *
					     lm->weights_nonzero;
			lm->sparsity = 1.0 - (double)lm->weights_nonzero /
						     (double)lm->weights;
		} else {
			lm->sparsity = gamma_sparsity(m, l);
		}
	}
	return 0;
}

static void count_model(pb_metrics *mt, const pb_model *m)
{
	for (int i = 0; i < m->n_params; i++) {
		const pb_param *p = &m->params[i];
		size_t nz = count_nonzero(p->data, p->n);

		if (!p->trainable)
			continue;
		mt->params += p->n;
		mt->params_nonzero += nz;
		if (p->kind == PB_PARAM_WEIGHT) {
			mt->prunable += p->n;
			mt->prunable_nonzero += nz;
		}
	}
	mt->prunable_sparsity = mt->prunable
		? 1.0 - (double)mt->prunable_nonzero / (double)mt->prunable
		: 0.0;
	for (int l = 0; l < mt->n_layers; l++) {
		mt->macs += mt->layers[l].macs;
		mt->macs_effective += mt->layers[l].macs_effective;
	}
}

/* ---- compressed size ----------------------------------------------------- */

int pb_metrics_compressed_size(const pb_model *m, uint64_t *raw,
			       uint64_t *compressed, pb_error *err)
{
	return pbi_file_size(m, NULL, 1, raw, compressed, err);
}

static int fill_sizes(pb_metrics *mt, const pb_model *m, int compressed,
		      pb_error *err)
{
	pbi_sizes z;
	int rc = pbi_file_sizes(m, NULL, compressed, &z, err);

	if (rc)
		return rc;
	mt->bytes_dense = mt->bytes_checkpoint = z.f32;
	mt->bytes_sparse = z.sparse;
	mt->bytes_compressed = z.f32_zlib;
	mt->bytes_int8 = z.int8;
	mt->bytes_int8_compressed = z.int8_zlib;
	return 0;
}

/* ---- latency ------------------------------------------------------------- */

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* A fixed input: the values only have to be ordinary floats, the same
 * for every model and run. */
static float *synthetic_input(const pb_model *m, int B)
{
	size_t n = (size_t)B * (size_t)m->in_c * (size_t)m->in_h *
		   (size_t)m->in_w;
	float *x = pb_falloc(n);
	uint32_t s = 12345u;

	if (!x)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		s = s * 1664525u + 1013904223u;
		x[i] = (float)(s >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
	}
	return x;
}

/* A lean forward (only what later layers read is stored), as a deployed
 * model runs. */
static int timed_forward(pb_model *m, const float *x, int B, double *ms,
			 pb_error *err)
{
	const float *logits;
	double t0;
	int rc;

	pbi_model_set_lean(m, 1);
	t0 = now_ms();
	rc = pb_model_forward(m, x, B, 0, NULL, &logits, err);
	*ms = now_ms() - t0;
	pbi_model_set_lean(m, 0);
	return rc;
}

static double median(double *v, int n)
{
	gsl_sort(v, 1, (size_t)n);
	return gsl_stats_median_from_sorted_data(v, 1, (size_t)n);
}

static int check_timing_args(int B, int warmup, int repeats, pb_error *err)
{
	if (B < 1 || warmup < 0 || repeats < 1)
		return pb_error_set(err, PB_EINVAL,
				    "latency: batch %d, warm-up %d, repeats "
				    "%d: need batch >= 1, warm-up >= 0 and "
				    "repeats >= 1", B, warmup, repeats);
	return 0;
}

/* One model of an alternation: its input and its times. */
typedef struct runner {
	pb_model *m;
	float *x;
	double *t;
} runner;

/* Times the n models of r in alternation, each on its own copy of the
 * synthetic input; med[i] receives model i's median. */
static int time_runners(runner *r, int n, int B, int warmup, int repeats,
			double *med, pb_error *err)
{
	double ms;
	int rc;

	if ((rc = check_timing_args(B, warmup, repeats, err)))
		return rc;
	for (int k = 0; k < n; k++) {
		r[k].x = synthetic_input(r[k].m, B);
		r[k].t = calloc((size_t)repeats, sizeof *r[k].t);
		if (!r[k].x || !r[k].t)
			rc = pb_error_set(err, PB_ENOMEM,
					  "out of memory (latency)");
	}
	for (int i = 0; i < warmup && !rc; i++)
		for (int k = 0; k < n && !rc; k++)
			rc = timed_forward(r[k].m, r[k].x, B, &ms, err);
	for (int i = 0; i < repeats && !rc; i++)
		for (int k = 0; k < n && !rc; k++)
			rc = timed_forward(r[k].m, r[k].x, B, &r[k].t[i], err);
	for (int k = 0; k < n; k++) {
		if (!rc)
			med[k] = median(r[k].t, repeats);
		pb_ffree(r[k].x);
		free(r[k].t);
	}
	return rc;
}

/* Times m (and ref, when not NULL, alternating with it). */
static int time_models(pb_model *m, pb_model *ref, int B, int warmup,
		       int repeats, double *m_ms, double *ref_ms,
		       pb_error *err)
{
	runner r[2] = { { m, NULL, NULL }, { ref, NULL, NULL } };
	double med[2] = { 0, 0 };
	int rc = time_runners(r, ref ? 2 : 1, B, warmup, repeats, med, err);

	if (!rc) {
		*m_ms = med[0];
		if (ref)
			*ref_ms = med[1];
	}
	return rc;
}

int pb_metrics_latency(pb_model *m, int B, int warmup, int repeats,
		       double *median_ms, pb_error *err)
{
	return time_models(m, NULL, B, warmup, repeats, median_ms, NULL, err);
}

int pb_metrics_speedup(pb_model *m, pb_model *ref, int B, int warmup,
		       int repeats, double *m_ms, double *ref_ms,
		       double *speedup, pb_error *err)
{
	double a = 0, b = 0;
	int rc = time_models(m, ref, B, warmup, repeats, &a, &b, err);

	if (rc)
		return rc;
	if (m_ms)
		*m_ms = a;
	if (ref_ms)
		*ref_ms = b;
	/* A clock too coarse to see the run gives 0 ms; report no speedup
	 * rather than dividing by zero. */
	*speedup = a > 0 ? b / a : 0.0;
	return 0;
}

/* Latency (and speedup against ref) at both batch sizes: m and ref on
 * the dense kernels, and sp (m's copy in a sparse session, or NULL when
 * no layer takes the sparse kernels) in the same alternation. */
static int measure_latency(pb_metrics *mt, pb_model *m, pb_model *ref,
			   pb_model *sp, const pb_metrics_opts *opts,
			   pb_error *err)
{
	static const int batches[2] = { PB_METRICS_BATCH_SMALL,
					 PB_METRICS_BATCH_LARGE };
	int rc = 0;

	for (int b = 0; b < 2 && !rc; b++) {
		runner r[3] = { { m, NULL, NULL } };
		double med[3] = { 0, 0, 0 };
		int n = 1, iref = -1, isp = -1;

		if (ref) {
			r[n].m = ref;
			iref = n++;
		}
		if (sp) {
			r[n].m = sp;
			isp = n++;
		}
		rc = time_runners(r, n, batches[b], opts->warmup,
				  b ? opts->repeats_large : opts->repeats,
				  med, err);
		if (rc)
			break;
		mt->latency_ms[b] = med[0];
		mt->latency_sparse_ms[b] = isp >= 0 ? med[isp] : med[0];
		/* A clock too coarse to see the run gives 0 ms: no speedup
		 * rather than a division by zero. */
		if (iref >= 0) {
			mt->speedup[b] = med[0] > 0 ? med[iref] / med[0] : 0.0;
			mt->speedup_sparse[b] =
				mt->latency_sparse_ms[b] > 0 ?
				med[iref] / mt->latency_sparse_ms[b] : 0.0;
		}
	}
	mt->have_latency = !rc;
	return rc;
}

/* A copy of m in a sparse session, or NULL in *sp when no layer of m
 * takes the sparse kernels. */
static int sparse_copy(pb_model *m, pb_model **sp, int *layers,
		       pb_error *err)
{
	int rc, used;

	*sp = NULL;
	*layers = 0;
	if ((rc = pb_model_clone(sp, m, err)))
		return rc;
	used = pbi_model_sparse_begin(*sp);
	if (used <= 0) {
		pb_model_free(*sp);
		*sp = NULL;
		if (used < 0)
			return pb_error_set(err, PB_ENOMEM, "out of memory "
					    "(sparse weights)");
		return 0;
	}
	*layers = used;
	return 0;
}

/* ---- all of it ----------------------------------------------------------- */

int pb_metrics_compute(pb_metrics *out, pb_model *m, pb_model *ref,
		       const pb_metrics_opts *opts, pb_error *err)
{
	pb_metrics_opts def;
	pb_model *sp = NULL;
	pb_metrics mt;
	int rc = 0;

	memset(out, 0, sizeof *out);
	memset(&mt, 0, sizeof mt);
	if (!opts) {
		pb_metrics_opts_default(&def);
		opts = &def;
	}
	if (fill_layers(&mt, m))
		return pb_error_set(err, PB_ENOMEM, "out of memory (metrics)");
	count_model(&mt, m);
	rc = fill_sizes(&mt, m, opts->compressed, err);
	if (!rc && opts->latency && opts->sparse)
		rc = sparse_copy(m, &sp, &mt.sparse_layers, err);
	if (!rc && opts->latency)
		rc = measure_latency(&mt, m, ref, sp, opts, err);
	pb_model_free(sp);
	if (rc) {
		pb_metrics_free(&mt);
		return pb_error_prefix(err, "metrics of model '%s': ",
				       m->name);
	}
	*out = mt;
	return 0;
}

void pb_metrics_free(pb_metrics *mt)
{
	if (!mt)
		return;
	free(mt->layers);
	mt->layers = NULL;
	mt->n_layers = 0;
}

/* ---- tables -------------------------------------------------------------- */

#define MIB (1024.0 * 1024.0)

/* One row: a value per model with `prec` decimals and a suffix, and
 * after/before when both are there. */
static void row(FILE *f, const char *name, double a, double b, int have_b,
		int prec, const char *suffix, int ratio)
{
	char va[32], vb[32] = "", vr[32] = "";

	snprintf(va, sizeof va, "%.*f%s", prec, a, suffix);
	if (have_b) {
		snprintf(vb, sizeof vb, "%.*f%s", prec, b, suffix);
		if (ratio && a > 0)
			snprintf(vr, sizeof vr, "%.3fx", b / a);
	}
	fprintf(f, "  %-24s %14s %14s %9s\n", name, va, vb, vr);
}

void pb_metrics_print(FILE *f, const pb_metrics *before,
		      const pb_metrics *after, const char *label_before,
		      const char *label_after)
{
	const pb_metrics *a = before, *b = after ? after : before;
	int two = after != NULL;

	fprintf(f, "  %-24s %14s %14s %9s\n", "metric",
		label_before ? label_before : "dense",
		two ? (label_after ? label_after : "pruned") : "",
		two ? "ratio" : "");
	row(f, "parameters", (double)a->params, (double)b->params, two,
	    0, "", 1);
	row(f, "non-zero parameters", (double)a->params_nonzero,
	    (double)b->params_nonzero, two, 0, "", 1);
	row(f, "weight sparsity (%)", 100.0 * a->prunable_sparsity,
	    100.0 * b->prunable_sparsity, two, 2, "", 0);
	row(f, "MACs", (double)a->macs, (double)b->macs, two, 0, "", 1);
	row(f, "effective MACs", (double)a->macs_effective,
	    (double)b->macs_effective, two, 0, "", 1);
	row(f, "size float32 (MiB)", (double)a->bytes_dense / MIB,
	    (double)b->bytes_dense / MIB, two, 4, "", 1);
	row(f, "size sparse (MiB)", (double)a->bytes_sparse / MIB,
	    (double)b->bytes_sparse / MIB, two, 4, "", 1);
	if (a->bytes_compressed || b->bytes_compressed)
		row(f, "size zlib (MiB)", (double)a->bytes_compressed / MIB,
		    (double)b->bytes_compressed / MIB, two, 4, "", 1);
	row(f, "size int8 (MiB)", (double)a->bytes_int8 / MIB,
	    (double)b->bytes_int8 / MIB, two, 4, "", 1);
	if (a->bytes_int8_compressed || b->bytes_int8_compressed)
		row(f, "int8+sparse+zlib (MiB)",
		    (double)a->bytes_int8_compressed / MIB,
		    (double)b->bytes_int8_compressed / MIB, two, 4, "", 1);
	if (a->have_latency || b->have_latency) {
		row(f, "latency b=1 (ms)", a->latency_ms[0], b->latency_ms[0],
		    two, 3, "", 1);
		row(f, "latency b=128 (ms)", a->latency_ms[1],
		    b->latency_ms[1], two, 3, "", 1);
	}
	if (a->have_latency || b->have_latency) {
		row(f, "sparse-kernel layers", (double)a->sparse_layers,
		    (double)b->sparse_layers, two, 0, "", 0);
		row(f, "latency sparse b=1 (ms)", a->latency_sparse_ms[0],
		    b->latency_sparse_ms[0], two, 3, "", 1);
		row(f, "latency sparse b=128 (ms)", a->latency_sparse_ms[1],
		    b->latency_sparse_ms[1], two, 3, "", 1);
	}
	if (two && b->speedup[1] > 0) {
		row(f, "speedup b=1", 1.0, b->speedup[0], 1, 2, "x", 0);
		row(f, "speedup b=128", 1.0, b->speedup[1], 1, 2, "x", 0);
		row(f, "speedup sparse b=1", 1.0, b->speedup_sparse[0], 1, 2,
		    "x", 0);
		row(f, "speedup sparse b=128", 1.0, b->speedup_sparse[1], 1,
		    2, "x", 0);
	}
}

void pb_metrics_print_layers(FILE *f, const pb_metrics *mt)
{
	fprintf(f, "  %-16s %-7s %10s %10s %9s %13s %13s\n", "layer", "type",
		"params", "non-zero", "sparsity", "MACs", "eff. MACs");
	for (int l = 0; l < mt->n_layers; l++) {
		const pb_layer_metrics *lm = &mt->layers[l];
		fprintf(f, "  %-16s %-7s %10zu %10zu %8.2f%% %13llu %13llu\n",
			lm->name, pb_layer_type_name(lm->type), lm->params,
			lm->nonzero, 100.0 * lm->sparsity,
			(unsigned long long)lm->macs,
			(unsigned long long)lm->macs_effective);
	}
	fprintf(f, "  %-16s %-7s %10zu %10zu %8.2f%% %13llu %13llu\n",
		"total", "", mt->params, mt->params_nonzero,
		100.0 * mt->prunable_sparsity, (unsigned long long)mt->macs,
		(unsigned long long)mt->macs_effective);
}
