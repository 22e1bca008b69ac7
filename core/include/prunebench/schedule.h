/* How a cell reaches its target over time: all at once, in rounds with
 * training between them, or along the gradual ramp while the model
 * trains (Zhu & Gupta, 2017). */
#ifndef PRUNEBENCH_SCHEDULE_H
#define PRUNEBENCH_SCHEDULE_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum pb_prune_schedule {
	PB_PRUNE_ONESHOT,
	PB_PRUNE_ITERATIVE,
	PB_PRUNE_GRADUAL
} pb_prune_schedule;

typedef struct pb_prune_plan {
	pb_prune_schedule schedule;
	int rounds;              /* iterative: N rounds */
	double round_epochs;     /* iterative: training between rounds; < 0:
				    the fine-tune's epochs */
	/* gradual (weight pruners): the ramp s_t = s_f + (s_i - s_f) *
	 * (1 - (t - t0) / (n dt))^3 over the fine-tune, pruning at n + 1
	 * points from epoch t0 = gradual_begin for gradual_epochs. */
	double gradual_begin, gradual_epochs, gradual_initial;
	int gradual_steps;
} pb_prune_plan;

#ifdef __cplusplus
}
#endif
#endif
