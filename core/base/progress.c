#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "base/util.h"

void pbi_progress_init(pbi_progress *p, FILE *out)
{
	p->out = out;
	p->tty = out && isatty(fileno(out));
	p->last = 0.0;
	p->dirty = 0;
}

void pbi_progress_update(pbi_progress *p, const char *fmt, ...)
{
	va_list ap;
	double now;

	if (!p->out || !p->tty)
		return;
	now = pbi_now();
	if (now - p->last < 0.1)
		return;
	p->last = now;
	fputs("\r", p->out);
	va_start(ap, fmt);
	vfprintf(p->out, fmt, ap);
	va_end(ap);
	fputs("\033[K", p->out);
	fflush(p->out);
	p->dirty = 1;
}

void pbi_progress_line(pbi_progress *p, const char *fmt, ...)
{
	va_list ap;

	if (!p->out)
		return;
	if (p->tty && p->dirty)
		fputs("\r\033[K", p->out);
	p->dirty = 0;
	va_start(ap, fmt);
	vfprintf(p->out, fmt, ap);
	va_end(ap);
	fputc('\n', p->out);
	fflush(p->out);
}
