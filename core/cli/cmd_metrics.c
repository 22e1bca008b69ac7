/* prunebench metrics: the numbers a pruning paper reports, for one
 * checkpoint (optionally against a reference for speedup). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "prunebench/metrics.h"

static const char metrics_usage[] =
	"Usage: prunebench metrics MODEL.ini FILE.ckpt [options]\n"
	"\n"
	"Prints parameters (total, non-zero), MACs (dense, effective), sizes\n"
	"as files (float32, sparse encoding, zlib, int8, int8+sparse+zlib),\n"
	"latency at batch 1 and 128 on the dense kernels and on the sparse\n"
	"ones (layers sparse enough skip their zero weights), and the\n"
	"per-layer sparsity table.\n"
	"\n"
	"  --ref REF.ini      reference model for speedup (usually the dense\n"
	"  --ref-ckpt R.ckpt  one) and side-by-side columns\n"
	"  --no-latency       skip the latency measurement (fast)\n"
	"  --no-sparse        time the dense kernels only\n"
	"  --threads N        OpenMP threads (default: all cores)\n";

enum { OPT_REF = 256, OPT_REF_CKPT, OPT_NOLAT, OPT_NOSPARSE };

static const struct option metrics_opts[] = {
	{ "ref", required_argument, NULL, OPT_REF },
	{ "ref-ckpt", required_argument, NULL, OPT_REF_CKPT },
	{ "no-latency", no_argument, NULL, OPT_NOLAT },
	{ "no-sparse", no_argument, NULL, OPT_NOSPARSE },
	{ "threads", required_argument, NULL, 't' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

void cli_reference_latency(pb_metrics *ref, const pb_metrics *m)
{
	if (!m->have_latency)
		return;
	ref->have_latency = 1;
	/* The reference was timed on the dense kernels only. */
	for (int i = 0; i < 2; i++) {
		ref->latency_ms[i] = m->latency_ms[i] * m->speedup[i];
		ref->speedup[i] = 1.0;
		ref->latency_sparse_ms[i] = ref->latency_ms[i];
		ref->speedup_sparse[i] = 1.0;
	}
}

int cmd_metrics(int argc, char **argv)
{
	const char *ref_ini = NULL, *ref_ckpt = NULL;
	pb_error err = { 0 };
	pb_model *m = NULL, *ref = NULL;
	pb_metrics mt = { 0 }, mr = { 0 };
	pb_metrics_opts mo;
	int opt, rc, threads = 0;

	pb_metrics_opts_default(&mo);
	mo.latency = 1;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", metrics_opts, NULL)) != -1) {
		switch (opt) {
		case OPT_REF: ref_ini = optarg; break;
		case OPT_REF_CKPT: ref_ckpt = optarg; break;
		case OPT_NOLAT: mo.latency = 0; break;
		case OPT_NOSPARSE: mo.sparse = 0; break;
		case 't':
			if (cli_threads(optarg, &threads))
				return 2;
			break;
		case 'h': fputs(metrics_usage, stdout); return 0;
		default: return cli_usage_error("metrics", "bad option");
		}
	}
	if (optind != argc - 2)
		return cli_usage_error("metrics", "expected MODEL.ini and "
				       "FILE.ckpt");
	if (ref_ckpt && !ref_ini)
		return cli_usage_error("metrics", "--ref-ckpt needs --ref");
	cli_apply_threads(threads);
	rc = cli_load_trained(&m, argv[optind], argv[optind + 1], &err);
	if (!rc && ref_ini)
		rc = cli_load_trained(&ref, ref_ini, ref_ckpt, &err);
	if (!rc && ref) {
		/* The reference is timed in alternation with the model inside
		 * the second call; see cli_reference_latency. */
		pb_metrics_opts ro = mo;

		ro.latency = 0;
		rc = pb_metrics_compute(&mr, ref, NULL, &ro, &err);
	}
	if (!rc)
		rc = pb_metrics_compute(&mt, m, ref, &mo, &err);
	if (!rc && ref)
		cli_reference_latency(&mr, &mt);
	if (!rc) {
		printf("model %s  checkpoint %s\n", pb_model_name(m),
		       argv[optind + 1]);
		if (ref)
			pb_metrics_print(stdout, &mr, &mt, "reference",
					 "model");
		else
			pb_metrics_print(stdout, &mt, NULL, NULL, NULL);
		printf("\n");
		pb_metrics_print_layers(stdout, &mt);
	}
	pb_metrics_free(&mt);
	pb_metrics_free(&mr);
	pb_model_free(ref);
	pb_model_free(m);
	return rc ? cli_fail("metrics", &err) : 0;
}
