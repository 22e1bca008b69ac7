/* The OpenMP thread count a parallel region will run with, and this
 * thread's number in it, also when built without OpenMP (one thread).
 * The conv kernels size their per-thread workspace slices with the first
 * and pick their slice with the second; and how the kernels cut work
 * into near-equal blocks. */
#ifndef PB_LAYERS_THREADS_H
#define PB_LAYERS_THREADS_H

#include <stddef.h>

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

/* Sets the thread count of the calling task's next regions (and of
 * what OpenBLAS's OpenMP build runs for it). */
static inline void pbi_set_max_threads(int n)
{
#ifdef _OPENMP
	omp_set_num_threads(n);
#else
	(void)n;
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

/* Below this many MACs a dense conv kernel runs on one thread: a
 * fork/join costs more than it saves (batch-1 inference). */
#define PBI_PAR_MIN_MACS 150000.0

/* Floats rounded up to a multiple of 16: every workspace slice then
 * starts on a 64-byte boundary, so an aligned workspace gives aligned
 * slices (OpenBLAS's column buffers, the AVX-512 kernels' blocks). */
static inline size_t pbi_round16(size_t n)
{
	return (n + 15) & ~(size_t)15;
}

/* Start of block i when n items are cut into k blocks whose sizes differ
 * by at most one (n = 11 in 2 blocks: 6 + 5, not 8 + 3). The kernels cut
 * channels, chunks and samples this way: a small last block would run
 * with too few accumulators to hide an FMA's latency. */
static inline int pbi_block_start(int i, int n, int k)
{
	return i * (n / k) + (i < n % k ? i : n % k);
}

#endif
