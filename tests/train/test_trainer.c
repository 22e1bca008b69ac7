/* The stoppable trainer (pb_trainer_* in core/train/train.c): a training
 * stopped after any number of updates and continued is one uninterrupted
 * pb_train, bit for bit, in its weights and running statistics, its CSV
 * (all but the seconds column), its hook calls and its last epoch's
 * statistics; with and without a step cap. The model has dropout and the
 * recipe augments, warms up, decays the rate and keeps the best epoch, so
 * losing any of the trainer's state between calls shows. */
#include "testutil.h"

#include "prunebench/prunebench.h"

static const char net[] =
	"[model]\nname = stop\ninput = 1x8x8\nclasses = 3\n"
	"[conv1]\ntype = conv\nout = 4\nkernel = 3\npad = 1\nbias = no\n"
	"[bn1]\ntype = bn\n[relu1]\ntype = relu\n"
	"[pool]\ntype = maxpool\nkernel = 2\n"
	"[flat]\ntype = flatten\n[drop]\ntype = dropout\np = 0.25\n"
	"[fc]\ntype = linear\nout = 3\n";

/* 88 training images in batches of 16: 5 updates an epoch, the last 8
 * images of each shuffle left out. */
enum { N_TRAIN = 88, BATCH = 16, PER_EPOCH = 5, EPOCHS = 3, MAX_HOOKED = 8 };

typedef struct data {
	pb_dataset train, val;
} data;

/* What a training leaves: every state float, the curve, the hooks'
 * record, the last epoch's statistics. */
typedef struct outcome {
	float *state;
	size_t n;
	char *csv;
	int epochs[MAX_HOOKED];   /* after_epoch's epoch arguments */
	int n_epochs;
	long n_steps;             /* after_step calls */
	long n_backward;          /* after_backward calls */
	pb_epoch_stats last;
} outcome;

static int on_epoch(void *user, pb_model *m, int epoch)
{
	outcome *o = user;

	(void)m;
	assert_true(o->n_epochs < MAX_HOOKED);
	o->epochs[o->n_epochs++] = epoch;
	return 0;
}

/* Updates arrive numbered 0, 1, 2, ... across every stop. */
static int on_step(void *user, pb_model *m, long step)
{
	outcome *o = user;

	(void)m;
	assert_int_equal(step, o->n_steps);
	o->n_steps++;
	return 0;
}

static int on_backward(void *user, pb_model *m, long step)
{
	outcome *o = user;

	(void)m;
	assert_int_equal(step, o->n_backward);
	o->n_backward++;
	return 0;
}

static int setup(void **state)
{
	data *d = calloc(1, sizeof *d);
	pb_error err = { 0 };

	assert_non_null(d);
	if (pb_dataset_synthetic(&d->train, N_TRAIN, 1, 8, 8, 3, 0.4f, 11,
				 &err) ||
	    pb_dataset_synthetic(&d->val, 30, 1, 8, 8, 3, 0.4f, 12, &err))
		fail_msg("%s", err.msg);
	*state = d;
	return 0;
}

static int teardown(void **state)
{
	data *d = *state;

	pb_dataset_free(&d->train);
	pb_dataset_free(&d->val);
	free(d);
	return 0;
}

static void recipe(pb_recipe *r)
{
	pb_recipe_default(r);
	r->epochs = EPOCHS;
	r->batch = BATCH;
	r->lr = 0.05;
	r->warmup_epochs = 0.5;
	r->schedule = PB_SCHED_COSINE;
	r->aug.crop_pad = 1;
	r->aug.hflip = 1;
	r->keep_best = 1;
	r->eval_batch = 16;
}

static float *snapshot(pb_model *m, size_t *n)
{
	size_t off = 0;
	float *s;

	*n = 0;
	for (int i = 0; i < pb_model_n_params(m); i++)
		*n += pb_model_param(m, i)->n;
	s = malloc(*n * sizeof *s);
	assert_non_null(s);
	for (int i = 0; i < pb_model_n_params(m); i++) {
		pb_param *p = pb_model_param(m, i);
		memcpy(s + off, p->data, p->n * sizeof *s);
		off += p->n;
	}
	return s;
}

/* The curve with the last column (seconds) of every line cut off. */
static char *read_curve(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[512], *out = calloc(1, 1);
	size_t len = 0;

	assert_non_null(f);
	assert_non_null(out);
	while (fgets(line, sizeof line, f)) {
		char *comma = strrchr(line, ',');
		size_t k;

		assert_non_null(comma);
		*comma = '\0';
		k = strlen(line);
		out = realloc(out, len + k + 2);
		assert_non_null(out);
		memcpy(out + len, line, k);
		out[len + k] = '\n';
		len += k + 1;
		out[len] = '\0';
	}
	fclose(f);
	return out;
}

/* After_epoch calls made once a trainer of a run of `total` updates in
 * `epochs` epochs was told to stop at `stop`: an epoch whose updates are
 * all made ends in the next call, not this one, unless the run is over. */
static int epochs_ended(long stop, long total, int epochs)
{
	if (stop > total)
		return epochs;
	return stop ? (int)((stop - 1) / PER_EPOCH) : 0;
}

/* Trains a fresh model (same seeds every time) with the step cap
 * max_steps, which makes `epochs` epochs: with pb_train when stops is
 * NULL, else with a trainer run to each stop in turn (the list ends with
 * -1) and then finished. */
static void train(const data *d, long max_steps, int epochs,
		  const long *stops, outcome *o)
{
	pb_model *m = tu_parse_model(net, "stop.ini");
	pb_train_hooks hooks = { 0 };
	pb_train_opts opts = { 0 };
	pb_error err = { 0 };
	gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
	char *dir = tu_temp_dir(), csv[512];
	pb_recipe r;
	size_t n0;
	float *init;

	memset(o, 0, sizeof *o);
	tu_init_params(m, 3);
	init = snapshot(m, &n0);
	gsl_rng_set(rng, 5);
	recipe(&r);
	hooks.user = o;
	hooks.after_epoch = on_epoch;
	hooks.after_step = on_step;
	hooks.after_backward = on_backward;
	snprintf(csv, sizeof csv, "%s/curve.csv", dir);
	opts.hooks = &hooks;
	opts.csv_path = csv;
	opts.max_steps = max_steps;
	if (!stops) {
		if (pb_train(m, &d->train, &d->val, &r, rng, &opts, &o->last,
			     &err))
			fail_msg("%s", err.msg);
	} else {
		pb_trainer *t = NULL;
		long total;

		if (pb_trainer_new(&t, m, &d->train, &d->val, &r, rng, &opts,
				   &err))
			fail_msg("%s", err.msg);
		total = pb_trainer_steps_total(t);
		for (const long *stop = stops; *stop >= 0; stop++) {
			long want = *stop < total ? *stop : total;
			int ended = epochs_ended(*stop, total, epochs);

			if (pb_trainer_run(t, *stop, &err))
				fail_msg("%s", err.msg);
			assert_int_equal(pb_trainer_steps_done(t), want);
			assert_int_equal(o->n_steps, want);
			if (o->n_epochs != ended)
				fail_msg("stopped at %ld: %d epochs ended, "
					 "expected %d", *stop, o->n_epochs,
					 ended);
		}
		if (pb_trainer_finish(t, &o->last, &err))
			fail_msg("%s", err.msg);
		pb_trainer_free(t);
	}
	o->state = snapshot(m, &o->n);
	/* Training happened: a comparison of untouched weights would
	 * prove nothing. */
	assert_int_equal(o->n, n0);
	assert_true(memcmp(o->state, init, n0 * sizeof *init) != 0);
	o->csv = read_curve(csv);
	free(init);
	tu_rm_tree(dir);
	gsl_rng_free(rng);
	pb_model_free(m);
}

static void outcome_free(outcome *o)
{
	free(o->state);
	free(o->csv);
}

static void assert_same_stats(const pb_epoch_stats *a,
			      const pb_epoch_stats *b)
{
	assert_int_equal(a->epoch, b->epoch);
	assert_true(a->lr == b->lr);
	assert_true(a->train_loss == b->train_loss);
	assert_true(a->train_acc == b->train_acc);
	assert_true(a->val_loss == b->val_loss);
	assert_true(a->val_acc == b->val_acc);
}

/* Stop lists, each ending with -1. */
enum { MAX_STOPS = 6 };
typedef long stop_list[MAX_STOPS];

/* Each list of stops against the uninterrupted run, which makes
 * n_updates updates in n_epochs epochs. */
static void check_stops(const data *d, long max_steps, long n_updates,
			int n_epochs, const stop_list *stops, size_t n_lists)
{
	outcome ref, got;
	int lines = 0;

	train(d, max_steps, n_epochs, NULL, &ref);
	assert_int_equal(ref.n_steps, n_updates);
	assert_int_equal(ref.n_backward, n_updates);
	assert_int_equal(ref.n_epochs, n_epochs);
	for (int e = 0; e < n_epochs; e++)
		assert_int_equal(ref.epochs[e], e);
	for (const char *c = ref.csv; *c; c++)
		lines += *c == '\n';
	assert_int_equal(lines, 1 + n_epochs);
	assert_int_equal(ref.last.epoch, n_epochs);

	for (size_t i = 0; i < n_lists; i++) {
		train(d, max_steps, n_epochs, stops[i], &got);
		if (memcmp(got.state, ref.state, ref.n * sizeof *ref.state))
			fail_msg("stop list %zu (first stop %ld): weights "
				 "differ from one uninterrupted run", i,
				 stops[i][0]);
		assert_string_equal(got.csv, ref.csv);
		assert_int_equal(got.n_epochs, ref.n_epochs);
		assert_memory_equal(got.epochs, ref.epochs,
				    sizeof ref.epochs);
		assert_int_equal(got.n_steps, ref.n_steps);
		assert_int_equal(got.n_backward, ref.n_backward);
		assert_same_stats(&got.last, &ref.last);
		outcome_free(&got);
	}
	outcome_free(&ref);
}

/* 3 epochs of 5 updates: stopped at 0, mid-epoch, exactly at an epoch's
 * last update (5, 10) and at the run's (15), twice at one point, at many
 * points, and past the end. */
static void test_stops_match_uninterrupted(void **state)
{
	static const stop_list stops[] = {
		{ 0, -1 }, { 3, -1 }, { 5, -1 }, { 5, 5, 6, -1 }, { 15, -1 },
		{ 1, 2, 7, 10, 14, -1 }, { 40, -1 }, { 0, 3, 40, -1 },
	};

	check_stops(*state, 0, EPOCHS * PER_EPOCH, EPOCHS, stops,
		    sizeof stops / sizeof stops[0]);
}

/* A cap of 8 updates ends the run inside the second epoch (which still
 * gets its CSV line and hook); a cap of 10 at its last update. */
static void test_stops_match_with_max_steps(void **state)
{
	static const stop_list stops8[] = {
		{ 0, -1 }, { 4, -1 }, { 5, -1 }, { 8, -1 }, { 7, 20, -1 },
		{ 100, -1 }, { 2, 5, 6, -1 },
	};
	static const stop_list stops10[] = {
		{ 5, -1 }, { 10, -1 }, { 9, 11, -1 }, { 3, 10, 10, -1 },
	};

	check_stops(*state, 8, 8, 2, stops8, sizeof stops8 / sizeof stops8[0]);
	check_stops(*state, 10, 10, 2, stops10,
		    sizeof stops10 / sizeof stops10[0]);
}

static void test_steps_total(void **state)
{
	const data *d = *state;
	static const long caps[][2] = { { 0, 15 }, { 8, 8 }, { 15, 15 },
					{ 100, 15 } };
	pb_model *m = tu_parse_model(net, "stop.ini");
	gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
	pb_error err = { 0 };
	pb_recipe r;

	recipe(&r);
	for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
		pb_train_opts opts = { .max_steps = caps[i][0] };
		pb_trainer *t = NULL;

		if (pb_trainer_new(&t, m, &d->train, &d->val, &r, rng, &opts,
				   &err))
			fail_msg("%s", err.msg);
		assert_int_equal(pb_trainer_steps_total(t), caps[i][1]);
		assert_int_equal(pb_trainer_steps_done(t), 0);
		pb_trainer_free(t);
	}
	gsl_rng_free(rng);
	pb_model_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_stops_match_uninterrupted,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_stops_match_with_max_steps,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_steps_total, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
