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
	{ .name = "criterion", .type = PB_OPT_CHOICE, .def = "bn", .choices = "bn|weight",
	  .help = "bn: (sum g_gamma*gamma + g_beta*beta)^2 over the BN gate (FO-BN, the paper's choice); weight: (sum g*w)^2 over the filter" },
	{ .name = "interval", .type = PB_OPT_INT, .def = "10", .min = 1, .max = 1e6,
	  .help = "mini-batches of fine-tuning (and accumulation) between pruning steps" },
	{ .name = "per_step", .type = PB_OPT_INT, .def = "0", .min = 0, .max = 1e6,
	  .help = "channels removed per pruning step; 0 = 1% of the prunable channels (at least 1)" },
	PB_OPTION_MIN_KEEP,
	{ .name = "log_scores", .type = PB_OPT_BOOL, .def = "no",
	  .help = "log every channel's averaged importance at each pruning step (progress stream)" },
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
	taylor_state *s;
	int rc = pb_ctx_state_new(ctx, sizeof *s, state);

	if (rc)
		return rc;
	s = *state;
	s->weight = !strcmp(pb_ctx_opt_string(ctx, "criterion"), "weight");
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

/* t[c] += sum over filter c's weights of g * w. */
static int add_grad_times_weight(void *user, const pb_filter *f)
{
	double *t = user;

	for (size_t j = 0; j < f->len; j++)
		t[f->channel] += (double)f->grad[j] * f->weight[j];
	return 0;
}

/* t[c] += g_gamma * gamma + g_beta * beta over the group's BN gates. */
static void add_bn_terms(pb_prune_ctx *ctx, const pb_channel_group *grp,
			 double *t)
{
	for (int k = 0; k < grp->n_bns; k++) {
		const pb_param *ga = pb_ctx_layer_param(ctx, grp->bns[k],
							PB_PARAM_BN_GAMMA);
		const pb_param *be = pb_ctx_layer_param(ctx, grp->bns[k],
							PB_PARAM_BN_BETA);

		for (int c = 0; c < grp->n_channels; c++)
			t[c] += (double)ga->grad[c] * ga->data[c] +
				(double)be->grad[c] * be->data[c];
	}
}

/* Adds this mini-batch's (sum of first-order terms)^2 per channel. */
static int taylor_after_backward(void *state, pb_prune_ctx *ctx, long step)
{
	taylor_state *s = state;
	int rc;

	(void)step;
	if (!s->acc)
		return 0;
	for (int g = 0; g < s->n_groups; g++) {
		const pb_channel_group *grp = pb_ctx_group(ctx, g);
		int nc = grp->n_channels;

		if (!eligible(s, grp) || nc != s->acc_n[g])
			continue;
		memset(s->tmp, 0, sizeof *s->tmp * (size_t)nc);
		if (!s->weight)
			add_bn_terms(ctx, grp, s->tmp);
		else if ((rc = pb_ctx_each_filter(ctx, g, add_grad_times_weight,
						  s->tmp)))
			return rc;
		for (int c = 0; c < nc; c++)
			s->acc[g][c] += s->tmp[c] * s->tmp[c];
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
 * channels above their floors, one ranking across groups, stopping at the
 * target. The importances are averaged over the step's mini-batches. */
static int prune_step(taylor_state *s, pb_prune_ctx *ctx, const int *floor_,
		      int per_step, int *done)
{
	double batches = (double)(s->batches ? s->batches : 1);
	int rc;

	for (int g = 0; g < s->n_groups; g++)
		for (int c = 0; c < s->acc_n[g]; c++)
			s->acc[g][c] /= batches;
	rc = pb_ctx_remove_lowest(ctx, (const double *const *)s->acc, floor_,
				  per_step, done);
	if (rc == PB_EIMPOSSIBLE)
		rc = pb_ctx_fail(ctx, "every group is at its floor before the "
				 "target %g is reached: lower the target or "
				 "min_keep", pb_ctx_target(ctx)->amount);
	return rc;
}

/* The fewest channels each group keeps: its per-layer share (scope
 * layer) but at least min_keep; ineligible groups whole. *cand_ch gets
 * the channels that can be ranked. */
static int floors(taylor_state *s, pb_prune_ctx *ctx, int *floor_,
		  int *cand_ch)
{
	const pb_target *t = pb_ctx_target(ctx);
	int min_keep = (int)pb_ctx_opt_int(ctx, "min_keep");
	int rc;

	*cand_ch = 0;
	if (t->scope == PB_SCOPE_LAYER &&
	    (rc = pb_ctx_layer_budget(ctx, -1.0, floor_)))
		return rc;
	for (int g = 0; g < pb_ctx_n_groups(ctx); g++) {
		const pb_channel_group *grp = pb_ctx_group(ctx, g);

		if (!eligible(s, grp))
			floor_[g] = grp->n_channels;
		else if (t->scope != PB_SCOPE_LAYER || floor_[g] < min_keep)
			floor_[g] = min_keep < grp->n_channels ? min_keep :
				    grp->n_channels;
		if (eligible(s, grp))
			*cand_ch += grp->n_channels;
	}
	return 0;
}

static int taylor_prune(void *state, pb_prune_ctx *ctx)
{
	taylor_state *s = state;
	int interval = (int)pb_ctx_opt_int(ctx, "interval");
	int per_step = (int)pb_ctx_opt_int(ctx, "per_step");
	int logs = pb_ctx_opt_bool(ctx, "log_scores");
	int n = pb_ctx_n_groups(ctx), rc, done = 0, step = 0, cand_ch;
	int *floor_ = calloc((size_t)n + 1, sizeof *floor_);

	if (!floor_)
		return pb_ctx_fail(ctx, "out of memory");
	if ((rc = check_groups(s, ctx)) ||
	    (rc = floors(s, ctx, floor_, &cand_ch)) ||
	    (rc = pb_ctx_remove_lowest(ctx, NULL, NULL, 0, &done)))
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
		if ((rc = prune_step(s, ctx, floor_, per_step, &done)))
			break;
	}
	if (!rc)
		pb_ctx_log(ctx, "target reached after %d pruning steps", step);
out:
	free_acc(s);
	free(floor_);
	return rc;
}

PB_PRUNER_DEFINE(taylor, .version = "1.0",
	.granularity = PB_GRANULARITY_CHANNEL,
	.description = "iteratively removes the channels with the smallest "
		       "first-order Taylor importance while fine-tuning",
	.citation = "Molchanov, Mallya, Tyree, Frosio, Kautz. Importance "
		    "Estimation for Neural Network Pruning. CVPR 2019",
	PB_PRUNER_OPTIONS(taylor_options), .create = taylor_create,
	.destroy = taylor_destroy, .after_backward = taylor_after_backward,
	.prune = taylor_prune)
