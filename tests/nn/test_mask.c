/* Masks: storage and lookup, masked weights staying exactly zero through
 * SGD (weight, gradient and momentum) and through pb_train, clone, and a
 * checkpoint round trip. */
#include "nn/mask.h"
#include "testutil.h"

#include "prunebench/prunebench.h"
#include "nn/model_impl.h"
#include "prune/prune_impl.h"

static const char small_cnn[] =
	"[model]\nname = small\ninput = 1x12x12\nclasses = 4\n"
	"[conv1]\ntype = conv\nout = 8\nkernel = 3\npad = 1\nbias = no\n"
	"[bn1]\ntype = bn\n[relu1]\ntype = relu\n"
	"[pool1]\ntype = maxpool\nkernel = 2\n"
	"[conv2]\ntype = conv\nout = 8\nkernel = 3\npad = 1\nbias = yes\n"
	"[relu2]\ntype = relu\n"
	"[pool2]\ntype = maxpool\nkernel = 2\n"
	"[flat]\ntype = flatten\n[fc]\ntype = linear\nout = 4\n";

static pb_model *make_model(unsigned long seed)
{
	pb_model *m = NULL;
	pb_error err = { 0 };
	gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);

	assert_int_equal(pb_model_parse(&m, small_cnn, "small", &err), 0);
	gsl_rng_set(rng, seed);
	assert_int_equal(pb_model_init_params(m, rng, &err), 0);
	gsl_rng_free(rng);
	return m;
}

/* Masks every third weight of conv1, conv2 and fc (none of them zero
 * before, so a weight that is zero afterwards was zeroed by the mask). */
static void mask_thirds(pb_model *m)
{
	const char *names[] = { "conv1.weight", "conv2.weight", "fc.weight" };

	for (int k = 0; k < 3; k++) {
		pb_param *p = pb_model_find_param(m, names[k]);
		float *mk = pbi_mask_get(m, p, 1);
		assert_non_null(mk);
		for (size_t i = 0; i < p->n; i++) {
			assert_true(mk[i] == 1.0f);
			if (i % 3 == 0)
				mk[i] = 0.0f;
		}
	}
	pbi_mask_apply(m);
}

/* Every masked entry of the model is exactly +0 in weight and gradient. */
static int masked_are_zero(pb_model *m, int check_grad)
{
	const float *mk = pbi_mask_flat(m);

	for (int i = 0; i < pb_model_n_params(m); i++) {
		pb_param *p = pb_model_param(m, i);
		const float *pm = pbi_mask_get(m, p, 0);
		if (!pm)
			continue;
		assert_ptr_equal(pm, mk + (p->data - m->data));
		for (size_t j = 0; j < p->n; j++) {
			if (pm[j] != 0.0f)
				continue;
			if (p->data[j] != 0.0f || signbit(p->data[j]))
				return 0;
			if (check_grad && p->grad[j] != 0.0f)
				return 0;
		}
	}
	return 1;
}

static void test_lookup(void **state)
{
	pb_model *m = make_model(1), *o = make_model(2);
	pb_param *w = pb_model_find_param(m, "conv1.weight");
	pb_param *mean = pb_model_find_param(m, "bn1.running_mean");
	float *mk;

	(void)state;
	assert_null(pbi_mask_flat(m));
	assert_null(pbi_mask_get(m, w, 0));
	/* Running statistics are not trained, so never masked; a tensor of
	 * another model is refused. */
	assert_null(pbi_mask_get(m, mean, 1));
	assert_null(pbi_mask_get(m, pb_model_find_param(o, "fc.weight"), 1));
	assert_null(pbi_mask_flat(m));
	mk = pbi_mask_get(m, w, 1);
	assert_non_null(mk);
	assert_non_null(pbi_mask_flat(m));
	assert_ptr_equal(pbi_mask_get(m, w, 0), mk);
	/* The flat mask is all ones outside the masked tensors. */
	for (size_t i = 0; i < pb_model_trainable_size(m); i++)
		assert_true(pbi_mask_flat(m)[i] == 1.0f);
	assert_null(pbi_mask_get(m, pb_model_find_param(m, "fc.weight"), 0));
	/* apply zeroes to +0, even a negative weight. */
	w->data[4] = -3.0f;
	w->grad[4] = 2.0f;
	mk[4] = 0.0f;
	pbi_mask_apply(m);
	assert_true(w->data[4] == 0.0f && !signbit(w->data[4]));
	assert_true(w->grad[4] == 0.0f);
	assert_true(w->data[5] != 0.0f);
	pb_model_free(m);
	pb_model_free(o);
}

/* SGD with momentum and weight decay: masked weights, their grads and
 * their momentum stay zero. The momentum is checked by what it would do:
 * after unmasking, a step with zero gradient moves a weight only through
 * its momentum buffer. */
static void test_sgd_masks_momentum(void **state)
{
	pb_model *m = make_model(3);
	pb_error err = { 0 };
	pb_recipe r;
	pb_sgd *s;
	pb_param *w;
	float *mk, *g = pb_model_trainable_grad(m);
	size_t n = pb_model_trainable_size(m);
	float before;

	(void)state;
	mask_thirds(m);
	w = pb_model_find_param(m, "conv2.weight");
	mk = pbi_mask_get(m, w, 0);
	before = w->data[1];
	pb_recipe_default(&r);
	r.momentum = 0.9;
	r.weight_decay = 0.01;
	r.nesterov = 0;
	assert_int_equal(pb_sgd_create(&s, m, &r, &err), 0);
	for (int step = 0; step < 4; step++) {
		for (size_t i = 0; i < n; i++)
			g[i] = 1.0f;
		pb_sgd_step(s, m, 0.1);
		assert_true(masked_are_zero(m, 1));
	}
	/* Unmasked weights did train. */
	assert_true(w->data[1] != before);
	for (size_t i = 0; i < w->n; i++)
		mk[i] = 1.0f;
	memset(g, 0, n * sizeof *g);
	pb_sgd_step(s, m, 0.1);
	for (size_t i = 0; i < w->n; i += 3)
		assert_true(w->data[i] == 0.0f);
	/* ... while an unmasked weight keeps moving on its momentum. */
	before = w->data[1];
	pb_sgd_step(s, m, 0.1);
	assert_true(w->data[1] != before);
	pb_sgd_free(s);
	pb_model_free(m);
}

static int check_step(void *user, pb_model *m, long step)
{
	long *steps = user;

	(void)step;
	(*steps)++;
	return masked_are_zero(m, 1) ? 0 : PB_EINVAL;
}

static void test_survives_training(void **state)
{
	pb_model *m = make_model(4);
	pb_error err = { 0 };
	pb_dataset train = { 0 };
	pb_recipe r;
	gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
	long steps = 0;
	pb_train_hooks hooks = { .user = &steps, .after_step = check_step };
	pb_train_opts opts = { .hooks = &hooks, .max_steps = 12 };
	pb_param *fc = pb_model_find_param(m, "fc.weight");
	float *copy = malloc(fc->n * sizeof *copy);
	size_t changed = 0;

	(void)state;
	assert_int_equal(pb_dataset_synthetic(&train, 128, 1, 12, 12, 4, 0.3f,
					      5, &err), 0);
	mask_thirds(m);
	memcpy(copy, fc->data, fc->n * sizeof *copy);
	pb_recipe_default(&r);
	r.epochs = 2;
	r.batch = 16;
	r.lr = 0.05;
	r.momentum = 0.9;
	r.weight_decay = 5e-4;
	r.val_size = 0;
	r.aug.crop_pad = 0;
	gsl_rng_set(rng, 9);
	assert_int_equal(pb_train(m, &train, NULL, &r, rng, &opts, NULL, &err),
			 0);
	assert_int_equal(steps, 12);
	assert_true(masked_are_zero(m, 1));
	for (size_t i = 0; i < fc->n; i++) {
		if (i % 3 == 0)
			assert_true(fc->data[i] == 0.0f);
		else
			changed += fc->data[i] != copy[i];
	}
	assert_true(changed > fc->n / 2);
	free(copy);
	pb_dataset_free(&train);
	gsl_rng_free(rng);
	pb_model_free(m);
}

static void test_clone(void **state)
{
	pb_model *m = make_model(5), *c;
	pb_error err = { 0 };
	pb_param *w, *cw;

	(void)state;
	mask_thirds(m);
	assert_int_equal(pb_model_clone(&c, m, &err), 0);
	w = pb_model_find_param(m, "conv1.weight");
	cw = pb_model_find_param(c, "conv1.weight");
	assert_non_null(pbi_mask_get(c, cw, 0));
	assert_ptr_not_equal(pbi_mask_get(c, cw, 0), pbi_mask_get(m, w, 0));
	assert_memory_equal(pbi_mask_flat(c), pbi_mask_flat(m),
			    pb_model_trainable_size(m) * sizeof(float));
	assert_null(pbi_mask_get(c, pb_model_find_param(c, "conv2.bias"), 0));
	/* Independent copies. */
	pbi_mask_get(c, cw, 0)[1] = 0.0f;
	assert_true(pbi_mask_get(m, w, 0)[1] == 1.0f);
	pb_model_free(c);
	pb_model_free(m);
}

static void test_checkpoint_round_trip(void **state)
{
	pb_model *m = make_model(6), *l = make_model(7);
	pb_error err = { 0 };
	char *dir = tu_temp_dir(), path[512], plain[512];

	(void)state;
	snprintf(path, sizeof path, "%s/masked.ckpt", dir);
	snprintf(plain, sizeof plain, "%s/plain.ckpt", dir);
	/* A checkpoint without masks first. */
	assert_int_equal(pb_checkpoint_save(m, plain, &err), 0);
	mask_thirds(m);
	/* A bias mask (a plugin may ask for one) that prunes nothing is
	 * still saved. */
	assert_non_null(pbi_mask_get(m, pb_model_find_param(m, "conv2.bias"),
				     1));
	assert_int_equal(pb_checkpoint_save(m, path, &err), 0);
	assert_int_equal(pb_checkpoint_load(l, path, &err), 0);
	assert_memory_equal(pb_model_trainable_data(l),
			    pb_model_trainable_data(m),
			    pb_model_trainable_size(m) * sizeof(float));
	assert_non_null(pbi_mask_flat(l));
	assert_memory_equal(pbi_mask_flat(l), pbi_mask_flat(m),
			    pb_model_trainable_size(m) * sizeof(float));
	for (int i = 0; i < pb_model_n_params(m); i++)
		assert_int_equal(pbi_mask_get(l, pb_model_param(l, i), 0) != NULL,
				 pbi_mask_get(m, pb_model_param(m, i), 0) != NULL);
	assert_true(masked_are_zero(l, 0));
	/* The old format still loads, and drops the masks it does not
	 * have. */
	assert_int_equal(pb_checkpoint_load(l, plain, &err), 0);
	assert_null(pbi_mask_flat(l));
	for (int i = 0; i < pb_model_n_params(l); i++)
		assert_null(pbi_mask_get(l, pb_model_param(l, i), 0));
	remove(path);
	remove(plain);
	rmdir(dir);
	free(dir);
	pb_model_free(l);
	pb_model_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_sgd_masks_momentum),
		cmocka_unit_test(test_survives_training),
		cmocka_unit_test(test_clone),
		cmocka_unit_test(test_checkpoint_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
