/* prunebench prune: one pruner plugin on a trained model; writes the
 * pruned checkpoint and model INI and prints the before/after metrics. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "prunebench/metrics.h"
#include "prunebench/plugin.h"
#include "train_points.h"

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
	"  --out PRUNED         output name; .ckpt and .ini are added\n"
	"  --data SPEC          dataset for data-driven pruners, accuracy and\n"
	"                       fine-tuning (default: none)\n"
	"  --finetune-epochs N  fine-tune the pruned model N epochs (needs\n"
	"                       --data; default 0)\n"
	"  --set KEY=VALUE      fine-tune recipe key (as for train --set)\n"
	"  --seed S             the cell's seed (default 1)\n"
	"  --threads N          OpenMP threads (default: all cores)\n"
	"  --no-latency         skip the latency measurement\n"
	"  --quiet              no progress output\n";

#define MAX_OPTS 64
#define MAX_DIRS 32

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
	const char *model, *ckpt, *plugin, *target, *scope, *out, *data;
	char *opts[MAX_OPTS];
	int n_opts;
	char *dirs[MAX_DIRS];
	int n_dirs;
	long finetune_epochs;
	unsigned long seed;
	int threads, latency, quiet;
	pb_recipe recipe;
} prune_args;

/* PRUNED or PRUNED.ckpt -> PRUNED + ext */
static char *out_path(const char *out, const char *ext)
{
	size_t n = strlen(out);
	char *p = malloc(n + strlen(ext) + 1);

	if (!p)
		return NULL;
	strcpy(p, out);
	if (n > 5 && !strcmp(p + n - 5, ".ckpt"))
		p[n - 5] = '\0';
	else if (n > 4 && !strcmp(p + n - 4, ".ini"))
		p[n - 4] = '\0';
	strcat(p, ext);
	return p;
}

static int parse_args(prune_args *a, int argc, char **argv)
{
	pb_error err = { 0 };
	long v;
	int opt;

	memset(a, 0, sizeof *a);
	a->seed = 1;
	a->latency = 1;
	pb_recipe_default(&a->recipe);
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", prune_opts, NULL)) != -1) {
		switch (opt) {
		case 'p': a->plugin = optarg; break;
		case 'T': a->target = optarg; break;
		case OPT_SCOPE: a->scope = optarg; break;
		case OPT_OPT:
			if (a->n_opts == MAX_OPTS)
				return cli_usage_error("prune", "at most %d "
						       "--opt", MAX_OPTS);
			a->opts[a->n_opts++] = optarg;
			break;
		case OPT_PDIR:
			if (a->n_dirs == MAX_DIRS)
				return cli_usage_error("prune", "at most %d "
						       "--plugin-dir", MAX_DIRS);
			a->dirs[a->n_dirs++] = optarg;
			break;
		case 'o': a->out = optarg; break;
		case 'd': a->data = optarg; break;
		case OPT_FT:
			if (cli_int("--finetune-epochs", optarg, 0, 100000,
				    &a->finetune_epochs))
				return 2;
			break;
		case OPT_SET: {
			char key[64];
			const char *eq = strchr(optarg, '=');

			if (!eq || eq == optarg ||
			    (size_t)(eq - optarg) >= sizeof key)
				return cli_usage_error("prune", "--set '%s': "
						       "expected KEY=VALUE",
						       optarg);
			memcpy(key, optarg, (size_t)(eq - optarg));
			key[eq - optarg] = '\0';
			if (pb_recipe_set(&a->recipe, key, eq + 1, &err))
				return cli_usage_error("prune", "%s", err.msg);
			break;
		}
		case 's':
			if (cli_int("--seed", optarg, 0, 0x7fffffffL, &v))
				return 2;
			a->seed = (unsigned long)v;
			break;
		case 't':
			if (cli_int("--threads", optarg, 1, 1024, &v))
				return 2;
			a->threads = (int)v;
			break;
		case OPT_NOLAT: a->latency = 0; break;
		case OPT_QUIET: a->quiet = 1; break;
		case 'h': fputs(prune_usage, stdout); return -1;
		default: return cli_usage_error("prune", "bad option");
		}
	}
	if (optind != argc - 2)
		return cli_usage_error("prune", "expected MODEL.ini and "
				       "DENSE.ckpt");
	a->model = argv[optind];
	a->ckpt = argv[optind + 1];
	if (!a->plugin)
		return cli_usage_error("prune", "--plugin NAME is required "
				       "(see 'prunebench plugins')");
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

/* Plugin, options and target, checked before any heavy work. */
static int prepare(const prune_args *a, pb_plugin **plugin,
		   pb_options **opts, pb_target *t)
{
	pb_error err = { 0 };
	pb_plugin_path *sp = NULL;
	int rc;

	if ((rc = cli_plugin_path("prune", (char **)a->dirs, a->n_dirs, &sp)))
		return rc;
	rc = pb_plugin_open(plugin, sp, a->plugin, &err);
	pb_plugin_path_free(sp);
	if (rc)
		return cli_fail("prune", &err);
	if (pb_options_new(opts, pb_plugin_pruner(*plugin), &err))
		return cli_fail("prune", &err);
	for (int i = 0; i < a->n_opts; i++)
		if (pb_options_set_kv(*opts, a->opts[i], "--opt", &err))
			return cli_usage_error("prune", "%s", err.msg);
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

static int run_prune(const prune_args *a)
{
	pb_error err = { 0 };
	pb_plugin *plugin = NULL;
	pb_options *opts = NULL;
	pb_target target;
	pb_model *dense = NULL, *pruned = NULL;
	pb_splits sp;
	pb_data_spec spec;
	pb_prune_setup su = { 0 };
	pb_prune_report rep;
	pb_metrics mb = { 0 }, ma = { 0 };
	pb_metrics_opts mo;
	gsl_rng *rng = NULL;
	double acc0 = -1, acc1 = -1, acc2 = -1, loss;
	char *ckpt = NULL, *ini = NULL, *points = NULL;
	int rc, have_data = 0;

	memset(&sp, 0, sizeof sp);
	if ((rc = prepare(a, &plugin, &opts, &target)))
		goto done_status;
	if ((rc = pb_model_load(&dense, a->model, &err)) ||
	    (rc = pb_checkpoint_load(dense, a->ckpt, &err)))
		goto done;
	if (a->data) {
		if ((rc = pb_data_spec_parse(&spec, a->data, &err)) ||
		    (rc = pb_splits_load(&sp, &spec, a->recipe.val_size, 42,
					 &err)))
			goto done;
		have_data = 1;
		if ((rc = pb_evaluate(dense, &sp.test, a->recipe.eval_batch,
				      &acc0, &loss, &err)))
			goto done;
	}
	rng = gsl_rng_alloc(gsl_rng_mt19937);
	if (!rng) {
		rc = pb_error_set(&err, PB_ENOMEM, "out of memory");
		goto done;
	}
	gsl_rng_set(rng, a->seed);
	su.pruner = pb_plugin_pruner(plugin);
	su.options = opts;
	su.target = &target;
	su.finetune = &a->recipe;
	su.dense = &a->recipe;
	su.splits = have_data ? &sp : NULL;
	su.rng = rng;
	su.progress = a->quiet ? NULL : stderr;
	su.label = su.pruner->name;
	/* Training points kept by `prunebench train --keep` (LTH rewind). */
	points = pbi_point_base(a->ckpt);
	su.dense_points = points;
	if ((rc = pb_prune_run(dense, &su, &pruned, &rep, &err)))
		goto done;
	if (have_data) {
		if ((rc = pb_evaluate(pruned, &sp.test, a->recipe.eval_batch,
				      &acc1, &loss, &err)))
			goto done;
		if (a->finetune_epochs > 0) {
			pb_train_opts to = { 0 };

			to.progress = a->quiet ? NULL : stderr;
			to.label = "fine-tune";
			if ((rc = pb_train(pruned, &sp.train, &sp.val,
					   &a->recipe, rng, &to, NULL, &err)) ||
			    (rc = pb_evaluate(pruned, &sp.test,
					      a->recipe.eval_batch, &acc2,
					      &loss, &err)))
				goto done;
		}
	}
	ckpt = out_path(a->out, ".ckpt");
	ini = out_path(a->out, ".ini");
	if (!ckpt || !ini) {
		rc = pb_error_set(&err, PB_ENOMEM, "out of memory");
		goto done;
	}
	if ((rc = pb_checkpoint_save(pruned, ckpt, &err)) ||
	    (rc = pb_model_write_ini(pruned, ini, &err)))
		goto done;

	/* The dense model is timed only in alternation with the pruned one
	 * (inside the second call), so both columns share one measurement
	 * and drift or warm-up cannot favour either. */
	pb_metrics_opts_default(&mo);
	mo.latency = 0;
	if ((rc = pb_metrics_compute(&mb, dense, NULL, &mo, &err)))
		goto done;
	mo.latency = a->latency;
	if ((rc = pb_metrics_compute(&ma, pruned, dense, &mo, &err)))
		goto done;
	cli_reference_latency(&mb, &ma);
	print_report(a, su.pruner, opts, &target, &rep);
	pb_metrics_print(stdout, &mb, &ma, "dense", "pruned");
	if (have_data) {
		printf("test accuracy: dense %.2f%%  pruned %.2f%%",
		       100 * acc0, 100 * acc1);
		if (acc2 >= 0)
			printf("  fine-tuned (%ld epochs) %.2f%%",
			       a->finetune_epochs, 100 * acc2);
		printf("\n");
	}
	printf("wrote %s and %s\n", ckpt, ini);
done:
	if (rc)
		rc = cli_fail("prune", &err);
done_status:
	pb_metrics_free(&mb);
	pb_metrics_free(&ma);
	free(ckpt);
	free(ini);
	free(points);
	gsl_rng_free(rng);
	if (have_data)
		pb_splits_free(&sp);
	pb_model_free(pruned);
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
