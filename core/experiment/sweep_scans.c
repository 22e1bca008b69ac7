/* The sweep's sensitivity phase: between the dense models and the cells,
 * every scan a method with layers = sensitivity:D needs is made once
 * (with all the sweep's threads) and cached, so that the cells, which
 * read it, never scan side by side. */
#include <stdio.h>

#include "experiment/experiment_impl.h"
#include "experiment/sweep.h"

int pbi_sweep_scans(pbi_sweep *S, const pb_cell *cells, const int *todo,
		    int n_todo, int threads, pb_error *err)
{
	const pb_experiment *e = S->e;

	(void)err;
	for (int mi = 0; mi < e->n_methods; mi++) {
		const pb_exp_method *m = &e->methods[mi];

		if (m->sens_drop < 0)
			continue;
		for (int s = 0; s < e->n_seeds; s++) {
			pb_sensitivity *scan = NULL;
			pb_error serr = { 0 };
			int need = 0;
			double t0 = pbi_now();

			for (int i = 0; i < n_todo && !need; i++)
				need = cells[todo[i]].method_index == mi &&
				       cells[todo[i]].seed == e->seeds[s];
			if (!need || !S->dense[s])
				continue;
			if (pbi_sens_scan(e, m, e->seeds[s], S->dense[s], &S->sp,
					  threads, S->child ? NULL : S->prog.out,
					  &scan, &serr))
				pbi_progress_line(&S->prog, "sensitivity scan of "
						  "%s, seed %lu: %s", m->name,
						  e->seeds[s], serr.msg);
			else
				pbi_progress_line(&S->prog, "sensitivity scan of "
						  "%s, seed %lu: %d layers x %d "
						  "levels (%.1fs)", m->name,
						  e->seeds[s], scan->n_layers,
						  scan->n_levels,
						  pbi_now() - t0);
			pb_sensitivity_free(scan);
		}
	}
	return 0;
}
