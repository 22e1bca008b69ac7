/* prunebench quantize: a trained (pruned) checkpoint to int8 after the
 * fact, its top-1 before and after, the int8 checkpoint written and
 * loaded back, and the five file sizes. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "cli/cli.h"
#include "prunebench/metrics.h"

static const char quantize_usage[] =
	"Usage: prunebench quantize MODEL.ini FILE.ckpt --out INT8.ckpt\n"
	"                           [options]\n"
	"\n"
	"Quantizes the model to int8 as deployed after pruning: conv and\n"
	"linear weights int8 with a scale per output channel (0.0 stays\n"
	"exactly 0, so pruned weights and masks survive), and with\n"
	"--activations int8 the activations conv and linear layers read,\n"
	"8 bits per tensor, calibrated on the validation split. Prints test\n"
	"top-1 of the float and the int8 model, writes the int8 checkpoint\n"
	"(sparse encoding), loads it back and evaluates it again, and prints\n"
	"the sizes as files: float32, sparse, zlib, int8, int8+sparse+zlib.\n"
	"`prunebench eval MODEL.ini INT8.ckpt` evaluates the file as here.\n"
	"\n"
	"  --out FILE           the int8 checkpoint (load it with MODEL.ini)\n"
	"  --activations A      int8 (default) or float (weights only)\n"
	"  --data SPEC          dataset (default fashion-mnist)\n"
	"  --val-size N         validation images for calibration (default\n"
	"                       5000, split seed 42, as train)\n"
	"  --batch N            evaluation batch (default 500)\n"
	"  --threads N          OpenMP threads (default: all cores)\n";

enum { OPT_ACT = 256, OPT_VAL };

static const struct option quantize_opts[] = {
	{ "out", required_argument, NULL, 'o' },
	{ "activations", required_argument, NULL, OPT_ACT },
	{ "data", required_argument, NULL, 'd' },
	{ "val-size", required_argument, NULL, OPT_VAL },
	{ "batch", required_argument, NULL, 'b' },
	{ "threads", required_argument, NULL, 't' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

#define KIB 1024.0

static void print_sizes(const pb_file_sizes *d, const pb_file_sizes *q)
{
	const struct { const char *name; uint64_t a, b; } rows[] = {
		{ "float32", d->f32, 0 },
		{ "sparse", d->sparse, 0 },
		{ "float32 + zlib", d->f32_zlib, 0 },
		{ "int8", q->int8, 0 },
		{ "int8 + sparse + zlib", q->int8_zlib, 0 },
	};

	printf("  %-22s %12s %10s %9s\n", "file", "bytes", "KiB",
	       "vs f32");
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
		printf("  %-22s %12llu %10.1f %8.3fx\n", rows[i].name,
		       (unsigned long long)rows[i].a, (double)rows[i].a / KIB,
		       rows[i].a ? (double)d->f32 / (double)rows[i].a : 0.0);
}

int cmd_quantize(int argc, char **argv)
{
	cli_common c;
	pb_error err = { 0 };
	pb_model *m = NULL, *back = NULL;
	pb_quant *q = NULL, *qb = NULL;
	pb_data_spec spec;
	pb_splits sp;
	pb_file_sizes zf, zq;
	pb_checkpoint_opts o = { .sparse = 1 };
	const char *out = NULL;
	double acc_f, acc_q, acc_b, loss;
	long batch = 500, val = 5000;
	int opt, act = 1, rc, have_sp = 0;

	cli_common_init(&c);
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", quantize_opts, NULL)) != -1) {
		switch (opt) {
		case 'o': out = optarg; break;
		case OPT_ACT:
			if (strcmp(optarg, "int8") && strcmp(optarg, "float"))
				return cli_usage_error("quantize", "--activations"
						       " '%s': use int8 or "
						       "float", optarg);
			act = !strcmp(optarg, "int8");
			break;
		case 'd': c.data = optarg; break;
		case OPT_VAL:
			if (cli_int("--val-size", optarg, 1, 10000000, &val))
				return 2;
			break;
		case 'b':
			if (cli_int("--batch", optarg, 1, 65536, &batch))
				return 2;
			break;
		case 't':
			if (cli_threads(optarg, &c.threads))
				return 2;
			break;
		case 'h': fputs(quantize_usage, stdout); return 0;
		default: return cli_usage_error("quantize", "bad option");
		}
	}
	if (optind != argc - 2)
		return cli_usage_error("quantize", "expected MODEL.ini and "
				       "FILE.ckpt");
	if (!out)
		return cli_usage_error("quantize", "--out INT8.ckpt is "
				       "required");
	if (pbi_same_file(out, argv[optind]) ||
	    pbi_same_file(out, argv[optind + 1]))
		return cli_usage_error("quantize", "--out %s is an input and "
				       "would be overwritten", out);
	cli_apply_threads(c.threads);
	if ((rc = pbi_check_output(out, "int8 checkpoint", &err)) ||
	    (rc = pb_data_spec_parse(&spec, c.data, &err)) ||
	    (rc = cli_load_trained(&m, argv[optind], argv[optind + 1],
				   &err)) ||
	    (rc = pb_splits_load(&sp, &spec, (int)val, c.split_seed, &err)))
		goto done;
	have_sp = 1;
	if ((rc = pb_evaluate(m, &sp.test, (int)batch, &acc_f, &loss, &err)) ||
	    (rc = pb_file_sizes_of(m, NULL, &zf, &err)) ||
	    (rc = pb_quantize_model(m, act, &sp.val, (int)batch, &q, &err)) ||
	    (rc = pb_quant_evaluate(m, q, &sp.test, (int)batch, &acc_q, &loss,
				    &err)) ||
	    (rc = pb_file_sizes_of(m, q, &zq, &err)))
		goto done;
	o.quant = q;
	/* The file, loaded back into a fresh model: it must evaluate to the
	 * same accuracy, or the file is not what was measured. */
	if ((rc = pb_checkpoint_save_opts(m, out, &o, &err)) ||
	    (rc = pb_model_load(&back, argv[optind], &err)) ||
	    (rc = pb_checkpoint_load_quant(back, out, &qb, &err)) ||
	    (rc = pb_quant_evaluate(back, qb, &sp.test, (int)batch, &acc_b,
				    &loss, &err)))
		goto done;
	printf("int8 (%s): test top-1 float %.2f%%  int8 %.2f%%  (%+.2f pt; "
	       "%s loaded back: %.2f%%)\n", act ? "weights and activations" :
	       "weights only", 100 * acc_f, 100 * acc_q,
	       100 * (acc_q - acc_f), out, 100 * acc_b);
	print_sizes(&zf, &zq);
	if (acc_b != acc_q) {
		rc = pb_error_set(&err, PB_EFORMAT, "%s evaluates to %.2f%% "
				  "loaded back, not %.2f%%", out, 100 * acc_b,
				  100 * acc_q);
		goto done;
	}
	printf("wrote %s\n", out);
done:
	if (have_sp)
		pb_splits_free(&sp);
	pb_quant_free(q);
	pb_quant_free(qb);
	pb_model_free(m);
	pb_model_free(back);
	return rc ? cli_fail("quantize", &err) : 0;
}
