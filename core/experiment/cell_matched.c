/* The matched-budget control of a cell: the dense model, unpruned,
 * trained exactly as the pruned one was, with the trunk rounds it shares
 * kept in the cache. Part of one cell's pipeline (cell.c). */
#include <stdio.h>
#include <stdlib.h>

#include "base/util.h"
#include "experiment/cell_impl.h"

/* The key of the trunk the cell's pruning phase went through (the
 * schedule's or the plugin's), and how many of its rounds it took; NULL
 * when none. */
static const char *cell_trunk(const pbi_cell *x, int *K)
{
	*K = 0;
	for (int i = 0; i < x->n_recs; i++)
		if (x->recs[i].trunk > *K)
			*K = x->recs[i].trunk;
	if (!*K)
		return NULL;
	return x->trunk_key[0] ? x->trunk_key : x->trunk_info.key[0] ?
	       x->trunk_info.key : NULL;
}

/* matched_dense: a copy of the dense model, unpruned, trained exactly as
 * the cell's model was (the recorded trainings of the pruning phase, in
 * order, then the fine-tune), so that "pruned vs dense" is not "trained
 * longer vs not". The trainings of trunk rounds follow the trunk's rule:
 * seeded from the trunk's key, and the state after each kept in the
 * cache, so the controls of lower targets reuse the highest's. Its
 * failure is recorded with it and leaves the pruned result standing. */
void pbi_cell_matched_control(pbi_cell *x)
{
	const pb_cell_env *env = x->env;
	pb_record *r = &x->res->rec;
	pb_error err = { 0 }, *saved = x->err;
	pb_model *m = NULL;
	pbi_trunk *tc = NULL;
	char *csv = pbi_cell_file(x, ".matched.csv"), seed[64] = "";
	double t = pbi_now();
	int rc, K = 0, start = 0;
	const char *key = cell_trunk(x, &K);

	r->has_matched = 1;
	r->matched_epochs = r->prune_epochs + env->finetune->epochs;
	x->err = &err;
	if (x->recs_failed)
		rc = pb_error_set(&err, PB_ENOMEM, "out of memory (recording "
				  "the trainings)");
	else
		rc = pb_model_clone(&m, env->dense, &err);
	if (!rc && key) {
		char text[96];

		snprintf(seed, sizeof seed, "trunk %s matched", key);
		snprintf(text, sizeof text, "matched dense control of trunk %s",
			 key);
		if (env->trunk_dir &&
		    !(rc = pbi_trunk_open(&tc, env->trunk_dir, text, env->log,
					  &err))) {
			pbi_trunk_state st = { 0 };

			rc = pbi_trunk_deepest(tc, K, &st, &start, &err);
			if (!rc && start) {
				pb_model_free(m);
				m = st.model;
				st.model = NULL;
				if (env->log)
					fprintf(env->log, "matched dense "
						"control: trunk rounds 1-%d "
						"read from the cache\n", start);
			}
			pbi_trunk_state_free(&st);
		}
	}
	if (env->log && !rc)
		fprintf(env->log, "matched dense control: %d training%s of the "
			"pruning phase, then the fine-tune (%.3g epochs)\n",
			x->n_recs, x->n_recs == 1 ? "" : "s",
			r->matched_epochs);
	for (int i = 0; i < x->n_recs && !rc; i++) {
		const int k = x->recs[i].trunk;
		char phase[32];

		if (!k && tc) {
			/* Past the trunk: let other cells have it. */
			pbi_trunk_close(tc);
			tc = NULL;
		}
		if (k && k <= start)
			continue;
		snprintf(phase, sizeof phase, "matched%d", i + 1);
		x->seed_prefix = k ? seed : NULL;
		rc = pbi_cell_train(x, m, &x->recs[i].r,
				    x->recs[i].max_steps, &x->recs[i].span,
				    NULL, phase);
		x->seed_prefix = NULL;
		/* The end of trunk round k: keep its state. */
		if (!rc && k && tc && (i + 1 == x->n_recs ||
				       x->recs[i + 1].trunk != k)) {
			pbi_trunk_state st = { .model = m };
			pb_error werr = { 0 };

			if (pbi_trunk_store(tc, k, &st, &werr) && env->log)
				fprintf(env->log, "%s\n", werr.msg);
		}
	}
	pbi_trunk_close(tc);
	if (!rc)
		rc = pbi_cell_train(x, m, env->finetune, 0, NULL, csv,
				    "matched-finetune");
	if (!rc)
		rc = pbi_cell_evaluate(x, m, PBI_CELL_TEST, &r->matched_top1);
	if (!rc)
		rc = pbi_cell_evaluate(x, m, PBI_CELL_VAL, &r->matched_val);
	r->matched_time_s = pbi_now() - t;
	if (rc) {
		pb_record_set(&r->matched_error, err.msg[0] ? err.msg :
			      pb_strerror(rc));
		if (env->log)
			fprintf(env->log, "matched dense control failed: %s\n",
				r->matched_error);
	}
	x->err = saved;
	pb_model_free(m);
	free(csv);
}
