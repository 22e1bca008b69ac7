/* Drawing a PNG with gnuplot: the commands that plot write a script next
 * to their data and run it, so the picture can be redrawn (or restyled)
 * by hand with `gnuplot FILE.gp`. */
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "base/file.h"
#include "cli/cli.h"

extern char **environ;

int cli_gnuplot(const char *cmd, const char *script)
{
	char *argv[] = { "gnuplot", (char *)script, NULL };
	pid_t pid;
	int st, rc = posix_spawnp(&pid, "gnuplot", NULL, NULL, argv, environ);

	if (rc) {
		fprintf(stderr, "prunebench %s: cannot run gnuplot (%s); the "
			"data and %s are written: install gnuplot-nox and run "
			"'gnuplot %s'\n", cmd, strerror(rc), script, script);
		return -1;
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "prunebench %s: gnuplot %s failed\n", cmd,
			script);
		return -1;
	}
	return 0;
}

void cli_gp_quote(FILE *f, const char *s)
{
	fputc('\'', f);
	for (; *s; s++) {
		if (*s == '\'')
			fputc('\'', f);
		fputc(*s, f);
	}
	fputc('\'', f);
}

int cli_gp_begin(pbi_atomic *a, const char *gp, const char *png, int w,
		 int h, pb_error *err)
{
	int rc = pbi_atomic_begin(a, gp, "gnuplot script", err);

	if (rc)
		return rc;
	/* pngcairo draws smooth lines and UTF-8; plain png everywhere. */
	fprintf(a->f, "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) "
		"set terminal pngcairo size %d,%d font ',10'; "
		"else set terminal png size %d,%d\n", w, h, w, h);
	fputs("set output ", a->f);
	cli_gp_quote(a->f, png);
	fputc('\n', a->f);
	return 0;
}
