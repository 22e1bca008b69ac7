/* The OpenMP thread count a parallel region will run with, and this
 * thread's number in it, also when built without OpenMP (one thread).
 * The conv kernels size their per-thread workspace slices with the first
 * and pick their slice with the second. */
#ifndef PB_LAYERS_THREADS_H
#define PB_LAYERS_THREADS_H

#ifdef _OPENMP
#include <omp.h>
#endif

static inline int pbi_max_threads(void)
{
#ifdef _OPENMP
	return omp_get_max_threads();
#else
	return 1;
#endif
}

static inline int pbi_thread_num(void)
{
#ifdef _OPENMP
	return omp_get_thread_num();
#else
	return 0;
#endif
}

#endif
