/* Channel selection under targets: channels, params and MACs, each with
 * layer and global scope, reached within one channel per layer; the
 * lowest scores go; global ranking normalised per group; overrides;
 * min_keep; impossible targets; and the reached value agrees with the
 * model that surgery actually builds. */
#include "testutil.h"

#include "prunebench/prunebench.h"
#include "prune/prune_impl.h"

struct fx {
	pb_model *m;
	pb_channel_group *g;
	int ng;
	float **score;
	uint8_t **keep;
	int *kept;
};

static void fx_open(struct fx *f, const char *file, unsigned long seed)
{
	pb_error err = { 0 };

	f->m = tu_load_shipped_model(file);
	if (pbi_groups_derive(f->m, &f->g, &f->ng, &err))
		fail_msg("%s", err.msg);
	f->score = calloc((size_t)f->ng, sizeof *f->score);
	f->keep = calloc((size_t)f->ng, sizeof *f->keep);
	f->kept = calloc((size_t)f->ng, sizeof *f->kept);
	for (int g = 0; g < f->ng; g++) {
		int n = f->g[g].n_channels;
		f->score[g] = malloc((size_t)n * sizeof(float));
		/* Layers on different scales, as filter norms are. */
		tu_fill_uniform(f->score[g], (size_t)n, 0.1f,
				1.0f + 3.0f * (float)g, seed + (unsigned long)g);
		f->keep[g] = malloc((size_t)n);
	}
}

static void fx_close(struct fx *f)
{
	for (int g = 0; g < f->ng; g++) {
		free(f->score[g]);
		free(f->keep[g]);
	}
	free(f->score);
	free(f->keep);
	free(f->kept);
	free(f->g);
	pb_model_free(f->m);
}

static pb_target target(pb_target_kind kind, pb_scope scope, double amount)
{
	pb_target t;

	memset(&t, 0, sizeof t);
	t.kind = kind;
	t.scope = scope;
	t.amount = amount;
	return t;
}

static int select_(struct fx *f, const pb_target *t, int min_keep,
		   double *reached, pb_error *err)
{
	int rc = pbi_select_channels(f->m, f->g, f->ng, t, f->score,
				     t->amount, min_keep, f->keep, reached,
				     err);

	for (int g = 0; g < f->ng && rc == 0; g++) {
		f->kept[g] = 0;
		for (int c = 0; c < f->g[g].n_channels; c++)
			f->kept[g] += f->keep[g][c] != 0;
	}
	return rc;
}

/* The fraction of the target's kind that kept[] removes, computed here
 * independently of the selection code. */
static double removed(const struct fx *f, pb_target_kind kind,
		      const int *kept)
{
	uint64_t p, m, p0, m0;
	long tot = 0, rem = 0;

	if (kind == PB_TARGET_CHANNELS) {
		for (int g = 0; g < f->ng; g++)
			if (f->g[g].prunable) {
				tot += f->g[g].n_channels;
				rem += f->g[g].n_channels - kept[g];
			}
		return (double)rem / (double)tot;
	}
	pbi_config_cost(f->m, f->g, f->ng, kept, &p, &m);
	p0 = pb_model_count_params(f->m);
	m0 = pb_model_count_macs(f->m);
	return kind == PB_TARGET_PARAMS ? 1.0 - (double)p / (double)p0 :
					  1.0 - (double)m / (double)m0;
}

/* What one more channel kept in group g changes in the measure. */
static double one_channel(const struct fx *f, pb_target_kind kind, int g)
{
	int *k = malloc((size_t)f->ng * sizeof *k);
	double d;

	memcpy(k, f->kept, (size_t)f->ng * sizeof *k);
	k[g]++;
	d = removed(f, kind, f->kept) - removed(f, kind, k);
	free(k);
	return d;
}

/* The channels removed in a group are its lowest-scored ones. */
static void check_lowest_within(const struct fx *f)
{
	for (int g = 0; g < f->ng; g++)
		for (int a = 0; a < f->g[g].n_channels; a++)
			for (int b = 0; b < f->g[g].n_channels; b++)
				if (!f->keep[g][a] && f->keep[g][b])
					assert_true(f->score[g][a] <=
						    f->score[g][b]);
}

static double mean_abs(const float *s, int n)
{
	double m = 0;

	for (int c = 0; c < n; c++)
		m += fabs(s[c]);
	return m / n;
}

/* Global: every removed channel ranks at or below every kept channel of
 * a group that could still lose one, by score / mean |score| of its
 * group. */
static void check_global_order(const struct fx *f, int min_keep)
{
	double worst_removed = -1e30, best_kept = 1e30;

	for (int g = 0; g < f->ng; g++) {
		double mean;
		if (!f->g[g].prunable)
			continue;
		mean = mean_abs(f->score[g], f->g[g].n_channels);
		for (int c = 0; c < f->g[g].n_channels; c++) {
			double v = f->score[g][c] / mean;
			if (!f->keep[g][c] && v > worst_removed)
				worst_removed = v;
			if (f->keep[g][c] && f->kept[g] > min_keep &&
			    v < best_kept)
				best_kept = v;
		}
	}
	assert_true(worst_removed <= best_kept);
}

static void check_target(const char *file, pb_target_kind kind,
			 pb_scope scope, double amount)
{
	struct fx f;
	pb_target t = target(kind, scope, amount);
	pb_error err = { 0 };
	double reached, tol = 0, one;

	fx_open(&f, file, 7);
	if (select_(&f, &t, 1, &reached, &err))
		fail_msg("%s", err.msg);
	/* The reported value is the real one. */
	assert_true(fabs(reached - removed(&f, kind, f.kept)) < 1e-12);
	/* Within one channel per layer (layer scope), within one channel
	 * (global: the last one removed decides). */
	for (int g = 0; g < f.ng; g++) {
		if (!f.g[g].prunable) {
			assert_int_equal(f.kept[g], f.g[g].n_channels);
			continue;
		}
		one = one_channel(&f, kind, g);
		if (scope == PB_SCOPE_LAYER)
			tol += one;
		else if (one > tol)
			tol = one;
	}
	if (fabs(reached - amount) > tol + 1e-12)
		fail_msg("%s %d/%d at %g: reached %g, tolerance %g", file,
			 kind, scope, amount, reached, tol);
	check_lowest_within(&f);
	if (scope == PB_SCOPE_GLOBAL) {
		check_global_order(&f, 1);
	} else {
		/* One common fraction r: removed_g = round(r * n_g) for all. */
		double lo = 0, hi = 1;
		for (int g = 0; g < f.ng; g++) {
			int n = f.g[g].n_channels, r = n - f.kept[g];
			if (!f.g[g].prunable || f.kept[g] == 1)
				continue;
			if ((r - 0.5) / n > lo)
				lo = (r - 0.5) / n;
			if ((r + 0.5) / n < hi)
				hi = (r + 0.5) / n;
		}
		assert_true(lo <= hi + 1e-12);
	}
	fx_close(&f);
}

static void test_targets_vgg(void **state)
{
	const pb_target_kind kinds[] = { PB_TARGET_CHANNELS, PB_TARGET_PARAMS,
					 PB_TARGET_MACS };
	const double amounts[] = { 0.0, 0.13, 0.3, 0.5, 0.77 };

	(void)state;
	for (int k = 0; k < 3; k++)
		for (int s = 0; s < 2; s++)
			for (int a = 0; a < 5; a++)
				check_target("vgg-s.ini", kinds[k],
					     (pb_scope)s, amounts[a]);
}

static void test_targets_resnet(void **state)
{
	const pb_target_kind kinds[] = { PB_TARGET_CHANNELS, PB_TARGET_PARAMS,
					 PB_TARGET_MACS };

	(void)state;
	for (int k = 0; k < 3; k++)
		for (int s = 0; s < 2; s++) {
			check_target("resnet-s.ini", kinds[k], (pb_scope)s,
				     0.4);
			check_target("lenet5.ini", kinds[k], (pb_scope)s, 0.6);
		}
}

/* Channels layer scope is exact arithmetic: round(0.3 * n) per group. */
static void test_channels_layer_exact(void **state)
{
	struct fx f;
	pb_target t = target(PB_TARGET_CHANNELS, PB_SCOPE_LAYER, 0.3);
	pb_error err = { 0 };
	double reached;
	const int want[] = { 11, 11, 22, 22, 45, 45, 10 };

	(void)state;
	fx_open(&f, "vgg-s.ini", 3);
	assert_int_equal(select_(&f, &t, 1, &reached, &err), 0);
	for (int g = 0; g < f.ng; g++)
		assert_int_equal(f.kept[g], want[g]);
	/* 16 + 16 + 32 + 32 + 64 + 64 = 224 channels, 5+5+10+10+19+19
	 * = 68 removed. */
	assert_true(fabs(reached - 68.0 / 224.0) < 1e-12);
	fx_close(&f);
}

/* Global ranking divides by each group's mean: a layer whose scores are
 * all 100x larger is not spared for that. */
static void test_global_normalised(void **state)
{
	struct fx f;
	pb_target t = target(PB_TARGET_CHANNELS, PB_SCOPE_GLOBAL, 0.25);
	pb_error err = { 0 };
	double reached;

	(void)state;
	fx_open(&f, "lenet5.ini", 3);
	/* conv1 6, conv2 16, fc1 120, fc2 84 channels: 226; remove 57. Give
	 * every group the same shape of scores, scaled by 10^g. */
	for (int g = 0; g < f.ng; g++)
		for (int c = 0; c < f.g[g].n_channels; c++)
			f.score[g][c] = (float)((c + 1.0) /
						f.g[g].n_channels *
						pow(10.0, g));
	assert_int_equal(select_(&f, &t, 1, &reached, &err), 0);
	assert_int_equal(226 - (f.kept[0] + f.kept[1] + f.kept[2] + f.kept[3]),
			 57);
	/* Each group loses about a quarter, not only the small-scored
	 * conv1 (which a raw ranking would empty to its floor first). */
	assert_true(abs(f.kept[0] - 5) <= 1);
	assert_true(abs(f.kept[1] - 12) <= 1);
	assert_true(abs(f.kept[2] - 90) <= 1);
	assert_true(abs(f.kept[3] - 63) <= 1);
	fx_close(&f);
}

static void test_overrides(void **state)
{
	struct fx f;
	pb_error err = { 0 };
	double reached;

	(void)state;
	for (int s = 0; s < 2; s++) {
		pb_target t = target(PB_TARGET_MACS, (pb_scope)s, 0.5);
		t.n_overrides = 2;
		strcpy(t.overrides[0].layer, "conv3");
		t.overrides[0].amount = 0.75;
		strcpy(t.overrides[1].layer, "conv1");
		t.overrides[1].amount = 0.0;
		fx_open(&f, "vgg-s.ini", 5);
		assert_int_equal(select_(&f, &t, 1, &reached, &err), 0);
		assert_int_equal(f.kept[2], 8);     /* 32 - 24 */
		assert_int_equal(f.kept[0], 16);
		/* The others still make up the target. */
		assert_true(fabs(reached - 0.5) < 0.02);
		fx_close(&f);
	}
}

static void test_min_keep(void **state)
{
	struct fx f;
	pb_error err = { 0 };
	double reached;

	(void)state;
	for (int s = 0; s < 2; s++) {
		pb_target t = target(PB_TARGET_CHANNELS, (pb_scope)s, 0.8);
		fx_open(&f, "vgg-s.ini", 9);
		assert_int_equal(select_(&f, &t, 6, &reached, &err), 0);
		for (int g = 0; g + 1 < f.ng; g++)
			assert_true(f.kept[g] >= 6);
		/* Layer: conv1/conv2 would keep round(0.2 * 16) = 3. */
		if (s == PB_SCOPE_LAYER)
			assert_int_equal(f.kept[0], 6);
		fx_close(&f);
	}
	/* Global with the default floor never empties a group, even when
	 * one group's scores are all far below everyone else's. */
	{
		pb_target t = target(PB_TARGET_MACS, PB_SCOPE_GLOBAL, 0.9);
		fx_open(&f, "vgg-s.ini", 9);
		for (int c = 0; c < 32; c++)
			f.score[3][c] = 1e-6f * (float)(c + 1);
		assert_int_equal(select_(&f, &t, 0, &reached, &err), 0);
		for (int g = 0; g < f.ng; g++)
			assert_true(f.kept[g] >= 1);
		fx_close(&f);
	}
}

static void test_impossible(void **state)
{
	struct fx f;
	pb_error err = { 0 };
	double reached;
	pb_target t;

	(void)state;
	fx_open(&f, "vgg-s.ini", 1);
	/* With at least 4 channels a layer, conv1..conv6 keep about 2.7% of
	 * the MACs: removing 99% is out of reach, and the message says how
	 * much is. */
	t = target(PB_TARGET_MACS, PB_SCOPE_GLOBAL, 0.99);
	assert_int_equal(select_(&f, &t, 4, &reached, &err), PB_EIMPOSSIBLE);
	assert_non_null(strstr(err.msg, "at most 0.97"));
	t.scope = PB_SCOPE_LAYER;
	assert_int_equal(select_(&f, &t, 4, &reached, &err), PB_EIMPOSSIBLE);
	/* Down to one channel a layer, 99.9% is still out of reach. */
	t.amount = 0.999;
	assert_int_equal(select_(&f, &t, 1, &reached, &err), PB_EIMPOSSIBLE);
	t = target(PB_TARGET_CHANNELS, PB_SCOPE_LAYER, 0.9);
	assert_int_equal(select_(&f, &t, 8, &reached, &err), PB_EIMPOSSIBLE);
	t.amount = 1.0;
	assert_int_equal(select_(&f, &t, 1, &reached, &err), PB_EIMPOSSIBLE);
	t.amount = -0.1;
	assert_int_equal(select_(&f, &t, 1, &reached, &err), PB_EIMPOSSIBLE);
	t = target(PB_TARGET_SPARSITY, PB_SCOPE_LAYER, 0.5);
	assert_int_equal(select_(&f, &t, 1, &reached, &err), PB_EINVAL);
	t = target(PB_TARGET_PARAMS, PB_SCOPE_LAYER, 0.5);
	t.n_overrides = 1;
	strcpy(t.overrides[0].layer, "nope");
	assert_int_equal(select_(&f, &t, 1, &reached, &err), PB_ENOTFOUND);
	strcpy(t.overrides[0].layer, "fc");
	assert_int_equal(select_(&f, &t, 1, &reached, &err), PB_EINVAL);
	strcpy(t.overrides[0].layer, "bn2");
	assert_int_equal(select_(&f, &t, 1, &reached, &err), PB_EINVAL);
	/* A NaN score is a pruner bug, not a ranking. */
	t.n_overrides = 0;
	f.score[2][5] = NAN;
	assert_int_equal(select_(&f, &t, 1, &reached, &err), PB_EINVAL);
	assert_non_null(strstr(err.msg, "finite"));
	fx_close(&f);
}

/* What the selection reports is what surgery delivers. */
static void test_reached_after_surgery(void **state)
{
	const char *files[] = { "vgg-s.ini", "resnet-s.ini" };

	(void)state;
	for (int i = 0; i < 2; i++) {
		struct fx f;
		pb_target t = target(PB_TARGET_MACS, PB_SCOPE_GLOBAL, 0.5);
		pb_error err = { 0 };
		pb_model *nm = NULL;
		double reached, real;

		fx_open(&f, files[i], 13);
		assert_int_equal(select_(&f, &t, 1, &reached, &err), 0);
		if (pbi_remove_channels(f.m, f.g, f.ng,
					(const uint8_t *const *)f.keep, &nm,
					&err))
			fail_msg("%s", err.msg);
		real = 1.0 - (double)pb_model_count_macs(nm) /
				     (double)pb_model_count_macs(f.m);
		assert_true(fabs(real - reached) < 1e-12);
		assert_true(fabs(real - 0.5) < 0.01);
		pb_model_free(nm);
		fx_close(&f);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_targets_vgg),
		cmocka_unit_test(test_targets_resnet),
		cmocka_unit_test(test_channels_layer_exact),
		cmocka_unit_test(test_global_normalised),
		cmocka_unit_test(test_overrides),
		cmocka_unit_test(test_min_keep),
		cmocka_unit_test(test_impossible),
		cmocka_unit_test(test_reached_after_surgery),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
