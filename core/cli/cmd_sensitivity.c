/* prunebench sensitivity: each layer pruned alone at several amounts,
 * validation accuracy without fine-tuning, as a CSV and a plot (one curve
 * per layer); with --max-drop, the per-layer amounts an experiment takes
 * (layer.NAME = X), scaled to --target when given. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "cli/cli.h"
#include "prunebench/sensitivity.h"

static const char sens_usage[] =
	"Usage: prunebench sensitivity MODEL.ini DENSE.ckpt --plugin NAME\n"
	"                              [options]\n"
	"\n"
	"Prunes every prunable layer alone (every channel group, for a\n"
	"channel pruner) at each level with the plugin's own criterion and\n"
	"evaluates the model on the validation split without fine-tuning.\n"
	"Writes DIR/sensitivity.csv (layer, size, amount, validation top-1,\n"
	"drop in points) and DIR/sensitivity.png (one curve per layer, drawn\n"
	"by gnuplot from DIR/sensitivity.gp). Layers x levels run in\n"
	"parallel; the numbers do not depend on the thread count.\n"
	"\n"
	"  --plugin NAME        pruner (see 'prunebench plugins')\n"
	"  --opt KEY=VALUE      a plugin option (may be repeated)\n"
	"  --plugin-dir DIR     also search DIR for plugins (may be repeated)\n"
	"  --levels L           amounts to try, increasing, in (0, 1)\n"
	"                       (default 0.1,0.2,...,0.9)\n"
	"  --data SPEC          dataset (default fashion-mnist); validation\n"
	"                       split of --val-size images (default 5000, split\n"
	"                       seed 42, as train)\n"
	"  --val-size N\n"
	"  --max-drop D         print per-layer amounts: for each layer the\n"
	"                       largest level before the first that costs more\n"
	"                       than D points of validation top-1\n"
	"  --target T           with --max-drop: scale those amounts by one\n"
	"                       factor (least sensitive layers pruned most)\n"
	"                       until T is reached, e.g. sparsity=0.75\n"
	"  --out DIR            output folder (default: the current one)\n"
	"  --seed S             the scan's random streams (default 1)\n"
	"  --threads N          OpenMP threads (default: all cores)\n"
	"  --quiet              no progress lines\n";

enum { OPT_OPT = 256, OPT_PDIR, OPT_LEVELS, OPT_DROP, OPT_VAL, OPT_QUIET };

static const struct option sens_opts[] = {
	{ "plugin", required_argument, NULL, 'p' },
	{ "opt", required_argument, NULL, OPT_OPT },
	{ "plugin-dir", required_argument, NULL, OPT_PDIR },
	{ "levels", required_argument, NULL, OPT_LEVELS },
	{ "data", required_argument, NULL, 'd' },
	{ "val-size", required_argument, NULL, OPT_VAL },
	{ "max-drop", required_argument, NULL, OPT_DROP },
	{ "target", required_argument, NULL, 'T' },
	{ "out", required_argument, NULL, 'o' },
	{ "seed", required_argument, NULL, 's' },
	{ "threads", required_argument, NULL, 't' },
	{ "quiet", no_argument, NULL, OPT_QUIET },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

typedef struct sens_args {
	const char *model, *ckpt, *target, *out, *data;
	cli_pruner pruner;
	double levels[PB_SENS_LEVELS_MAX], max_drop;
	int n_levels, threads, quiet;
	long val_size;
	unsigned long seed;
} sens_args;

static int parse_args(sens_args *a, int argc, char **argv)
{
	static const double def[] = { 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8,
				      0.9 };
	pb_error err = { 0 };
	int opt;

	memset(a, 0, sizeof *a);
	a->max_drop = -1;
	a->val_size = 5000;
	a->seed = 1;
	a->data = "fashion-mnist";
	a->out = ".";
	a->n_levels = (int)(sizeof def / sizeof *def);
	memcpy(a->levels, def, sizeof def);
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", sens_opts, NULL)) != -1) {
		switch (opt) {
		case 'p': a->pruner.name = optarg; break;
		case OPT_OPT:
			if (cli_push("sensitivity", "--opt", a->pruner.opts,
				     &a->pruner.n_opts, CLI_MAX_OPTS, optarg))
				return 2;
			break;
		case OPT_PDIR:
			if (cli_push("sensitivity", "--plugin-dir",
				     a->pruner.dirs, &a->pruner.n_dirs,
				     CLI_MAX_DIRS, optarg))
				return 2;
			break;
		case OPT_LEVELS:
			if (pb_sensitivity_parse_levels(optarg, a->levels,
							&a->n_levels, &err))
				return cli_usage_error("sensitivity", "--%s",
						       err.msg);
			break;
		case 'd': a->data = optarg; break;
		case OPT_VAL:
			if (cli_int("--val-size", optarg, 1, 10000000,
				    &a->val_size))
				return 2;
			break;
		case OPT_DROP:
			if (cli_double("--max-drop", optarg, &a->max_drop))
				return 2;
			if (!(a->max_drop >= 0))
				return cli_usage_error("sensitivity", "--max-"
						       "drop %s: points of "
						       "top-1, >= 0", optarg);
			break;
		case 'T': a->target = optarg; break;
		case 'o': a->out = optarg; break;
		case 's':
			if (cli_seed(optarg, &a->seed))
				return 2;
			break;
		case 't':
			if (cli_threads(optarg, &a->threads))
				return 2;
			break;
		case OPT_QUIET: a->quiet = 1; break;
		case 'h': fputs(sens_usage, stdout); return -1;
		default: return cli_usage_error("sensitivity", "bad option");
		}
	}
	if (cli_pruner_operands("sensitivity", &a->pruner, argc, argv,
				&a->model, &a->ckpt))
		return 2;
	if (a->target && a->max_drop < 0)
		return cli_usage_error("sensitivity", "--target needs "
				       "--max-drop D");
	return 0;
}

/* One curve per layer: top-1 against the amount pruned, the dense model
 * and (with --max-drop) the tolerated drop as lines. */
static int write_plot(const char *gp, const char *csv, const char *png,
		      const pb_sensitivity *s, double max_drop,
		      pb_error *err)
{
	pbi_atomic a;
	FILE *f;
	int rc;

	if ((rc = cli_gp_begin(&a, gp, png, 1000, 620, err)))
		return rc;
	f = a.f;
	fprintf(f, "set datafile separator ','\n"
		"set title 'Sensitivity (%s): each layer pruned alone, "
		"validation top-1 without fine-tuning'\n"
		"set xlabel '%s of the layer removed (%%)'\n"
		"set ylabel 'validation top-1 (%%)'\n"
		"set key outside right top title 'layer (size)'\n"
		"set grid\nset xrange [0:100]\n", s->plugin,
		s->granularity == PB_GRANULARITY_WEIGHT ? "weights" :
		"channels");
	fprintf(f, "dense = %.4f\n", pb_sens_acc(s, 0, -1));
	fputs("plot ", f);
	for (int l = 0; l < s->n_layers; l++) {
		fputs(l ? ", \\\n     " : "", f);
		cli_gp_quote(f, csv);
		fprintf(f, " using (100*$3):(strcol(1) eq '%s' ? $6 : NaN) "
			"with linespoints lw 2 pt %d title '%s (%llu)'",
			s->layers[l].name, 1 + l % 13, s->layers[l].name,
			(unsigned long long)s->layers[l].size);
	}
	fputs(", \\\n     dense with lines dt 2 lc rgb 'black' title 'dense'",
	      f);
	if (max_drop >= 0)
		fprintf(f, ", \\\n     dense - %g with lines dt 3 lc rgb "
			"'gray40' title 'dense - %g pt'", max_drop, max_drop);
	fputc('\n', f);
	return pbi_atomic_commit(&a, err);
}

static int run(const sens_args *a)
{
	pb_error err = { 0 };
	pb_plugin *plugin = NULL;
	pb_options *opts = NULL;
	pb_model *dense = NULL;
	pb_sensitivity *s = NULL;
	pb_splits sp;
	pb_recipe r;
	pbi_atomic at;
	char *csv = NULL, *gp = NULL, *png = NULL, stream[64];
	int rc, have_sp = 0;

	if ((rc = cli_pruner_open("sensitivity", &a->pruner, &plugin, &opts)))
		goto quiet;
	csv = pbi_path_join(a->out, "sensitivity.csv");
	gp = pbi_path_join(a->out, "sensitivity.gp");
	png = pbi_path_join(a->out, "sensitivity.png");
	if (!csv || !gp || !png) {
		rc = pb_error_set(&err, PB_ENOMEM, "out of memory");
		goto done;
	}
	if ((rc = pbi_mkdirs(a->out, &err)) ||
	    (rc = pbi_check_output(csv, "sensitivity CSV", &err)) ||
	    (rc = cli_load_trained(&dense, a->model, a->ckpt, &err)) ||
	    (rc = cli_load_splits(&sp, a->data, (int)a->val_size, 42, &err)))
		goto done;
	have_sp = 1;
	pb_recipe_default(&r);
	snprintf(stream, sizeof stream, "sensitivity|%lu", a->seed);
	{
		pb_sens_opts o = {
			.pruner = pb_plugin_pruner(plugin), .options = opts,
			.n_levels = a->n_levels, .levels = a->levels,
			.splits = &sp, .recipe = &r, .threads = a->threads,
			.stream = stream,
			.progress = a->quiet ? NULL : stderr,
		};

		if ((rc = pb_sensitivity_scan(dense, &o, &s, &err)))
			goto done;
	}
	if ((rc = pbi_atomic_begin(&at, csv, "sensitivity CSV", &err)))
		goto done;
	pb_sensitivity_write_csv(s, NULL, at.f);
	if ((rc = pbi_atomic_commit(&at, &err)) ||
	    (rc = write_plot(gp, csv, png, s, a->max_drop, &err)))
		goto done;
	printf("dense validation top-1 %.2f%%; per layer, top-1 at", 
	       pb_sens_acc(s, 0, -1));
	for (int j = 0; j < s->n_levels; j++)
		printf(" %g", s->levels[j]);
	printf(":\n");
	for (int l = 0; l < s->n_layers; l++) {
		printf("  %-16s %9llu ", s->layers[l].name,
		       (unsigned long long)s->layers[l].size);
		for (int j = 0; j < s->n_levels; j++)
			printf(" %6.2f", pb_sens_acc(s, l, j));
		printf("\n");
	}
	printf("wrote %s\n", csv);
	if (!cli_gnuplot("sensitivity", gp))
		printf("wrote %s\n", png);
	if (a->max_drop >= 0) {
		pb_target goal, t;
		double reached;

		if (a->target && pb_target_parse(&goal, a->target, &err)) {
			rc = cli_usage_error("sensitivity", "--target: %s",
					     err.msg);
			goto quiet;
		}
		if ((rc = pb_sensitivity_amounts(s, dense, a->max_drop,
						 a->target ? &goal : NULL, &t,
						 &reached, &err)))
			goto done;
		printf("; at most %g point%s of validation top-1 per layer%s%s,"
		       " reaching %s=%.4f:\n", a->max_drop,
		       a->max_drop == 1.0 ? "" : "s",
		       a->target ? ", scaled to " : "",
		       a->target ? a->target : "",
		       pb_target_kind_name(t.kind), reached);
		for (int i = 0; i < t.n_overrides; i++)
			printf("layer.%s = %.4f\n", t.overrides[i].layer,
			       t.overrides[i].amount);
	}
done:
	if (rc)
		rc = cli_fail("sensitivity", &err);
quiet:
	if (have_sp)
		pb_splits_free(&sp);
	pb_sensitivity_free(s);
	pb_model_free(dense);
	pb_options_free(opts);
	pb_plugin_close(plugin);
	free(csv);
	free(gp);
	free(png);
	return rc;
}

int cmd_sensitivity(int argc, char **argv)
{
	sens_args a;
	int rc = parse_args(&a, argc, argv);

	if (rc)
		return rc < 0 ? 0 : rc;
	cli_apply_threads(a.threads);
	return run(&a);
}
