/* Targets: the text form (accepted and rejected, with the message), and
 * weight selection under a sparsity target: exactly the lowest scores,
 * layer and global scope, overrides, ties by position, existing masks
 * counted, the global floor, and impossible amounts. */
#include "nn/mask.h"
#include "testutil.h"

#include "prunebench/prunebench.h"
#include "nn/model_impl.h"
#include "prune/prune_impl.h"

/* conv1.weight has 36 weights (4x1x3x3), fc.weight 192 (3x64). */
static const char net[] =
	"[model]\nname = sel\ninput = 1x6x6\nclasses = 3\n"
	"[conv1]\ntype = conv\nout = 4\nkernel = 3\nbias = yes\n"
	"[relu1]\ntype = relu\n"
	"[flat]\ntype = flatten\n[fc]\ntype = linear\nout = 3\n";

#define NC 36
#define NF 192

/* ---- parsing -------------------------------------------------------------- */

static void test_parse_accepts(void **state)
{
	pb_target t;
	pb_error err = { 0 };
	char buf[64];

	(void)state;
	assert_int_equal(pb_target_parse(&t, "sparsity=0.75", &err), 0);
	assert_int_equal(t.kind, PB_TARGET_SPARSITY);
	assert_true(t.amount == 0.75);
	assert_int_equal(t.scope, PB_SCOPE_LAYER);
	assert_int_equal(t.n_overrides, 0);

	assert_int_equal(pb_target_parse(&t, " macs = 0.5 ", &err), 0);
	assert_int_equal(t.kind, PB_TARGET_MACS);
	assert_true(t.amount == 0.5);
	assert_int_equal(pb_target_parse(&t, "channels=0.3", &err), 0);
	assert_int_equal(t.kind, PB_TARGET_CHANNELS);
	assert_int_equal(pb_target_parse(&t, "params=0", &err), 0);
	assert_int_equal(t.kind, PB_TARGET_PARAMS);
	assert_true(t.amount == 0.0);

	assert_int_equal(pb_target_parse(&t, "sparsity=0.8, scope=global, "
					  "fc=0.5,conv1 = 0.25", &err), 0);
	assert_int_equal(t.scope, PB_SCOPE_GLOBAL);
	assert_int_equal(t.n_overrides, 2);
	assert_string_equal(t.overrides[0].layer, "fc");
	assert_true(t.overrides[0].amount == 0.5);
	assert_string_equal(t.overrides[1].layer, "conv1");
	assert_true(t.overrides[1].amount == 0.25);

	pb_target_parse(&t, "macs=0.5", &err);
	pb_target_format(&t, buf, sizeof buf);
	assert_string_equal(buf, "macs=0.5");
	pb_target_parse(&t, "sparsity=0.75, scope=global", &err);
	pb_target_format(&t, buf, sizeof buf);
	assert_string_equal(buf, "sparsity=0.75");
}

static void expect_reject(const char *text, int code, const char *a,
			  const char *b)
{
	pb_target t;
	pb_error err = { 0 };

	t.amount = 0.123;
	t.kind = PB_TARGET_MACS;
	assert_int_equal(pb_target_parse(&t, text, &err), code);
	if (!strstr(err.msg, a) || (b && !strstr(err.msg, b)))
		fail_msg("'%s': message '%s' lacks '%s' / '%s'", text,
			 err.msg, a, b ? b : "");
	/* A rejected text leaves the target as it was. */
	assert_true(t.amount == 0.123);
}

static void test_parse_rejects(void **state)
{
	(void)state;
	expect_reject("", PB_EPARSE, "empty target", "sparsity=S");
	expect_reject("sparsity", PB_EPARSE, "not KEY=VALUE", "sparsity=0.75");
	expect_reject("sparse=0.5", PB_EPARSE, "unknown kind 'sparse'",
		      "macs=F");
	expect_reject("sparsity=1", PB_EIMPOSSIBLE, "out of range", "[0, 1)");
	expect_reject("sparsity=1.5", PB_EIMPOSSIBLE, "1.5", "[0, 1)");
	expect_reject("macs=-0.1", PB_EIMPOSSIBLE, "-0.1", "[0, 1)");
	expect_reject("sparsity=abc", PB_EPARSE, "'abc' is not a number",
		      NULL);
	expect_reject("sparsity=0.5x", PB_EPARSE, "not a number", NULL);
	expect_reject("sparsity=nan", PB_EPARSE, "not a number", NULL);
	expect_reject("sparsity=0.5,", PB_EPARSE, "empty item", NULL);
	expect_reject("sparsity=", PB_EPARSE, "empty value", NULL);
	expect_reject("sparsity=0.5, scope=wide", PB_EPARSE, "scope = 'wide'",
		      "scope=global");
	expect_reject("sparsity=0.5, scope=layer, scope=global", PB_EPARSE,
		      "scope given twice", NULL);
	expect_reject("sparsity=0.5, fc=0.2, fc=0.3", PB_EPARSE,
		      "'fc' is overridden twice", NULL);
	expect_reject("sparsity=0.5, macs=0.2", PB_EPARSE, "one kind",
		      "'macs'");
	expect_reject("sparsity=0.5, fc=1.0", PB_EIMPOSSIBLE, "fc = 1",
		      "[0, 1)");
}

/* ---- selection ------------------------------------------------------------ */

typedef struct fx {
	pb_model *m;
	pb_param *p[2];   /* conv1.weight, fc.weight */
	float *s[2];
} fx;

static int setup(void **state)
{
	fx *f = calloc(1, sizeof *f);
	pb_error err = { 0 };

	assert_int_equal(pb_model_parse(&f->m, net, "sel", &err), 0);
	f->p[0] = pb_model_find_param(f->m, "conv1.weight");
	f->p[1] = pb_model_find_param(f->m, "fc.weight");
	assert_int_equal(f->p[0]->n, NC);
	assert_int_equal(f->p[1]->n, NF);
	/* Weights: 1 + index, so a pruned weight is visibly zeroed. */
	for (int t = 0; t < 2; t++) {
		f->s[t] = malloc(f->p[t]->n * sizeof(float));
		for (size_t i = 0; i < f->p[t]->n; i++)
			f->p[t]->data[i] = 1.0f + (float)i;
	}
	/* Scores: conv1 far above fc, distinct within each. */
	for (size_t i = 0; i < NC; i++)
		f->s[0][i] = 1000.0f + (float)i;
	for (size_t i = 0; i < NF; i++)
		f->s[1][i] = (float)i;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;

	pb_model_free(f->m);
	free(f->s[0]);
	free(f->s[1]);
	free(f);
	return 0;
}

static pb_target target(pb_scope scope)
{
	pb_target t;

	memset(&t, 0, sizeof t);
	t.kind = PB_TARGET_SPARSITY;
	t.scope = scope;
	return t;
}

static void add_override(pb_target *t, const char *layer, double a)
{
	strcpy(t->overrides[t->n_overrides].layer, layer);
	t->overrides[t->n_overrides++].amount = a;
}

/* Asserts exactly the indices [lo, hi) plus `extra` (or -1) are masked
 * in tensor t, and that those weights are zero and the others are not. */
static void expect_masked(fx *f, int t, size_t lo, size_t hi, long extra)
{
	const float *mk = pbi_mask_get(f->m, f->p[t], 0);

	for (size_t i = 0; i < f->p[t]->n; i++) {
		int want = (i >= lo && i < hi) || (long)i == extra;
		int got = mk ? mk[i] == 0.0f : 0;
		if (want != got)
			fail_msg("%s[%zu]: masked %d, expected %d",
				 f->p[t]->name, i, got, want);
		if (want)
			assert_true(f->p[t]->data[i] == 0.0f);
		else
			assert_true(f->p[t]->data[i] == 1.0f + (float)i);
	}
}

static int select_w(fx *f, const pb_target *t, double amount,
		    double *reached, pb_error *err)
{
	return pbi_select_weights(f->m, t, f->p, f->s, 2, amount, reached,
				  err);
}

static void test_layer_scope(void **state)
{
	fx *f = *state;
	pb_target t = target(PB_SCOPE_LAYER);
	pb_error err = { 0 };
	double r;

	assert_int_equal(select_w(f, &t, 0.5, &r, &err), 0);
	expect_masked(f, 0, 0, 18, -1);
	expect_masked(f, 1, 0, 96, -1);
	assert_true(fabs(r - 114.0 / 228.0) < 1e-12);
	/* Biases are never masked. */
	assert_null(pbi_mask_get(f->m, pb_model_find_param(f->m, "conv1.bias"),
				 0));
}

static void test_layer_override(void **state)
{
	fx *f = *state;
	pb_target t = target(PB_SCOPE_LAYER);
	pb_error err = { 0 };
	double r;

	add_override(&t, "fc", 0.25);
	assert_int_equal(select_w(f, &t, 0.5, &r, &err), 0);
	expect_masked(f, 0, 0, 18, -1);
	expect_masked(f, 1, 0, 48, -1);
	assert_true(fabs(r - 66.0 / 228.0) < 1e-12);
}

static void test_global_scope(void **state)
{
	fx *f = *state;
	pb_target t = target(PB_SCOPE_GLOBAL);
	pb_error err = { 0 };
	double r;

	/* One threshold: the 114 lowest scores are all in fc. */
	assert_int_equal(select_w(f, &t, 0.5, &r, &err), 0);
	expect_masked(f, 0, 0, 0, -1);
	expect_masked(f, 1, 0, 114, -1);
	assert_true(fabs(r - 0.5) < 1e-12);
}

static void test_global_override(void **state)
{
	fx *f = *state;
	pb_target t = target(PB_SCOPE_GLOBAL);
	pb_error err = { 0 };
	double r;

	/* conv1 is pinned at half its weights; the ranking fills the rest
	 * of the total from fc. */
	add_override(&t, "conv1", 0.5);
	assert_int_equal(select_w(f, &t, 0.5, &r, &err), 0);
	expect_masked(f, 0, 0, 18, -1);
	expect_masked(f, 1, 0, 96, -1);
	assert_true(fabs(r - 0.5) < 1e-12);
}

static void test_global_floor(void **state)
{
	fx *f = *state;
	pb_target t = target(PB_SCOPE_GLOBAL);
	pb_error err = { 0 };
	double r;

	/* round(0.9 * 228) = 205. fc may lose at most 192 - 2 (ceil 1%),
	 * so its two highest stay and the ranking goes on into conv1. */
	assert_int_equal(select_w(f, &t, 0.9, &r, &err), 0);
	expect_masked(f, 1, 0, 190, -1);
	expect_masked(f, 0, 0, 15, -1);
	assert_true(fabs(r - 205.0 / 228.0) < 1e-12);
}

static void test_global_impossible(void **state)
{
	fx *f = *state;
	pb_target t = target(PB_SCOPE_GLOBAL);
	pb_error err = { 0 };
	double r = -1;

	/* At most 228 - 2 - 1 = 225 weights may go: 0.995 needs 227. */
	assert_int_equal(select_w(f, &t, 0.995, &r, &err), PB_EIMPOSSIBLE);
	assert_non_null(strstr(err.msg, "0.995"));
	assert_non_null(strstr(err.msg, "at most 0.9868"));
	assert_non_null(strstr(err.msg, "1%"));
	/* Nothing changed. */
	assert_null(pbi_mask_flat(f->m));
	expect_masked(f, 1, 0, 0, -1);
	assert_true(r == -1);
}

static void test_bad_amounts(void **state)
{
	fx *f = *state;
	pb_target t = target(PB_SCOPE_LAYER);
	pb_error err = { 0 };
	double r;

	assert_int_equal(select_w(f, &t, 1.0, &r, &err), PB_EIMPOSSIBLE);
	assert_non_null(strstr(err.msg, "[0, 1)"));
	assert_int_equal(select_w(f, &t, -0.1, &r, &err), PB_EIMPOSSIBLE);
	assert_int_equal(select_w(f, &t, NAN, &r, &err), PB_EIMPOSSIBLE);
	add_override(&t, "fc9", 0.5);
	assert_int_equal(select_w(f, &t, 0.5, &r, &err), PB_ENOTFOUND);
	assert_non_null(strstr(err.msg, "no layer 'fc9'"));
	t = target(PB_SCOPE_LAYER);
	add_override(&t, "relu1", 0.5);
	assert_int_equal(select_w(f, &t, 0.5, &r, &err), PB_EINVAL);
	assert_non_null(strstr(err.msg, "'relu1' has no weights"));
	t = target(PB_SCOPE_LAYER);
	t.kind = PB_TARGET_MACS;
	assert_int_equal(select_w(f, &t, 0.5, &r, &err), PB_EINVAL);
	assert_non_null(strstr(err.msg, "sparsity"));
	t = target(PB_SCOPE_LAYER);
	f->s[1][7] = NAN;
	assert_int_equal(select_w(f, &t, 0.5, &r, &err), PB_EINVAL);
	assert_non_null(strstr(err.msg, "fc.weight[7] is NaN"));
	assert_null(pbi_mask_flat(f->m));
}

static void test_ties_by_index(void **state)
{
	fx *f = *state;
	pb_target t = target(PB_SCOPE_LAYER);
	pb_error err = { 0 };
	double r;

	/* All equal: the lowest positions go first, within a tensor and, in
	 * global scope, across tensors in their order. */
	for (int k = 0; k < 2; k++)
		for (size_t i = 0; i < f->p[k]->n; i++)
			f->s[k][i] = 1.0f;
	assert_int_equal(select_w(f, &t, 0.25, &r, &err), 0);
	expect_masked(f, 0, 0, 9, -1);
	expect_masked(f, 1, 0, 48, -1);

	teardown(state);
	setup(state);
	f = *state;
	t = target(PB_SCOPE_GLOBAL);
	for (int k = 0; k < 2; k++)
		for (size_t i = 0; i < f->p[k]->n; i++)
			f->s[k][i] = 2.0f;
	/* Three tied 0.5s in fc after its one 0.25. */
	f->s[1][100] = f->s[1][20] = f->s[1][150] = 0.5f;
	f->s[1][3] = 0.25f;
	assert_int_equal(select_w(f, &t, 0.1, &r, &err), 0);
	/* round(22.8) = 23: fc 3, 20, 100, 150, then conv1 0..18. */
	expect_masked(f, 0, 0, 19, -1);
	{
		const float *mk = pbi_mask_get(f->m, f->p[1], 0);
		size_t c = 0;
		for (size_t i = 0; i < NF; i++)
			c += mk[i] == 0.0f;
		assert_int_equal(c, 4);
		assert_true(mk[3] == 0 && mk[20] == 0 && mk[100] == 0 &&
			    mk[150] == 0);
	}
}

static void test_existing_masks(void **state)
{
	fx *f = *state;
	pb_target t = target(PB_SCOPE_LAYER);
	pb_error err = { 0 };
	double r;
	float *mk = pbi_mask_get(f->m, f->p[1], 1);

	/* The highest-scored fc weight is already pruned: it counts, and
	 * the amount is a total, so 95 more go, not 96. */
	mk[191] = 0.0f;
	pbi_mask_apply(f->m);
	assert_true(f->p[1]->data[191] == 0.0f);
	assert_int_equal(select_w(f, &t, 0.5, &r, &err), 0);
	expect_masked(f, 1, 0, 95, 191);
	expect_masked(f, 0, 0, 18, -1);
	/* A lower amount later changes nothing. */
	assert_int_equal(select_w(f, &t, 0.3, &r, &err), 0);
	expect_masked(f, 1, 0, 95, 191);
	assert_true(fabs(r - 114.0 / 228.0) < 1e-12);
	/* A higher one adds to it; in global scope too. */
	t = target(PB_SCOPE_GLOBAL);
	assert_int_equal(select_w(f, &t, 0.6, &r, &err), 0);
	assert_true(fabs(r * 228 - round(0.6 * 228)) < 1e-9);
	expect_masked(f, 1, 0, 95 + 23, 191);
}

/* Magnitude pruning on real signed weights: exactly the smallest |w|. */
static void test_magnitude_random(void **state)
{
	pb_error err = { 0 };
	gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
	double amounts[] = { 0.1, 0.37, 0.5, 0.81 };

	(void)state;
	for (size_t a = 0; a < sizeof amounts / sizeof *amounts; a++) {
		for (int sc = 0; sc < 2; sc++) {
			pb_target t = target(sc ? PB_SCOPE_GLOBAL
						: PB_SCOPE_LAYER);
			double r, lo = INFINITY, hi = 0;
			pb_model *m;
			pb_param *p[2];
			float *s[2];
			size_t masked = 0;

			assert_int_equal(pb_model_parse(&m, net, "sel", &err), 0);
			gsl_rng_set(rng, 7 + a);
			pb_model_init_params(m, rng, &err);
			p[0] = pb_model_find_param(m, "conv1.weight");
			p[1] = pb_model_find_param(m, "fc.weight");
			for (int k = 0; k < 2; k++) {
				s[k] = malloc(p[k]->n * sizeof(float));
				for (size_t i = 0; i < p[k]->n; i++)
					s[k][i] = fabsf(p[k]->data[i]);
			}
			assert_int_equal(pbi_select_weights(m, &t, p, s, 2,
							    amounts[a], &r,
							    &err), 0);
			for (int k = 0; k < 2; k++) {
				const float *mk = pbi_mask_get(m, p[k], 0);
				size_t mk_n = 0;
				if (!sc)
					lo = INFINITY, hi = 0;
				for (size_t i = 0; i < p[k]->n; i++) {
					/* No mask: nothing pruned here. */
					if (mk && mk[i] == 0.0f) {
						assert_true(p[k]->data[i] == 0);
						hi = fmax(hi, s[k][i]);
						mk_n++;
					} else {
						lo = fmin(lo, s[k][i]);
					}
				}
				masked += mk_n;
				if (!sc) {
					/* Within one weight of the asked
					 * fraction, per tensor. */
					assert_true(fabs((double)mk_n -
							 amounts[a] *
							 (double)p[k]->n) <=
						    0.5 + 1e-9);
					assert_true(hi <= lo);
				}
				free(s[k]);
			}
			if (sc) {
				/* One threshold (no floor is hit here). */
				assert_true(hi <= lo);
				assert_true(fabs((double)masked -
						 amounts[a] * 228.0) <=
					    0.5 + 1e-9);
			}
			assert_true(fabs(r - (double)masked / 228.0) < 1e-12);
			pb_model_free(m);
		}
	}
	gsl_rng_free(rng);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_accepts),
		cmocka_unit_test(test_parse_rejects),
		cmocka_unit_test_setup_teardown(test_layer_scope, setup, teardown),
		cmocka_unit_test_setup_teardown(test_layer_override, setup, teardown),
		cmocka_unit_test_setup_teardown(test_global_scope, setup, teardown),
		cmocka_unit_test_setup_teardown(test_global_override, setup, teardown),
		cmocka_unit_test_setup_teardown(test_global_floor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_global_impossible, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_amounts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ties_by_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_existing_masks, setup, teardown),
		cmocka_unit_test(test_magnitude_random),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
