/* taylor's importance on crafted nets and tiny data (the pruning phase
 * that uses it is test_taylor_phase.c):
 * - the logged importances equal (g_gamma*gamma + g_beta*beta)^2 and
 *   (sum g*w)^2 computed here from one backward pass, and a channel with
 *   large weights but no effect on the loss is removed before a small,
 *   useful one (L1 removes the small one);
 * - a residual group's squared importance is divided by its number of
 *   BNs (residual_norm), an inner group's is not. */
#include "pruner_test.h"
#include "prunebench/layers.h"
#include "taylor_test.h"

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
	pt_run_args a = { .target = "channels=0.3, scope=global", .kv = kv,
			  .splits = sp, .progress = log, .label = "taylor",
			  .seed = 5 };

	snprintf(crit, sizeof crit, "criterion=%s", criterion);
	pt_plain_recipe(&ft, 1, sp->train.n, 0.0);
	a.finetune = &ft;
	if (pt_run(m, pb_plugin_pruner(p), &a, out, NULL, &err))
		fail_msg("%s", err.msg);
	fclose(log);
	line = strstr(buf, "event 1 group ");
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

	pt_tiny_splits(&sp, 48);
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
	pt_run_args ra = { .target = "channels=0.3, scope=global", .seed = 5 };

	(void)state;
	craft_taylor(m);
	if (pt_run(m, pb_plugin_pruner(p), &ra, &out, NULL, &err))
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

/* ---- residual groups ----------------------------------------------------- */

/* pt_residual_ini's group 0 is c0 and c2 tied by the add (BNs b0, b2),
 * group 1 is c1 (b1). Full-batch steps at lr 0: the first event's
 * importance is one backward pass's. */
static void residual_run(const pb_model *m, const pb_splits *sp,
			 const char *norm, double imp[2][8])
{
	const char *kv[] = { "interval=1", "per_step=1", "log_scores=yes",
			     norm, NULL };
	pb_plugin *p = tu_open_plugin("taylor");
	pb_model *out = NULL;
	pb_error err = { 0 };
	pb_recipe ft;
	pt_log lg;
	pt_run_args a = { .target = "channels=0.05, scope=global", .kv = kv,
			  .splits = sp, .finetune = &ft, .label = "taylor",
			  .seed = 3 };

	pt_plain_recipe(&ft, 1, sp->train.n, 0.0);
	a.progress = pt_log_open(&lg);
	if (pt_run(m, pb_plugin_pruner(p), &a, &out, NULL, &err))
		fail_msg("%s", err.msg);
	pt_log_close(&lg);
	logged_importance(lg.text, 1, 0, imp[0], 8);
	logged_importance(lg.text, 1, 1, imp[1], 8);
	free(lg.text);
	pb_model_free(out);
	pb_plugin_close(p);
}

/* The first-order sums of both groups from one backward pass over the
 * whole training set. */
static void residual_terms(const pb_model *m0, const pb_dataset *d,
			   double t[2][8])
{
	static const char *const bn[3] = { "b0", "b2", "b1" };
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
	memset(t, 0, 2 * 8 * sizeof(double));
	for (int k = 0; k < 3; k++) {
		char gname[16], bname[16];
		pb_param *g, *b;

		snprintf(gname, sizeof gname, "%s.weight", bn[k]);
		snprintf(bname, sizeof bname, "%s.bias", bn[k]);
		g = pb_model_find_param(m, gname);
		b = pb_model_find_param(m, bname);
		for (int c = 0; c < 8; c++)
			t[k == 2][c] += (double)g->grad[c] * g->data[c] +
					(double)b->grad[c] * b->data[c];
	}
	pb_model_free(m);
}

static void test_taylor_residual_norm(void **state)
{
	pb_model *m = tu_parse_model(pt_residual_ini, "test");
	double on[2][8], off[2][8], t[2][8], top = 0.0;
	pb_error err = { 0 };
	pb_splits sp = { 0 };
	float mean[1], std[1];

	(void)state;
	tu_init_params(m, 17);
	tu_fill_param(m, "b0.weight", 0.5f, 1.5f, 1);
	tu_fill_param(m, "b1.weight", 0.5f, 1.5f, 2);
	tu_fill_param(m, "b2.weight", 0.5f, 1.5f, 3);
	tu_fill_param(m, "b0.bias", -0.5f, 0.5f, 4);
	tu_fill_param(m, "b1.bias", -0.5f, 0.5f, 5);
	tu_fill_param(m, "b2.bias", -0.5f, 0.5f, 6);
	assert_int_equal(pb_dataset_synthetic(&sp.train, 36, 1, 6, 6, 3, 0.3f,
					      11, &err), 0);
	pb_dataset_channel_stats(&sp.train, mean, std);
	pb_dataset_normalize(&sp.train, mean, std);
	residual_run(m, &sp, NULL, on);
	residual_run(m, &sp, "residual_norm=no", off);
	residual_terms(m, &sp.train, t);
	for (int c = 0; c < 8; c++) {
		/* The same training: the tied group exactly halved (two
		 * BNs), the inner group untouched. */
		if (tu_relerr(off[0][c], 2.0 * on[0][c], 1e-300) > 2e-8 ||
		    tu_relerr(off[1][c], on[1][c], 1e-300) > 2e-8)
			fail_msg("channel %d: residual_norm=yes %.9g %.9g, no "
				 "%.9g %.9g", c, on[0][c], on[1][c], off[0][c],
				 off[1][c]);
		for (int g = 0; g < 2; g++)
			if (t[g][c] * t[g][c] > top)
				top = t[g][c] * t[g][c];
	}
	/* By hand, from a pass over the same samples in another order. */
	for (int c = 0; c < 8; c++)
		if (tu_relerr(on[0][c], t[0][c] * t[0][c] / 2.0, 1e-4 * top) >
		    1e-3 ||
		    tu_relerr(on[1][c], t[1][c] * t[1][c], 1e-4 * top) > 1e-3)
			fail_msg("channel %d: logged %.9g %.9g, by hand %.9g "
				 "%.9g", c, on[0][c], on[1][c],
				 t[0][c] * t[0][c] / 2.0, t[1][c] * t[1][c]);
	pb_model_free(m);
	pb_splits_free(&sp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_taylor_bn),
		cmocka_unit_test(test_taylor_weight),
		cmocka_unit_test(test_taylor_vs_l1),
		cmocka_unit_test(test_taylor_residual_norm),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
