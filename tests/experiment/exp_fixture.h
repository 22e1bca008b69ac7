/* The fixture the experiment tests share: a temporary folder holding
 * tiny.ini (dir) and the plugin path of the build (sp), made before each
 * test and removed after it. */
#ifndef PB_TESTS_EXPERIMENT_EXP_FIXTURE_H
#define PB_TESTS_EXPERIMENT_EXP_FIXTURE_H

#include "testutil.h"

#include "experiment/tiny.h"

#include "prunebench/plugin.h"

static char *dir;
static pb_plugin_path *sp;

static int setup(void **state)
{
	(void)state;
	dir = tu_temp_dir();
	tu_write_text(dir, "tiny.ini", tiny_model);
	sp = tu_plugin_path();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tu_rm_tree(dir);
	pb_plugin_path_free(sp);
	return 0;
}

#endif
