/* The pruning schedules (core/prune/schedule.c) driven through stand-in
 * callbacks on a tiny model: the per-round targets and the gradual ramp
 * against values worked out by hand, the order of prune and train calls,
 * the rounds recorded, and the refusal of a shape change while a
 * gradual schedule trains. */
#include "testutil.h"

#include "nn/mask.h"
#include "prune/prune_impl.h"
#include "prune/schedule.h"

static const char tiny_model[] =
	"[model]\nname = tiny\ninput = 1x4x4\nclasses = 2\n"
	"[flatten]\ntype = flatten\n"
	"[fc1]\ntype = linear\nout = 8\nbias = no\n"
	"[relu]\ntype = relu\n"
	"[fc2]\ntype = linear\nout = 2\nbias = no\n";

/* What the stand-in callbacks were asked, in order. */
#define MAX_CALLS 32

typedef struct calls {
	char what[MAX_CALLS];        /* 'p' prune, 'r' train_round, 'u' until */
	double arg[MAX_CALLS];       /* amount, round or step */
	int n;
	pb_model *replace_with;      /* prune swaps the model for this */
} calls;

static void note(calls *c, char what, double arg)
{
	assert_true(c->n < MAX_CALLS);
	c->what[c->n] = what;
	c->arg[c->n++] = arg;
}

/* Masks the lowest-indexed weights of every weight tensor until each has
 * `amount` of them zero: a pruner whose reached amount is exact. */
static void mask_fraction(pb_model *m, double amount)
{
	for (int i = 0; i < pb_model_n_params(m); i++) {
		pb_param *p = pb_model_param(m, i);
		float *mk;
		size_t k;

		if (p->kind != PB_PARAM_WEIGHT)
			continue;
		mk = pbi_mask_get(m, p, 1);
		assert_non_null(mk);
		k = (size_t)llround(amount * (double)p->n);
		for (size_t j = 0; j < k; j++)
			mk[j] = 0.0f;
	}
	pbi_mask_apply(m);
}

static int op_prune(void *user, pb_model **m, const pb_target *t,
		    pb_error *err)
{
	calls *c = user;

	(void)err;
	note(c, 'p', t->amount);
	if (c->replace_with) {
		*m = c->replace_with;
		return 0;
	}
	mask_fraction(*m, t->amount);
	return 0;
}

static int op_round(void *user, pb_model *m, int round, pb_error *err)
{
	(void)m;
	(void)err;
	note(user, 'r', round);
	return 0;
}

static int op_until(void *user, pb_model *m, long step, pb_error *err)
{
	(void)m;
	(void)err;
	note(user, 'u', (double)step);
	return 0;
}

static const pbi_schedule_ops ops = {
	.prune = op_prune, .train_round = op_round, .train_until = op_until,
};

static pb_model *tiny(void)
{
	pb_model *m = tu_parse_model(tiny_model, "tiny.ini");

	tu_init_params(m, 3);
	/* No weight starts at exactly zero, so zeros are the mask's. */
	for (int i = 0; i < pb_model_n_params(m); i++) {
		pb_param *p = pb_model_param(m, i);

		for (size_t j = 0; j < p->n; j++)
			if (p->data[j] == 0.0f)
				p->data[j] = 0.5f;
	}
	return m;
}

static void test_round_targets(void **state)
{
	pb_target goal = { .kind = PB_TARGET_SPARSITY, .amount = 0.875 };
	pb_target t;

	(void)state;
	goal.n_overrides = 1;
	strcpy(goal.overrides[0].layer, "fc1");
	goal.overrides[0].amount = 0.75;
	/* Geometric: 1 - 0.125^(k/3) = 0.5, 0.75, 0.875; fc1 1 - 0.25^(k/3). */
	pbi_round_target(&goal, 1, 3, 0.0, &t);
	assert_true(fabs(t.amount - 0.5) < 1e-12);
	assert_true(fabs(t.overrides[0].amount -
			 (1.0 - pow(0.25, 1.0 / 3))) < 1e-12);
	pbi_round_target(&goal, 2, 3, 0.5, &t);
	assert_true(fabs(t.amount - 0.75) < 1e-12);
	pbi_round_target(&goal, 3, 3, 0.75, &t);
	assert_true(fabs(t.amount - 0.875) < 1e-12);
	assert_true(fabs(t.overrides[0].amount - 0.75) < 1e-12);

	/* Channel kinds are increments over what the model already lost:
	 * round 2 of macs=0.75 in 2 rounds (total 0.75) after 0.5 removed
	 * removes 1 - 0.25 / 0.5 = 0.5 of what is left. */
	goal = (pb_target){ .kind = PB_TARGET_MACS, .amount = 0.75 };
	pbi_round_target(&goal, 1, 2, 0.0, &t);
	assert_true(fabs(t.amount - 0.5) < 1e-12);
	pbi_round_target(&goal, 2, 2, 0.5, &t);
	assert_true(fabs(t.amount - 0.5) < 1e-12);
	/* Overshot already: nothing more. */
	pbi_round_target(&goal, 2, 2, 0.8, &t);
	assert_true(t.amount == 0.0);
}

static void test_gradual_points(void **state)
{
	pb_prune_plan plan = {
		.schedule = PB_PRUNE_GRADUAL, .gradual_begin = 1.0,
		.gradual_epochs = 3.0, .gradual_steps = 3,
		.gradual_initial = 0.2,
	};
	long step[4];
	double amount[4];
	pb_target goal = { .kind = PB_TARGET_SPARSITY, .amount = 0.8 }, t;

	(void)state;
	/* Zhu & Gupta: s_k = 0.8 + (0.2 - 0.8) (1 - k/3)^3 at epoch 1 + k,
	 * 10 updates an epoch. */
	pbi_gradual_points(&plan, 0.8, 10, step, amount);
	assert_int_equal(step[0], 10);
	assert_int_equal(step[1], 20);
	assert_int_equal(step[2], 30);
	assert_int_equal(step[3], 40);
	assert_true(fabs(amount[0] - 0.2) < 1e-12);
	assert_true(fabs(amount[1] - (0.8 - 0.6 * 8.0 / 27)) < 1e-12);
	assert_true(fabs(amount[2] - (0.8 - 0.6 / 27)) < 1e-12);
	assert_true(fabs(amount[3] - 0.8) < 1e-12);

	goal.n_overrides = 1;
	strcpy(goal.overrides[0].layer, "fc2");
	goal.overrides[0].amount = 0.4;
	pbi_scaled_target(&goal, 0.2, &t);
	assert_true(t.amount == 0.2);
	assert_true(fabs(t.overrides[0].amount - 0.1) < 1e-12);
}

static void test_oneshot_and_iterative(void **state)
{
	pb_target goal = { .kind = PB_TARGET_SPARSITY, .amount = 0.75 };
	pb_prune_plan plan = { .schedule = PB_PRUNE_ITERATIVE, .rounds = 2 };
	pb_model *ref = tiny(), *m = tiny();
	pbi_schedule_ops o = ops;
	pbi_rounds rounds = { 0 };
	pb_error err = { 0 };
	calls c = { 0 };

	(void)state;
	o.user = &c;
	/* One-shot: one prune to the goal, no training, no rounds. */
	assert_int_equal(pbi_schedule_rounds(NULL, &goal, NULL, ref, &m, &o,
					     &rounds, &err), 0);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.what[0], 'p');
	assert_true(c.arg[0] == 0.75);
	assert_int_equal(rounds.n, 0);
	pb_model_free(m);

	/* Two rounds: prune 0.5, train, prune 0.75; the reached amount
	 * after each round, measured against ref. */
	m = tiny();
	c = (calls){ 0 };
	assert_int_equal(pbi_schedule_rounds(&plan, &goal, NULL, ref, &m, &o,
					     &rounds, &err), 0);
	assert_int_equal(c.n, 3);
	assert_memory_equal(c.what, "prp", 3);
	assert_true(fabs(c.arg[0] - 0.5) < 1e-12);
	assert_true(c.arg[1] == 1);
	assert_true(fabs(c.arg[2] - 0.75) < 1e-12);
	assert_int_equal(rounds.n, 2);
	/* fc1 16x8 and fc2 8x2: 64 + 8 of 144, then 96 + 12 of 144. */
	assert_true(fabs(rounds.v[0] - 72.0 / 144) < 1e-12);
	assert_true(fabs(rounds.v[1] - 108.0 / 144) < 1e-12);
	pbi_rounds_free(&rounds);
	pb_model_free(m);
	pb_model_free(ref);
}

/* Trunk sharing: the trunk is 4 rounds toward hi = 0.9375, which go to
 * 1 - 0.0625^(k/4) = 0.5, 0.75, 0.875 (0.9375); a lower target takes the
 * rounds below it, then one round to itself. */
static void test_trunk_rounds(void **state)
{
	pb_target hi = { .kind = PB_TARGET_SPARSITY, .amount = 0.9375 };
	pb_target goal = { .kind = PB_TARGET_SPARSITY, .amount = 0.8 };
	pb_prune_plan plan = { .schedule = PB_PRUNE_ITERATIVE, .rounds = 4 };
	pb_model *ref = tiny(), *m = tiny();
	pbi_schedule_ops o = ops;
	pbi_rounds rounds = { 0 };
	pb_error err = { 0 };
	calls c = { 0 };

	(void)state;
	assert_int_equal(pbi_trunk_rounds(&hi, 0.9375, 4), 3);
	assert_int_equal(pbi_trunk_rounds(&hi, 0.9, 4), 3);
	assert_int_equal(pbi_trunk_rounds(&hi, 0.8, 4), 2);
	/* A trunk round that lands on the target is the target's own. */
	assert_int_equal(pbi_trunk_rounds(&hi, 0.75, 4), 1);
	assert_int_equal(pbi_trunk_rounds(&hi, 0.5, 4), 0);
	assert_int_equal(pbi_trunk_rounds(&hi, 0.3, 4), 0);
	o.user = &c;
	/* 0.8: trunk rounds 0.5 and 0.75, each trained, then 0.8. */
	assert_int_equal(pbi_schedule_rounds(&plan, &goal, &hi, ref, &m, &o,
					     &rounds, &err), 0);
	assert_int_equal(c.n, 5);
	assert_memory_equal(c.what, "prprp", 5);
	assert_true(fabs(c.arg[0] - 0.5) < 1e-12);
	assert_true(c.arg[1] == 1);
	assert_true(fabs(c.arg[2] - 0.75) < 1e-12);
	assert_true(c.arg[3] == 2);
	assert_true(c.arg[4] == 0.8);
	assert_int_equal(rounds.n, 3);
	pbi_rounds_free(&rounds);
	pb_model_free(m);
	/* The highest target itself: the trunk's 4 rounds, as before. */
	m = tiny();
	c = (calls){ 0 };
	assert_int_equal(pbi_schedule_rounds(&plan, &hi, &hi, ref, &m, &o,
					     &rounds, &err), 0);
	assert_int_equal(c.n, 7);
	assert_true(fabs(c.arg[4] - 0.875) < 1e-12);
	assert_true(c.arg[6] == 0.9375);
	pbi_rounds_free(&rounds);
	pb_model_free(m);
	pb_model_free(ref);
}

static void test_gradual(void **state)
{
	pb_target goal = { .kind = PB_TARGET_SPARSITY, .amount = 0.5 };
	pb_prune_plan plan = {
		.schedule = PB_PRUNE_GRADUAL, .gradual_begin = 0.0,
		.gradual_epochs = 2.0, .gradual_steps = 2,
	};
	pb_model *ref = tiny(), *m = tiny(), *other = tiny(), *m0;
	pbi_schedule_ops o = ops;
	pbi_rounds rounds = { 0 };
	pb_error err = { 0 };
	calls c = { 0 };

	(void)state;
	o.user = &c;
	/* Points at updates 0, 5, 10 with amounts 0 (skipped: no prune),
	 * 0.5 - 0.5/8 and 0.5; then training to the end. */
	assert_int_equal(pbi_schedule_gradual(&plan, &goal, 5, ref, &m, &o,
					      &rounds, &err), 0);
	assert_int_equal(c.n, 6);
	assert_memory_equal(c.what, "uupupu", 6);
	assert_true(c.arg[0] == 0 && c.arg[1] == 5 && c.arg[3] == 10);
	assert_true(c.arg[5] == -1);
	assert_true(fabs(c.arg[2] - 0.4375) < 1e-12);
	assert_true(fabs(c.arg[4] - 0.5) < 1e-12);
	assert_int_equal(rounds.n, 2);
	assert_true(fabs(rounds.v[1] - 72.0 / 144) < 1e-12);
	pbi_rounds_free(&rounds);

	/* A pruner that replaces the model (channel removal) cannot prune
	 * a model that is training. */
	c = (calls){ .replace_with = other };
	m0 = m;
	assert_int_equal(pbi_schedule_gradual(&plan, &goal, 5, ref, &m, &o,
					      &rounds, &err), PB_EINVAL);
	assert_non_null(strstr(err.msg, "weight granularity"));
	assert_ptr_equal(m, other);
	pbi_rounds_free(&rounds);
	pb_model_free(m0);
	pb_model_free(other);
	pb_model_free(ref);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_targets),
		cmocka_unit_test(test_gradual_points),
		cmocka_unit_test(test_oneshot_and_iterative),
		cmocka_unit_test(test_trunk_rounds),
		cmocka_unit_test(test_gradual),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
