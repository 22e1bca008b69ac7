/* The strict JSON-lines reader behind runs.jsonl. */
#include "testutil.h"

#include "base/json_read.h"

static int parse(const char *s, pbj_object *o, char *why)
{
	return pbi_json_parse_object(s, strlen(s), o, why, 256);
}

static void test_scalars(void **state)
{
	pbj_object o;
	char why[256];
	const pbj_value *v;
	(void)state;

	assert_int_equal(parse(" {\"a\": 1, \"b\": -0.5, \"c\": null, "
			       "\"d\": true, \"e\": false, \"f\": \"x\"}\r\n",
			       &o, why), 0);
	assert_int_equal(o.n, 6);
	assert_true(pbi_json_num(&o, "a", NULL) == 1.0);
	assert_true(pbi_json_num(&o, "b", NULL) == -0.5);
	v = pbi_json_get(&o, "c");
	assert_non_null(v);
	assert_int_equal(v->type, PBJ_NULL);
	assert_true(isnan(pbi_json_num(&o, "c", NULL)));
	assert_null(pbi_json_str(&o, "c", NULL));
	assert_int_equal(pbi_json_get(&o, "d")->type, PBJ_BOOL);
	assert_int_equal(pbi_json_get(&o, "d")->boolean, 1);
	assert_int_equal(pbi_json_get(&o, "e")->boolean, 0);
	assert_string_equal(pbi_json_str(&o, "f", NULL), "x");
	assert_null(pbi_json_get(&o, "missing"));
	assert_true(isnan(pbi_json_num(&o, "missing", NULL)));
	pbi_json_object_free(&o);

	assert_int_equal(parse("{}", &o, why), 0);
	assert_int_equal(o.n, 0);
	pbi_json_object_free(&o);
}

static void test_wrong_type_flags_bad(void **state)
{
	pbj_object o;
	char why[256];
	int bad = 0;
	(void)state;

	assert_int_equal(parse("{\"a\": \"1\", \"b\": 2}", &o, why), 0);
	assert_true(isnan(pbi_json_num(&o, "a", &bad)));
	assert_int_equal(bad, 1);
	bad = 0;
	assert_null(pbi_json_str(&o, "b", &bad));
	assert_int_equal(bad, 1);
	pbi_json_object_free(&o);
}

static void test_escapes(void **state)
{
	pbj_object o;
	char why[256];
	(void)state;

	assert_int_equal(parse("{\"s\": \"q\\\"b\\\\s\\/n\\nt\\tr\\rb\\bf\\f\","
			       " \"u\": \"\\u00e9\\u20AC\\ud83d\\ude00A\"}",
			       &o, why), 0);
	assert_string_equal(pbi_json_str(&o, "s", NULL),
			    "q\"b\\s/n\nt\tr\rb\bf\f");
	/* é (2 bytes), € (3 bytes), U+1F600 from a surrogate pair. */
	assert_string_equal(pbi_json_str(&o, "u", NULL),
			    "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80" "A");
	pbi_json_object_free(&o);

	/* Escaped key. */
	assert_int_equal(parse("{\"k\\u0065y\": 3}", &o, why), 0);
	assert_true(pbi_json_num(&o, "key", NULL) == 3.0);
	pbi_json_object_free(&o);

	assert_int_equal(parse("{\"s\": \"\\x\"}", &o, why), -1);
	assert_non_null(strstr(why, "bad escape"));
	assert_int_equal(parse("{\"s\": \"\\ud83d\"}", &o, why), -1);
	assert_non_null(strstr(why, "surrogate"));
	assert_int_equal(parse("{\"s\": \"\\u00\"}", &o, why), -1);
	assert_int_equal(parse("{\"s\": \"\\u0000\"}", &o, why), -1);
	assert_int_equal(parse("{\"s\": \"a\tb\"}", &o, why), -1);
	assert_non_null(strstr(why, "control character"));
	assert_int_equal(o.n, 0);
}

static void test_numbers(void **state)
{
	pbj_object o;
	char why[256];
	(void)state;

	assert_int_equal(parse("{\"a\": 1e3, \"b\": -2.5E-2, \"c\": 0.125e+1,"
			       " \"d\": 0, \"e\": -0, \"f\": 77786}", &o, why),
			 0);
	assert_true(pbi_json_num(&o, "a", NULL) == 1000.0);
	assert_true(pbi_json_num(&o, "b", NULL) == -0.025);
	assert_true(pbi_json_num(&o, "c", NULL) == 1.25);
	assert_true(pbi_json_num(&o, "d", NULL) == 0.0);
	assert_true(pbi_json_num(&o, "f", NULL) == 77786.0);
	pbi_json_object_free(&o);

	/* Not JSON, even though strtod would take them. */
	static const char *const bad[] = {
		"{\"a\": +1}", "{\"a\": 01}", "{\"a\": 1.}", "{\"a\": .5}",
		"{\"a\": 1e}", "{\"a\": 0x10}", "{\"a\": NaN}",
		"{\"a\": Infinity}", "{\"a\": -}", "{\"a\": 1e999}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (parse(bad[i], &o, why) != -1)
			fail_msg("accepted %s", bad[i]);
		assert_true(why[0] != '\0');
	}
}

static void test_arrays(void **state)
{
	pbj_object o;
	char why[256];
	const pbj_value *v;
	(void)state;

	assert_int_equal(parse("{\"r\": [0.2, 0.36, 4.88e-1], \"e\": [],"
			       " \"n\": [[1, 2], [3]], \"m\": [1, \"x\"],"
			       " \"o\": {\"a\": [1, {\"b\": null}]},"
			       " \"z\": 5}", &o, why), 0);
	v = pbi_json_get(&o, "r");
	assert_int_equal(v->type, PBJ_ARRAY);
	assert_int_equal(v->n_arr, 3);
	assert_true(v->arr[0] == 0.2 && v->arr[1] == 0.36 &&
		    v->arr[2] == 0.488);
	v = pbi_json_get(&o, "e");
	assert_int_equal(v->type, PBJ_ARRAY);
	assert_int_equal(v->n_arr, 0);
	/* Well-formed values of other shapes are kept as "other", and the
	 * keys after them still read. */
	assert_int_equal(pbi_json_get(&o, "n")->type, PBJ_OTHER);
	assert_int_equal(pbi_json_get(&o, "m")->type, PBJ_OTHER);
	assert_int_equal(pbi_json_get(&o, "o")->type, PBJ_OTHER);
	assert_true(pbi_json_num(&o, "z", NULL) == 5.0);
	pbi_json_object_free(&o);

	assert_int_equal(parse("{\"n\": [[1, 2], [3}", &o, why), -1);
	assert_int_equal(parse("{\"r\": [1, 2,]}", &o, why), -1);
	assert_int_equal(parse("{\"r\": [1 2]}", &o, why), -1);
}

static void test_malformed(void **state)
{
	pbj_object o;
	char why[256];
	char deep[200];
	(void)state;

	static const char *const bad[] = {
		"", "   ", "[1]", "\"s\"", "{", "{\"a\"", "{\"a\":",
		"{\"a\": 1", "{\"a\": 1,}", "{\"a\" 1}", "{a: 1}",
		"{\"a\": 1} x", "{\"a\": 1}{\"b\": 2}", "{\"a\": tru}",
		"{\"a\": nul}", "{\"a\": 1, \"a\": 2}", "{\"a\": \"unterminated",
		"{\"v\": 1, \"id\": \"dense-s1-3f", "garbage",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (parse(bad[i], &o, why) != -1)
			fail_msg("accepted '%s'", bad[i]);
		assert_int_equal(o.n, 0);
		assert_null(o.m);
		assert_true(why[0] != '\0');
	}
	assert_int_equal(parse("{\"a\": 1, \"a\": 2}", &o, why), -1);
	assert_non_null(strstr(why, "duplicate key"));
	assert_int_equal(parse("{\"a\": 1", &o, why), -1);
	assert_non_null(strstr(why, "end of line"));
	assert_int_equal(parse("{\"a\": 1} x", &o, why), -1);
	assert_non_null(strstr(why, "column 10"));

	/* Hostile nesting is refused, not a stack overflow. */
	memset(deep, '[', sizeof deep);
	memcpy(deep, "{\"a\": ", 6);
	deep[sizeof deep - 1] = '\0';
	assert_int_equal(parse(deep, &o, why), -1);
	assert_non_null(strstr(why, "nested too deeply"));

	/* An embedded NUL byte is not JSON. */
	assert_int_equal(pbi_json_parse_object("{\"a\": \"x\0y\"}", 12, &o,
					       why, sizeof why), -1);
}

/* A crash can cut a line anywhere: every proper prefix of a real line is
 * refused cleanly (no crash, no leak, a reason), and so is every line
 * with one byte flipped to a quote, brace or garbage -- or, when that
 * happens to leave valid JSON, it parses. */
static void test_every_prefix_and_mutation(void **state)
{
	static const char line[] =
		"{\"v\":1,\"id\":\"mag-iter-sparsity=0.7-s1-8c1d\","
		"\"kind\":\"prune\",\"rounds\":[0.45,0.7],\"seed\":1,"
		"\"status\":\"ok\",\"error\":null,\"acc_after\":0.9166666667,"
		"\"macs\":42416,\"time_prune_s\":6.028999996e-05,"
		"\"note\":\"a \\\"quoted\\\" \\u00e9\",\"flag\":true}";
	static const char subst[] = "\"{}[],:0e-\\x \x01";
	size_t n = strlen(line);
	pbj_object o;
	char why[256], buf[sizeof line];
	(void)state;

	assert_int_equal(pbi_json_parse_object(line, n, &o, why, sizeof why),
			 0);
	assert_string_equal(pbi_json_str(&o, "note", NULL),
			    "a \"quoted\" \xc3\xa9");
	pbi_json_object_free(&o);
	for (size_t k = 0; k < n; k++) {
		why[0] = '\0';
		if (pbi_json_parse_object(line, k, &o, why, sizeof why) != -1)
			fail_msg("prefix of %zu bytes accepted", k);
		assert_true(why[0] != '\0');
	}
	for (size_t k = 0; k < n; k++)
		for (size_t c = 0; c < sizeof subst - 1; c++) {
			memcpy(buf, line, n + 1);
			buf[k] = subst[c];
			if (pbi_json_parse_object(buf, n, &o, why,
						  sizeof why) == 0)
				pbi_json_object_free(&o);
			else
				assert_int_equal(o.n, 0);
		}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scalars),
		cmocka_unit_test(test_wrong_type_flags_bad),
		cmocka_unit_test(test_escapes),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_arrays),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_every_prefix_and_mutation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
