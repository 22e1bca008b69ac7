/* prunebench plugins: the pruners on the search path, with their options. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "prunebench/plugin.h"

static const char plugins_usage[] =
	"Usage: prunebench plugins [--plugin-dir DIR]... [NAME]\n"
	"\n"
	"Lists every pruner plugin on the search path (name, version,\n"
	"granularity, whether it prunes at initialisation, description,\n"
	"citation, file and options), or only NAME.\n"
	"Search order: --plugin-dir folders, $" PB_PLUGIN_ENV " (colon-\n"
	"separated), the build tree's plugins when run from it, then the\n"
	"installed plugin folder. The first NAME.so found wins.\n"
	"\n"
	"  --plugin-dir DIR   also search DIR (first; may be repeated)\n"
	"  --path             print the search path and exit\n";

static const struct option plugins_opts[] = {
	{ "plugin-dir", required_argument, NULL, 'P' },
	{ "path", no_argument, NULL, 'p' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

int cli_plugin_path(const char *cmd, char **dirs, int n_dirs,
		    pb_plugin_path **out)
{
	pb_error err = { 0 };
	pb_plugin_path *sp = NULL;

	*out = NULL;
	if (pb_plugin_path_new(&sp, &err))
		return cli_fail(cmd, &err);
	for (int i = 0; i < n_dirs; i++)
		if (pb_plugin_path_add(sp, dirs[i], &err)) {
			pb_plugin_path_free(sp);
			return cli_usage_error(cmd, "--plugin-dir: %s", err.msg);
		}
	*out = sp;
	return 0;
}

static void print_option(const pb_pruner_option *o)
{
	char range[96] = "";

	if (pb_option_bounded(o))
		snprintf(range, sizeof range, " [%g, %g]", o->min, o->max);
	else if (o->type == PB_OPT_CHOICE && o->choices)
		snprintf(range, sizeof range, " (%s)", o->choices);
	printf("    %-16s %-8s default %-8s %s%s\n", o->name,
	       pb_opt_type_name(o->type), o->def, o->help ? o->help : "",
	       range);
}

static void print_plugin(const pb_plugin *p)
{
	const pb_pruner *d = pb_plugin_pruner(p);

	printf("%s %s  (%s%s)\n", d->name, d->version,
	       pb_granularity_name(d->granularity),
	       d->at_init ? ", at initialisation" : "");
	printf("  %s\n", d->description);
	if (d->at_init)
		printf("  prunes at initialisation: it gets the model the "
		       "dense training started from,\n  and the pruned "
		       "model trains with the dense recipe, not the "
		       "fine-tune\n");
	if (d->citation[0])
		printf("  cite: %s\n", d->citation);
	printf("  file: %s\n", pb_plugin_file(p));
	if (d->n_options == 0)
		printf("  options: none\n");
	else
		printf("  options:\n");
	for (int i = 0; i < d->n_options; i++)
		print_option(&d->options[i]);
}

int cmd_plugins(int argc, char **argv)
{
	char *dirs[CLI_MAX_DIRS];
	int n_dirs = 0, opt, show_path = 0, rc = 0, n = 0, shown = 0;
	pb_plugin_path *sp = NULL;
	pb_plugin_entry *list = NULL;
	pb_error err = { 0 };

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", plugins_opts, NULL)) != -1) {
		switch (opt) {
		case 'P':
			if (cli_push("plugins", "--plugin-dir", dirs, &n_dirs,
				     CLI_MAX_DIRS, optarg))
				return 2;
			break;
		case 'p': show_path = 1; break;
		case 'h': fputs(plugins_usage, stdout); return 0;
		default: return cli_usage_error("plugins", "bad option");
		}
	}
	if (optind < argc - 1)
		return cli_usage_error("plugins", "give at most one NAME");
	if ((rc = cli_plugin_path("plugins", dirs, n_dirs, &sp)))
		return rc;
	if (show_path) {
		for (int i = 0; i < pb_plugin_path_count(sp); i++)
			printf("%s\n", pb_plugin_path_dir(sp, i));
		pb_plugin_path_free(sp);
		return 0;
	}
	if (optind == argc - 1) {
		pb_plugin *p = NULL;

		rc = pb_plugin_open(&p, sp, argv[optind], &err);
		if (!rc)
			print_plugin(p);
		pb_plugin_close(p);
		pb_plugin_path_free(sp);
		return rc ? cli_fail("plugins", &err) : 0;
	}
	if (pb_plugin_list(sp, &list, &n, &err)) {
		pb_plugin_path_free(sp);
		return cli_fail("plugins", &err);
	}
	/* A broken file is shown with the reason and makes the exit status
	 * 1, but does not hide the plugins that load. */
	for (int i = 0; i < n; i++) {
		pb_plugin *p = NULL;

		if (shown++)
			putchar('\n');
		if (pb_plugin_open_file(&p, list[i].file, &err)) {
			printf("%s  (refused)\n  %s\n", list[i].name, err.msg);
			rc = 1;
			continue;
		}
		print_plugin(p);
		pb_plugin_close(p);
	}
	if (n == 0) {
		printf("no plugins found; searched:\n");
		for (int i = 0; i < pb_plugin_path_count(sp); i++)
			printf("  %s\n", pb_plugin_path_dir(sp, i));
	}
	pb_plugin_list_free(list, n);
	pb_plugin_path_free(sp);
	return rc;
}
