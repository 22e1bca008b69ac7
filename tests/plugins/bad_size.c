/* A plugin whose descriptor claims to be larger than this host's: built
 * against a newer header, so the loader must refuse it. */
#include "prunebench/pruner.h"

static int bad_prune(void *state, pb_prune_ctx *ctx)
{
	(void)state;
	(void)ctx;
	return 0;
}

static const pb_pruner desc = {
	.abi_version = PB_PRUNER_ABI_VERSION,
	.struct_size = sizeof(pb_pruner) + 64,
	.name = "bad_size",
	.version = "0",
	.prune = bad_prune,
};

PB_PRUNER_EXPORT(desc)
