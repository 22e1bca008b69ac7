/* Scores and selection under the cell's target: per-weight scores and
 * masking (pb_ctx_select_weights), per-channel scores, selection and
 * physical removal (pb_ctx_select_channels, pb_ctx_remove_channels,
 * pb_ctx_keep_channels), and the budget and cost of a channel
 * configuration a plugin chooses itself. */
#include <stdlib.h>
#include <string.h>

#include "plugin/ctx_impl.h"
#include "prune/prune_impl.h"

/* ---- weight selection ---------------------------------------------------- */

void pb_ctx_weight_scores_free(pb_weight_scores *s)
{
	if (!s)
		return;
	for (int i = 0; s->score && i < s->n; i++)
		free(s->score[i]);
	free(s->score);
	free(s->params);
	free(s->exclude);
	free(s);
}

int pb_ctx_weight_scores(pb_prune_ctx *ctx, pb_weight_scores **out)
{
	pb_model *m = ctx->model;
	pb_weight_scores *s = calloc(1, sizeof *s);
	int np = pb_model_n_params(m), n = 0;

	*out = NULL;
	if (!s)
		goto oom;
	s->params = calloc((size_t)np + 1, sizeof *s->params);
	s->score = calloc((size_t)np + 1, sizeof *s->score);
	s->exclude = calloc((size_t)np + 1, 1);
	if (!s->params || !s->score || !s->exclude)
		goto oom;
	for (int i = 0; i < np; i++) {
		pb_param *p = pb_model_param(m, i);

		if (p->kind != PB_PARAM_WEIGHT)
			continue;
		s->params[n] = p;
		s->score[n] = calloc(p->n, sizeof(float));
		s->n = ++n;
		if (!s->score[n - 1])
			goto oom;
	}
	*out = s;
	return 0;
oom:
	pb_ctx_weight_scores_free(s);
	return pb_error_set(ctx->err, PB_ENOMEM, "out of memory (weight "
			    "scores)");
}

int pb_ctx_select_weights(pb_prune_ctx *ctx, pb_weight_scores *s,
			  double amount_override)
{
	const pb_target *t = ctx->setup->target;
	double amount = amount_override >= 0 ? amount_override : t->amount;
	double reached = 0;
	pb_param **params = NULL;
	float **scores = NULL;
	int n = 0, rc;

	if (!s)
		return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': "
				    "pb_ctx_select_weights without scores",
				    ctx->pr->name);
	if (t->kind != PB_TARGET_SPARSITY) {
		rc = pb_error_set(ctx->err, PB_EINVAL, "plugin '%s' selects "
				  "weights, which needs a sparsity target, but "
				  "the target is %s=%g: use sparsity=S",
				  ctx->pr->name, pb_target_kind_name(t->kind),
				  t->amount);
		goto out;
	}
	if ((rc = pbi_ctx_check_amount(ctx, amount, "sparsity")))
		goto out;
	params = malloc(sizeof *params * ((size_t)s->n + 1));
	scores = malloc(sizeof *scores * ((size_t)s->n + 1));
	if (!params || !scores) {
		rc = pb_error_set(ctx->err, PB_ENOMEM, "out of memory");
		goto out;
	}
	/* Excluded tensors are simply not offered to the selection. */
	for (int i = 0; i < s->n; i++) {
		if (s->exclude[i])
			continue;
		params[n] = s->params[i];
		scores[n++] = s->score[i];
	}
	if (n == 0) {
		rc = pb_error_set(ctx->err, PB_EIMPOSSIBLE, "plugin '%s' "
				  "excluded every weight tensor: nothing left "
				  "to prune", ctx->pr->name);
		goto out;
	}
	rc = pbi_select_weights(ctx->model, t, params, scores, n, amount,
				&reached, ctx->err);
out:
	free(params);
	free(scores);
	pb_ctx_weight_scores_free(s);
	return rc;
}

/* ---- channels ---------------------------------------------------------- */

int pb_ctx_n_groups(pb_prune_ctx *ctx)
{
	return pbi_ctx_groups(ctx) ? 0 : ctx->n_groups;
}

const pb_channel_group *pb_ctx_group(pb_prune_ctx *ctx, int g)
{
	if (pbi_ctx_groups(ctx) || g < 0 || g >= ctx->n_groups)
		return NULL;
	return &ctx->groups[g];
}

void pb_ctx_channel_scores_free(pb_channel_scores *s)
{
	if (!s)
		return;
	for (int g = 0; s->score && g < s->n; g++)
		free(s->score[g]);
	free(s->score);
	free(s->exclude);
	free(s);
}

int pb_ctx_channel_scores(pb_prune_ctx *ctx, pb_channel_scores **out)
{
	pb_channel_scores *s;
	int rc;

	*out = NULL;
	if ((rc = pbi_ctx_groups(ctx)))
		return rc;
	s = calloc(1, sizeof *s);
	if (!s)
		goto oom;
	s->score = calloc((size_t)ctx->n_groups + 1, sizeof *s->score);
	s->exclude = calloc((size_t)ctx->n_groups + 1, 1);
	if (!s->score || !s->exclude)
		goto oom;
	for (int g = 0; g < ctx->n_groups; g++) {
		s->score[g] = calloc((size_t)ctx->groups[g].n_channels + 1,
				     sizeof(float));
		s->n = g + 1;
		if (!s->score[g])
			goto oom;
	}
	*out = s;
	return 0;
oom:
	pb_ctx_channel_scores_free(s);
	return pb_error_set(ctx->err, PB_ENOMEM, "out of memory (channel "
			    "scores)");
}

static void free_keep(uint8_t **keep, int n)
{
	for (int g = 0; keep && g < n; g++)
		free(keep[g]);
	free(keep);
}

/* keep[g], all ones. */
static uint8_t **alloc_keep(const pb_channel_group *groups, int n)
{
	uint8_t **keep = calloc((size_t)n + 1, sizeof *keep);

	for (int g = 0; keep && g < n; g++) {
		keep[g] = malloc((size_t)groups[g].n_channels + 1);
		if (!keep[g]) {
			free_keep(keep, n);
			return NULL;
		}
		memset(keep[g], 1, (size_t)groups[g].n_channels);
	}
	return keep;
}

static int rebuild(pb_prune_ctx *ctx, const pb_channel_group *groups,
		   const uint8_t *const *keep)
{
	pb_model *nm = NULL;
	int rc = pbi_remove_channels(ctx->model, groups, ctx->n_groups, keep,
				     &nm, ctx->err);

	if (rc)
		return rc;
	pbi_ctx_replace_model(ctx, nm);
	return 0;
}

int pb_ctx_select_channels(pb_prune_ctx *ctx, pb_channel_scores *s,
			   double amount_override, int min_keep)
{
	const pb_target *t = ctx->setup->target;
	double amount = amount_override >= 0 ? amount_override : t->amount;
	double reached = 0;
	pb_channel_group *groups = NULL;
	uint8_t **keep = NULL;
	int rc;

	if (!s)
		return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': "
				    "pb_ctx_select_channels without scores",
				    ctx->pr->name);
	if ((rc = pbi_ctx_refuse_in_training(ctx, "pb_ctx_select_channels")) ||
	    (rc = pbi_ctx_check_channel_target(ctx, t)) ||
	    (rc = pbi_ctx_check_amount(ctx, amount, "channel")) ||
	    (rc = pbi_ctx_groups(ctx)))
		goto out;
	if (s->n != ctx->n_groups) {
		rc = pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': channel "
				  "scores are for %d groups but the model has "
				  "%d (get fresh scores after removing "
				  "channels)", ctx->pr->name, s->n,
				  ctx->n_groups);
		goto out;
	}
	/* Excluded groups are offered as non-prunable, so the selection
	 * neither ranks nor cuts them. */
	groups = malloc(sizeof *groups * ((size_t)ctx->n_groups + 1));
	keep = alloc_keep(ctx->groups, ctx->n_groups);
	if (!groups || !keep) {
		rc = pb_error_set(ctx->err, PB_ENOMEM, "out of memory");
		goto out;
	}
	memcpy(groups, ctx->groups, sizeof *groups * (size_t)ctx->n_groups);
	for (int g = 0; g < ctx->n_groups; g++)
		if (s->exclude[g])
			groups[g].prunable = 0;
	rc = pbi_select_channels(ctx->model, groups, ctx->n_groups, t,
				 s->score, amount, min_keep < 1 ? 1 : min_keep,
				 keep, &reached, ctx->err);
	if (!rc)
		rc = rebuild(ctx, groups, (const uint8_t *const *)keep);
out:
	free_keep(keep, ctx->n_groups);
	free(groups);
	pb_ctx_channel_scores_free(s);
	return rc;
}

int pb_ctx_remove_channels(pb_prune_ctx *ctx, int g, const int *channels,
			   int n)
{
	uint8_t **keep;
	int rc;

	if ((rc = pbi_ctx_refuse_in_training(ctx, "pb_ctx_remove_channels")) ||
	    (rc = pbi_ctx_groups(ctx)))
		return rc;
	if (g < 0 || g >= ctx->n_groups)
		return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': no "
				    "channel group %d (the model has %d)",
				    ctx->pr->name, g, ctx->n_groups);
	keep = calloc((size_t)ctx->n_groups + 1, sizeof *keep);
	if (!keep || !(keep[g] = malloc((size_t)ctx->groups[g].n_channels))) {
		free(keep);
		return pb_error_set(ctx->err, PB_ENOMEM, "out of memory");
	}
	memset(keep[g], 1, (size_t)ctx->groups[g].n_channels);
	for (int i = 0; i < n; i++) {
		if (channels[i] < 0 || channels[i] >= ctx->groups[g].n_channels) {
			rc = pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': "
					  "channel %d of group %d is out of "
					  "range (it has %d channels)",
					  ctx->pr->name, channels[i], g,
					  ctx->groups[g].n_channels);
			break;
		}
		keep[g][channels[i]] = 0;
	}
	if (!rc)
		rc = rebuild(ctx, ctx->groups, (const uint8_t *const *)keep);
	free_keep(keep, g + 1);
	return rc;
}

int pb_ctx_keep_channels(pb_prune_ctx *ctx, const uint8_t *const *keep)
{
	int rc;

	if ((rc = pbi_ctx_refuse_in_training(ctx, "pb_ctx_keep_channels")) ||
	    (rc = pbi_ctx_groups(ctx)))
		return rc;
	return rebuild(ctx, ctx->groups, keep);
}

int pb_ctx_layer_budget(pb_prune_ctx *ctx, double amount, int *keep)
{
	pb_target t = *ctx->setup->target;
	float **scores = NULL;
	uint8_t **k = NULL;
	double reached;
	int rc;

	if (amount < 0)
		amount = t.amount;
	if ((rc = pbi_ctx_check_channel_target(ctx, &t)) ||
	    (rc = pbi_ctx_check_amount(ctx, amount, "channel")) ||
	    (rc = pbi_ctx_groups(ctx)))
		return rc;
	/* The layer-scope selection with equal scores picks exactly the
	 * per-group counts a uniform per-layer ratio gives. */
	t.scope = PB_SCOPE_LAYER;
	scores = calloc((size_t)ctx->n_groups + 1, sizeof *scores);
	k = alloc_keep(ctx->groups, ctx->n_groups);
	if (!scores || !k) {
		rc = pb_error_set(ctx->err, PB_ENOMEM, "out of memory");
		goto out;
	}
	for (int g = 0; g < ctx->n_groups; g++) {
		scores[g] = calloc((size_t)ctx->groups[g].n_channels + 1,
				   sizeof(float));
		if (!scores[g]) {
			rc = pb_error_set(ctx->err, PB_ENOMEM, "out of memory");
			goto out;
		}
	}
	rc = pbi_select_channels(ctx->model, ctx->groups, ctx->n_groups, &t,
				 scores, amount, 1, k, &reached, ctx->err);
	for (int g = 0; !rc && g < ctx->n_groups; g++) {
		keep[g] = 0;
		for (int c = 0; c < ctx->groups[g].n_channels; c++)
			keep[g] += k[g][c] != 0;
	}
out:
	for (int g = 0; scores && g < ctx->n_groups; g++)
		free(scores[g]);
	free(scores);
	free_keep(k, ctx->n_groups);
	return rc;
}

int pb_ctx_config_cost(pb_prune_ctx *ctx, const int *kept, uint64_t *params,
		       uint64_t *macs)
{
	uint64_t p = 0, m = 0;
	int rc;

	if ((rc = pbi_ctx_groups(ctx)) || (rc = pbi_ctx_check_kept(ctx, kept)))
		return rc;
	pbi_config_cost(ctx->model, ctx->groups, ctx->n_groups, kept, &p, &m);
	if (params)
		*params = p;
	if (macs)
		*macs = m;
	return 0;
}
