/* Which library is linked, and on which BLAS it runs. */
#ifndef PRUNEBENCH_VERSION_H
#define PRUNEBENCH_VERSION_H

#define PB_VERSION_STRING "0.1.0"

#ifdef __cplusplus
extern "C" {
#endif

/* Version of the library actually linked. */
const char *pb_version(void);

/* The BLAS in use ("OpenBLAS (Haswell core)", "GSL reference CBLAS"). */
const char *pb_blas_name(void);

#ifdef __cplusplus
}
#endif
#endif
