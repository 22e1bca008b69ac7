/* Int8 quantization and the encodings of checkpoint format 3: pruning's
 * zeros survive quantization bit for bit, every dequantized weight is
 * within half its row's scale of the float one, the activation code
 * keeps 0.0 exact, an int8 checkpoint loads back to the very same
 * weights and activation ranges, every sparse encoding round-trips bit
 * for bit (-0.0 and CSR fillers included), masks cost nothing when they
 * are the weights' zeros, and a version-2 file with float masks still
 * loads. Corrupt encodings are refused with the model untouched. */
#include "testutil.h"

#include <float.h>
#include <zlib.h>

#include "nn/mask.h"
#include "prunebench/checkpoint.h"
#include "prunebench/quantize.h"

static const char net[] =
	"[model]\nname = q\ninput = 2x6x6\nclasses = 4\n"
	"[conv1]\ntype = conv\nout = 5\nkernel = 3\npad = 1\n"
	"[bn1]\ntype = bn\n[relu1]\ntype = relu\n"
	"[flat]\ntype = flatten\n[fc]\ntype = linear\nout = 4\n";

/* A model with every other conv1 weight and the first half of fc
 * masked (pruned), and one whole conv1 filter pruned. */
static pb_model *pruned_model(unsigned long seed)
{
	pb_model *m = tu_parse_model(net, "q.ini");
	pb_param *w, *fc;
	float *mk;

	tu_init_params(m, seed);
	w = pb_model_find_param(m, "conv1.weight");
	fc = pb_model_find_param(m, "fc.weight");
	mk = pbi_mask_get(m, w, 1);
	for (size_t i = 0; i < w->n; i++)
		mk[i] = (i % 2 || i < 18) ? 0.0f : 1.0f;
	mk = pbi_mask_get(m, fc, 1);
	for (size_t i = 0; i < fc->n / 2; i++)
		mk[i] = 0.0f;
	pbi_mask_apply(m);
	return m;
}

static void test_weights(void **state)
{
	pb_model *m = pruned_model(3), *f;
	pb_quant *q = NULL;
	pb_error err = { 0 };

	(void)state;
	assert_int_equal(pb_model_clone(&f, m, &err), 0);
	assert_int_equal(pb_quant_new(&q, m, &err), 0);
	assert_int_equal(pb_quant_weights(m, q, &err), 0);
	for (int i = 0; i < pb_model_n_params(m); i++) {
		pb_param *p = pb_model_param(m, i), *o = pb_model_param(f, i);
		size_t rows = p->ndim > 1 ? (size_t)p->shape[0] : 1;
		size_t cols = p->n / rows;
		const float *mk = pbi_mask_get(m, p, 0);

		if (p->kind != PB_PARAM_WEIGHT) {
			assert_null(q->scales[i]);
			assert_memory_equal(p->data, o->data,
					    p->n * sizeof(float));
			continue;
		}
		assert_non_null(q->scales[i]);
		for (size_t r = 0; r < rows; r++) {
			float s = q->scales[i][r], amax = 0.0f;

			for (size_t j = 0; j < cols; j++)
				if (fabsf(o->data[r * cols + j]) > amax)
					amax = fabsf(o->data[r * cols + j]);
			assert_true(s == amax / 127.0f);
			for (size_t j = 0; j < cols; j++) {
				float a = o->data[r * cols + j];
				float b = p->data[r * cols + j];
				uint32_t bits;

				/* Zeros bit for bit: +0.0, never -0.0. */
				if (a == 0.0f) {
					memcpy(&bits, &b, 4);
					assert_int_equal(bits, 0);
				}
				assert_true(fabsf(a - b) <= 0.5f * s +
					    FLT_EPSILON * fabsf(a));
				/* On the grid: an integer multiple. */
				assert_true(fabsf(b / (s > 0 ? s : 1) -
						  rintf(b / (s > 0 ? s : 1))) <
					    1e-3f);
			}
		}
		/* The masks are untouched and still match the zeros. */
		for (size_t k = 0; mk && k < p->n; k++)
			if (mk[k] == 0.0f)
				assert_true(p->data[k] == 0.0f);
	}
	/* The pruned filter's row has scale 0 and stays all zero. */
	assert_true(q->scales[0][0] == 0.0f);
	pb_quant_free(q);
	pb_model_free(m);
	pb_model_free(f);
}

static void test_act_code(void **state)
{
	pb_act_quant a = { 0 };
	float x[] = { 0.0f, -0.0f, 1.0f, -1.5f, 2.0f, 3.0f, 0.01f, -7.0f };
	float y[8];

	(void)state;
	/* A signed range: 0.0 is a code, so it comes back exactly. */
	pb_act_quant_set(&a, -1.5f, 2.0f);
	assert_true(a.on);
	assert_true(fabsf(a.scale - 3.5f / 255.0f) < 1e-9f);
	assert_true(a.zero == (int32_t)lrint(1.5 / (3.5 / 255.0)));
	memcpy(y, x, sizeof x);
	pb_act_quant_round(&a, y, 8);
	assert_true(y[0] == 0.0f && y[1] == 0.0f);
	for (int i = 2; i < 5; i++)
		assert_true(fabsf(y[i] - x[i]) <= 0.5f * a.scale + 1e-6f);
	/* Out of range: clamped to the ends of the code. */
	assert_true(fabsf(y[5] - (255 - a.zero) * a.scale) < 1e-6f);
	assert_true(fabsf(y[7] - (0 - a.zero) * a.scale) < 1e-6f);
	/* After a ReLU (lo = 0) the zero point is 0: plain uint8. */
	pb_act_quant_set(&a, 0.0f, 6.0f);
	assert_int_equal(a.zero, 0);
	/* A range that does not hold 0 is widened to it. */
	pb_act_quant_set(&a, 1.0f, 2.0f);
	assert_true(a.lo == 0.0f && a.hi == 2.0f);
	/* Off: nothing changes. */
	a.on = 0;
	memcpy(y, x, sizeof x);
	pb_act_quant_round(&a, y, 8);
	assert_memory_equal(x, y, sizeof x);
}

/* Every activation conv and linear layers read is marked: the input of
 * conv1, and through flatten relu1's output for fc. */
static void test_marks(void **state)
{
	pb_model *m = pruned_model(3);
	pb_quant *q = NULL;
	pb_error err = { 0 };

	(void)state;
	assert_int_equal(pb_quant_new(&q, m, &err), 0);
	pb_quant_mark_activations(m, q);
	assert_true(q->activations);
	assert_true(q->input.on);
	for (int l = 0; l < pb_model_n_layers(m); l++)
		assert_int_equal(q->acts[l].on,
				 !strcmp(pb_model_layer(m, l)->name, "relu1"));
	pb_quant_free(q);
	pb_model_free(m);
}

static void assert_same(pb_model *a, pb_model *b)
{
	for (int i = 0; i < pb_model_n_params(a); i++) {
		pb_param *p = pb_model_param(a, i), *o = pb_model_param(b, i);
		const float *ma = pbi_mask_get(a, p, 0);
		const float *mb = pbi_mask_get(b, o, 0);

		assert_memory_equal(p->data, o->data, p->n * sizeof(float));
		assert_int_equal(ma != NULL, mb != NULL);
		if (ma)
			assert_memory_equal(ma, mb, p->n * sizeof(float));
	}
}

/* The int8 file: the same weights, masks, scales and activation ranges
 * loaded back, sparse or not. */
static void test_int8_round_trip(void **state)
{
	pb_model *m = pruned_model(4), *b = tu_parse_model(net, "q.ini");
	pb_quant *q = NULL, *qb = NULL;
	pb_error err = { 0 };
	char *dir = tu_temp_dir(), path[600];

	(void)state;
	snprintf(path, sizeof path, "%s/m.int8.ckpt", dir);
	assert_int_equal(pb_quant_new(&q, m, &err), 0);
	assert_int_equal(pb_quant_weights(m, q, &err), 0);
	pb_quant_mark_activations(m, q);
	pb_act_quant_set(&q->input, -2.5f, 3.0f);
	pb_act_quant_set(&q->acts[2], 0.0f, 4.25f);
	for (int sparse = 0; sparse < 2; sparse++) {
		pb_checkpoint_opts o = { .sparse = sparse, .quant = q };

		if (pb_checkpoint_save_opts(m, path, &o, &err))
			fail_msg("%s", err.msg);
		if (pb_checkpoint_load_quant(b, path, &qb, &err))
			fail_msg("%s", err.msg);
		assert_same(m, b);
		assert_non_null(qb);
		assert_true(qb->activations);
		for (int i = 0; i < pb_model_n_params(m); i++) {
			pb_param *p = pb_model_param(m, i);

			assert_int_equal(qb->scales[i] != NULL,
					 q->scales[i] != NULL);
			if (q->scales[i])
				assert_memory_equal(qb->scales[i], q->scales[i],
						    (size_t)p->shape[0] *
						    sizeof(float));
		}
		assert_memory_equal(&qb->input, &q->input, sizeof q->input);
		for (int l = 0; l < pb_model_n_layers(m); l++)
			assert_memory_equal(&qb->acts[l], &q->acts[l],
					    sizeof q->acts[l]);
		pb_quant_free(qb);
		qb = NULL;
	}
	/* A float32 file gives no plan. */
	if (pb_checkpoint_save(m, path, &err) ||
	    pb_checkpoint_load_quant(b, path, &qb, &err))
		fail_msg("%s", err.msg);
	assert_null(qb);
	/* Weights off the grid of the plan's scales are refused. */
	pb_model_find_param(m, "fc.weight")->data[30] += 1e-3f;
	{
		pb_checkpoint_opts o = { .quant = q };

		assert_int_equal(pb_checkpoint_save_opts(m, path, &o, &err),
				 PB_EINVAL);
		assert_non_null(strstr(err.msg, "quantize the model first"));
	}
	pb_quant_free(q);
	pb_model_free(m);
	pb_model_free(b);
	tu_rm_tree(dir);
}

/* A linear layer wide enough for CSR's filler entries. */
static const char wide[] =
	"[model]\nname = w\ninput = 2x1x35000\nclasses = 3\n"
	"[flat]\ntype = flatten\n[fc]\ntype = linear\nout = 3\nbias = no\n";

static void save_load(pb_model *m, pb_model *b, const pb_checkpoint_opts *o,
		      size_t *len)
{
	pb_error err = { 0 };
	char *dir = tu_temp_dir(), path[600];
	unsigned char *buf = NULL;

	snprintf(path, sizeof path, "%s/x.ckpt", dir);
	if (pb_checkpoint_encode(m, o, &buf, len, &err) ||
	    pb_checkpoint_save_opts(m, path, o, &err) ||
	    pb_checkpoint_load(b, path, &err))
		fail_msg("%s", err.msg);
	free(buf);
	tu_rm_tree(dir);
}

static void test_sparse_encodings(void **state)
{
	pb_model *m = tu_parse_model(wide, "w.ini"), *b;
	pb_param *w = pb_model_find_param(m, "fc.weight");
	pb_checkpoint_opts dense = { 0 }, sparse = { .sparse = 1 };
	size_t n_dense, n_sparse;
	float *mk;

	(void)state;
	/* Row 0: two values 69998 apart (one CSR filler) and a -0.0; row
	 * 1 empty; row 2 dense-ish at the start. Bitmap and dense would
	 * cost 26250 + and 840000 bytes: CSR wins. */
	memset(w->data, 0, w->n * sizeof(float));
	w->data[0] = 1.5f;
	w->data[69999] = -2.0f;
	w->data[5] = -0.0f;
	for (int j = 0; j < 10; j++)
		w->data[2 * 70000 + j] = 0.25f * (float)(j + 1);
	b = tu_parse_model(wide, "w.ini");
	save_load(m, b, &dense, &n_dense);
	assert_memory_equal(w->data, pb_model_find_param(b, "fc.weight")->data,
			    w->n * sizeof(float));
	save_load(m, b, &sparse, &n_sparse);
	assert_memory_equal(w->data, pb_model_find_param(b, "fc.weight")->data,
			    w->n * sizeof(float));
	/* Header 8+12+"w" 1+4, record 4+9+8+8, CRC 4; CSR: 4 offsets, then
	 * entries: row 0 has 1.5, -0.0 (bits set), a filler, -2.0; row 2
	 * ten. */
	assert_int_equal(n_sparse, 25 + 29 + 4 * 4 + 6 * (4 + 10) + 4);
	assert_int_equal(n_dense, 25 + 29 + 4 * 210000 + 4);
	/* A mask that is the weights' zeros costs its header only; one
	 * that is not (a kept weight at exactly 0) costs a bit per entry. */
	mk = pbi_mask_get(m, w, 1);
	for (size_t i = 0; i < w->n; i++)
		mk[i] = w->data[i] != 0.0f || i == 5 ? 1.0f : 0.0f;
	save_load(m, b, &sparse, &n_sparse);
	assert_int_equal(n_sparse, 25 + 29 + 4 * 4 + 6 * 14 + 4 +
			 (4 + 14 + 8 + 8));
	assert_memory_equal(pbi_mask_get(b, pb_model_find_param(b, "fc.weight"),
					 0), mk, w->n * sizeof(float));
	mk[7] = 1.0f;   /* kept, but zero */
	save_load(m, b, &sparse, &n_sparse);
	assert_int_equal(n_sparse, 25 + 29 + 4 * 4 + 6 * 14 + 4 +
			 (4 + 14 + 8 + 8) + 210000 / 8);
	assert_memory_equal(pbi_mask_get(b, pb_model_find_param(b, "fc.weight"),
					 0), mk, w->n * sizeof(float));
	pb_model_free(m);
	pb_model_free(b);
}

/* A version-2 file stored masks as float32 tensors of 0 and 1: it still
 * loads to the same model and masks. Built by hand: the file of the
 * model without masks (version 2's bytes), then fc's mask appended as
 * version 2 wrote it. */
static void test_version2_float_masks(void **state)
{
	pb_model *m = pruned_model(5), *b = tu_parse_model(net, "q.ini");
	pb_param *fc = pb_model_find_param(m, "fc.weight");
	pb_checkpoint_opts o = { .no_masks = 1 };
	unsigned char *buf = NULL, *v2;
	size_t len, off, n2;
	pb_error err = { 0 };
	char *dir = tu_temp_dir(), path[600];
	const float *mk = pbi_mask_get(m, fc, 0);
	const char *name = "fc.weight.mask";

	(void)state;
	snprintf(path, sizeof path, "%s/v2.ckpt", dir);
	/* Only fc keeps its mask, as float32 after the tensors. */
	assert_int_equal(pb_checkpoint_encode(m, &o, &buf, &len, &err), 0);
	n2 = len + 4 + strlen(name) + 8 + 8 + 4 * fc->n;
	v2 = malloc(n2);
	memcpy(v2, buf, len - 4);
	tu_put_le32(v2 + 8, 2);
	tu_put_le32(v2 + 12, tu_le32(buf + 12) + 1);
	off = len - 4;
	tu_put_le32(v2 + off, (uint32_t)strlen(name));
	memcpy(v2 + off + 4, name, strlen(name));
	off += 4 + strlen(name);
	tu_put_le32(v2 + off, PB_PARAM_MASK);
	tu_put_le32(v2 + off + 4, 2);
	tu_put_le32(v2 + off + 8, (uint32_t)fc->shape[0]);
	tu_put_le32(v2 + off + 12, (uint32_t)fc->shape[1]);
	off += 16;
	for (size_t i = 0; i < fc->n; i++, off += 4) {
		uint32_t bits;

		memcpy(&bits, &mk[i], 4);
		tu_put_le32(v2 + off, bits);
	}
	tu_put_le32(v2 + off, (uint32_t)crc32(crc32(0L, Z_NULL, 0), v2,
					      (uInt)off));
	assert_int_equal(off + 4, n2);
	{
		FILE *f = fopen(path, "wb");

		assert_int_equal(fwrite(v2, 1, n2, f), n2);
		fclose(f);
	}
	if (pb_checkpoint_load(b, path, &err))
		fail_msg("%s", err.msg);
	for (int i = 0; i < pb_model_n_params(m); i++)
		assert_memory_equal(pb_model_param(m, i)->data,
				    pb_model_param(b, i)->data,
				    pb_model_param(m, i)->n * sizeof(float));
	assert_memory_equal(pbi_mask_get(b, pb_model_find_param(b, "fc.weight"),
					 0), mk, fc->n * sizeof(float));
	assert_null(pbi_mask_get(b, pb_model_find_param(b, "conv1.weight"),
				 0));
	free(buf);
	free(v2);
	pb_model_free(m);
	pb_model_free(b);
	tu_rm_tree(dir);
}

static const char narrow[] =
	"[model]\nname = w\ninput = 1x1x100\nclasses = 3\n"
	"[flat]\ntype = flatten\n[fc]\ntype = linear\nout = 3\nbias = no\n";

/* A CSR entry that points past its row, with the CRC recomputed so the
 * file looks sound: refused, model untouched. And an unknown encoding. */
static void test_corrupt_encodings(void **state)
{
	pb_model *m = tu_parse_model(narrow, "n.ini"), *b;
	pb_param *w = pb_model_find_param(m, "fc.weight");
	pb_checkpoint_opts sparse = { .sparse = 1 };
	unsigned char *buf = NULL;
	size_t len, rec = 25, entries;
	pb_error err = { 0 };
	char *dir = tu_temp_dir(), path[600];
	float before;

	(void)state;
	snprintf(path, sizeof path, "%s/bad.ckpt", dir);
	memset(w->data, 0, w->n * sizeof(float));
	w->data[3] = 1.0f;
	w->data[100 + 2] = 2.0f;
	assert_int_equal(pb_checkpoint_encode(m, &sparse, &buf, &len, &err),
			 0);
	/* Record: name length, "fc.weight", kind|encoding, ndim, 2 dims,
	 * then 4 offsets; entries after them. */
	assert_int_equal(tu_le32(buf + rec + 4 + 9) >> 16, 2);
	entries = rec + 4 + 9 + 8 + 8 + 16;
	buf[entries + 4] = 200;           /* column 200 of 100 */
	tu_put_le32(buf + len - 4, (uint32_t)crc32(crc32(0L, Z_NULL, 0), buf,
						(uInt)(len - 4)));
	{
		FILE *f = fopen(path, "wb");

		assert_int_equal(fwrite(buf, 1, len, f), len);
		fclose(f);
	}
	b = tu_parse_model(narrow, "n.ini");
	pb_model_find_param(b, "fc.weight")->data[0] = 7.0f;
	before = 7.0f;
	assert_int_equal(pb_checkpoint_load(b, path, &err), PB_EFORMAT);
	assert_non_null(strstr(err.msg, "past the end of row 0"));
	assert_true(pb_model_find_param(b, "fc.weight")->data[0] == before);
	/* Encoding 9 does not exist. */
	tu_put_le32(buf + rec + 4 + 9, (9u << 16) | PB_PARAM_WEIGHT);
	tu_put_le32(buf + len - 4, (uint32_t)crc32(crc32(0L, Z_NULL, 0), buf,
						(uInt)(len - 4)));
	{
		FILE *f = fopen(path, "wb");

		assert_int_equal(fwrite(buf, 1, len, f), len);
		fclose(f);
	}
	assert_int_equal(pb_checkpoint_load(b, path, &err), PB_EFORMAT);
	assert_non_null(strstr(err.msg, "encoding 9"));
	free(buf);
	pb_model_free(m);
	pb_model_free(b);
	tu_rm_tree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_weights),
		cmocka_unit_test(test_act_code),
		cmocka_unit_test(test_marks),
		cmocka_unit_test(test_int8_round_trip),
		cmocka_unit_test(test_sparse_encodings),
		cmocka_unit_test(test_version2_float_masks),
		cmocka_unit_test(test_corrupt_encodings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
