/* Pruning at initialisation (pb_pruner.at_init: SNIP, SynFlow): the
 * model such a plugin prunes, the model the dense training started from,
 * drawn again from the seed; and what such a method may not ask for,
 * refused when the experiment is read and again when a cell runs. The
 * cell's path itself is in cell.c (run_at_init). */
#include <stdio.h>

#include "experiment/experiment_impl.h"

/* Why a method pruning at initialisation cannot have this plan or the
 * matched control, or NULL when it can. */
static const char *refusal(const pb_prune_plan *plan, int matched)
{
	if (plan && plan->schedule != PB_PRUNE_ONESHOT)
		return "it prunes before any training, so there is nothing to "
		       "train between rounds or to prune during (a plugin "
		       "that prunes in rounds does them itself, like "
		       "synflow's iterations): use schedule = oneshot";
	if (matched)
		return "its pruned model trains with the dense recipe, as the "
		       "dense model did, so the dense row is its control at "
		       "matched training: remove matched_dense";
	return NULL;
}

int pbi_at_init_check_method(pbi_ini_doc *c, const pb_exp_method *m,
			     const pbi_ini_section *s)
{
	const pb_pruner *pr = pb_plugin_pruner(m->plugin);
	const char *why = pr->at_init ? refusal(&m->plan, m->matched) : NULL;

	if (!why)
		return 0;
	return pbi_ini_err(c, PB_EPARSE, s->line, "[%s]: plugin '%s' prunes "
			   "at initialisation; %s", s->name, pr->name, why);
}

int pbi_at_init_check(const pb_cell_env *env, pb_error *err)
{
	const char *why = refusal(env->plan, env->matched);

	if (why)
		return pb_error_set(err, PB_EINVAL, "plugin '%s' prunes at "
				    "initialisation; %s", env->pruner->name,
				    why);
	if (!env->dense_recipe)
		return pb_error_set(err, PB_EINVAL, "plugin '%s' prunes at "
				    "initialisation, which needs the dense "
				    "recipe (its init, and the training after "
				    "pruning)", env->pruner->name);
	if (!env->has_seed)
		return pb_error_set(err, PB_EINVAL, "plugin '%s' prunes at "
				    "initialisation, which needs the seed the "
				    "dense model was trained from (the cell's "
				    "environment has none)", env->pruner->name);
	return 0;
}

int pbi_at_init_model(const pb_model *dense, unsigned long seed,
		      pb_init_kind init, pb_model **out, pb_error *err)
{
	gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
	pb_model *m = NULL;
	int rc;

	*out = NULL;
	if (!rng)
		return pb_error_set(err, PB_ENOMEM, "out of memory");
	/* Seeded by the seed alone, as the dense cache seeds the dense
	 * training (dense_cache.c): the same draws, so the same weights. */
	gsl_rng_set(rng, seed);
	rc = pb_model_clone(&m, dense, err);
	if (!rc)
		rc = pb_model_init(m, rng, init, err);
	gsl_rng_free(rng);
	if (rc) {
		pb_model_free(m);
		return rc;
	}
	*out = m;
	return 0;
}
