/* thinet, fpgm and random on crafted models, each on a case where the L1
 * filter norm decides differently or where the defining step can be
 * measured:
 *  - thinet removes a large-norm channel whose contributions to the next
 *    layer cancel (l1 keeps it), and its least-squares rescaling lowers
 *    the next layer's reconstruction error (both numbers asserted);
 *    residual-tied channels are left whole;
 *  - fpgm removes the filter equal to the mean of the others although
 *    its norm is the second largest (l1 removes the smallest);
 *  - random: every sampled configuration is within one channel per group
 *    of the budget (checked with pb_ctx_config_cost by a probe pruner),
 *    the same seed gives the same choice, and the kept model is the
 *    candidate with the best validation accuracy. */
#include "testutil.h"
#include "prunebench/plugin.h"
#include "prunebench/data.h"
#include "prunebench/train.h"

/* Runs pr on m with target text, options "k=v" (NULL-terminated), data
 * sp (may be NULL), the fine-tune recipe ft, an RNG seeded with seed, and
 * progress lines to `progress` (may be NULL). */
static int run(const pb_model *m, const pb_pruner *pr, const char *target,
	       const char *const *kv, const pb_splits *sp,
	       const pb_recipe *ft, unsigned long seed, FILE *progress,
	       pb_model **out, pb_error *err)
{
	pb_target t;
	pb_prune_setup su = { 0 };

	if (pb_target_parse(&t, target, err))
		fail_msg("%s", err->msg);
	su.pruner = pr;
	su.target = &t;
	su.splits = sp;
	su.finetune = ft;
	su.dense = ft;
	su.progress = progress;
	su.label = "t";
	return tu_prune_run(m, &su, kv, seed, out, NULL, err);
}

/* ---- thinet ----------------------------------------------------------------- */

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
	if (run(m, pb_plugin_pruner(th), "channels=0.25", NULL, &sp, NULL, 1,
		NULL, &out, &err))
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
	if (run(m, pb_plugin_pruner(l1), "channels=0.25", NULL, NULL, NULL,
		1, NULL, &out, &err))
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
	if (run(m, pb_plugin_pruner(th), "channels=0.5", ls, &sp, NULL, 1,
		NULL, &a, &err) ||
	    run(m, pb_plugin_pruner(th), "channels=0.5", nols, &sp, NULL, 1,
		NULL, &b, &err))
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

/* A block with an identity shortcut: c0's channels are tied to c2's by
 * the add, c1's are the block's inner channels. */
static const char residual_ini[] =
	"[model]\nname = res\ninput = 1x6x6\nclasses = 3\n"
	"[c0]\ntype = conv\nout = 8\nkernel = 3\npad = 1\nbias = no\n"
	"[b0]\ntype = bn\n"
	"[r0]\ntype = relu\n"
	"[c1]\ntype = conv\nout = 8\nkernel = 3\npad = 1\nbias = no\n"
	"[b1]\ntype = bn\n"
	"[r1]\ntype = relu\n"
	"[c2]\ntype = conv\nout = 8\nkernel = 3\npad = 1\nbias = no\n"
	"[b2]\ntype = bn\n"
	"[add]\ntype = add\ninputs = b2, r0\n"
	"[r2]\ntype = relu\n"
	"[gap]\ntype = avgpool\nglobal = yes\n"
	"[f]\ntype = flatten\n"
	"[fc]\ntype = linear\nout = 3\n";

static void test_thinet_residual_inner_only(void **state)
{
	pb_plugin *th = tu_open_plugin("thinet");
	pb_model *m = tu_parse_model(residual_ini, "test"), *out = NULL;
	pb_splits sp;
	pb_error err = { 0 };

	(void)state;
	memset(&sp, 0, sizeof sp);
	tu_init_params(m, 3);
	assert_int_equal(pb_dataset_synthetic(&sp.train, 32, 1, 6, 6, 3,
					      0.3f, 1, &err), 0);
	if (run(m, pb_plugin_pruner(th), "channels=0.25", NULL, &sp, NULL, 1,
		NULL, &out, &err))
		fail_msg("%s", err.msg);
	/* 4 of the 16 prunable channels go, all from the inner conv. */
	assert_int_equal(pb_model_find_param(out, "c0.weight")->shape[0], 8);
	assert_int_equal(pb_model_find_param(out, "c2.weight")->shape[0], 8);
	assert_int_equal(pb_model_find_param(out, "c1.weight")->shape[0], 4);
	pb_model_free(out);
	/* A target the inner layers cannot carry alone is refused. */
	assert_int_equal(run(m, pb_plugin_pruner(th), "channels=0.6", NULL,
			     &sp, NULL, 1, NULL, &out, &err), PB_EINVAL);
	assert_non_null(strstr(err.msg, "non-residual"));
	pb_dataset_free(&sp.train);
	pb_model_free(m);
	pb_plugin_close(th);
}

/* ---- fpgm ------------------------------------------------------------------- */

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
	if (run(m, pb_plugin_pruner(fp), "channels=0.2", hard, NULL, NULL, 1,
		NULL, &out, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(removed_filter(m, out), 4);
	pb_model_free(out);
	if (run(m, pb_plugin_pruner(fp), "channels=0.2", hard_l1, NULL, NULL,
		1, NULL, &out, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(removed_filter(m, out), 4);
	pb_model_free(out);
	/* Soft mode without training selects the same, per layer. */
	if (run(m, pb_plugin_pruner(fp), "channels=0.2", soft0, NULL, NULL, 1,
		NULL, &out, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(removed_filter(m, out), 4);
	pb_model_free(out);
	if (run(m, pb_plugin_pruner(l1), "channels=0.2", NULL, NULL, NULL, 1,
		NULL, &out, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(removed_filter(m, out), 3);
	pb_model_free(out);
	pb_model_free(m);
	pb_plugin_close(fp);
	pb_plugin_close(l1);
}

/* ---- data and a recipe for the training tests ------------------------------- */

static const char small_ini[] =
	"[model]\nname = sm\ninput = 1x8x8\nclasses = 4\n"
	"[c1]\ntype = conv\nout = 8\nkernel = 3\npad = 1\nbias = no\n"
	"[b1]\ntype = bn\n"
	"[r1]\ntype = relu\n"
	"[c2]\ntype = conv\nout = 12\nkernel = 3\npad = 1\nbias = no\n"
	"[b2]\ntype = bn\n"
	"[r2]\ntype = relu\n"
	"[mp]\ntype = maxpool\nkernel = 2\n"
	"[c3]\ntype = conv\nout = 10\nkernel = 3\npad = 1\nbias = no\n"
	"[b3]\ntype = bn\n"
	"[r3]\ntype = relu\n"
	"[f]\ntype = flatten\n"
	"[fc]\ntype = linear\nout = 4\n";

static void small_setup(pb_model **m, pb_splits *sp, pb_recipe *ft)
{
	pb_error err = { 0 };
	pb_dataset full = { 0 };

	*m = tu_parse_model(small_ini, "test");
	tu_init_params(*m, 9);
	memset(sp, 0, sizeof *sp);
	assert_int_equal(pb_dataset_synthetic(&full, 240, 1, 8, 8, 4, 0.8f,
					      4, &err), 0);
	assert_int_equal(pb_dataset_split(&full, 80, 3, &sp->train, &sp->val,
					  &err), 0);
	pb_dataset_free(&full);
	pb_recipe_default(ft);
	ft->epochs = 1;
	ft->batch = 16;
	ft->lr = 0.05;
	ft->warmup_epochs = 0;
	ft->aug.crop_pad = 0;
	ft->aug.hflip = 0;
	ft->val_size = 0;
}

static void small_free(pb_model *m, pb_splits *sp)
{
	pb_dataset_free(&sp->train);
	pb_dataset_free(&sp->val);
	pb_model_free(m);
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
	small_setup(&m, &sp, &ft);
	if (run(m, pb_plugin_pruner(fp), "channels=0.5", soft, &sp, &ft, 1,
		NULL, &out, &err))
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
	small_free(m, &sp);
	pb_plugin_close(fp);
}

/* ---- random ----------------------------------------------------------------- */

#define MAX_SAMPLES 16
#define MAX_GROUPS 8

/* What the random plugin logged, parsed. */
typedef struct rlog {
	int n;
	int ng;
	int kept[MAX_SAMPLES][MAX_GROUPS];
	double removed[MAX_SAMPLES], val[MAX_SAMPLES];
	int chosen;
} rlog;

static void parse_log(const char *text, rlog *lg)
{
	const char *p = text;

	memset(lg, 0, sizeof *lg);
	lg->chosen = -1;
	while ((p = strstr(p, "random: "))) {
		int i;

		if (sscanf(p, "random: sample %d:", &i) == 1) {
			const char *k = strstr(p, "kept ") + 5;
			char *end;
			int g = 0;

			assert_int_equal(i, lg->n);
			assert_true(i < MAX_SAMPLES);
			while (*k != ';') {
				lg->kept[i][g++] = (int)strtol(k, &end, 10);
				k = end;
			}
			lg->ng = g;
			assert_int_equal(sscanf(k, "; removed %lf of macs; val "
						"%lf", &lg->removed[i],
						&lg->val[i]), 2);
			lg->n++;
		} else if (sscanf(p, "random: kept sample %d", &i) == 1) {
			lg->chosen = i;
		}
		p += 8;
	}
}

/* The probe: a pruner that measures configurations with the core's
 * pb_ctx_config_cost and changes nothing. Test code, so its inputs and
 * outputs are globals. */
static const rlog *probe_in;
static double probe_removed[MAX_SAMPLES], probe_less[MAX_SAMPLES],
	      probe_more[MAX_SAMPLES];
static int probe_full[MAX_GROUPS], probe_prunable[MAX_GROUPS];

static double macs_removed(pb_prune_ctx *ctx, const int *kept)
{
	uint64_t f0, f;

	assert_int_equal(pb_ctx_config_cost(ctx, probe_full, NULL, &f0), 0);
	assert_int_equal(pb_ctx_config_cost(ctx, kept, NULL, &f), 0);
	return 1.0 - (double)f / (double)f0;
}

static int probe_prune(void *state, pb_prune_ctx *ctx)
{
	int ng = pb_ctx_n_groups(ctx);

	(void)state;
	assert_int_equal(ng, probe_in->ng);
	for (int g = 0; g < ng; g++) {
		probe_full[g] = pb_ctx_group(ctx, g)->n_channels;
		probe_prunable[g] = pb_ctx_group(ctx, g)->prunable;
	}
	for (int i = 0; i < probe_in->n; i++) {
		int less[MAX_GROUPS], more[MAX_GROUPS];

		for (int g = 0; g < ng; g++) {
			int k = probe_in->kept[i][g];

			less[g] = more[g] = k;
			if (!probe_prunable[g])
				continue;
			if (k > 1)
				less[g] = k - 1;
			if (k < probe_full[g])
				more[g] = k + 1;
		}
		probe_removed[i] = macs_removed(ctx, probe_in->kept[i]);
		probe_less[i] = macs_removed(ctx, less);
		probe_more[i] = macs_removed(ctx, more);
	}
	return 0;
}

static const pb_pruner probe = {
	PB_PRUNER_HEADER,
	.name = "probe",
	.version = "0",
	.granularity = PB_GRANULARITY_CHANNEL,
	.prune = probe_prune,
};

/* The plugin's own lines of a log ("random: ..."), without the training
 * progress lines (they carry timings). Rewrites text in place. */
static void keep_plugin_lines(char *text)
{
	char *w = text, *line = text;

	while (*line) {
		char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) + 1 : strlen(line);
		int mine;

		if (nl)
			*nl = '\0';
		mine = strstr(line, "random: ") != NULL;
		if (nl)
			*nl = '\n';
		if (mine) {
			memmove(w, line, n);
			w += n;
		}
		line += n;
	}
	*w = '\0';
}

/* Runs random and returns its log text (malloc-ed) and model. */
static char *run_random(pb_model *m, const pb_splits *sp, const pb_recipe *ft,
			const char *const *kv, unsigned long seed,
			pb_model **out)
{
	pb_plugin *rp = tu_open_plugin("random");
	pb_error err = { 0 };
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	if (run(m, pb_plugin_pruner(rp), "macs=0.5", kv, sp, ft, seed, f, out,
		&err))
		fail_msg("%s", err.msg);
	fclose(f);
	pb_plugin_close(rp);
	keep_plugin_lines(text);
	return text;
}

static void test_random_budget_seed_best(void **state)
{
	static const char *kv[] = { "samples=6", "short_finetune=4", NULL };
	pb_model *m, *a = NULL, *b = NULL, *c = NULL, *pout = NULL;
	pb_splits sp;
	pb_recipe ft;
	pb_error err = { 0 };
	rlog la, lb, lc;
	char *ta, *tb, *tc;
	double acc, loss, best = -1.0;
	int best_i = -1;

	(void)state;
	small_setup(&m, &sp, &ft);
	ta = run_random(m, &sp, &ft, kv, 7, &a);
	tb = run_random(m, &sp, &ft, kv, 7, &b);
	tc = run_random(m, &sp, &ft, kv, 8, &c);
	parse_log(ta, &la);
	parse_log(tb, &lb);
	parse_log(tc, &lc);
	assert_int_equal(la.n, 6);
	assert_int_equal(la.ng, 4);

	/* Every configuration meets the budget within one channel per
	 * group: one channel fewer everywhere reaches it, one more does
	 * not exceed it; and the plugin reports what the core measures. */
	probe_in = &la;
	if (run(m, &probe, "macs=0.5", NULL, NULL, NULL, 1, NULL, &pout,
		&err))
		fail_msg("%s", err.msg);
	pb_model_free(pout);
	for (int i = 0; i < la.n; i++) {
		assert_true(fabs(probe_removed[i] - la.removed[i]) < 1e-5);
		assert_true(probe_less[i] >= 0.5);
		assert_true(probe_more[i] <= 0.5);
		assert_true(fabs(probe_removed[i] - 0.5) < 0.1);
		if (la.val[i] > best) {
			best = la.val[i];
			best_i = i;
		}
	}
	/* The configurations are random: not all the same. */
	{
		int differ = 0;

		for (int i = 1; i < la.n; i++)
			differ |= memcmp(la.kept[i], la.kept[0],
					 sizeof la.kept[0]) != 0;
		assert_true(differ);
	}

	/* Same seed, same everything; another seed, other samples. */
	assert_string_equal(ta, tb);
	assert_true(strcmp(ta, tc) != 0);
	for (int i = 0; i < pb_model_n_params(a); i++)
		assert_memory_equal(pb_model_param(a, i)->data,
				    pb_model_param(b, i)->data,
				    pb_model_param(a, i)->n * sizeof(float));

	/* The kept model is the best candidate on validation: its shape is
	 * that sample's, and its validation accuracy is that sample's. */
	assert_int_equal(la.chosen, best_i);
	assert_int_equal(pb_model_find_param(a, "c1.weight")->shape[0],
			 la.kept[best_i][0]);
	assert_int_equal(pb_model_find_param(a, "c2.weight")->shape[0],
			 la.kept[best_i][1]);
	assert_int_equal(pb_model_find_param(a, "c3.weight")->shape[0],
			 la.kept[best_i][2]);
	assert_int_equal(pb_evaluate(a, &sp.val, 256, &acc, &loss, &err), 0);
	assert_true(fabs(acc - best) < 1e-9);
	print_message("random: kept sample %d of %d, val %.4f\n", best_i,
		      la.n, best);
	(void)lb;
	(void)lc;
	free(ta);
	free(tb);
	free(tc);
	pb_model_free(a);
	pb_model_free(b);
	pb_model_free(c);
	small_free(m, &sp);
}

/* samples = 1, select = random, no short fine-tune: the plain baseline,
 * which needs no data; select = l1 keeps the largest filters. */
static void test_random_baseline_and_l1(void **state)
{
	static const char *plain[] = { "samples=1", "short_finetune=0", NULL };
	static const char *l1sel[] = { "samples=1", "short_finetune=0",
				       "select=l1", NULL };
	pb_model *m, *out = NULL;
	pb_splits sp;
	pb_recipe ft;
	char *t;
	rlog lg;

	(void)state;
	small_setup(&m, &sp, &ft);
	t = run_random(m, NULL, NULL, plain, 3, &out);
	parse_log(t, &lg);
	assert_int_equal(lg.n, 1);
	assert_int_equal(lg.chosen, 0);
	assert_int_equal(pb_model_find_param(out, "c2.weight")->shape[0],
			 lg.kept[0][1]);
	free(t);
	pb_model_free(out);

	t = run_random(m, NULL, NULL, l1sel, 3, &out);
	parse_log(t, &lg);
	{
		/* c1's kept filters are its largest by L1 norm. */
		pb_param *a = pb_model_find_param(m, "c1.weight");
		pb_param *b = pb_model_find_param(out, "c1.weight");
		double min_kept = INFINITY, max_dropped = 0.0;

		for (int c = 0; c < a->shape[0]; c++) {
			double s = 0.0;
			int kept = 0;

			for (int j = 0; j < 9; j++)
				s += fabs(a->data[9 * c + j]);
			for (int i = 0; i < b->shape[0]; i++)
				kept |= !memcmp(a->data + 9 * c,
						b->data + 9 * i,
						9 * sizeof(float));
			if (kept && s < min_kept)
				min_kept = s;
			if (!kept && s > max_dropped)
				max_dropped = s;
		}
		assert_int_equal(b->shape[0], lg.kept[0][0]);
		assert_true(max_dropped <= min_kept);
	}
	free(t);
	pb_model_free(out);
	small_free(m, &sp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_thinet_removes_cancelling_channel),
		cmocka_unit_test(test_thinet_least_squares),
		cmocka_unit_test(test_thinet_residual_inner_only),
		cmocka_unit_test(test_fpgm_removes_median_not_smallest),
		cmocka_unit_test(test_fpgm_soft_trains_and_removes),
		cmocka_unit_test(test_random_budget_seed_best),
		cmocka_unit_test(test_random_baseline_and_l1),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
