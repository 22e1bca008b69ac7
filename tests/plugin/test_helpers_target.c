/* pruner.h's helpers for channel configurations and targets, each on a
 * crafted case with its answer worked out by hand (helper_probe.h has the
 * model and its counts): kept counts, the fraction a configuration
 * removes, the override that applies to a group, bisection of a
 * one-parameter family, and greedy removal by raw scores. */
#include "helper_probe.h"

/* ---- pb_ctx_kept_count --------------------------------------------------- */

static void test_kept_count(void **state)
{
	(void)state;
	/* 10 - round(2.5): halves round away from zero. */
	assert_int_equal(pb_ctx_kept_count(10, 0.25, 1), 7);
	assert_int_equal(pb_ctx_kept_count(10, 0.0, 1), 10);
	/* 10 - round(9.5) = 0, lifted to the floor. */
	assert_int_equal(pb_ctx_kept_count(10, 0.95, 2), 2);
	/* A floor above n keeps all n. */
	assert_int_equal(pb_ctx_kept_count(3, 0.5, 5), 3);
	assert_int_equal(pb_ctx_kept_count(6, 1.0, 1), 1);
}

/* ---- pb_ctx_config_reached ----------------------------------------------- */

static double g_reached[3];

static void probe_reached(pb_prune_ctx *ctx)
{
	int kept[8];
	double r;

	set_kept(ctx, kept, 3, 4);
	assert_int_equal(pb_ctx_config_reached(ctx, kept, &g_reached[0]), 0);
	set_kept(ctx, kept, 2, 3);
	assert_int_equal(pb_ctx_config_reached(ctx, kept, &g_reached[1]), 0);
	set_kept(ctx, kept, 4, 6);
	assert_int_equal(pb_ctx_config_reached(ctx, kept, &g_reached[2]), 0);
	/* A group cannot keep no channel, nor more than it has. */
	set_kept(ctx, kept, 0, 6);
	assert_int_equal(pb_ctx_config_reached(ctx, kept, &r), PB_EINVAL);
	set_kept(ctx, kept, 5, 6);
	assert_int_equal(pb_ctx_config_reached(ctx, kept, &r), PB_EINVAL);
}

static void test_config_reached(void **state)
{
	(void)state;
	/* channels: (1 + 2) of 10 prunable channels removed. */
	pb_model_free(probe_run(probe_reached, "channels=0.5", NULL));
	assert_true(g_reached[0] == 0.3);
	assert_true(g_reached[2] == 0.0);
	/* params with c1 at 2, c2 at 3: c1 2*9 + 2 = 20, b1 4, c2 3*2 = 6,
	 * fc 3*48 + 3 = 147: 177 of 363 kept. */
	pb_model_free(probe_run(probe_reached, "params=0.5", NULL));
	assert_true(fabs(g_reached[1] - 186.0 / 363.0) < 1e-15);
	assert_true(g_reached[2] == 0.0);
	/* macs: c1 2*9*16 = 288, c2 3*2*16 = 96, fc 48*3 = 144: 528 of
	 * 1248. */
	pb_model_free(probe_run(probe_reached, "macs=0.5", NULL));
	assert_true(fabs(g_reached[1] - 720.0 / 1248.0) < 1e-15);
}

/* ---- pb_ctx_group_override ----------------------------------------------- */

static void probe_override(pb_prune_ctx *ctx)
{
	const char *layer;
	double a;

	assert_int_equal(pb_ctx_group_override(ctx, group_of(ctx, "c1"), &a,
					       &layer), 0);
	/* The last override naming the group wins. */
	assert_true(a == 0.2);
	assert_string_equal(layer, "c1");
	assert_int_equal(pb_ctx_group_override(ctx, group_of(ctx, "c2"), &a,
					       NULL), 0);
	assert_true(a == 0.25);
	assert_int_equal(pb_ctx_group_override(ctx, group_of(ctx, "fc"), &a,
					       &layer), 0);
	assert_true(a == -1.0);
	assert_null(layer);
	assert_int_equal(pb_ctx_group_override(ctx, 99, &a, NULL), PB_EINVAL);
}

static void probe_override_bn(pb_prune_ctx *ctx)
{
	double a;

	/* b1 exists but produces no group: refused for any group asked. */
	assert_int_equal(pb_ctx_group_override(ctx, group_of(ctx, "c2"), &a,
					       NULL), PB_EINVAL);
}

static void probe_override_residual(pb_prune_ctx *ctx)
{
	const char *layer;
	double a;

	/* c0 and c2 produce one group: c2's override, given last, applies. */
	assert_int_equal(group_of(ctx, "c0"), group_of(ctx, "c2"));
	assert_int_equal(pb_ctx_group_override(ctx, group_of(ctx, "c0"), &a,
					       &layer), 0);
	assert_true(a == 0.375);
	assert_string_equal(layer, "c2");
}

static void test_group_override(void **state)
{
	pb_target t = { .kind = PB_TARGET_CHANNELS, .amount = 0.5,
			.n_overrides = 3,
			.overrides = { { "c1", 0.1 }, { "c2", 0.25 },
				       { "c1", 0.2 } } };
	pb_model *m = helper_model(), *out = NULL;
	pb_error err = { 0 };
	pt_run_args a = { .exact = &t };

	(void)state;
	g_probe = probe_override;
	if (pt_run(m, &probe, &a, &out, NULL, &err))
		fail_msg("%s", err.msg);
	pb_model_free(out);
	t.n_overrides = 1;
	strcpy(t.overrides[0].layer, "b1");
	g_probe = probe_override_bn;
	if (pt_run(m, &probe, &a, &out, NULL, &err))
		fail_msg("%s", err.msg);
	pb_model_free(out);
	pb_model_free(m);
	pb_model_free(probe_run(probe_override_residual,
				"channels=0.5, c0=0.125, c2=0.375",
				pt_residual_ini));
}

/* ---- pb_ctx_bisect_config ------------------------------------------------ */

typedef struct family {
	pb_prune_ctx *ctx;
	int floor_;
} family;

/* Both prunable groups at rate min(x, 1): c1 keeps 4 - round(4x), c2
 * 6 - round(6x). Together they reach 5 of 10 removed first at x = 5/12
 * (round(5/3) = 2, round(2.5) = 3) and 4 of 10 just below it. */
static void at_rate(void *user, double x, int *kept)
{
	const family *fm = user;
	int g1 = group_of(fm->ctx, "c1"), g2 = group_of(fm->ctx, "c2");

	for (int g = 0; g < pb_ctx_n_groups(fm->ctx); g++)
		kept[g] = pb_ctx_group(fm->ctx, g)->n_channels;
	kept[g1] = pb_ctx_kept_count(4, x > 1 ? 1 : x, fm->floor_);
	kept[g2] = pb_ctx_kept_count(6, x > 1 ? 1 : x, fm->floor_);
}

static int g_kept[2];
static double g_bisect_reached;
static int g_bisect_rc;

static void probe_bisect(pb_prune_ctx *ctx)
{
	family fm = { ctx, 1 };
	int kept[8];

	g_bisect_rc = pb_ctx_bisect_config(ctx, at_rate, &fm, 1.0, 60, kept,
					   &g_bisect_reached);
	g_kept[0] = kept[group_of(ctx, "c1")];
	g_kept[1] = kept[group_of(ctx, "c2")];
}

static void probe_bisect_floor(pb_prune_ctx *ctx)
{
	family fm = { ctx, 3 };
	int kept[8];

	/* With 3 kept everywhere, at most 1 + 3 of 10 go. */
	g_bisect_rc = pb_ctx_bisect_config(ctx, at_rate, &fm, 1.0, 60, kept,
					   &g_bisect_reached);
}

static void test_bisect_config(void **state)
{
	(void)state;
	/* 0.5 is met exactly above x = 5/12. */
	pb_model_free(probe_run(probe_bisect, "channels=0.5", NULL));
	assert_int_equal(g_bisect_rc, 0);
	assert_int_equal(g_kept[0], 2);
	assert_int_equal(g_kept[1], 3);
	assert_true(g_bisect_reached == 0.5);
	/* 0.46: 0.5 (0.04 off) is closer than 0.4 (0.06 off). */
	pb_model_free(probe_run(probe_bisect, "channels=0.46", NULL));
	assert_int_equal(g_kept[0], 2);
	assert_int_equal(g_kept[1], 3);
	/* 0.43: 0.4 (0.03 off) is closer than 0.5 (0.07 off). */
	pb_model_free(probe_run(probe_bisect, "channels=0.43", NULL));
	assert_int_equal(g_bisect_rc, 0);
	assert_int_equal(g_kept[0], 2);
	assert_int_equal(g_kept[1], 4);
	assert_true(g_bisect_reached == 0.4);
	pb_model_free(probe_run(probe_bisect_floor, "channels=0.5", NULL));
	assert_int_equal(g_bisect_rc, PB_EIMPOSSIBLE);
	assert_true(g_bisect_reached == 0.4);
}

/* ---- pb_ctx_remove_lowest ------------------------------------------------ */

/* Scores per current channel of c1's and c2's groups (others NULL). */
static const double *g_s1, *g_s2;
static int g_floor1, g_floor2, g_max_remove, g_done, g_remove_rc;

static void probe_remove(pb_prune_ctx *ctx)
{
	const double *score[8] = { 0 };
	int floors[8];

	for (int g = 0; g < pb_ctx_n_groups(ctx); g++)
		floors[g] = 1;
	score[group_of(ctx, "c1")] = g_s1;
	score[group_of(ctx, "c2")] = g_s2;
	floors[group_of(ctx, "c1")] = g_floor1;
	floors[group_of(ctx, "c2")] = g_floor2;
	g_remove_rc = pb_ctx_remove_lowest(ctx, score, floors, g_max_remove,
					   &g_done);
}

static pb_model *remove_run(const double *s1, const double *s2, int floor1,
			    int floor2, int max_remove, const char *target)
{
	g_s1 = s1;
	g_s2 = s2;
	g_floor1 = floor1;
	g_floor2 = floor2;
	g_max_remove = max_remove;
	g_done = -1;
	return probe_run(probe_remove, target, NULL);
}

static void test_remove_lowest(void **state)
{
	static const double s1[4] = { 0.5, 0.1, 0.9, 0.3 };
	static const double s2[6] = { 0.2, 0.05, 0.7, 0.6, 0.15, 0.8 };
	static const double ones[6] = { 1, 1, 1, 1, 1, 1 };
	float w1[4], w2[6];
	pb_model *out;

	(void)state;
	/* 3 of 10 channels: 0.05 (c2 #1), 0.1 (c1 #1), 0.15 (c2 #4). */
	out = remove_run(s1, s2, 1, 1, -1, "channels=0.3");
	assert_int_equal(g_remove_rc, 0);
	assert_int_equal(g_done, 1);
	first_weights(out, "c1.weight", w1, 3);
	first_weights(out, "c2.weight", w2, 4);
	assert_true(w1[0] == 0.5f && w1[1] == 1.5f && w1[2] == 2.0f);
	assert_true(w2[0] == 0.25f && w2[1] == 0.75f && w2[2] == 1.0f &&
		    w2[3] == 1.5f);
	/* The bias went with its filter. */
	assert_true(pb_model_find_param(out, "c1.bias")->data[1] == 12.0f);
	pb_model_free(out);

	/* Equal scores: the lower group, then the lower channel, first;
	 * c1 stops at its floor of 1. */
	out = remove_run(ones, ones, 1, 1, -1, "channels=0.4");
	first_weights(out, "c1.weight", w1, 1);
	first_weights(out, "c2.weight", w2, 5);
	assert_true(w1[0] == 2.0f);
	assert_true(w2[0] == 0.5f);
	pb_model_free(out);

	/* At most 2 this call: not reached yet, the model smaller. */
	out = remove_run(s1, s2, 1, 1, 2, "channels=0.3");
	assert_int_equal(g_remove_rc, 0);
	assert_int_equal(g_done, 0);
	first_weights(out, "c1.weight", w1, 3);
	first_weights(out, "c2.weight", w2, 5);
	pb_model_free(out);

	/* 0 only says whether the target is met: 0 is, 0.3 is not. */
	out = remove_run(NULL, NULL, 1, 1, 0, "channels=0");
	assert_int_equal(g_done, 1);
	first_weights(out, "c1.weight", w1, 4);
	pb_model_free(out);
	out = remove_run(NULL, NULL, 1, 1, 0, "channels=0.3");
	assert_int_equal(g_remove_rc, 0);
	assert_int_equal(g_done, 0);
	pb_model_free(out);

	/* c2 at its floor of 6 from the start, c1 down to 3: 1 of 10 is all
	 * that can go. Refused, the model unchanged. */
	out = remove_run(s1, s2, 3, 6, -1, "channels=0.3");
	assert_int_equal(g_remove_rc, PB_EIMPOSSIBLE);
	first_weights(out, "c1.weight", w1, 4);
	first_weights(out, "c2.weight", w2, 6);
	pb_model_free(out);
}

/* Two calls, the model shrinking in between: the target is measured
 * against the model the plugin was given (10 channels), so after 2 go
 * one more reaches 3 of 10, not 30% of the 8 left. */
static void probe_remove_twice(pb_prune_ctx *ctx)
{
	static const double s1[4] = { 0.5, 0.1, 0.9, 0.3 };
	static const double s2[6] = { 0.2, 0.05, 0.7, 0.6, 0.15, 0.8 };
	static const double t1[3] = { 3, 2, 1 };
	static const double t2[5] = { 5, 4, 3, 2, 1 };
	const double *score[8] = { 0 };
	int floors[8] = { 1, 1, 1, 1, 1, 1, 1, 1 }, done;

	score[group_of(ctx, "c1")] = s1;
	score[group_of(ctx, "c2")] = s2;
	assert_int_equal(pb_ctx_remove_lowest(ctx, score, floors, 2, &done),
			 0);
	assert_int_equal(done, 0);
	score[group_of(ctx, "c1")] = t1;
	score[group_of(ctx, "c2")] = t2;
	assert_int_equal(pb_ctx_remove_lowest(ctx, score, floors, 2, &done),
			 0);
	assert_int_equal(done, 1);
}

/* Raw scores, not divided by their group's mean: c1's 5 is small
 * against its group (mean 38.75), c2's 1, 2, 3 are not (mean 3.5), yet
 * the three lowest raw scores are c2's. pb_ctx_select_channels' global
 * scope takes c1's 5 instead. */
static const double raw1[4] = { 5, 50, 50, 50 };
static const double raw2[6] = { 1, 2, 3, 4, 5, 6 };

static void probe_select_normalised(pb_prune_ctx *ctx)
{
	pb_channel_scores *s;

	assert_int_equal(pb_ctx_channel_scores(ctx, &s), 0);
	for (int c = 0; c < 4; c++)
		s->score[group_of(ctx, "c1")][c] = (float)raw1[c];
	for (int c = 0; c < 6; c++)
		s->score[group_of(ctx, "c2")][c] = (float)raw2[c];
	assert_int_equal(pb_ctx_select_channels(ctx, s, -1.0, 1), 0);
}

static void test_remove_lowest_raw_and_given(void **state)
{
	float w1[4], w2[6];
	pb_model *out;

	(void)state;
	out = probe_run(probe_remove_twice, "channels=0.3", NULL);
	first_weights(out, "c1.weight", w1, 2);
	first_weights(out, "c2.weight", w2, 5);
	/* c1 lost #1 (0.1) then, with the new scores, its #2 (1). */
	assert_true(w1[0] == 0.5f && w1[1] == 1.5f);
	pb_model_free(out);

	out = remove_run(raw1, raw2, 1, 1, -1, "channels=0.3, scope=global");
	first_weights(out, "c1.weight", w1, 4);
	first_weights(out, "c2.weight", w2, 3);
	assert_true(w2[0] == 1.0f && w2[1] == 1.25f && w2[2] == 1.5f);
	pb_model_free(out);
	out = probe_run(probe_select_normalised, "channels=0.3, scope=global",
			NULL);
	first_weights(out, "c1.weight", w1, 3);
	assert_true(w1[0] == 1.0f);
	pb_model_free(out);
}

/* ---- pb_ctx_pick_lowest -------------------------------------------------- */

static int g_picked[16][2], g_n_picked;

static void record_pick(void *user, pb_prune_ctx *ctx, int g, int c)
{
	(void)user;
	assert_non_null(ctx);
	g_picked[g_n_picked][0] = g;
	g_picked[g_n_picked][1] = c;
	g_n_picked++;
}

/* The choice without the model: c2 #1 is already off keep (masked by an
 * earlier event), so the next lowest go, in order, each to on_remove at
 * once; keep and kept follow; the model keeps its shapes and weights. */
static void probe_pick(pb_prune_ctx *ctx)
{
	static const double s1[4] = { 0.5, 0.1, 0.9, 0.3 };
	static const double s2[6] = { 0.2, 0.05, 0.7, 0.6, 0.15, 0.8 };
	const int g1 = group_of(ctx, "c1"), g2 = group_of(ctx, "c2");
	const double *score[8] = { 0 };
	int floors[8] = { 1, 1, 1, 1, 1, 1, 1, 1 }, kept[8];
	int removed = -1, done = -1;
	uint8_t **keep;

	score[g1] = s1;
	score[g2] = s2;
	for (int g = 0; g < pb_ctx_n_groups(ctx); g++)
		kept[g] = pb_ctx_group(ctx, g)->n_channels;
	assert_int_equal(pb_ctx_keep_new(ctx, &keep), 0);
	keep[g2][1] = 0;
	kept[g2]--;
	g_n_picked = 0;
	/* At most 1: c1 #1 (0.1); 2 of 10 gone, 0.3 not met. */
	assert_int_equal(pb_ctx_pick_lowest(ctx, score, floors, 1, keep, kept,
					    record_pick, NULL, &removed,
					    &done), 0);
	assert_int_equal(removed, 1);
	assert_int_equal(done, 0);
	assert_int_equal(g_n_picked, 1);
	assert_true(g_picked[0][0] == g1 && g_picked[0][1] == 1);
	/* No limit: c2 #4 (0.15) meets 3 of 10, and nothing more goes. */
	assert_int_equal(pb_ctx_pick_lowest(ctx, score, floors, -1, keep,
					    kept, record_pick, NULL, &removed,
					    &done), 0);
	assert_int_equal(removed, 1);
	assert_int_equal(done, 1);
	assert_true(g_picked[1][0] == g2 && g_picked[1][1] == 4);
	assert_true(!keep[g1][1] && !keep[g2][4] && keep[g2][0]);
	assert_int_equal(kept[g1], 3);
	assert_int_equal(kept[g2], 4);
	/* Met already: nothing chosen. */
	assert_int_equal(pb_ctx_pick_lowest(ctx, score, floors, -1, keep,
					    kept, record_pick, NULL, &removed,
					    &done), 0);
	assert_int_equal(removed, 0);
	assert_int_equal(done, 1);
	assert_int_equal(g_n_picked, 2);
	pb_ctx_keep_free(keep);
}

static void test_pick_lowest(void **state)
{
	pb_model *out;
	float w1[4];

	(void)state;
	out = probe_run(probe_pick, "channels=0.3", NULL);
	/* The model as it was: every channel, the weights untouched. */
	first_weights(out, "c1.weight", w1, 4);
	assert_true(w1[1] == 1.0f);
	pb_model_free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kept_count),
		cmocka_unit_test(test_config_reached),
		cmocka_unit_test(test_group_override),
		cmocka_unit_test(test_bisect_config),
		cmocka_unit_test(test_remove_lowest),
		cmocka_unit_test(test_remove_lowest_raw_and_given),
		cmocka_unit_test(test_pick_lowest),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
