/* pb_prune_run: one pruner on one model. Makes the context around a copy
 * of the dense model, drives create / prune / destroy, and measures what
 * was reached itself (not trusting the plugin), so every pruner is
 * reported the same way. */
#include <stdlib.h>
#include <string.h>

#include "model_impl.h"
#include "prune_ctx_impl.h"
#include "prune_impl.h"
#include "util.h"

const char *pb_target_kind_name(pb_target_kind k)
{
	switch (k) {
	case PB_TARGET_SPARSITY: return "sparsity";
	case PB_TARGET_CHANNELS: return "channels";
	case PB_TARGET_PARAMS: return "params";
	case PB_TARGET_MACS: return "macs";
	}
	return "?";
}

int pb_target_parse(pb_target *t, const char *text, pb_error *err)
{
	return pbi_target_parse(t, text, err);
}

void pb_target_format(const pb_target *t, char *buf, size_t n)
{
	pbi_target_format(t, buf, n);
}

const char *pb_granularity_name(pb_granularity g)
{
	switch (g) {
	case PB_GRANULARITY_WEIGHT: return "weight";
	case PB_GRANULARITY_CHANNEL: return "channel";
	}
	return "?";
}

/* Zeros and total of the conv/linear weights (the prunable ones). */
static void weight_zeros(pb_model *m, uint64_t *zeros, uint64_t *total)
{
	*zeros = *total = 0;
	for (int i = 0; i < pb_model_n_params(m); i++) {
		const pb_param *p = pb_model_param(m, i);

		if (p->kind != PB_PARAM_WEIGHT)
			continue;
		*total += p->n;
		for (size_t j = 0; j < p->n; j++)
			*zeros += p->data[j] == 0.0f;
	}
}

/* Non-zero trainable parameters. */
static uint64_t nonzero_params(pb_model *m)
{
	uint64_t nz = 0;

	for (int i = 0; i < pb_model_n_params(m); i++) {
		const pb_param *p = pb_model_param(m, i);

		if (!p->trainable)
			continue;
		for (size_t j = 0; j < p->n; j++)
			nz += p->data[j] != 0.0f;
	}
	return nz;
}

static int prunable_channels(const pb_model *m, int *count, pb_error *err)
{
	pb_channel_group *g = NULL;
	int n = 0, rc = pbi_groups_derive(m, &g, &n, err);

	*count = 0;
	if (rc)
		return rc;
	for (int i = 0; i < n; i++)
		if (g[i].prunable)
			*count += g[i].n_channels;
	free(g);
	return 0;
}

int pbi_report_measure(pb_model *m, pb_prune_report *r, pb_error *err)
{
	uint64_t z1, t1;
	int rc;

	r->params_after = pb_model_count_params(m);
	r->nonzero_after = nonzero_params(m);
	r->macs_after = pb_model_count_macs(m);
	weight_zeros(m, &z1, &t1);
	if ((rc = prunable_channels(m, &r->channels_after, err)))
		return rc;
	switch (r->kind) {
	case PB_TARGET_SPARSITY:
		r->reached = t1 ? (double)z1 / (double)t1 : 0.0;
		break;
	case PB_TARGET_CHANNELS:
		r->reached = r->channels_before ? 1.0 -
			     (double)r->channels_after / r->channels_before :
			     0.0;
		break;
	case PB_TARGET_PARAMS:
		r->reached = r->params_before ? 1.0 -
			     (double)r->params_after /
			     (double)r->params_before : 0.0;
		break;
	case PB_TARGET_MACS:
		r->reached = r->macs_before ? 1.0 - (double)r->macs_after /
			     (double)r->macs_before : 0.0;
		break;
	}
	return 0;
}

static int check_setup(const pb_model *m, const pb_prune_setup *su,
		       pb_error *err)
{
	const pb_target *t = su->target;

	if (!su->pruner || !su->target || !su->rng)
		return pb_error_set(err, PB_EINVAL, "pb_prune_run needs a "
				    "pruner, a target and an RNG");
	if (!(t->amount >= 0.0 && t->amount < 1.0))
		return pb_error_set(err, PB_EINVAL, "target %s=%g: the amount "
				    "removed must be in [0, 1)",
				    pb_target_kind_name(t->kind), t->amount);
	if (su->pruner->granularity == PB_GRANULARITY_WEIGHT &&
	    t->kind != PB_TARGET_SPARSITY)
		return pb_error_set(err, PB_EINVAL, "plugin '%s' prunes "
				    "individual weights, so its target must be "
				    "sparsity=S, not %s=%g (weight pruning does "
				    "not remove channels or MACs)",
				    su->pruner->name,
				    pb_target_kind_name(t->kind), t->amount);
	if (su->pruner->granularity == PB_GRANULARITY_CHANNEL &&
	    t->kind == PB_TARGET_SPARSITY)
		return pb_error_set(err, PB_EINVAL, "plugin '%s' removes "
				    "channels, so its target must be "
				    "channels=R, params=P or macs=F, not "
				    "sparsity=%g", su->pruner->name, t->amount);
	for (int i = 0; i < t->n_overrides; i++)
		if (pb_model_find_layer(m, t->overrides[i].layer) < 0)
			return pb_error_set(err, PB_ENOTFOUND, "target "
					    "override '%s=%g': model '%s' has "
					    "no layer '%s' (see prunebench "
					    "info)", t->overrides[i].layer,
					    t->overrides[i].amount,
					    pb_model_name(m),
					    t->overrides[i].layer);
	return 0;
}

int pb_prune_run(const pb_model *dense, const pb_prune_setup *su,
		 pb_model **pruned, pb_prune_report *rep, pb_error *err)
{
	pb_error local = { 0 };
	pb_prune_ctx ctx;
	pb_prune_report r = { 0 };
	pb_model *m = NULL;
	const pb_pruner *pr;
	const char *phase = "create";
	uint64_t z0, t0;
	double start = pbi_now();
	int rc, created = 0;

	*pruned = NULL;
	if (!err)
		err = &local;
	if ((rc = check_setup(dense, su, err)))
		return rc;
	pr = su->pruner;
	if ((rc = pb_model_clone(&m, dense, err)))
		return rc;
	pbi_ctx_init(&ctx, m, su, su->options, err);
	if (!ctx.opts) {
		if ((rc = pb_options_new(&ctx.own_opts, pr, err)))
			goto out;
		ctx.opts = ctx.own_opts;
	}

	r.kind = su->target->kind;
	r.asked = su->target->amount;
	r.params_before = pb_model_count_params(m);
	r.nonzero_before = nonzero_params(m);
	r.macs_before = pb_model_count_macs(m);
	weight_zeros(m, &z0, &t0);
	if ((rc = prunable_channels(m, &r.channels_before, err)))
		goto out;

	ctx.report = &r;
	pb_error_clear(err);
	if (pr->create) {
		rc = pr->create(&ctx, &ctx.state);
		if (rc)
			goto hook_failed;
		created = 1;
	}
	phase = "prune";
	rc = pr->prune(ctx.state, &ctx);
	if (rc)
		goto hook_failed;
	/* Whatever the plugin did to weights, pruned ones end at zero. */
	pbi_mask_apply(ctx.model);

	if ((rc = pbi_report_measure(ctx.model, &r, err)))
		goto out;
	goto out;

hook_failed:
	if (!err->msg[0])
		pb_error_set(err, rc, "plugin '%s': %s failed with %s but gave "
			     "no message (it should call pb_ctx_fail)",
			     pr->name, phase, pb_strerror(rc));
	else if (strncmp(err->msg, "plugin '", 8))
		pb_error_prefix(err, "plugin '%s' (%s): ", pr->name, phase);
out:
	if (created && pr->destroy)
		pr->destroy(ctx.state);
	pbi_ctx_release(&ctx);
	if (rc) {
		pb_model_free(ctx.model);
		return rc;
	}
	r.seconds = pbi_now() - start;
	if (rep)
		*rep = r;
	*pruned = ctx.model;
	return 0;
}
