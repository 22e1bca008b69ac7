#include <stdio.h>

#include "config.h"
#include "base/blas.h"
#include "prunebench/version.h"

#ifdef HAVE_OPENBLAS
/* Declared here rather than by including OpenBLAS's cblas.h, which would
 * clash with GSL's CBLAS declarations that the kernels use. */
extern char *openblas_get_corename(void);
extern char *openblas_get_config(void);
extern void openblas_set_num_threads(int);
#endif

const char *pb_version(void)
{
	return PACKAGE_VERSION;
}

const char *pb_blas_name(void)
{
#ifdef HAVE_OPENBLAS
	/* A static buffer is fine: the text is the same on every call. */
	static _Thread_local char buf[128];
	snprintf(buf, sizeof buf, "OpenBLAS (core %s)", openblas_get_corename());
	return buf;
#else
	return "GSL reference CBLAS";
#endif
}

void pbi_blas_set_threads(int n)
{
#ifdef HAVE_OPENBLAS
	openblas_set_num_threads(n);
#else
	(void)n;
#endif
}
