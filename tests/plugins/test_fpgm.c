/* fpgm on a crafted layer: it removes the filter equal to the mean of
 * the others although its norm is the second largest (l1 removes the
 * smallest), in hard mode under either distance and in soft mode without
 * training; soft mode with training trains the kept filters and removes
 * the last selection. During the soft epochs (watched through a copy of
 * the plugin's descriptor whose training hooks look at the weights before
 * calling the plugin's) the selected filters are exactly zero after every
 * optimizer step with grad_mask = yes, as the reference code's gradient
 * mask keeps them, and move off zero with grad_mask = no. */
#include "pruner_test.h"

static const char fpgm_ini[] =
	"[model]\nname = fp\ninput = 1x5x5\nclasses = 3\n"
	"[c1]\ntype = conv\nout = 5\nkernel = 3\npad = 1\nbias = no\n"
	"[b1]\ntype = bn\n"
	"[r1]\ntype = relu\n"
	"[f]\ntype = flatten\n"
	"[fc]\ntype = linear\nout = 3\n";

/* c1's five filters (first three of nine taps; the rest 0):
 *   f0 (4, 0, 0)        L1 4      sum of distances 10.14
 *   f1 (1.5, 0.5, 0)    L1 2      5.13
 *   f2 (1.5, -0.5, 0)   L1 2      5.13
 *   f3 (1, 0, 0.5)      L1 1.5    5.84   <- l1 removes it
 *   f4 mean of f0..f3   L1 2.125  4.51   <- fpgm removes it
 * A mean's norm is at most the mean of the norms (triangle inequality),
 * so the mean filter cannot have the very largest norm; here it has the
 * largest but one, under L1 and L2 alike. */
static void craft_fpgm(pb_model *m)
{
	pb_param *w = pb_model_find_param(m, "c1.weight");
	static const float v[5][3] = { { 4, 0, 0 }, { 1.5f, 0.5f, 0 },
				       { 1.5f, -0.5f, 0 }, { 1, 0, 0.5f },
				       { 2, 0, 0.125f } };

	memset(w->data, 0, w->n * sizeof(float));
	for (int c = 0; c < 5; c++)
		memcpy(w->data + 9 * c, v[c], sizeof v[c]);
	tu_fill_param(m, "fc.weight", -1, 1, 3);
}

/* The dense c1 filter index missing from the pruned model. */
static int removed_filter(pb_model *dense, pb_model *pr)
{
	pb_param *a = pb_model_find_param(dense, "c1.weight");
	pb_param *b = pb_model_find_param(pr, "c1.weight");
	int missing = -1;

	assert_int_equal(b->shape[0], 4);
	for (int c = 0; c < 5; c++) {
		int found = 0;

		for (int i = 0; i < 4; i++)
			found |= !memcmp(a->data + 9 * c, b->data + 9 * i,
					 9 * sizeof(float));
		if (!found) {
			assert_int_equal(missing, -1);
			missing = c;
		}
	}
	return missing;
}

static void test_fpgm_removes_median_not_smallest(void **state)
{
	static const char *hard[] = { "mode=hard", NULL };
	static const char *hard_l1[] = { "mode=hard", "distance=l1", NULL };
	static const char *soft0[] = { "mode=soft", "soft_epochs=0", NULL };
	pb_plugin *fp = tu_open_plugin("fpgm"), *l1 = tu_open_plugin("l1");
	pb_model *m = tu_parse_model(fpgm_ini, "test"), *out = NULL;
	pb_error err = { 0 };

	(void)state;
	craft_fpgm(m);
	if (pt_run_data(m, pb_plugin_pruner(fp), "channels=0.2", hard, NULL,
			NULL, 1, NULL, &out, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(removed_filter(m, out), 4);
	pb_model_free(out);
	if (pt_run_data(m, pb_plugin_pruner(fp), "channels=0.2", hard_l1, NULL,
			NULL, 1, NULL, &out, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(removed_filter(m, out), 4);
	pb_model_free(out);
	/* Soft mode without training selects the same, per layer. */
	if (pt_run_data(m, pb_plugin_pruner(fp), "channels=0.2", soft0, NULL,
			NULL, 1, NULL, &out, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(removed_filter(m, out), 4);
	pb_model_free(out);
	if (pt_run_data(m, pb_plugin_pruner(l1), "channels=0.2", NULL, NULL,
			NULL, 1, NULL, &out, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(removed_filter(m, out), 3);
	pb_model_free(out);
	pb_model_free(m);
	pb_plugin_close(fp);
	pb_plugin_close(l1);
}

static void test_fpgm_soft_trains_and_removes(void **state)
{
	static const char *soft[] = { "mode=soft", "soft_epochs=2", NULL };
	pb_plugin *fp = tu_open_plugin("fpgm");
	pb_model *m, *out = NULL;
	pb_splits sp;
	pb_recipe ft;
	pb_error err = { 0 };

	(void)state;
	pt_small_setup(&m, &sp, &ft);
	if (pt_run_data(m, pb_plugin_pruner(fp), "channels=0.5", soft, &sp, &ft,
			1, NULL, &out, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(pb_model_find_param(out, "c1.weight")->shape[0], 4);
	assert_int_equal(pb_model_find_param(out, "c2.weight")->shape[0], 6);
	assert_int_equal(pb_model_find_param(out, "c3.weight")->shape[0], 5);
	/* The model trained: the kept filters moved off their dense
	 * values (soft mode is not hard mode plus nothing). */
	assert_true(memcmp(pb_model_find_param(out, "fc.bias")->data,
			   pb_model_find_param(m, "fc.bias")->data,
			   4 * sizeof(float)) != 0);
	pb_model_free(out);
	pt_small_free(m, &sp);
	pb_plugin_close(fp);
}

/* ---- watching the soft epochs ------------------------------------------ */

#define N_CONV 3
#define MAX_FILTERS 16

static const char *const conv_names[N_CONV] = { "c1.weight", "c2.weight",
						"c3.weight" };

/* What the watching hooks saw. A selection zeroes its filters; filters
 * of the previous selection left out of the new one are zero too until
 * the first step moves them ("come back"). So the zero set right after a
 * selection is `after_select`, after the first step it must be exactly
 * the selection (n_sel filters of each conv), and it must stay that set
 * through every later step of the epoch. */
typedef struct watch {
	const pb_pruner *real;
	uint8_t after_select[N_CONV][MAX_FILTERS];
	uint8_t held[N_CONV][MAX_FILTERS];
	int n_sel[N_CONV];
	int phase;            /* steps seen since the last selection, to 2 */
	long checked;         /* steps after which the selection was held */
	long broken;          /* steps after which it was not */
	long moved;           /* selected filters seen off zero */
	long came_back;       /* filters left out of a new selection */
	int revive;           /* give a selected filter of c2 weights after
				 epoch 0, so the next selection leaves it */
	int revived;          /* its index, or -1 */
	long revived_zero;    /* steps after which it was zero again */
} watch;

static watch g_watch;

/* zero[l][c] = 1 when filter c of conv l is all zero; returns how many. */
static int zero_filters(pb_prune_ctx *ctx, uint8_t zero[N_CONV][MAX_FILTERS])
{
	int count = 0;

	for (int l = 0; l < N_CONV; l++) {
		pb_param *w = pb_model_find_param(pb_ctx_model(ctx),
						  conv_names[l]);
		size_t len = w->n / (size_t)w->shape[0];

		assert_true(w->shape[0] <= MAX_FILTERS);
		memset(zero[l], 0, MAX_FILTERS);
		for (int c = 0; c < w->shape[0]; c++) {
			int z = 1;

			for (size_t j = 0; j < len; j++)
				z &= w->data[(size_t)c * len + j] == 0.0f;
			zero[l][c] = (uint8_t)z;
			count += z;
		}
	}
	return count;
}

/* After a selection, before any step. */
static void selected(pb_prune_ctx *ctx)
{
	zero_filters(ctx, g_watch.after_select);
	g_watch.phase = 0;
}

/* The first selection is made on the dense weights, none of them zero,
 * so the zero set is exactly the selection. */
static int watch_begin(void *state, pb_prune_ctx *ctx)
{
	(void)state;
	selected(ctx);
	for (int l = 0; l < N_CONV; l++) {
		g_watch.n_sel[l] = 0;
		for (int c = 0; c < MAX_FILTERS; c++)
			g_watch.n_sel[l] += g_watch.after_select[l][c];
	}
	return 0;
}

/* The weights after the last step (or the selection, in phase 0). */
static void look(pb_prune_ctx *ctx)
{
	uint8_t z[N_CONV][MAX_FILTERS];
	int ok = 1;

	zero_filters(ctx, z);
	if (g_watch.phase == 0) {
		g_watch.phase = 1;
		return;
	}
	for (int l = 0; l < N_CONV; l++) {
		int n = 0;

		for (int c = 0; c < MAX_FILTERS; c++) {
			n += z[l][c];
			if (g_watch.phase == 1 && g_watch.after_select[l][c] &&
			    !z[l][c])
				g_watch.came_back++;
			if (g_watch.phase == 2 && g_watch.held[l][c] && !z[l][c])
				g_watch.moved++;
		}
		if (g_watch.phase == 1)
			ok &= n == g_watch.n_sel[l];
		else
			ok &= !memcmp(z[l], g_watch.held[l], MAX_FILTERS);
	}
	if (g_watch.revived >= 0)
		g_watch.revived_zero += z[1][g_watch.revived];
	if (g_watch.phase == 1) {
		/* The selection itself: what stays zero after a step. */
		memcpy(g_watch.held, z, sizeof z);
		g_watch.phase = 2;
	}
	if (ok)
		g_watch.checked++;
	else
		g_watch.broken++;
}

/* Before the optimizer step of `step`: the weights after the previous
 * step. */
static int watch_step(void *state, pb_prune_ctx *ctx, long step)
{
	(void)state;
	(void)step;
	look(ctx);
	return 0;
}

/* Gives the first zero filter of c2 weights far from the others (the
 * largest distance sum), so the next selection must leave it out: its
 * mask has to be cleared for it to train again. */
static void revive(pb_prune_ctx *ctx)
{
	pb_param *w = pb_model_find_param(pb_ctx_model(ctx), "c2.weight");
	size_t len = w->n / (size_t)w->shape[0];
	uint8_t z[N_CONV][MAX_FILTERS];
	int r = 0;

	zero_filters(ctx, z);
	while (r < w->shape[0] && !z[1][r])
		r++;
	assert_true(r < w->shape[0]);
	for (size_t j = 0; j < len; j++)
		w->data[(size_t)r * len + j] = 2.0f + 0.01f * (float)j;
	g_watch.revived = r;
}

static int watch_epoch(void *state, pb_prune_ctx *ctx, int epoch)
{
	int rc;

	look(ctx);
	if (g_watch.revive && epoch == 0)
		revive(ctx);
	if ((rc = g_watch.real->after_epoch(state, ctx, epoch)))
		return rc;
	selected(ctx);
	return 0;
}

/* Three soft epochs of 10 steps on the small net at channels = 0.5 (c1
 * keeps 4 of 8, c2 6 of 12, c3 5 of 10), watched, reviving a filter
 * after epoch 0 when asked. */
static void run_watched(const char *grad_mask, int revive_one)
{
	const char *kv[] = { "mode=soft", "soft_epochs=3", grad_mask, NULL };
	pb_plugin *fp = tu_open_plugin("fpgm");
	pb_pruner w = *pb_plugin_pruner(fp);
	pb_model *m, *out = NULL;
	pb_splits sp;
	pb_recipe ft;
	pb_error err = { 0 };

	memset(&g_watch, 0, sizeof g_watch);
	g_watch.real = pb_plugin_pruner(fp);
	g_watch.revive = revive_one;
	g_watch.revived = -1;
	w.on_train_begin = watch_begin;
	w.after_backward = watch_step;
	w.after_epoch = watch_epoch;
	pt_small_setup(&m, &sp, &ft);
	/* Positive BN shifts, as a trained network has: a zeroed filter's
	 * channel then passes the ReLU and gets a gradient (with a shift of
	 * 0 it is dead, and stays zero with or without a mask). */
	tu_fill_param(m, "b1.bias", 0.05f, 0.2f, 1);
	tu_fill_param(m, "b2.bias", 0.05f, 0.2f, 2);
	tu_fill_param(m, "b3.bias", 0.05f, 0.2f, 3);
	ft.momentum = 0.9;
	ft.weight_decay = 5e-4;
	if (pt_run_data(m, &w, "channels=0.5", kv, &sp, &ft, 1, NULL, &out,
			&err))
		fail_msg("%s", err.msg);
	assert_int_equal(g_watch.n_sel[0], 4);
	assert_int_equal(g_watch.n_sel[1], 6);
	assert_int_equal(g_watch.n_sel[2], 5);
	assert_int_equal(pb_model_find_param(out, "c1.weight")->shape[0], 4);
	assert_int_equal(pb_model_find_param(out, "c2.weight")->shape[0], 6);
	assert_int_equal(pb_model_find_param(out, "c3.weight")->shape[0], 5);
	pb_model_free(out);
	pt_small_free(m, &sp);
	pb_plugin_close(fp);
}

static void test_fpgm_soft_holds_selection(void **state)
{
	(void)state;
	run_watched("grad_mask=yes", 0);
	/* 3 epochs of 10 steps, each step's result seen once. */
	assert_int_equal(g_watch.checked + g_watch.broken, 30);
	if (g_watch.broken || g_watch.moved)
		fail_msg("the selection moved off zero: %ld of 30 steps, %ld "
			 "filters", g_watch.broken, g_watch.moved);
}

/* A filter the next selection leaves out trains again: the masks follow
 * the selection, they do not pile up. */
static void test_fpgm_soft_filter_comes_back(void **state)
{
	(void)state;
	run_watched("grad_mask=yes", 1);
	assert_true(g_watch.revived >= 0);
	assert_int_equal(g_watch.checked + g_watch.broken, 30);
	if (g_watch.broken || g_watch.moved || g_watch.revived_zero)
		fail_msg("%ld of 30 steps off the selection, %ld filters "
			 "moved, the revived filter zero after %ld steps",
			 g_watch.broken, g_watch.moved, g_watch.revived_zero);
}

static void test_fpgm_soft_without_grad_mask(void **state)
{
	(void)state;
	run_watched("grad_mask=no", 0);
	/* The first step of each epoch moves every selected filter off
	 * zero (none is held), and none goes back to zero. */
	assert_int_equal(g_watch.broken, 3);
	assert_int_equal(g_watch.checked, 27);
	assert_int_equal(g_watch.came_back, 3 * (4 + 6 + 5));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fpgm_removes_median_not_smallest),
		cmocka_unit_test(test_fpgm_soft_trains_and_removes),
		cmocka_unit_test(test_fpgm_soft_holds_selection),
		cmocka_unit_test(test_fpgm_soft_filter_comes_back),
		cmocka_unit_test(test_fpgm_soft_without_grad_mask),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
