/* Pruning targets as text, as the CLI (--target) and experiment files
 * write them, and the names of their kinds. The target itself
 * (pb_target) is part of the plugin ABI, in pruner.h. */
#ifndef PRUNEBENCH_TARGET_H
#define PRUNEBENCH_TARGET_H

#include <stddef.h>

#include "prunebench/error.h"
#include "prunebench/pruner.h"

#ifdef __cplusplus
extern "C" {
#endif

/* "KIND=X[, scope=layer|global][, LAYER=X]...", KIND one of sparsity,
 * channels, params, macs, X the fraction removed. */
int pb_target_parse(pb_target *t, const char *text, pb_error *err);
/* "macs=0.5": kind and amount, the amount in the fewest digits that
 * read back as the same number. */
void pb_target_format(const pb_target *t, char *buf, size_t n);
/* Name of a target kind ("sparsity", "channels", "params", "macs"). */
const char *pb_target_kind_name(pb_target_kind k);

#ifdef __cplusplus
}
#endif
#endif
