/* Metrics: counts, MACs, effective MACs and file sizes on a hand-made
 * model checked against hand-computed numbers; the sparse encodings; compressed
 * size falling with sparsity; latency giving positive medians (timings are
 * never asserted); the printed tables. */
#include "nn/mask.h"
#include "testutil.h"

#include "prunebench/prunebench.h"
#include "prunebench/metrics.h"
#include "prune/prune_impl.h"
#include "nn/layers/sparse.h"

/* conv1.weight 2x1x3x3 (18) + bias 2; bn1 gamma, beta, mean, var (2 each);
 * fc.weight 2x32 (64), no bias. MACs: conv 2*4*4 * 1*9 = 288, fc 64. */
static const char tiny[] =
	"[model]\nname = tiny\ninput = 1x4x4\nclasses = 2\n"
	"[conv1]\ntype = conv\nout = 2\nkernel = 3\npad = 1\n"
	"[bn1]\ntype = bn\n[relu1]\ntype = relu\n"
	"[flat]\ntype = flatten\n[fc]\ntype = linear\nout = 2\nbias = no\n";

static void fill(pb_param *p, float v)
{
	for (size_t i = 0; i < p->n; i++)
		p->data[i] = v;
}

static pb_model *tiny_model(void)
{
	pb_model *m;
	pb_error err = { 0 };
	pb_param *w, *fc;

	assert_int_equal(pb_model_parse(&m, tiny, "tiny", &err), 0);
	w = pb_model_find_param(m, "conv1.weight");
	fc = pb_model_find_param(m, "fc.weight");
	/* conv1: output channel 1 all zero (9 of 18). */
	fill(w, 0.5f);
	for (int i = 9; i < 18; i++)
		w->data[i] = 0.0f;
	fill(pb_model_find_param(m, "conv1.bias"), 0.25f);
	fill(pb_model_find_param(m, "bn1.weight"), 1.0f);
	fill(pb_model_find_param(m, "bn1.bias"), 0.0f);
	fill(pb_model_find_param(m, "bn1.running_mean"), 0.0f);
	fill(pb_model_find_param(m, "bn1.running_var"), 1.0f);
	/* fc: the first 8 inputs of each row (16 of 64). */
	fill(fc, 0.0f);
	for (int r = 0; r < 2; r++)
		for (int j = 0; j < 8; j++)
			fc->data[r * 32 + j] = -0.75f;
	return m;
}

static void test_hand_counts(void **state)
{
	pb_model *m = tiny_model();
	pb_metrics mt;
	pb_metrics_opts o;
	pb_error err = { 0 };

	(void)state;
	pb_metrics_opts_default(&o);
	o.compressed = 0;
	assert_int_equal(pb_metrics_compute(&mt, m, NULL, &o, &err), 0);
	assert_int_equal(mt.params, 88);
	/* 9 conv + 2 bias + 2 gamma + 0 beta + 16 fc */
	assert_int_equal(mt.params_nonzero, 29);
	assert_int_equal(mt.prunable, 82);
	assert_int_equal(mt.prunable_nonzero, 25);
	assert_true(fabs(mt.prunable_sparsity - 57.0 / 82.0) < 1e-12);
	assert_int_equal(mt.macs, 352);
	assert_int_equal(mt.macs, pb_model_count_macs(m));
	/* 288 * 9/18 + 64 * 16/64 */
	assert_int_equal(mt.macs_effective, 160);
	/* Sizes are files (checkpoint.h). Header: magic 8, version,
	 * count, name length 4 each, "tiny" 4, tag length 4 = 28; CRC 4.
	 * A record: 4 + name + kind 4 + ndim 4 + 4 per dimension, then
	 * its payload:
	 *   conv1.weight 4+12+8+16 = 40   conv1.bias 4+10+8+4 = 26
	 *   bn1.weight 26   bn1.bias 24   bn1.running_mean 32
	 *   bn1.running_var 31   fc.weight 4+9+8+8 = 29      (208 in all)
	 * 92 state floats as float32: 368. */
	assert_int_equal(mt.bytes_dense, 28 + 208 + 368 + 4);
	assert_int_equal(mt.bytes_checkpoint, mt.bytes_dense);
	/* Smallest encoding per tensor:
	 *   conv1.weight 18, 9 nnz: dense 72, bitmap 3+36=39, CSR 12+54=66
	 *   conv1.bias, gamma, running_var (dense 2): 8 each
	 *   beta, running_mean (all zero): bitmap 1
	 *   fc.weight 64, 16 nnz: dense 256, bitmap 8+64=72, CSR 12+96=108 */
	assert_int_equal(pb_metrics_sparse_bytes(
		pb_model_find_param(m, "conv1.weight")->data, 18, 2), 39);
	assert_int_equal(mt.bytes_sparse,
			 28 + 208 + 39 + 8 + 8 + 1 + 1 + 8 + 72 + 4);
	/* int8: conv1.weight 2 scales + 18 codes, fc.weight 2 + 64; the
	 * five others float32 (40). */
	assert_int_equal(mt.bytes_int8,
			 28 + 208 + (8 + 18) + 40 + (8 + 64) + 4);
	assert_int_equal(mt.have_latency, 0);
	assert_int_equal(mt.bytes_compressed, 0);
	assert_int_equal(mt.bytes_int8_compressed, 0);

	assert_int_equal(mt.n_layers, 3);
	assert_string_equal(mt.layers[0].name, "conv1");
	assert_int_equal(mt.layers[0].params, 20);
	assert_int_equal(mt.layers[0].nonzero, 11);
	assert_int_equal(mt.layers[0].weights, 18);
	assert_int_equal(mt.layers[0].weights_nonzero, 9);
	assert_true(fabs(mt.layers[0].sparsity - 0.5) < 1e-12);
	assert_int_equal(mt.layers[0].macs, 288);
	assert_int_equal(mt.layers[0].macs_effective, 144);
	assert_string_equal(mt.layers[1].name, "bn1");
	assert_int_equal(mt.layers[1].params, 4);
	assert_int_equal(mt.layers[1].nonzero, 2);
	assert_int_equal(mt.layers[1].macs, 0);
	/* bn: gamma all ones, so 0 even though beta is all zero. */
	assert_true(mt.layers[1].sparsity == 0.0);
	assert_string_equal(mt.layers[2].name, "fc");
	assert_int_equal(mt.layers[2].nonzero, 16);
	assert_true(fabs(mt.layers[2].sparsity - 0.75) < 1e-12);
	assert_int_equal(mt.layers[2].macs, 64);
	assert_int_equal(mt.layers[2].macs_effective, 16);
	pb_metrics_free(&mt);
	pb_model_free(m);
}

static void test_sparse_encodings(void **state)
{
	size_t n = 100000;
	float *d = calloc(n, sizeof *d);

	(void)state;
	/* Two non-zeros 99998 zeros apart: CSR needs one filler entry, so
	 * 4*(1+1) + 6*3 = 26, below the bitmap's 12500 + 8. */
	d[0] = 1.0f;
	d[n - 1] = 2.0f;
	assert_int_equal(pb_metrics_sparse_bytes(d, n, 1), 26);
	/* A gap of exactly 65535 zeros fits the 2-byte distance; 65536
	 * does not. */
	d[n - 1] = 0.0f;
	d[65536] = 1.0f;
	assert_int_equal(pb_metrics_sparse_bytes(d, n, 1), 8 + 12);
	d[65536] = 0.0f;
	d[65537] = 1.0f;
	assert_int_equal(pb_metrics_sparse_bytes(d, n, 1), 8 + 18);
	/* Dense data stays dense. */
	for (size_t i = 0; i < 64; i++)
		d[i] = 1.0f;
	assert_int_equal(pb_metrics_sparse_bytes(d, 64, 4), 256);
	/* Half dense: the bitmap wins (8 + 128 < 4*5 + 192). */
	for (size_t i = 0; i < 64; i += 2)
		d[i] = 0.0f;
	assert_int_equal(pb_metrics_sparse_bytes(d, 64, 4), 136);
	free(d);
}

static const char wide[] =
	"[model]\nname = wide\ninput = 1x16x16\nclasses = 10\n"
	"[flat]\ntype = flatten\n[fc1]\ntype = linear\nout = 256\n"
	"[relu1]\ntype = relu\n[fc2]\ntype = linear\nout = 10\n";

static pb_model *wide_model(void)
{
	pb_model *m;
	pb_error err = { 0 };
	gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);

	assert_int_equal(pb_model_parse(&m, wide, "wide", &err), 0);
	gsl_rng_set(rng, 11);
	assert_int_equal(pb_model_init_params(m, rng, &err), 0);
	gsl_rng_free(rng);
	return m;
}

/* Zeros compress: a 75%-sparse model's zlib size is well under the dense
 * one's (about 0.3 expected; a generous bound, as a property). */
static void test_compressed_size(void **state)
{
	pb_model *m = wide_model(), *p;
	pb_error err = { 0 };
	pb_target t;
	pb_param *w[2];
	float *s[2];
	uint64_t raw_d, z_d, raw_p, z_p;
	unsigned char *buf;
	size_t len;
	double reached;

	(void)state;
	assert_int_equal(pb_metrics_compressed_size(m, &raw_d, &z_d, &err), 0);
	assert_true(z_d > raw_d * 8 / 10);
	assert_int_equal(pb_model_clone(&p, m, &err), 0);
	w[0] = pb_model_find_param(p, "fc1.weight");
	w[1] = pb_model_find_param(p, "fc2.weight");
	for (int k = 0; k < 2; k++) {
		s[k] = malloc(w[k]->n * sizeof(float));
		for (size_t i = 0; i < w[k]->n; i++)
			s[k][i] = fabsf(w[k]->data[i]);
	}
	assert_int_equal(pb_target_parse(&t, "sparsity=0.75, scope=global",
					  &err), 0);
	assert_int_equal(pbi_select_weights(p, &t, w, s, 2, 0.75, &reached,
					    &err), 0);
	assert_int_equal(pb_metrics_compressed_size(p, &raw_p, &z_p, &err), 0);
	/* Same tensors; the masks are the weights' zeros, so each costs
	 * only its record's header ("fc1.weight.mask", 2 dimensions). */
	assert_int_equal(raw_p, raw_d + 2 * (4 + 15 + 4 + 4 + 8));
	assert_true((double)z_p < 0.45 * (double)z_d);
	{
		pb_metrics mt;
		pb_metrics_opts o;
		pb_metrics_opts_default(&o);
		assert_int_equal(pb_metrics_compute(&mt, p, NULL, &o, &err), 0);
		assert_int_equal(mt.bytes_compressed, z_p);
		assert_int_equal(mt.bytes_checkpoint, raw_p);
		assert_true(fabs(mt.prunable_sparsity - 0.75) < 1e-4);
		assert_true(mt.bytes_sparse < mt.bytes_dense / 2);
		/* int8 + sparse + zlib: about a tenth of the dense file. */
		assert_true(mt.bytes_int8 < mt.bytes_dense / 3);
		assert_true((double)mt.bytes_int8_compressed <
			    0.2 * (double)raw_d);
		pb_metrics_free(&mt);
	}
	/* What is measured is the file pb_checkpoint_save writes, masks
	 * and all. */
	assert_non_null(pbi_mask_flat(p));
	assert_int_equal(pbi_checkpoint_encode(p, 1, &buf, &len, &err), 0);
	assert_int_equal(len, raw_p);
	free(buf);
	free(s[0]);
	free(s[1]);
	pb_model_free(p);
	pb_model_free(m);
}

static void test_latency(void **state)
{
	pb_model *m = wide_model(), *ref = wide_model();
	pb_error err = { 0 };
	double ms = 0, a = 0, b = 0, sp = 0;
	pb_metrics before, after;
	pb_metrics_opts o;
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	assert_int_equal(pb_metrics_latency(m, 1, 1, 5, &ms, &err), 0);
	assert_true(ms > 0);
	assert_int_equal(pb_metrics_latency(m, 8, 0, 3, &ms, &err), 0);
	assert_true(ms > 0);
	assert_int_equal(pb_metrics_speedup(m, ref, 4, 1, 3, &a, &b, &sp,
					    &err), 0);
	assert_true(a > 0 && b > 0 && sp > 0);
	assert_int_equal(pb_metrics_latency(m, 0, 1, 5, &ms, &err), PB_EINVAL);
	assert_non_null(strstr(err.msg, "batch 0"));
	assert_int_equal(pb_metrics_latency(m, 1, 1, 0, &ms, &err), PB_EINVAL);

	/* 99% of m's weights zero: its layers take the sparse kernels
	 * where this CPU has them; the dense reference's do not. */
	for (int i = 0; i < pb_model_n_params(m); i++) {
		pb_param *p = pb_model_param(m, i);
		if (p->kind == PB_PARAM_WEIGHT)
			for (size_t j = 0; j < p->n; j++)
				if (j % 100)
					p->data[j] = 0.0f;
	}
	pb_metrics_opts_default(&o);
	assert_int_equal(o.sparse, 1);
	o.latency = 1;
	o.warmup = 1;
	o.repeats = 3;
	o.repeats_large = 2;
	assert_int_equal(pb_metrics_compute(&before, ref, NULL, &o, &err), 0);
	assert_int_equal(pb_metrics_compute(&after, m, ref, &o, &err), 0);
	assert_true(before.have_latency && after.have_latency);
	assert_int_equal(before.sparse_layers, 0);
	assert_int_equal(after.sparse_layers,
			 pbi_sparse_available() ? 2 : 0);
	for (int i = 0; i < 2; i++) {
		assert_true(before.latency_ms[i] > 0);
		assert_true(after.latency_ms[i] > 0);
		assert_true(before.speedup[i] == 0);
		assert_true(after.speedup[i] > 0);
		/* without sparse layers, the dense figures */
		assert_true(before.latency_sparse_ms[i] ==
			    before.latency_ms[i]);
		assert_true(after.latency_sparse_ms[i] > 0);
		assert_true(after.speedup_sparse[i] > 0);
	}
	f = open_memstream(&text, &len);
	pb_metrics_print(f, &before, &after, "dense", "pruned");
	pb_metrics_print_layers(f, &after);
	fclose(f);
	assert_non_null(strstr(text, "dense"));
	assert_non_null(strstr(text, "pruned"));
	assert_non_null(strstr(text, "effective MACs"));
	assert_non_null(strstr(text, "size zlib (MiB)"));
	assert_non_null(strstr(text, "latency b=128 (ms)"));
	assert_non_null(strstr(text, "speedup b=128"));
	assert_non_null(strstr(text, "speedup sparse b=128"));
	assert_non_null(strstr(text, "sparse-kernel layers"));
	assert_non_null(strstr(text, "fc1"));
	assert_non_null(strstr(text, "65792"));   /* fc1 params 256*256+256 */
	free(text);
	pb_metrics_free(&before);
	pb_metrics_free(&after);
	pb_model_free(m);
	pb_model_free(ref);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hand_counts),
		cmocka_unit_test(test_sparse_encodings),
		cmocka_unit_test(test_compressed_size),
		cmocka_unit_test(test_latency),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
