/* The plugin ABI header must stand alone: this file includes nothing but
 * prunebench/pruner.h and is compiled with -std=c99 -pedantic -Wall
 * -Werror (see Makefile.am), as an out-of-tree plugin would be. It also
 * checks what PB_PRUNER_HEADER and PB_PRUNER_EXPORT produce. */
#include "prunebench/pruner.h"

static int abi_prune(void *state, pb_prune_ctx *ctx)
{
	(void)state;
	(void)ctx;
	return 0;
}

static const pb_pruner_option abi_options[] = {
	{ "k", PB_OPT_INT, "3", "an option", NULL, 1, 9 },
};

static const pb_pruner abi_desc = {
	PB_PRUNER_HEADER,
	.name = "abi",
	.version = "0",
	.granularity = PB_GRANULARITY_CHANNEL,
	.description = "header check",
	.citation = "none",
	.options = abi_options,
	.n_options = 1,
	.prune = abi_prune,
};

PB_PRUNER_EXPORT(abi_desc)

int main(void)
{
	const pb_pruner *d = pb_pruner_entry();
	int fails = 0;

	if (d != &abi_desc)
		fails++;
	if (d->abi_version != PB_PRUNER_ABI_VERSION)
		fails++;
	if (d->struct_size != sizeof(pb_pruner))
		fails++;
	if (d->prune != abi_prune || d->create || d->after_backward)
		fails++;
	/* The host reads these two before anything else: they never move. */
	if (offsetof(pb_pruner, abi_version) != 0 ||
	    offsetof(pb_pruner, struct_size) != 4)
		fails++;
	return fails ? 1 : 0;
}
