/* Loading a dataset into the train / validation / test splits. */
#include <string.h>

#include "prunebench/train.h"

int pb_splits_load(pb_splits *s, const pb_data_spec *spec, int val_size,
		   unsigned long split_seed, pb_error *err)
{
	pb_dataset full = { 0 };
	int rc;

	memset(s, 0, sizeof *s);
	rc = pb_data_load(spec, &full, &s->test, err);
	if (rc)
		return rc;
	if (val_size < 0 || val_size >= full.n) {
		rc = pb_error_set(err, PB_EINVAL, "validation split of %d "
				  "samples does not fit a training set of %d",
				  val_size, full.n);
		goto fail;
	}
	pb_dataset_channel_stats(&full, s->mean, s->std);
	pb_dataset_normalize(&full, s->mean, s->std);
	pb_dataset_normalize(&s->test, s->mean, s->std);
	rc = pb_dataset_split(&full, val_size, split_seed, &s->train, &s->val,
			      err);
	if (rc)
		goto fail;
	pb_dataset_free(&full);
	return 0;
fail:
	pb_dataset_free(&full);
	pb_dataset_free(&s->test);
	return rc;
}

void pb_splits_free(pb_splits *s)
{
	pb_dataset_free(&s->train);
	pb_dataset_free(&s->val);
	pb_dataset_free(&s->test);
}
