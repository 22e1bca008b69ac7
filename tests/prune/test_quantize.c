/* Int8 after pruning on a trained tiny model and synthetic data:
 * calibration covers what the validation split produces, the int8
 * evaluation really rounds (a coarse code ruins the accuracy, the
 * calibrated one keeps it), an int8 checkpoint loads back and evaluates
 * to the very same accuracy, and the five sizes are the files' lengths,
 * checked by hand. */
#include "testutil.h"

#include <zlib.h>

#include "experiment/tiny.h"

#include "nn/mask.h"
#include "prunebench/checkpoint.h"
#include "prunebench/metrics.h"
#include "prunebench/quantize.h"

static pb_splits sp;
static pb_model *trained;

static int setup(void **state)
{
	pb_data_spec spec;
	pb_error err = { 0 };
	pb_recipe r;
	gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
	pb_train_opts o = { 0 };

	(void)state;
	if (pb_data_spec_parse(&spec, "synthetic:600:2", &err) ||
	    pb_splits_load(&sp, &spec, 120, 42, &err)) {
		fprintf(stderr, "%s\n", err.msg);
		return -1;
	}
	trained = tu_parse_model(tiny_model, "tiny.ini");
	tu_init_params(trained, 9);
	pb_recipe_default(&r);
	r.epochs = 6;
	r.batch = 40;
	r.warmup_epochs = 0;
	gsl_rng_set(rng, 9);
	if (pb_train(trained, &sp.train, &sp.val, &r, rng, &o, NULL, &err)) {
		fprintf(stderr, "%s\n", err.msg);
		return -1;
	}
	gsl_rng_free(rng);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pb_model_free(trained);
	pb_splits_free(&sp);
	return 0;
}

static pb_model *copy(void)
{
	pb_model *m;
	pb_error err = { 0 };

	assert_int_equal(pb_model_clone(&m, trained, &err), 0);
	return m;
}

static double acc_of(pb_model *m, const pb_quant *q, const pb_dataset *d)
{
	pb_error err = { 0 };
	double acc, loss;

	if (pb_quant_evaluate(m, q, d, 50, &acc, &loss, &err))
		fail_msg("%s", err.msg);
	return acc;
}

static void test_calibrate_and_evaluate(void **state)
{
	pb_model *m = copy();
	pb_quant *q = NULL;
	pb_error err = { 0 };
	double f, i8;

	(void)state;
	f = acc_of(m, NULL, &sp.test);
	if (!(f > 0.5))
		fail_msg("the trained model's top-1 is only %g", f);
	assert_int_equal(pb_quantize_model(m, 1, &sp.val, 50, &q, &err), 0);
	assert_true(q->activations && q->input.on);
	/* The normalised input has both signs; every rounded activation
	 * after a ReLU and pool starts at 0. */
	assert_true(q->input.lo < 0.0f && q->input.hi > 0.0f);
	for (int l = 0; l < q->n_layers; l++)
		if (q->acts[l].on) {
			assert_true(q->acts[l].lo == 0.0f);
			assert_true(q->acts[l].hi > 0.0f);
			assert_int_equal(q->acts[l].zero, 0);
		}
	i8 = acc_of(m, q, &sp.test);
	assert_true(fabs(i8 - f) <= 0.02);
	/* A code far too coarse for the input: everything saturates, and
	 * the accuracy shows that the rounding is really applied. */
	pb_act_quant_set(&q->input, -1e-3f, 1e-3f);
	assert_true(acc_of(m, q, &sp.test) < f - 0.2);
	pb_quant_free(q);
	pb_model_free(m);
}

/* Weights only: activations stay float, so the int8 accuracy is the
 * plain evaluation of the quantized weights. */
static void test_weights_only(void **state)
{
	pb_model *m = copy();
	pb_quant *q = NULL;
	pb_error err = { 0 };
	double a, b, loss;

	(void)state;
	assert_int_equal(pb_quantize_model(m, 0, NULL, 50, &q, &err), 0);
	assert_false(q->activations);
	a = acc_of(m, q, &sp.test);
	assert_int_equal(pb_evaluate(m, &sp.test, 50, &b, &loss, &err), 0);
	assert_true(a == b);
	pb_quant_free(q);
	pb_model_free(m);
	/* Activations need their calibration data. */
	m = copy();
	assert_int_equal(pb_quantize_model(m, 1, NULL, 50, &q, &err),
			 PB_EINVAL);
	assert_null(q);
	pb_model_free(m);
}

/* The int8 checkpoint evaluates, loaded back into a fresh model, to
 * exactly the accuracy measured before saving. */
static void test_file_evaluates_the_same(void **state)
{
	pb_model *m = copy(), *b = tu_parse_model(tiny_model, "tiny.ini");
	pb_quant *q = NULL, *qb = NULL;
	pb_checkpoint_opts o = { .sparse = 1 };
	pb_error err = { 0 };
	char *dir = tu_temp_dir(), path[600];
	pb_param *w = pb_model_find_param(m, "conv2.weight");
	float *mk = pbi_mask_get(m, w, 1);

	(void)state;
	/* Pruned first: 70% of conv2. */
	for (size_t i = 0; i < w->n; i++)
		mk[i] = i % 10 < 7 ? 0.0f : 1.0f;
	pbi_mask_apply(m);
	snprintf(path, sizeof path, "%s/m.int8.ckpt", dir);
	assert_int_equal(pb_quantize_model(m, 1, &sp.val, 50, &q, &err), 0);
	o.quant = q;
	if (pb_checkpoint_save_opts(m, path, &o, &err) ||
	    pb_checkpoint_load_quant(b, path, &qb, &err))
		fail_msg("%s", err.msg);
	assert_true(acc_of(m, q, &sp.test) == acc_of(b, qb, &sp.test));
	assert_true(acc_of(m, q, &sp.val) == acc_of(b, qb, &sp.val));
	/* The mask came back, and the pruned weights are still zero. */
	assert_memory_equal(pbi_mask_get(b, pb_model_find_param(b,
				"conv2.weight"), 0), mk, w->n * sizeof(float));
	pb_quant_free(q);
	pb_quant_free(qb);
	pb_model_free(m);
	pb_model_free(b);
	tu_rm_tree(dir);
}

/* The sizes of a small model by hand (checkpoint.h's layout). */
static void test_sizes_by_hand(void **state)
{
	static const char net[] =
		"[model]\nname = s\ninput = 1x2x2\nclasses = 2\n"
		"[flat]\ntype = flatten\n"
		"[fc]\ntype = linear\nout = 2\nbias = no\n";
	pb_model *m = tu_parse_model(net, "s.ini");
	pb_param *w = pb_model_find_param(m, "fc.weight");
	pb_file_sizes z;
	pb_quant *q = NULL;
	pb_error err = { 0 };
	unsigned char *buf;
	size_t len;
	pb_checkpoint_opts o = { 0 };

	(void)state;
	/* fc.weight 2x4: row 0 = 0.5 0 0 -1, row 1 all zero. */
	memset(w->data, 0, 8 * sizeof(float));
	w->data[0] = 0.5f;
	w->data[3] = -1.0f;
	assert_int_equal(pb_file_sizes_of(m, NULL, &z, &err), 0);
	/* Header: 8 magic + 4 version + 4 count + 4 + "s" + 4 tag = 25;
	 * record: 4 + "fc.weight" 9 + 4 kind + 4 ndim + 8 dims = 29; CRC 4. */
	assert_int_equal(z.f32, 25 + 29 + 32 + 4);
	/* Sparse: bitmap 1 + 2 values = 9 (CSR: 12 + 12 = 24). */
	assert_int_equal(z.sparse, 25 + 29 + 9 + 4);
	/* int8: 2 scales + 8 codes; sparse int8: 8 + bitmap 1 + 2 codes. */
	assert_int_equal(z.int8, 25 + 29 + 8 + 8 + 4);
	assert_int_equal(pb_checkpoint_encode(m, &o, &buf, &len, &err), 0);
	assert_int_equal(len, z.f32);
	free(buf);
	/* zlib sizes are zlib's compress2 of those very files. */
	assert_true(z.f32_zlib > 0 && z.int8_zlib > 0);
	/* Quantized in place with activations: each range adds a record.
	 * fc reads the model input through flatten, so the one range is
	 * "input.act": 4 + 9 + 4 kind + 4 ndim + 4 dim + 8 values = 33. */
	assert_int_equal(pb_quant_new(&q, m, &err), 0);
	assert_int_equal(pb_quant_weights(m, q, &err), 0);
	pb_quant_mark_activations(m, q);
	pb_act_quant_set(&q->input, -1.0f, 1.0f);
	assert_int_equal(pb_file_sizes_of(m, q, &z, &err), 0);
	assert_int_equal(z.int8, 25 + 29 + 16 + 4 + 33);
	o.quant = q;
	o.sparse = 1;
	assert_int_equal(pb_checkpoint_encode(m, &o, &buf, &len, &err), 0);
	assert_int_equal(len, 25 + 29 + (8 + 1 + 2) + 4 + 33);
	{
		uLongf zl = compressBound((uLong)len);
		unsigned char *zb = malloc(zl);

		assert_int_equal(compress2(zb, &zl, buf, (uLong)len, 9), Z_OK);
		assert_int_equal(zl, z.int8_zlib);
		free(zb);
	}
	free(buf);
	pb_quant_free(q);
	pb_model_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_calibrate_and_evaluate),
		cmocka_unit_test(test_weights_only),
		cmocka_unit_test(test_file_evaluates_the_same),
		cmocka_unit_test(test_sizes_by_hand),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
