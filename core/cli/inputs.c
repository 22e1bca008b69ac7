/* What the commands load from their arguments: a trained model (its INI
 * and checkpoint), the data splits of a --data spec, and a pruner plugin
 * with its --opt options. One place, so that every command loads them
 * alike and reports the same errors. */
#include <getopt.h>

#include "cli/cli.h"

int cli_load_trained(pb_model **m, const char *ini, const char *ckpt,
		     pb_error *err)
{
	int rc = pb_model_load(m, ini, err);

	if (!rc && ckpt)
		rc = pb_checkpoint_load(*m, ckpt, err);
	return rc;
}

int cli_load_splits(pb_splits *sp, const char *data, int val_size,
		    unsigned long split_seed, pb_error *err)
{
	pb_data_spec spec;
	int rc = pb_data_spec_parse(&spec, data, err);

	if (!rc)
		rc = pb_splits_load(sp, &spec, val_size, split_seed, err);
	return rc;
}

int cli_pruner_operands(const char *cmd, const cli_pruner *p, int argc,
			char **argv, const char **model, const char **ckpt)
{
	if (optind != argc - 2)
		return cli_usage_error(cmd, "expected MODEL.ini and "
				       "DENSE.ckpt");
	*model = argv[optind];
	*ckpt = argv[optind + 1];
	if (!p->name)
		return cli_usage_error(cmd, "--plugin NAME is required (see "
				       "'prunebench plugins')");
	return 0;
}

int cli_pruner_open(const char *cmd, const cli_pruner *p,
		    pb_plugin **plugin, pb_options **opts)
{
	pb_error err = { 0 };
	pb_plugin_path *sp = NULL;
	int rc;

	if ((rc = cli_plugin_path(cmd, (char **)p->dirs, p->n_dirs, &sp)))
		return rc;
	rc = pb_plugin_open(plugin, sp, p->name, &err);
	pb_plugin_path_free(sp);
	if (rc || pb_options_new(opts, pb_plugin_pruner(*plugin), &err))
		return cli_fail(cmd, &err);
	for (int i = 0; i < p->n_opts; i++)
		if (pb_options_set_kv(*opts, p->opts[i], "--opt", &err))
			return cli_usage_error(cmd, "%s", err.msg);
	return 0;
}
