/* runs.jsonl records (core/experiment/record.c): a record written and read
 * back is the same record; schema-1 lines are read, newer and foreign
 * lines refused with the reason; a line that does not validate is not a
 * record; appending after a cut line keeps both lines apart. */
#include "testutil.h"

#include "prunebench/record.h"

static void fill(pb_record *r)
{
	static const double rounds[] = { 0.2, 0.36, 0.488 };

	pb_record_init(r);
	assert_int_equal(pb_record_set(&r->id, "l1-macs=0.5-s2-0a1b2c3d"), 0);
	pb_record_set(&r->experiment, "exp \"quoted\"\nline");
	pb_record_set(&r->method, "l1");
	pb_record_set(&r->plugin, "l1");
	pb_record_set(&r->granularity, "channel");
	pb_record_set(&r->target, "macs=0.5");
	pb_record_set(&r->target_kind, "macs");
	pb_record_set(&r->scope, "layer");
	pb_record_set(&r->schedule, "iterative:3");
	pb_record_set(&r->blas, "OpenBLAS (core Haswell)");
	pb_record_set(&r->dense_fingerprint, "deadbeef");
	pb_record_set(&r->curve, "cells/l1.csv");
	pb_record_set(&r->finished, "2026-12-02T10:00:00Z");
	r->kind = PB_CELL_PRUNE;
	r->status = PB_CELL_OK;
	r->seed = 2;
	r->threads = 1;
	r->numerics = 3;
	r->target_amount = 0.5;
	r->reached = 0.4987654321;
	r->rounds = malloc(sizeof rounds);
	memcpy(r->rounds, rounds, sizeof rounds);
	r->n_rounds = 3;
	r->acc_before = 0.6662;
	r->acc_after = 0.9173;
	r->val_after = 0.92;
	r->params = 40000;
	r->params_dense = 77786;
	r->macs = 3672000;
	r->macs_dense = 7344000;
	r->prune_epochs = 2.5;
	r->has_matched = 1;
	r->matched_top1 = 0.9265;
	r->matched_val = 0.93;
	r->matched_epochs = 7.5;
	r->matched_time_s = 12.25;
}

static char *format(const pb_record *r)
{
	pb_error err = { 0 };
	size_t len;
	char *line;

	if (pb_record_format(r, &line, &len, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(strlen(line), len);
	assert_true(len > 2 && line[len - 1] == '\n');
	return line;
}

static int parse(const char *line, pb_record *r, char *why)
{
	size_t len = strlen(line);

	while (len && line[len - 1] == '\n')
		len--;
	return pb_record_parse(line, len, r, why, 256);
}

static void test_round_trip(void **state)
{
	pb_record a, b;
	char why[256], *line;

	(void)state;
	fill(&a);
	line = format(&a);
	assert_true(!strncmp(line, "{\"schema\":2,", 12));
	if (parse(line, &b, why))
		fail_msg("%s", why);
	assert_int_equal(b.schema, PB_RECORD_SCHEMA);
	assert_string_equal(b.id, a.id);
	assert_string_equal(b.experiment, a.experiment);
	assert_string_equal(b.schedule, "iterative:3");
	assert_string_equal(b.dense_fingerprint, "deadbeef");
	assert_int_equal(b.kind, PB_CELL_PRUNE);
	assert_int_equal(b.status, PB_CELL_OK);
	assert_int_equal(b.seed, 2);
	assert_int_equal(b.threads, 1);
	assert_int_equal(b.numerics, 3);
	assert_null(b.error);
	/* %.10g keeps ten significant digits. */
	assert_true(fabs(b.reached - a.reached) < 1e-10);
	assert_true(b.acc_after == 0.9173);
	assert_true(isnan(b.latency_b1_ms));
	assert_int_equal(b.n_rounds, 3);
	assert_true(b.rounds[2] == 0.488);
	assert_true(b.prune_epochs == 2.5);
	assert_true(b.has_matched);
	assert_true(b.matched_top1 == 0.9265);
	assert_null(b.matched_error);
	free(line);
	pb_record_clear(&b);

	/* A dense cell: no prune_epochs, no matched keys written. */
	a.kind = PB_CELL_DENSE;
	a.has_matched = 0;
	line = format(&a);
	assert_null(strstr(line, "prune_epochs"));
	assert_null(strstr(line, "matched_top1"));
	if (parse(line, &b, why))
		fail_msg("%s", why);
	assert_false(b.has_matched);
	assert_true(isnan(b.prune_epochs));
	free(line);
	pb_record_clear(&b);
	pb_record_clear(&a);
}

/* A cell pruned at initialisation says so, with the epochs it trained
 * from there; other lines carry neither key and read as not at init. */
static void test_at_init_key(void **state)
{
	pb_record a, b;
	char why[256], *line, *at;

	(void)state;
	fill(&a);
	line = format(&a);
	assert_null(strstr(line, "at_init"));
	assert_null(strstr(line, "scratch_epochs"));
	if (parse(line, &b, why))
		fail_msg("%s", why);
	assert_int_equal(b.at_init, 0);
	free(line);
	pb_record_clear(&b);

	a.at_init = 1;
	a.scratch_epochs = 15;
	line = format(&a);
	assert_non_null(strstr(line, "\"at_init\":true"));
	if (parse(line, &b, why))
		fail_msg("%s", why);
	assert_int_equal(b.at_init, 1);
	assert_true(b.scratch_epochs == 15);
	pb_record_clear(&b);
	/* Of the wrong type, the line is not a record. */
	at = strstr(line, "true");
	memcpy(at, "\"t\" ", 4);
	assert_int_equal(parse(line, &b, why), -1);
	assert_non_null(strstr(why, "wrong type"));
	free(line);
	pb_record_clear(&a);
}

static void test_failed_cell_keeps_its_error(void **state)
{
	pb_record a, b;
	char why[256], *line;

	(void)state;
	fill(&a);
	a.status = PB_CELL_FAILED;
	pb_record_set(&a.error, "plugin 'x': target 0.9 cannot be reached");
	line = format(&a);
	assert_int_equal(parse(line, &b, why), 0);
	assert_int_equal(b.status, PB_CELL_FAILED);
	assert_string_equal(b.error, a.error);
	free(line);
	pb_record_clear(&a);
	pb_record_clear(&b);
}

/* 1 when s is well-formed UTF-8 (what a strict JSON reader demands). */
static int valid_utf8(const unsigned char *s)
{
	while (*s) {
		int n = *s < 0x80 ? 1 : (*s & 0xe0) == 0xc0 && *s >= 0xc2 ? 2 :
			(*s & 0xf0) == 0xe0 ? 3 : (*s & 0xf8) == 0xf0 &&
			*s <= 0xf4 ? 4 : 0;

		if (!n)
			return 0;
		for (int i = 1; i < n; i++)
			if ((s[i] & 0xc0) != 0x80)
				return 0;
		s += n;
	}
	return 1;
}

/* A plugin's message may hold any bytes: the line stays UTF-8, the bad
 * bytes become U+FFFD, the good ones survive. */
static void test_invalid_utf8_replaced(void **state)
{
	pb_record a, b;
	char why[256], *line;

	(void)state;
	fill(&a);
	a.status = PB_CELL_FAILED;
	pb_record_set(&a.error, "bad \xff\xfe bytes, \xc3\xa9 kept, "
		      "\xe2\x82 cut, \xed\xa0\x80 surrogate, \xc0\xaf "
		      "overlong");
	line = format(&a);
	assert_true(valid_utf8((const unsigned char *)line));
	assert_int_equal(parse(line, &b, why), 0);
	assert_string_equal(b.error, "bad \xef\xbf\xbd\xef\xbf\xbd bytes, "
			    "\xc3\xa9 kept, \xef\xbf\xbd\xef\xbf\xbd cut, "
			    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd surrogate, "
			    "\xef\xbf\xbd\xef\xbf\xbd overlong");
	free(line);
	pb_record_clear(&a);
	pb_record_clear(&b);
}

static void expect_refused(const char *line, const char *reason)
{
	pb_record r;
	char why[256] = "";

	if (!parse(line, &r, why))
		fail_msg("accepted: %s", line);
	if (!strstr(why, reason))
		fail_msg("'%s': reason '%s', expected '%s'", line, why, reason);
}

#define TAIL "\"kind\":\"prune\",\"method\":\"l1\",\"target\":\"macs=0.5\"," \
	"\"seed\":1,\"status\":\"ok\"}"

static void test_schemas(void **state)
{
	pb_record r;
	char why[256];

	(void)state;
	/* Lines of schema 1 said "v": 1. */
	if (parse("{\"v\":1,\"id\":\"a\"," TAIL, &r, why))
		fail_msg("%s", why);
	assert_int_equal(r.schema, 1);
	pb_record_clear(&r);
	expect_refused("{\"schema\":3,\"id\":\"a\"," TAIL, "newer prunebench");
	expect_refused("{\"v\":2,\"id\":\"a\"," TAIL, "not a runs.jsonl line");
	expect_refused("{\"id\":\"a\"," TAIL, "not a runs.jsonl line");
	expect_refused("{\"schema\":1.5,\"id\":\"a\"," TAIL, "not a version");
}

static void test_invalid_lines(void **state)
{
	(void)state;
	expect_refused("{\"schema\":2," TAIL, "\"id\" missing");
	expect_refused("{\"schema\":2,\"id\":\"\"," TAIL, "\"id\" missing");
	expect_refused("{\"schema\":2,\"id\":\"a\",\"kind\":\"prune\","
		       "\"target\":\"macs=0.5\",\"seed\":1,\"status\":\"ok\"}",
		       "\"method\" missing");
	expect_refused("{\"schema\":2,\"id\":\"a\",\"kind\":\"prune\","
		       "\"method\":\"l1\",\"seed\":1,\"status\":\"ok\"}",
		       "\"target\" missing");
	expect_refused("{\"schema\":2,\"id\":\"a\",\"kind\":\"matched\","
		       "\"method\":\"l1\",\"seed\":1,\"status\":\"ok\"}",
		       "\"kind\"");
	expect_refused("{\"schema\":2,\"id\":\"a\",\"kind\":\"prune\","
		       "\"method\":\"l1\",\"target\":\"macs=0.5\",\"seed\":1,"
		       "\"status\":\"done\"}", "\"status\"");
	expect_refused("{\"schema\":2,\"id\":\"a\",\"kind\":\"prune\","
		       "\"method\":\"l1\",\"target\":\"macs=0.5\",\"seed\":-1,"
		       "\"status\":\"ok\"}", "\"seed\"");
	/* A known key of the wrong type: the cell is not recorded. */
	expect_refused("{\"schema\":2,\"id\":\"a\",\"acc_after\":\"high\","
		       TAIL, "wrong type");
	expect_refused("{\"schema\":2,\"id\":7," TAIL, "wrong type");
	expect_refused("{\"schema\":2,\"id\":\"a\",\"rounds\":\"x\"," TAIL,
		       "wrong type");
	expect_refused("{\"schema\":2,\"id\":\"a\",\"numerics\":\"3\"," TAIL,
		       "wrong type");
	expect_refused("not json", "");
}

/* "numerics" that is no version (not a whole number from 1) reads as
 * not known, as a line written before the key. */
static void test_numerics_not_a_version(void **state)
{
	static const char *const bad[] = { "0", "-2", "2.5", "1e9", "null" };
	pb_record r;
	char line[256], why[256];

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		snprintf(line, sizeof line,
			 "{\"schema\":2,\"id\":\"a\",\"numerics\":%s," TAIL,
			 bad[i]);
		if (parse(line, &r, why))
			fail_msg("%s: %s", bad[i], why);
		assert_int_equal(r.numerics, 0);
		pb_record_clear(&r);
	}
	if (parse("{\"schema\":2,\"id\":\"a\",\"numerics\":3," TAIL, &r, why))
		fail_msg("%s", why);
	assert_int_equal(r.numerics, 3);
	pb_record_clear(&r);
}

static void test_format_refuses(void **state)
{
	pb_record r;
	pb_error err = { 0 };
	size_t len;
	char *line = NULL;

	(void)state;
	fill(&r);
	free(r.id);
	r.id = NULL;
	assert_int_equal(pb_record_format(&r, &line, &len, &err), PB_EINVAL);
	assert_null(line);
	assert_non_null(strstr(err.msg, "no id"));
	pb_record_set(&r.id, "x");
	free(r.target);
	r.target = NULL;
	assert_int_equal(pb_record_format(&r, &line, &len, &err), PB_EINVAL);
	assert_non_null(strstr(err.msg, "method and target"));
	pb_record_clear(&r);
}

static void test_read_and_append(void **state)
{
	char *dir = tu_temp_dir(), path[600], *wbuf = NULL;
	size_t wlen = 0;
	pb_record r, *recs;
	pb_error err = { 0 };
	int n, bad;
	FILE *w;

	(void)state;
	snprintf(path, sizeof path, "%s/runs.jsonl", dir);
	/* A missing file is no records when that is allowed. */
	assert_int_equal(pb_records_read(path, 1, &recs, &n, &bad, NULL, &err),
			 0);
	assert_int_equal(n, 0);
	assert_int_equal(pb_records_read(path, 0, &recs, &n, &bad, NULL, &err),
			 PB_EIO);
	tu_write_text(dir, "runs.jsonl",
		      "{\"v\":1,\"id\":\"a\"," TAIL "\n"
		      "garbage\n"
		      "\n"
		      "{\"schema\":2,\"id\":\"b\",\"kin");
	fill(&r);
	pb_record_set(&r.id, "c");
	/* The cut line gets a newline first, so "c" stays whole. */
	assert_int_equal(pb_record_append(path, &r, &err), 0);
	pb_record_clear(&r);
	w = open_memstream(&wbuf, &wlen);
	assert_int_equal(pb_records_read(path, 0, &recs, &n, &bad, w, &err),
			 0);
	fclose(w);
	assert_int_equal(n, 2);
	assert_int_equal(bad, 2);
	assert_string_equal(recs[0].id, "a");
	assert_int_equal(recs[0].line, 1);
	assert_string_equal(recs[1].id, "c");
	assert_int_equal(recs[1].line, 5);
	assert_non_null(strstr(wbuf, "runs.jsonl:2: warning: line skipped"));
	assert_non_null(strstr(wbuf, "runs.jsonl:4: warning: line skipped"));
	pb_records_free(recs, n);
	free(wbuf);

	/* A last line without its newline did not finish. */
	tu_write_text(dir, "runs.jsonl", "{\"schema\":2,\"id\":\"a\"," TAIL);
	assert_int_equal(pb_records_read(path, 0, &recs, &n, &bad, NULL, &err),
			 0);
	assert_int_equal(n, 0);
	assert_int_equal(bad, 1);
	pb_records_free(recs, n);
	tu_rm_tree(dir);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(pb_cell_kind_name(PB_CELL_DENSE_FT), "dense_ft");
	assert_string_equal(pb_cell_kind_name(PB_CELL_MATCHED), "matched");
	assert_string_equal(pb_cell_kind_name((pb_cell_kind)42), "?");
	assert_string_equal(pb_cell_status_name(PB_CELL_DIVERGED), "diverged");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_at_init_key),
		cmocka_unit_test(test_failed_cell_keeps_its_error),
		cmocka_unit_test(test_invalid_utf8_replaced),
		cmocka_unit_test(test_schemas),
		cmocka_unit_test(test_invalid_lines),
		cmocka_unit_test(test_numerics_not_a_version),
		cmocka_unit_test(test_format_refuses),
		cmocka_unit_test(test_read_and_append),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
