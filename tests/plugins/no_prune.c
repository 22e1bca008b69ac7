/* A well-formed descriptor without the one required hook. */
#include "prunebench/pruner.h"

static const pb_pruner desc = {
	PB_PRUNER_HEADER,
	.name = "no_prune",
	.version = "0",
	.granularity = PB_GRANULARITY_WEIGHT,
	.description = "has no prune hook",
};

PB_PRUNER_EXPORT(desc)
