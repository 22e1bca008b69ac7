/* thinet on crafted models: it removes a large-norm channel whose
 * contributions to the next layer cancel (l1 keeps it), its least-squares
 * rescaling lowers the next layer's reconstruction error (both numbers
 * asserted), and residual-tied channels are left whole. Each layer is
 * sampled on a fresh set of training images (resample = yes), the same
 * set with resample = no, and the same seed gives the same bits. */
#include "pruner_test.h"

/* c1 (1x1 conv, 2 -> 4) -> relu -> flatten -> fc (64 -> 3): fc is layer
 * i+1 and reads channel c as 16 features. */
static const char thinet_ini[] =
	"[model]\nname = th\ninput = 2x4x4\nclasses = 3\n"
	"[c1]\ntype = conv\nout = 4\nkernel = 1\nbias = no\n"
	"[r1]\ntype = relu\n"
	"[f]\ntype = flatten\n"
	"[fc]\ntype = linear\nout = 3\n";

/* Input channel 0 is noise, channel 1 is constant 1. c1's filters:
 *   ch0: 1.0 * x0      L1 1.0
 *   ch1: 0.5 * x0      L1 0.5  (the smallest: l1 removes it)
 *   ch2: -0.8 * x0     L1 0.8
 *   ch3: 5.0 * x1      L1 5.0  (the largest), so ch3 is constant 5
 * fc reads ch3 with weights +-2 alternating over its 16 features: each
 * output's contribution from ch3 is 5 * (sum of +-2) = 0. fc reads ch1
 * with the same weights as ch0, so ch1's contribution is half of ch0's
 * and least squares can absorb it into ch0's scale (1.5) exactly. ch2's
 * fc weights are tripled, so it is kept. */
static void craft_thinet(pb_model *m)
{
	pb_param *w1 = pb_model_find_param(m, "c1.weight");
	pb_param *fc = pb_model_find_param(m, "fc.weight");
	static const float c1v[4][2] = { { 1.0f, 0 }, { 0.5f, 0 },
					 { -0.8f, 0 }, { 0, 5.0f } };

	memcpy(w1->data, c1v, sizeof c1v);
	tu_fill_uniform(fc->data, fc->n, -1, 1, 11);
	for (int o = 0; o < 3; o++)
		for (int j = 0; j < 16; j++) {
			float *row = fc->data + o * 64;

			row[16 + j] = row[j];
			row[32 + j] *= 3.0f;
			row[48 + j] = j % 2 ? -2.0f : 2.0f;
		}
	for (int o = 0; o < 3; o++)
		pb_model_find_param(m, "fc.bias")->data[o] = 0.1f * o;
}

static void thinet_data(pb_dataset *d)
{
	pb_error err = { 0 };
	gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);

	assert_int_equal(pb_dataset_alloc(d, 64, 2, 4, 4, 3, &err), 0);
	gsl_rng_set(r, 5);
	for (int n = 0; n < 64; n++) {
		for (int j = 0; j < 16; j++) {
			d->x[n * 32 + j] = (float)(2 * gsl_rng_uniform(r) - 1);
			d->x[n * 32 + 16 + j] = 1.0f;
		}
		d->y[n] = (uint8_t)(n % 3);
	}
	gsl_rng_free(r);
}

/* Which dense c1 filter each pruned c1 filter is (by its weights). */
static void kept_c1(pb_model *dense, pb_model *pr, int *idx, int n)
{
	pb_param *a = pb_model_find_param(dense, "c1.weight");
	pb_param *b = pb_model_find_param(pr, "c1.weight");

	assert_int_equal(b->shape[0], n);
	for (int i = 0; i < n; i++) {
		idx[i] = -1;
		for (int c = 0; c < a->shape[0]; c++)
			if (!memcmp(b->data + 2 * i, a->data + 2 * c,
				    2 * sizeof(float)))
				idx[i] = c;
	}
}

/* Sum over the data and outputs of (dense logit - pruned logit)^2: the
 * reconstruction error of layer i+1 (fc) itself. */
static double logit_error(pb_model *dense, pb_model *pr, const pb_dataset *d)
{
	const float *l;
	float *ld = malloc(sizeof(float) * 3 * (size_t)d->n);
	pb_error err = { 0 };
	double e = 0.0;

	assert_int_equal(pb_model_forward(dense, d->x, d->n, 0, NULL, &l,
					  &err), 0);
	memcpy(ld, l, sizeof(float) * 3 * (size_t)d->n);
	assert_int_equal(pb_model_forward(pr, d->x, d->n, 0, NULL, &l, &err),
			 0);
	for (int i = 0; i < 3 * d->n; i++)
		e += ((double)ld[i] - l[i]) * ((double)ld[i] - l[i]);
	free(ld);
	return e;
}

static void test_thinet_removes_cancelling_channel(void **state)
{
	pb_plugin *th = tu_open_plugin("thinet"), *l1 = tu_open_plugin("l1");
	pb_model *m = tu_parse_model(thinet_ini, "test"), *out = NULL;
	pb_splits sp;
	pb_error err = { 0 };
	int idx[3];

	(void)state;
	memset(&sp, 0, sizeof sp);
	craft_thinet(m);
	thinet_data(&sp.train);
	if (pt_run_data(m, pb_plugin_pruner(th), "channels=0.25", NULL, &sp,
			NULL, 1, NULL, &out, &err))
		fail_msg("%s", err.msg);
	kept_c1(m, out, idx, 3);
	/* ch3, the largest filter, is the one ThiNet removes... */
	assert_int_equal(idx[0], 0);
	assert_int_equal(idx[1], 1);
	assert_int_equal(idx[2], 2);
	/* ...and since it contributed nothing, the outputs are unchanged. */
	assert_true(logit_error(m, out, &sp.train) < 1e-6);
	pb_model_free(out);

	/* l1 keeps ch3 and removes ch1, the smallest filter. */
	if (pt_run_data(m, pb_plugin_pruner(l1), "channels=0.25", NULL, NULL,
			NULL, 1, NULL, &out, &err))
		fail_msg("%s", err.msg);
	kept_c1(m, out, idx, 3);
	assert_int_equal(idx[0], 0);
	assert_int_equal(idx[1], 2);
	assert_int_equal(idx[2], 3);
	pb_model_free(out);

	pb_dataset_free(&sp.train);
	pb_model_free(m);
	pb_plugin_close(th);
	pb_plugin_close(l1);
}

static void test_thinet_least_squares(void **state)
{
	static const char *ls[] = { "images=64", "per_image=6", NULL };
	static const char *nols[] = { "images=64", "per_image=6",
				      "rescale=no", NULL };
	pb_plugin *th = tu_open_plugin("thinet");
	pb_model *m = tu_parse_model(thinet_ini, "test"), *a = NULL, *b = NULL;
	pb_splits sp;
	pb_error err = { 0 };
	double e_ls, e_plain;
	int ia[2], ib[2];

	(void)state;
	memset(&sp, 0, sizeof sp);
	craft_thinet(m);
	thinet_data(&sp.train);
	if (pt_run_data(m, pb_plugin_pruner(th), "channels=0.5", ls, &sp, NULL,
			1, NULL, &a, &err) ||
	    pt_run_data(m, pb_plugin_pruner(th), "channels=0.5", nols, &sp,
			NULL, 1, NULL, &b, &err))
		fail_msg("%s", err.msg);
	/* Both remove ch3 (nothing) and ch1 (half of ch0), the greedy
	 * choice being the same with and without rescaling. */
	kept_c1(m, a, ia, 2);
	kept_c1(m, b, ib, 2);
	assert_int_equal(ia[0], 0);
	assert_int_equal(ia[1], 2);
	assert_int_equal(ib[0], 0);
	assert_int_equal(ib[1], 2);
	e_ls = logit_error(m, a, &sp.train);
	e_plain = logit_error(m, b, &sp.train);
	print_message("thinet reconstruction error: %.6g without least "
		      "squares, %.6g with\n", e_plain, e_ls);
	/* Without rescaling, ch1's share of the output is lost... */
	assert_true(e_plain > 1.0);
	/* ...with it, ch0's scale becomes 1.5 and absorbs it. */
	assert_true(e_ls < 1e-6 * e_plain);
	{
		pb_param *wa = pb_model_find_param(a, "fc.weight");
		pb_param *wm = pb_model_find_param(m, "fc.weight");

		assert_true(fabs(wa->data[0] / wm->data[0] - 1.5) < 1e-4);
	}
	pb_model_free(a);
	pb_model_free(b);
	pb_dataset_free(&sp.train);
	pb_model_free(m);
	pb_plugin_close(th);
}

static void test_thinet_residual_inner_only(void **state)
{
	pb_plugin *th = tu_open_plugin("thinet");
	pb_model *m = tu_parse_model(pt_residual_ini, "test"), *out = NULL;
	pb_splits sp;
	pb_error err = { 0 };

	(void)state;
	memset(&sp, 0, sizeof sp);
	tu_init_params(m, 3);
	assert_int_equal(pb_dataset_synthetic(&sp.train, 32, 1, 6, 6, 3,
					      0.3f, 1, &err), 0);
	if (pt_run_data(m, pb_plugin_pruner(th), "channels=0.25", NULL, &sp,
			NULL, 1, NULL, &out, &err))
		fail_msg("%s", err.msg);
	/* 4 of the 16 prunable channels go, all from the inner conv. */
	assert_int_equal(pb_model_find_param(out, "c0.weight")->shape[0], 8);
	assert_int_equal(pb_model_find_param(out, "c2.weight")->shape[0], 8);
	assert_int_equal(pb_model_find_param(out, "c1.weight")->shape[0], 4);
	pb_model_free(out);
	/* A target the inner layers cannot carry alone is refused. */
	assert_int_equal(pt_run_data(m, pb_plugin_pruner(th), "channels=0.6",
				     NULL, &sp, NULL, 1, NULL, &out,
				     &err), PB_EINVAL);
	assert_non_null(strstr(err.msg, "non-residual"));
	pb_dataset_free(&sp.train);
	pb_model_free(m);
	pb_plugin_close(th);
}

/* ---- a fresh calibration set per layer ---------------------------------- */

/* What the log says of one pruned group: the calibration images it used
 * (positions in the cell's calibration order) and its reconstruction
 * errors. */
typedef struct group_line {
	int first, last, wrapped;
	char errors[96];
} group_line;

/* The "thinet: group" lines of a log, in order; returns how many. */
static int group_lines(const char *log, group_line *out, int max)
{
	int n = 0;

	for (const char *p = strstr(log, "calibration images "); p && n < max;
	     p = strstr(p + 1, "calibration images ")) {
		const char *e = strstr(p, "reconstruction error ");
		const char *eol = strchr(p, '\n');
		size_t len;

		assert_int_equal(sscanf(p, "calibration images %d to %d",
					&out[n].first, &out[n].last), 2);
		assert_non_null(e);
		assert_non_null(eol);
		out[n].wrapped = strstr(p, "(wrapped") &&
				 strstr(p, "(wrapped") < eol;
		len = (size_t)(eol - e);
		assert_true(len < sizeof out[n].errors);
		memcpy(out[n].errors, e, len);
		out[n].errors[len] = '\0';
		n++;
	}
	return n;
}

/* The calibration order the plugin's sets are slices of: a wrapper whose
 * prune reads the first images of it (the input of layer 0 is the image)
 * before thinet runs, and checks what thinet relies on, that a longer
 * call extends a shorter one. */
static const pb_pruner *g_thinet;
static float g_order[16][25];
static int g_order_n;

static int thinet_observed(void *state, pb_prune_ctx *ctx)
{
	const float *act;
	int B;

	if (pb_ctx_layer_input(ctx, 0, 16, &act, &B))
		return -1;
	assert_true(B >= 8 && B <= 16);
	g_order_n = B;
	memcpy(g_order, act, (size_t)B * sizeof g_order[0]);
	if (pb_ctx_layer_input(ctx, 0, 8, &act, &B))
		return -1;
	assert_memory_equal(act, g_order, 8 * sizeof g_order[0]);
	return g_thinet->prune(state, ctx);
}

/* thinet on pt_two_conv_ini (c1's channels sampled at c2, c2's at fc) at
 * channels = 0.5 with 8 images of 4 points per layer, seed `seed`; the
 * training split has n_train images, the validation split 20. Returns
 * the pruned model; *log gets the progress text. */
static pb_model *run_sets(const char *resample, int n_train,
			  unsigned long seed, pt_log *log)
{
	const char *kv[] = { "images=8", "per_image=4", resample, NULL };
	pb_plugin *th = tu_open_plugin("thinet");
	pb_pruner w = *pb_plugin_pruner(th);
	pb_model *m = tu_parse_model(pt_two_conv_ini, "test"), *out = NULL;
	pb_dataset full = { 0 };
	pb_splits sp = { 0 };
	pb_error err = { 0 };

	g_thinet = pb_plugin_pruner(th);
	w.prune = thinet_observed;
	tu_init_params(m, 4);
	assert_int_equal(pb_dataset_synthetic(&full, n_train + 20, 1, 5, 5, 3,
					      0.5f, 2, &err), 0);
	assert_int_equal(pb_dataset_split(&full, 20, 3, &sp.train, &sp.val,
					  &err), 0);
	if (pt_run_data(m, &w, "channels=0.5", kv, &sp, NULL, seed,
			pt_log_open(log), &out, &err))
		fail_msg("%s", err.msg);
	pt_log_close(log);
	/* The order is of training images, none from validation. */
	for (int i = 0; i < g_order_n; i++) {
		int train = 0, val = 0;

		for (int n = 0; n < sp.train.n; n++)
			train += !memcmp(g_order[i], sp.train.x + 25 * n,
					 sizeof g_order[i]);
		for (int n = 0; n < sp.val.n; n++)
			val += !memcmp(g_order[i], sp.val.x + 25 * n,
				       sizeof g_order[i]);
		assert_true(train > 0 && val == 0);
	}
	pb_dataset_free(&full);
	pb_splits_free(&sp);
	pb_model_free(m);
	pb_plugin_close(th);
	return out;
}

static void assert_same_model(pb_model *a, pb_model *b)
{
	assert_int_equal(pb_model_n_params(a), pb_model_n_params(b));
	for (int i = 0; i < pb_model_n_params(a); i++) {
		pb_param *p = pb_model_param(a, i), *q = pb_model_param(b, i);

		assert_int_equal(p->n, q->n);
		assert_memory_equal(p->data, q->data, p->n * sizeof(float));
	}
}

static void test_thinet_fresh_images_per_layer(void **state)
{
	pt_log la, lb, lc;
	group_line ga[4], gb[4], gc[4];
	pb_model *a, *b, *c;

	(void)state;
	a = run_sets("resample=yes", 40, 1, &la);
	b = run_sets("resample=yes", 40, 1, &lb);
	c = run_sets("resample=no", 40, 1, &lc);
	assert_int_equal(group_lines(la.text, ga, 4), 2);
	assert_int_equal(group_lines(lb.text, gb, 4), 2);
	assert_int_equal(group_lines(lc.text, gc, 4), 2);
	/* resample: c1's channels on images 0-7 of the order, c2's on 8-15. */
	assert_int_equal(ga[0].first, 0);
	assert_int_equal(ga[0].last, 7);
	assert_int_equal(ga[1].first, 8);
	assert_int_equal(ga[1].last, 15);
	assert_false(ga[0].wrapped || ga[1].wrapped);
	/* no: both on images 0-7. */
	assert_int_equal(gc[0].first, 0);
	assert_int_equal(gc[1].first, 0);
	assert_int_equal(gc[1].last, 7);
	/* The first layer sees the same images and points either way; the
	 * second sees other images, so its errors differ. */
	assert_string_equal(ga[0].errors, gc[0].errors);
	if (!strcmp(ga[1].errors, gc[1].errors))
		fail_msg("c2's samples do not depend on resample: %s",
			 ga[1].errors);
	/* The same seed, the same bits. */
	assert_string_equal(la.text, lb.text);
	assert_same_model(a, b);
	pb_model_free(a);
	pb_model_free(b);
	pb_model_free(c);
	free(la.text);
	free(lb.text);
	free(lc.text);
}

/* A training split too small for a set per layer: the second set wraps
 * around it, and the log says so (16 images are just enough). */
static void test_thinet_sets_wrap(void **state)
{
	pt_log lg;
	group_line g[4];
	pb_model *out;

	(void)state;
	out = run_sets("resample=yes", 16, 1, &lg);
	assert_int_equal(group_lines(lg.text, g, 4), 2);
	assert_false(g[0].wrapped || g[1].wrapped);
	pb_model_free(out);
	free(lg.text);
	out = run_sets("resample=yes", 12, 1, &lg);
	assert_int_equal(group_lines(lg.text, g, 4), 2);
	assert_false(g[0].wrapped);
	assert_true(g[1].wrapped);
	assert_int_equal(g[1].first, 8);
	assert_int_equal(g[1].last, 3);
	pb_model_free(out);
	free(lg.text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_thinet_removes_cancelling_channel),
		cmocka_unit_test(test_thinet_least_squares),
		cmocka_unit_test(test_thinet_residual_inner_only),
		cmocka_unit_test(test_thinet_fresh_images_per_layer),
		cmocka_unit_test(test_thinet_sets_wrap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
