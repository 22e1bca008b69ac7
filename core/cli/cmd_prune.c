/* prunebench prune: one pruner plugin on a trained model; writes the
 * pruned checkpoint and model INI and prints the before/after metrics. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "cli/cli.h"
#include "prunebench/experiment.h"
#include "prunebench/metrics.h"
#include "prunebench/plugin.h"
#include "train/train_points.h"

static const char prune_usage[] =
	"Usage: prunebench prune MODEL.ini DENSE.ckpt --plugin NAME\n"
	"                        --target KIND=X --out PRUNED [options]\n"
	"\n"
	"Prunes the trained model with a plugin and writes PRUNED.ckpt and\n"
	"PRUNED.ini (the pruned model's shapes), then prints parameters,\n"
	"MACs, sizes, latency and speedup before and after (and test accuracy\n"
	"when --data is given).\n"
	"\n"
	"  --plugin NAME        pruner (see 'prunebench plugins')\n"
	"  --target T           KIND=X[, scope=layer|global][, LAYER=X]...;\n"
	"                       KIND is sparsity, channels, params or macs, X\n"
	"                       the fraction removed (e.g. macs=0.5)\n"
	"  --scope S            layer | global (overrides the target's scope)\n"
	"  --opt KEY=VALUE      a plugin option (may be repeated)\n"
	"  --plugin-dir DIR     also search DIR for plugins (may be repeated)\n"
	"  --out PRUNED         output name; .ckpt and .ini are added; checked\n"
	"                       before pruning (neither may be an input, by\n"
	"                       any spelling or link); both are written under\n"
	"                       temporary names, then renamed together\n"
	"  --data SPEC          dataset for data-driven pruners, accuracy and\n"
	"                       fine-tuning (default: none)\n"
	"  --finetune-epochs N  fine-tune the pruned model N epochs (needs\n"
	"                       --data; default 0)\n"
	"  --set KEY=VALUE      fine-tune recipe key (as for train --set)\n"
	"  --seed S             the cell's seed (default 1); a plugin that\n"
	"                       prunes at initialisation gets the model\n"
	"                       `train --seed S` starts from (the recipe's\n"
	"                       init), and trains N epochs from there\n"
	"  --threads N          OpenMP threads (default: all cores)\n"
	"  --no-latency         skip the latency measurement\n"
	"  --quiet              no progress output\n";

enum { OPT_SCOPE = 256, OPT_OPT, OPT_PDIR, OPT_FT, OPT_SET, OPT_NOLAT,
       OPT_QUIET };

static const struct option prune_opts[] = {
	{ "plugin", required_argument, NULL, 'p' },
	{ "target", required_argument, NULL, 'T' },
	{ "scope", required_argument, NULL, OPT_SCOPE },
	{ "opt", required_argument, NULL, OPT_OPT },
	{ "plugin-dir", required_argument, NULL, OPT_PDIR },
	{ "out", required_argument, NULL, 'o' },
	{ "data", required_argument, NULL, 'd' },
	{ "finetune-epochs", required_argument, NULL, OPT_FT },
	{ "set", required_argument, NULL, OPT_SET },
	{ "seed", required_argument, NULL, 's' },
	{ "threads", required_argument, NULL, 't' },
	{ "no-latency", no_argument, NULL, OPT_NOLAT },
	{ "quiet", no_argument, NULL, OPT_QUIET },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

typedef struct prune_args {
	const char *model, *ckpt, *target, *scope, *out, *data;
	cli_pruner pruner;
	long finetune_epochs;
	unsigned long seed;
	int threads, latency, quiet;
	pb_recipe recipe;
} prune_args;

static int parse_args(prune_args *a, int argc, char **argv)
{
	int opt;

	memset(a, 0, sizeof *a);
	a->seed = 1;
	a->latency = 1;
	pb_recipe_default(&a->recipe);
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", prune_opts, NULL)) != -1) {
		switch (opt) {
		case 'p': a->pruner.name = optarg; break;
		case 'T': a->target = optarg; break;
		case OPT_SCOPE: a->scope = optarg; break;
		case OPT_OPT:
			if (cli_push("prune", "--opt", a->pruner.opts,
				     &a->pruner.n_opts, CLI_MAX_OPTS, optarg))
				return 2;
			break;
		case OPT_PDIR:
			if (cli_push("prune", "--plugin-dir", a->pruner.dirs,
				     &a->pruner.n_dirs, CLI_MAX_DIRS, optarg))
				return 2;
			break;
		case 'o': a->out = optarg; break;
		case 'd': a->data = optarg; break;
		case OPT_FT:
			if (cli_int("--finetune-epochs", optarg, 0, 100000,
				    &a->finetune_epochs))
				return 2;
			break;
		case OPT_SET:
			if (cli_recipe_set_kv("prune", &a->recipe, optarg))
				return 2;
			break;
		case 's':
			if (cli_seed(optarg, &a->seed))
				return 2;
			break;
		case 't':
			if (cli_threads(optarg, &a->threads))
				return 2;
			break;
		case OPT_NOLAT: a->latency = 0; break;
		case OPT_QUIET: a->quiet = 1; break;
		case 'h': fputs(prune_usage, stdout); return -1;
		default: return cli_usage_error("prune", "bad option");
		}
	}
	if (cli_pruner_operands("prune", &a->pruner, argc, argv, &a->model,
				&a->ckpt))
		return 2;
	if (!a->target)
		return cli_usage_error("prune", "--target is required, e.g. "
				       "--target macs=0.5");
	if (!a->out)
		return cli_usage_error("prune", "--out PRUNED is required");
	if (a->scope && strcmp(a->scope, "layer") && strcmp(a->scope, "global"))
		return cli_usage_error("prune", "--scope '%s': use layer or "
				       "global", a->scope);
	if (a->finetune_epochs > 0 && !a->data)
		return cli_usage_error("prune", "--finetune-epochs needs "
				       "--data");
	a->recipe.epochs = (int)a->finetune_epochs;
	return 0;
}

/* OUT.ckpt and OUT.ini must be writable and must not be an input (the
 * model file, the dense checkpoint), however they are spelled. */
static int check_outputs(const prune_args *a, pb_error *err)
{
	size_t n = strlen(a->out);
	char *ckpt = NULL, *ini = NULL;
	int rc = 0;

	if (n > 5 && !strcmp(a->out + n - 5, ".ckpt"))
		n -= 5;
	else if (n > 4 && !strcmp(a->out + n - 4, ".ini"))
		n -= 4;
	if (asprintf(&ckpt, "%.*s.ckpt", (int)n, a->out) < 0 ||
	    asprintf(&ini, "%.*s.ini", (int)n, a->out) < 0) {
		free(ckpt);
		return pb_error_set(err, PB_ENOMEM, "out of memory");
	}
	if ((rc = pbi_check_output(ckpt, "pruned checkpoint", err)) ||
	    (rc = pbi_check_output(ini, "pruned model file", err)))
		goto out;
	for (int i = 0; i < 2 && !rc; i++) {
		const char *o = i ? ini : ckpt;

		if (pbi_same_file(o, a->model) || pbi_same_file(o, a->ckpt))
			rc = pb_error_set(err, PB_EINVAL, "--out %s: %s is an "
					  "input (%s, %s) and would be "
					  "overwritten; choose another name",
					  a->out, o, a->model, a->ckpt);
	}
out:
	free(ckpt);
	free(ini);
	return rc;
}

/* Plugin, options and target, checked before any heavy work. */
static int prepare(const prune_args *a, pb_plugin **plugin,
		   pb_options **opts, pb_target *t)
{
	pb_error err = { 0 };
	int rc;

	if ((rc = cli_pruner_open("prune", &a->pruner, plugin, opts)))
		return rc;
	if (pb_target_parse(t, a->target, &err))
		return cli_usage_error("prune", "--target: %s", err.msg);
	if (a->scope)
		t->scope = strcmp(a->scope, "global") ? PB_SCOPE_LAYER :
			   PB_SCOPE_GLOBAL;
	return 0;
}

static void print_report(const prune_args *a, const pb_pruner *pr,
			 const pb_options *opts, const pb_target *t,
			 const pb_prune_report *rep)
{
	char tbuf[64], obuf[512];

	pb_target_format(t, tbuf, sizeof tbuf);
	pb_options_format(opts, obuf, sizeof obuf);
	printf("plugin %s %s  target %s (%s scope)  options: %s\n", pr->name,
	       pr->version, tbuf, t->scope == PB_SCOPE_GLOBAL ? "global" :
	       "layer", obuf[0] ? obuf : "none");
	printf("reached %s %.4f (asked %.4f)  channels %d -> %d  in %.2f s\n",
	       pb_target_kind_name(rep->kind), rep->reached, rep->asked,
	       rep->channels_before, rep->channels_after, rep->seconds);
}

/* The pipeline every cell of an experiment runs (pb_cell_run), once:
 * prune, evaluate, fine-tune when asked, measure, save. */
static int run_prune(const prune_args *a)
{
	pb_error err = { 0 };
	pb_plugin *plugin = NULL;
	pb_options *opts = NULL;
	pb_target target;
	pb_model *dense = NULL;
	pb_splits sp;
	pb_cell_env env = { 0 };
	pb_cell_result res = { 0 };
	pb_metrics mb = { 0 };
	pb_metrics_opts mo;
	double acc0 = -1, loss;
	char *points = NULL, stream[64];
	int rc, have_data = 0;

	memset(&sp, 0, sizeof sp);
	if ((rc = check_outputs(a, &err)))
		goto done;
	if ((rc = prepare(a, &plugin, &opts, &target)))
		goto done_status;
	if ((rc = cli_load_trained(&dense, a->model, a->ckpt, &err)))
		goto done;
	if (a->data) {
		if ((rc = cli_load_splits(&sp, a->data, a->recipe.val_size, 42,
					  &err)))
			goto done;
		have_data = 1;
		if ((rc = pb_evaluate(dense, &sp.test, a->recipe.eval_batch,
				      &acc0, &loss, &err)))
			goto done;
	}
	/* Training points kept by `prunebench train --keep` (LTH rewind). */
	points = pbi_point_base(a->ckpt);
	snprintf(stream, sizeof stream, "prune|%lu", a->seed);
	env.dense = dense;
	env.dense_points = points;
	env.splits = have_data ? &sp : NULL;
	env.dense_recipe = &a->recipe;
	env.finetune = &a->recipe;
	env.eval_batch = a->recipe.eval_batch;
	env.kind = PB_CELL_PRUNE;
	env.pruner = pb_plugin_pruner(plugin);
	env.options = opts;
	env.target = &target;
	env.latency = a->latency;
	env.stream = stream;
	env.seed = a->seed;
	env.has_seed = 1;
	env.out = a->out;
	env.log = a->quiet ? NULL : stderr;
	env.label = env.pruner->name;
	if ((rc = pb_cell_run(&env, &res, &err)))
		goto done;

	/* The dense model is timed only in alternation with the pruned one
	 * (inside the cell), so both columns share one measurement and
	 * drift or warm-up cannot favour either. */
	pb_metrics_opts_default(&mo);
	mo.latency = 0;
	if ((rc = pb_metrics_compute(&mb, dense, NULL, &mo, &err)))
		goto done;
	cli_reference_latency(&mb, &res.mt);
	if (res.have_report)
		print_report(a, env.pruner, opts, &target, &res.rep);
	pb_metrics_print(stdout, &mb, &res.mt, "dense", "pruned");
	if (res.rec.at_init)
		printf("pruned at initialisation: the model `prunebench train "
		       "--seed %lu` starts from, not %s\n", a->seed, a->ckpt);
	if (have_data) {
		printf("test accuracy: dense %.2f%%  pruned%s %.2f%%",
		       100 * acc0, res.rec.at_init ? " (untrained)" : "",
		       100 * res.rec.acc_before);
		if (a->finetune_epochs > 0)
			printf("  %s (%ld epochs) %.2f%%", res.rec.at_init ?
			       "trained" : "fine-tuned", a->finetune_epochs,
			       100 * res.rec.acc_after);
		printf("\n");
	}
	{
		size_t n = strlen(a->out);

		if (n > 5 && !strcmp(a->out + n - 5, ".ckpt"))
			n -= 5;
		else if (n > 4 && !strcmp(a->out + n - 4, ".ini"))
			n -= 4;
		printf("wrote %.*s.ckpt and %.*s.ini\n", (int)n, a->out,
		       (int)n, a->out);
	}
done:
	if (rc)
		rc = cli_fail("prune", &err);
done_status:
	pb_metrics_free(&mb);
	pb_cell_result_free(&res);
	free(points);
	if (have_data)
		pb_splits_free(&sp);
	pb_model_free(dense);
	pb_options_free(opts);
	pb_plugin_close(plugin);
	return rc;
}

int cmd_prune(int argc, char **argv)
{
	prune_args a;
	int rc = parse_args(&a, argc, argv);

	if (rc)
		return rc < 0 ? 0 : rc;
	cli_apply_threads(a.threads);
	return run_prune(&a);
}
