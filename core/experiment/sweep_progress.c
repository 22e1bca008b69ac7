/* The sweep's progress: a line per finished cell, and on a terminal one
 * updating line with the count, the time left and what each outer thread
 * is doing. Callers hold the pb_sweep_progress critical section. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#include "experiment/sweep.h"

void pbi_fmt_duration(char *buf, size_t n, double s)
{
	if (s < 0 || !isfinite(s))
		snprintf(buf, n, "?");
	else if (s < 90)
		snprintf(buf, n, "%.0fs", s);
	else if (s < 5400)
		snprintf(buf, n, "%.0fm%02.0fs", floor(s / 60),
			 fmod(s, 60.0));
	else
		snprintf(buf, n, "%.0fh%02.0fm", floor(s / 3600),
			 fmod(s / 60, 60.0));
}

void pbi_sweep_eta(const pbi_sweep *S, char *buf, size_t n)
{
	double el = pbi_now() - S->t0;

	if (!S->done) {
		snprintf(buf, n, "?");
		return;
	}
	pbi_fmt_duration(buf, n, el / S->done * (S->total - S->done));
}

static void redraw(pbi_sweep *S)
{
	char line[1024], e[32];
	size_t k;

	pbi_sweep_eta(S, e, sizeof e);
	k = (size_t)snprintf(line, sizeof line, "%d/%d done, ETA %s", S->done,
			     S->total, e);
	for (int t = 0; t < S->outer && k < sizeof line; t++)
		if (S->status[t][0])
			k += (size_t)snprintf(line + k, sizeof line - k,
					      " | %s", S->status[t]);
	pbi_progress_update(&S->prog, "%s", line);
}

void pbi_sweep_status(pbi_sweep *S, int slot, const char *fmt, ...)
{
	va_list ap;

	if (!S->prog.tty || !S->status || slot < 0 || slot >= S->outer)
		return;
#pragma omp critical(pb_sweep_progress)
	{
		va_start(ap, fmt);
		vsnprintf(S->status[slot], sizeof S->status[0], fmt, ap);
		va_end(ap);
		redraw(S);
	}
}
