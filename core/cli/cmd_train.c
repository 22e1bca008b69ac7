/* prunebench train: train a dense model and save its checkpoint. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "cli/cli.h"
#include "train/train_points.h"
#include "base/util.h"

static const char train_usage[] =
	"Usage: prunebench train MODEL.ini [options]\n"
	"\n"
	"Trains MODEL from scratch on the training split, selects nothing on\n"
	"the test set, and prints test-set accuracy at the end.\n"
	"\n"
	"  --data SPEC        dataset (default fashion-mnist = Debian's package)\n"
	"  --out FILE.ckpt    checkpoint to write (per-epoch CSV next to it);\n"
	"                     checked before training: a folder, an empty\n"
	"                     name, a missing folder or the model file\n"
	"                     itself (any spelling or link) is refused\n"
	"  --epochs N         (default 15)\n"
	"  --batch N          (default 128)\n"
	"  --lr X             peak learning rate (default 0.05)\n"
	"  --schedule S       constant | step | cosine (default cosine)\n"
	"  --seed S           initialisation and shuffling seed (default 1)\n"
	"  --threads N        OpenMP threads (default: all cores)\n"
	"  --set KEY=VALUE    any recipe key: momentum, nesterov, weight_decay,\n"
	"                     decay_bn_bias, min_lr, gamma, milestones, warmup,\n"
	"                     crop_pad, hflip, val_size, keep_best, eval_batch\n"
	"  --max-steps N      stop after N optimizer steps (smoke runs)\n"
	"  --keep P[,P...]    also keep the model at these training points:\n"
	"                     N (iterations), Xep (epochs), X% (of training);\n"
	"                     written as FILE.stepN.ckpt next to --out (LTH's\n"
	"                     rewind point for `prunebench prune`)\n"
	"  --quiet            no progress output\n";

enum { OPT_SET = 256, OPT_MAX_STEPS, OPT_QUIET, OPT_KEEP };

static const struct option train_opts[] = {
	{ "data", required_argument, NULL, 'd' },
	{ "out", required_argument, NULL, 'o' },
	{ "epochs", required_argument, NULL, 'e' },
	{ "batch", required_argument, NULL, 'b' },
	{ "lr", required_argument, NULL, 'l' },
	{ "schedule", required_argument, NULL, 'S' },
	{ "seed", required_argument, NULL, 's' },
	{ "threads", required_argument, NULL, 't' },
	{ "set", required_argument, NULL, OPT_SET },
	{ "max-steps", required_argument, NULL, OPT_MAX_STEPS },
	{ "quiet", no_argument, NULL, OPT_QUIET },
	{ "keep", required_argument, NULL, OPT_KEEP },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

static int set_recipe(pb_recipe *r, const char *key, const char *val)
{
	pb_error err = { 0 };

	if (pb_recipe_set(r, key, val, &err))
		return cli_usage_error("train", "%s", err.msg);
	return 0;
}

/* FILE.ckpt -> FILE.csv */
static char *csv_path_for(const char *ckpt)
{
	size_t n = strlen(ckpt);
	char *p = malloc(n + 5);

	if (!p)
		return NULL;
	strcpy(p, ckpt);
	if (n > 5 && !strcmp(p + n - 5, ".ckpt"))
		p[n - 5] = '\0';
	strcat(p, ".csv");
	return p;
}

#define MAX_KEEP 64

/* "0,1%,2ep" -> sorted iterations of this training. */
static int keep_steps(const char *list, const pb_recipe *r, long per_epoch,
		      long *steps, int *n, pb_error *err)
{
	char buf[1024], *save = NULL;

	*n = 0;
	if (!list)
		return 0;
	snprintf(buf, sizeof buf, "%s", list);
	for (char *t = strtok_r(buf, ", ", &save); t;
	     t = strtok_r(NULL, ", ", &save)) {
		if (*n == MAX_KEEP)
			return pb_error_set(err, PB_EINVAL, "--keep: at most %d "
					    "points", MAX_KEEP);
		if (pbi_point_step(t, r->epochs, per_epoch, &steps[*n], err)) {
			pb_error_prefix(err, "--keep: ");
			return PB_EINVAL;
		}
		(*n)++;
	}
	pbi_points_sort(steps, n);
	return 0;
}

/* The checkpoint and its curve, checked before hours of training: they
 * must be writable files and must not be the model file itself. */
static int check_outputs(const char *model_path, const char *out,
			 pb_error *err)
{
	char *csv = csv_path_for(out);
	int rc = 0;

	if (!csv)
		return pb_error_set(err, PB_ENOMEM, "out of memory");
	if ((rc = pbi_check_output(out, "checkpoint", err)) ||
	    (rc = pbi_check_output(csv, "training curve", err)))
		goto out;
	if (pbi_same_file(out, model_path) || pbi_same_file(csv, model_path))
		rc = pb_error_set(err, PB_EINVAL, "--out %s would overwrite "
				  "the model file %s (or its curve %s would); "
				  "choose another name", out, model_path, csv);
out:
	free(csv);
	return rc;
}

static int run_training(const char *model_path, const cli_common *c,
			const pb_recipe *r, const char *out, long max_steps,
			int quiet, const char *keep)
{
	long steps[MAX_KEEP];
	pbi_point_saver saver = { 0 };
	pb_train_hooks hooks = { 0 };
	char *base = NULL;
	pb_error err = { 0 };
	pb_model *m = NULL;
	pb_data_spec spec;
	pb_splits sp;
	gsl_rng *rng = NULL;
	pb_train_opts opts = { 0 };
	double t0, acc = 0, loss = 0, wall;
	char *csv = NULL;
	int rc;

	if ((rc = pb_data_spec_parse(&spec, c->data, &err)) ||
	    (rc = pb_recipe_check(r, NULL, &err)))
		return cli_fail("train", &err);
	if (out && (rc = check_outputs(model_path, out, &err)))
		return cli_fail("train", &err);
	if ((rc = pb_model_load(&m, model_path, &err)))
		return cli_fail("train", &err);
	if ((rc = pb_splits_load(&sp, &spec, r->val_size, c->split_seed,
				 &err))) {
		pb_model_free(m);
		return cli_fail("train", &err);
	}
	rng = gsl_rng_alloc(gsl_rng_mt19937);
	gsl_rng_set(rng, c->seed);
	rc = pb_model_init(m, rng, r->init, &err);
	if (!rc)
		rc = keep_steps(keep, r, pb_recipe_steps_per_epoch(r,
				sp.train.n), steps, &saver.n, &err);
	if (!rc && saver.n) {
		base = pbi_point_base(out);
		saver.base = base;
		saver.steps = steps;
		saver.err = &err;
		hooks.user = &saver;
		hooks.after_step = pbi_point_saver_step;
		opts.hooks = &hooks;
		rc = base ? pbi_point_saver_begin(&saver, m) :
			pb_error_set(&err, PB_ENOMEM, "out of memory");
	}
	if (out)
		csv = csv_path_for(out);
	opts.csv_path = csv;
	opts.progress = quiet ? NULL : stderr;
	opts.label = pb_model_name(m);
	opts.max_steps = max_steps;
	t0 = pbi_now();
	if (!rc)
		rc = pb_train(m, &sp.train, &sp.val, r, rng, &opts, NULL, &err);
	wall = pbi_now() - t0;
	if (!rc && saver.n)
		rc = pbi_point_saver_end(&saver);
	if (!rc)
		rc = pb_evaluate(m, &sp.test, r->eval_batch, &acc, &loss, &err);
	if (!rc && out)
		rc = pb_checkpoint_save(m, out, &err);
	if (!rc) {
		printf("model %s  data %s  seed %lu  epochs %d  threads %d\n",
		       pb_model_name(m), c->data, c->seed, r->epochs,
		       c->threads);
		printf("test accuracy %.2f%%  test loss %.4f  training time "
		       "%.1f s\n", 100.0 * acc, loss, wall);
		if (out)
			printf("checkpoint %s  curve %s\n", out, csv);
		for (int i = 0; i < saver.n; i++)
			printf("kept iteration %ld: %s.step%ld.ckpt\n",
			       steps[i], base, steps[i]);
	}
	free(base);
	free(csv);
	gsl_rng_free(rng);
	pb_splits_free(&sp);
	pb_model_free(m);
	return rc ? cli_fail("train", &err) : 0;
}

int cmd_train(int argc, char **argv)
{
	cli_common c;
	pb_recipe r;
	const char *out = NULL, *keep = NULL;
	long v, max_steps = 0;
	double d;
	int opt, quiet = 0;

	cli_common_init(&c);
	pb_recipe_default(&r);
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", train_opts, NULL)) != -1) {
		switch (opt) {
		case 'd': c.data = optarg; break;
		case 'o': out = optarg; break;
		case 'e':
			if (cli_int("--epochs", optarg, 0, 100000, &v))
				return 2;
			r.epochs = (int)v;
			break;
		case 'b':
			if (set_recipe(&r, "batch", optarg))
				return 2;
			break;
		case 'l':
			if (cli_double("--lr", optarg, &d) ||
			    set_recipe(&r, "lr", optarg))
				return 2;
			break;
		case 'S':
			if (set_recipe(&r, "schedule", optarg))
				return 2;
			break;
		case 's':
			if (cli_seed(optarg, &c.seed))
				return 2;
			break;
		case 't':
			if (cli_threads(optarg, &c.threads))
				return 2;
			break;
		case OPT_SET:
			if (cli_recipe_set_kv("train", &r, optarg))
				return 2;
			break;
		case OPT_MAX_STEPS:
			if (cli_int("--max-steps", optarg, 1, 1L << 40,
				    &max_steps))
				return 2;
			break;
		case OPT_QUIET: quiet = 1; break;
		case OPT_KEEP: keep = optarg; break;
		case 'h': fputs(train_usage, stdout); return 0;
		default: return cli_usage_error("train", "bad option");
		}
	}
	if (optind != argc - 1)
		return cli_usage_error("train", "expected one MODEL.ini");
	if (keep && !out)
		return cli_usage_error("train", "--keep needs --out (the points "
				       "are written next to it)");
	c.threads = cli_apply_threads(c.threads);
	return run_training(argv[optind], &c, &r, out, max_steps, quiet,
			    keep);
}
