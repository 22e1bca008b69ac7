/* Fuzzing the experiment INI reader (pb_experiment_parse): the text of an
 * experiment file, read as if it were tests/fuzz/fuzz.ini of the source
 * tree, so that `model = tiny.ini` finds the small model of the
 * experiment tests (tests/fuzz/tiny.ini) and
 * `model = ../../experiments/models/NAME.ini` the shipped ones; its
 * [prune.NAME] sections open the plugins of the build tree
 * (plugins/.libs). An input of odd length is read through a folder path
 * of about 1900 characters (tests/fuzz/./././...). Parsing only reads
 * files: output and cache folders are resolved, never created.
 *
 * A refused file must say why; an accepted one must expand into cells
 * with ids (pb_experiment_cells) and into one dense-cache key per seed,
 * as `prunebench run` does next. */
#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "prunebench/experiment.h"

#ifndef PB_BUILD_PLUGINDIR
#define PB_BUILD_PLUGINDIR "plugins/.libs"
#endif

static pb_plugin_path *plugins;
/* The same file as seen through a folder path of about 1900 characters
 * (tests/fuzz/./././...), used for inputs of odd length: names, keys and
 * messages built from long paths must still be whole. */
static char long_path[4096];

/* libFuzzer keeps counters inside every instrumented shared object it has
 * seen; one that is unloaded (pb_plugin_close) and loaded again elsewhere
 * would leave it reading unmapped memory. Each plugin is therefore opened
 * once here and never unloaded (RTLD_NODELETE): later dlopen and dlclose
 * calls only count references. */
static void pin_plugins(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *ent;

	if (!d)
		return;
	while ((ent = readdir(d))) {
		size_t n = strlen(ent->d_name);
		char path[4096];

		if (n < 4 || strcmp(ent->d_name + n - 3, ".so"))
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, ent->d_name);
		if (!dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE))
			fprintf(stderr, "fuzz: cannot pin %s: %s\n", path,
				dlerror());
	}
	closedir(d);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	pb_error err = { 0 };

	(void)argc;
	(void)argv;
	fuzz_setup();
	/* Only the plugins of this build, never an installed or configured
	 * copy: the same inputs give the same results everywhere. */
	unsetenv(PB_PLUGIN_ENV);
	if (pb_plugin_path_new(&plugins, &err) ||
	    pb_plugin_path_add(plugins, PB_BUILD_PLUGINDIR, &err))
		fuzz_fail("plugin path %s: %s", PB_BUILD_PLUGINDIR, err.msg);
	pin_plugins(PB_BUILD_PLUGINDIR);
	snprintf(long_path, sizeof long_path, "%s/tests/fuzz", PB_SRCDIR);
	while (strlen(long_path) < 1900)
		strcat(long_path, "/.");
	strcat(long_path, "/fuzz.ini");
	return 0;
}

static void expand(const pb_experiment *e)
{
	pb_error err = { 0 };
	pb_cell *cells = NULL;
	char keys[PB_EXP_MAX_SEEDS][17];
	int n = 0, rc;

	rc = pb_experiment_cells(e, &cells, &n, &err);
	if (rc)
		fuzz_check_error(rc, &err, "pb_experiment_cells");
	else if (n < 1)
		fuzz_fail("an experiment without cells was accepted");
	for (int i = 0; i < n; i++)
		if (!memchr(cells[i].id, '\0', sizeof cells[i].id) ||
		    !cells[i].id[0])
			fuzz_fail("cell %d has no id", i);
	free(cells);
	for (int s = 0; s < e->n_seeds; s++) {
		pb_experiment_dense_key(e, e->seeds[s], keys[s]);
		if (strlen(keys[s]) != 16)
			fuzz_fail("dense key '%s' is not 16 hex digits", keys[s]);
		/* Each seed trains its own dense model: one cache entry each. */
		for (int t = 0; t < s; t++)
			if (!strcmp(keys[s], keys[t]))
				fuzz_fail("seeds %lu and %lu share the dense key %s",
					  e->seeds[t], e->seeds[s], keys[s]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_text(data, size);
	pb_experiment *e = NULL;
	pb_error err = { 0 };
	int rc;

	if (!text)
		return 0;
	rc = pb_experiment_parse(&e, text, size % 2 ? long_path :
				 PB_SRCDIR "/tests/fuzz/fuzz.ini", plugins, &err);
	if (rc) {
		fuzz_check_error(rc, &err, "pb_experiment_parse");
		if (e)
			fuzz_fail("pb_experiment_parse failed but returned "
				  "an experiment");
	} else {
		expand(e);
		pb_experiment_free(e);
	}
	free(text);
	return 0;
}
