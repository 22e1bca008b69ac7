/* What the tests of pruner.h's helpers share: a crafted model whose
 * every filter is recognisable, and a probe pruner that runs a check
 * inside a real context (pb_prune_run). */
#ifndef PB_HELPER_PROBE_H
#define PB_HELPER_PROBE_H

#include "../plugins/pruner_test.h"

/* c1 (1 -> 4, 3x3, bias) -> BN -> relu -> c2 (4 -> 6, 1x1, no bias) ->
 * relu -> flatten (6 x 16) -> fc (96 -> 3). By hand:
 *   params: c1 4*9 + 4 = 40, b1 2*4 = 8, c2 6*4 = 24, fc 3*96 + 3 = 291:
 *           363 in all;
 *   MACs:   c1 4*9*16 = 576, c2 6*4*16 = 384, fc 96*3 = 288: 1248;
 *   prunable channels: c1's 4 and c2's 6 (fc's are the classes). */
static const char helper_ini[] =
	"[model]\nname = hm\ninput = 1x4x4\nclasses = 3\n"
	"[c1]\ntype = conv\nout = 4\nkernel = 3\npad = 1\n"
	"[b1]\ntype = bn\n"
	"[r1]\ntype = relu\n"
	"[c2]\ntype = conv\nout = 6\nkernel = 1\nbias = no\n"
	"[r2]\ntype = relu\n"
	"[f]\ntype = flatten\n"
	"[fc]\ntype = linear\nout = 3\n";

/* c1's filter c is nine (c + 1) / 2, its bias 10 + c; c2's filter c is
 * four (c + 1) / 4: every filter recognisable by its first weight. */
static inline pb_model *helper_model(void)
{
	pb_model *m = tu_parse_model(helper_ini, "test");
	pb_param *w1 = pb_model_find_param(m, "c1.weight");
	pb_param *b1 = pb_model_find_param(m, "c1.bias");
	pb_param *w2 = pb_model_find_param(m, "c2.weight");

	tu_init_params(m, 4);
	for (int c = 0; c < 4; c++) {
		for (int j = 0; j < 9; j++)
			w1->data[c * 9 + j] = 0.5f * (float)(c + 1);
		b1->data[c] = 10.0f + (float)c;
	}
	for (int c = 0; c < 6; c++)
		for (int j = 0; j < 4; j++)
			w2->data[c * 4 + j] = 0.25f * (float)(c + 1);
	return m;
}

/* ---- the probe: runs g_probe inside pb_prune_run ------------------------- */

static void (*g_probe)(pb_prune_ctx *ctx);

static inline int probe_prune(void *state, pb_prune_ctx *ctx)
{
	(void)state;
	g_probe(ctx);
	return 0;
}

static const pb_pruner probe = {
	PB_PRUNER_HEADER,
	.name = "probe",
	.version = "0",
	.granularity = PB_GRANULARITY_CHANNEL,
	.prune = probe_prune,
};

/* Runs fn as the prune of a channel pruner under target text on model
 * text ini (helper_model when NULL); returns the pruned model. */
static inline pb_model *probe_run(void (*fn)(pb_prune_ctx *ctx),
				  const char *target, const char *ini)
{
	pb_model *m = ini ? tu_parse_model(ini, "test") : helper_model();
	pb_model *out = NULL;
	pb_error err = { 0 };
	pt_run_args a = { .target = target, .seed = 3 };

	g_probe = fn;
	if (pt_run(m, &probe, &a, &out, NULL, &err))
		fail_msg("%s", err.msg);
	pb_model_free(m);
	return out;
}

/* The group that layer `name` produces. */
static inline int group_of(pb_prune_ctx *ctx, const char *name)
{
	int layer = pb_model_find_layer(pb_ctx_model(ctx), name);

	for (int g = 0; g < pb_ctx_n_groups(ctx); g++)
		for (int k = 0; k < pb_ctx_group(ctx, g)->n_producers; k++)
			if (pb_ctx_group(ctx, g)->producers[k] == layer)
				return g;
	fail_msg("no group produced by %s", name);
	return -1;
}

/* kept[] with c1's group at k1, c2's at k2, the classes whole. */
static inline void set_kept(pb_prune_ctx *ctx, int *kept, int k1, int k2)
{
	for (int g = 0; g < pb_ctx_n_groups(ctx); g++)
		kept[g] = pb_ctx_group(ctx, g)->n_channels;
	kept[group_of(ctx, "c1")] = k1;
	kept[group_of(ctx, "c2")] = k2;
}

/* The first weight of each filter of `param`, in order. */
static inline void first_weights(pb_model *m, const char *param,
				 float *out, int n)
{
	pb_param *p = pb_model_find_param(m, param);

	assert_int_equal(p->shape[0], n);
	for (int c = 0; c < n; c++)
		out[c] = p->data[p->n / (size_t)n * (size_t)c];
}

#endif
