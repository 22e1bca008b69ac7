/* random on a small net: every sampled configuration is within the
 * tolerance of the budget (checked with pb_ctx_config_cost by a probe
 * pruner), the same seed gives the same choice, the kept model is the
 * candidate with the best validation accuracy, the plain baseline needs
 * no data, and select = l1 keeps the largest filters. On VGG-S: 200
 * draws at macs = 0.7 keep every layer within the sampling range and
 * match, layer by layer, the mean keep ratios of the uniform range
 * conditioned on the budget (an independent sampler in this file);
 * ratios = uniform gives l1's per-layer shapes with random channels; and
 * a budget the range cannot meet ends with an error, at once or after
 * max_draws draws. */
#include "pruner_test.h"

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
static double probe_removed[MAX_SAMPLES];
static int probe_full[MAX_GROUPS];

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
	for (int g = 0; g < ng; g++)
		probe_full[g] = pb_ctx_group(ctx, g)->n_channels;
	for (int i = 0; i < probe_in->n; i++)
		probe_removed[i] = macs_removed(ctx, probe_in->kept[i]);
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
	if (pt_run_data(m, pb_plugin_pruner(rp), "macs=0.5", kv, sp, ft, seed,
			f, out, &err))
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
	pt_small_setup(&m, &sp, &ft);
	ta = run_random(m, &sp, &ft, kv, 7, &a);
	tb = run_random(m, &sp, &ft, kv, 7, &b);
	tc = run_random(m, &sp, &ft, kv, 8, &c);
	parse_log(ta, &la);
	parse_log(tb, &lb);
	parse_log(tc, &lc);
	assert_int_equal(la.n, 6);
	assert_int_equal(la.ng, 4);

	/* Every configuration meets the budget within the tolerance
	 * (0.01, the default), and the plugin reports what the core
	 * measures. */
	probe_in = &la;
	if (pt_run_data(m, &probe, "macs=0.5", NULL, NULL, NULL, 1, NULL, &pout,
			&err))
		fail_msg("%s", err.msg);
	pb_model_free(pout);
	for (int i = 0; i < la.n; i++) {
		assert_true(fabs(probe_removed[i] - la.removed[i]) < 1e-5);
		assert_true(fabs(probe_removed[i] - 0.5) <= 0.01 + 1e-9);
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
	pt_small_free(m, &sp);
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
	pt_small_setup(&m, &sp, &ft);
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
	pt_small_free(m, &sp);
}

/* ---- VGG-S --------------------------------------------------------------- */

#define VGG_LAYERS 6
#define VGG_DRAWS 200
#define KEEP_MIN 0.2      /* random's declared keep_min default */
#define TOLERANCE 0.01    /* and tolerance */

static const char *const vgg_conv[VGG_LAYERS] = {
	"conv1.weight", "conv2.weight", "conv3.weight",
	"conv4.weight", "conv5.weight", "conv6.weight"
};
static const int vgg_n[VGG_LAYERS] = { 16, 16, 32, 32, 64, 64 };

/* VGG-S's MACs with k[i] channels in conv i+1 (models/vgg-s.ini): 3x3
 * convs at 28x28 (conv1 reads 1 channel), 14x14 and 7x7, then fc from
 * k[5] x 3 x 3 features to 10 classes. Written out here so the plugin's
 * measure is checked too. */
static double vgg_macs(const int *k)
{
	return 9.0 * 784 * ((double)k[0] + (double)k[0] * k[1]) +
	       9.0 * 196 * ((double)k[1] * k[2] + (double)k[2] * k[3]) +
	       9.0 * 49 * ((double)k[3] * k[4] + (double)k[4] * k[5]) +
	       90.0 * k[5];
}

static int vgg_lowest(int n)
{
	return (int)ceil(KEEP_MIN * n - 1e-9);
}

/* What ratios = random should sample, drawn here independently of the
 * plugin: every layer's count uniform over the whole numbers in
 * [ceil(0.2 n), n], each layer on its own, kept only when the MACs
 * removed are within 0.01 of 0.7. The per-layer mean and standard
 * deviation of the keep ratio over n_acc accepted draws. */
static void reference_means(int n_acc, double *mean, double *sd)
{
	gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
	double f0 = vgg_macs(vgg_n), sum[VGG_LAYERS] = { 0 },
	       sq[VGG_LAYERS] = { 0 };
	int acc = 0;

	assert_non_null(r);
	gsl_rng_set(r, 20221);
	while (acc < n_acc) {
		int k[VGG_LAYERS];

		for (int i = 0; i < VGG_LAYERS; i++) {
			int lo = vgg_lowest(vgg_n[i]);
			k[i] = lo + (int)gsl_rng_uniform_int(
				r, (unsigned long)(vgg_n[i] - lo + 1));
		}
		if (fabs(1.0 - vgg_macs(k) / f0 - 0.7) > TOLERANCE)
			continue;
		acc++;
		for (int i = 0; i < VGG_LAYERS; i++) {
			double q = (double)k[i] / vgg_n[i];
			sum[i] += q;
			sq[i] += q * q;
		}
	}
	for (int i = 0; i < VGG_LAYERS; i++) {
		mean[i] = sum[i] / n_acc;
		sd[i] = sqrt(sq[i] / n_acc - mean[i] * mean[i]);
	}
	gsl_rng_free(r);
}

/* The default random declares for option `name`. */
static double declared(pb_plugin *p, const char *name)
{
	const pb_pruner *pr = pb_plugin_pruner(p);

	for (int i = 0; i < pr->n_options; i++)
		if (!strcmp(pr->options[i].name, name))
			return strtod(pr->options[i].def, NULL);
	fail_msg("random declares no option %s", name);
	return 0.0;
}

static pb_model *vgg_model(void)
{
	pb_model *m = tu_load_shipped_model("vgg-s.ini");

	tu_init_params(m, 5);
	return m;
}

/* 200 plain draws (seeds 1-200) at macs = 0.7. Each keeps every layer
 * at or above keep_min of its channels (the old sampler left 1 of 32)
 * and removes 0.7 +- 0.01 of the MACs, as the core measures it and as
 * counted here. The per-layer mean keep ratios must be those of the
 * uniform range conditioned on the budget: the MAC constraint alone
 * moves them (conv1 and conv6 cost the fewest MACs per channel, so the
 * budget lets them keep more), and a sampler that favours some layers
 * beyond that (squeezing layers to their floor, or scaling one range
 * for all) moves them further. The bound is 4 standard errors of the
 * difference of the two means, 4 sd sqrt(1/200 + 1/n_ref): a correct
 * sampler passes it with probability ~1 - 6e-5 per layer, and a drift
 * of about 0.06 in a layer's mean keep ratio fails it. */
static void test_random_vgg_draws(void **state)
{
	static const char *kv[] = { "samples=1", "short_finetune=0", NULL };
	enum { N_REF = 10000 };
	pb_plugin *p = tu_open_plugin("random");
	pb_model *m = vgg_model();
	double f0 = vgg_macs(vgg_n), sum[VGG_LAYERS] = { 0 };
	double ref[VGG_LAYERS], sd[VGG_LAYERS];
	int lowest[VGG_LAYERS];

	(void)state;
	assert_true(declared(p, "keep_min") == KEEP_MIN);
	assert_true(declared(p, "tolerance") == TOLERANCE);
	for (int i = 0; i < VGG_LAYERS; i++)
		lowest[i] = vgg_n[i];
	for (unsigned long seed = 1; seed <= VGG_DRAWS; seed++) {
		pt_run_args a = { .target = "macs=0.7", .kv = kv,
				  .seed = seed };
		pb_model *out = NULL;
		pb_prune_report rep;
		pb_error err = { 0 };
		int k[VGG_LAYERS];

		if (pt_run(m, pb_plugin_pruner(p), &a, &out, &rep, &err))
			fail_msg("seed %lu: %s", seed, err.msg);
		assert_true((double)rep.macs_before == f0);
		for (int i = 0; i < VGG_LAYERS; i++) {
			k[i] = pb_model_find_param(out, vgg_conv[i])->shape[0];
			if (k[i] < vgg_lowest(vgg_n[i]))
				fail_msg("seed %lu: %s keeps %d of %d, below "
					 "keep_min %g", seed, vgg_conv[i],
					 k[i], vgg_n[i], KEEP_MIN);
			if (k[i] < lowest[i])
				lowest[i] = k[i];
			sum[i] += (double)k[i] / vgg_n[i];
		}
		assert_true(fabs(rep.reached - 0.7) <= TOLERANCE + 1e-12);
		assert_true(fabs(rep.reached - (1.0 - vgg_macs(k) / f0)) <
			    1e-12);
		pb_model_free(out);
	}
	reference_means(N_REF, ref, sd);
	print_message("layer  n   fewest kept  mean kept  reference  bound\n");
	for (int i = 0; i < VGG_LAYERS; i++) {
		double mean = sum[i] / VGG_DRAWS;
		double bound = 4.0 * sd[i] * sqrt(1.0 / VGG_DRAWS +
						  1.0 / N_REF);

		print_message("conv%d %3d  %3d (%.3f)  %.4f     %.4f     "
			      "%.4f\n", i + 1, vgg_n[i], lowest[i],
			      (double)lowest[i] / vgg_n[i], mean, ref[i],
			      bound);
		if (fabs(mean - ref[i]) > bound)
			fail_msg("conv%d: mean keep ratio %.4f over %d draws, "
				 "but %.4f under the uniform range conditioned "
				 "on the budget (bound %.4f)", i + 1, mean,
				 VGG_DRAWS, ref[i], bound);
	}
	pb_model_free(m);
	pb_plugin_close(p);
}

/* ratios = uniform: l1's per-layer shapes (one ratio in every layer, as
 * scope = layer cuts it), the channels drawn at random: another seed,
 * other channels. */
static void test_random_uniform(void **state)
{
	static const char *kv[] = { "ratios=uniform", "samples=1",
				    "short_finetune=0", NULL };
	pb_plugin *rp = tu_open_plugin("random"), *lp = tu_open_plugin("l1");
	pb_model *m = vgg_model(), *a = NULL, *b = NULL, *l = NULL;
	pb_error err = { 0 };
	pt_run_args ra = { .target = "macs=0.5", .kv = kv, .seed = 1 };
	pt_run_args la = { .target = "macs=0.5" };
	pb_param *pa, *pb;

	(void)state;
	if (pt_run(m, pb_plugin_pruner(rp), &ra, &a, NULL, &err))
		fail_msg("%s", err.msg);
	ra.seed = 2;
	if (pt_run(m, pb_plugin_pruner(rp), &ra, &b, NULL, &err) ||
	    pt_run(m, pb_plugin_pruner(lp), &la, &l, NULL, &err))
		fail_msg("%s", err.msg);
	for (int i = 0; i < VGG_LAYERS; i++) {
		int k = pb_model_find_param(l, vgg_conv[i])->shape[0];

		assert_int_equal(pb_model_find_param(a, vgg_conv[i])->shape[0],
				 k);
		assert_int_equal(pb_model_find_param(b, vgg_conv[i])->shape[0],
				 k);
		assert_true(k < vgg_n[i]);
	}
	pa = pb_model_find_param(a, "conv1.weight");
	pb = pb_model_find_param(b, "conv1.weight");
	assert_true(memcmp(pa->data, pb->data, pa->n * sizeof(float)) != 0);
	pb_model_free(a);
	pb_model_free(b);
	pb_model_free(l);
	pb_model_free(m);
	pb_plugin_close(rp);
	pb_plugin_close(lp);
}

/* A budget the range cannot meet fails at once, saying what the range
 * can remove; one it can meet but rarely fails after max_draws draws,
 * saying so; a range upside down is refused. */
static void test_random_draw_budget(void **state)
{
	static const char *narrow[] = { "samples=1", "short_finetune=0",
					"keep_min=0.9", NULL };
	static const char *few[] = { "samples=1", "short_finetune=0",
				     "tolerance=0", "max_draws=3", NULL };
	static const char *upside[] = { "samples=1", "short_finetune=0",
					"keep_min=0.6", "keep_max=0.5", NULL };
	pb_plugin *p = tu_open_plugin("random");
	pb_model *m = vgg_model(), *out = NULL;
	pb_error err = { 0 };
	pt_run_args a = { .target = "macs=0.7", .kv = narrow, .seed = 1 };

	(void)state;
	assert_int_not_equal(pt_run(m, pb_plugin_pruner(p), &a, &out, NULL,
				    &err), 0);
	assert_null(out);
	assert_non_null(strstr(err.msg, "cannot be met"));
	assert_non_null(strstr(err.msg, "keep_min"));
	print_message("%s\n", err.msg);

	a.kv = few;
	assert_int_not_equal(pt_run(m, pb_plugin_pruner(p), &a, &out, NULL,
				    &err), 0);
	assert_null(out);
	assert_non_null(strstr(err.msg, "in 3 draws (max_draws)"));
	print_message("%s\n", err.msg);

	a.kv = upside;
	assert_int_not_equal(pt_run(m, pb_plugin_pruner(p), &a, &out, NULL,
				    &err), 0);
	assert_non_null(strstr(err.msg, "above keep_max"));
	pb_model_free(m);
	pb_plugin_close(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_budget_seed_best),
		cmocka_unit_test(test_random_baseline_and_l1),
		cmocka_unit_test(test_random_vgg_draws),
		cmocka_unit_test(test_random_uniform),
		cmocka_unit_test(test_random_draw_budget),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
