/* Training engine: recipes, schedules, SGD semantics, divergence, and a
 * small synthetic problem that training must solve. */
#include "testutil.h"

#include <omp.h>

#include "prunebench/prunebench.h"
#include "nn/model_impl.h"

static const char small_cnn[] =
	"[model]\nname = small\ninput = 1x12x12\nclasses = 4\n"
	"[conv1]\ntype = conv\nout = 8\nkernel = 3\npad = 1\nbias = no\n"
	"[bn1]\ntype = bn\n[relu1]\ntype = relu\n"
	"[pool1]\ntype = maxpool\nkernel = 2\n"
	"[conv2]\ntype = conv\nout = 8\nkernel = 3\npad = 1\nbias = no\n"
	"[bn2]\ntype = bn\n[relu2]\ntype = relu\n"
	"[pool2]\ntype = maxpool\nkernel = 2\n"
	"[flat]\ntype = flatten\n[fc]\ntype = linear\nout = 4\n";

static void test_recipe_parse(void **state)
{
	pb_recipe r;
	pb_error err = { 0 };

	(void)state;
	pb_recipe_default(&r);
	assert_int_equal(pb_recipe_set(&r, "lr", "0.2", &err), 0);
	assert_true(fabs(r.lr - 0.2) < 1e-12);
	assert_int_equal(pb_recipe_set(&r, "schedule", "step", &err), 0);
	assert_int_equal(r.schedule, PB_SCHED_STEP);
	assert_int_equal(pb_recipe_set(&r, "milestones", "3, 6", &err), 0);
	assert_int_equal(r.n_milestones, 2);
	assert_int_equal(r.milestones[1], 6);
	assert_int_equal(pb_recipe_set(&r, "nesterov", "no", &err), 0);
	assert_int_equal(r.nesterov, 0);

	assert_int_equal(pb_recipe_set(&r, "lr", "fast", &err), PB_EPARSE);
	assert_non_null(strstr(err.msg, "lr = 'fast'"));
	assert_int_equal(pb_recipe_set(&r, "batch", "1", &err), PB_EPARSE);
	assert_int_equal(pb_recipe_set(&r, "milestones", "6,3", &err),
			 PB_EPARSE);
	assert_int_equal(pb_recipe_set(&r, "schedule", "linear", &err),
			 PB_EPARSE);
	assert_non_null(strstr(err.msg, "cosine"));
	assert_int_equal(pb_recipe_set(&r, "learning_rate", "1", &err),
			 PB_ENOTFOUND);
	assert_non_null(strstr(err.msg, "unknown recipe key 'learning_rate'"));
}

static void test_schedules(void **state)
{
	pb_recipe r;

	(void)state;
	pb_recipe_default(&r);
	r.lr = 0.1;
	r.epochs = 10;
	r.warmup_epochs = 0;
	r.schedule = PB_SCHED_CONSTANT;
	assert_true(fabs(pb_recipe_lr(&r, 7.5) - 0.1) < 1e-12);
	r.schedule = PB_SCHED_COSINE;
	assert_true(fabs(pb_recipe_lr(&r, 0) - 0.1) < 1e-12);
	assert_true(fabs(pb_recipe_lr(&r, 5) - 0.05) < 1e-12);
	assert_true(fabs(pb_recipe_lr(&r, 10)) < 1e-12);
	r.min_lr = 0.01;
	assert_true(fabs(pb_recipe_lr(&r, 5) - 0.055) < 1e-12);
	r.schedule = PB_SCHED_STEP;
	r.gamma = 0.1;
	r.n_milestones = 2;
	r.milestones[0] = 3;
	r.milestones[1] = 6;
	assert_true(fabs(pb_recipe_lr(&r, 2.9) - 0.1) < 1e-12);
	assert_true(fabs(pb_recipe_lr(&r, 3.0) - 0.01) < 1e-12);
	assert_true(fabs(pb_recipe_lr(&r, 6.5) - 0.001) < 1e-12);
	/* Warm-up ramps linearly and reaches the schedule at its end. */
	r.schedule = PB_SCHED_CONSTANT;
	r.warmup_epochs = 2;
	assert_true(pb_recipe_lr(&r, 0) < 0.001);
	assert_true(fabs(pb_recipe_lr(&r, 1) - 0.1 * 1.001 / 2.001) < 1e-9);
	assert_true(fabs(pb_recipe_lr(&r, 2) - 0.1) < 1e-12);
}

/* One SGD step on a hand-set gradient, checked against PyTorch's update
 * rule written out by hand; BN parameters take no weight decay. */
static void test_sgd_semantics(void **state)
{
	pb_model *m = NULL;
	pb_error err = { 0 };
	pb_recipe r;
	pb_sgd *sgd = NULL;
	pb_param *w, *g;
	float w0, g0;

	(void)state;
	assert_int_equal(pb_model_parse(&m, small_cnn, "small", &err), 0);
	pb_recipe_default(&r);
	r.momentum = 0.9;
	r.weight_decay = 0.01;
	r.nesterov = 0;
	assert_int_equal(pb_sgd_create(&sgd, m, &r, &err), 0);
	w = pb_model_find_param(m, "conv1.weight");
	g = pb_model_find_param(m, "bn1.weight");
	assert_non_null(w);
	assert_non_null(g);
	w->data[0] = 1.0f;
	g->data[0] = 1.0f;
	pb_model_zero_grad(m);
	w->grad[0] = 0.5f;
	g->grad[0] = 0.5f;
	pb_sgd_step(sgd, m, 0.1);
	/* buf = 0.5 + 0.01*1 = 0.51; w = 1 - 0.1*0.51 */
	assert_true(fabs(w->data[0] - (1.0f - 0.1f * 0.51f)) < 1e-7);
	/* no decay on BN: buf = 0.5 */
	assert_true(fabs(g->data[0] - (1.0f - 0.05f)) < 1e-7);
	w0 = w->data[0];
	g0 = 0.5f + 0.01f * w0;
	pb_sgd_step(sgd, m, 0.1);
	/* buf = 0.9*0.51 + g0 */
	assert_true(fabs(w->data[0] - (w0 - 0.1f * (0.9f * 0.51f + g0))) <
		    1e-6);
	pb_sgd_free(sgd);

	/* Nesterov: step = g + momentum * buf. */
	r.nesterov = 1;
	r.weight_decay = 0;
	assert_int_equal(pb_sgd_create(&sgd, m, &r, &err), 0);
	w->data[0] = 1.0f;
	pb_model_zero_grad(m);
	w->grad[0] = 0.5f;
	pb_sgd_step(sgd, m, 0.1);
	assert_true(fabs(w->data[0] - (1.0f - 0.1f * (0.5f + 0.9f * 0.5f))) <
		    1e-7);
	pb_sgd_free(sgd);
	pb_model_free(m);
}

static void make_data(pb_dataset *train, pb_dataset *val, int n)
{
	pb_error err = { 0 };
	pb_dataset full = { 0 };
	float mean[PB_MAX_CHANNELS], std[PB_MAX_CHANNELS];

	assert_int_equal(pb_dataset_synthetic(&full, n, 1, 12, 12, 4, 0.3f, 7,
					      &err), 0);
	pb_dataset_channel_stats(&full, mean, std);
	pb_dataset_normalize(&full, mean, std);
	assert_int_equal(pb_dataset_split(&full, n / 5, 3, train, val, &err),
			 0);
	pb_dataset_free(&full);
}

/* A small CNN must learn the synthetic classes to high validation
 * accuracy: this fails if any layer's gradient or the optimizer is off. */
static void test_learns_synthetic(void **state)
{
	pb_model *m = NULL;
	pb_error err = { 0 };
	pb_dataset train, val;
	pb_recipe r;
	pb_epoch_stats st;
	gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
	double acc0, acc;
	char *dir = tu_temp_dir(), csv[512];
	FILE *f;
	int lines = 0, ch;
	pb_train_opts opts = { 0 };

	(void)state;
	make_data(&train, &val, 1000);
	assert_int_equal(pb_model_parse(&m, small_cnn, "small", &err), 0);
	gsl_rng_set(rng, 1);
	assert_int_equal(pb_model_init_params(m, rng, &err), 0);
	assert_int_equal(pb_evaluate(m, &val, 64, &acc0, NULL, &err), 0);
	pb_recipe_default(&r);
	r.epochs = 6;
	r.batch = 32;
	r.lr = 0.05;
	r.aug.crop_pad = 0;
	snprintf(csv, sizeof csv, "%s/curve.csv", dir);
	opts.csv_path = csv;
	assert_int_equal(pb_train(m, &train, &val, &r, rng, &opts, &st, &err),
			 0);
	assert_int_equal(pb_evaluate(m, &val, 64, &acc, NULL, &err), 0);
	assert_true(acc0 < 0.6);
	assert_true(acc > 0.95);
	assert_int_equal(st.epoch, 6);
	assert_true(fabs(st.val_acc - acc) < 1e-9);
	/* header + one line per epoch */
	f = fopen(csv, "r");
	assert_non_null(f);
	while ((ch = fgetc(f)) != EOF)
		lines += ch == '\n';
	fclose(f);
	assert_int_equal(lines, 7);
	remove(csv);
	rmdir(dir);
	free(dir);
	gsl_rng_free(rng);
	pb_dataset_free(&train);
	pb_dataset_free(&val);
	pb_model_free(m);
}

/* pb_evaluate runs the lean forward (outputs inside fused groups not
 * stored): its accuracy and loss must be those of the plain eval forward
 * bit for bit, on a model with both fusions (conv -> BN -> ReLU and a
 * residual add -> ReLU), and the model's own setting is left as it was. */
static const char res_cnn[] =
	"[model]\nname = res\ninput = 1x12x12\nclasses = 4\n"
	"[conv1]\ntype = conv\nout = 16\nkernel = 3\npad = 1\nbias = no\n"
	"[bn1]\ntype = bn\n[relu1]\ntype = relu\n"
	"[conv2]\ntype = conv\nout = 16\nkernel = 3\npad = 1\nbias = no\n"
	"[bn2]\ntype = bn\n[relu2]\ntype = relu\n"
	"[conv3]\ntype = conv\nout = 16\nkernel = 3\npad = 1\nbias = no\n"
	"[bn3]\ntype = bn\n"
	"[add]\ntype = add\ninputs = bn3, relu1\n[relu3]\ntype = relu\n"
	"[pool]\ntype = avgpool\nglobal = yes\n"
	"[flat]\ntype = flatten\n[fc]\ntype = linear\nout = 4\n";

static void test_evaluate_lean_same_bits(void **state)
{
	const int batch = 48, K = 4;
	pb_model *m = NULL;
	pb_error err = { 0 };
	pb_dataset train, val;
	gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
	double acc, loss, loss_sum = 0.0;
	float probs[48 * 4];
	long hits = 0;

	(void)state;
	make_data(&train, &val, 300);
	assert_int_equal(pb_model_parse(&m, res_cnn, "res", &err), 0);
	gsl_rng_set(rng, 3);
	assert_int_equal(pb_model_init_params(m, rng, &err), 0);
	for (int start = 0; start < val.n; start += batch) {
		int B = val.n - start < batch ? val.n - start : batch;
		const float *logits;
		int correct = 0;

		assert_int_equal(pb_model_forward(m, val.x + (size_t)start *
						  val.c * val.h * val.w, B, 0,
						  NULL, &logits, &err), 0);
		loss_sum += B * pb_softmax_xent_forward(probs, logits,
							 val.y + start, B, K,
							 &correct);
		hits += correct;
	}
	assert_int_equal(pb_evaluate(m, &val, batch, &acc, &loss, &err), 0);
	assert_true(acc == (double)hits / val.n);
	assert_true(loss == loss_sum / val.n);
	/* Calibration reads every layer's output after an eval forward:
	 * the model must not be left lean, nor made plain when it was lean. */
	assert_int_equal(m->lean, 0);
	pbi_model_set_lean(m, 1);
	assert_int_equal(pb_evaluate(m, &val, batch, &acc, &loss, &err), 0);
	assert_int_equal(m->lean, 1);
	gsl_rng_free(rng);
	pb_dataset_free(&train);
	pb_dataset_free(&val);
	pb_model_free(m);
}

static void test_divergence_reported(void **state)
{
	pb_model *m = NULL;
	pb_error err = { 0 };
	pb_dataset train, val;
	pb_recipe r;
	gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);

	(void)state;
	make_data(&train, &val, 200);
	assert_int_equal(pb_model_parse(&m, small_cnn, "small", &err), 0);
	gsl_rng_set(rng, 1);
	assert_int_equal(pb_model_init_params(m, rng, &err), 0);
	pb_recipe_default(&r);
	r.epochs = 3;
	r.batch = 16;
	r.lr = 1e6;
	r.warmup_epochs = 0;
	r.aug.crop_pad = 0;
	assert_int_equal(pb_train(m, &train, &val, &r, rng, NULL, NULL, &err),
			 PB_EDIVERGED);
	assert_non_null(strstr(err.msg, "diverged"));
	gsl_rng_free(rng);
	pb_dataset_free(&train);
	pb_dataset_free(&val);
	pb_model_free(m);
}

static void test_shape_mismatch(void **state)
{
	pb_model *m = NULL;
	pb_error err = { 0 };
	pb_dataset d = { 0 };
	pb_recipe r;
	gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);

	(void)state;
	assert_int_equal(pb_dataset_synthetic(&d, 64, 1, 28, 28, 4, 0.3f, 1,
					      &err), 0);
	assert_int_equal(pb_model_parse(&m, small_cnn, "small", &err), 0);
	pb_recipe_default(&r);
	assert_int_equal(pb_train(m, &d, NULL, &r, rng, NULL, NULL, &err),
			 PB_EMISMATCH);
	assert_non_null(strstr(err.msg, "1x28x28"));
	assert_non_null(strstr(err.msg, "1x12x12"));
	gsl_rng_free(rng);
	pb_dataset_free(&d);
	pb_model_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_recipe_parse),
		cmocka_unit_test(test_schedules),
		cmocka_unit_test(test_sgd_semantics),
		cmocka_unit_test(test_learns_synthetic),
		cmocka_unit_test(test_evaluate_lean_same_bits),
		cmocka_unit_test(test_divergence_reported),
		cmocka_unit_test(test_shape_mismatch),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
