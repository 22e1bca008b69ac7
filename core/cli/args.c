#include <stdarg.h>
#include <stdlib.h>
#include <omp.h>

#include "cli/cli.h"
#include "base/blas.h"
#include "base/util.h"

void cli_common_init(cli_common *c)
{
	c->data = "fashion-mnist";
	c->threads = 0;
	c->seed = 1;
	c->split_seed = 42;
}

int cli_apply_threads(int threads)
{
	if (threads <= 0)
		threads = omp_get_num_procs();
	omp_set_num_threads(threads);
	pbi_blas_set_threads(threads);
	return threads;
}

int cli_int(const char *opt, const char *val, long lo, long hi, long *out)
{
	if (pbi_parse_long(val, out) || *out < lo || *out > hi) {
		fprintf(stderr, "prunebench: %s '%s': expected an integer in "
			"[%ld, %ld]\n", opt, val, lo, hi);
		return -1;
	}
	return 0;
}

int cli_double(const char *opt, const char *val, double *out)
{
	if (pbi_parse_double(val, out)) {
		fprintf(stderr, "prunebench: %s '%s': expected a number\n", opt,
			val);
		return -1;
	}
	return 0;
}

int cli_fail(const char *cmd, const pb_error *err)
{
	fprintf(stderr, "prunebench %s: %s\n", cmd, err->msg);
	return 1;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "prunebench %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'prunebench %s --help'.\n", cmd);
	return 2;
}
