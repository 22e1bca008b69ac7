/* A plugin built for another ABI version: the loader must refuse it and
 * name both versions. */
#include "prunebench/pruner.h"

static int bad_prune(void *state, pb_prune_ctx *ctx)
{
	(void)state;
	(void)ctx;
	return 0;
}

static const pb_pruner desc = {
	.abi_version = PB_PRUNER_ABI_VERSION + 41,
	.struct_size = sizeof(pb_pruner),
	.name = "bad_abi",
	.version = "0",
	.prune = bad_prune,
};

PB_PRUNER_EXPORT(desc)
