/* Measuring a cell's final model: its metrics against the dense model
 * (then saved), their numbers in the record, and the warning when the
 * reached amount is far from the target. Part of one cell's pipeline
 * (cell.c). */
#include <math.h>
#include <stdio.h>

#include "experiment/cell_impl.h"
#include "prunebench/checkpoint.h"
#include "prunebench/target.h"

/* Measures the final model against the dense one and saves it. */
int pbi_cell_measure_and_save(pbi_cell *x, pb_model *m)
{
	const pb_cell_env *env = x->env;
	pb_metrics_opts mo;
	pb_model *ref = NULL;
	int rc;

	pb_metrics_opts_default(&mo);
	mo.latency = env->latency;
	pbi_cell_status(x, "metrics", 0, 0);
	/* Timing runs the reference's forward pass, which writes its
	 * activation buffers: the shared dense model is never run, a copy
	 * of it is. */
	if ((rc = pb_model_clone(&ref, env->dense, x->err)))
		return rc;
	rc = pb_metrics_compute(&x->res->mt, m, ref, &mo, x->err);
	pb_model_free(ref);
	if (rc)
		return rc;
	x->res->have_metrics = 1;
	if (env->out)
		rc = pb_model_save(m, env->out, x->err);
	return rc;
}

void pbi_cell_fill_metrics(pb_record *r, const pb_metrics *mt)
{
	r->params = (double)mt->params;
	r->nonzero = (double)mt->params_nonzero;
	r->macs = (double)mt->macs;
	r->macs_effective = (double)mt->macs_effective;
	r->size_dense_mib = mt->bytes_dense / 1048576.0;
	r->size_sparse_mib = mt->bytes_sparse / 1048576.0;
	r->size_compressed_mib = mt->bytes_compressed / 1048576.0;
	r->size_int8_mib = mt->bytes_int8 / 1048576.0;
	r->size_int8_zlib_mib = mt->bytes_int8_compressed / 1048576.0;
	if (mt->have_latency) {
		r->latency_b1_ms = mt->latency_ms[0];
		r->latency_b128_ms = mt->latency_ms[1];
		r->speedup_b1 = mt->speedup[0] > 0 ? mt->speedup[0] : NAN;
		r->speedup_b128 = mt->speedup[1] > 0 ? mt->speedup[1] : NAN;
		r->latency_sparse_b1_ms = mt->latency_sparse_ms[0];
		r->latency_sparse_b128_ms = mt->latency_sparse_ms[1];
		r->speedup_sparse_b1 = mt->speedup_sparse[0] > 0 ?
				       mt->speedup_sparse[0] : NAN;
		r->speedup_sparse_b128 = mt->speedup_sparse[1] > 0 ?
					 mt->speedup_sparse[1] : NAN;
	}
}

/* A plugin that pruned nothing (or far too much) still gives numbers;
 * they are not what the row claims, so the record says so. The slack
 * allows for whole channels: a target is met to within a channel or so
 * per layer. */
void pbi_cell_off_target(pb_record *r, const pb_target *t)
{
	char msg[160];

	if (!isfinite(r->reached) ||
	    fabs(r->reached - t->amount) <= 0.02 + 0.1 * t->amount)
		return;
	snprintf(msg, sizeof msg, "reached %s=%.3f, far from the target "
		 "%.3f", pb_target_kind_name(t->kind), r->reached, t->amount);
	pb_record_set(&r->warning, msg);
}
