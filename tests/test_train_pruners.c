/* The pruners that act during training, on crafted models and tiny
 * synthetic data:
 * - slimming: after_backward adds exactly lambda*sign(gamma) to the BN
 *   scale gradients; one global |gamma| threshold takes more channels from
 *   a layer whose scales are all small (L1 of the filters would not).
 * - taylor: the logged importances equal (g_gamma*gamma + g_beta*beta)^2
 *   and (sum g*w)^2 computed here from one backward pass; a channel with
 *   large weights but no effect on the loss is removed before a small,
 *   useful one (L1 removes the small one).
 * - lth: after the rounds the surviving weights equal the rewind point
 *   bitwise and the pruned ones are zero; sparsity after r rounds is
 *   1 - (1 - rate)^r within one weight, the last layer at half the rate;
 *   reinit gives other survivors than rewinding.
 * Hooks and snapshots are observed through "wrapper" descriptors: copies
 * of the plugin's descriptor whose prune calls the plugin's own prune (or
 * hook) and then looks at the context. */
#include "testutil.h"
#include "prunebench/checkpoint.h"
#include "prunebench/layers.h"
#include "prunebench/plugin.h"
#include "prunebench/train.h"

/* Tiny data: n synthetic 1x4x4 images of 3 classes, all for training. */
static void make_splits(pb_splits *sp, int n)
{
	pb_error err = { 0 };
	float mean[1], std[1];

	memset(sp, 0, sizeof *sp);
	assert_int_equal(pb_dataset_synthetic(&sp->train, n, 1, 4, 4, 3, 0.3f,
					      11, &err), 0);
	pb_dataset_channel_stats(&sp->train, mean, std);
	pb_dataset_normalize(&sp->train, mean, std);
}

/* A recipe without augmentation, warm-up or decay. */
static void plain_recipe(pb_recipe *r, int epochs, int batch, double lr)
{
	pb_recipe_default(r);
	r->epochs = epochs;
	r->batch = batch;
	r->lr = lr;
	r->momentum = 0.0;
	r->nesterov = 0;
	r->weight_decay = 0.0;
	r->warmup_epochs = 0.0;
	r->aug.crop_pad = 0;
	r->schedule = PB_SCHED_CONSTANT;
}

typedef struct run_args {
	const char *const *kv;       /* "k=v", NULL-terminated */
	pb_target_kind kind;
	double amount;
	pb_scope scope;
	const pb_splits *splits;
	const pb_recipe *dense, *finetune;
	FILE *progress;
	unsigned long seed;
	const char *dense_points;
} run_args;

static int run(const pb_model *m, const pb_pruner *pr, const run_args *a,
	       pb_model **out, pb_prune_report *rep, pb_error *err)
{
	pb_target t;
	pb_prune_setup su = { 0 };

	memset(&t, 0, sizeof t);
	t.kind = a->kind;
	t.amount = a->amount;
	t.scope = a->scope;
	su.pruner = pr;
	su.target = &t;
	su.splits = a->splits;
	su.dense = a->dense;
	su.finetune = a->finetune;
	su.progress = a->progress;
	su.label = pr->name;
	su.dense_points = a->dense_points;
	return tu_prune_run(m, &su, a->kv, a->seed ? a->seed : 5, out, rep,
			    err);
}

/* ---- slimming ------------------------------------------------------------- */

static const char two_bn_ini[] =
	"[model]\nname = twobn\ninput = 1x4x4\nclasses = 3\n"
	"[c1]\ntype = conv\nout = 4\nkernel = 3\npad = 1\nbias = no\n"
	"[b1]\ntype = bn\n"
	"[r1]\ntype = relu\n"
	"[c2]\ntype = conv\nout = 4\nkernel = 3\npad = 1\nbias = no\n"
	"[b2]\ntype = bn\n"
	"[r2]\ntype = relu\n"
	"[f]\ntype = flatten\n"
	"[fc]\ntype = linear\nout = 3\n";

static const pb_pruner *g_real;       /* the wrapped plugin's descriptor */
static float g_grad[8], g_gamma[8];   /* b1, b2 after the hook */

/* Sets known gradients, runs slimming's after_backward once, keeps the
 * result; prunes nothing. */
static int slim_hook_only(void *state, pb_prune_ctx *ctx)
{
	pb_model *m = pb_ctx_model(ctx);
	pb_param *g1 = pb_model_find_param(m, "b1.weight");
	pb_param *g2 = pb_model_find_param(m, "b2.weight");
	int rc;

	for (int c = 0; c < 4; c++) {
		g1->grad[c] = 0.25f;
		g2->grad[c] = -0.5f;
	}
	if ((rc = g_real->after_backward(state, ctx, 0)))
		return rc;
	for (int c = 0; c < 4; c++) {
		g_grad[c] = g1->grad[c];
		g_grad[4 + c] = g2->grad[c];
		g_gamma[c] = g1->data[c];
		g_gamma[4 + c] = g2->data[c];
	}
	return 0;
}

static void set_gammas(pb_model *m, const float *b1, const float *b2)
{
	memcpy(pb_model_find_param(m, "b1.weight")->data, b1, 4 * sizeof *b1);
	memcpy(pb_model_find_param(m, "b2.weight")->data, b2, 4 * sizeof *b2);
}

static void test_slimming_subgradient(void **state)
{
	static const float b1[4] = { 1.5f, -2.0f, 0.0f, 0.3f };
	static const float b2[4] = { -0.1f, 0.2f, 3.0f, -4.0f };
	static const char *kv[] = { "lambda=0.001", "sparsity_epochs=0", NULL };
	pb_plugin *p = tu_open_plugin("slimming");
	pb_pruner w = *pb_plugin_pruner(p);
	pb_model *m = tu_parse_model(two_bn_ini, "test"), *out = NULL;
	pb_error err = { 0 };
	run_args a = { .kv = kv, .kind = PB_TARGET_CHANNELS, .amount = 0.25 };

	(void)state;
	g_real = pb_plugin_pruner(p);
	w.prune = slim_hook_only;
	set_gammas(m, b1, b2);
	if (run(m, &w, &a, &out, NULL, &err))
		fail_msg("%s", err.msg);
	for (int c = 0; c < 8; c++) {
		float base = c < 4 ? 0.25f : -0.5f;
		float sg = g_gamma[c] > 0 ? 1.f : g_gamma[c] < 0 ? -1.f : 0.f;

		if (g_grad[c] != base + 0.001f * sg)
			fail_msg("gamma %d = %g: grad %.9g, expected %.9g", c,
				 g_gamma[c], g_grad[c], base + 0.001f * sg);
	}
	pb_model_free(out);
	pb_model_free(m);
	pb_plugin_close(p);
}

/* b1's scales are all small, b2's mostly large; c1's filters are large
 * and c2's small, so the L1 criterion would cut c2 and slimming cuts b1. */
static void test_slimming_global_threshold(void **state)
{
	static const float b1[4] = { 0.01f, -0.03f, 0.02f, 0.04f };
	static const float b2[4] = { 1.0f, 0.05f, -2.0f, 3.0f };
	static const char *kv[] = { "sparsity_epochs=0", NULL };
	pb_plugin *p = tu_open_plugin("slimming");
	pb_plugin *l1 = tu_open_plugin("l1");
	pb_model *m = tu_parse_model(two_bn_ini, "test"), *out = NULL;
	pb_param *w1, *w2, *g1, *g2;
	pb_error err = { 0 };
	run_args a = { .kv = kv, .kind = PB_TARGET_CHANNELS, .amount = 0.5,
		       .scope = PB_SCOPE_GLOBAL };

	(void)state;
	set_gammas(m, b1, b2);
	tu_fill_param(m, "c1.weight", 1, 2, 1);
	tu_fill_param(m, "c2.weight", -0.1f, 0.1f, 2);
	tu_fill_param(m, "fc.weight", -1, 1, 3);
	if (run(m, pb_plugin_pruner(p), &a, &out, NULL, &err))
		fail_msg("%s", err.msg);
	/* The four smallest |gamma|: 0.01, 0.02, 0.03 of b1 and 0.05 of b2;
	 * b1 keeps its largest (0.04), b2 keeps 1, -2, 3. */
	g1 = pb_model_find_param(out, "b1.weight");
	g2 = pb_model_find_param(out, "b2.weight");
	assert_int_equal(g1->n, 1);
	assert_int_equal(g2->n, 3);
	assert_true(g1->data[0] == 0.04f);
	assert_true(g2->data[0] == 1.0f && g2->data[1] == -2.0f &&
		    g2->data[2] == 3.0f);
	pb_model_free(out);

	/* L1 on the same model and target (its per-layer-normalised global
	 * ranking, or per layer) does not strip c1 the way |gamma| does. */
	a.kv = NULL;
	if (run(m, pb_plugin_pruner(l1), &a, &out, NULL, &err))
		fail_msg("%s", err.msg);
	w1 = pb_model_find_param(out, "c1.weight");
	w2 = pb_model_find_param(out, "c2.weight");
	assert_true(w1->shape[0] > 1);
	assert_int_equal(w1->shape[0] + w2->shape[0], 4);
	pb_model_free(out);
	pb_model_free(m);
	pb_plugin_close(l1);
	pb_plugin_close(p);
}

/* from = dense with a short sparsity training: runs, and the scales of
 * the channels that remain moved (the penalty acted). */
static void test_slimming_trains(void **state)
{
	static const char *kv[] = { "from=dense", "sparsity_epochs=1",
				    "lambda=0.01", NULL };
	pb_plugin *p = tu_open_plugin("slimming");
	pb_model *m = tu_parse_model(two_bn_ini, "test"), *out = NULL;
	pb_splits sp;
	pb_recipe ft;
	pb_prune_report rep;
	pb_error err = { 0 };
	run_args a = { .kv = kv, .kind = PB_TARGET_CHANNELS, .amount = 0.25,
		       .scope = PB_SCOPE_GLOBAL };

	(void)state;
	tu_init_params(m, 3);
	make_splits(&sp, 64);
	plain_recipe(&ft, 1, 16, 0.05);
	a.splits = &sp;
	a.finetune = &ft;
	if (run(m, pb_plugin_pruner(p), &a, &out, &rep, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(rep.channels_after, 6);
	pb_model_free(out);
	pb_model_free(m);
	pb_splits_free(&sp);
	pb_plugin_close(p);
}

/* ---- taylor ------------------------------------------------------------------ */

static const char taylor_ini[] =
	"[model]\nname = tay\ninput = 1x4x4\nclasses = 3\n"
	"[c1]\ntype = conv\nout = 3\nkernel = 3\npad = 1\nbias = no\n"
	"[b1]\ntype = bn\n"
	"[r1]\ntype = relu\n"
	"[f]\ntype = flatten\n"
	"[fc]\ntype = linear\nout = 3\n";

/* The weight criterion on a conv followed by BN is zero up to rounding:
 * BN makes the loss invariant to the filter's scale, so sum g*w = 0. It is
 * tested on the same net without the BN. */
static const char taylor_nobn_ini[] =
	"[model]\nname = taynobn\ninput = 1x4x4\nclasses = 3\n"
	"[c1]\ntype = conv\nout = 3\nkernel = 3\npad = 1\n"
	"[r1]\ntype = relu\n"
	"[f]\ntype = flatten\n"
	"[fc]\ntype = linear\nout = 3\n";

/* Channel 0: large filter and scale but fc reads it with zero weights (no
 * effect on the loss); channel 1: small filter, useful; channel 2: large,
 * useful. */
static void craft_taylor(pb_model *m)
{
	pb_param *w = pb_model_find_param(m, "c1.weight");
	pb_param *g = pb_model_find_param(m, "b1.weight");
	pb_param *b = pb_model_find_param(m, "b1.bias");
	pb_param *fc = pb_model_find_param(m, "fc.weight");

	tu_fill_uniform(w->data, 9, 1.0f, 2.0f, 4);
	tu_fill_uniform(w->data + 9, 9, -0.05f, 0.05f, 5);
	tu_fill_uniform(w->data + 18, 9, -2.0f, 2.0f, 6);
	tu_fill_uniform(fc->data, fc->n, -1, 1, 7);
	for (int o = 0; o < 3; o++)
		memset(fc->data + o * 48, 0, 16 * sizeof(float));
	if (!g) {
		b = pb_model_find_param(m, "c1.bias");
		b->data[0] = 0.1f;
		b->data[1] = 0.05f;
		b->data[2] = 0.1f;
		return;
	}
	g->data[0] = 3.0f;
	g->data[1] = 0.5f;
	g->data[2] = 2.0f;
	b->data[0] = 0.1f;
	b->data[1] = 0.2f;
	b->data[2] = -0.1f;
}

/* The importances computed here from one backward pass over the whole
 * training set (one batch). */
static void hand_importance(const pb_model *m0, const pb_dataset *d,
			    int weight, double *imp)
{
	pb_model *m = NULL;
	pb_error err = { 0 };
	const float *logits;
	float probs[64 * 3], dl[64 * 3];
	int correct;

	assert_true(d->n <= 64);
	assert_int_equal(pb_model_clone(&m, m0, &err), 0);
	assert_int_equal(pb_model_forward(m, d->x, d->n, 1, NULL, &logits,
					  &err), 0);
	pb_softmax_xent_forward(probs, logits, d->y, d->n, 3, &correct);
	pb_softmax_xent_backward(dl, probs, d->y, d->n, 3);
	pb_model_zero_grad(m);
	assert_int_equal(pb_model_backward(m, dl, &err), 0);
	for (int c = 0; c < 3; c++) {
		double t = 0.0;

		if (weight) {
			pb_param *w = pb_model_find_param(m, "c1.weight");

			for (int j = 0; j < 9; j++)
				t += (double)w->grad[c * 9 + j] *
				     w->data[c * 9 + j];
		} else {
			pb_param *g = pb_model_find_param(m, "b1.weight");
			pb_param *b = pb_model_find_param(m, "b1.bias");

			t = (double)g->grad[c] * g->data[c] +
			    (double)b->grad[c] * b->data[c];
		}
		imp[c] = t * t;
	}
	pb_model_free(m);
}

/* Runs taylor (lr 0, so every mini-batch is the same full batch and the
 * average equals one batch's value), parses the logged importances. */
static void run_taylor(const char *criterion, double *logged,
		       pb_model **out, const pb_splits *sp, pb_model *m)
{
	char crit[32];
	const char *kv[] = { crit, "interval=3", "per_step=1",
			     "log_scores=yes", NULL };
	pb_plugin *p = tu_open_plugin("taylor");
	pb_recipe ft;
	pb_error err = { 0 };
	char *buf = NULL;
	size_t len = 0;
	FILE *log = open_memstream(&buf, &len);
	const char *line;
	run_args a = { .kv = kv, .kind = PB_TARGET_CHANNELS, .amount = 0.3,
		       .scope = PB_SCOPE_GLOBAL, .splits = sp, .progress = log };

	snprintf(crit, sizeof crit, "criterion=%s", criterion);
	plain_recipe(&ft, 1, sp->train.n, 0.0);
	a.finetune = &ft;
	if (run(m, pb_plugin_pruner(p), &a, out, NULL, &err))
		fail_msg("%s", err.msg);
	fclose(log);
	line = strstr(buf, "step 1 group ");
	if (!line || !(line = strstr(line, "importance:")))
		fail_msg("no importances logged:\n%s", buf);
	assert_int_equal(sscanf(line, "importance: %lf %lf %lf", &logged[0],
				&logged[1], &logged[2]), 3);
	free(buf);
	pb_plugin_close(p);
}

static void test_taylor(const char *criterion)
{
	int weight = !strcmp(criterion, "weight");
	const char *ini = weight ? taylor_nobn_ini : taylor_ini;
	pb_model *m = tu_parse_model(ini, "test"), *out = NULL;
	pb_splits sp;
	double want[3], got[3];
	pb_param *a, *b;

	make_splits(&sp, 48);
	craft_taylor(m);
	hand_importance(m, &sp.train, weight, want);
	run_taylor(criterion, got, &out, &sp, m);
	/* float sums over the same samples in another order: compare
	 * relative to the largest importance */
	for (int c = 0; c < 3; c++)
		if (tu_relerr(got[c], want[c], 1e-4 * (want[1] > want[2] ?
						       want[1] : want[2])) >
		    1e-3)
			fail_msg("%s: channel %d importance %.9g, by hand %.9g",
				 criterion, c, got[c], want[c]);
	/* The dead channel has no effect: exactly zero importance. */
	assert_true(want[0] == 0.0 && want[1] > 0.0 && want[2] > 0.0);
	/* It is the one removed; the small useful channel stays. */
	a = pb_model_find_param(m, "c1.weight");
	b = pb_model_find_param(out, "c1.weight");
	assert_int_equal(b->shape[0], 2);
	assert_memory_equal(b->data, a->data + 9, 18 * sizeof(float));
	pb_model_free(out);
	pb_model_free(m);
	pb_splits_free(&sp);
}

static void test_taylor_bn(void **state)
{
	(void)state;
	test_taylor("bn");
}

static void test_taylor_weight(void **state)
{
	(void)state;
	test_taylor("weight");
}

/* On the same model L1 removes the small, useful channel 1. */
static void test_taylor_vs_l1(void **state)
{
	pb_plugin *p = tu_open_plugin("l1");
	pb_model *m = tu_parse_model(taylor_ini, "test"), *out = NULL;
	pb_error err = { 0 };
	pb_param *a, *b;
	run_args ra = { .kind = PB_TARGET_CHANNELS, .amount = 0.3,
			.scope = PB_SCOPE_GLOBAL };

	(void)state;
	craft_taylor(m);
	if (run(m, pb_plugin_pruner(p), &ra, &out, NULL, &err))
		fail_msg("%s", err.msg);
	a = pb_model_find_param(m, "c1.weight");
	b = pb_model_find_param(out, "c1.weight");
	assert_int_equal(b->shape[0], 2);
	assert_memory_equal(b->data, a->data, 9 * sizeof(float));
	assert_memory_equal(b->data + 9, a->data + 18, 9 * sizeof(float));
	pb_model_free(out);
	pb_model_free(m);
	pb_plugin_close(p);
}

/* ---- lth -------------------------------------------------------------------- */

static const char lth_ini[] =
	"[model]\nname = lthm\ninput = 1x4x4\nclasses = 3\n"
	"[c1]\ntype = conv\nout = 4\nkernel = 3\npad = 1\n"
	"[r1]\ntype = relu\n"
	"[c2]\ntype = conv\nout = 8\nkernel = 3\npad = 1\n"
	"[r2]\ntype = relu\n"
	"[p2]\ntype = maxpool\nkernel = 2\n"
	"[f]\ntype = flatten\n"
	"[fc]\ntype = linear\nout = 3\n";

static pb_model *g_pruned, *g_rewind;
static int g_observe_snapshot = 1;   /* 0: lth kept no slot 0 */

/* Runs lth's prune, keeps its result and the rewind point (slot 0). */
static int lth_observed(void *state, pb_prune_ctx *ctx)
{
	pb_error err = { 0 };
	int rc = g_real->prune(state, ctx);

	if (rc)
		return rc;
	if (pb_model_clone(&g_pruned, pb_ctx_model(ctx), &err))
		return pb_ctx_fail(ctx, "%s", err.msg);
	if (!g_observe_snapshot)
		return 0;
	if ((rc = pb_ctx_snapshot_revert(ctx, 0)))
		return rc;
	if (pb_model_clone(&g_rewind, pb_ctx_model(ctx), &err))
		return pb_ctx_fail(ctx, "%s", err.msg);
	return 0;
}

/* Runs lth (wrapped) with options kv to sparsity 1 - 0.8^3, on dense
 * model m when given (else a fresh one), with the dense model's training
 * points at BASE.stepN.ckpt when points is given; returns the error code
 * (want_error) or fails the test on error. */
static int run_lth_on(pb_model *dense, const char *const *kv,
		      const char *points, int want_error,
		      pb_prune_report *rep, pb_error *err)
{
	pb_plugin *p = tu_open_plugin("lth");
	pb_pruner w = *pb_plugin_pruner(p);
	pb_model *m = dense ? dense : tu_parse_model(lth_ini, "test");
	pb_model *out = NULL;
	pb_splits sp;
	pb_recipe recipe;
	run_args a = { .kv = kv, .kind = PB_TARGET_SPARSITY,
		       .amount = 1.0 - 0.8 * 0.8 * 0.8,
		       .scope = PB_SCOPE_GLOBAL, .dense_points = points };
	int rc;

	g_real = pb_plugin_pruner(p);
	w.prune = lth_observed;
	make_splits(&sp, 64);
	/* 2 epochs of 4 steps: iterations 0..8. */
	plain_recipe(&recipe, 2, 16, 0.1);
	a.splits = &sp;
	a.dense = &recipe;
	rc = run(m, &w, &a, &out, rep, err);
	if (rc && !want_error)
		fail_msg("%s", err->msg);
	if (!rc && want_error)
		fail_msg("lth ran without the rewind point it needs");
	pb_model_free(out);
	if (!dense)
		pb_model_free(m);
	pb_splits_free(&sp);
	pb_plugin_close(p);
	return rc;
}

static void run_lth(const char *const *kv, pb_prune_report *rep)
{
	pb_error err = { 0 };

	run_lth_on(NULL, kv, NULL, 0, rep, &err);
}

/* Zeros in the weight tensors; survivors (and every other tensor) equal
 * to the rewind point bitwise (same = 1) or mostly not (same = 0). */
static void check_vs_rewind(int same, size_t *zeros, size_t *total,
			    size_t *fc_zeros, size_t *fc_total)
{
	size_t differ = 0, kept = 0;

	*zeros = *total = *fc_zeros = *fc_total = 0;
	for (int i = 0; i < pb_model_n_params(g_pruned); i++) {
		pb_param *a = pb_model_param(g_pruned, i);
		pb_param *b = pb_model_param(g_rewind, i);

		assert_int_equal(a->n, b->n);
		for (size_t j = 0; j < a->n; j++) {
			int z = a->kind == PB_PARAM_WEIGHT &&
				a->data[j] == 0.0f;

			if (a->kind == PB_PARAM_WEIGHT) {
				*total += 1;
				*zeros += (size_t)z;
				if (!strcmp(a->name, "fc.weight")) {
					*fc_total += 1;
					*fc_zeros += (size_t)z;
				}
			}
			if (z || !a->trainable)
				continue;
			kept++;
			if (memcmp(&a->data[j], &b->data[j], sizeof(float)))
				differ++;
		}
	}
	if (same && differ)
		fail_msg("%zu of %zu surviving values differ from the rewind "
			 "point", differ, kept);
	if (!same && differ < kept / 2)
		fail_msg("reinit: only %zu of %zu surviving values differ from "
			 "the rewind point", differ, kept);
}

static void test_lth_rewind(void **state)
{
	static const char *kv[] = { "rewind=3", "retrain_epochs=0",
				    "from=scratch", NULL };
	pb_prune_report rep;
	size_t zeros, total, fcz, fct;

	(void)state;
	run_lth(kv, &rep);
	check_vs_rewind(1, &zeros, &total, &fcz, &fct);
	/* 1 - 0.8^r after round r, within one weight. */
	assert_int_equal(rep.n_rounds, 3);
	for (int r = 0; r < 3; r++)
		if (fabs(rep.rounds[r] - (1.0 - pow(0.8, r + 1))) >
		    1.0 / (double)total + 1e-12)
			fail_msg("round %d: sparsity %g, wanted %g", r + 1,
				 rep.rounds[r], 1.0 - pow(0.8, r + 1));
	assert_true(fabs((double)zeros - (1.0 - pow(0.8, 3)) * total) <= 1.0);
	/* The last layer at half the rate. */
	assert_true(fabs((double)fcz - (1.0 - pow(0.9, 3)) * fct) <= 1.0);
	pb_model_free(g_pruned);
	pb_model_free(g_rewind);
	g_pruned = g_rewind = NULL;
}

static void test_lth_reinit(void **state)
{
	static const char *kv[] = { "rewind=3", "retrain_epochs=0",
				    "reinit=yes", "from=scratch", NULL };
	pb_prune_report rep;
	size_t zeros, total, fcz, fct;

	(void)state;
	run_lth(kv, &rep);
	check_vs_rewind(0, &zeros, &total, &fcz, &fct);
	assert_true(fabs((double)zeros - (1.0 - pow(0.8, 3)) * total) <= 1.0);
	pb_model_free(g_pruned);
	pb_model_free(g_rewind);
	g_pruned = g_rewind = NULL;
}

/* With retraining, pruned weights stay exactly zero and the sparsity
 * holds. */
static void test_lth_retrain(void **state)
{
	static const char *kv[] = { "rewind=1%", "retrain_epochs=1",
				    "from=scratch", NULL };
	pb_prune_report rep;
	size_t zeros, total, fcz, fct;

	(void)state;
	run_lth(kv, &rep);
	assert_int_equal(rep.n_rounds, 3);
	check_vs_rewind(0, &zeros, &total, &fcz, &fct);
	assert_true(fabs((double)zeros - (1.0 - pow(0.8, 3)) * total) <= 1.0);
	assert_true(fabs(rep.rounds[2] - (1.0 - pow(0.8, 3))) <= 1.0 / total);
	pb_model_free(g_pruned);
	pb_model_free(g_rewind);
	g_pruned = g_rewind = NULL;
}

/* from = dense (the default): the rewind point is the dense model's own
 * training at iteration k, read from BASE.stepK.ckpt. A stand-in point
 * with weights unlike the dense model's shows where survivors come from:
 * after the rounds they equal the point's values bitwise, and the masks
 * were cut from the dense model's magnitudes in round 1. */
static void test_lth_dense_point(void **state)
{
	static const char *kv[] = { "rewind=3", "retrain_epochs=0", NULL };
	char *dir = tu_temp_dir(), base[512], path[600];
	pb_model *dense = tu_parse_model(lth_ini, "test");
	pb_model *point = tu_parse_model(lth_ini, "test");
	pb_prune_report rep;
	pb_error err = { 0 };
	size_t zeros, total, fcz, fct, same_as_dense = 0, n = 0;

	(void)state;
	tu_init_params(dense, 11);
	tu_init_params(point, 12);
	snprintf(base, sizeof base, "%s/dense", dir);
	snprintf(path, sizeof path, "%s.step3.ckpt", base);
	if (pb_checkpoint_save(point, path, &err))
		fail_msg("%s", err.msg);
	run_lth_on(dense, kv, base, 0, &rep, &err);
	check_vs_rewind(1, &zeros, &total, &fcz, &fct);
	assert_int_equal(rep.n_rounds, 3);
	assert_true(fabs((double)zeros - (1.0 - pow(0.8, 3)) * total) <= 1.0);
	/* Slot 0 holds the point from the file, not the dense weights. */
	for (int i = 0; i < pb_model_n_params(point); i++) {
		pb_param *a = pb_model_param(point, i);
		pb_param *b = pb_model_param(g_rewind, i);
		pb_param *d = pb_model_param(dense, i);

		if (a->kind != PB_PARAM_WEIGHT)
			continue;
		for (size_t j = 0; j < a->n; j++) {
			if (b->data[j] == 0.0f)
				continue;
			assert_memory_equal(&a->data[j], &b->data[j],
					    sizeof(float));
			same_as_dense += d->data[j] == b->data[j];
			n++;
		}
	}
	assert_true(n > 0 && same_as_dense < n / 10);
	pb_model_free(g_pruned);
	pb_model_free(g_rewind);
	g_pruned = g_rewind = NULL;
	pb_model_free(point);
	pb_model_free(dense);
	unlink(path);
	tu_rm_tree(dir);
}

/* Without the point: a clear error before any pruning, saying how to get
 * it and, when some points were kept, which. */
static void test_lth_point_missing(void **state)
{
	static const char *kv3[] = { "rewind=3", NULL };
	static const char *kv5[] = { "rewind=5", NULL };
	char *dir = tu_temp_dir(), base[512], path[600];
	pb_model *dense = tu_parse_model(lth_ini, "test");
	pb_prune_report rep;
	pb_error err = { 0 };

	(void)state;
	tu_init_params(dense, 11);
	run_lth_on(dense, kv3, NULL, 1, &rep, &err);
	assert_non_null(strstr(err.msg, "without training points"));
	assert_non_null(strstr(err.msg, "--keep 3"));
	snprintf(base, sizeof base, "%s/dense", dir);
	snprintf(path, sizeof path, "%s.step3.ckpt", base);
	if (pb_checkpoint_save(dense, path, &err))
		fail_msg("%s", err.msg);
	pb_error_clear(&err);
	run_lth_on(dense, kv5, base, 1, &rep, &err);
	assert_non_null(strstr(err.msg, "rewind = 5 (iteration 5)"));
	assert_non_null(strstr(err.msg, "points kept (iterations): 3"));
	pb_model_free(dense);
	tu_rm_tree(dir);
}

/* lr_rewind = yes: no weight rewind (learning-rate rewinding); with no
 * retraining the survivors keep the dense values. */
static void test_lth_lr_rewind(void **state)
{
	static const char *kv[] = { "lr_rewind=yes", "retrain_epochs=0",
				    NULL };
	pb_model *dense = tu_parse_model(lth_ini, "test");
	pb_prune_report rep;
	pb_error err = { 0 };

	(void)state;
	tu_init_params(dense, 11);
	g_observe_snapshot = 0;
	run_lth_on(dense, kv, NULL, 0, &rep, &err);
	g_observe_snapshot = 1;
	for (int i = 0; i < pb_model_n_params(dense); i++) {
		pb_param *a = pb_model_param(dense, i);
		pb_param *b = pb_model_param(g_pruned, i);

		for (size_t j = 0; j < a->n; j++)
			if (b->data[j] != 0.0f)
				assert_memory_equal(&a->data[j], &b->data[j],
						    sizeof(float));
	}
	pb_model_free(g_pruned);
	g_pruned = NULL;
	pb_model_free(dense);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slimming_subgradient),
		cmocka_unit_test(test_slimming_global_threshold),
		cmocka_unit_test(test_slimming_trains),
		cmocka_unit_test(test_taylor_bn),
		cmocka_unit_test(test_taylor_weight),
		cmocka_unit_test(test_taylor_vs_l1),
		cmocka_unit_test(test_lth_rewind),
		cmocka_unit_test(test_lth_reinit),
		cmocka_unit_test(test_lth_retrain),
		cmocka_unit_test(test_lth_dense_point),
		cmocka_unit_test(test_lth_point_missing),
		cmocka_unit_test(test_lth_lr_rewind),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
