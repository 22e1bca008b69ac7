/* taylor: first-order Taylor importance (Molchanov, Mallya, Tyree, Frosio,
 * Kautz, "Importance Estimation for Neural Network Pruning", CVPR 2019).
 *
 * The importance of a channel is the squared first-order Taylor estimate
 * of the change in loss when it is removed:
 *
 *   criterion = bn (the paper's FO-BN, default):
 *       I_c = ( sum over the channel's BN gates of g_gamma*gamma + g_beta*beta )^2
 *   criterion = weight:
 *       I_c = ( sum over the channel's filter weights of g*w )^2
 *
 * where g is the mini-batch gradient of the loss. Channels tied by a
 * residual add are one group: removing one removes it from every member,
 * so the first-order change is the SUM of the members' terms, squared.
 * Importances are averaged over the mini-batches since the last pruning
 * step.
 *
 * Procedure (the paper's): fine-tune with the fine-tune recipe while
 * accumulating in after_backward; every `interval` mini-batches remove the
 * `per_step` least important channels (one global ranking), reset the
 * accumulators, and repeat until the cell's target is reached. The model
 * cannot change shape inside a training hook, so the loop is: train
 * `interval` steps (pb_ctx_train), rank and remove, repeat. The runner's
 * regular fine-tune follows.
 *
 * With scope = layer, each group stops at the count a uniform per-layer
 * ratio gives (pb_ctx_layer_budget) and the global ranking chooses the
 * order; with scope = global only min_keep bounds a group. Under the bn
 * criterion, groups without a BN (hidden linear layers) have no gate and
 * are left whole. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "prunebench/pruner.h"

static const pb_pruner_option taylor_options[] = {
	{ .name = "criterion", .type = PB_OPT_CHOICE, .def = "bn",
	  .help = "bn: (sum g_gamma*gamma + g_beta*beta)^2 over the BN gate "
		  "(FO-BN, the paper's choice); weight: (sum g*w)^2 over the "
		  "filter", .choices = "bn|weight" },
	{ .name = "interval", .type = PB_OPT_INT, .def = "10",
	  .help = "mini-batches of fine-tuning (and accumulation) between "
		  "pruning steps", .min = 1, .max = 1e6 },
	{ .name = "per_step", .type = PB_OPT_INT, .def = "0",
	  .help = "channels removed per pruning step; 0 = 1% of the "
		  "prunable channels (at least 1)", .min = 0, .max = 1e6 },
	{ .name = "min_keep", .type = PB_OPT_INT, .def = "1",
	  .help = "channels every group keeps at least", .min = 1,
	  .max = 1e6 },
	{ .name = "log_scores", .type = PB_OPT_BOOL, .def = "no",
	  .help = "log every channel's averaged importance at each pruning "
		  "step (progress stream)", .min = 1, .max = 0 },
};

typedef struct taylor_state {
	int weight;        /* criterion = weight */
	int n_groups;
	double **acc;      /* acc[g][c]: sum over batches of the importance */
	int *acc_n;        /* channels acc[g] was sized for */
	long batches;      /* since the last reset */
	double *tmp;       /* one group's first-order sums */
} taylor_state;

static void free_acc(taylor_state *s)
{
	for (int g = 0; s->acc && g < s->n_groups; g++)
		free(s->acc[g]);
	free(s->acc);
	free(s->acc_n);
	free(s->tmp);
	s->acc = NULL;
	s->acc_n = NULL;
	s->tmp = NULL;
	s->n_groups = 0;
}

/* Zeroed accumulators sized for the current groups. */
static int reset_acc(taylor_state *s, pb_prune_ctx *ctx)
{
	int n = pb_ctx_n_groups(ctx), most = 1;

	free_acc(s);
	s->acc = calloc((size_t)n + 1, sizeof *s->acc);
	s->acc_n = calloc((size_t)n + 1, sizeof *s->acc_n);
	if (!s->acc || !s->acc_n)
		return pb_ctx_fail(ctx, "out of memory");
	s->n_groups = n;
	for (int g = 0; g < n; g++) {
		s->acc_n[g] = pb_ctx_group(ctx, g)->n_channels;
		s->acc[g] = calloc((size_t)s->acc_n[g] + 1, sizeof(double));
		if (!s->acc[g])
			return pb_ctx_fail(ctx, "out of memory");
		if (s->acc_n[g] > most)
			most = s->acc_n[g];
	}
	s->tmp = calloc((size_t)most, sizeof *s->tmp);
	if (!s->tmp)
		return pb_ctx_fail(ctx, "out of memory");
	s->batches = 0;
	return 0;
}

static int taylor_create(pb_prune_ctx *ctx, void **state)
{
	taylor_state *s = calloc(1, sizeof *s);

	if (!s)
		return pb_ctx_fail(ctx, "out of memory");
	s->weight = !strcmp(pb_ctx_opt_string(ctx, "criterion"), "weight");
	*state = s;
	return 0;
}

static void taylor_destroy(void *state)
{
	taylor_state *s = state;

	free_acc(s);
	free(s);
}

/* Whether group g can be scored under the criterion. */
static int eligible(const taylor_state *s, const pb_channel_group *grp)
{
	return grp->prunable && (s->weight ? grp->n_producers > 0 :
				 grp->n_bns > 0);
}

/* Adds this mini-batch's (sum of first-order terms)^2 per channel. */
static int taylor_after_backward(void *state, pb_prune_ctx *ctx, long step)
{
	taylor_state *s = state;

	(void)step;
	if (!s->acc)
		return 0;
	for (int g = 0; g < s->n_groups; g++) {
		const pb_channel_group *grp = pb_ctx_group(ctx, g);
		int nc = grp->n_channels;
		int nm = s->weight ? grp->n_producers : grp->n_bns;
		double *t = s->tmp;

		if (!eligible(s, grp) || nc != s->acc_n[g])
			continue;
		memset(t, 0, sizeof *t * (size_t)nc);
		for (int k = 0; k < nm; k++) {
			if (s->weight) {
				const pb_param *w = pb_ctx_layer_param(ctx,
					grp->producers[k], PB_PARAM_WEIGHT);
				size_t row = w->n / (size_t)nc;

				for (int c = 0; c < nc; c++) {
					const float *wd = w->data + row * c;
					const float *gd = w->grad + row * c;

					for (size_t j = 0; j < row; j++)
						t[c] += (double)gd[j] * wd[j];
				}
			} else {
				const pb_param *ga = pb_ctx_layer_param(ctx,
					grp->bns[k], PB_PARAM_BN_GAMMA);
				const pb_param *be = pb_ctx_layer_param(ctx,
					grp->bns[k], PB_PARAM_BN_BETA);

				for (int c = 0; c < nc; c++)
					t[c] += (double)ga->grad[c] *
						ga->data[c] +
						(double)be->grad[c] *
						be->data[c];
			}
		}
		for (int c = 0; c < nc; c++)
			s->acc[g][c] += t[c] * t[c];
	}
	s->batches++;
	return 0;
}

/* Checks that every eligible group's members have the tensors the
 * criterion reads, with the group's channel count. */
static int check_groups(taylor_state *s, pb_prune_ctx *ctx)
{
	for (int g = 0; g < pb_ctx_n_groups(ctx); g++) {
		const pb_channel_group *grp = pb_ctx_group(ctx, g);
		int nm = s->weight ? grp->n_producers : grp->n_bns;

		if (!eligible(s, grp))
			continue;
		for (int k = 0; k < nm; k++) {
			int l = s->weight ? grp->producers[k] : grp->bns[k];
			const pb_param *p = pb_ctx_layer_param(ctx, l,
				s->weight ? PB_PARAM_WEIGHT :
				PB_PARAM_BN_GAMMA);
			const pb_param *b = s->weight ? p :
				pb_ctx_layer_param(ctx, l, PB_PARAM_BN_BETA);

			if (!p || !b || p->shape[0] != grp->n_channels ||
			    !p->grad || !b->grad)
				return pb_ctx_fail(ctx, "group %d: layer %d "
						   "has no %s with %d channels",
						   g, l, s->weight ? "weight" :
						   "BN scale and shift",
						   grp->n_channels);
		}
	}
	return 0;
}

/* What the target measures, for a configuration with kept[g] channels. */
typedef struct budget {
	pb_target_kind kind;
	double amount;
	int channels0;              /* prunable channels at the start */
	uint64_t params0, macs0;
} budget;

static int reached(pb_prune_ctx *ctx, const budget *b, const int *kept,
		   int n, int *yes)
{
	uint64_t params, macs;
	double frac;
	int rc, ch = 0;

	for (int g = 0; g < n; g++)
		if (pb_ctx_group(ctx, g)->prunable)
			ch += kept[g];
	if ((rc = pb_ctx_config_cost(ctx, kept, &params, &macs)))
		return rc;
	switch (b->kind) {
	case PB_TARGET_CHANNELS:
		frac = 1.0 - (double)ch / b->channels0;
		break;
	case PB_TARGET_PARAMS:
		frac = 1.0 - (double)params / (double)b->params0;
		break;
	default:
		frac = 1.0 - (double)macs / (double)b->macs0;
		break;
	}
	*yes = frac >= b->amount - 1e-12;
	return 0;
}

typedef struct cand {
	double imp;
	int g, c;
} cand;

static int cand_cmp(const void *a, const void *b)
{
	const cand *x = a, *y = b;

	if (x->imp != y->imp)
		return x->imp < y->imp ? -1 : 1;
	if (x->g != y->g)
		return x->g - y->g;
	return x->c - y->c;
}

static void log_scores(taylor_state *s, pb_prune_ctx *ctx, int step)
{
	for (int g = 0; g < s->n_groups; g++) {
		char line[4096];
		size_t k = 0;

		if (!eligible(s, pb_ctx_group(ctx, g)))
			continue;
		for (int c = 0; c < s->acc_n[g] && k + 24 < sizeof line; c++)
			k += (size_t)snprintf(line + k, sizeof line - k, " %.9g",
					      s->acc[g][c] / (double)s->batches);
		pb_ctx_log(ctx, "step %d group %d importance:%s", step, g,
			   line);
	}
}

/* One pruning step: removes up to per_step of the least important
 * channels above their floors, stopping early at the target. */
static int prune_step(taylor_state *s, pb_prune_ctx *ctx, const budget *b,
		      const int *floor_, int per_step, int *done)
{
	int n = s->n_groups, total = 0, removed = 0, rc = 0;
	int *kept = calloc((size_t)n + 1, sizeof *kept);
	uint8_t **keep = calloc((size_t)n + 1, sizeof *keep);
	cand *cs = NULL;

	if (!kept || !keep)
		goto oom;
	for (int g = 0; g < n; g++) {
		kept[g] = s->acc_n[g];
		keep[g] = malloc((size_t)kept[g] + 1);
		if (!keep[g])
			goto oom;
		memset(keep[g], 1, (size_t)kept[g]);
		if (eligible(s, pb_ctx_group(ctx, g)))
			total += kept[g];
	}
	cs = malloc(sizeof *cs * ((size_t)total + 1));
	if (!cs)
		goto oom;
	total = 0;
	for (int g = 0; g < n; g++) {
		if (!eligible(s, pb_ctx_group(ctx, g)))
			continue;
		for (int c = 0; c < kept[g]; c++)
			cs[total++] = (cand){ s->acc[g][c] /
					      (double)(s->batches ? s->batches :
						       1), g, c };
	}
	qsort(cs, (size_t)total, sizeof *cs, cand_cmp);
	*done = 0;
	for (int i = 0; i < total && removed < per_step && !*done; i++) {
		if (kept[cs[i].g] <= floor_[cs[i].g])
			continue;
		kept[cs[i].g]--;
		keep[cs[i].g][cs[i].c] = 0;
		removed++;
		if ((rc = reached(ctx, b, kept, n, done)))
			goto out;
	}
	if (!removed) {
		rc = pb_ctx_fail(ctx, "every group is at its floor before the "
				 "target %g is reached: lower the target or "
				 "min_keep", b->amount);
		goto out;
	}
	rc = pb_ctx_keep_channels(ctx, (const uint8_t *const *)keep);
	goto out;
oom:
	rc = pb_ctx_fail(ctx, "out of memory");
out:
	for (int g = 0; keep && g < n; g++)
		free(keep[g]);
	free(keep);
	free(kept);
	free(cs);
	return rc;
}

static int taylor_prune(void *state, pb_prune_ctx *ctx)
{
	taylor_state *s = state;
	const pb_target *t = pb_ctx_target(ctx);
	int interval = (int)pb_ctx_opt_int(ctx, "interval");
	int per_step = (int)pb_ctx_opt_int(ctx, "per_step");
	int min_keep = (int)pb_ctx_opt_int(ctx, "min_keep");
	int logs = pb_ctx_opt_bool(ctx, "log_scores");
	int n = pb_ctx_n_groups(ctx), rc, done = 0, step = 0, cand_ch = 0;
	int *kept = calloc((size_t)n + 1, sizeof *kept);
	int *floor_ = calloc((size_t)n + 1, sizeof *floor_);
	budget b = { .kind = t->kind, .amount = t->amount };

	if (!kept || !floor_) {
		rc = pb_ctx_fail(ctx, "out of memory");
		goto out;
	}
	if ((rc = check_groups(s, ctx)))
		goto out;
	if (t->scope == PB_SCOPE_LAYER &&
	    (rc = pb_ctx_layer_budget(ctx, -1.0, floor_)))
		goto out;
	for (int g = 0; g < n; g++) {
		const pb_channel_group *grp = pb_ctx_group(ctx, g);

		kept[g] = grp->n_channels;
		if (grp->prunable)
			b.channels0 += grp->n_channels;
		if (!eligible(s, grp))
			floor_[g] = grp->n_channels;
		else if (t->scope != PB_SCOPE_LAYER || floor_[g] < min_keep)
			floor_[g] = min_keep < grp->n_channels ? min_keep :
				    grp->n_channels;
		if (eligible(s, grp))
			cand_ch += grp->n_channels;
	}
	if ((rc = pb_ctx_config_cost(ctx, kept, &b.params0, &b.macs0)) ||
	    (rc = reached(ctx, &b, kept, n, &done)))
		goto out;
	if (per_step <= 0)
		per_step = cand_ch / 100 > 1 ? cand_ch / 100 : 1;
	pb_ctx_log(ctx, "criterion %s: removing %d channels every %d "
		   "mini-batches", s->weight ? "weight" : "bn", per_step,
		   interval);
	while (!done) {
		if ((rc = reset_acc(s, ctx)) ||
		    (rc = pb_ctx_train(ctx, PB_RECIPE_FINETUNE, 0, interval)))
			break;
		if (!s->batches) {
			rc = pb_ctx_fail(ctx, "no mini-batch was trained "
					 "between pruning steps");
			break;
		}
		step++;
		if (logs)
			log_scores(s, ctx, step);
		if ((rc = prune_step(s, ctx, &b, floor_, per_step, &done)))
			break;
	}
	if (!rc)
		pb_ctx_log(ctx, "target reached after %d pruning steps", step);
out:
	free_acc(s);
	free(kept);
	free(floor_);
	return rc;
}

static const pb_pruner taylor = {
	PB_PRUNER_HEADER,
	.name = "taylor",
	.version = "1.0",
	.granularity = PB_GRANULARITY_CHANNEL,
	.description = "iteratively removes the channels with the smallest "
		       "first-order Taylor importance while fine-tuning",
	.citation = "Molchanov, Mallya, Tyree, Frosio, Kautz. Importance "
		    "Estimation for Neural Network Pruning. CVPR 2019",
	.options = taylor_options,
	.n_options = sizeof taylor_options / sizeof taylor_options[0],
	.create = taylor_create,
	.destroy = taylor_destroy,
	.after_backward = taylor_after_backward,
	.prune = taylor_prune,
};

PB_PRUNER_EXPORT(taylor)
