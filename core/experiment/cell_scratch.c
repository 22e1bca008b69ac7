/* The scratch controls of a cell (Scratch-E, Scratch-B): the pruned
 * shape and mask trained again from a fresh initialisation. Part of one
 * cell's pipeline (cell.c). */
#include <stdio.h>

#include "experiment/cell_impl.h"
#include "nn/mask.h"
#include "prune/prune_impl.h"

/* "Rethinking the Value of Network Pruning" (Liu et al., 2019): the
 * pruned shape and mask from a fresh initialisation, trained with the
 * dense recipe for its epochs (Scratch-E), or for as many more as the
 * pruned model saves MACs, so that both spend the same computation
 * (Scratch-B; the paper doubles the epochs at most, scratch_b_cap). The
 * pruned MACs are the effective ones (zero weights skipped) for weight
 * pruning, as the authors count them. The schedule stretches with the
 * epochs: cosine over all of them, step milestones scaled. */
int pbi_cell_train_from_scratch(pbi_cell *x, pb_model *m, const char *csv)
{
	const pb_cell_env *env = x->env;
	pb_recipe r = *env->dense_recipe;
	int rc = pb_model_init(m, x->rng, r.init, x->err);

	if (rc)
		return rc;
	pbi_mask_apply(m);
	if (env->kind == PB_CELL_SCRATCH_B) {
		pbi_measure d, p;
		double cap = env->scratch_b_cap > 0 ? env->scratch_b_cap : 2.0;
		double f;

		if ((rc = pbi_measure_model(env->dense, &d, x->err)) ||
		    (rc = pbi_measure_model(m, &p, x->err)))
			return rc;
		f = p.macs_effective ? (double)d.macs /
		    (double)p.macs_effective : cap;
		f = f < 1.0 ? 1.0 : f > cap ? cap : f;
		r.epochs = (int)(env->dense_recipe->epochs * f);
		for (int i = 0; i < r.n_milestones; i++)
			r.milestones[i] = (int)(r.milestones[i] * f);
		if (env->log)
			fprintf(env->log, "scratch-B: %d epochs (%d x %.3g: "
				"dense MACs / pruned MACs %.3g, at most %g)\n",
				r.epochs, env->dense_recipe->epochs, f,
				p.macs_effective ? (double)d.macs /
				(double)p.macs_effective : 0.0, cap);
	}
	x->res->rec.scratch_epochs = r.epochs;
	return pbi_cell_train(x, m, &r, 0, NULL, csv,
			      env->kind == PB_CELL_SCRATCH_B ?
			      "scratch-b" : "scratch");
}
