#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/util.h"

double pbi_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *skip_blank(const char *s)
{
	while (*s && isspace((unsigned char)*s))
		s++;
	return s;
}

/* The number's text in s after leading blanks, or NULL if there is none.
 * Clears errno for the strto* call that follows. */
static const char *number_start(const char *s)
{
	if (!s)
		return NULL;
	s = skip_blank(s);
	if (!*s)
		return NULL;
	errno = 0;
	return s;
}

/* Whether strto* read all of s but trailing blanks, without overflow. */
static int number_whole(const char *s, const char *end)
{
	return !errno && end != s && !*skip_blank(end);
}

int pbi_parse_long(const char *s, long *out)
{
	char *end;
	long v;

	if (!(s = number_start(s)))
		return -1;
	v = strtol(s, &end, 10);
	if (!number_whole(s, end))
		return -1;
	*out = v;
	return 0;
}

int pbi_parse_double(const char *s, double *out)
{
	char *end;
	double v;

	if (!(s = number_start(s)))
		return -1;
	v = strtod(s, &end);
	if (!number_whole(s, end) || !isfinite(v))
		return -1;
	*out = v;
	return 0;
}

int pbi_parse_bool(const char *s, int *out)
{
	static const char *yes[] = { "yes", "true", "1", "on" };
	static const char *no[] = { "no", "false", "0", "off" };
	char buf[16];
	size_t n;

	if (!s)
		return -1;
	s = skip_blank(s);
	n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	if (n == 0 || n >= sizeof buf)
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	for (size_t i = 0; i < 4; i++) {
		if (!strcasecmp(buf, yes[i])) {
			*out = 1;
			return 0;
		}
		if (!strcasecmp(buf, no[i])) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}
