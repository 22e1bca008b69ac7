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
extern int openblas_get_parallel(void);
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
	/* OpenBLAS's pthread build (openblas_get_parallel() == 1, where the
	 * OpenMP build says 2) keeps a thread pool of its own: it would
	 * thread the GEMMs our kernels call inside our parallel regions,
	 * oversubscribing the cores and summing in an order that depends on
	 * its thread count. One thread there keeps every result the
	 * one-thread bits, as the OpenMP build gives (docs/experiments.md,
	 * Reproducibility). */
	if (openblas_get_parallel() == 1)
		n = 1;
	openblas_set_num_threads(n);
#else
	(void)n;
#endif
}
