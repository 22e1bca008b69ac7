/* What a model holds of each quantity a target can name (prunable
 * weights and their zeros, parameters, MACs, prunable channels), and the
 * fraction of one of them removed between two models: the one place
 * where "reached" is computed, for pb_prune_run's report, a plugin's
 * rounds and the runner's record alike. */
#include <stdlib.h>

#include "prune/prune_impl.h"

int pbi_measure_model(pb_model *m, pbi_measure *out, pb_error *err)
{
	pb_channel_group *g = NULL;
	int n = 0, rc;

	*out = (pbi_measure){ 0 };
	for (int i = 0; i < pb_model_n_params(m); i++) {
		const pb_param *p = pb_model_param(m, i);
		uint64_t zeros = 0;

		for (size_t j = 0; j < p->n; j++) {
			const int zero = p->data[j] == 0.0f;

			if (p->trainable)
				out->nonzero += !zero;
			zeros += zero;
		}
		if (p->kind != PB_PARAM_WEIGHT)
			continue;
		out->weights += p->n;
		out->zeros += zeros;
		/* Each weight is used the same number of times (out_h x
		 * out_w), so the layer's MACs divide exactly. */
		if (p->n)
			out->macs_effective += pb_model_layer_macs(m, p->layer) /
					       p->n * (p->n - zeros);
	}
	out->params = pb_model_count_params(m);
	out->macs = pb_model_count_macs(m);
	if ((rc = pbi_groups_derive(m, &g, &n, err)))
		return rc;
	for (int i = 0; i < n; i++)
		if (g[i].prunable)
			out->channels += g[i].n_channels;
	free(g);
	return 0;
}

/* Sparsity is a property of the model alone (zeros over prunable
 * weights); the other kinds are removed fractions relative to `before`. */
double pbi_measure_reached(pb_target_kind kind, const pbi_measure *before,
			   const pbi_measure *after)
{
	switch (kind) {
	case PB_TARGET_SPARSITY:
		return after->weights ? (double)after->zeros /
		       (double)after->weights : 0.0;
	case PB_TARGET_CHANNELS:
		return before->channels ? 1.0 - (double)after->channels /
		       before->channels : 0.0;
	case PB_TARGET_PARAMS:
		return before->params ? 1.0 - (double)after->params /
		       (double)before->params : 0.0;
	case PB_TARGET_MACS:
		return before->macs ? 1.0 - (double)after->macs /
		       (double)before->macs : 0.0;
	}
	return 0.0;
}

int pbi_reached_between(pb_model *before, pb_model *after,
			pb_target_kind kind, double *reached, pb_error *err)
{
	pbi_measure b, a;
	int rc;

	if ((rc = pbi_measure_model(before, &b, err)) ||
	    (rc = pbi_measure_model(after, &a, err)))
		return rc;
	*reached = pbi_measure_reached(kind, &b, &a);
	return 0;
}
