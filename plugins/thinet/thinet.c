/* thinet: channels of layer i chosen by how little removing them changes
 * layer i+1's output (Luo, Wu, Lin, "ThiNet: A Filter Level Pruning
 * Method for Deep Neural Network Compression", ICCV 2017).
 *
 * For each prunable group (layer i's output channels), in model order:
 *
 *  1. Sample points of the consumer's output (layer i+1) on training
 *     images: `per_image` random (location, output channel) points on each
 *     of `images` calibration images, a fresh set for every layer (the
 *     paper draws its evaluation set anew for each layer; resample = no
 *     reuses the first set). At each point the pre-bias output is
 *     a sum over input channels c of contributions x_c (for a conv, the
 *     K x K window of channel c times the filter slice W[o, c]; for a
 *     linear after flatten, channel c's H*W features times their weights).
 *  2. Greedily build the removal set T: add, one at a time, the channel
 *     that keeps sum over points of (sum_{c in T} x_c)^2 smallest, until
 *     the group is down to its budget (the paper's Algorithm 1).
 *  3. With `rescale`, fit w = argmin sum (y - sum_{c kept} w_c x_c)^2 by
 *     least squares (gsl_multifit_linear), y the full output, and scale
 *     the consumer's weights of kept channel c by w_c (the paper's
 *     "minimize the reconstruction error" step).
 *  4. Remove the channels physically; with `finetune_between` > 0, train
 *     that many steps with the fine-tune recipe before the next layer.
 *
 * Budget: the paper prunes every layer at one compression rate; here that
 * rate is found by bisection so the cell's target (channels, params or
 * macs, with per-layer overrides) is reached within one channel per group.
 *
 * Residual networks: groups tied by an add (pb_channel_group.residual)
 * are left whole, as the paper's ResNet variant prunes only the inner
 * layers of each block; the remaining groups make up the whole target. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_multifit.h>
#include <gsl/gsl_rng.h>

#include "prunebench/pruner.h"

static const pb_pruner_option thinet_options[] = {
	{ .name = "images", .type = PB_OPT_INT, .def = "100", .min = 1, .max = 1e6,
	  .help = "calibration images from the training split per layer" },
	{ .name = "per_image", .type = PB_OPT_INT, .def = "10", .min = 1, .max = 1e6,
	  .help = "random (location, output channel) points of layer i+1 per image (the paper: 10)" },
	{ .name = "resample", .type = PB_OPT_BOOL, .def = "yes",
	  .help = "a fresh set of `images` training images for every layer (the paper); no: the same images for every layer" },
	{ .name = "rescale", .type = PB_OPT_BOOL, .def = "yes",
	  .help = "least-squares rescaling of the kept input channels of layer i+1" },
	{ .name = "finetune_between", .type = PB_OPT_INT, .def = "0", .min = 0, .max = 1e9,
	  .help = "fine-tune steps (fine-tune recipe) after each pruned layer; 0 = none" },
	PB_OPTION_MIN_KEEP,
};

/* Every eligible group at one rate r; overrides fixed, other groups
 * whole. */
typedef struct rate_config {
	pb_prune_ctx *ctx;
	const uint8_t *eligible;
	const int *fixed;      /* an override's count, or -1 */
	int floor_;
} rate_config;

static void at_rate(void *user, double r, int *kept)
{
	const rate_config *rc = user;

	for (int g = 0; g < pb_ctx_n_groups(rc->ctx); g++) {
		int n = pb_ctx_group(rc->ctx, g)->n_channels;

		kept[g] = rc->fixed[g] >= 0 ? rc->fixed[g] :
			  rc->eligible[g] ? pb_ctx_kept_count(n, r, rc->floor_) :
			  n;
	}
}

/* The per-group budget: the one rate that meets the target. */
static int budget(pb_prune_ctx *ctx, const uint8_t *eligible, int floor_,
		  int *kept)
{
	int ng = pb_ctx_n_groups(ctx), rc = 0;
	int *fixed = malloc(sizeof(int) * ((size_t)ng + 1));
	rate_config cf = { ctx, eligible, fixed, floor_ };
	double reached = 0.0;

	if (!fixed)
		return pb_ctx_fail(ctx, "out of memory (budget)");
	for (int g = 0; g < ng && !rc; g++) {
		const char *layer;
		double amount;

		rc = pb_ctx_group_override(ctx, g, &amount, &layer);
		fixed[g] = rc || amount < 0 ? -1 :
			   pb_ctx_kept_count(pb_ctx_group(ctx, g)->n_channels,
					     amount, floor_);
		if (!rc && amount >= 0 && !eligible[g])
			rc = pb_ctx_fail(ctx, "override for layer '%s': thinet "
					 "does not prune its channels (tied by "
					 "a residual add, or not read by a conv "
					 "or linear)", layer);
	}
	if (!rc)
		rc = pb_ctx_bisect_config(ctx, at_rate, &cf, 1.0, 60, kept,
					  &reached);
	if (rc == PB_EIMPOSSIBLE)
		rc = pb_ctx_fail(ctx, "the target %g cannot be reached by "
				 "pruning the non-residual groups alone (at "
				 "most %.4f); lower the target",
				 pb_ctx_target(ctx)->amount, reached);
	free(fixed);
	return rc;
}

/* The sampled contributions of one consumer: X is (S, C) row-major,
 * y[s] the sum of row s (the pre-bias output at that point). */
typedef struct samples {
	int S, C;
	double *X, *y;
} samples;

/* One layer's calibration images: `count` of them, image n at position
 * (first + n) % avail of the `avail` images in the input buffer;
 * `wrapped` when the training split had fewer than the set needed. */
typedef struct calib {
	int first, count, avail, wrapped;
} calib;

/* The input of `layer` on calibration set `set`: images [set * images,
 * (set + 1) * images) of the cell's calibration order, a permutation of
 * the training split drawn from the cell's RNG, so each set is a fresh
 * draw. pb_ctx_layer_input gives a prefix of that order, so the set is
 * the tail of a longer call (layer i forwards (i + 1) * images images);
 * a training split too small for a set per layer wraps around. */
static int calib_input(pb_prune_ctx *ctx, int layer, int images, int set,
		       const float **act, calib *cb)
{
	long want = (long)set * images + images;
	int rc;

	if ((rc = pb_ctx_layer_input(ctx, layer, want < INT_MAX ? (int)want :
				     INT_MAX, act, &cb->avail)))
		return rc;
	cb->count = images < cb->avail ? images : cb->avail;
	cb->first = (int)(((long)set * images) % cb->avail);
	cb->wrapped = cb->avail < want;
	return 0;
}

static int sample_consumer(pb_prune_ctx *ctx, const pb_channel_group *grp,
			   int k, int per_image, int set, samples *out,
			   calib *cb)
{
	pb_model *m = pb_ctx_model(ctx);
	int layer = grp->consumers[k], C = grp->n_channels, B, rc;
	const pb_layer_info *li = pb_model_layer(m, layer);
	const pb_param *W = pb_ctx_layer_param(ctx, layer, PB_PARAM_WEIGHT);
	gsl_rng *rng = pb_ctx_rng(ctx);
	const float *act;

	memset(out, 0, sizeof *out);
	if (!W || (li->type != PB_LAYER_CONV && li->type != PB_LAYER_LINEAR))
		return pb_ctx_fail(ctx, "layer %s reads group %d but is not a "
				   "conv or linear", li->name, grp->id);
	if ((rc = calib_input(ctx, layer, (int)pb_ctx_opt_int(ctx, "images"),
			      set, &act, cb)))
		return rc;
	B = cb->count;
	out->S = B * per_image;
	out->C = C;
	out->X = calloc((size_t)out->S * C + 1, sizeof(double));
	out->y = calloc((size_t)out->S + 1, sizeof(double));
	if (!out->X || !out->y)
		return pb_ctx_fail(ctx, "out of memory (%d samples x %d "
				   "channels)", out->S, C);
	if (li->type == PB_LAYER_CONV) {
		int K = li->kernel, H = li->in_h, Wd = li->in_w;

		if (W->shape[1] != C || li->in_c != C)
			return pb_ctx_fail(ctx, "conv %s has %d input channels, "
					   "group %d has %d", li->name,
					   W->shape[1], grp->id, C);
		for (int n = 0; n < B; n++)
			for (int j = 0; j < per_image; j++) {
				int s = n * per_image + j;
				size_t im = (size_t)((cb->first + n) % cb->avail);
				int o = (int)gsl_rng_uniform_int(rng,
						(unsigned long)li->out_c);
				int oh = (int)gsl_rng_uniform_int(rng,
						(unsigned long)li->out_h);
				int ow = (int)gsl_rng_uniform_int(rng,
						(unsigned long)li->out_w);
				double *row = out->X + (size_t)s * C;

				for (int c = 0; c < C; c++) {
					const float *x = act +
						(im * C + c) * H * Wd;
					const float *w = W->data +
						((size_t)o * C + c) * K * K;
					double v = 0.0;

					for (int kh = 0; kh < K; kh++) {
						int ih = oh * li->stride -
							 li->pad + kh;
						if (ih < 0 || ih >= H)
							continue;
						for (int kw = 0; kw < K; kw++) {
							int iw = ow * li->stride
								 - li->pad + kw;
							if (iw < 0 || iw >= Wd)
								continue;
							v += (double)w[kh * K +
								       kw] *
							     x[ih * Wd + iw];
						}
					}
					row[c] = v;
					out->y[s] += v;
				}
			}
	} else {
		int F = grp->fanout[k];
		int in = W->shape[1], outs = W->shape[0];

		if (F < 1 || in != C * F)
			return pb_ctx_fail(ctx, "linear %s has %d inputs, group "
					   "%d gives %d x %d", li->name, in,
					   grp->id, C, F);
		for (int n = 0; n < B; n++)
			for (int j = 0; j < per_image; j++) {
				int s = n * per_image + j;
				size_t im = (size_t)((cb->first + n) % cb->avail);
				int o = (int)gsl_rng_uniform_int(rng,
						(unsigned long)outs);
				const float *x = act + im * in;
				const float *w = W->data + (size_t)o * in;
				double *row = out->X + (size_t)s * C;

				for (int c = 0; c < C; c++) {
					double v = 0.0;

					for (int f = 0; f < F; f++)
						v += (double)w[c * F + f] *
						     x[c * F + f];
					row[c] = v;
					out->y[s] += v;
				}
			}
	}
	return 0;
}

static void samples_free(samples *s)
{
	free(s->X);
	free(s->y);
	memset(s, 0, sizeof *s);
}

/* Algorithm 1: removes n_remove channels greedily, each time the one
 * that keeps the squared norm of the removed contributions smallest over
 * the samples of every consumer. keep[c] is set to 0 for removed ones. */
static int greedy(pb_prune_ctx *ctx, const samples *sm, int n_cons,
		  int n_remove, uint8_t *keep)
{
	int C = sm[0].C;
	long S = 0;
	double *sum;

	for (int k = 0; k < n_cons; k++)
		S += sm[k].S;
	sum = calloc((size_t)S + 1, sizeof *sum);
	if (!sum)
		return pb_ctx_fail(ctx, "out of memory (greedy selection)");
	memset(keep, 1, (size_t)C);
	for (int r = 0; r < n_remove; r++) {
		double best = INFINITY;
		int arg = -1;

		for (int c = 0; c < C; c++) {
			double v = 0.0;
			long s0 = 0;

			if (!keep[c])
				continue;
			for (int k = 0; k < n_cons; k++) {
				for (int s = 0; s < sm[k].S; s++) {
					double t = sum[s0 + s] +
						   sm[k].X[(size_t)s * C + c];
					v += t * t;
				}
				s0 += sm[k].S;
			}
			if (v < best) {
				best = v;
				arg = c;
			}
		}
		keep[arg] = 0;
		for (int k = 0, s0 = 0; k < n_cons; s0 += sm[k].S, k++)
			for (int s = 0; s < sm[k].S; s++)
				sum[s0 + s] += sm[k].X[(size_t)s * C + arg];
	}
	free(sum);
	return 0;
}

/* Least-squares scales of the kept channels for one consumer; scales the
 * consumer's weights in place. *before / *after get the reconstruction
 * error sum (y - sum_kept x)^2 without and with the scales. */
static int rescale(pb_prune_ctx *ctx, const pb_channel_group *grp, int k,
		   const samples *sm, const uint8_t *keep, int do_scale,
		   double *before, double *after)
{
	pb_param *W = pb_ctx_layer_param(ctx, grp->consumers[k],
					 PB_PARAM_WEIGHT);
	int C = sm->C, K = 0, rc = 0;
	int *idx = malloc(sizeof(int) * ((size_t)C + 1));
	gsl_matrix *A = NULL, *cov = NULL;
	gsl_vector *b = NULL, *w = NULL;
	gsl_multifit_linear_workspace *ws = NULL;
	double chisq;

	if (!idx)
		return pb_ctx_fail(ctx, "out of memory");
	for (int c = 0; c < C; c++)
		if (keep[c])
			idx[K++] = c;
	*before = 0.0;
	for (int s = 0; s < sm->S; s++) {
		double r = sm->y[s];

		for (int j = 0; j < K; j++)
			r -= sm->X[(size_t)s * C + idx[j]];
		*before += r * r;
	}
	*after = *before;
	if (!do_scale || sm->S < K) {
		if (do_scale)
			pb_ctx_log(ctx, "thinet: group %d: %d samples for %d "
				   "channels, too few to rescale", grp->id,
				   sm->S, K);
		free(idx);
		return 0;
	}
	A = gsl_matrix_alloc((size_t)sm->S, (size_t)K);
	b = gsl_vector_alloc((size_t)sm->S);
	w = gsl_vector_alloc((size_t)K);
	cov = gsl_matrix_alloc((size_t)K, (size_t)K);
	ws = gsl_multifit_linear_alloc((size_t)sm->S, (size_t)K);
	if (!A || !b || !w || !cov || !ws) {
		rc = pb_ctx_fail(ctx, "out of memory (least squares %d x %d)",
				 sm->S, K);
		goto out;
	}
	for (int s = 0; s < sm->S; s++) {
		gsl_vector_set(b, (size_t)s, sm->y[s]);
		for (int j = 0; j < K; j++)
			gsl_matrix_set(A, (size_t)s, (size_t)j,
				       sm->X[(size_t)s * C + idx[j]]);
	}
	if (gsl_multifit_linear(A, b, w, cov, &chisq, ws)) {
		rc = pb_ctx_fail(ctx, "least squares failed for group %d",
				 grp->id);
		goto out;
	}
	/* A column of zeros (a dead channel) leaves its scale 0 from the
	 * SVD's minimum-norm solution; any finite scale is as good. */
	for (int j = 0; j < K; j++) {
		double s = gsl_vector_get(w, (size_t)j);
		size_t row = W->n / (size_t)W->shape[0];
		size_t span = row / (size_t)C;

		if (!isfinite(s)) {
			rc = pb_ctx_fail(ctx, "least squares gave a non-finite "
					 "scale for group %d", grp->id);
			goto out;
		}
		for (int o = 0; o < W->shape[0]; o++) {
			float *p = W->data + (size_t)o * row +
				   (size_t)idx[j] * span;

			for (size_t q = 0; q < span; q++)
				p[q] = (float)(p[q] * s);
		}
	}
	*after = chisq;
out:
	gsl_matrix_free(A);
	gsl_vector_free(b);
	gsl_vector_free(w);
	gsl_matrix_free(cov);
	gsl_multifit_linear_free(ws);
	free(idx);
	return rc;
}

static int first_producer(const pb_channel_group *g)
{
	int f = g->n_producers ? g->producers[0] : 1 << 30;

	for (int k = 1; k < g->n_producers; k++)
		if (g->producers[k] < f)
			f = g->producers[k];
	return f;
}

static int eligible_group(pb_prune_ctx *ctx, const pb_channel_group *g)
{
	pb_model *m = pb_ctx_model(ctx);

	if (!g->prunable || g->residual || g->n_consumers < 1 ||
	    g->n_producers < 1)
		return 0;
	for (int k = 0; k < g->n_consumers; k++) {
		pb_layer_type t = pb_model_layer(m, g->consumers[k])->type;

		if (t != PB_LAYER_CONV && t != PB_LAYER_LINEAR)
			return 0;
	}
	return 1;
}

/* Prunes group g to target_kept channels, sampling its consumers on
 * calibration set `set`. */
static int prune_group(pb_prune_ctx *ctx, int g, int target_kept, int set)
{
	const pb_channel_group *grp = pb_ctx_group(ctx, g);
	int per_image = (int)pb_ctx_opt_int(ctx, "per_image");
	int do_scale = pb_ctx_opt_bool(ctx, "rescale");
	int nc = grp->n_consumers, C = grp->n_channels, rc = 0;
	samples sm[PB_GROUP_MAX_MEMBERS];
	uint8_t **keep = NULL;
	double before = 0.0, after = 0.0, total = 0.0;
	calib cb = { 0, 0, 1, 0 };

	memset(sm, 0, sizeof sm);
	rc = pb_ctx_keep_new(ctx, &keep);
	for (int k = 0; k < nc && !rc; k++)
		rc = sample_consumer(ctx, grp, k, per_image, set, &sm[k], &cb);
	if (!rc)
		rc = greedy(ctx, sm, nc, C - target_kept, keep[g]);
	for (int k = 0; k < nc && !rc; k++) {
		double b = 0.0, a = 0.0;

		rc = rescale(ctx, grp, k, &sm[k], keep[g], do_scale, &b, &a);
		before += b;
		after += a;
		for (int s = 0; s < sm[k].S; s++)
			total += sm[k].y[s] * sm[k].y[s];
	}
	if (!rc) {
		pb_ctx_log(ctx, "thinet: group %d (layer %s): calibration "
			   "images %d to %d of the cell's order%s; keeps %d of "
			   "%d; relative reconstruction error %.6g, %.6g after "
			   "least squares", g,
			   pb_model_layer(pb_ctx_model(ctx),
					  first_producer(grp))->name,
			   cb.first, (cb.first + cb.count - 1) % cb.avail,
			   cb.wrapped ? " (wrapped: the training split is "
			   "too small for a fresh set per layer)" : "",
			   target_kept, C, total > 0 ? before / total : 0.0,
			   total > 0 ? after / total : 0.0);
		rc = pb_ctx_keep_channels(ctx, (const uint8_t *const *)keep);
	}
	for (int k = 0; k < nc; k++)
		samples_free(&sm[k]);
	pb_ctx_keep_free(keep);
	return rc;
}

static int thinet_prune(void *state, pb_prune_ctx *ctx)
{
	int floor_ = (int)pb_ctx_opt_int(ctx, "min_keep");
	long ft = pb_ctx_opt_int(ctx, "finetune_between");
	int ng = pb_ctx_n_groups(ctx), rc = 0, n_order = 0;
	int *kept = malloc(sizeof(int) * ((size_t)ng + 1));
	int *order = malloc(sizeof(int) * ((size_t)ng + 1));
	uint8_t *eligible = calloc((size_t)ng + 1, 1);

	(void)state;
	if (!kept || !order || !eligible) {
		rc = pb_ctx_fail(ctx, "out of memory");
		goto out;
	}
	if (pb_ctx_target(ctx)->scope == PB_SCOPE_GLOBAL) {
		rc = pb_ctx_fail(ctx, "thinet prunes every layer at one rate, "
				 "as the paper does: use scope = layer (with "
				 "per-layer overrides if needed)");
		goto out;
	}
	for (int g = 0; g < ng; g++)
		eligible[g] = (uint8_t)eligible_group(ctx, pb_ctx_group(ctx, g));
	if ((rc = budget(ctx, eligible, floor_, kept)))
		goto out;
	/* Layer by layer, from the input on, as the paper does. */
	for (int g = 0; g < ng; g++)
		if (kept[g] < pb_ctx_group(ctx, g)->n_channels)
			order[n_order++] = g;
	for (int i = 1; i < n_order; i++)
		for (int j = i; j > 0 &&
		     first_producer(pb_ctx_group(ctx, order[j])) <
		     first_producer(pb_ctx_group(ctx, order[j - 1])); j--) {
			int t = order[j];
			order[j] = order[j - 1];
			order[j - 1] = t;
		}
	for (int i = 0; i < n_order && !rc; i++) {
		rc = prune_group(ctx, order[i], kept[order[i]],
				 pb_ctx_opt_bool(ctx, "resample") ? i : 0);
		if (!rc && ft > 0 && i + 1 < n_order)
			rc = pb_ctx_train(ctx, PB_RECIPE_FINETUNE, 0, ft);
	}
out:
	free(kept);
	free(order);
	free(eligible);
	return rc;
}

/* What one cell trains here, for the dry run and shard balancing:
 * finetune_between steps after every pruned layer but the last (every
 * conv and linear layer but the classifier, taken as pruned). */
static int thinet_estimate(pb_estimate *q)
{
	double layers = q->weight_layers > 2 ? q->weight_layers - 2 : 0;

	if (q->finetune_steps_per_epoch <= 0)
		return -1;
	q->epochs = layers * pb_estimate_opt_double(q, "finetune_between") /
		    q->finetune_steps_per_epoch;
	return 0;
}

PB_PRUNER_DEFINE(thinet, .version = "1.1", .prune = thinet_prune,
	.estimate = thinet_estimate,
	.granularity = PB_GRANULARITY_CHANNEL, PB_PRUNER_OPTIONS(thinet_options),
	.description = "removes the channels whose removal changes the next "
		       "layer's sampled outputs least (greedy), then rescales "
		       "the next layer by least squares; layer by layer. "
		       "Residual-tied channels are kept whole (only inner "
		       "block layers are pruned, as the paper's ResNet "
		       "variant); scope must be layer",
	.citation = "Luo, Wu, Lin. ThiNet: A Filter Level Pruning Method for "
		    "Deep Neural Network Compression. ICCV 2017")
