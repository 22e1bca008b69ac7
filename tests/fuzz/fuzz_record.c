/* Fuzzing the runs.jsonl reader (pb_record_parse): one line, without its
 * newline, in a buffer of exactly its length (the reader is given a
 * length and must not look past it).
 *
 * A refused line must say why. An accepted one must format
 * (pb_record_format) into a line that parses back to the same record:
 * the sweep rewrites what it read when it retries a cell, and the table
 * reads what the sweep wrote. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "prunebench/record.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_setup();
	return 0;
}

static int same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

/* Equal numbers; or, when loose, equal to the digits a line keeps
 * (numbers are written with 10 significant digits, rounds with 6). */
static int same_num(double a, double b, int loose)
{
	double scale = fabs(a) > fabs(b) ? fabs(a) : fabs(b);

	if ((isnan(a) && isnan(b)) || a == b)
		return 1;
	return loose && fabs(a - b) <= 1e-5 * scale;
}

static int has_high_byte(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

/* Equal strings; or, when loose, a string with non-ASCII bytes that
 * changed: bytes that were not valid UTF-8 are written as U+FFFD. */
static int str_ok(const char *a, const char *b, int loose)
{
	return same_str(a, b) || (loose && a && b && has_high_byte(a));
}

/* The fields a written line carries back. The first round trip may
 * repair invalid UTF-8 and round numbers (loose); the second must change
 * nothing. The error is written only for cells that did not succeed. */
static void same_record(const pb_record *a, const pb_record *b, int loose)
{
	if (!str_ok(a->id, b->id, loose) ||
	    !str_ok(a->method, b->method, loose) ||
	    !str_ok(a->target, b->target, loose) ||
	    (a->status != PB_CELL_OK &&
	     !str_ok(a->error, b->error, loose)) ||
	    !str_ok(a->curve, b->curve, loose) ||
	    a->kind != b->kind || a->status != b->status ||
	    a->seed != b->seed || a->n_rounds != b->n_rounds ||
	    !same_num(a->acc_after, b->acc_after, loose) ||
	    !same_num(a->reached, b->reached, loose) ||
	    !same_num(a->time_total_s, b->time_total_s, loose) ||
	    a->has_matched != b->has_matched)
		fuzz_fail("a record formatted and parsed again differs "
			  "(id '%s')", a->id ? a->id : "(null)");
	for (int i = 0; i < a->n_rounds; i++)
		if (!same_num(a->rounds[i], b->rounds[i], loose))
			fuzz_fail("round %d differs after a round trip", i);
}

/* Formats r and parses the line back into *back. */
static void reformat(const pb_record *r, pb_record *back)
{
	char why[256];
	pb_error err = { 0 };
	char *line;
	size_t len;

	if (pb_record_format(r, &line, &len, &err))
		fuzz_fail("a parsed record does not format: %s", err.msg);
	if (!len || line[len - 1] != '\n')
		fuzz_fail("a formatted record does not end with a newline");
	if (pb_record_parse(line, len - 1, back, why, sizeof why))
		fuzz_fail("a formatted record does not parse back: %s (%.*s)",
			  why, (int)len - 1, line);
	free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = malloc(size ? size : 1), why[256];
	pb_record r, once, twice;

	if (!line)
		return 0;
	memcpy(line, data, size);
	if (pb_record_parse(line, size, &r, why, sizeof why)) {
		if (!memchr(why, '\0', sizeof why) || !why[0])
			fuzz_fail("pb_record_parse refused a line without "
				  "saying why");
	} else {
		reformat(&r, &once);
		reformat(&once, &twice);
		same_record(&r, &once, 1);
		same_record(&once, &twice, 0);
		pb_record_clear(&once);
		pb_record_clear(&twice);
	}
	pb_record_clear(&r);
	free(line);
	return 0;
}
