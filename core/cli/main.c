#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const char usage[] =
	"Usage: prunebench COMMAND [ARGS]\n"
	"\n"
	"Commands:\n"
	"  train MODEL.ini --data SPEC --out FILE.ckpt   train a dense model\n"
	"  eval  MODEL.ini FILE.ckpt --data SPEC          test-set accuracy\n"
	"  info  MODEL.ini                                layers, params, MACs\n"
	"  prune MODEL.ini DENSE.ckpt --plugin NAME --target KIND=X --out P\n"
	"                                                 prune with a plugin\n"
	"  metrics MODEL.ini FILE.ckpt                    params, MACs, sizes, "
	"latency\n"
	"  plugins [NAME]                                 list pruner plugins\n"
	"  sensitivity MODEL.ini DENSE.ckpt --plugin NAME each layer pruned "
	"alone\n"
	"  quantize MODEL.ini FILE.ckpt --out INT8.ckpt   int8 after pruning\n"
	"  histogram MODEL.ini FILE.ckpt [--ref D.ckpt]   weight histograms\n"
	"  run EXPERIMENT.ini [--threads N] [--dry-run]   run or resume a sweep\n"
	"  table RESULTS_DIR [--ci] [--plots]             tables of a sweep\n"
	"  slurm EXPERIMENT.ini [--shards N] [--submit]   a sweep as Slurm "
	"job arrays\n"
	"  bench [--model FILE] [--batch N] [--threads N]\n"
	"                                                 images/s vs the "
	"machine's peaks\n"
	"\n"
	"Options:\n"
	"  --help       this text (also COMMAND --help)\n"
	"  --version    print the version and the BLAS in use\n"
	"\n"
	"Data SPEC: fashion-mnist[:DIR] | mnist:DIR | cifar10:DIR | synthetic:N[:SEED]\n";

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage, stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		fputs(usage, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("prunebench %s (%s)\n", pb_version(), pb_blas_name());
		return 0;
	}
	if (!strcmp(argv[1], "train"))
		return cmd_train(argc - 1, argv + 1);
	if (!strcmp(argv[1], "eval"))
		return cmd_eval(argc - 1, argv + 1);
	if (!strcmp(argv[1], "info"))
		return cmd_info(argc - 1, argv + 1);
	if (!strcmp(argv[1], "bench"))
		return cmd_bench(argc - 1, argv + 1);
	if (!strcmp(argv[1], "prune"))
		return cmd_prune(argc - 1, argv + 1);
	if (!strcmp(argv[1], "metrics"))
		return cmd_metrics(argc - 1, argv + 1);
	if (!strcmp(argv[1], "plugins"))
		return cmd_plugins(argc - 1, argv + 1);
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "table"))
		return cmd_table(argc - 1, argv + 1);
	if (!strcmp(argv[1], "slurm"))
		return cmd_slurm(argc - 1, argv + 1);
	if (!strcmp(argv[1], "quantize"))
		return cmd_quantize(argc - 1, argv + 1);
	if (!strcmp(argv[1], "sensitivity"))
		return cmd_sensitivity(argc - 1, argv + 1);
	if (!strcmp(argv[1], "histogram"))
		return cmd_histogram(argc - 1, argv + 1);
	fprintf(stderr, "prunebench: unknown command '%s'\n\n%s", argv[1],
		usage);
	return 2;
}
