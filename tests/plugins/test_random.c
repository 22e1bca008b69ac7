/* random on a small net: every sampled configuration is within one
 * channel per group of the budget (checked with pb_ctx_config_cost by a
 * probe pruner), the same seed gives the same choice, the kept model is
 * the candidate with the best validation accuracy, the plain baseline
 * needs no data, and select = l1 keeps the largest filters. */
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

	/* Every configuration meets the budget within one channel per
	 * group: one channel fewer everywhere reaches it, one more does
	 * not exceed it; and the plugin reports what the core measures. */
	probe_in = &la;
	if (pt_run_data(m, &probe, "macs=0.5", NULL, NULL, NULL, 1, NULL, &pout,
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_budget_seed_best),
		cmocka_unit_test(test_random_baseline_and_l1),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
