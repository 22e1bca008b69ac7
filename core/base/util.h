/* Small internal helpers: clocks, strict number parsing, progress output.
 * Not part of the public API (pbi_ prefix, not exported). */
#ifndef PB_UTIL_H
#define PB_UTIL_H

#include <stdio.h>

/* Seconds from a monotonic clock. */
double pbi_now(void);

/* Strict parsers: the whole string (after trimming blanks) must be the
 * number. Return 0 or -1. */
int pbi_parse_long(const char *s, long *out);
int pbi_parse_double(const char *s, double *out);
/* yes/no/true/false/1/0/on/off. */
int pbi_parse_bool(const char *s, int *out);

/* A progress reporter: on a terminal, one line rewritten in place (at most
 * ten times a second); otherwise only the lines passed to
 * pbi_progress_line, so logs stay readable. */
typedef struct pbi_progress {
	FILE *out;
	int tty;
	double last;
	int dirty;
} pbi_progress;

void pbi_progress_init(pbi_progress *p, FILE *out);
void pbi_progress_update(pbi_progress *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void pbi_progress_line(pbi_progress *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
