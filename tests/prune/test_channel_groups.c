/* Channel groups derived from the graph: VGG-S (a chain, flatten fan-out
 * into the classifier), ResNet-S (identity and projection shortcuts tie
 * the stem and the block outputs), LeNet-5 (5x5 fan-out), an MLP (neurons
 * as channels) and a residual add on the model input (not prunable). */
#include "testutil.h"

#include "prunebench/prunebench.h"
#include "prune/prune_impl.h"

static void derive(const pb_model *m, pb_channel_group **g, int *n)
{
	pb_error err = { 0 };

	if (pbi_groups_derive(m, g, n, &err))
		fail_msg("%s", err.msg);
}

/* Names of a member list, comma-separated, for whole-list comparisons. */
static void names(const pb_model *m, const int *idx, int n, char *buf,
		  size_t len)
{
	buf[0] = 0;
	for (int k = 0; k < n; k++) {
		strncat(buf, k ? "," : "", len - strlen(buf) - 1);
		strncat(buf, pb_model_layer(m, idx[k])->name,
			len - strlen(buf) - 1);
	}
}

struct want {
	const char *producers, *bns, *consumers;
	int fanout0;    /* fanout at the last consumer, 0 for none */
	int n_channels, prunable, residual;
};

static void check_groups(const pb_model *m, const struct want *w, int n_want)
{
	pb_channel_group *g;
	int n;
	char buf[512];

	derive(m, &g, &n);
	assert_int_equal(n, n_want);
	for (int i = 0; i < n; i++) {
		assert_int_equal(g[i].id, i);
		names(m, g[i].producers, g[i].n_producers, buf, sizeof buf);
		assert_string_equal(buf, w[i].producers);
		names(m, g[i].bns, g[i].n_bns, buf, sizeof buf);
		assert_string_equal(buf, w[i].bns);
		names(m, g[i].consumers, g[i].n_consumers, buf, sizeof buf);
		assert_string_equal(buf, w[i].consumers);
		if (w[i].fanout0)
			assert_int_equal(g[i].fanout[g[i].n_consumers - 1],
					 w[i].fanout0);
		for (int k = 0; k + 1 < g[i].n_consumers; k++)
			assert_int_equal(g[i].fanout[k], 1);
		assert_int_equal(g[i].n_channels, w[i].n_channels);
		assert_int_equal(g[i].prunable, w[i].prunable);
		assert_int_equal(g[i].residual, w[i].residual);
	}
	free(g);
}

static void test_vgg_s(void **state)
{
	static const struct want w[] = {
		{ "conv1", "bn1", "conv2", 1, 16, 1, 0 },
		{ "conv2", "bn2", "conv3", 1, 16, 1, 0 },
		{ "conv3", "bn3", "conv4", 1, 32, 1, 0 },
		{ "conv4", "bn4", "conv5", 1, 32, 1, 0 },
		{ "conv5", "bn5", "conv6", 1, 64, 1, 0 },
		/* 64x3x3 flattened: each channel is 9 features of fc. */
		{ "conv6", "bn6", "fc", 9, 64, 1, 0 },
		{ "fc", "", "", 0, 10, 0, 0 },
	};
	pb_model *m = tu_load_shipped_model("vgg-s.ini");

	(void)state;
	check_groups(m, w, 7);
	pb_model_free(m);
}

static void test_resnet_s(void **state)
{
	/* The stem and block 1's output share the identity shortcut; block
	 * 2's output, its projection and block 3's output share the next
	 * one, which global pooling hands to fc one feature per channel. */
	static const struct want w[] = {
		{ "conv1,b1_conv2", "bn1,b1_bn2",
		  "b1_conv1,b2_conv1,b2_sc_conv", 1, 16, 1, 1 },
		{ "b1_conv1", "b1_bn1", "b1_conv2", 1, 16, 1, 0 },
		{ "b2_conv1", "b2_bn1", "b2_conv2", 1, 32, 1, 0 },
		{ "b2_conv2,b2_sc_conv,b3_conv2", "b2_bn2,b2_sc_bn,b3_bn2",
		  "b3_conv1,fc", 1, 32, 1, 1 },
		{ "b3_conv1", "b3_bn1", "b3_conv2", 1, 32, 1, 0 },
		{ "fc", "", "", 0, 10, 0, 0 },
	};
	pb_model *m = tu_load_shipped_model("resnet-s.ini");

	(void)state;
	check_groups(m, w, 6);
	pb_model_free(m);
}

static void test_lenet5(void **state)
{
	static const struct want w[] = {
		{ "conv1", "", "conv2", 1, 6, 1, 0 },
		{ "conv2", "", "fc1", 25, 16, 1, 0 },
		{ "fc1", "", "fc2", 1, 120, 1, 0 },
		{ "fc2", "", "fc3", 1, 84, 1, 0 },
		{ "fc3", "", "", 0, 10, 0, 0 },
	};
	pb_model *m = tu_load_shipped_model("lenet5.ini");

	(void)state;
	check_groups(m, w, 5);
	pb_model_free(m);
}

static const char *mlp_ini =
	"[model]\nname = mlp\ninput = 1x4x4\nclasses = 3\n"
	"[flat]\ntype = flatten\n"
	"[fc1]\ntype = linear\nout = 8\n"
	"[relu1]\ntype = relu\n"
	"[drop]\ntype = dropout\np = 0.1\n"
	"[fc2]\ntype = linear\nout = 6\n"
	"[bn2]\ntype = bn\n"
	"[relu2]\ntype = relu\n"
	"[fc3]\ntype = linear\nout = 3\n";

static void test_mlp(void **state)
{
	/* The first linear reads the model input: no group lists it as a
	 * consumer. A BN on a linear's outputs normalises neurons. */
	static const struct want w[] = {
		{ "fc1", "", "fc2", 1, 8, 1, 0 },
		{ "fc2", "bn2", "fc3", 1, 6, 1, 0 },
		{ "fc3", "", "", 0, 3, 0, 0 },
	};
	pb_model *m = tu_parse_model(mlp_ini, "<test>");

	(void)state;
	check_groups(m, w, 3);
	pb_model_free(m);
}

static void test_add_on_input_not_prunable(void **state)
{
	/* c1's channels are added to the image's channels, which nobody can
	 * remove (so c1, reading the image, consumes its own group); c2 is
	 * independent and stays prunable. */
	static const struct want w[] = {
		{ "c1", "", "c1,c2", 1, 2, 0, 1 },
		{ "c2", "", "fc", 16, 3, 1, 0 },
		{ "fc", "", "", 0, 2, 0, 0 },
	};
	pb_model *m = tu_parse_model(
		"[model]\nname = t\ninput = 2x4x4\nclasses = 2\n"
		"[c1]\ntype = conv\nout = 2\nkernel = 3\npad = 1\n"
		"[sum]\ntype = add\ninputs = c1, input\n"
		"[c2]\ntype = conv\nout = 3\nkernel = 3\npad = 1\n"
		"[flat]\ntype = flatten\n"
		"[fc]\ntype = linear\nout = 2\n", "<test>");

	(void)state;
	check_groups(m, w, 3);
	pb_model_free(m);
}

static void test_classifier_tied_by_add(void **state)
{
	/* fc1's outputs are added to fc2's, the logits: tied to the classes,
	 * so not prunable either. */
	static const struct want w[] = {
		{ "fc0", "", "fc1,fc2", 1, 4, 1, 0 },
		{ "fc1,fc2", "", "", 0, 3, 0, 1 },
	};
	pb_model *m = tu_parse_model(
		"[model]\nname = t\ninput = 1x4x4\nclasses = 3\n"
		"[flat]\ntype = flatten\n"
		"[fc0]\ntype = linear\nout = 4\n"
		"[fc1]\ntype = linear\nout = 3\n"
		"[fc2]\ntype = linear\nout = 3\ninput = fc0\n"
		"[sum]\ntype = add\ninputs = fc1, fc2\n", "<test>");

	(void)state;
	check_groups(m, w, 2);
	pb_model_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vgg_s),
		cmocka_unit_test(test_resnet_s),
		cmocka_unit_test(test_lenet5),
		cmocka_unit_test(test_mlp),
		cmocka_unit_test(test_add_on_input_not_prunable),
		cmocka_unit_test(test_classifier_tied_by_add),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
