/* Sizes and shapes: parameter and MAC counts of VGG-S worked out by hand,
 * layer by layer, and the shape of every layer of VGG-S and ResNet-S. */
#include "testutil.h"

#include "prunebench/prunebench.h"

struct expect {
	const char *name;
	pb_layer_type type;
	int c, h, w;          /* output of one sample */
	size_t params;
	uint64_t macs;
};

/* VGG-S on 1x28x28. conv: params OC*C*K*K, MACs OC*OH*OW*C*K*K;
 * bn: 2*C; linear: IN*OUT + OUT, MACs IN*OUT. */
static const struct expect vgg_s[] = {
	{ "conv1", PB_LAYER_CONV, 16, 28, 28, 16 * 1 * 9,
	  16ull * 28 * 28 * 1 * 9 },
	{ "bn1", PB_LAYER_BN, 16, 28, 28, 2 * 16, 0 },
	{ "relu1", PB_LAYER_RELU, 16, 28, 28, 0, 0 },
	{ "conv2", PB_LAYER_CONV, 16, 28, 28, 16 * 16 * 9,
	  16ull * 28 * 28 * 16 * 9 },
	{ "bn2", PB_LAYER_BN, 16, 28, 28, 2 * 16, 0 },
	{ "relu2", PB_LAYER_RELU, 16, 28, 28, 0, 0 },
	{ "pool1", PB_LAYER_MAXPOOL, 16, 14, 14, 0, 0 },
	{ "conv3", PB_LAYER_CONV, 32, 14, 14, 32 * 16 * 9,
	  32ull * 14 * 14 * 16 * 9 },
	{ "bn3", PB_LAYER_BN, 32, 14, 14, 2 * 32, 0 },
	{ "relu3", PB_LAYER_RELU, 32, 14, 14, 0, 0 },
	{ "conv4", PB_LAYER_CONV, 32, 14, 14, 32 * 32 * 9,
	  32ull * 14 * 14 * 32 * 9 },
	{ "bn4", PB_LAYER_BN, 32, 14, 14, 2 * 32, 0 },
	{ "relu4", PB_LAYER_RELU, 32, 14, 14, 0, 0 },
	{ "pool2", PB_LAYER_MAXPOOL, 32, 7, 7, 0, 0 },
	{ "conv5", PB_LAYER_CONV, 64, 7, 7, 64 * 32 * 9,
	  64ull * 7 * 7 * 32 * 9 },
	{ "bn5", PB_LAYER_BN, 64, 7, 7, 2 * 64, 0 },
	{ "relu5", PB_LAYER_RELU, 64, 7, 7, 0, 0 },
	{ "conv6", PB_LAYER_CONV, 64, 7, 7, 64 * 64 * 9,
	  64ull * 7 * 7 * 64 * 9 },
	{ "bn6", PB_LAYER_BN, 64, 7, 7, 2 * 64, 0 },
	{ "relu6", PB_LAYER_RELU, 64, 7, 7, 0, 0 },
	{ "pool3", PB_LAYER_MAXPOOL, 64, 3, 3, 0, 0 },   /* floor(7/2) */
	{ "flatten", PB_LAYER_FLATTEN, 576, 1, 1, 0, 0 },
	{ "fc", PB_LAYER_LINEAR, 10, 1, 1, 576 * 10 + 10, 576ull * 10 },
};

/* ResNet-S: stem 16x28x28, block 1 at 16x28x28, block 2 down to
 * 32x14x14 with a projection shortcut, block 3 at 32x14x14. */
static const struct expect resnet_s[] = {
	{ "conv1", PB_LAYER_CONV, 16, 28, 28, 16 * 9, 16ull * 784 * 9 },
	{ "bn1", PB_LAYER_BN, 16, 28, 28, 32, 0 },
	{ "relu1", PB_LAYER_RELU, 16, 28, 28, 0, 0 },
	{ "b1_conv1", PB_LAYER_CONV, 16, 28, 28, 16 * 16 * 9,
	  16ull * 784 * 16 * 9 },
	{ "b1_bn1", PB_LAYER_BN, 16, 28, 28, 32, 0 },
	{ "b1_relu1", PB_LAYER_RELU, 16, 28, 28, 0, 0 },
	{ "b1_conv2", PB_LAYER_CONV, 16, 28, 28, 16 * 16 * 9,
	  16ull * 784 * 16 * 9 },
	{ "b1_bn2", PB_LAYER_BN, 16, 28, 28, 32, 0 },
	{ "b1_add", PB_LAYER_ADD, 16, 28, 28, 0, 0 },
	{ "b1_relu2", PB_LAYER_RELU, 16, 28, 28, 0, 0 },
	{ "b2_conv1", PB_LAYER_CONV, 32, 14, 14, 32 * 16 * 9,
	  32ull * 196 * 16 * 9 },
	{ "b2_bn1", PB_LAYER_BN, 32, 14, 14, 64, 0 },
	{ "b2_relu1", PB_LAYER_RELU, 32, 14, 14, 0, 0 },
	{ "b2_conv2", PB_LAYER_CONV, 32, 14, 14, 32 * 32 * 9,
	  32ull * 196 * 32 * 9 },
	{ "b2_bn2", PB_LAYER_BN, 32, 14, 14, 64, 0 },
	{ "b2_sc_conv", PB_LAYER_CONV, 32, 14, 14, 32 * 16,
	  32ull * 196 * 16 },
	{ "b2_sc_bn", PB_LAYER_BN, 32, 14, 14, 64, 0 },
	{ "b2_add", PB_LAYER_ADD, 32, 14, 14, 0, 0 },
	{ "b2_relu2", PB_LAYER_RELU, 32, 14, 14, 0, 0 },
	{ "b3_conv1", PB_LAYER_CONV, 32, 14, 14, 32 * 32 * 9,
	  32ull * 196 * 32 * 9 },
	{ "b3_bn1", PB_LAYER_BN, 32, 14, 14, 64, 0 },
	{ "b3_relu1", PB_LAYER_RELU, 32, 14, 14, 0, 0 },
	{ "b3_conv2", PB_LAYER_CONV, 32, 14, 14, 32 * 32 * 9,
	  32ull * 196 * 32 * 9 },
	{ "b3_bn2", PB_LAYER_BN, 32, 14, 14, 64, 0 },
	{ "b3_add", PB_LAYER_ADD, 32, 14, 14, 0, 0 },
	{ "b3_relu2", PB_LAYER_RELU, 32, 14, 14, 0, 0 },
	{ "avgpool", PB_LAYER_AVGPOOL, 32, 1, 1, 0, 0 },
	{ "flatten", PB_LAYER_FLATTEN, 32, 1, 1, 0, 0 },
	{ "fc", PB_LAYER_LINEAR, 10, 1, 1, 32 * 10 + 10, 32ull * 10 },
};

static void check_layers(const pb_model *m, const struct expect *e, int n,
			 size_t *params, uint64_t *macs)
{
	*params = 0;
	*macs = 0;
	assert_int_equal(pb_model_n_layers(m), n);
	for (int i = 0; i < n; i++) {
		const pb_layer_info *li = pb_model_layer(m, i);
		assert_string_equal(li->name, e[i].name);
		assert_int_equal(li->type, e[i].type);
		assert_int_equal(li->out_c, e[i].c);
		assert_int_equal(li->out_h, e[i].h);
		assert_int_equal(li->out_w, e[i].w);
		assert_int_equal(pb_model_layer_params(m, i), e[i].params);
		assert_int_equal(pb_model_layer_macs(m, i), e[i].macs);
		assert_int_equal(pb_model_find_layer(m, e[i].name), i);
		/* Each layer reads what the one it names produced. */
		if (li->inputs[0] >= 0) {
			const pb_layer_info *in =
				pb_model_layer(m, li->inputs[0]);
			assert_int_equal(li->in_c, in->out_c);
			assert_int_equal(li->in_h, in->out_h);
			assert_int_equal(li->in_w, in->out_w);
		}
		*params += e[i].params;
		*macs += e[i].macs;
	}
}

static void test_vgg_s(void **state)
{
	pb_model *m = tu_load_shipped_model("vgg-s.ini");
	size_t params;
	uint64_t macs;

	(void)state;
	check_layers(m, vgg_s, (int)(sizeof vgg_s / sizeof vgg_s[0]),
		     &params, &macs);
	/* The totals written out: conv weights 144 + 2304 + 4608 + 9216 +
	 * 18432 + 36864 = 71568, BN 2*(16+16+32+32+64+64) = 448, fc 5770. */
	assert_int_equal(params, 71568 + 448 + 5770);
	assert_int_equal(pb_model_count_params(m), 77786);
	/* MACs: 112896 + 1806336 + 903168 + 1806336 + 903168 + 1806336 +
	 * 5760 = 7344000. */
	assert_int_equal(macs, 7344000);
	assert_int_equal(pb_model_count_macs(m), 7344000);
	/* conv1 reads the model input. */
	assert_int_equal(pb_model_layer(m, 0)->inputs[0], -1);
	assert_int_equal(pb_model_layer(m, 0)->in_c, 1);
	assert_int_equal(pb_model_layer(m, 0)->pad, 1);
	assert_int_equal(pb_model_layer(m, 0)->has_bias, 0);
	assert_int_equal(pb_model_layer(m, 22)->has_bias, 1);
	assert_int_equal(pb_model_layer(m, 22)->in_c, 576);
	pb_model_free(m);
}

static void test_resnet_s(void **state)
{
	pb_model *m = tu_load_shipped_model("resnet-s.ini");
	size_t params;
	uint64_t macs;
	const pb_layer_info *add;

	(void)state;
	check_layers(m, resnet_s, (int)(sizeof resnet_s / sizeof resnet_s[0]),
		     &params, &macs);
	assert_int_equal(pb_model_count_params(m), params);
	assert_int_equal(pb_model_count_macs(m), macs);
	add = pb_model_layer(m, pb_model_find_layer(m, "b2_add"));
	assert_int_equal(add->n_inputs, 2);
	assert_int_equal(add->inputs[0], pb_model_find_layer(m, "b2_bn2"));
	assert_int_equal(add->inputs[1], pb_model_find_layer(m, "b2_sc_bn"));
	add = pb_model_layer(m, pb_model_find_layer(m, "b1_add"));
	assert_int_equal(add->inputs[1], pb_model_find_layer(m, "relu1"));
	assert_int_equal(pb_model_layer(m, pb_model_find_layer(m,
				"b2_sc_conv"))->inputs[0],
			 pb_model_find_layer(m, "b1_relu2"));
	assert_int_equal(pb_model_layer(m, pb_model_find_layer(m,
				"avgpool"))->global, 1);
	pb_model_free(m);
}

/* The CIFAR models against the published sizes (parameters; MACs of
 * one 3x32x32 image): ResNet-20 ~40.8M MACs, VGG-16 ~313M. */
static void test_cifar_totals(void **state)
{
	pb_model *m;

	(void)state;
	m = tu_load_shipped_model("resnet20-cifar.ini");
	assert_int_equal(pb_model_count_params(m), 272474);
	assert_int_equal(pb_model_count_macs(m), 40813184);
	pb_model_free(m);
	m = tu_load_shipped_model("resnet56-cifar.ini");
	assert_int_equal(pb_model_count_params(m), 855770);
	assert_int_equal(pb_model_count_macs(m), 125747840);
	pb_model_free(m);
	m = tu_load_shipped_model("vgg16-cifar.ini");
	assert_int_equal(pb_model_count_params(m), 14724042);
	assert_int_equal(pb_model_count_macs(m), 313201664);
	pb_model_free(m);
}

static void test_type_names(void **state)
{
	static const char *names[] = { "conv", "bn", "relu", "maxpool",
		"avgpool", "linear", "flatten", "dropout", "add" };

	(void)state;
	for (int t = PB_LAYER_CONV; t <= PB_LAYER_ADD; t++)
		assert_string_equal(pb_layer_type_name((pb_layer_type)t),
				    names[t]);
	assert_string_equal(pb_layer_type_name((pb_layer_type)99), "unknown");
}

/* Initialisation follows PyTorch: conv weights N(0, 2/(OC*K*K)), linear
 * U(+-1/sqrt(IN)), BN (1, 0), running stats (0, 1); the same seed gives
 * the same weights. */
static void test_init(void **state)
{
	pb_model *a = tu_load_shipped_model("vgg-s.ini");
	pb_model *b = tu_load_shipped_model("vgg-s.ini");
	gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
	pb_error err = { 0 };
	pb_param *p;
	double s2 = 0, bound = 1.0 / sqrt(576.0);

	(void)state;
	gsl_rng_set(r, 42);
	assert_int_equal(pb_model_init_params(a, r, &err), 0);
	gsl_rng_set(r, 42);
	assert_int_equal(pb_model_init_params(b, r, &err), 0);
	assert_memory_equal(pb_model_trainable_data(a),
			    pb_model_trainable_data(b),
			    pb_model_trainable_size(a) * sizeof(float));
	p = pb_model_find_param(a, "conv6.weight");
	for (size_t i = 0; i < p->n; i++)
		s2 += (double)p->data[i] * p->data[i];
	/* sd = sqrt(2/(64*9)); the sample of 36864 is within a few %. */
	assert_true(fabs(sqrt(s2 / (double)p->n) / sqrt(2.0 / 576.0) - 1.0) < 0.03);
	p = pb_model_find_param(a, "fc.weight");
	for (size_t i = 0; i < p->n; i++)
		assert_true(fabs(p->data[i]) <= bound);
	p = pb_model_find_param(a, "fc.bias");
	for (size_t i = 0; i < p->n; i++)
		assert_true(fabs(p->data[i]) <= bound);
	assert_true(pb_model_find_param(a, "bn3.weight")->data[5] == 1.0f);
	assert_true(pb_model_find_param(a, "bn3.bias")->data[5] == 0.0f);
	assert_true(pb_model_find_param(a, "bn3.running_var")->data[5] == 1.0f);
	assert_true(pb_model_find_param(a, "bn3.running_mean")->data[5] ==
		    0.0f);
	assert_int_equal(pb_model_init_params(a, NULL, &err), PB_EINVAL);
	gsl_rng_free(r);
	pb_model_free(a);
	pb_model_free(b);
}

/* init = torch_default: PyTorch's own defaults (kaiming_uniform with
 * a = sqrt(5)): every conv and linear weight and bias uniform within
 * +-1/sqrt(fan_in), so variance bound^2/3; BN as for kaiming_out. */
static void test_init_torch_default(void **state)
{
	pb_model *a = tu_load_shipped_model("vgg-s.ini");
	pb_model *k = tu_load_shipped_model("vgg-s.ini");
	gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
	pb_error err = { 0 };
	const char *names[] = { "conv1.weight", "conv6.weight", "fc.weight",
				"fc.bias" };

	(void)state;
	gsl_rng_set(r, 7);
	assert_int_equal(pb_model_init(a, r, PB_INIT_TORCH_DEFAULT, &err), 0);
	gsl_rng_set(r, 7);
	assert_int_equal(pb_model_init(k, r, PB_INIT_KAIMING_OUT, &err), 0);
	for (size_t j = 0; j < sizeof names / sizeof *names; j++) {
		const pb_param *p = pb_model_find_param(a, names[j]);
		const pb_param *w = p->kind == PB_PARAM_BIAS ?
			pb_model_find_param(a, "fc.weight") : p;
		double fan = (double)w->n / (double)w->shape[0];
		double bound = 1.0 / sqrt(fan), s2 = 0.0, mx = 0.0;

		for (size_t i = 0; i < p->n; i++) {
			s2 += (double)p->data[i] * p->data[i];
			mx = fmax(mx, fabs(p->data[i]));
		}
		assert_true(mx <= bound);
		/* Spread over the whole interval, not a narrower law. */
		assert_true(mx > 0.9 * bound);
		if (p->n > 1000)
			assert_true(fabs(s2 / (double)p->n /
					 (bound * bound / 3.0) - 1.0) < 0.05);
	}
	/* The conv weights differ from kaiming_out's draw. */
	assert_memory_not_equal(pb_model_find_param(a, "conv6.weight")->data,
				pb_model_find_param(k, "conv6.weight")->data,
				pb_model_find_param(a, "conv6.weight")->n *
				sizeof(float));
	assert_true(pb_model_find_param(a, "bn3.weight")->data[5] == 1.0f);
	assert_true(pb_model_find_param(a, "bn3.bias")->data[5] == 0.0f);
	gsl_rng_free(r);
	pb_model_free(a);
	pb_model_free(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vgg_s),
		cmocka_unit_test(test_resnet_s),
		cmocka_unit_test(test_cifar_totals),
		cmocka_unit_test(test_type_names),
		cmocka_unit_test(test_init),
		cmocka_unit_test(test_init_torch_default),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
