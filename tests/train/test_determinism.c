/* Reproducibility: the same seed and thread count give bitwise identical
 * weights after training steps; a different seed does not. */
#include "testutil.h"

#include <omp.h>

#include "prunebench/prunebench.h"

static const char net[] =
	"[model]\nname = det\ninput = 1x10x10\nclasses = 3\n"
	"[conv1]\ntype = conv\nout = 6\nkernel = 3\npad = 1\nbias = no\n"
	"[bn1]\ntype = bn\n[relu1]\ntype = relu\n"
	"[pool]\ntype = maxpool\nkernel = 2\n"
	"[flat]\ntype = flatten\n[drop]\ntype = dropout\np = 0.2\n"
	"[fc]\ntype = linear\nout = 3\n";

/* A residual block that downsamples: a stride-2 3x3 conv and a 1x1
 * stride-2 projection on the shortcut (the im2col and phase paths), as
 * ResNet-S's block 2. */
static const char res_net[] =
	"[model]\nname = detres\ninput = 1x10x10\nclasses = 3\n"
	"[stem]\ntype = conv\nout = 4\nkernel = 3\npad = 1\nbias = no\n"
	"[bn0]\ntype = bn\n[relu0]\ntype = relu\n"
	"[c1]\ntype = conv\nout = 8\nkernel = 3\nstride = 2\npad = 1\n"
	"bias = no\n[bn1]\ntype = bn\n[relu1]\ntype = relu\n"
	"[c2]\ntype = conv\nout = 8\nkernel = 3\npad = 1\nbias = no\n"
	"[bn2]\ntype = bn\n"
	"[sc]\ntype = conv\ninput = relu0\nout = 8\nkernel = 1\n"
	"stride = 2\nbias = no\n[scbn]\ntype = bn\n"
	"[add]\ntype = add\ninputs = bn2, scbn\n[relu2]\ntype = relu\n"
	"[gap]\ntype = avgpool\nglobal = yes\n[flat]\ntype = flatten\n"
	"[fc]\ntype = linear\nout = 3\n";

/* A wide fully connected layer (1600 -> 64 at batch 32): large enough
 * that OpenBLAS, called outside a parallel region, would share it out
 * among its own threads and sum in another order. */
static const char wide_net[] =
	"[model]\nname = detwide\ninput = 1x10x10\nclasses = 3\n"
	"[conv1]\ntype = conv\nout = 16\nkernel = 3\npad = 1\nbias = no\n"
	"[bn1]\ntype = bn\n[relu1]\ntype = relu\n"
	"[flat]\ntype = flatten\n"
	"[fc1]\ntype = linear\nout = 64\n[relu2]\ntype = relu\n"
	"[fc]\ntype = linear\nout = 3\n";

/* Raises the thread count to 2 after the given step: a training whose
 * threads change between steps (a sweep handing a finished worker's
 * core to a cell still running) must end in the bits it ends in on one
 * thread, so no kernel may keep state between steps that depends on the
 * thread count (per-thread workspace slices move when it changes). */
struct raise_at {
	long step;
};

static int raise_threads(void *user, pb_model *m, long step)
{
	const struct raise_at *r = user;

	(void)m;
	if (step == r->step)
		omp_set_num_threads(2);
	return 0;
}

/* Trains a fresh model for a few steps and returns all its state; with
 * raise, from one thread to two after raise->step. */
static float *train_net_raised(const char *text, unsigned long seed,
			       int threads, const struct raise_at *raise,
			       size_t *n)
{
	pb_model *m = NULL;
	pb_error err = { 0 };
	pb_dataset d = { 0 };
	pb_recipe r;
	pb_train_opts opts = { 0 };
	pb_train_hooks hooks = { 0 };
	gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
	float *snap;
	size_t off = 0;

	omp_set_num_threads(threads);
	assert_int_equal(pb_dataset_synthetic(&d, 256, 1, 10, 10, 3, 0.5f, 11,
					      &err), 0);
	assert_int_equal(pb_model_parse(&m, text, "det", &err), 0);
	gsl_rng_set(rng, seed);
	assert_int_equal(pb_model_init_params(m, rng, &err), 0);
	pb_recipe_default(&r);
	r.epochs = 2;
	r.batch = 32;
	r.aug.crop_pad = 1;
	r.aug.hflip = 1;
	opts.max_steps = 12;
	if (raise) {
		hooks.user = (void *)raise;
		hooks.after_step = raise_threads;
		opts.hooks = &hooks;
	}
	assert_int_equal(pb_train(m, &d, NULL, &r, rng, &opts, NULL, &err), 0);
	*n = 0;
	for (int i = 0; i < pb_model_n_params(m); i++)
		*n += pb_model_param(m, i)->n;
	snap = malloc(*n * sizeof *snap);
	for (int i = 0; i < pb_model_n_params(m); i++) {
		pb_param *p = pb_model_param(m, i);
		memcpy(snap + off, p->data, p->n * sizeof *snap);
		off += p->n;
	}
	gsl_rng_free(rng);
	pb_dataset_free(&d);
	pb_model_free(m);
	return snap;
}

static float *train_net(const char *text, unsigned long seed, int threads,
			size_t *n)
{
	return train_net_raised(text, seed, threads, NULL, n);
}

static float *train_snapshot(unsigned long seed, int threads, size_t *n)
{
	return train_net(net, seed, threads, n);
}

/* Two trainings of the same net and seed, the second on other threads
 * (or raised mid-way), end in the same bits. */
static void assert_same_training(const char *text, int threads_a,
				 int threads_b, const struct raise_at *raise_b)
{
	size_t n1, n2;
	float *a = train_net(text, 5, threads_a, &n1);
	float *b = train_net_raised(text, 5, threads_b, raise_b, &n2);

	assert_int_equal(n1, n2);
	assert_memory_equal(a, b, n1 * sizeof *a);
	free(a);
	free(b);
}

static void test_same_seed_one_thread(void **state)
{
	(void)state;
	assert_same_training(net, 1, 1, NULL);
}

static void test_same_seed_two_threads(void **state)
{
	(void)state;
	assert_same_training(net, 2, 2, NULL);
}

/* The bits do not depend on the thread count either: every kernel on
 * this net's path (direct conv, fused BN + ReLU, pooling, linear) gives
 * each output to one work item with a fixed order of sums. */
static void test_one_and_two_threads_same(void **state)
{
	(void)state;
	assert_same_training(net, 1, 2, NULL);
}

/* The residual net too: its stride-2 and 1x1 convolutions' weight
 * gradients are summed over fixed blocks of samples, not per thread. */
static void test_residual_one_and_two_threads_same(void **state)
{
	(void)state;
	assert_same_training(res_net, 1, 2, NULL);
}

/* And the wide fc layer: its products run on one OpenBLAS thread. */
static void test_wide_linear_one_and_two_threads_same(void **state)
{
	(void)state;
	assert_same_training(wide_net, 1, 2, NULL);
}

/* Threads raised mid-training: the same bits as one thread all along,
 * for each net (the wide fc one fails this on the engine before
 * PB_NUMERICS 4). */
static void test_threads_raised_mid_training_same(void **state)
{
	const char *nets[] = { net, res_net, wide_net };
	const struct raise_at at = { 4 };

	(void)state;
	for (size_t i = 0; i < sizeof nets / sizeof nets[0]; i++)
		assert_same_training(nets[i], 1, 1, &at);
}

static void test_other_seed_differs(void **state)
{
	size_t n1, n2;
	float *a = train_snapshot(5, 2, &n1);
	float *b = train_snapshot(6, 2, &n2);

	(void)state;
	assert_int_equal(n1, n2);
	assert_true(memcmp(a, b, n1 * sizeof *a) != 0);
	free(a);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_seed_one_thread),
		cmocka_unit_test(test_same_seed_two_threads),
		cmocka_unit_test(test_one_and_two_threads_same),
		cmocka_unit_test(test_residual_one_and_two_threads_same),
		cmocka_unit_test(test_wide_linear_one_and_two_threads_same),
		cmocka_unit_test(test_threads_raised_mid_training_same),
		cmocka_unit_test(test_other_seed_differs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
