/* lth's trainings against schedules worked out by hand: a round retrains
 * the T - k iterations after the rewind point k with the rates the dense
 * training had there (not a restart with warm-up), compressed when
 * retrain_epochs says so; learning-rate rewinding retrains the last t
 * epochs with theirs. And the random-reinitialisation control: with the
 * ticket's random stream it has the ticket's final mask bit for bit, its
 * survivors are not the rewind point's values, and it trains exactly as
 * the ticket's last round. Trainings are observed through the runner's
 * on_train callback. */
#include "pruner_test.h"

static const char net_ini[] =
	"[model]\nname = lths\ninput = 1x4x4\nclasses = 3\n"
	"[c1]\ntype = conv\nout = 4\nkernel = 3\npad = 1\n"
	"[r1]\ntype = relu\n"
	"[c2]\ntype = conv\nout = 8\nkernel = 3\npad = 1\n"
	"[r2]\ntype = relu\n"
	"[p2]\ntype = maxpool\nkernel = 2\n"
	"[f]\ntype = flatten\n"
	"[fc]\ntype = linear\nout = 3\n";

#define MAX_TRAININGS 16

/* One training as the runner is told of it. */
typedef struct seen {
	int which;
	double epochs;
	long steps;
	int spanned;
	double from, to;      /* epochs of the dense schedule */
} seen;

typedef struct log_ {
	seen t[MAX_TRAININGS];
	int n;
} log_;

static void on_train(void *user, pb_recipe_which which, double epochs,
		     long steps, const pb_lr_span *span)
{
	log_ *l = user;

	assert_true(l->n < MAX_TRAININGS);
	l->t[l->n++] = (seen){ (int)which, epochs, steps,
			       span && span->sched != NULL,
			       span ? span->from : 0, span ? span->to : 0 };
}

/* lth from = scratch with options kv to sparsity 1 - 0.8^2 (two rounds)
 * on a fresh net, the cell's RNG seeded with `seed`; the dense recipe is
 * 4 epochs of 4 steps (T = 16) with cosine and a one-epoch warm-up. */
static pb_model *run(const char *const *kv, unsigned long seed, log_ *l)
{
	pb_plugin *p = tu_open_plugin("lth");
	pb_model *m = tu_parse_model(net_ini, "test"), *out = NULL;
	pb_target t = { .kind = PB_TARGET_SPARSITY, .amount = 1.0 - 0.64,
			.scope = PB_SCOPE_GLOBAL };
	pb_prune_setup su = { 0 };
	pb_splits sp;
	pb_recipe r;
	pb_error err = { 0 };

	pt_tiny_splits(&sp, 64);
	pt_plain_recipe(&r, 4, 16, 0.1);
	r.schedule = PB_SCHED_COSINE;
	r.warmup_epochs = 1.0;
	r.momentum = 0.9;
	su.pruner = pb_plugin_pruner(p);
	su.target = &t;
	su.splits = &sp;
	su.dense = su.finetune = &r;
	su.on_train = on_train;
	su.on_train_user = l;
	memset(l, 0, sizeof *l);
	if (tu_prune_run(m, &su, kv, seed, &out, NULL, &err))
		fail_msg("%s", err.msg);
	pb_model_free(m);
	pb_splits_free(&sp);
	pb_plugin_close(p);
	return out;
}

static void expect_span(const seen *s, double from, double to, long steps)
{
	assert_true(s->spanned);
	assert_true(fabs(s->from - from) < 1e-12);
	assert_true(fabs(s->to - to) < 1e-12);
	assert_int_equal(s->steps, steps);
}

static void test_retraining_continues_the_schedule(void **state)
{
	static const char *ticket[] = { "from=scratch", "rewind=6", NULL };
	static const char *short_[] = { "from=scratch", "rewind=6",
					"retrain_epochs=1", NULL };
	static const char *lrr[] = { "from=scratch", "rewind=6",
				     "lr_rewind=yes", NULL };
	static const char *lrr2[] = { "from=scratch", "rewind=6",
				      "lr_rewind=yes", "retrain_epochs=1.5",
				      NULL };
	log_ l;
	pb_model *m;

	(void)state;
	/* The dense training itself (from = scratch), then each of the two
	 * rounds retrains iterations [6, 16) of the dense schedule: from
	 * epoch 1.5 to 4, in 10 updates. */
	m = run(ticket, 3, &l);
	assert_int_equal(l.n, 3);
	assert_false(l.t[0].spanned);
	assert_true(l.t[0].epochs == 4);
	expect_span(&l.t[1], 1.5, 4.0, 10);
	expect_span(&l.t[2], 1.5, 4.0, 10);
	pb_model_free(m);
	/* retrain_epochs = 1: that stretch in one epoch, 4 updates. */
	m = run(short_, 3, &l);
	expect_span(&l.t[1], 1.5, 4.0, 4);
	pb_model_free(m);
	/* Learning-rate rewinding: the last T - k = 10 iterations. */
	m = run(lrr, 3, &l);
	expect_span(&l.t[1], 1.5, 4.0, 10);
	pb_model_free(m);
	/* ... or the last 1.5 epochs, with their rates. */
	m = run(lrr2, 3, &l);
	expect_span(&l.t[1], 2.5, 4.0, 6);
	expect_span(&l.t[2], 2.5, 4.0, 6);
	pb_model_free(m);
}

/* The rates such a training uses, from the trainer itself: a span of a
 * cosine schedule with warm-up, worked out by hand. */
static void test_span_rates(void **state)
{
	char *dir = tu_temp_dir(), csv[600], line[256];
	pb_model *m = tu_parse_model(net_ini, "test");
	pb_dataset d;
	pb_recipe sched, r;
	pb_train_opts o = { 0 };
	pb_error err = { 0 };
	gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
	double want[4], lr;
	FILE *f;
	int k = 0;

	(void)state;
	/* One update per epoch, so each CSV line is one update's rate. */
	assert_int_equal(pb_dataset_synthetic(&d, 16, 1, 4, 4, 3, 0.1f, 1,
					      &err), 0);
	pt_plain_recipe(&sched, 4, 16, 0.1);
	sched.schedule = PB_SCHED_COSINE;
	sched.warmup_epochs = 1.0;
	r = sched;
	r.epochs = 4;
	tu_init_params(m, 1);
	snprintf(csv, sizeof csv, "%s/c.csv", dir);
	o.csv_path = csv;
	/* Epochs 0.5 to 3.5 of the schedule in 4 updates: 0.5, 1.25, 2,
	 * 2.75; the first inside the warm-up, all below the peak (and, for
	 * the first two, not what epochs 0 and 1 of a restart give). */
	o.span = (pb_lr_span){ .sched = &sched, .from = 0.5, .to = 3.5 };
	for (int i = 0; i < 4; i++)
		want[i] = pb_recipe_lr(&sched, 0.5 + 0.75 * i);
	assert_true(want[0] < 0.1 && want[1] < 0.1);
	assert_true(fabs(want[1] - pb_recipe_lr(&sched, 1.0)) > 1e-3);
	gsl_rng_set(g, 1);
	if (pb_train(m, &d, NULL, &r, g, &o, NULL, &err))
		fail_msg("%s", err.msg);
	f = fopen(csv, "r");
	assert_non_null(f);
	assert_non_null(fgets(line, sizeof line, f));
	while (fgets(line, sizeof line, f)) {
		assert_int_equal(sscanf(line, "%*d,%lf", &lr), 1);
		assert_true(k < 4);
		if (fabs(lr - want[k]) > 1e-6 * want[k])
			fail_msg("update %d: rate %g, wanted %g", k, lr,
				 want[k]);
		k++;
	}
	assert_int_equal(k, 4);
	fclose(f);
	gsl_rng_free(g);
	pb_dataset_free(&d);
	pb_model_free(m);
	tu_rm_tree(dir);
}

static void test_reinit_control(void **state)
{
	static const char *ticket[] = { "from=scratch", "rewind=6",
					"retrain_epochs=1", NULL };
	static const char *control[] = { "from=scratch", "rewind=6",
					 "retrain_epochs=1", "reinit=yes",
					 NULL };
	static const char *ticket0[] = { "from=scratch", "rewind=6",
					 "retrain_epochs=0", NULL };
	static const char *control0[] = { "from=scratch", "rewind=6",
					  "retrain_epochs=0", "reinit=yes",
					  NULL };
	log_ lt, lc;
	pb_model *t, *c;
	size_t masked = 0, kept = 0, differ = 0;

	(void)state;
	/* Same stream: the same mask, bit for bit, after trained rounds. */
	t = run(ticket, 7, &lt);
	c = run(control, 7, &lc);
	for (int i = 0; i < pb_model_n_params(t); i++) {
		pb_param *a = pb_model_param(t, i), *b = pb_model_param(c, i);

		if (a->kind != PB_PARAM_WEIGHT)
			continue;
		for (size_t j = 0; j < a->n; j++) {
			assert_int_equal(a->data[j] == 0.0f,
					 b->data[j] == 0.0f);
			masked += a->data[j] == 0.0f;
		}
	}
	assert_true(masked > 0);
	/* The same trainings: the dense one, two rounds alike. */
	assert_int_equal(lt.n, lc.n);
	for (int i = 0; i < lt.n; i++)
		assert_memory_equal(&lt.t[i], &lc.t[i], sizeof lt.t[i]);
	pb_model_free(t);
	pb_model_free(c);
	/* Without the last training the ticket's survivors are the rewind
	 * point's values and the control's are drawn afresh. */
	t = run(ticket0, 7, &lt);
	c = run(control0, 7, &lc);
	for (int i = 0; i < pb_model_n_params(t); i++) {
		pb_param *a = pb_model_param(t, i), *b = pb_model_param(c, i);

		if (a->kind != PB_PARAM_WEIGHT)
			continue;
		for (size_t j = 0; j < a->n; j++) {
			assert_int_equal(a->data[j] == 0.0f,
					 b->data[j] == 0.0f);
			if (a->data[j] == 0.0f)
				continue;
			kept++;
			differ += a->data[j] != b->data[j];
		}
	}
	assert_true(kept > 0 && differ > kept * 9 / 10);
	pb_model_free(t);
	pb_model_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_retraining_continues_the_schedule),
		cmocka_unit_test(test_span_rates),
		cmocka_unit_test(test_reinit_control),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
