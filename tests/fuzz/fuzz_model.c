/* Fuzzing the model INI reader (pb_model_parse): the text of a model file.
 *
 * A refused file must say why. A model that loads (of up to 2^24
 * parameters) must read back as the same graph from the INI
 * pb_model_write_ini writes (pruned models are saved that way), and,
 * when it is small, must run: one evaluation
 * forward pass, and a training forward and backward pass of two samples,
 * so that shapes the reader accepted but the layers cannot handle show
 * up here rather than in a sweep. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "fuzz_common.h"
#include "prunebench/model.h"

/* Only models this small run (MACs of one sample, parameters): a
 * forward pass of a large model teaches the fuzzer nothing and costs
 * seconds. */
#define RUN_MAX_MACS 200000u
#define RUN_MAX_PARAMS 200000u
#define RUN_MAX_ELEMS 100000
/* The write-back check holds a second copy of the model: two copies of a
 * model near the 2^27-parameter limit, weights and gradients, take over
 * 2 GiB, past the fuzzer's memory limit. A large model's INI is written
 * by the same code as a small one's. */
#define ROUND_TRIP_MAX_PARAMS ((size_t)1 << 24)

static gsl_rng *rng;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_setup();
	rng = gsl_rng_alloc(gsl_rng_mt19937);
	return 0;
}

static void same_graph(const pb_model *a, const pb_model *b)
{
	int ca, ha, wa, cb, hb, wb;

	pb_model_input_shape(a, &ca, &ha, &wa);
	pb_model_input_shape(b, &cb, &hb, &wb);
	if (strcmp(pb_model_name(a), pb_model_name(b)) || ca != cb ||
	    ha != hb || wa != wb ||
	    pb_model_classes(a) != pb_model_classes(b) ||
	    pb_model_n_layers(a) != pb_model_n_layers(b) ||
	    pb_model_n_params(a) != pb_model_n_params(b) ||
	    pb_model_count_params(a) != pb_model_count_params(b) ||
	    pb_model_count_macs(a) != pb_model_count_macs(b))
		fuzz_fail("the written model INI reads back as another model");
	for (int i = 0; i < pb_model_n_layers(a); i++) {
		const pb_layer_info *x = pb_model_layer(a, i);
		const pb_layer_info *y = pb_model_layer(b, i);

		if (strcmp(x->name, y->name) || x->type != y->type ||
		    x->n_inputs != y->n_inputs ||
		    x->inputs[0] != y->inputs[0] ||
		    (x->n_inputs > 1 && x->inputs[1] != y->inputs[1]) ||
		    x->out_c != y->out_c || x->out_h != y->out_h ||
		    x->out_w != y->out_w || x->kernel != y->kernel ||
		    x->stride != y->stride || x->pad != y->pad ||
		    x->has_bias != y->has_bias || x->global != y->global ||
		    x->eps != y->eps || x->momentum != y->momentum ||
		    x->p != y->p)
			fuzz_fail("layer %d ('%s') reads back differently from "
				  "the written model INI", i, x->name);
	}
}

static void round_trip(const pb_model *m)
{
	char path[512];
	pb_model *back = NULL;
	pb_error err = { 0 };
	int rc;

	snprintf(path, sizeof path, "%s/model.ini", fuzz_dir());
	if ((rc = pb_model_write_ini(m, path, &err)))
		fuzz_fail("pb_model_write_ini: %s", err.msg);
	if ((rc = pb_model_load(&back, path, &err)))
		fuzz_fail("the written model INI does not load: %s", err.msg);
	same_graph(m, back);
	pb_model_free(back);
}

static void run(pb_model *m)
{
	const float *logits;
	pb_error err = { 0 };
	float *x, *dl;
	int c, h, w, classes = pb_model_classes(m);
	size_t n;

	pb_model_input_shape(m, &c, &h, &w);
	n = (size_t)c * (size_t)h * (size_t)w;
	if (pb_model_count_macs(m) > RUN_MAX_MACS ||
	    pb_model_count_params(m) > RUN_MAX_PARAMS ||
	    n > RUN_MAX_ELEMS || classes > RUN_MAX_ELEMS)
		return;
	gsl_rng_set(rng, 1);
	if (pb_model_init_params(m, rng, &err))
		fuzz_fail("pb_model_init_params: %s", err.msg);
	x = malloc(2 * n * sizeof *x);
	dl = malloc(2 * (size_t)classes * sizeof *dl);
	if (!x || !dl)
		fuzz_fail("out of memory");
	for (size_t i = 0; i < 2 * n; i++)
		x[i] = (float)((i * 7919u) % 255u) / 255.0f - 0.5f;
	for (size_t i = 0; i < 2 * (size_t)classes; i++)
		dl[i] = (float)(i % 3) - 1.0f;
	if (pb_model_forward(m, x, 1, 0, NULL, &logits, &err))
		fuzz_fail("evaluation forward: %s", err.msg);
	if (pb_model_forward(m, x, 2, 1, rng, &logits, &err))
		fuzz_fail("training forward: %s", err.msg);
	pb_model_zero_grad(m);
	if (pb_model_backward(m, dl, &err))
		fuzz_fail("backward: %s", err.msg);
	free(x);
	free(dl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_text(data, size);
	pb_model *m = NULL;
	pb_error err = { 0 };
	int rc;

	if (!text)
		return 0;
	rc = pb_model_parse(&m, text, "fuzz.ini", &err);
	if (rc) {
		fuzz_check_error(rc, &err, "pb_model_parse");
		if (m)
			fuzz_fail("pb_model_parse failed but returned a model");
	} else {
		if (pb_model_trainable_size(m) <= ROUND_TRIP_MAX_PARAMS)
			round_trip(m);
		run(m);
		pb_model_free(m);
	}
	free(text);
	return 0;
}
