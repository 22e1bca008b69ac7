/* Option validation, the same for every plugin: defaults, unknown names
 * (the plugin and its options named), wrong types, ranges (inclusive;
 * unbounded when min > max or when min and max are left out), choices,
 * malformed declarations. */
#include "../testutil.h"
#include "prunebench/plugin.h"

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

/* A numeric option declared without min and max (both 0, as a
 * zero-initialised declaration has them) is unbounded: its default
 * loads and any number is taken. min == max != 0 is a one-value range. */
static void test_zero_range_is_unbounded(void **state)
{
	static const pb_pruner_option decls[] = {
		{ .name = "steps", .type = PB_OPT_INT, .def = "7", .help = "s" },
		{ .name = "scale", .type = PB_OPT_DOUBLE, .def = "-2.5",
		  .help = "x" },
		{ .name = "three", .type = PB_OPT_INT, .def = "3", .help = "t",
		  .min = 3, .max = 3 },
		{ .name = "on", .type = PB_OPT_BOOL, .def = "yes", .help = "b" },
	};
	pb_pruner d = test_desc;
	pb_options *o = NULL;
	pb_error err = { 0 };

	(void)state;
	d.options = decls;
	d.n_options = 4;
	if (pb_options_new(&o, &d, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(pb_options_int(o, "steps"), 7);
	assert_true(pb_options_double(o, "scale") == -2.5);
	assert_int_equal(pb_options_set(o, "steps", "-123456789", NULL, &err),
			 0);
	assert_int_equal(pb_options_int(o, "steps"), -123456789);
	assert_int_equal(pb_options_set(o, "scale", "1e300", NULL, &err), 0);
	assert_int_equal(pb_options_set(o, "three", "3", NULL, &err), 0);
	assert_int_equal(pb_options_set(o, "three", "4", NULL, &err),
			 PB_EPARSE);
	assert_non_null(strstr(err.msg, "[3, 3]"));
	assert_int_equal(pb_option_bounded(&decls[0]), 0);
	assert_int_equal(pb_option_bounded(&decls[1]), 0);
	assert_int_equal(pb_option_bounded(&decls[2]), 1);
	/* A range on a type that has none means nothing. */
	assert_int_equal(pb_option_bounded(&decls[3]), 0);
	/* min > max: unbounded, as before. */
	assert_int_equal(pb_option_bounded(&test_options[2]), 0);
	assert_int_equal(pb_option_bounded(&test_options[0]), 1);
	pb_options_free(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_options_validation),
		cmocka_unit_test(test_bad_option_declarations),
		cmocka_unit_test(test_zero_range_is_unbounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
