/* What the benches share: their clock, medians and the calibration of
 * a repeat. Internal (pbi_ prefix). */
#ifndef PB_BENCH_IMPL_H
#define PB_BENCH_IMPL_H

#include "prunebench/error.h"

/* Wall time, or with PB_BENCH_CLOCK=cpu the process's CPU time: on a
 * machine shared with other jobs, one thread's CPU time still measures
 * the work (wall time then measures the neighbours). */
double pbi_bench_now(void);

/* Median of v[0..n) (sorts v); *spread = (max - min) / median. */
double pbi_bench_median(double *v, int n, double *spread);

/* One unit of timed work on ctx; 0 or a negative code. */
typedef int (*pbi_bench_step)(void *ctx, pb_error *err);

/* How many steps make a repeat of about a quarter of a second (at least
 * 3), from how many run in the first 0.05 s. */
int pbi_bench_calibrate(pbi_bench_step step, void *ctx, int *iters,
			pb_error *err);

/* `warmup` untimed steps, then `repeats` runs of `iters` steps (0:
 * calibrated); sec[r] receives run r's seconds per step. */
int pbi_bench_runs(pbi_bench_step step, void *ctx, int warmup, int iters,
		   int repeats, double *sec, pb_error *err);

#endif
