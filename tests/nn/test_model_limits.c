/* Shapes at and past the limits: sizes are counted in 64 bits, so a huge
 * input or layer is refused with a message that names it and gives the
 * true count, never wrapped around into a small or negative one. */
#include "testutil.h"

static void expect_error(const char *text, const char *want)
{
	pb_model *m = NULL;
	pb_error err = { 0 };

	if (!pb_model_parse(&m, text, "big.ini", &err)) {
		pb_model_free(m);
		fail_msg("accepted:\n%s", text);
	}
	if (!strstr(err.msg, want))
		fail_msg("message '%s' lacks '%s'", err.msg, want);
}

static void test_huge_input(void **state)
{
	(void)state;
	/* 65536 x 65536 is 2^32: 0 in an int. */
	expect_error("[model]\nname = big\ninput = 1x65536x65536\n"
		     "classes = 10\n[flatten]\ntype = flatten\n"
		     "[fc]\ntype = linear\nout = 10\n",
		     "[model] input 1x65536x65536 is 4294967296 values");
	/* 2.7e9: negative in an int. */
	expect_error("[model]\nname = big\ninput = 3x30000x30000\n"
		     "classes = 10\n[flatten]\ntype = flatten\n"
		     "[fc]\ntype = linear\nout = 10\n",
		     "is 2700000000 values");
	expect_error("[model]\nname = big\ninput = 1x65537x2\nclasses = 10\n"
		     "[flatten]\ntype = flatten\n[fc]\ntype = linear\n"
		     "out = 10\n", "input = '1x65537x2' is not a shape");
}

static void test_huge_layer(void **state)
{
	pb_model *m = NULL;
	pb_error err = { 0 };

	(void)state;
	/* 2^28 values per sample is the limit: 1x16384x16384 is at it. */
	expect_error("[model]\nname = big\ninput = 1x16384x16384\n"
		     "classes = 10\n[c]\ntype = conv\nout = 2\nkernel = 1\n"
		     "[flatten]\ntype = flatten\n[fc]\ntype = linear\n"
		     "out = 10\n",
		     "big.ini:5: [c] output 2x16384x16384 is 536870912 values");
	/* A weight past 2^30 values. */
	expect_error("[model]\nname = big\ninput = 1x128x128\nclasses = 10\n"
		     "[flatten]\ntype = flatten\n[fc]\ntype = linear\n"
		     "out = 1048576\n[fc2]\ntype = linear\nout = 10\n",
		     "[fc]");
	/* Just inside the limits: built. */
	if (pb_model_parse(&m, "[model]\nname = ok\ninput = 1x64x64\n"
			   "classes = 10\n[flatten]\ntype = flatten\n"
			   "[fc]\ntype = linear\nout = 10\n", "ok.ini", &err))
		fail_msg("%s", err.msg);
	pb_model_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_huge_input),
		cmocka_unit_test(test_huge_layer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
