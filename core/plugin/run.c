/* pb_prune_run: one pruner on one model. Makes the context around a copy
 * of the dense model, drives create / prune / destroy, and measures what
 * was reached itself (not trusting the plugin), so every pruner is
 * reported the same way. */
#include <stdlib.h>
#include <string.h>

#include "nn/mask.h"
#include "nn/model_impl.h"
#include "plugin/ctx_impl.h"
#include "prune/prune_impl.h"
#include "base/util.h"

int pbi_report_measure(pb_model *m, const pbi_measure *before,
		       pb_prune_report *r, pb_error *err)
{
	pbi_measure after;
	int rc;

	if ((rc = pbi_measure_model(m, &after, err)))
		return rc;
	r->params_after = after.params;
	r->nonzero_after = after.nonzero;
	r->macs_after = after.macs;
	r->channels_after = after.channels;
	r->reached = pbi_measure_reached(r->kind, before, &after);
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

int pbi_prune_apply(pb_model **model, const pb_prune_setup *su,
		    pb_prune_report *rep, pb_error *err)
{
	pb_error local = { 0 };
	pb_prune_ctx ctx;
	pb_prune_report r = { 0 };
	const pb_pruner *pr;
	const char *phase = "create";
	double start = pbi_now();
	int rc, created = 0;

	if (!err)
		err = &local;
	if ((rc = check_setup(*model, su, err)))
		return rc;
	pr = su->pruner;
	pbi_ctx_init(&ctx, *model, su, su->options, err);
	if (!ctx.opts) {
		if ((rc = pb_options_new(&ctx.own_opts, pr, err)))
			goto out;
		ctx.opts = ctx.own_opts;
	}

	r.kind = su->target->kind;
	r.asked = su->target->amount;
	if ((rc = pbi_measure_model(ctx.model, &ctx.before, err)))
		goto out;
	r.params_before = ctx.before.params;
	r.nonzero_before = ctx.before.nonzero;
	r.macs_before = ctx.before.macs;
	r.channels_before = ctx.before.channels;

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
	rc = pbi_report_measure(ctx.model, &ctx.before, &r, err);
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
	/* Channel removal replaces the model inside the context. */
	*model = ctx.model;
	if (rc)
		return rc;
	r.seconds = pbi_now() - start;
	if (rep)
		*rep = r;
	return 0;
}

int pb_prune_run(const pb_model *dense, const pb_prune_setup *su,
		 pb_model **pruned, pb_prune_report *rep, pb_error *err)
{
	pb_model *m = NULL;
	int rc;

	*pruned = NULL;
	if ((rc = check_setup(dense, su, err)) ||
	    (rc = pb_model_clone(&m, dense, err)))
		return rc;
	if ((rc = pbi_prune_apply(&m, su, rep, err))) {
		pb_model_free(m);
		return rc;
	}
	*pruned = m;
	return 0;
}
