/* Channel surgery preserves the function: in a dense model whose removed
 * channels are silenced exactly (their filter rows and biases zero, their
 * BN scale and shift zero, so they output exactly 0 after BN and ReLU),
 * the outputs equal those of the physically pruned model. Kept channels
 * carry random weights, so a wrong index mapping shows up as a wrong
 * output. Also: the shape of every tensor after surgery, the cost
 * prediction, the model INI round trip, masks, and refusals. */
#include "nn/mask.h"
#include "testutil.h"

#include "prunebench/prunebench.h"
#include "nn/model_impl.h"
#include "prune/prune_impl.h"

#define BATCH 3

static const char *mlp_ini =
	"[model]\nname = mlp\ninput = 1x6x6\nclasses = 4\n"
	"[flat]\ntype = flatten\n"
	"[fc1]\ntype = linear\nout = 12\n"
	"[relu1]\ntype = relu\n"
	"[drop]\ntype = dropout\np = 0.2\n"
	"[fc2]\ntype = linear\nout = 10\n"
	"[bn2]\ntype = bn\n"
	"[relu2]\ntype = relu\n"
	"[fc3]\ntype = linear\nout = 4\n";

static pb_model *model_named(const char *name)
{
	if (strcmp(name, "mlp"))
		return tu_load_shipped_model(name);
	return tu_parse_model(mlp_ini, "<mlp>");
}

/* Random weights and non-trivial BN state, so no layer is an identity. */
static void randomise(pb_model *m, unsigned long seed)
{
	gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
	pb_error err = { 0 };

	gsl_rng_set(r, seed);
	assert_int_equal(pb_model_init_params(m, r, &err), 0);
	for (int i = 0; i < pb_model_n_params(m); i++) {
		pb_param *p = pb_model_param(m, i);
		float lo = 0, hi = 0;
		switch (p->kind) {
		case PB_PARAM_BN_GAMMA: lo = 0.5f; hi = 1.5f; break;
		case PB_PARAM_BN_BETA: lo = -0.3f; hi = 0.3f; break;
		case PB_PARAM_BN_MEAN: lo = -0.2f; hi = 0.2f; break;
		case PB_PARAM_BN_VAR: lo = 0.5f; hi = 1.5f; break;
		case PB_PARAM_BIAS: lo = -0.1f; hi = 0.1f; break;
		default: continue;
		}
		tu_fill_uniform(p->data, p->n, lo, hi, seed + (unsigned long)i);
	}
	gsl_rng_free(r);
}

struct pick {
	int ng;
	pb_channel_group *g;
	uint8_t **keep;      /* NULL for non-prunable groups */
	int *kept;
};

/* Removes about 40% of every prunable group's channels, at random, at
 * least one and never all. */
static void pick_random(struct pick *pk, const pb_model *m,
			unsigned long seed)
{
	gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
	pb_error err = { 0 };

	gsl_rng_set(r, seed);
	if (pbi_groups_derive(m, &pk->g, &pk->ng, &err))
		fail_msg("%s", err.msg);
	pk->keep = calloc((size_t)pk->ng, sizeof *pk->keep);
	pk->kept = calloc((size_t)pk->ng, sizeof *pk->kept);
	for (int g = 0; g < pk->ng; g++) {
		int n = pk->g[g].n_channels, k = 0;
		pk->kept[g] = n;
		if (!pk->g[g].prunable)
			continue;
		pk->keep[g] = malloc((size_t)n);
		for (int c = 0; c < n; c++)
			k += pk->keep[g][c] = gsl_rng_uniform(r) >= 0.4;
		if (k == n)
			pk->keep[g][0] = 0, k--;
		if (k == 0)
			pk->keep[g][n - 1] = 1, k++;
		pk->kept[g] = k;
	}
	gsl_rng_free(r);
}

static void pick_free(struct pick *pk)
{
	for (int g = 0; g < pk->ng; g++)
		free(pk->keep[g]);
	free(pk->keep);
	free(pk->kept);
	free(pk->g);
}

static pb_param *param_of(pb_model *m, int layer, pb_param_kind kind)
{
	for (int i = 0; i < pb_model_n_params(m); i++) {
		pb_param *p = pb_model_param(m, i);
		if (p->layer == layer && p->kind == kind)
			return p;
	}
	return NULL;
}

/* Silences the removed channels in the dense model: filter rows and
 * biases of every producer, scale and shift of every BN. */
static void silence(pb_model *m, const struct pick *pk)
{
	for (int g = 0; g < pk->ng; g++) {
		const pb_channel_group *gr = &pk->g[g];
		if (!pk->keep[g])
			continue;
		for (int c = 0; c < gr->n_channels; c++) {
			if (pk->keep[g][c])
				continue;
			for (int k = 0; k < gr->n_producers; k++) {
				pb_param *w = param_of(m, gr->producers[k],
						       PB_PARAM_WEIGHT);
				pb_param *b = param_of(m, gr->producers[k],
						       PB_PARAM_BIAS);
				size_t row = w->n / (size_t)w->shape[0];
				memset(w->data + row * (size_t)c, 0,
				       row * sizeof(float));
				if (b)
					b->data[c] = 0;
			}
			for (int k = 0; k < gr->n_bns; k++) {
				param_of(m, gr->bns[k], PB_PARAM_BN_GAMMA)
					->data[c] = 0;
				param_of(m, gr->bns[k], PB_PARAM_BN_BETA)
					->data[c] = 0;
			}
		}
	}
}

static float *run(pb_model *m, const float *x)
{
	const float *logits;
	pb_error err = { 0 };
	int classes = pb_model_classes(m);
	float *out = malloc((size_t)BATCH * (size_t)classes * sizeof *out);

	if (pb_model_forward(m, x, BATCH, 0, NULL, &logits, &err))
		fail_msg("%s", err.msg);
	memcpy(out, logits, (size_t)BATCH * (size_t)classes * sizeof *out);
	return out;
}

static float *input_for(const pb_model *m)
{
	int c, h, w;
	size_t n;
	float *x;

	pb_model_input_shape(m, &c, &h, &w);
	n = (size_t)BATCH * (size_t)(c * h * w);
	x = malloc(n * sizeof *x);
	tu_fill_uniform(x, n, -1.0f, 1.0f, 99);
	return x;
}

static double max_diff(const float *a, const float *b, size_t n)
{
	double d = 0;

	for (size_t i = 0; i < n; i++)
		if (fabs((double)a[i] - b[i]) > d)
			d = fabs((double)a[i] - b[i]);
	return d;
}

/* Every tensor of the pruned model has the shape the groups predict. */
static void check_shapes(const pb_model *old, pb_model *nm,
			 const struct pick *pk)
{
	for (int i = 0; i < pb_model_n_layers(nm); i++) {
		const pb_layer_info *o = pb_model_layer(old, i);
		const pb_layer_info *n = pb_model_layer(nm, i);
		int out = o->out_c, in = -1, infeat = -1;
		pb_param *w;

		for (int g = 0; g < pk->ng; g++) {
			const pb_channel_group *gr = &pk->g[g];
			for (int k = 0; k < gr->n_producers; k++)
				if (gr->producers[k] == i)
					out = pk->kept[g];
			for (int k = 0; k < gr->n_bns; k++)
				if (gr->bns[k] == i)
					out = pk->kept[g];
			for (int k = 0; k < gr->n_consumers; k++)
				if (gr->consumers[k] == i) {
					in = pk->kept[g];
					infeat = pk->kept[g] * gr->fanout[k];
				}
		}
		assert_string_equal(n->name, o->name);
		assert_int_equal(n->out_h, o->out_h);
		assert_int_equal(n->out_w, o->out_w);
		switch (o->type) {
		case PB_LAYER_CONV:
			assert_int_equal(n->out_c, out);
			w = param_of(nm, i, PB_PARAM_WEIGHT);
			assert_int_equal(w->shape[0], out);
			assert_int_equal(w->shape[1], in < 0 ? o->in_c : in);
			assert_int_equal(w->shape[2], o->kernel);
			if (o->has_bias)
				assert_int_equal(
					param_of(nm, i, PB_PARAM_BIAS)->n,
					(size_t)out);
			break;
		case PB_LAYER_LINEAR:
			assert_int_equal(n->out_c, out);
			w = param_of(nm, i, PB_PARAM_WEIGHT);
			assert_int_equal(w->shape[0], out);
			assert_int_equal(w->shape[1],
					 infeat < 0 ? w->shape[1] : infeat);
			if (infeat < 0)
				assert_int_equal(
					w->shape[1],
					param_of((pb_model *)old, i,
						 PB_PARAM_WEIGHT)->shape[1]);
			break;
		case PB_LAYER_BN:
			for (int k = PB_PARAM_BN_GAMMA; k <= PB_PARAM_BN_VAR;
			     k++)
				assert_int_equal(
					param_of(nm, i, (pb_param_kind)k)->n,
					(size_t)out);
			break;
		default:
			break;
		}
	}
}

/* The defining property, on one model. */
static void surgery_preserves(const char *name, unsigned long seed)
{
	pb_model *m = model_named(name), *pruned = NULL;
	struct pick pk;
	pb_error err = { 0 };
	float *x, *ref, *before, *got;
	size_t n;
	uint64_t p, f;

	randomise(m, seed);
	pick_random(&pk, m, seed);
	x = input_for(m);
	n = (size_t)BATCH * (size_t)pb_model_classes(m);
	before = run(m, x);
	silence(m, &pk);
	ref = run(m, x);
	if (pbi_remove_channels(m, pk.g, pk.ng,
				(const uint8_t *const *)pk.keep, &pruned,
				&err))
		fail_msg("%s: %s", name, err.msg);
	got = run(pruned, x);
	if (max_diff(ref, got, n) > 1e-5)
		fail_msg("%s: pruned output differs from the silenced dense "
			 "one by %g", name, max_diff(ref, got, n));
	/* The silenced channels mattered: this comparison can fail. */
	assert_true(max_diff(before, got, n) > 1e-3);

	check_shapes(m, pruned, &pk);
	pbi_config_cost(m, pk.g, pk.ng, pk.kept, &p, &f);
	assert_int_equal(p, pb_model_count_params(pruned));
	assert_int_equal(f, pb_model_count_macs(pruned));
	assert_true(pb_model_count_macs(pruned) < pb_model_count_macs(m));
	assert_true(pb_model_count_params(pruned) < pb_model_count_params(m));

	free(x);
	free(ref);
	free(before);
	free(got);
	pick_free(&pk);
	pb_model_free(pruned);
	pb_model_free(m);
}

static void test_vgg_s(void **state)
{
	(void)state;
	surgery_preserves("vgg-s.ini", 1);
	surgery_preserves("vgg-s.ini", 2);
}

static void test_resnet_s(void **state)
{
	(void)state;
	surgery_preserves("resnet-s.ini", 3);
	surgery_preserves("resnet-s.ini", 4);
}

static void test_lenet5(void **state)
{
	(void)state;
	surgery_preserves("lenet5.ini", 5);
}

static void test_mlp(void **state)
{
	(void)state;
	surgery_preserves("mlp", 6);
}

/* The cost predicted for a configuration equals the built model's, for
 * configurations including extreme ones (one channel left). */
static void test_config_cost(void **state)
{
	const char *models[] = { "vgg-s.ini", "resnet-s.ini", "mlp" };

	(void)state;
	for (int mi = 0; mi < 3; mi++) {
		pb_model *m = model_named(models[mi]);
		struct pick pk;
		uint64_t p, f;

		pick_random(&pk, m, 11);
		pbi_config_cost(m, pk.g, pk.ng, NULL, &p, &f);
		assert_int_equal(p, pb_model_count_params(m));
		assert_int_equal(f, pb_model_count_macs(m));
		for (int g = 0; g < pk.ng; g++) {
			if (!pk.keep[g])
				continue;
			memset(pk.keep[g], 0, (size_t)pk.g[g].n_channels);
			pk.keep[g][pk.g[g].n_channels / 2] = 1;
			pk.kept[g] = 1;
		}
		{
			pb_model *nm = NULL;
			pb_error err = { 0 };
			if (pbi_remove_channels(m, pk.g, pk.ng,
						(const uint8_t *const *)pk.keep,
						&nm, &err))
				fail_msg("%s", err.msg);
			pbi_config_cost(m, pk.g, pk.ng, pk.kept, &p, &f);
			assert_int_equal(p, pb_model_count_params(nm));
			assert_int_equal(f, pb_model_count_macs(nm));
			pb_model_free(nm);
		}
		pick_free(&pk);
		pb_model_free(m);
	}
}

/* The pruned model's INI, written and read back, gives the same graph
 * and the same tensor shapes. */
static void test_ini_round_trip(void **state)
{
	pb_model *m = tu_load_shipped_model("resnet-s.ini");
	pb_model *nm = NULL, *back = NULL;
	struct pick pk;
	pb_error err = { 0 };
	char *dir = tu_temp_dir(), path[1024];

	(void)state;
	pick_random(&pk, m, 21);
	if (pbi_remove_channels(m, pk.g, pk.ng,
				(const uint8_t *const *)pk.keep, &nm, &err))
		fail_msg("%s", err.msg);
	snprintf(path, sizeof path, "%s/pruned.ini", dir);
	if (pb_model_write_ini(nm, path, &err))
		fail_msg("%s", err.msg);
	if (pb_model_load(&back, path, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(pb_model_n_layers(back), pb_model_n_layers(nm));
	assert_int_equal(pb_model_n_params(back), pb_model_n_params(nm));
	for (int i = 0; i < pb_model_n_params(nm); i++) {
		pb_param *a = pb_model_param(nm, i);
		pb_param *b = pb_model_param(back, i);
		assert_string_equal(a->name, b->name);
		assert_int_equal(a->ndim, b->ndim);
		for (int d = 0; d < a->ndim; d++)
			assert_int_equal(a->shape[d], b->shape[d]);
	}
	assert_int_equal(pb_model_count_macs(back), pb_model_count_macs(nm));
	remove(path);
	rmdir(dir);
	free(dir);
	pick_free(&pk);
	pb_model_free(back);
	pb_model_free(nm);
	pb_model_free(m);
}

/* A weight mask follows its weights: the kept part lands in the new
 * model's mask at the new positions. */
static void test_masks_follow(void **state)
{
	pb_model *m = tu_load_shipped_model("vgg-s.ini"), *nm = NULL;
	struct pick pk;
	pb_error err = { 0 };
	pb_param *w3 = pb_model_find_param(m, "conv3.weight");
	float *mask = pbi_mask_get(m, w3, 1), *gmask;
	const float *nmask;
	pb_param *nw3;
	int g2, g3, ni = 0;

	(void)state;
	if (!mask) {
		pb_model_free(m);
		skip();
	}
	/* A pattern where every entry tells its old position apart. */
	for (size_t i = 0; i < w3->n; i++)
		mask[i] = (float)(i % 7 != 0);
	/* A pruner may mask a BN scale too: it follows its channels. */
	gmask = pbi_mask_get(m, pb_model_find_param(m, "bn3.weight"), 1);
	assert_non_null(gmask);
	for (int c = 0; c < 32; c++)
		gmask[c] = (float)(c % 3 != 1);
	pick_random(&pk, m, 31);
	if (pbi_remove_channels(m, pk.g, pk.ng,
				(const uint8_t *const *)pk.keep, &nm, &err))
		fail_msg("%s", err.msg);
	nw3 = pb_model_find_param(nm, "conv3.weight");
	nmask = pbi_mask_get(nm, nw3, 0);
	assert_non_null(nmask);
	g2 = 1;    /* conv2's group: conv3's inputs */
	g3 = 2;    /* conv3's group: its outputs */
	for (int o = 0, no = 0; o < 32; o++) {
		if (!pk.keep[g3][o])
			continue;
		ni = 0;
		for (int c = 0; c < 16; c++) {
			if (!pk.keep[g2][c])
				continue;
			for (int k = 0; k < 9; k++)
				assert_float_equal(
					nmask[((size_t)no * pk.kept[g2] + ni) *
					      9 + k],
					mask[((size_t)o * 16 + c) * 9 + k],
					0);
			ni++;
		}
		no++;
	}
	nmask = pbi_mask_get(nm, pb_model_find_param(nm, "bn3.weight"), 0);
	assert_non_null(nmask);
	for (int c = 0, nc = 0; c < 32; c++)
		if (pk.keep[g3][c])
			assert_float_equal(nmask[nc++], gmask[c], 0);
	/* Layers without a mask get none. */
	assert_null(pbi_mask_get(nm, pb_model_find_param(nm, "conv1.weight"),
				 0));
	pick_free(&pk);
	pb_model_free(nm);
	pb_model_free(m);
}

static void test_refusals(void **state)
{
	pb_model *m = tu_load_shipped_model("vgg-s.ini"), *nm = (pb_model *)1;
	struct pick pk;
	pb_error err = { 0 };
	int last;

	(void)state;
	pick_random(&pk, m, 41);
	/* Emptying a group cuts the network. */
	memset(pk.keep[2], 0, 32);
	assert_int_equal(pbi_remove_channels(m, pk.g, pk.ng,
					     (const uint8_t *const *)pk.keep,
					     &nm, &err),
			 PB_EINVAL);
	assert_null(nm);
	assert_non_null(strstr(err.msg, "conv3"));
	memset(pk.keep[2], 1, 32);
	/* The classes stay. */
	last = pk.ng - 1;
	assert_false(pk.g[last].prunable);
	pk.keep[last] = malloc(10);
	memset(pk.keep[last], 1, 10);
	pk.keep[last][3] = 0;
	assert_int_equal(pbi_remove_channels(m, pk.g, pk.ng,
					     (const uint8_t *const *)pk.keep,
					     &nm, &err),
			 PB_EINVAL);
	assert_non_null(strstr(err.msg, "not prunable"));
	/* Keeping all of them is fine. */
	pk.keep[last][3] = 1;
	assert_int_equal(pbi_remove_channels(m, pk.g, pk.ng,
					     (const uint8_t *const *)pk.keep,
					     &nm, &err),
			 0);
	/* Groups of another model are stale. */
	{
		pb_model *other = NULL;
		assert_int_equal(pbi_remove_channels(
					 nm, pk.g, pk.ng,
					 (const uint8_t *const *)pk.keep,
					 &other, &err),
				 PB_EINVAL);
		assert_non_null(strstr(err.msg, "derive the groups again"));
	}
	pick_free(&pk);
	pb_model_free(nm);
	pb_model_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vgg_s),
		cmocka_unit_test(test_resnet_s),
		cmocka_unit_test(test_lenet5),
		cmocka_unit_test(test_mlp),
		cmocka_unit_test(test_config_cost),
		cmocka_unit_test(test_ini_round_trip),
		cmocka_unit_test(test_masks_follow),
		cmocka_unit_test(test_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
