/* Measurement (core/prune/measure.c): what a tiny model holds of each
 * quantity a target can name, counted by hand, and the fraction removed
 * between two models. */
#include "testutil.h"

#include "prunebench/prunebench.h"
#include "prune/prune_impl.h"

/* conv1 3x1x3x3 (27 weights), bn1 (3 gamma, 3 beta, 3 + 3 running
 * statistics), conv2 1x1 2x3 (6 weights, 2 biases), fc 3x32 (96 weights,
 * 3 biases) on 2 channels of 4x4 flattened:
 *   trainable parameters  27 + 6 + 6 + 2 + 96 + 3 = 140
 *   prunable weights      27 + 6 + 96 = 129
 *   MACs                  conv1 3*4*4*1*9 = 432, conv2 2*4*4*3 = 96,
 *                         fc 32*3 = 96: 624
 *   prunable channels     conv1's 3 and conv2's 2 (fc's are the logits): 5 */
static const char dense[] =
	"[model]\nname = tiny\ninput = 1x4x4\nclasses = 3\n"
	"[conv1]\ntype = conv\nout = 3\nkernel = 3\npad = 1\nbias = no\n"
	"[bn1]\ntype = bn\n[relu1]\ntype = relu\n"
	"[conv2]\ntype = conv\nout = 2\nkernel = 1\n[relu2]\ntype = relu\n"
	"[flat]\ntype = flatten\n[fc]\ntype = linear\nout = 3\n";

/* The same with conv1 cut to 2 channels and conv2 to 1:
 *   trainable parameters  18 + 2 + 2 + 2 + 1 + 48 + 3 = 76
 *   prunable weights      18 + 2 + 48 = 68
 *   MACs                  2*16*9 = 288, 1*16*2 = 32, 16*3 = 48: 368
 *   prunable channels     2 + 1 = 3 */
static const char pruned[] =
	"[model]\nname = tiny\ninput = 1x4x4\nclasses = 3\n"
	"[conv1]\ntype = conv\nout = 2\nkernel = 3\npad = 1\nbias = no\n"
	"[bn1]\ntype = bn\n[relu1]\ntype = relu\n"
	"[conv2]\ntype = conv\nout = 1\nkernel = 1\n[relu2]\ntype = relu\n"
	"[flat]\ntype = flatten\n[fc]\ntype = linear\nout = 3\n";

/* Every trainable value in [0.5, 1.5], so that the only zeros are the
 * ones a test sets (running statistics keep their 0 and 1). */
static pb_model *make_model(const char *text)
{
	pb_model *m = tu_parse_model(text, "tiny.ini");

	tu_init_params(m, 1);
	for (int i = 0; i < pb_model_n_params(m); i++) {
		pb_param *p = pb_model_param(m, i);
		if (p->trainable)
			tu_fill_uniform(p->data, p->n, 0.5f, 1.5f,
					10 + (unsigned long)i);
	}
	return m;
}

static void set(pb_model *m, const char *name, size_t i, float v)
{
	pb_param *p = pb_model_find_param(m, name);

	assert_non_null(p);
	assert_true(i < p->n);
	p->data[i] = v;
}

/* |got - want| <= 1e-12 in double (cmocka's assert_float_equal compares
 * in single precision). */
#define assert_near(got, want) \
	do { \
		double g_ = (got), w_ = (want); \
		if (!(fabs(g_ - w_) <= 1e-12)) \
			fail_msg("%s is %.17g, expected %.17g", #got, g_, w_); \
	} while (0)

static void measure(pb_model *m, pbi_measure *out)
{
	pb_error err = { 0 };

	if (pbi_measure_model(m, out, &err))
		fail_msg("%s", err.msg);
}

static void test_measure_model(void **state)
{
	pb_model *m = make_model(dense), *p = make_model(pruned);
	pbi_measure d, q;

	(void)state;
	measure(m, &d);
	assert_int_equal(d.params, 140);
	assert_int_equal(d.nonzero, 140);
	assert_int_equal(d.macs, 624);
	assert_int_equal(d.weights, 129);
	assert_int_equal(d.zeros, 0);
	assert_int_equal(d.channels, 5);

	/* 14 zero weights (one of them -0), a zero bias and a zero gamma:
	 * the weights' zeros count for sparsity, all of them for nonzero;
	 * running statistics count for neither. */
	set(m, "conv1.weight", 0, 0.0f);
	set(m, "conv1.weight", 1, 0.0f);
	set(m, "conv1.weight", 26, 0.0f);
	set(m, "conv2.weight", 5, 0.0f);
	for (size_t i = 0; i < 10; i++)
		set(m, "fc.weight", i, i == 9 ? -0.0f : 0.0f);
	set(m, "conv2.bias", 0, 0.0f);
	set(m, "bn1.weight", 1, 0.0f);
	measure(m, &d);
	assert_int_equal(d.params, 140);
	assert_int_equal(d.nonzero, 140 - 14 - 2);
	assert_int_equal(d.weights, 129);
	assert_int_equal(d.zeros, 14);
	assert_int_equal(d.macs, 624);
	assert_int_equal(d.channels, 5);

	measure(p, &q);
	assert_int_equal(q.params, 76);
	assert_int_equal(q.nonzero, 76);
	assert_int_equal(q.macs, 368);
	assert_int_equal(q.weights, 68);
	assert_int_equal(q.zeros, 0);
	assert_int_equal(q.channels, 3);
	pb_model_free(m);
	pb_model_free(p);
}

/* Crafted measures: removed fractions relative to before, sparsity of
 * after alone, and 0 where before (or after's weights) is empty. */
static void test_measure_reached(void **state)
{
	const pbi_measure before = { .params = 200, .nonzero = 200,
				     .macs = 1000, .weights = 160,
				     .zeros = 0, .channels = 10 };
	const pbi_measure after = { .params = 150, .nonzero = 120,
				    .macs = 250, .weights = 80, .zeros = 20,
				    .channels = 4 };
	const pbi_measure empty = { 0 };

	(void)state;
	assert_true(pbi_measure_reached(PB_TARGET_PARAMS, &before, &after) ==
		    0.25);
	assert_true(pbi_measure_reached(PB_TARGET_MACS, &before, &after) ==
		    0.75);
	assert_near(pbi_measure_reached(PB_TARGET_CHANNELS, &before, &after),
		    0.6);
	assert_true(pbi_measure_reached(PB_TARGET_SPARSITY, &before,
					&after) == 0.25);
	/* Sparsity does not look at before at all. */
	assert_true(pbi_measure_reached(PB_TARGET_SPARSITY, &empty, &after) ==
		    0.25);
	/* Nothing removed; and more than before is negative. */
	assert_true(pbi_measure_reached(PB_TARGET_MACS, &before, &before) ==
		    0.0);
	assert_true(pbi_measure_reached(PB_TARGET_PARAMS, &after, &before) <
		    0.0);
	for (int k = PB_TARGET_SPARSITY; k <= PB_TARGET_MACS; k++)
		assert_true(pbi_measure_reached((pb_target_kind)k, &empty,
						&empty) == 0.0);
}

static double between(pb_model *a, pb_model *b, pb_target_kind kind)
{
	pb_error err = { 0 };
	double r = -1.0;

	if (pbi_reached_between(a, b, kind, &r, &err))
		fail_msg("%s", err.msg);
	return r;
}

static void test_reached_between(void **state)
{
	pb_model *m = make_model(dense), *p = make_model(pruned);

	(void)state;
	set(p, "conv1.weight", 3, 0.0f);
	set(p, "fc.weight", 47, 0.0f);
	/* 3 of 5 channels kept, 76 of 140 parameters, 368 of 624 MACs;
	 * 2 of the pruned model's 68 weights are zero. */
	assert_near(between(m, p, PB_TARGET_CHANNELS), 0.4);
	assert_near(between(m, p, PB_TARGET_PARAMS), 64.0 / 140.0);
	assert_near(between(m, p, PB_TARGET_MACS), 256.0 / 624.0);
	assert_near(between(m, p, PB_TARGET_SPARSITY), 2.0 / 68.0);
	/* A model against itself: nothing removed, its own sparsity. */
	assert_true(between(m, m, PB_TARGET_CHANNELS) == 0.0);
	assert_true(between(m, m, PB_TARGET_PARAMS) == 0.0);
	assert_true(between(m, m, PB_TARGET_MACS) == 0.0);
	assert_true(between(p, p, PB_TARGET_SPARSITY) == 2.0 / 68.0);
	pb_model_free(m);
	pb_model_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_measure_model),
		cmocka_unit_test(test_measure_reached),
		cmocka_unit_test(test_reached_between),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
