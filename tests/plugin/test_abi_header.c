/* The plugin ABI header must stand alone: this file includes nothing but
 * prunebench/pruner.h and is compiled with -std=c99 -pedantic -Wall
 * -Werror (see tests/plugins.mk), as an out-of-tree plugin would be,
 * inline helpers and all. It also checks what PB_PRUNER_HEADER,
 * PB_PRUNER_EXPORT, PB_PRUNER_OPTIONS and PB_OPTION_MIN_KEEP produce,
 * and pb_ctx_kept_count's rounding. */
#include "prunebench/pruner.h"

static int abi_prune(void *state, pb_prune_ctx *ctx)
{
	(void)state;
	(void)ctx;
	return 0;
}

static const pb_pruner_option abi_options[] = {
	{ "k", PB_OPT_INT, "3", "an option", NULL, 1, 9 },
	PB_OPTION_MIN_KEEP,
};

static const pb_pruner abi_desc = {
	PB_PRUNER_HEADER,
	.name = "abi",
	.version = "0",
	.granularity = PB_GRANULARITY_CHANNEL,
	.description = "header check",
	.citation = "none",
	PB_PRUNER_OPTIONS(abi_options),
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
	if (d->n_options != 2 || d->options != abi_options ||
	    d->options[1].type != PB_OPT_INT ||
	    d->options[1].min != 1 || d->options[1].def[0] != '1')
		fails++;
	/* 10 - round(2.5) (away from zero), and a floor above n. */
	if (pb_ctx_kept_count(10, 0.25, 1) != 7 ||
	    pb_ctx_kept_count(3, 0.5, 5) != 3)
		fails++;
	/* The host reads these two before anything else: they never move. */
	if (offsetof(pb_pruner, abi_version) != 0 ||
	    offsetof(pb_pruner, struct_size) != 4)
		fails++;
	return fails ? 1 : 0;
}
