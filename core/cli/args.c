/* Option handling shared by the commands: common defaults, threads,
 * values checked with a usage error that names the option. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
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

int cli_threads(const char *val, int *out)
{
	long v;

	if (cli_int("--threads", val, 1, 1024, &v))
		return -1;
	*out = (int)v;
	return 0;
}

int cli_seed(const char *val, unsigned long *out)
{
	long v;

	if (cli_int("--seed", val, 0, 0x7fffffffL, &v))
		return -1;
	*out = (unsigned long)v;
	return 0;
}

int cli_push(const char *cmd, const char *opt, char **list, int *n,
	     int max, char *val)
{
	if (*n == max)
		return cli_usage_error(cmd, "at most %d %s", max, opt);
	list[(*n)++] = val;
	return 0;
}

int cli_recipe_set_kv(const char *cmd, pb_recipe *r, const char *arg)
{
	pb_error err = { 0 };
	char key[64];
	const char *eq = strchr(arg, '=');

	if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof key)
		return cli_usage_error(cmd, "--set '%s': expected KEY=VALUE",
				       arg);
	memcpy(key, arg, (size_t)(eq - arg));
	key[eq - arg] = '\0';
	if (pb_recipe_set(r, key, eq + 1, &err))
		return cli_usage_error(cmd, "%s", err.msg);
	return 0;
}
