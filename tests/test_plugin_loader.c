/* The plugin loader and option validation: refusals (ABI version, struct
 * size, missing entry symbol, missing prune hook, bad names, missing
 * plugin), the search path, descriptor fields of the shipped plugins, and
 * the option checks the core makes for every plugin. */
#include <sys/stat.h>

#include "testutil.h"
#include "prunebench/plugin.h"

static char build_plugins[4096], test_plugins[4096];

static int setup_dirs(void **state)
{
	const char *b = getenv("PB_BUILDDIR");

	(void)state;
	if (!b)
		b = ".";
	snprintf(build_plugins, sizeof build_plugins, "%s/plugins/.libs", b);
	snprintf(test_plugins, sizeof test_plugins, "%s/tests/plugins/.libs",
		 b);
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
	pb_plugin_close(p);
	pb_plugin_path_free(sp);
}

/* ---- options ----------------------------------------------------------- */

static int nop_prune(void *state, pb_prune_ctx *ctx)
{
	(void)state;
	(void)ctx;
	return 0;
}

static const pb_pruner_option test_options[] = {
	{ .name = "rounds", .type = PB_OPT_INT, .def = "3", .help = "n",
	  .min = 1, .max = 10 },
	{ .name = "rate", .type = PB_OPT_DOUBLE, .def = "0.5", .help = "r",
	  .min = 0, .max = 1 },
	{ .name = "free", .type = PB_OPT_DOUBLE, .def = "-7", .help = "f",
	  .min = 1, .max = 0 },
	{ .name = "bias", .type = PB_OPT_BOOL, .def = "no", .help = "b" },
	{ .name = "crit", .type = PB_OPT_CHOICE, .def = "l1",
	  .choices = "l1|l2|linf", .help = "c" },
	{ .name = "tag", .type = PB_OPT_STRING, .def = "", .help = "t" },
};

static const pb_pruner test_desc = {
	PB_PRUNER_HEADER,
	.name = "opty",
	.version = "0",
	.options = test_options,
	.n_options = 6,
	.prune = nop_prune,
};

static void expect_opt_error(pb_options *o, const char *k, const char *v,
			     int code, const char *s1, const char *s2)
{
	pb_error err = { 0 };
	int rc = pb_options_set(o, k, v, "exp.ini:12", &err);

	if (rc != code || !strstr(err.msg, s1) || (s2 && !strstr(err.msg, s2))
	    || !strstr(err.msg, "exp.ini:12: ") || !strstr(err.msg, "'opty'"))
		fail_msg("%s=%s: rc %d, message: %s", k, v, rc, err.msg);
}

static void test_options_validation(void **state)
{
	pb_options *o = NULL;
	pb_error err = { 0 };

	(void)state;
	assert_int_equal(pb_options_new(&o, &test_desc, &err), 0);
	/* Defaults. */
	assert_int_equal(pb_options_int(o, "rounds"), 3);
	assert_true(pb_options_double(o, "rate") == 0.5);
	assert_true(pb_options_double(o, "free") == -7.0);
	assert_int_equal(pb_options_bool(o, "bias"), 0);
	assert_string_equal(pb_options_text(o, "crit"), "l1");
	/* Unknown: names the plugin and lists its options. */
	expect_opt_error(o, "round", "3", PB_ENOTFOUND, "no option 'round'",
			 "its options are: rounds (integer), rate (number), "
			 "free (number), bias (yes/no), crit (l1|l2|linf), "
			 "tag (text)");
	/* Bad type. */
	expect_opt_error(o, "rounds", "3.5", PB_EPARSE, "is not an integer",
			 "option 'rounds'");
	expect_opt_error(o, "rate", "half", PB_EPARSE, "is not a number",
			 NULL);
	expect_opt_error(o, "bias", "maybe", PB_EPARSE, "is not yes/no",
			 NULL);
	/* Out of range, both ends inclusive. */
	expect_opt_error(o, "rounds", "11", PB_EPARSE, "out of range",
			 "[1, 10]");
	expect_opt_error(o, "rounds", "0", PB_EPARSE, "out of range", NULL);
	expect_opt_error(o, "rate", "1.01", PB_EPARSE, "out of range",
			 "[0, 1]");
	/* Bad choice; a prefix of a choice is not a choice. */
	expect_opt_error(o, "crit", "l3", PB_EPARSE, "is not one of l1|l2|linf",
			 NULL);
	expect_opt_error(o, "crit", "l", PB_EPARSE, "is not one of", NULL);
	/* Failed sets leave the old values. */
	assert_int_equal(pb_options_int(o, "rounds"), 3);
	/* Valid values, including the range ends and an unbounded one. */
	assert_int_equal(pb_options_set(o, "rounds", "10", NULL, &err), 0);
	assert_int_equal(pb_options_set_kv(o, "rate = 0", "--opt", &err), 0);
	assert_int_equal(pb_options_set_kv(o, "free=12345", "--opt", &err), 0);
	assert_int_equal(pb_options_set_kv(o, "bias=on", "--opt", &err), 0);
	assert_int_equal(pb_options_set_kv(o, "crit=linf", "--opt", &err), 0);
	assert_int_equal(pb_options_int(o, "rounds"), 10);
	assert_true(pb_options_double(o, "rate") == 0.0);
	assert_true(pb_options_double(o, "free") == 12345.0);
	assert_int_equal(pb_options_bool(o, "bias"), 1);
	assert_string_equal(pb_options_text(o, "crit"), "linf");
	/* Wrong accessor for the type reads 0. */
	assert_int_equal(pb_options_int(o, "rate"), 0);
	assert_int_equal(pb_options_set_kv(o, "noequals", "--opt", &err),
			 PB_EPARSE);
	pb_options_free(o);
}

static void test_bad_option_declarations(void **state)
{
	pb_pruner d = test_desc;
	pb_pruner_option bad[2] = { test_options[0], test_options[0] };
	pb_options *o = NULL;
	pb_error err = { 0 };

	(void)state;
	d.options = bad;
	d.n_options = 1;
	bad[0].def = "99"; /* outside its own range */
	assert_int_equal(pb_options_new(&o, &d, &err), PB_EPARSE);
	assert_non_null(strstr(err.msg, "the default of option 'rounds'"));
	bad[0].def = NULL;
	assert_int_equal(pb_options_new(&o, &d, &err), PB_EINVAL);
	bad[0].def = "3";
	d.n_options = 2; /* declared twice */
	assert_int_equal(pb_options_new(&o, &d, &err), PB_EINVAL);
	assert_non_null(strstr(err.msg, "twice"));
	assert_null(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_abi_mismatch),
		cmocka_unit_test(test_size_mismatch),
		cmocka_unit_test(test_missing_entry),
		cmocka_unit_test(test_missing_prune),
		cmocka_unit_test(test_bad_names),
		cmocka_unit_test(test_missing_plugin_lists_available),
		cmocka_unit_test(test_name_must_match_file),
		cmocka_unit_test(test_list_and_order),
		cmocka_unit_test(test_env_path),
		cmocka_unit_test(test_descriptors),
		cmocka_unit_test(test_options_validation),
		cmocka_unit_test(test_bad_option_declarations),
	};

	return cmocka_run_group_tests(tests, setup_dirs, NULL);
}
