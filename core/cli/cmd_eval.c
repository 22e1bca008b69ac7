/* prunebench eval: test-set accuracy of a checkpoint. */
#include <getopt.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "base/util.h"

static const char eval_usage[] =
	"Usage: prunebench eval MODEL.ini FILE.ckpt [options]\n"
	"\n"
	"Loads the checkpoint into MODEL and prints its top-1 accuracy and\n"
	"mean cross-entropy on the test split. An int8 checkpoint (prunebench\n"
	"quantize) is evaluated as it was measured: its int8 weights, and its\n"
	"activations rounded to 8 bits when it carries their ranges.\n"
	"\n"
	"  --data SPEC      dataset (default fashion-mnist)\n"
	"  --batch N        evaluation batch (default 500)\n"
	"  --threads N      OpenMP threads (default: all cores)\n";

static const struct option eval_opts[] = {
	{ "data", required_argument, NULL, 'd' },
	{ "batch", required_argument, NULL, 'b' },
	{ "threads", required_argument, NULL, 't' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

int cmd_eval(int argc, char **argv)
{
	cli_common c;
	pb_error err = { 0 };
	pb_model *m = NULL;
	pb_quant *q = NULL;
	pb_data_spec spec;
	pb_splits sp;
	double acc, loss, t0;
	long batch = 500;
	int opt, rc;

	cli_common_init(&c);
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", eval_opts, NULL)) != -1) {
		switch (opt) {
		case 'd': c.data = optarg; break;
		case 'b':
			if (cli_int("--batch", optarg, 1, 65536, &batch))
				return 2;
			break;
		case 't':
			if (cli_threads(optarg, &c.threads))
				return 2;
			break;
		case 'h': fputs(eval_usage, stdout); return 0;
		default: return cli_usage_error("eval", "bad option");
		}
	}
	if (optind != argc - 2)
		return cli_usage_error("eval", "expected MODEL.ini and FILE.ckpt");
	cli_apply_threads(c.threads);
	if (pb_data_spec_parse(&spec, c.data, &err) ||
	    pb_model_load(&m, argv[optind], &err))
		return cli_fail("eval", &err);
	if ((rc = pb_checkpoint_load_quant(m, argv[optind + 1], &q, &err))) {
		pb_model_free(m);
		return cli_fail("eval", &err);
	}
	/* The split does not matter for the test set, but normalisation
	 * statistics come from the training file, as in training. */
	if ((rc = pb_splits_load(&sp, &spec, 0, c.split_seed, &err))) {
		pb_quant_free(q);
		pb_model_free(m);
		return cli_fail("eval", &err);
	}
	t0 = pbi_now();
	rc = pb_quant_evaluate(m, q, &sp.test, (int)batch, &acc, &loss, &err);
	if (!rc)
		printf("test accuracy %.2f%%  test loss %.4f  (%d images, "
		       "%.2f s%s)\n", 100.0 * acc, loss, sp.test.n,
		       pbi_now() - t0, !q ? "" : q->activations ?
		       "; int8 weights and activations" : "; int8 weights");
	pb_splits_free(&sp);
	pb_quant_free(q);
	pb_model_free(m);
	return rc ? cli_fail("eval", &err) : 0;
}
