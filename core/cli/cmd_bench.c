/* prunebench bench: training and inference throughput next to the
 * machine's sgemm and FMA ceilings, all measured in one run. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <omp.h>

#include "cli/cli.h"
#include "prunebench/bench.h"

static const char bench_usage[] =
	"Usage: prunebench bench [options]\n"
	"\n"
	"Times a training step (forward, softmax cross-entropy, backward, SGD\n"
	"with the default recipe) and an inference forward on random data, and\n"
	"prints images/s (median of the repeats) and the GFLOP/s of the\n"
	"conv/linear work (2 FLOP per MAC, training = 3x forward MACs), next to\n"
	"the GFLOP/s of a large cblas_sgemm and of a one-core FMA loop measured\n"
	"in the same run.\n"
	"\n"
	"  --model FILE     model INI (repeatable; default vgg-s and resnet-s)\n"
	"  --batch N        batch size (repeatable; default 128 and 1)\n"
	"  --iters N        timed steps per repeat (default: ~0.25 s worth)\n"
	"  --repeats N      timed repeats, the median is printed (default 7)\n"
	"  --threads N      OpenMP and OpenBLAS threads (default: all cores)\n"
	"  --no-train       inference only\n"
	"  --no-infer       training only\n"
	"  --no-peaks       skip the sgemm and FMA measurements\n"
	"  --sparsity S     instead: zero the fraction S of the smallest conv\n"
	"                   and linear weights (global magnitude) and time\n"
	"                   inference on the dense and on the sparse kernels\n"
	"                   (repeatable)\n"
	"  --convs          instead: time each conv layer's kernels alone\n"
	"                   (forward, input gradient, weight gradient) at\n"
	"                   its shape, GFLOP/s and ms per call\n"
	"  --tsv            machine-readable lines instead of the table\n";

static const struct option bench_opts[] = {
	{ "model", required_argument, NULL, 'm' },
	{ "batch", required_argument, NULL, 'b' },
	{ "iters", required_argument, NULL, 'i' },
	{ "repeats", required_argument, NULL, 'r' },
	{ "threads", required_argument, NULL, 't' },
	{ "no-train", no_argument, NULL, 'T' },
	{ "no-infer", no_argument, NULL, 'I' },
	{ "no-peaks", no_argument, NULL, 'P' },
	{ "tsv", no_argument, NULL, 'v' },
	{ "sparsity", required_argument, NULL, 's' },
	{ "convs", no_argument, NULL, 'c' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

#define MAX_LIST 8

/* The default models: the source tree's copies when run from it, else
 * the installed ones. */
static const char *default_model(const char *name, char *buf, size_t n)
{
	snprintf(buf, n, "experiments/models/%s.ini", name);
	if (access(buf, R_OK) == 0)
		return buf;
	snprintf(buf, n, "%s/models/%s.ini", PB_DATADIR, name);
	return buf;
}

static void print_header(int threads, int tsv)
{
	char cpu[256];
	const char *ct = getenv("OPENBLAS_CORETYPE");
	const char *sep = tsv ? "\t" : ": ";

	pb_bench_cpu_model(cpu, sizeof cpu);
	printf("%scpu%s%s, %d cores\n", tsv ? "" : "# ", sep, cpu,
	       omp_get_num_procs());
	printf("%sblas%s%s, OPENBLAS_CORETYPE=%s\n", tsv ? "" : "# ", sep,
	       pb_blas_name(), ct ? ct : "(unset)");
	printf("%sthreads%s%d\n", tsv ? "" : "# ", sep, threads);
}

/* The rows of the --sparsity table for model m: each batch and sparsity
 * on both kernels. 0, or 1 after reporting a failure. */
static int sparse_rows(pb_model *m, const long *batches, int n_batches,
		       const double *sparsity, int n_sparsity, int iters,
		       int repeats, int tsv)
{
	pb_error err = { 0 };
	int fail = 0;

	for (int j = 0; j < n_batches; j++)
	for (int k = 0; k < n_sparsity; k++) {
		pb_bench_sparse_result r;

		if (pb_bench_sparse(m, (int)batches[j], sparsity[k], 3,
				    iters, repeats, 1, &r, &err)) {
			fail = cli_fail("bench", &err);
			break;
		}
		if (tsv)
			printf("sparse\t%s\t%ld\t%.4f\t%d\t%.1f\t%.1f"
			       "\t%.3f\t%.3f\n", pb_model_name(m),
			       batches[j], r.sparsity, r.sparse_layers,
			       r.dense_ips, r.sparse_ips,
			       r.dense_spread, r.sparse_spread);
		else
			printf("%-10s %6ld %8.1f%% %8d %14.1f %15.1f "
			       "%7.2fx   %.0f%% / %.0f%%\n",
			       pb_model_name(m), batches[j],
			       100 * r.sparsity, r.sparse_layers,
			       r.dense_ips, r.sparse_ips,
			       r.dense_ips > 0 ? r.sparse_ips /
			       r.dense_ips : 0.0,
			       100 * r.dense_spread,
			       100 * r.sparse_spread);
		fflush(stdout);
	}
	return fail;
}

/* The rows of the throughput table for model m: training and inference
 * at each batch. 0, or 1 after reporting a failure. */
static int model_rows(pb_model *m, const long *batches, int n_batches,
		      int train, int infer, int iters, int repeats, int tsv)
{
	pb_error err = { 0 };
	int fail = 0;

	for (int j = 0; j < n_batches; j++) {
		pb_bench_result r;
		/* BN needs two values per channel to train. */
		int tr = train && batches[j] *
			 pb_model_layer(m, 0)->out_h *
			 pb_model_layer(m, 0)->out_w > 1;

		if (pb_bench_model(m, (int)batches[j], 3, iters, repeats, tr,
				   infer, 1, &r, &err)) {
			fail = cli_fail("bench", &err);
			break;
		}
		if (tsv) {
			if (tr)
				printf("result\t%s\t%ld\ttrain\t%.1f\t"
				       "%.2f\t%.3f\n", pb_model_name(m),
				       batches[j], r.train_ips,
				       r.train_gflops, r.train_spread);
			if (infer)
				printf("result\t%s\t%ld\tinfer\t%.1f\t"
				       "%.2f\t%.3f\n", pb_model_name(m),
				       batches[j], r.infer_ips,
				       r.infer_gflops, r.infer_spread);
		} else {
			printf("%-10s %6ld %12.1f %9.2f %12.1f %9.2f"
			       "   %.0f%% / %.0f%%\n",
			       pb_model_name(m), batches[j],
			       r.train_ips, r.train_gflops,
			       r.infer_ips, r.infer_gflops,
			       100 * r.train_spread,
			       100 * r.infer_spread);
		}
		fflush(stdout);
	}
	return fail;
}

/* The rows of the --convs table for model m: a row per conv layer and
 * batch. */
static int conv_rows(pb_model *m, const long *batches, int n_batches,
		     int iters, int repeats, int tsv)
{
	for (int j = 0; j < n_batches; j++)
		for (int i = 0; i < pb_model_n_layers(m); i++) {
			const pb_layer_info *li = pb_model_layer(m, i);
			pb_bench_conv_result r;
			pb_error err = { 0 };

			if (li->type != PB_LAYER_CONV)
				continue;
			if (pb_bench_conv(li, (int)batches[j], iters, repeats,
					  1, &r, &err))
				return cli_fail("bench", &err);
			if (tsv)
				printf("conv\t%s\t%ld\t%s\t%d\t%dx%d\t%d\t"
				       "%d/%d\t%s\t%.1f\t%.1f\t%.1f\t%.4f\t"
				       "%.4f\t%.4f\n", pb_model_name(m),
				       batches[j], li->name, li->in_c, li->in_h,
				       li->in_w, li->out_c, li->kernel,
				       li->stride, r.path, r.fwd_gflops,
				       r.bwd_data_gflops, r.bwd_weight_gflops,
				       r.fwd_ms, r.bwd_data_ms,
				       r.bwd_weight_ms);
			else
				printf("%-10s %5ld %-12s %4d %5dx%-3d %4d "
				       "%2d/%d %-13s %7.1f %7.1f %7.1f   "
				       "%.3f / %.3f / %.3f\n",
				       pb_model_name(m), batches[j], li->name,
				       li->in_c, li->in_h, li->in_w, li->out_c,
				       li->kernel, li->stride, r.path,
				       r.fwd_gflops, r.bwd_data_gflops,
				       r.bwd_weight_gflops, r.fwd_ms,
				       r.bwd_data_ms, r.bwd_weight_ms);
			fflush(stdout);
		}
	return 0;
}

static void print_peaks(int threads, int tsv)
{
	pb_error err = { 0 };
	const char *isa;
	double sg = pb_bench_sgemm_peak(2048, 5, &err);
	double fma = pb_bench_fma_peak(3, &isa);

	if (tsv) {
		printf("peak\tsgemm\t%.1f\n", sg);
		printf("peak\tfma_core\t%.1f\t%s\n", fma, isa);
		return;
	}
	printf("# sgemm 2048^3, %d threads: %.1f GFLOP/s\n", threads, sg);
	printf("# FMA loop (%s), one core: %.1f GFLOP/s  (x %d threads = "
	       "%.1f)\n", isa, fma, threads, fma * threads);
}

int cmd_bench(int argc, char **argv)
{
	const char *models[MAX_LIST];
	char defbuf[2][4096];
	long batches[MAX_LIST], iters = 0, repeats = 7;
	double sparsity[MAX_LIST];
	int n_models = 0, n_batches = 0, threads = 0, train = 1, infer = 1;
	int n_sparsity = 0, convs = 0;
	int peaks = 1;
	int tsv = 0, opt, fail = 0;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", bench_opts, NULL)) != -1) {
		switch (opt) {
		case 'm':
			if (n_models == MAX_LIST)
				return cli_usage_error("bench", "at most %d "
						       "--model", MAX_LIST);
			models[n_models++] = optarg;
			break;
		case 'b':
			if (n_batches == MAX_LIST)
				return cli_usage_error("bench", "at most %d "
						       "--batch", MAX_LIST);
			if (cli_int("--batch", optarg, 1, 65536,
				    &batches[n_batches]))
				return 2;
			n_batches++;
			break;
		case 'i':
			if (cli_int("--iters", optarg, 1, 1000000, &iters))
				return 2;
			break;
		case 'r':
			if (cli_int("--repeats", optarg, 1, 1000, &repeats))
				return 2;
			break;
		case 't':
			if (cli_threads(optarg, &threads))
				return 2;
			break;
		case 'T': train = 0; break;
		case 'I': infer = 0; break;
		case 'P': peaks = 0; break;
		case 'v': tsv = 1; break;
		case 'c': convs = 1; break;
		case 's': {
			char *end;
			double s;

			if (n_sparsity == MAX_LIST)
				return cli_usage_error("bench", "at most %d "
						       "--sparsity", MAX_LIST);
			s = strtod(optarg, &end);
			if (end == optarg || *end || !(s >= 0.0 && s <= 1.0))
				return cli_usage_error("bench", "--sparsity "
						       "'%s': expected a "
						       "fraction in [0, 1]",
						       optarg);
			sparsity[n_sparsity++] = s;
			break;
		}
		case 'h': fputs(bench_usage, stdout); return 0;
		default: return cli_usage_error("bench", "bad option");
		}
	}
	if (optind != argc)
		return cli_usage_error("bench", "unexpected argument '%s'",
				       argv[optind]);
	if (convs && n_sparsity)
		return cli_usage_error("bench", "--convs and --sparsity are "
				       "two different tables; give one");
	if (!n_models) {
		models[n_models++] = default_model("vgg-s", defbuf[0],
						   sizeof defbuf[0]);
		models[n_models++] = default_model("resnet-s", defbuf[1],
						   sizeof defbuf[1]);
	}
	if (!n_batches) {
		batches[n_batches++] = 128;
		batches[n_batches++] = 1;
	}
	threads = cli_apply_threads(threads);
	print_header(threads, tsv);
	if (peaks)
		print_peaks(threads, tsv);
	if (!tsv && convs)
		printf("%-10s %5s %-12s %4s %9s %4s %4s %-13s %7s %7s %7s   "
		       "%s\n", "model", "batch", "layer", "in", "plane",
		       "out", "K/s", "kernels", "fwd", "bwd-in", "bwd-w",
		       "ms per call fwd / bwd-in / bwd-w (GFLOP/s left)");
	else if (!tsv && n_sparsity)
		printf("%-10s %6s %9s %8s %14s %15s %8s   %s\n", "model",
		       "batch", "sparsity", "layers", "dense img/s",
		       "sparse img/s", "ratio", "spread dense/sparse");
	else if (!tsv)
		printf("%-10s %6s %12s %9s %12s %9s   %s\n", "model", "batch",
		       "train img/s", "GFLOP/s", "infer img/s", "GFLOP/s",
		       "spread train/infer");
	for (int i = 0; i < n_models; i++) {
		pb_error err = { 0 };
		pb_model *m = NULL;

		if (pb_model_load(&m, models[i], &err)) {
			fail = cli_fail("bench", &err);
			continue;
		}
		if (convs ? conv_rows(m, batches, n_batches, (int)iters,
				      (int)repeats, tsv) :
		    n_sparsity ? sparse_rows(m, batches, n_batches, sparsity,
					     n_sparsity, (int)iters,
					     (int)repeats, tsv) :
		    model_rows(m, batches, n_batches, train, infer,
			       (int)iters, (int)repeats, tsv))
			fail = 1;
		pb_model_free(m);
	}
	return fail;
}
