/* taylor's pruning phase on crafted nets and tiny data (its importance
 * estimates are test_taylor.c):
 * - the pruning phase is ONE fine-tune: with two inert channels pruned at
 *   two events, the surviving weights equal those of one uninterrupted
 *   training of the same recipe (a re-created optimizer or a restarted
 *   schedule at an event would change them), and the logged importance
 *   at the second event is pruning_momentum * the first + (1 - m) * the
 *   second interval's mean of per-batch importances recorded here during
 *   that same training;
 * - the target is reached (channels exactly, params/macs at least), the
 *   masked channels are the ones removed (no all-zero filter remains, and
 *   the pruned model's logits equal the masked model's at the end of the
 *   phase), and the result carries no masks;
 * - the planned length: a macs target that needs more channels than
 *   planned continues with a second fine-tune, one that needs fewer
 *   fine-tunes the masked model after the last event;
 * - a target the floors cannot reach fails before any training. */
#include "pruner_test.h"
#include "prunebench/checkpoint.h"
#include "taylor_test.h"

/* ---- one fine-tune with pruning events ----------------------------------- */

/* Four channels: 0 and 2 are inert (BN scale 0, shift -1, so the ReLU
 * gives zero, every gradient reaching them is zero and they affect
 * nothing), 1 and 3 are useful. The inert ones have importance exactly 0,
 * so a channels=0.5 target with per_step=1 removes 0 at the first event
 * and 2 at the second, and masking them changes nothing else: the run
 * must train 1 and 3 exactly as one uninterrupted training does. */
static const char four_ini[] =
	"[model]\nname = tay4\ninput = 1x4x4\nclasses = 3\n"
	"[c1]\ntype = conv\nout = 4\nkernel = 3\npad = 1\nbias = no\n"
	"[b1]\ntype = bn\n"
	"[r1]\ntype = relu\n"
	"[f]\ntype = flatten\n"
	"[fc]\ntype = linear\nout = 3\n";

enum { FOUR_INTERVAL = 4, FOUR_STEPS = 2 * FOUR_INTERVAL, FOUR_SEED = 5 };

static pb_model *four_model(void)
{
	pb_model *m = tu_parse_model(four_ini, "test");
	pb_param *g, *b;

	tu_init_params(m, 21);
	g = pb_model_find_param(m, "b1.weight");
	b = pb_model_find_param(m, "b1.bias");
	g->data[0] = g->data[2] = 0.0f;
	b->data[0] = b->data[2] = -1.0f;
	g->data[1] = 1.2f;
	b->data[1] = 0.1f;
	g->data[3] = 0.8f;
	b->data[3] = -0.2f;
	return m;
}

/* Momentum, Nesterov, weight decay and a cosine schedule over 3 epochs of
 * 6 steps: longer than the 8 steps of the pruning phase, so the phase
 * runs at the start of that schedule. */
static void four_recipe(pb_recipe *r)
{
	pb_recipe_default(r);
	r->epochs = 3;
	r->batch = 8;
	r->lr = 0.05;
	r->warmup_epochs = 0;
	r->val_size = 0;
}

/* Per-batch importances of the four channels, recorded by a hook of the
 * reference training. */
typedef struct imp_log {
	double imp[FOUR_STEPS][4];
	int n;
} imp_log;

static int record_importance(void *user, pb_model *m, long step)
{
	imp_log *l = user;
	pb_param *g = pb_model_find_param(m, "b1.weight");
	pb_param *b = pb_model_find_param(m, "b1.bias");

	(void)step;
	assert_true(l->n < FOUR_STEPS);
	for (int c = 0; c < 4; c++) {
		double t = (double)g->grad[c] * g->data[c] +
			   (double)b->grad[c] * b->data[c];

		l->imp[l->n][c] = t * t;
	}
	l->n++;
	return 0;
}

/* One uninterrupted training of FOUR_STEPS steps with the fine-tune
 * recipe, its schedule over the recipe's 3 epochs, from the cell's RNG
 * seed, nothing masked. */
static pb_model *reference_run(const pb_model *m0, const pb_splits *sp,
			       const pb_recipe *ft, imp_log *l)
{
	pb_model *m = NULL;
	pb_error err = { 0 };
	pb_recipe r = *ft;
	pb_train_hooks h = { .user = l, .after_backward = record_importance };
	pb_train_opts o = { .hooks = &h, .max_steps = FOUR_STEPS };
	gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);

	assert_non_null(rng);
	gsl_rng_set(rng, FOUR_SEED);
	assert_int_equal(pb_model_clone(&m, m0, &err), 0);
	if (pb_train(m, &sp->train, NULL, &r, rng, &o, NULL, &err))
		fail_msg("%s", err.msg);
	gsl_rng_free(rng);
	assert_int_equal(l->n, FOUR_STEPS);
	return m;
}
/* taylor on the four-channel model: two events of one channel every
 * FOUR_INTERVAL mini-batches; `extra` is one more option or NULL. */
static pb_model *four_taylor(const pb_model *m, const pb_splits *sp,
			     const pb_recipe *ft, const char *extra,
			     pt_log *lg)
{
	const char *kv[] = { "interval=4", "per_step=1", "log_scores=yes",
			     extra, NULL };
	pb_plugin *p = tu_open_plugin("taylor");
	pb_model *out = NULL;
	pb_error err = { 0 };
	pt_run_args a = { .target = "channels=0.5, scope=global", .kv = kv,
			  .splits = sp, .finetune = ft,
			  .progress = pt_log_open(lg), .label = "taylor",
			  .seed = FOUR_SEED };

	if (pt_run(m, pb_plugin_pruner(p), &a, &out, NULL, &err))
		fail_msg("%s", err.msg);
	pt_log_close(lg);
	pb_plugin_close(p);
	return out;
}

static void expect_close(const float *got, const float *want, size_t n,
			 const char *what)
{
	for (size_t i = 0; i < n; i++)
		if (tu_relerr(got[i], want[i], 1e-6) > 1e-5)
			fail_msg("%s[%zu]: %.9g, one uninterrupted training "
				 "gives %.9g", what, i, got[i], want[i]);
}

/* The pruned model's channels 0 and 1 are the reference's 1 and 3. */
static void expect_survivors(pb_model *out, pb_model *ref)
{
	static const char *const bn[] = { "b1.weight", "b1.bias",
					  "b1.running_mean",
					  "b1.running_var" };
	pb_param *w = pb_model_find_param(out, "c1.weight");
	pb_param *rw = pb_model_find_param(ref, "c1.weight");
	pb_param *fc = pb_model_find_param(out, "fc.weight");
	pb_param *rfc = pb_model_find_param(ref, "fc.weight");

	assert_int_equal(w->shape[0], 2);
	assert_int_equal(fc->shape[1], 32);
	for (int k = 0; k < 2; k++) {
		int c = 2 * k + 1;

		expect_close(w->data + 9 * k, rw->data + 9 * c, 9, "c1.weight");
		for (int i = 0; i < 4; i++)
			expect_close(pb_model_find_param(out, bn[i])->data + k,
				     pb_model_find_param(ref, bn[i])->data + c,
				     1, bn[i]);
		for (int o = 0; o < 3; o++)
			expect_close(fc->data + o * 32 + 16 * k,
				     rfc->data + o * 64 + 16 * c, 16,
				     "fc.weight");
	}
	expect_close(pb_model_find_param(out, "fc.bias")->data,
		     pb_model_find_param(ref, "fc.bias")->data, 3, "fc.bias");
}

/* Momentum buffers and the schedule survive the pruning events: the
 * surviving weights equal those of one uninterrupted training. */
static void test_taylor_one_finetune(void **state)
{
	pb_model *m = four_model(), *ref, *out;
	imp_log l = { 0 };
	pb_splits sp;
	pb_recipe ft;
	pt_log lg;

	(void)state;
	pt_tiny_splits(&sp, 48);
	four_recipe(&ft);
	ref = reference_run(m, &sp, &ft, &l);
	out = four_taylor(m, &sp, &ft, NULL, &lg);
	if (!strstr(lg.text, "one fine-tune of 8 steps with 2 pruning events"))
		fail_msg("not planned as one fine-tune of 8 steps:\n%s",
			 lg.text);
	expect_survivors(out, ref);
	free(lg.text);
	pb_model_free(out);
	pb_model_free(ref);
	pb_model_free(m);
	pb_splits_free(&sp);
}

/* The logged importance at each event is the interval's mean of the
 * per-batch importances folded in with pruning_momentum, from the
 * importances of the same training recorded here. */
static void test_taylor_momentum(void **state)
{
	pb_model *m = four_model(), *ref, *out;
	double mean[2][4] = { { 0 } }, got1[4], got2[4], plain2[4];
	imp_log l = { 0 };
	pb_splits sp;
	pb_recipe ft;
	pt_log lg;

	(void)state;
	pt_tiny_splits(&sp, 48);
	four_recipe(&ft);
	ref = reference_run(m, &sp, &ft, &l);
	for (int e = 0; e < 2; e++) {
		for (int i = 0; i < FOUR_INTERVAL; i++)
			for (int c = 0; c < 4; c++)
				mean[e][c] += l.imp[e * FOUR_INTERVAL + i][c];
		for (int c = 0; c < 4; c++)
			mean[e][c] /= FOUR_INTERVAL;
	}
	out = four_taylor(m, &sp, &ft, NULL, &lg);
	logged_importance(lg.text, 1, 0, got1, 4);
	logged_importance(lg.text, 2, 0, got2, 4);
	free(lg.text);
	pb_model_free(out);
	out = four_taylor(m, &sp, &ft, "pruning_momentum=0", &lg);
	logged_importance(lg.text, 2, 0, plain2, 4);
	free(lg.text);
	pb_model_free(out);
	assert_true(got1[0] == 0.0 && got1[2] == 0.0);
	for (int c = 1; c < 4; c += 2) {
		double avg2 = 0.9 * mean[0][c] + 0.1 * mean[1][c];

		if (tu_relerr(got1[c], mean[0][c], 1e-300) > 2e-8 ||
		    tu_relerr(got2[c], avg2, 1e-300) > 2e-8 ||
		    tu_relerr(plain2[c], mean[1][c], 1e-300) > 2e-8)
			fail_msg("channel %d: logged %.9g, %.9g (momentum 0: "
				 "%.9g); by hand %.9g, %.9g (%.9g)", c,
				 got1[c], got2[c], plain2[c], mean[0][c], avg2,
				 mean[1][c]);
		/* The two intervals differ, so the momentum shows. */
		assert_true(tu_relerr(avg2, mean[1][c], 1e-300) > 1e-3);
	}
	pb_model_free(ref);
	pb_model_free(m);
	pb_splits_free(&sp);
}

/* ---- the target, and the channels removed -------------------------------- */

/* No filter of c1, c2, c3 is all zero: a masked channel left in place
 * would be. */
static void expect_no_masked_filter(pb_model *m)
{
	static const char *const convs[] = { "c1.weight", "c2.weight",
					     "c3.weight" };

	for (int i = 0; i < 3; i++) {
		pb_param *w = pb_model_find_param(m, convs[i]);
		size_t row = w->n / (size_t)w->shape[0];

		for (int o = 0; o < w->shape[0]; o++) {
			int nz = 0;

			for (size_t j = 0; j < row; j++)
				nz |= w->data[(size_t)o * row + j] != 0.0f;
			if (!nz)
				fail_msg("%s: filter %d is all zero (a masked "
					 "channel was kept)", convs[i], o);
		}
	}
}

/* The checkpoint of m has no mask tensor. */
static void expect_no_masks(const pb_model *m)
{
	char path[] = "/tmp/pbtaylorXXXXXX";
	pb_error err = { 0 };
	char *buf;
	long len;
	FILE *f;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	if (pb_checkpoint_save(m, path, &err))
		fail_msg("%s", err.msg);
	assert_non_null(f = fopen(path, "rb"));
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	assert_non_null(buf = malloc((size_t)len));
	assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	unlink(path);
	if (memmem(buf, (size_t)len, ".mask", 5))
		fail_msg("the pruned model still carries masks");
	free(buf);
}

static void test_taylor_target(void **state)
{
	static const char *const targets[] = {
		"channels=0.5, scope=global", "macs=0.4, scope=global",
		"params=0.3, scope=layer",
	};
	const char *kv[] = { "interval=2", "per_step=2", NULL };
	pb_plugin *p = tu_open_plugin("taylor");

	(void)state;
	for (int i = 0; i < 3; i++) {
		pb_model *m, *out = NULL;
		pb_prune_report rep;
		pb_error err = { 0 };
		pb_splits sp;
		pb_recipe ft;
		pt_run_args a = { .target = targets[i], .kv = kv,
				  .splits = &sp, .seed = 7 };

		pt_small_setup(&m, &sp, &ft);
		a.finetune = &ft;
		if (pt_run(m, pb_plugin_pruner(p), &a, &out, &rep, &err))
			fail_msg("%s: %s", targets[i], err.msg);
		if (rep.reached < rep.asked - 1e-12)
			fail_msg("%s: reached %g", targets[i], rep.reached);
		/* channels: exactly half of the 30 */
		if (i == 0)
			assert_int_equal(rep.channels_after, 15);
		assert_int_equal(
			pb_model_find_param(out, "c1.weight")->shape[0] +
			pb_model_find_param(out, "c2.weight")->shape[0] +
			pb_model_find_param(out, "c3.weight")->shape[0],
			rep.channels_after);
		assert_true(rep.channels_after < rep.channels_before);
		expect_no_masked_filter(out);
		expect_no_masks(out);
		pb_model_free(out);
		pt_small_free(m, &sp);
	}
	pb_plugin_close(p);
}

/* The planned length is exact for a channels target but an estimate for
 * macs. With every channel but one of a layer inert (importance 0, as in
 * four_model), the ranking takes that layer's channels first: c3's, the
 * cheapest (at 4x4), need more than a uniform progression, and a second
 * fine-tune continues; c1's, the dearest (read by c2 at 8x8), need fewer,
 * and the rest of the fine-tune trains the masked model. Either way the
 * target is reached and exactly the masked channels go. */
static void estimate_run(const char *inert_bn, int *continued, long *reached_at,
			 long *trained)
{
	const char *kv[] = { "interval=2", "per_step=2", NULL };
	pb_plugin *p = tu_open_plugin("taylor");
	pb_model *m, *out = NULL;
	pb_prune_report rep;
	pb_error err = { 0 };
	pb_splits sp;
	pb_recipe ft;
	pt_log lg;
	const char *line;
	char name[16];
	pb_param *g, *b;
	pt_run_args a = { .target = "macs=0.4, scope=global", .kv = kv,
			  .splits = &sp, .label = "taylor", .seed = 7 };

	pt_small_setup(&m, &sp, &ft);
	snprintf(name, sizeof name, "%s.weight", inert_bn);
	g = pb_model_find_param(m, name);
	snprintf(name, sizeof name, "%s.bias", inert_bn);
	b = pb_model_find_param(m, name);
	for (size_t c = 1; c < g->n; c++) {
		g->data[c] = 0.0f;
		b->data[c] = -1.0f;
	}
	a.finetune = &ft;
	a.progress = pt_log_open(&lg);
	if (pt_run(m, pb_plugin_pruner(p), &a, &out, &rep, &err))
		fail_msg("%s: %s", inert_bn, err.msg);
	pt_log_close(&lg);
	if (rep.reached < rep.asked - 1e-12)
		fail_msg("%s: reached %g", inert_bn, rep.reached);
	expect_no_masked_filter(out);
	expect_no_masks(out);
	*continued = strstr(lg.text, "continuing with a new fine-tune") != NULL;
	if (!(line = strstr(lg.text, "target reached at step")) ||
	    sscanf(line, "target reached at step %ld after %*d pruning events; "
		   "%ld steps", reached_at, trained) != 2)
		fail_msg("%s: no summary line in\n%s", inert_bn, lg.text);
	free(lg.text);
	pb_model_free(out);
	pt_small_free(m, &sp);
	pb_plugin_close(p);
}

static void test_taylor_estimate(void **state)
{
	long at, trained;
	int continued;

	(void)state;
	estimate_run("b3", &continued, &at, &trained);
	assert_true(continued);
	assert_int_equal(at, trained);
	estimate_run("b1", &continued, &at, &trained);
	assert_false(continued);
	assert_true(at < trained);
}

/* ---- masked is removed --------------------------------------------------- */

/* The logits of the first MR_N training images in eval mode, from the
 * masked model at the end of the pruning phase (taken by an after_epoch
 * hook added to a copy of the plugin's descriptor; the trainer calls it
 * at the end of the last, partial epoch too) and from the pruned model
 * the plugin returns. */
enum { MR_N = 32 };
static float g_masked_logits[MR_N * 4];
static const pb_dataset *g_mr_data;
static int g_mr_calls;

static int keep_logits(void *state, pb_prune_ctx *ctx, int epoch)
{
	const float *logits;
	pb_error err = { 0 };

	(void)state;
	(void)epoch;
	if (pb_model_forward(pb_ctx_model(ctx), g_mr_data->x, MR_N, 0, NULL,
			     &logits, &err))
		return pb_ctx_fail(ctx, "%s", err.msg);
	memcpy(g_masked_logits, logits, sizeof g_masked_logits);
	g_mr_calls++;
	return 0;
}

/* Masking a channel silences it completely (its filters and every weight
 * reading it), and the channels removed at the end are exactly the
 * masked ones: the pruned model computes what the masked one did. */
static void test_taylor_masked_is_removed(void **state)
{
	const char *kv[] = { "interval=2", "per_step=2", NULL };
	pb_plugin *p = tu_open_plugin("taylor");
	pb_pruner wrapped = *pb_plugin_pruner(p);
	pb_model *m, *out = NULL;
	pb_error err = { 0 };
	const float *logits;
	pb_splits sp;
	pb_recipe ft;
	pt_run_args a = { .target = "channels=0.4, scope=global", .kv = kv,
			  .splits = &sp, .seed = 9 };

	(void)state;
	pt_small_setup(&m, &sp, &ft);
	a.finetune = &ft;
	wrapped.after_epoch = keep_logits;
	g_mr_data = &sp.train;
	g_mr_calls = 0;
	if (pt_run(m, &wrapped, &a, &out, NULL, &err))
		fail_msg("%s", err.msg);
	assert_true(g_mr_calls > 0);
	assert_int_equal(pb_model_forward(out, sp.train.x, MR_N, 0, NULL,
					  &logits, &err), 0);
	for (int i = 0; i < MR_N * 4; i++)
		if (tu_relerr(logits[i], g_masked_logits[i], 1e-3) > 1e-4)
			fail_msg("logit %d: pruned %.9g, masked %.9g", i,
				 logits[i], g_masked_logits[i]);
	pb_model_free(out);
	pt_small_free(m, &sp);
	pb_plugin_close(p);
}

/* A target the floors cannot reach is refused before any training. */
static void test_taylor_impossible(void **state)
{
	const char *kv[] = { "min_keep=8", NULL };
	pb_plugin *p = tu_open_plugin("taylor");
	pb_model *m, *out = NULL;
	pb_error err = { 0 };
	pb_splits sp;
	pb_recipe ft;
	pt_log lg;
	pt_run_args a = { .target = "channels=0.5, scope=global", .kv = kv,
			  .splits = &sp, .label = "taylor", .seed = 7 };

	(void)state;
	pt_small_setup(&m, &sp, &ft);
	a.finetune = &ft;
	a.progress = pt_log_open(&lg);
	assert_int_not_equal(pt_run(m, pb_plugin_pruner(p), &a, &out, NULL,
				    &err), 0);
	pt_log_close(&lg);
	assert_null(out);
	if (!strstr(err.msg, "every group is at its floor"))
		fail_msg("unexpected error: %s", err.msg);
	assert_null(strstr(lg.text, "fine-tune of"));
	free(lg.text);
	pt_small_free(m, &sp);
	pb_plugin_close(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_taylor_one_finetune),
		cmocka_unit_test(test_taylor_momentum),
		cmocka_unit_test(test_taylor_target),
		cmocka_unit_test(test_taylor_estimate),
		cmocka_unit_test(test_taylor_masked_is_removed),
		cmocka_unit_test(test_taylor_impossible),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
