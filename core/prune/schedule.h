/* The pruning schedules as a unit of their own: one-shot, iterative and
 * gradual pruning drive two callbacks, "prune this model to this target"
 * and "train", and never reach into training or into a pruner. The cell
 * pipeline (core/experiment/cell_schedule.c) supplies the callbacks.
 * Internal. */
#ifndef PB_PRUNE_SCHEDULE_H
#define PB_PRUNE_SCHEDULE_H

#include "prunebench/error.h"
#include "prunebench/model.h"
#include "prunebench/pruner.h"
#include "prunebench/schedule.h"

/* The reached amount after each round or ramp point, as the record
 * keeps it. */
typedef struct pbi_rounds {
	double *v;
	int n, cap;
} pbi_rounds;

int pbi_rounds_push(pbi_rounds *r, double v);
void pbi_rounds_free(pbi_rounds *r);

typedef struct pbi_schedule_ops {
	void *user;
	/* Prunes *m to target t in place (channel removal may replace *m). */
	int (*prune)(void *user, pb_model **m, const pb_target *t,
		     pb_error *err);
	/* Iterative: the training after round `round` (1-based), before
	 * the next one. */
	int (*train_round)(void *user, pb_model *m, int round, pb_error *err);
	/* Gradual: continues the fine-tune of m until `step` updates have
	 * been made in all (< 0: to its end). */
	int (*train_until)(void *user, pb_model *m, long step, pb_error *err);
	/* Iterative, trunk sharing (NULL: none): before the first round,
	 * with the number of trunk rounds K, may restore rounds 1 ... j of
	 * the trunk into *m and their reached amounts into `rounds`;
	 * returns j in *done (0: nothing restored). After trunk round k and
	 * its training: stores the state. After the last trunk round: done
	 * with the trunk (releases what begin took). */
	int (*trunk_begin)(void *user, pb_model **m, int K, int *done,
			   pbi_rounds *rounds, pb_error *err);
	int (*trunk_save)(void *user, pb_model *m, int k,
			  const pbi_rounds *rounds, pb_error *err);
	void (*trunk_end)(void *user);
} pbi_schedule_ops;

/* Round k (1-based) of `rounds` toward goal: each round removes the
 * same fraction of what is left, ending exactly at the goal (overrides
 * alike). Channel targets are measured on the model a round starts
 * from, so from round 2 on the amount is the increment over `prev`, the
 * fraction already removed. */
void pbi_round_target(const pb_target *goal, int k, int rounds, double prev,
		      pb_target *out);

/* Trunk sharing of an iterative schedule: the method's trunk is the
 * trajectory of `rounds` rounds toward its highest target hi, and a
 * lower target x takes the trunk's rounds that stay below it, then one
 * round that lands on x exactly. Returns K, the trunk rounds x takes
 * (0 ... rounds - 1; rounds - 1 for x = hi): x prunes in K + 1 rounds.
 * A trunk round within 1e-9 of x counts as landing on it: that round is
 * x's own last round. */
int pbi_trunk_rounds(const pb_target *hi, double x, int rounds);

/* Round k (1-based) of a target x whose first K rounds are the trunk's
 * (pbi_trunk_rounds): rounds k <= K as pbi_round_target of hi over
 * `rounds` rounds; round K + 1 goes to x itself (for channel targets
 * the increment over `prev`, as pbi_round_target measures it). */
void pbi_trunk_round_target(const pb_target *hi, const pb_target *x, int K,
			    int k, int rounds, double prev, pb_target *out);

/* The gradual ramp's n + 1 = plan->gradual_steps + 1 points: the update
 * step[k] after which the model is pruned to amount[k], for a training
 * of `per_epoch` updates per epoch. */
void pbi_gradual_points(const pb_prune_plan *plan, double goal, long per_epoch,
			long *step, double *amount);

/* goal with its amount set to `amount` and every override scaled by
 * amount / goal->amount (the ramp moves all layers together). */
void pbi_scaled_target(const pb_target *goal, double amount, pb_target *out);

/* One-shot (plan NULL or schedule ONESHOT) or iterative pruning of *m
 * toward goal. After each round of an iterative plan the amount
 * reached relative to `ref` (the dense model) goes to rounds. An
 * iterative plan follows the trunk of `hi` (the method's highest target;
 * NULL: goal itself): K = pbi_trunk_rounds(hi, goal) trunk rounds,
 * each followed by ops->train_round, then goal's own last round. With
 * ops->trunk_begin set, the first rounds may come from a cache (see
 * pbi_schedule_ops). */
int pbi_schedule_rounds(const pb_prune_plan *plan, const pb_target *goal,
			const pb_target *hi, pb_model *ref, pb_model **m,
			const pbi_schedule_ops *ops, pbi_rounds *rounds,
			pb_error *err);

/* Gradual pruning of *m during its fine-tune: trains to each ramp point,
 * prunes to its amount (points of amount 0 are skipped), then trains to
 * the end. The pruner must keep the model's shapes (weight pruning). */
int pbi_schedule_gradual(const pb_prune_plan *plan, const pb_target *goal,
			 long per_epoch, pb_model *ref, pb_model **m,
			 const pbi_schedule_ops *ops, pbi_rounds *rounds,
			 pb_error *err);

#endif
