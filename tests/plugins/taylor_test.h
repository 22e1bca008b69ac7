/* What the taylor plugin logs with log_scores = yes, parsed: shared by
 * its two test programs (test_taylor.c, test_taylor_phase.c). */
#ifndef PB_TEST_TAYLOR_TEST_H
#define PB_TEST_TAYLOR_TEST_H

#include "pruner_test.h"

/* The n importances logged for group g at event `event`. */
static inline void logged_importance(const char *log, int event, int g,
				     double *v, int n)
{
	char key[64];
	const char *p;
	int off;

	snprintf(key, sizeof key, "event %d group %d importance:", event, g);
	if (!(p = strstr(log, key)))
		fail_msg("no '%s' in the log:\n%s", key, log);
	p += strlen(key);
	for (int i = 0; i < n; i++) {
		if (sscanf(p, " %lf%n", &v[i], &off) != 1)
			fail_msg("'%s': %d values expected", key, n);
		p += off;
	}
}

#endif
