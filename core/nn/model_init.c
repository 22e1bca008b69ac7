/* Initialisation of a model's parameters from an RNG stream. */
#include <math.h>

#include <gsl/gsl_randist.h>

#include "nn/model_impl.h"

static void fill_uniform(float *a, size_t n, double bound, gsl_rng *rng)
{
	for (size_t i = 0; i < n; i++)
		a[i] = (float)(bound * (2.0 * gsl_rng_uniform(rng) - 1.0));
}

static void fill_const(float *a, size_t n, float v)
{
	for (size_t i = 0; i < n; i++)
		a[i] = v;
}

/* fan_in of a conv or linear weight: what PyTorch's default init uses
 * (kaiming_uniform with a = sqrt(5) gives bound 1/sqrt(fan_in)), for
 * weights and biases alike. */
static double fan_in(const pb_model *m, const pb_param *p)
{
	const pbi_node *n = &m->nodes[p->layer];

	if (n->info.type == PB_LAYER_CONV)
		return (double)n->info.in_c * n->info.kernel * n->info.kernel;
	return (double)n->in_n;
}

static void init_param(const pb_model *m, pb_param *p, gsl_rng *rng,
		       pb_init_kind kind)
{
	const pbi_node *n = &m->nodes[p->layer];
	const pb_layer_info *li = &n->info;

	switch (p->kind) {
	case PB_PARAM_WEIGHT:
		if (li->type == PB_LAYER_CONV &&
		    kind == PB_INIT_KAIMING_OUT) {
			/* torchvision: kaiming_normal_(mode="fan_out",
			 * nonlinearity="relu"), std = sqrt(2 / (OC*K*K)). */
			double sd = sqrt(2.0 / ((double)li->out_c *
						li->kernel * li->kernel));
			for (size_t i = 0; i < p->n; i++)
				p->data[i] = (float)gsl_ran_gaussian(rng, sd);
		} else {
			fill_uniform(p->data, p->n, 1.0 / sqrt(fan_in(m, p)),
				     rng);
		}
		break;
	case PB_PARAM_BIAS:
		fill_uniform(p->data, p->n, 1.0 / sqrt(fan_in(m, p)), rng);
		break;
	case PB_PARAM_BN_GAMMA:
	case PB_PARAM_BN_VAR:
		fill_const(p->data, p->n, 1.0f);
		break;
	case PB_PARAM_BN_BETA:
	case PB_PARAM_BN_MEAN:
		fill_const(p->data, p->n, 0.0f);
		break;
	case PB_PARAM_MASK:
	case PB_PARAM_ACT_QUANT:
		break;
	}
}

int pb_model_init(pb_model *m, gsl_rng *rng, pb_init_kind kind,
		  pb_error *err)
{
	if (!rng)
		return pb_error_set(err, PB_EINVAL, "pb_model_init: rng is NULL; "
				    "pass a seeded gsl_rng");
	if (kind != PB_INIT_KAIMING_OUT && kind != PB_INIT_TORCH_DEFAULT)
		return pb_error_set(err, PB_EINVAL, "pb_model_init: unknown "
				    "initialisation %d", (int)kind);
	/* Serial and in parameter order, so a seed fixes every weight. */
	for (int i = 0; i < m->n_params; i++)
		init_param(m, &m->params[i], rng, kind);
	return 0;
}

int pb_model_init_params(pb_model *m, gsl_rng *rng, pb_error *err)
{
	return pb_model_init(m, rng, PB_INIT_KAIMING_OUT, err);
}
