/* Pruners that misbehave the way experimental plugins do, built four
 * times: crash_segv (a segmentation fault), crash_abort (abort()) and
 * crash_exit (exit(0), which looks like success) die inside prune, and
 * the sweep must record their cells as crashed and run the others;
 * prune_nothing returns success without pruning, and its record must say
 * that the reached amount is far from the target. */
#include <signal.h>
#include <stdlib.h>

#include "prunebench/pruner.h"

static int crash_prune(void *state, pb_prune_ctx *ctx)
{
	(void)state;
	(void)ctx;
#if defined(CRASH_SEGV)
	/* Not a plain NULL store, which the compiler may drop as UB. */
	raise(SIGSEGV);
	*(volatile int *)(void *)0 = 1;
#elif defined(CRASH_ABORT)
	abort();
#elif defined(CRASH_EXIT)
	exit(0);
#endif
	return 0;
}

static const pb_pruner crash = {
	PB_PRUNER_HEADER,
	.name = CRASH_NAME,
	.version = "1",
	.granularity = PB_GRANULARITY_WEIGHT,
	.description = "misbehaves inside prune (a test of the sweep)",
	.citation = "none",
	.prune = crash_prune,
};

PB_PRUNER_EXPORT(crash)
