/* Model INI files: every error names file:line and says what is wrong;
 * the shipped models parse; pb_model_write_ini reads back to the same
 * graph. */
#include "testutil.h"

#include <unistd.h>

#include "prunebench/prunebench.h"

/* Lines 1-4 of most cases below; layers start at line 5. */
#define HDR "[model]\nname = t\ninput = 1x8x8\nclasses = 4\n"
/* A valid tail: flatten 1x8x8 (or whatever comes before) and fc 4. */
#define TAIL "[flat]\ntype = flatten\n[fc]\ntype = linear\nout = 4\n"

/* Parses text as "t.ini" and expects failure with code and a message
 * containing want. */
static void expect_err(const char *text, int code, const char *want)
{
	pb_model *m = (pb_model *)1;
	pb_error err = { 0 };
	int rc = pb_model_parse(&m, text, "t.ini", &err);

	if (rc == 0) {
		pb_model_free(m);
		fail_msg("parsed, but expected an error containing \"%s\"",
			 want);
	}
	assert_null(m);
	if (!strstr(err.msg, want))
		fail_msg("error \"%s\" does not contain \"%s\"", err.msg, want);
	assert_int_equal(rc, code);
	assert_int_equal(err.code, code);
}

static void test_unknown_type(void **state)
{
	(void)state;
	expect_err(HDR "[c1]\ntype = convv\n" TAIL, PB_EPARSE,
		   "t.ini:6: [c1] unknown layer type 'convv'; valid types: "
		   "conv, bn, relu, maxpool, avgpool, linear, flatten, "
		   "dropout, add");
	expect_err(HDR "[c1]\nout = 4\n" TAIL, PB_EPARSE,
		   "t.ini:5: [c1] has no 'type'");
	/* A section with no keys at all is seen too. */
	expect_err(HDR "[c1]\n" TAIL, PB_EPARSE, "t.ini:5: [c1] has no 'type'");
}

static void test_duplicate_section(void **state)
{
	(void)state;
	expect_err(HDR "[r]\ntype = relu\n[f]\ntype = flatten\n[r]\n"
		   "type = relu\n[fc]\ntype = linear\nout = 4\n", PB_EPARSE,
		   "t.ini:9: duplicate section name [r] (first at line 5)");
	/* Back to back: inih alone would merge them. */
	expect_err(HDR "[flat]\ntype = flatten\n[flat]\n"
		   "[fc]\ntype = linear\nout = 4\n", PB_EPARSE,
		   "t.ini:7: duplicate section name [flat] (first at line 5)");
	/* "model" is reserved for the header section. */
	expect_err(HDR TAIL "[model]\nname = u\n", PB_EPARSE,
		   "t.ini:10: duplicate section name [model] (first at "
		   "line 1)");
	expect_err(HDR "[input]\ntype = relu\n" TAIL, PB_EPARSE,
		   "t.ini:5: [input] is reserved");
	expect_err(HDR "[a.b]\ntype = relu\n" TAIL, PB_EPARSE,
		   "t.ini:5: bad section name [a.b]");
}

static void test_unknown_input(void **state)
{
	(void)state;
	expect_err(HDR "[f]\ntype = flatten\ninput = nope\n"
		   "[fc]\ntype = linear\nout = 4\n", PB_EPARSE,
		   "t.ini:7: [f] input: unknown input 'nope'");
	expect_err(HDR "[f]\ntype = flatten\ninput = fc\n"
		   "[fc]\ntype = linear\nout = 4\n", PB_EPARSE,
		   "t.ini:7: [f] input = fc refers to a later layer (line 8)");
	expect_err(HDR "[f]\ntype = flatten\ninput = f\n"
		   "[fc]\ntype = linear\nout = 4\n", PB_EPARSE,
		   "t.ini:7: [f] input = f: a layer cannot be its own input");
	expect_err(HDR "[f]\ntype = flatten\ninput = model\n"
		   "[fc]\ntype = linear\nout = 4\n", PB_EPARSE,
		   "t.ini:7: [f] input: unknown input 'model'");
}

static void test_add_errors(void **state)
{
	(void)state;
	/* 5 [a], 9 [s], 11 inputs */
	expect_err(HDR "[a]\ntype = conv\nout = 1\nkernel = 1\n"
		   "[s]\ntype = add\ninputs = a\n" TAIL, PB_EPARSE,
		   "t.ini:11: [s] add takes exactly two inputs");
	expect_err(HDR "[a]\ntype = conv\nout = 1\nkernel = 1\n"
		   "[s]\ntype = add\ninputs = a, input, a\n" TAIL, PB_EPARSE,
		   "t.ini:11: [s] add takes exactly two inputs");
	expect_err(HDR "[a]\ntype = conv\nout = 1\nkernel = 1\n"
		   "[s]\ntype = add\ninputs = a,\n" TAIL, PB_EPARSE,
		   "t.ini:11: [s] add takes exactly two inputs");
	expect_err(HDR "[a]\ntype = conv\nout = 1\nkernel = 1\n"
		   "[s]\ntype = add\n" TAIL, PB_EPARSE,
		   "t.ini:9: [s] (type add) is missing required key inputs");
	expect_err(HDR "[a]\ntype = conv\nout = 1\nkernel = 1\n"
		   "[s]\ntype = add\ninput = a\n" TAIL, PB_EPARSE,
		   "t.ini:11: unknown key 'input' in [s] (type add); valid "
		   "keys: type, inputs");
	expect_err(HDR "[a]\ntype = conv\nout = 1\nkernel = 1\n"
		   "[s]\ntype = add\ninputs = a, b\n" TAIL, PB_EPARSE,
		   "t.ini:11: [s] inputs: unknown input 'b'");
	/* 5 [a], 9 [b], 15 [s] */
	expect_err(HDR "[a]\ntype = conv\nout = 4\nkernel = 1\n"
		   "[b]\ntype = conv\ninput = input\nout = 4\nkernel = 1\n"
		   "stride = 2\n[s]\ntype = add\ninputs = a, b\n" TAIL,
		   PB_EFORMAT,
		   "t.ini:15: [s] add needs inputs of the same shape, but [a] "
		   "is 4x8x8 and [b] is 4x4x4");
}

static void test_bad_shape(void **state)
{
	(void)state;
	expect_err("[model]\nname = t\ninput = 1x28\nclasses = 4\n" TAIL,
		   PB_EPARSE, "t.ini:3: [model] input = '1x28' is not a shape");
	expect_err("[model]\nname = t\ninput = 1x28x28x2\nclasses = 4\n" TAIL,
		   PB_EPARSE, "t.ini:3: [model] input = '1x28x28x2'");
	expect_err("[model]\nname = t\ninput = 0x28x28\nclasses = 4\n" TAIL,
		   PB_EPARSE, "t.ini:3: [model] input = '0x28x28'");
	expect_err("[model]\nname = t\ninput = axbxc\nclasses = 4\n" TAIL,
		   PB_EPARSE, "t.ini:3: [model] input = 'axbxc'");
	/* Kernel larger than the (padded) input: the output would be
	 * empty. */
	expect_err(HDR "[c]\ntype = conv\nout = 2\nkernel = 11\npad = 1\n"
		   TAIL, PB_EFORMAT,
		   "t.ini:5: [c] kernel 11 is larger than its input 8x8 (with "
		   "pad 1)");
	expect_err(HDR "[p]\ntype = maxpool\nkernel = 9\n" TAIL, PB_EFORMAT,
		   "t.ini:5: [p] kernel 9 is larger than its input 8x8");
	/* 5 [p1] 8x8 -> 2x2, 8 [p2] kernel 3 on 2x2 */
	expect_err(HDR "[p1]\ntype = maxpool\nkernel = 4\n"
		   "[p2]\ntype = avgpool\nkernel = 3\n" TAIL, PB_EFORMAT,
		   "t.ini:8: [p2] kernel 3 is larger than its input 2x2");
	/* Conv and pools need an image, not a flat vector. */
	expect_err(HDR "[f]\ntype = flatten\n[c]\ntype = conv\nout = 4\n"
		   "kernel = 1\n[fc]\ntype = linear\nout = 4\n", PB_EFORMAT,
		   "t.ini:7: [c] conv needs an image input (CxHxW), but [f] "
		   "outputs a flat vector of 64");
}

static void test_unknown_key(void **state)
{
	(void)state;
	expect_err(HDR "[r]\ntype = relu\nkernel = 3\n" TAIL, PB_EPARSE,
		   "t.ini:7: unknown key 'kernel' in [r] (type relu); valid "
		   "keys: type, input");
	/* The key list is checked even when type comes last. */
	expect_err(HDR "[c]\nouts = 4\nkernel = 3\ntype = conv\n" TAIL,
		   PB_EPARSE,
		   "t.ini:6: unknown key 'outs' in [c] (type conv); valid "
		   "keys: type, input, out, kernel, stride, pad, bias");
	expect_err(HDR "[p]\ntype = maxpool\nkernel = 2\npad = 1\n" TAIL,
		   PB_EPARSE, "t.ini:8: unknown key 'pad' in [p] (type "
		   "maxpool)");
	expect_err("[model]\nname = t\ninput = 1x8x8\nclasses = 4\n"
		   "layers = 3\n" TAIL, PB_EPARSE,
		   "t.ini:5: unknown key 'layers' in [model]; valid keys: "
		   "name, input, classes");
	expect_err(HDR "[c]\ntype = conv\nout = 4\nkernel = 3\nout = 5\n"
		   TAIL, PB_EPARSE,
		   "t.ini:9: [c] key 'out' is given twice (first at line 7)");
}

static void test_missing_key(void **state)
{
	(void)state;
	expect_err(HDR "[c]\ntype = conv\nkernel = 3\n" TAIL, PB_EPARSE,
		   "t.ini:5: [c] (type conv) is missing required key out");
	expect_err(HDR "[c]\ntype = conv\n" TAIL, PB_EPARSE,
		   "t.ini:5: [c] (type conv) is missing required keys out, "
		   "kernel");
	expect_err(HDR "[p]\ntype = maxpool\n" TAIL, PB_EPARSE,
		   "t.ini:5: [p] (type maxpool) is missing required key "
		   "kernel");
	expect_err(HDR "[f]\ntype = flatten\n[fc]\ntype = linear\n",
		   PB_EPARSE,
		   "t.ini:7: [fc] (type linear) is missing required key out");
	expect_err(HDR "[p]\ntype = avgpool\n" TAIL, PB_EPARSE,
		   "t.ini:5: [p] (type avgpool) is missing required key "
		   "kernel (or set global = yes)");
	expect_err(HDR "[p]\ntype = avgpool\nglobal = yes\nkernel = 2\n" TAIL,
		   PB_EPARSE, "t.ini:5: [p] global = yes takes no kernel");
}

static void test_bad_value(void **state)
{
	(void)state;
	expect_err(HDR "[c]\ntype = conv\nout = abc\nkernel = 3\n" TAIL,
		   PB_EPARSE, "t.ini:7: [c] out = 'abc' is not an integer");
	expect_err(HDR "[c]\ntype = conv\nout = 4\nkernel = 3.5\n" TAIL,
		   PB_EPARSE, "t.ini:8: [c] kernel = '3.5' is not an integer");
	expect_err(HDR "[c]\ntype = conv\nout = 4\nkernel = 3\nstride = 0\n"
		   TAIL, PB_EPARSE, "t.ini:9: [c] stride = 0 is out of range");
	expect_err(HDR "[c]\ntype = conv\nout = 4\nkernel = 3\nbias = maybe\n"
		   TAIL, PB_EPARSE,
		   "t.ini:9: [c] bias = 'maybe' is not yes or no");
	expect_err(HDR "[b]\ntype = bn\neps = small\n" TAIL, PB_EPARSE,
		   "t.ini:7: [b] eps = 'small' is not a number");
	expect_err(HDR "[d]\ntype = dropout\np = 1\n" TAIL, PB_EPARSE,
		   "t.ini:7: [d] p = 1 is out of range [0, 1)");
	expect_err("[model]\nname = t\ninput = 1x8x8\nclasses = ten\n" TAIL,
		   PB_EPARSE, "t.ini:4: [model] classes = 'ten' is not an "
		   "integer");
	expect_err(HDR "[f]\ntype = flatten\ninput =\n[fc]\ntype = linear\n"
		   "out = 4\n", PB_EPARSE, "t.ini:7: [f] input: unknown input "
		   "''");
}

static void test_model_section(void **state)
{
	(void)state;
	expect_err(TAIL, PB_EPARSE, "t.ini:1: no [model] section");
	expect_err("[model]\nname = t\ninput = 1x8x8\n" TAIL, PB_EPARSE,
		   "t.ini:1: [model] is missing 'classes'");
	expect_err("; a comment\n[model]\ninput = 1x8x8\nclasses = 4\n" TAIL,
		   PB_EPARSE, "t.ini:2: [model] is missing 'name'");
	expect_err("[model]\nname = t\nclasses = 4\n" TAIL, PB_EPARSE,
		   "t.ini:1: [model] is missing 'input'");
	expect_err(HDR, PB_EPARSE, "t.ini:4: the model has no layers");
	expect_err("name = t\n" HDR TAIL, PB_EPARSE,
		   "t.ini:1: 'name' is outside any section");
}

static void test_linear_needs_flatten(void **state)
{
	(void)state;
	expect_err(HDR "[c]\ntype = conv\nout = 2\nkernel = 3\n"
		   "[fc]\ntype = linear\nout = 4\n", PB_EFORMAT,
		   "t.ini:9: [fc] linear needs a flat input, but [c] outputs "
		   "2x6x6; put a flatten layer before [fc]");
	/* Even a 1x1 map is an image: PyTorch would refuse it too. */
	expect_err(HDR "[g]\ntype = avgpool\nglobal = yes\n"
		   "[fc]\ntype = linear\nout = 4\n", PB_EFORMAT,
		   "t.ini:8: [fc] linear needs a flat input, but [g] outputs "
		   "1x1x1");
}

static void test_logits_width(void **state)
{
	(void)state;
	expect_err(HDR "[f]\ntype = flatten\n[fc]\ntype = linear\nout = 5\n",
		   PB_EFORMAT,
		   "t.ini:7: [fc] the last layer gives the logits and must "
		   "output a flat vector of classes = 4, but it outputs a flat "
		   "vector of 5");
	expect_err(HDR "[c]\ntype = conv\nout = 4\nkernel = 8\n", PB_EFORMAT,
		   "t.ini:5: [c] the last layer gives the logits and must "
		   "output a flat vector of classes = 4, but it outputs "
		   "4x1x1");
}

static void test_syntax_and_misc(void **state)
{
	char *long_line;

	(void)state;
	expect_err(HDR "[f]\ntype = flatten\nnonsense\n"
		   "[fc]\ntype = linear\nout = 4\n", PB_EPARSE,
		   "t.ini:7: syntax error");
	expect_err(HDR "[f\ntype = flatten\n" TAIL, PB_EPARSE,
		   "t.ini:5: syntax error");
	/* A dangling layer is almost always a mistyped input name. */
	expect_err(HDR "[a]\ntype = relu\n[f]\ntype = flatten\n"
		   "input = input\n[fc]\ntype = linear\nout = 4\n", PB_EFORMAT,
		   "t.ini:5: [a] output is not used by any later layer");
	long_line = malloc(600);
	snprintf(long_line, 600, HDR "[f]\ntype = flatten ; %0400d\n"
		 "[fc]\ntype = linear\nout = 4\n", 0);
	expect_err(long_line, PB_EPARSE, "t.ini:6: line is longer than");
	free(long_line);
}

static void test_load_missing_file(void **state)
{
	pb_model *m = NULL;
	pb_error err = { 0 };

	(void)state;
	assert_int_equal(pb_model_load(&m, "/nonexistent/dir/m.ini", &err),
			 PB_EIO);
	assert_null(m);
	assert_non_null(strstr(err.msg, "/nonexistent/dir/m.ini"));
}

/* Defaults and conveniences: the previous layer as default input,
 * `input = input`, keys in any order, indentation, comments. */
static void test_good_parse(void **state)
{
	static const char text[] =
		"; comment\n"
		"[model]\n"
		"  name = ok           ; inline comment\n"
		"  input = 2 x 9 x 9\n"
		"  classes = 3\n"
		"[c1]\n"
		"  out = 4\n"
		"  kernel = 3\n"
		"  type = conv\n"
		"[b1]\ntype = bn\neps = 1e-3\nmomentum = 0.2\n"
		"[p1]\ntype = maxpool\nkernel = 2\n"
		"[c2]\ntype = conv\ninput = input\nout = 4\nkernel = 3\n"
		"stride = 3\nbias = no\n"
		"[s]\ntype = add\ninputs = p1 , c2\n"
		"[a]\ntype = avgpool\nkernel = 2\nstride = 1\n"
		"[f]\ntype = flatten\n"
		"[d]\ntype = dropout\n"
		"[fc]\ntype = linear\nout = 3\nbias = false\n";
	pb_model *m = tu_parse_model(text, "t.ini");
	const pb_layer_info *li;
	int c, h, w;

	(void)state;
	assert_string_equal(pb_model_name(m), "ok");
	pb_model_input_shape(m, &c, &h, &w);
	assert_int_equal(c, 2);
	assert_int_equal(h, 9);
	assert_int_equal(w, 9);
	assert_int_equal(pb_model_classes(m), 3);
	assert_int_equal(pb_model_n_layers(m), 9);
	li = pb_model_layer(m, 0);
	assert_string_equal(li->name, "c1");
	assert_int_equal(li->type, PB_LAYER_CONV);
	assert_int_equal(li->inputs[0], -1);
	assert_int_equal(li->has_bias, 1);
	assert_int_equal(li->pad, 0);
	assert_int_equal(li->line, 6);
	assert_int_equal(li->out_c * 100 + li->out_h * 10 + li->out_w, 477);
	li = pb_model_layer(m, 1);
	assert_int_equal(li->inputs[0], 0);
	assert_true(li->eps == 1e-3f && li->momentum == 0.2f);
	li = pb_model_layer(m, 2);
	assert_int_equal(li->stride, 2);   /* defaults to the kernel */
	assert_int_equal(li->out_h, 3);
	li = pb_model_layer(m, 3);
	assert_int_equal(li->inputs[0], -1);
	assert_int_equal(li->has_bias, 0);
	assert_int_equal(li->out_h, 3);
	li = pb_model_layer(m, pb_model_find_layer(m, "s"));
	assert_int_equal(li->n_inputs, 2);
	assert_int_equal(li->inputs[0], 2);
	assert_int_equal(li->inputs[1], 3);
	li = pb_model_layer(m, pb_model_find_layer(m, "a"));
	assert_int_equal(li->out_h, 2);
	li = pb_model_layer(m, pb_model_find_layer(m, "d"));
	assert_true(li->p == 0.5f);
	li = pb_model_layer(m, pb_model_find_layer(m, "fc"));
	assert_int_equal(li->has_bias, 0);
	assert_int_equal(li->in_c, 16);
	assert_int_equal(pb_model_find_layer(m, "nope"), -1);
	assert_null(pb_model_layer(m, 9));
	assert_null(pb_model_find_param(m, "fc.bias"));
	assert_non_null(pb_model_find_param(m, "b1.running_var"));
	pb_model_free(m);
}

/* The flat arrays: trainable tensors in parameter order, each 16-float
 * aligned; running statistics elsewhere and without gradients. */
static void test_param_layout(void **state)
{
	pb_model *m = tu_parse_model(HDR "[c]\ntype = conv\nout = 3\n"
				     "kernel = 3\n[b]\ntype = bn\n" TAIL,
				     "t.ini");
	float *base = pb_model_trainable_data(m);
	float *prev_end = base;
	size_t total = 0;

	(void)state;
	assert_int_equal(pb_model_n_params(m), 8);
	for (int i = 0; i < pb_model_n_params(m); i++) {
		pb_param *p = pb_model_param(m, i);
		if (!p->trainable) {
			assert_null(p->grad);
			assert_true(p->data < base || p->data >=
				    base + pb_model_trainable_size(m));
			continue;
		}
		assert_int_equal((p->data - base) % 16, 0);
		assert_true(p->data >= prev_end);
		assert_ptr_equal(p->grad - pb_model_trainable_grad(m),
				 p->data - base);
		prev_end = p->data + p->n;
		total += p->n;
	}
	assert_true(prev_end <= base + pb_model_trainable_size(m));
	assert_int_equal(total, pb_model_count_params(m));
	assert_string_equal(pb_model_param(m, 0)->name, "c.weight");
	assert_string_equal(pb_model_param(m, 1)->name, "c.bias");
	assert_string_equal(pb_model_param(m, 2)->name, "b.weight");
	assert_int_equal(pb_model_param(m, 2)->kind, PB_PARAM_BN_GAMMA);
	assert_string_equal(pb_model_param(m, 4)->name, "b.running_mean");
	assert_string_equal(pb_model_param(m, 5)->name, "b.running_var");
	assert_string_equal(pb_model_param(m, 7)->name, "fc.bias");
	pb_model_free(m);
}

struct shipped {
	const char *file, *name;
	int c, hw, convs;
	size_t params;
};

/* Parameter counts worked out per architecture (see test_model_info.c
 * for VGG-S layer by layer):
 * lenet5: conv 6*1*25+6, conv 16*6*25+16, fc 400*120+120, 120*84+84,
 *         84*10+10.
 * resnet-s: stem 16*9 + bn 32; block1 2*(16*16*9 + 32); block2
 *         32*16*9 + 32*32*9 + 2*64 + proj 32*16 + 64; block3
 *         2*(32*32*9 + 64); fc 32*10+10.
 * vgg16-cifar: conv weights 14,710,464 + BN 8,448 + fc 5,130.
 * resnet20/56-cifar (option B): the well-known 269,722 / 853,018 of the
 *         option-A nets plus the two projections 16*32 + 32*64 and
 *         their BN 2*(32+64). */
static const struct shipped shipped[] = {
	{ "vgg-s.ini", "vgg-s", 1, 28, 6, 0 },
	{ "lenet5.ini", "lenet5", 1, 28, 2,
	  6 * 25 + 6 + 16 * 6 * 25 + 16 + 400 * 120 + 120 + 120 * 84 + 84 +
	  84 * 10 + 10 },
	{ "resnet-s.ini", "resnet-s", 1, 28, 8,
	  16 * 9 + 32 + 2 * (16 * 16 * 9 + 32) + 32 * 16 * 9 + 32 * 32 * 9 +
	  2 * 64 + 32 * 16 + 64 + 2 * (32 * 32 * 9 + 64) + 32 * 10 + 10 },
	{ "vgg16-cifar.ini", "vgg16-cifar", 3, 32, 13,
	  14710464 + 8448 + 5130 },
	{ "resnet20-cifar.ini", "resnet20-cifar", 3, 32, 21,
	  269722 + 16 * 32 + 32 * 64 + 2 * (32 + 64) },
	{ "resnet56-cifar.ini", "resnet56-cifar", 3, 32, 57,
	  853018 + 16 * 32 + 32 * 64 + 2 * (32 + 64) },
};
#define N_SHIPPED (sizeof shipped / sizeof shipped[0])

static void test_shipped_models(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_SHIPPED; i++) {
		const struct shipped *s = &shipped[i];
		pb_model *m = tu_load_shipped_model(s->file);
		const pb_layer_info *last;
		int c, h, w, convs = 0;

		assert_string_equal(pb_model_name(m), s->name);
		pb_model_input_shape(m, &c, &h, &w);
		assert_int_equal(c, s->c);
		assert_int_equal(h, s->hw);
		assert_int_equal(w, s->hw);
		assert_int_equal(pb_model_classes(m), 10);
		last = pb_model_layer(m, pb_model_n_layers(m) - 1);
		assert_int_equal(last->type, PB_LAYER_LINEAR);
		assert_int_equal(last->out_c, 10);
		for (int l = 0; l < pb_model_n_layers(m); l++)
			convs += pb_model_layer(m, l)->type == PB_LAYER_CONV;
		assert_int_equal(convs, s->convs);
		if (s->params)
			assert_int_equal(pb_model_count_params(m), s->params);
		pb_model_free(m);
	}
}

static void assert_same_graph(const pb_model *a, const pb_model *b)
{
	int ca, ha, wa, cb, hb, wb;

	assert_string_equal(pb_model_name(a), pb_model_name(b));
	pb_model_input_shape(a, &ca, &ha, &wa);
	pb_model_input_shape(b, &cb, &hb, &wb);
	assert_int_equal(ca, cb);
	assert_int_equal(ha, hb);
	assert_int_equal(wa, wb);
	assert_int_equal(pb_model_classes(a), pb_model_classes(b));
	assert_int_equal(pb_model_n_layers(a), pb_model_n_layers(b));
	for (int i = 0; i < pb_model_n_layers(a); i++) {
		const pb_layer_info *x = pb_model_layer(a, i);
		const pb_layer_info *y = pb_model_layer(b, i);
		assert_string_equal(x->name, y->name);
		assert_int_equal(x->type, y->type);
		assert_int_equal(x->n_inputs, y->n_inputs);
		for (int k = 0; k < x->n_inputs; k++)
			assert_int_equal(x->inputs[k], y->inputs[k]);
		assert_int_equal(x->in_c, y->in_c);
		assert_int_equal(x->in_h, y->in_h);
		assert_int_equal(x->in_w, y->in_w);
		assert_int_equal(x->out_c, y->out_c);
		assert_int_equal(x->out_h, y->out_h);
		assert_int_equal(x->out_w, y->out_w);
		assert_int_equal(x->kernel, y->kernel);
		assert_int_equal(x->stride, y->stride);
		assert_int_equal(x->pad, y->pad);
		assert_int_equal(x->has_bias, y->has_bias);
		assert_int_equal(x->global, y->global);
		assert_true(x->eps == y->eps);
		assert_true(x->momentum == y->momentum);
		assert_true(x->p == y->p);
	}
	assert_int_equal(pb_model_count_params(a), pb_model_count_params(b));
	assert_int_equal(pb_model_count_macs(a), pb_model_count_macs(b));
}

static void round_trip(pb_model *m, const char *dir)
{
	char path[1024];
	pb_model *back = NULL;
	pb_error err = { 0 };

	snprintf(path, sizeof path, "%s/%s.ini", dir, pb_model_name(m));
	if (pb_model_write_ini(m, path, &err))
		fail_msg("%s", err.msg);
	if (pb_model_load(&back, path, &err))
		fail_msg("%s", err.msg);
	assert_same_graph(m, back);
	pb_model_free(back);
	assert_int_equal(unlink(path), 0);
}

static void test_write_round_trip(void **state)
{
	/* Every non-default value the writer may drop or mangle. */
	static const char odd[] =
		"[model]\nname = odd\ninput = 3x11x10\nclasses = 2\n"
		"[c1]\ntype = conv\nout = 5\nkernel = 3\nstride = 2\npad = 2\n"
		"[b1]\ntype = bn\neps = 0.001\nmomentum = 0.01\n"
		"[r1]\ntype = relu\n"
		"[p1]\ntype = maxpool\nkernel = 3\nstride = 2\n"
		"[c2]\ntype = conv\ninput = input\nout = 5\nkernel = 5\n"
		"stride = 3\nbias = no\n"
		"[s]\ntype = add\ninputs = c2, p1\n"
		"[t]\ntype = add\ninputs = s, s\n"
		"[a]\ntype = avgpool\nkernel = 2\n"
		"[f]\ntype = flatten\n"
		"[d]\ntype = dropout\np = 0.3\n"
		"[fc1]\ntype = linear\nout = 7\nbias = no\n"
		"[fc2]\ntype = linear\nout = 2\n";
	char *dir = tu_temp_dir();
	pb_model *m = tu_parse_model(odd, "t.ini");

	(void)state;
	round_trip(m, dir);
	pb_model_free(m);
	for (size_t i = 0; i < N_SHIPPED; i++) {
		m = tu_load_shipped_model(shipped[i].file);
		round_trip(m, dir);
		pb_model_free(m);
	}
	assert_int_equal(rmdir(dir), 0);
	free(dir);
}

static void test_write_unwritable(void **state)
{
	pb_model *m = tu_parse_model(HDR TAIL, "t.ini");
	pb_error err = { 0 };

	(void)state;
	assert_int_equal(pb_model_write_ini(m, "/nonexistent/dir/m.ini", &err),
			 PB_EIO);
	assert_non_null(strstr(err.msg, "/nonexistent/dir/m.ini"));
	pb_model_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unknown_type),
		cmocka_unit_test(test_duplicate_section),
		cmocka_unit_test(test_unknown_input),
		cmocka_unit_test(test_add_errors),
		cmocka_unit_test(test_bad_shape),
		cmocka_unit_test(test_unknown_key),
		cmocka_unit_test(test_missing_key),
		cmocka_unit_test(test_bad_value),
		cmocka_unit_test(test_model_section),
		cmocka_unit_test(test_linear_needs_flatten),
		cmocka_unit_test(test_logits_width),
		cmocka_unit_test(test_syntax_and_misc),
		cmocka_unit_test(test_load_missing_file),
		cmocka_unit_test(test_good_parse),
		cmocka_unit_test(test_param_layout),
		cmocka_unit_test(test_shipped_models),
		cmocka_unit_test(test_write_round_trip),
		cmocka_unit_test(test_write_unwritable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
