/* Which BLAS we run on, and keeping its threads from fighting ours. */
#ifndef PB_BLAS_H
#define PB_BLAS_H

/* Sets how many threads OpenBLAS may use for calls made outside our own
 * parallel regions (no-op with GSL's CBLAS). */
void pbi_blas_set_threads(int n);

#endif
