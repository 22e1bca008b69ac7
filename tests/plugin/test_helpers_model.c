/* pruner.h's helpers for the model and the plugin's own memory, each on
 * a crafted case with its answer worked out by hand (helper_probe.h has
 * the model): plugin state, walks over a group's producer filters and
 * scores from them, keep arrays, and re-initialisation. */
#include "helper_probe.h"

/* ---- pb_ctx_state_new ---------------------------------------------------- */

typedef struct big_state {
	unsigned char bytes[200];
} big_state;

static int state_create(pb_prune_ctx *ctx, void **state)
{
	return pb_ctx_state_new(ctx, sizeof(big_state), state);
}

static int state_prune(void *state, pb_prune_ctx *ctx)
{
	big_state *s = state;

	(void)ctx;
	for (size_t i = 0; i < sizeof s->bytes; i++)
		assert_int_equal(s->bytes[i], 0);
	memset(s->bytes, 7, sizeof s->bytes);
	return 0;
}

static void test_state_new(void **state)
{
	/* destroy = free: the state holds nothing else (the sanitizer
	 * build reports a leak otherwise). */
	static const pb_pruner stateful = {
		PB_PRUNER_HEADER, .name = "stateful", .version = "0",
		.granularity = PB_GRANULARITY_CHANNEL,
		.create = state_create, .destroy = free, .prune = state_prune,
	};
	pb_model *m = helper_model(), *out = NULL;
	pb_error err = { 0 };
	pt_run_args a = { .target = "channels=0.1" };

	(void)state;
	if (pt_run(m, &stateful, &a, &out, NULL, &err))
		fail_msg("%s", err.msg);
	pb_model_free(out);
	pb_model_free(m);
}

/* ---- pb_ctx_each_filter and pb_ctx_filter_scores ------------------------- */

typedef struct walk {
	int n_calls, stop_at;
	int producer[32], channel[32], layer[32];
	size_t len[32];
	float first[32], bias[32];
} walk;

static int record(void *user, const pb_filter *f)
{
	walk *w = user;
	int i = w->n_calls++;

	w->producer[i] = f->producer;
	w->channel[i] = f->channel;
	w->layer[i] = f->layer;
	w->len[i] = f->len;
	w->first[i] = f->weight[0];
	w->bias[i] = f->bias ? *f->bias : -1.0f;
	assert_true(f->weight == f->all + f->len * (size_t)f->channel);
	assert_non_null(f->grad);
	return i == w->stop_at ? -42 : 0;
}

/* Writes through the filter: zeroes filter 2 and its bias. */
static int zero_second(void *user, const pb_filter *f)
{
	(void)user;
	if (f->channel == 2) {
		memset(f->weight, 0, f->len * sizeof(float));
		*f->bias = 0.0f;
	}
	return 0;
}

static void probe_walk(pb_prune_ctx *ctx)
{
	walk w = { .stop_at = -1 };
	int g1 = group_of(ctx, "c1"), g2 = group_of(ctx, "c2");

	assert_int_equal(pb_ctx_each_filter(ctx, g1, record, &w), 0);
	assert_int_equal(w.n_calls, 4);
	for (int c = 0; c < 4; c++) {
		assert_int_equal(w.channel[c], c);
		assert_int_equal(w.producer[c], 0);
		assert_int_equal(w.len[c], 9);
		assert_true(w.first[c] == 0.5f * (float)(c + 1));
		assert_true(w.bias[c] == 10.0f + (float)c);
		assert_int_equal(w.layer[c],
				 pb_model_find_layer(pb_ctx_model(ctx), "c1"));
	}
	memset(&w, 0, sizeof w);
	w.stop_at = 1;
	/* A nonzero return stops the walk and comes back. */
	assert_int_equal(pb_ctx_each_filter(ctx, g2, record, &w), -42);
	assert_int_equal(w.n_calls, 2);
	assert_int_equal(w.len[0], 4);
	assert_true(w.bias[0] == -1.0f);
	assert_int_equal(pb_ctx_each_filter(ctx, 99, record, &w), PB_EINVAL);
	assert_int_equal(pb_ctx_each_filter(ctx, g1, zero_second, NULL), 0);
}

static void probe_walk_residual(pb_prune_ctx *ctx)
{
	walk w = { .stop_at = -1 };

	/* Two producers, one after the other, 8 filters each. */
	assert_int_equal(pb_ctx_each_filter(ctx, group_of(ctx, "c0"), record,
					    &w), 0);
	assert_int_equal(w.n_calls, 16);
	assert_int_equal(w.producer[7], 0);
	assert_int_equal(w.channel[7], 7);
	assert_int_equal(w.producer[8], 1);
	assert_int_equal(w.channel[8], 0);
	assert_true(w.layer[0] != w.layer[8]);
}

static double sum_weights(void *user, const pb_filter *f)
{
	double s = *(const double *)user;

	for (size_t j = 0; j < f->len; j++)
		s += f->weight[j];
	return s;
}

static void probe_filter_scores(pb_prune_ctx *ctx)
{
	double offset = 0.5;
	pb_channel_scores *s;
	int g1 = group_of(ctx, "c1"), g2 = group_of(ctx, "c2");
	int g3 = group_of(ctx, "fc");

	assert_int_equal(pb_ctx_filter_scores(ctx, sum_weights, &offset, &s),
			 0);
	/* c1: 0.5 + nine (c + 1) / 2; c2: 0.5 + four (c + 1) / 4; the
	 * classes are not scored. */
	for (int c = 0; c < 4; c++)
		assert_true(s->score[g1][c] == 0.5f + 4.5f * (float)(c + 1));
	for (int c = 0; c < 6; c++)
		assert_true(s->score[g2][c] == 0.5f + (float)(c + 1));
	for (int c = 0; c < 3; c++)
		assert_true(s->score[g3][c] == 0.0f);
	pb_ctx_channel_scores_free(s);
}

static void probe_filter_scores_residual(pb_prune_ctx *ctx)
{
	double offset = 1.0;
	pb_channel_scores *s;
	pb_model *m = pb_ctx_model(ctx);
	pb_param *a = pb_model_find_param(m, "c0.weight");
	pb_param *b = pb_model_find_param(m, "c2.weight");
	int g = group_of(ctx, "c0");

	memset(a->data, 0, a->n * sizeof(float));
	memset(b->data, 0, b->n * sizeof(float));
	a->data[a->n / 8 * 3] = 2.0f;          /* filter 3 of c0 */
	b->data[b->n / 8 * 3 + 1] = 5.0f;      /* filter 3 of c2 */
	assert_int_equal(pb_ctx_filter_scores(ctx, sum_weights, &offset, &s),
			 0);
	/* Summed over both producers, each with its offset. */
	assert_true(s->score[g][3] == 2.0f + 1.0f + 5.0f + 1.0f);
	assert_true(s->score[g][0] == 2.0f);
	pb_ctx_channel_scores_free(s);
}

static void test_filters(void **state)
{
	pb_model *out;
	pb_param *w, *b;

	(void)state;
	out = probe_run(probe_walk, "channels=0.5", NULL);
	w = pb_model_find_param(out, "c1.weight");
	b = pb_model_find_param(out, "c1.bias");
	for (int j = 0; j < 9; j++) {
		assert_true(w->data[2 * 9 + j] == 0.0f);
		assert_true(w->data[3 * 9 + j] == 2.0f);
	}
	assert_true(b->data[2] == 0.0f && b->data[3] == 13.0f);
	pb_model_free(out);
	pb_model_free(probe_run(probe_walk_residual, "channels=0.5",
				pt_residual_ini));
	pb_model_free(probe_run(probe_filter_scores, "channels=0.5", NULL));
	pb_model_free(probe_run(probe_filter_scores_residual, "channels=0.5",
				pt_residual_ini));
}

/* ---- keep arrays --------------------------------------------------------- */

static void probe_keep(pb_prune_ctx *ctx)
{
	static const double score[5] = { 0.3, 0.1, 0.3, 0.2, 0.5 };
	static const uint8_t want2[5] = { 0, 0, 1, 0, 1 };
	uint8_t **keep = NULL, k[5];
	int g1 = group_of(ctx, "c1"), g2 = group_of(ctx, "c2");

	assert_int_equal(pb_ctx_keep_new(ctx, &keep), 0);
	for (int g = 0; g < pb_ctx_n_groups(ctx); g++)
		for (int c = 0; c < pb_ctx_group(ctx, g)->n_channels; c++)
			assert_int_equal(keep[g][c], 1);
	/* Rows do not overlap: clearing one leaves the others. */
	memset(keep[g1], 0, 4);
	assert_int_equal(keep[g2][0], 1);
	keep[g1][0] = 1;
	keep[g2][5] = 0;
	assert_int_equal(pb_ctx_keep_channels(ctx,
			 (const uint8_t *const *)keep), 0);
	pb_ctx_keep_free(keep);

	/* The 2 highest of 0.3 0.1 0.3 0.2 0.5: 0.1, 0.2, then the first
	 * 0.3 go. */
	assert_int_equal(pb_ctx_keep_highest(ctx, score, 5, 2, k), 0);
	assert_memory_equal(k, want2, 5);
	assert_int_equal(pb_ctx_keep_highest(ctx, score, 5, 5, k), 0);
	for (int c = 0; c < 5; c++)
		assert_int_equal(k[c], 1);
	assert_int_equal(pb_ctx_keep_highest(ctx, score, 5, 0, k), 0);
	for (int c = 0; c < 5; c++)
		assert_int_equal(k[c], 0);
	assert_int_equal(pb_ctx_keep_highest(ctx, score, 5, 6, k), PB_EINVAL);
}

static void test_keep(void **state)
{
	float w1[1], w2[5];
	pb_model *out;

	(void)state;
	out = probe_run(probe_keep, "channels=0.5", NULL);
	first_weights(out, "c1.weight", w1, 1);
	first_weights(out, "c2.weight", w2, 5);
	assert_true(w1[0] == 0.5f);
	assert_true(w2[4] == 1.25f);
	pb_model_free(out);
	pb_ctx_keep_free(NULL);
}

/* ---- pb_ctx_reinit_params ------------------------------------------------ */

static void probe_reinit(pb_prune_ctx *ctx)
{
	pb_param *w = pb_model_find_param(pb_ctx_model(ctx), "c1.weight");
	float *mask = pb_ctx_mask(ctx, w);

	mask[0] = 0.0f;
	mask[10] = 0.0f;
	assert_int_equal(pb_ctx_reinit_params(ctx), 0);
	/* Zero at once, not only when pb_prune_run applies the masks at
	 * the end: a plugin trains from here. */
	assert_true(w->data[0] == 0.0f && w->data[10] == 0.0f);
}

/* The parameters a fresh model draws from the cell's RNG (seed 3, the
 * probe's), but for the two masked weights, which stay zero. */
static void test_reinit_params(void **state)
{
	pb_model *out = probe_run(probe_reinit, "channels=0.5", NULL);
	pb_model *fresh = tu_parse_model(helper_ini, "test");
	pb_param *w = pb_model_find_param(out, "c1.weight");

	(void)state;
	tu_init_params(fresh, 3);
	for (int i = 0; i < pb_model_n_params(out); i++) {
		pb_param *a = pb_model_param(out, i);
		pb_param *b = pb_model_param(fresh, i);

		for (size_t j = 0; j < a->n; j++) {
			if (a == w && (j == 0 || j == 10))
				continue;
			assert_memory_equal(&a->data[j], &b->data[j],
					    sizeof(float));
		}
	}
	assert_true(w->data[0] == 0.0f && w->data[10] == 0.0f);
	assert_true(pb_model_find_param(fresh, "c1.weight")->data[0] != 0.0f);
	pb_model_free(fresh);
	pb_model_free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_state_new),
		cmocka_unit_test(test_filters),
		cmocka_unit_test(test_keep),
		cmocka_unit_test(test_reinit_params),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
