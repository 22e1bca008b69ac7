/* The last step of a cell with quantize = int8: its final model
 * quantized after pruning and fine-tuning (prunebench/quantize.h), as it
 * would be deployed. The int8 model is evaluated on the test split with
 * the real rounding, written as OUT.int8.ckpt (sparse encoding), and its
 * sizes are measured from those very bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "experiment/experiment_impl.h"
#include "prune/sizes.h"
#include "prunebench/checkpoint.h"
#include "prunebench/quantize.h"

int pbi_cell_quantize(const pb_cell_env *env, const pb_model *m,
		      pb_record *rec, pb_error *err)
{
	const pb_splits *sp = env->splits;
	pb_checkpoint_opts o = { .sparse = 1 };
	pb_model *c = NULL;
	pb_quant *q = NULL;
	unsigned char *buf = NULL;
	size_t len = 0;
	char *path = NULL;
	uint64_t zbytes = 0;
	pbi_sizes z;
	double loss;
	int rc;

	if (!sp)
		return pb_error_set(err, PB_EINVAL, "quantize = int8 needs "
				    "data: the int8 model is calibrated and "
				    "evaluated");
	if (env->status)
		env->status(env->status_user, "int8", 0, 0);
	if ((rc = pb_model_clone(&c, m, err)) ||
	    (rc = pb_quantize_model(c, env->quant_act, &sp->val,
				    env->eval_batch, &q, err)) ||
	    (rc = pb_quant_evaluate(c, q, &sp->test, env->eval_batch,
				    &rec->acc_int8, &loss, err)) ||
	    (rc = pbi_file_sizes(c, q, 0, &z, err)))
		goto out;
	o.quant = q;
	if ((rc = pb_checkpoint_encode(c, &o, &buf, &len, err)) ||
	    (rc = pbi_zlib_size(buf, len, &zbytes, err)))
		goto out;
	if (env->out) {
		size_t n = strlen(env->out);

		if (n > 5 && !strcmp(env->out + n - 5, ".ckpt"))
			n -= 5;
		else if (n > 4 && !strcmp(env->out + n - 4, ".ini"))
			n -= 4;
		if (asprintf(&path, "%.*s.int8.ckpt", (int)n, env->out) < 0) {
			path = NULL;
			rc = pb_error_set(err, PB_ENOMEM, "out of memory");
			goto out;
		}
		if ((rc = pbi_write_atomic(path, buf, len, "int8 checkpoint",
					   err)))
			goto out;
	}
	rec->size_int8_mib = (double)z.int8 / 1048576.0;
	rec->size_int8_zlib_mib = (double)zbytes / 1048576.0;
	pb_record_set(&rec->quantize, env->quant_act ? "int8" :
		      "int8-weights");
	if (env->log)
		fprintf(env->log, "int8 (%s): test top-1 %.2f%% (float %.2f%%); "
			"int8 file %llu bytes, sparse + zlib %llu bytes%s%s\n",
			env->quant_act ? "weights and activations" :
			"weights", 100 * rec->acc_int8, 100 * rec->acc_after,
			(unsigned long long)z.int8,
			(unsigned long long)zbytes, path ? " -> " : "",
			path ? path : "");
out:
	free(buf);
	free(path);
	pb_quant_free(q);
	pb_model_free(c);
	return rc;
}
