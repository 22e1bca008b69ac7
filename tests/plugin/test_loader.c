/* The plugin loader: refusals (ABI version, struct size, missing entry
 * symbol, missing prune hook, bad names, missing plugin), plugins built
 * against older headers (the first version-1 one; the one just before
 * at_init) loading with their missing fields zero, the search path, and
 * the descriptor fields of the shipped plugins. */
#include <stddef.h>
#include <sys/stat.h>

#include "../testutil.h"
#include "prunebench/plugin.h"

static char build_plugins[4096], test_plugins[4096];

static int setup_dirs(void **state)
{
	const char *b = getenv("PB_BUILDDIR");

	(void)state;
	if (!b)
		b = ".";
	snprintf(build_plugins, sizeof build_plugins, "%s/plugins/.libs", b);
	snprintf(test_plugins, sizeof test_plugins,
		 "%s/tests/plugins/fixtures/.libs", b);
	return 0;
}

/* A path holding exactly these folders first (the defaults follow). */
static pb_plugin_path *path_with(const char *d1, const char *d2)
{
	pb_plugin_path *sp = NULL;
	pb_error err = { 0 };

	assert_int_equal(pb_plugin_path_new(&sp, &err), 0);
	if (d1)
		assert_int_equal(pb_plugin_path_add(sp, d1, &err), 0);
	if (d2)
		assert_int_equal(pb_plugin_path_add(sp, d2, &err), 0);
	return sp;
}

static void expect_refusal(const char *name, int code, const char *s1,
			   const char *s2)
{
	pb_plugin_path *sp = path_with(test_plugins, NULL);
	pb_plugin *p = NULL;
	pb_error err = { 0 };
	int rc = pb_plugin_open(&p, sp, name, &err);

	if (rc != code || !strstr(err.msg, s1) || (s2 && !strstr(err.msg, s2)))
		fail_msg("%s: rc %d, message: %s", name, rc, err.msg);
	assert_null(p);
	pb_plugin_path_free(sp);
}

static void test_abi_mismatch(void **state)
{
	char want[64], have[64];

	(void)state;
	snprintf(want, sizeof want, "ABI version %u,",
		 PB_PRUNER_ABI_VERSION + 41);
	snprintf(have, sizeof have, "ABI version %u:", PB_PRUNER_ABI_VERSION);
	expect_refusal("bad_abi", PB_EMISMATCH, want, have);
}

static void test_size_mismatch(void **state)
{
	char size[64];

	(void)state;
	snprintf(size, sizeof size, "descriptor of %zu bytes",
		 sizeof(pb_pruner) + 64);
	expect_refusal("bad_size", PB_EMISMATCH, size, "newer header");
}

static void test_missing_entry(void **state)
{
	(void)state;
	expect_refusal("no_entry", PB_EFORMAT, "does not export "
		       "pb_pruner_entry", NULL);
}

static void test_missing_prune(void **state)
{
	(void)state;
	expect_refusal("no_prune", PB_EINVAL, "no prune hook", NULL);
}

/* The descriptor of ABI version 1's first header ended with prune. */
#define V1_SIZE (offsetof(pb_pruner, prune) + sizeof(((pb_pruner *)0)->prune))

/* A plugin built against that header loads: the host's copy holds its
 * struct_size bytes and zeros after them, its optional hooks read NULL,
 * fields added since (at_init) read 0, and a cell runs with it (the
 * host calls no hook it lacks). */
static void test_older_header_loads(void **state)
{
	pb_plugin_path *sp = path_with(test_plugins, NULL);
	pb_plugin *p = NULL;
	pb_error err = { 0 };
	const pb_pruner *d;
	const unsigned char *bytes;
	pb_model *m = tu_parse_model("[model]\nname = v1\ninput = 1x2x2\n"
				     "classes = 2\n[f]\ntype = flatten\n"
				     "[fc]\ntype = linear\nout = 2\n", "v1");
	pb_model *out = NULL;
	pb_target t = { .kind = PB_TARGET_SPARSITY, .amount = 0.5 };
	pb_prune_setup su = { 0 };

	(void)state;
	assert_true(sizeof(pb_pruner) >= V1_SIZE);
	if (pb_plugin_open(&p, sp, "v1_size", &err))
		fail_msg("%s", err.msg);
	d = pb_plugin_pruner(p);
	assert_int_equal(d->struct_size, V1_SIZE);
	assert_string_equal(d->name, "v1_size");
	assert_null(d->create);
	assert_null(d->destroy);
	assert_null(d->on_train_begin);
	assert_null(d->after_backward);
	assert_null(d->after_epoch);
	assert_non_null(d->prune);
	assert_int_equal(d->at_init, 0);
	bytes = (const unsigned char *)d;
	assert_true(sizeof *d > V1_SIZE);
	for (size_t i = V1_SIZE; i < sizeof *d; i++)
		assert_int_equal(bytes[i], 0);
	su.pruner = d;
	su.target = &t;
	if (tu_prune_run(m, &su, NULL, 1, &out, NULL, &err))
		fail_msg("%s", err.msg);
	pb_model_free(out);
	pb_model_free(m);
	pb_plugin_close(p);
	pb_plugin_path_free(sp);
}

/* A plugin built just before at_init was added, whose own struct has
 * a 1 right where at_init lies: the host reads its struct_size bytes
 * only, so the plugin prunes the trained model (at_init 0). */
static void test_pre_at_init_reads_zero(void **state)
{
	pb_plugin_path *sp = path_with(test_plugins, NULL);
	pb_plugin *p = NULL;
	pb_error err = { 0 };
	const pb_pruner *d;

	(void)state;
	if (pb_plugin_open(&p, sp, "pre_at_init", &err))
		fail_msg("%s", err.msg);
	d = pb_plugin_pruner(p);
	assert_int_equal(d->struct_size, offsetof(pb_pruner, at_init));
	assert_true(d->struct_size < sizeof(pb_pruner));
	assert_int_equal(d->at_init, 0);
	assert_non_null(d->prune);
	pb_plugin_close(p);
	pb_plugin_path_free(sp);
}

static void test_bad_names(void **state)
{
	pb_plugin_path *sp = path_with(build_plugins, NULL);
	pb_plugin *p = NULL;
	pb_error err = { 0 };

	(void)state;
	assert_int_equal(pb_plugin_open(&p, sp, "../plugins/l1", &err),
			 PB_EINVAL);
	assert_non_null(strstr(err.msg, "contains '/'"));
	assert_int_equal(pb_plugin_open(&p, sp, "/tmp/l1", &err), PB_EINVAL);
	assert_int_equal(pb_plugin_open(&p, sp, "..", &err), PB_EINVAL);
	assert_non_null(strstr(err.msg, "contains '..'"));
	assert_int_equal(pb_plugin_open(&p, sp, "l1.so", &err), PB_EINVAL);
	assert_int_equal(pb_plugin_open(&p, sp, "", &err), PB_EINVAL);
	assert_null(p);
	pb_plugin_path_free(sp);
}

static void test_missing_plugin_lists_available(void **state)
{
	pb_plugin_path *sp = path_with(build_plugins, NULL);
	pb_plugin *p = NULL;
	pb_error err = { 0 };

	(void)state;
	assert_int_equal(pb_plugin_open(&p, sp, "nosuch", &err),
			 PB_ENOTFOUND);
	assert_non_null(strstr(err.msg, "no plugin 'nosuch'"));
	assert_non_null(strstr(err.msg, "available: "));
	assert_non_null(strstr(err.msg, "l1"));
	assert_non_null(strstr(err.msg, "magnitude"));
	assert_non_null(strstr(err.msg, build_plugins));
	pb_plugin_path_free(sp);
}

static void test_name_must_match_file(void **state)
{
	char *dir = tu_temp_dir(), src[4200], dst[4200], cmd[9000];
	pb_plugin_path *sp;
	pb_plugin *p = NULL;
	pb_error err = { 0 };

	(void)state;
	snprintf(src, sizeof src, "%s/magnitude.so", build_plugins);
	snprintf(dst, sizeof dst, "%s/other.so", dir);
	snprintf(cmd, sizeof cmd, "cp '%s' '%s'", src, dst);
	assert_int_equal(system(cmd), 0);
	sp = path_with(dir, NULL);
	assert_int_equal(pb_plugin_open(&p, sp, "other", &err), PB_EINVAL);
	assert_non_null(strstr(err.msg, "declares the name 'magnitude'"));
	pb_plugin_path_free(sp);
	unlink(dst);
	rmdir(dir);
	free(dir);
}

static void test_list_and_order(void **state)
{
	pb_plugin_path *sp = path_with(test_plugins, build_plugins);
	pb_plugin_entry *list = NULL;
	pb_error err = { 0 };
	int n = 0, found = 0;

	(void)state;
	/* --plugin-dir folders come first, in the order given. */
	assert_string_equal(pb_plugin_path_dir(sp, 0), test_plugins);
	assert_string_equal(pb_plugin_path_dir(sp, 1), build_plugins);
	assert_int_equal(pb_plugin_list(sp, &list, &n, &err), 0);
	for (int i = 0; i < n; i++) {
		if (i)
			assert_true(strcmp(list[i - 1].name, list[i].name) < 0);
		if (!strcmp(list[i].name, "bad_abi") ||
		    !strcmp(list[i].name, "l1") ||
		    !strcmp(list[i].name, "magnitude"))
			found++;
	}
	assert_int_equal(found, 3);
	pb_plugin_list_free(list, n);
	pb_plugin_path_free(sp);

	/* A folder that does not exist is refused. */
	assert_int_equal(pb_plugin_path_new(&sp, &err), 0);
	assert_int_equal(pb_plugin_path_add(sp, "/nonexistent/pb", &err),
			 PB_EIO);
	pb_plugin_path_free(sp);
}

static void test_env_path(void **state)
{
	char env[9000];
	pb_plugin_path *sp = NULL;
	pb_plugin *p = NULL;
	pb_error err = { 0 };

	(void)state;
	snprintf(env, sizeof env, "/nonexistent/a::%s", build_plugins);
	setenv(PB_PLUGIN_ENV, env, 1);
	assert_int_equal(pb_plugin_path_new(&sp, &err), 0);
	unsetenv(PB_PLUGIN_ENV);
	assert_string_equal(pb_plugin_path_dir(sp, 0), "/nonexistent/a");
	assert_string_equal(pb_plugin_path_dir(sp, 1), build_plugins);
	assert_int_equal(pb_plugin_open(&p, sp, "l1", &err), 0);
	pb_plugin_close(p);
	pb_plugin_path_free(sp);
}

static const pb_pruner_option *find_opt(const pb_pruner *d, const char *n)
{
	for (int i = 0; i < d->n_options; i++)
		if (!strcmp(d->options[i].name, n))
			return &d->options[i];
	return NULL;
}

static void test_descriptors(void **state)
{
	pb_plugin_path *sp = path_with(build_plugins, NULL);
	pb_plugin *p = NULL;
	const pb_pruner *d;
	const pb_pruner_option *o;
	pb_error err = { 0 };

	(void)state;
	assert_int_equal(pb_plugin_open(&p, sp, "magnitude", &err), 0);
	d = pb_plugin_pruner(p);
	assert_string_equal(d->name, "magnitude");
	assert_int_equal(d->abi_version, PB_PRUNER_ABI_VERSION);
	assert_int_equal(d->granularity, PB_GRANULARITY_WEIGHT);
	assert_non_null(strstr(d->citation, "Han"));
	assert_non_null(strstr(d->citation, "2015"));
	assert_true(strlen(d->description) > 10);
	assert_true(strlen(d->version) > 0);
	assert_non_null(d->prune);
	assert_non_null(o = find_opt(d, "include_first"));
	assert_int_equal(o->type, PB_OPT_BOOL);
	assert_string_equal(o->def, "yes");
	assert_non_null(o->help);
	assert_non_null(find_opt(d, "include_linear"));
	assert_non_null(strstr(pb_plugin_file(p), "magnitude.so"));
	pb_plugin_close(p);

	assert_int_equal(pb_plugin_open(&p, sp, "l1", &err), 0);
	d = pb_plugin_pruner(p);
	assert_string_equal(d->name, "l1");
	assert_int_equal(d->granularity, PB_GRANULARITY_CHANNEL);
	assert_non_null(strstr(d->citation, "ICLR 2017"));
	assert_non_null(o = find_opt(d, "norm"));
	assert_int_equal(o->type, PB_OPT_INT);
	assert_string_equal(o->def, "1");
	assert_true(o->min == 1 && o->max == 2);
	/* PB_PRUNER_DEFINE filled the header and the name, and
	 * PB_PRUNER_OPTIONS the count; PB_OPTION_MIN_KEEP is min_keep. */
	assert_int_equal(d->struct_size, sizeof(pb_pruner));
	assert_int_equal(d->n_options, 4);
	assert_non_null(o = find_opt(d, "min_keep"));
	assert_int_equal(o->type, PB_OPT_INT);
	assert_string_equal(o->def, "1");
	assert_true(o->min == 1 && o->max == 1e6);
	pb_plugin_close(p);

	/* The pruners at initialisation say so; the others do not. */
	assert_int_equal(pb_plugin_open(&p, sp, "snip", &err), 0);
	assert_int_equal(pb_plugin_pruner(p)->at_init, 1);
	assert_int_equal(pb_plugin_pruner(p)->granularity,
			 PB_GRANULARITY_WEIGHT);
	pb_plugin_close(p);
	assert_int_equal(pb_plugin_open(&p, sp, "synflow", &err), 0);
	assert_int_equal(pb_plugin_pruner(p)->at_init, 1);
	assert_int_equal(pb_plugin_pruner(p)->struct_size, sizeof(pb_pruner));
	pb_plugin_close(p);
	assert_int_equal(pb_plugin_open(&p, sp, "magnitude", &err), 0);
	assert_int_equal(pb_plugin_pruner(p)->at_init, 0);
	pb_plugin_close(p);
	pb_plugin_path_free(sp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_abi_mismatch),
		cmocka_unit_test(test_size_mismatch),
		cmocka_unit_test(test_missing_entry),
		cmocka_unit_test(test_missing_prune),
		cmocka_unit_test(test_older_header_loads),
		cmocka_unit_test(test_pre_at_init_reads_zero),
		cmocka_unit_test(test_bad_names),
		cmocka_unit_test(test_missing_plugin_lists_available),
		cmocka_unit_test(test_name_must_match_file),
		cmocka_unit_test(test_list_and_order),
		cmocka_unit_test(test_env_path),
		cmocka_unit_test(test_descriptors),
	};

	return cmocka_run_group_tests(tests, setup_dirs, NULL);
}
