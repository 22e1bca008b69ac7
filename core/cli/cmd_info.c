/* prunebench info: the layer table of a model file. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const char info_usage[] =
	"Usage: prunebench info MODEL.ini\n"
	"\n"
	"Prints every layer with its inputs, output shape (C x H x W of one\n"
	"sample), trainable parameters and multiply-accumulates of one\n"
	"forward pass, and the totals.\n";

static void print_inputs(const pb_model *m, const pb_layer_info *li,
			 char *buf, size_t n)
{
	buf[0] = '\0';
	for (int k = 0; k < li->n_inputs; k++) {
		const char *name = li->inputs[k] < 0 ? "input" :
				   pb_model_layer(m, li->inputs[k])->name;
		if (k)
			strncat(buf, ",", n - strlen(buf) - 1);
		strncat(buf, name, n - strlen(buf) - 1);
	}
}

int cmd_info(int argc, char **argv)
{
	pb_error err = { 0 };
	pb_model *m = NULL;
	int c, h, w;

	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(info_usage, stdout);
		return 0;
	}
	if (argc != 2)
		return cli_usage_error("info", "expected one MODEL.ini");
	if (pb_model_load(&m, argv[1], &err))
		return cli_fail("info", &err);
	pb_model_input_shape(m, &c, &h, &w);
	printf("model %s: input %dx%dx%d, %d classes\n\n", pb_model_name(m), c,
	       h, w, pb_model_classes(m));
	printf("%-14s %-8s %-16s %-14s %10s %14s\n", "layer", "type", "input",
	       "output", "params", "MACs");
	for (int i = 0; i < pb_model_n_layers(m); i++) {
		const pb_layer_info *li = pb_model_layer(m, i);
		char shape[48], inputs[64];
		print_inputs(m, li, inputs, sizeof inputs);
		snprintf(shape, sizeof shape, "%dx%dx%d", li->out_c, li->out_h,
			 li->out_w);
		printf("%-14s %-8s %-16s %-14s %10zu %14" PRIu64 "\n", li->name,
		       pb_layer_type_name(li->type), inputs, shape,
		       pb_model_layer_params(m, i), pb_model_layer_macs(m, i));
	}
	printf("\ntotal: %zu parameters (%.3f MiB as float32), %" PRIu64
	       " MACs (%.2f MMACs) per image\n", pb_model_count_params(m),
	       pb_model_count_params(m) * 4.0 / (1024.0 * 1024.0),
	       pb_model_count_macs(m), pb_model_count_macs(m) / 1e6);
	pb_model_free(m);
	return 0;
}
