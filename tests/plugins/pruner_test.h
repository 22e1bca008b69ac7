/* What the tests of the pruners and of the plugin host share: running a
 * pruner on a model under a target given as text, tiny data and plain
 * recipes, and the crafted models several tests prune. */
#ifndef PB_PRUNER_TEST_H
#define PB_PRUNER_TEST_H

#include "../testutil.h"
#include "prunebench/data.h"
#include "prunebench/plugin.h"
#include "prunebench/target.h"
#include "prunebench/train.h"

/* One run: the target as pb_target_parse reads it ("channels=0.25",
 * "sparsity=0.5, scope=global") or, when `exact` is set, that target
 * itself (an amount computed to the last bit); options "k=v"
 * (NULL-terminated, may be NULL); and what the run may use besides (all
 * may be 0 / NULL). */
typedef struct pt_run_args {
	const char *target;
	const pb_target *exact;
	const char *const *kv;
	const pb_splits *splits;
	const pb_recipe *dense, *finetune;
	FILE *progress;
	const char *label;
	const char *dense_points;
	unsigned long seed;          /* of the cell's RNG; 0 is GSL's default */
} pt_run_args;

/* pb_prune_run of pruner pr on m; fails the test if the target or an
 * option is refused. */
static inline int pt_run(const pb_model *m, const pb_pruner *pr,
			 const pt_run_args *a, pb_model **out,
			 pb_prune_report *rep, pb_error *err)
{
	pb_target t;
	pb_prune_setup su = { 0 };

	if (a->exact)
		t = *a->exact;
	else if (pb_target_parse(&t, a->target, err))
		fail_msg("%s", err->msg);
	su.pruner = pr;
	su.target = &t;
	su.splits = a->splits;
	su.dense = a->dense;
	su.finetune = a->finetune;
	su.progress = a->progress;
	su.label = a->label;
	su.dense_points = a->dense_points;
	return tu_prune_run(m, &su, a->kv, a->seed, out, rep, err);
}

/* pt_run with data sp (may be NULL), recipe ft for both the fine-tune
 * and the dense training, the cell's RNG seeded with seed, and progress
 * lines to `progress` (may be NULL): how the pruners that read data are
 * run. */
static inline int pt_run_data(const pb_model *m, const pb_pruner *pr,
			      const char *target, const char *const *kv,
			      const pb_splits *sp, const pb_recipe *ft,
			      unsigned long seed, FILE *progress,
			      pb_model **out, pb_error *err)
{
	pt_run_args a = { .target = target, .kv = kv, .splits = sp,
			  .dense = ft, .finetune = ft, .progress = progress,
			  .label = "t", .seed = seed };

	return pt_run(m, pr, &a, out, NULL, err);
}

/* A recipe without augmentation, warm-up, momentum or decay. */
static inline void pt_plain_recipe(pb_recipe *r, int epochs, int batch,
				   double lr)
{
	pb_recipe_default(r);
	r->epochs = epochs;
	r->batch = batch;
	r->lr = lr;
	r->momentum = 0.0;
	r->nesterov = 0;
	r->weight_decay = 0.0;
	r->warmup_epochs = 0.0;
	r->aug.crop_pad = 0;
	r->schedule = PB_SCHED_CONSTANT;
}

/* n normalised synthetic 1x4x4 images of 3 classes, all for training. */
static inline void pt_tiny_splits(pb_splits *sp, int n)
{
	pb_error err = { 0 };
	float mean[1], std[1];

	memset(sp, 0, sizeof *sp);
	assert_int_equal(pb_dataset_synthetic(&sp->train, n, 1, 4, 4, 3, 0.3f,
					      11, &err), 0);
	pb_dataset_channel_stats(&sp->train, mean, std);
	pb_dataset_normalize(&sp->train, mean, std);
}

/* A conv with bias and a linear on 1x4x4 images of 3 classes. */
static const char pt_conv_linear_ini[] =
	"[model]\nname = mag\ninput = 1x4x4\nclasses = 3\n"
	"[c1]\ntype = conv\nout = 2\nkernel = 3\npad = 1\n"
	"[r1]\ntype = relu\n"
	"[f]\ntype = flatten\n"
	"[fc]\ntype = linear\nout = 3\n";

/* A three-conv net on 1x8x8 images of 4 classes with 160 training and 80
 * validation images, and a one-epoch fine-tune recipe: what the pruners
 * that train candidates (fpgm's soft mode, random) run on. */
static const char pt_small_ini[] =
	"[model]\nname = sm\ninput = 1x8x8\nclasses = 4\n"
	"[c1]\ntype = conv\nout = 8\nkernel = 3\npad = 1\nbias = no\n"
	"[b1]\ntype = bn\n"
	"[r1]\ntype = relu\n"
	"[c2]\ntype = conv\nout = 12\nkernel = 3\npad = 1\nbias = no\n"
	"[b2]\ntype = bn\n"
	"[r2]\ntype = relu\n"
	"[mp]\ntype = maxpool\nkernel = 2\n"
	"[c3]\ntype = conv\nout = 10\nkernel = 3\npad = 1\nbias = no\n"
	"[b3]\ntype = bn\n"
	"[r3]\ntype = relu\n"
	"[f]\ntype = flatten\n"
	"[fc]\ntype = linear\nout = 4\n";

static inline void pt_small_setup(pb_model **m, pb_splits *sp, pb_recipe *ft)
{
	pb_error err = { 0 };
	pb_dataset full = { 0 };

	*m = tu_parse_model(pt_small_ini, "test");
	tu_init_params(*m, 9);
	memset(sp, 0, sizeof *sp);
	assert_int_equal(pb_dataset_synthetic(&full, 240, 1, 8, 8, 4, 0.8f,
					      4, &err), 0);
	assert_int_equal(pb_dataset_split(&full, 80, 3, &sp->train, &sp->val,
					  &err), 0);
	pb_dataset_free(&full);
	pb_recipe_default(ft);
	ft->epochs = 1;
	ft->batch = 16;
	ft->lr = 0.05;
	ft->warmup_epochs = 0;
	ft->aug.crop_pad = 0;
	ft->aug.hflip = 0;
	ft->val_size = 0;
}

static inline void pt_small_free(pb_model *m, pb_splits *sp)
{
	pb_dataset_free(&sp->train);
	pb_dataset_free(&sp->val);
	pb_model_free(m);
}

/* A block with an identity shortcut: c0's channels are tied to c2's by
 * the add, c1's are the block's inner channels. */
static const char pt_residual_ini[] =
	"[model]\nname = res\ninput = 1x6x6\nclasses = 3\n"
	"[c0]\ntype = conv\nout = 8\nkernel = 3\npad = 1\nbias = no\n"
	"[b0]\ntype = bn\n"
	"[r0]\ntype = relu\n"
	"[c1]\ntype = conv\nout = 8\nkernel = 3\npad = 1\nbias = no\n"
	"[b1]\ntype = bn\n"
	"[r1]\ntype = relu\n"
	"[c2]\ntype = conv\nout = 8\nkernel = 3\npad = 1\nbias = no\n"
	"[b2]\ntype = bn\n"
	"[add]\ntype = add\ninputs = b2, r0\n"
	"[r2]\ntype = relu\n"
	"[gap]\ntype = avgpool\nglobal = yes\n"
	"[f]\ntype = flatten\n"
	"[fc]\ntype = linear\nout = 3\n";

/* Two convs with BN on 1x5x5 images: c1 (1 -> 4, 3x3, no bias) and c2
 * (4 -> 4, 3x3) feeding a linear of 3 classes. */
static const char pt_two_conv_ini[] =
	"[model]\nname = l1m\ninput = 1x5x5\nclasses = 3\n"
	"[c1]\ntype = conv\nout = 4\nkernel = 3\npad = 1\nbias = no\n"
	"[b1]\ntype = bn\n"
	"[r1]\ntype = relu\n"
	"[c2]\ntype = conv\nout = 4\nkernel = 3\npad = 1\n"
	"[r2]\ntype = relu\n"
	"[f]\ntype = flatten\n"
	"[fc]\ntype = linear\nout = 3\n";

/* pt_two_conv_ini's c1 filters, chosen so L1 and L2 rank them
 * differently:
 *   ch0: nine 0.5        L1 4.5  L2 1.5
 *   ch1: one -3.2        L1 3.2  L2 3.2
 *   ch2: nine 1.0        L1 9.0  L2 3.0
 *   ch3: nine +-0.8      L1 7.2  L2 2.4
 * so L1 removes ch1 first and L2 removes ch0. c2's filters are constant
 * 0.3, 0.4, 0.1, 0.2 in magnitude (ch2 smallest under both norms). BN
 * scales are 1, 2, 3, 4 so the surviving channels can be recognised. */
static inline void pt_craft_filters(pb_model *m)
{
	pb_param *w1 = pb_model_find_param(m, "c1.weight");
	pb_param *w2 = pb_model_find_param(m, "c2.weight");
	pb_param *g = pb_model_find_param(m, "b1.weight");
	static const float c2v[4] = { 0.3f, 0.4f, 0.1f, 0.2f };

	for (int j = 0; j < 9; j++) {
		w1->data[0 * 9 + j] = 0.5f;
		w1->data[1 * 9 + j] = j == 4 ? -3.2f : 0.0f;
		w1->data[2 * 9 + j] = 1.0f;
		w1->data[3 * 9 + j] = j % 2 ? -0.8f : 0.8f;
	}
	for (int c = 0; c < 4; c++) {
		g->data[c] = (float)(c + 1);
		for (int j = 0; j < 36; j++)
			w2->data[c * 36 + j] = c2v[c] * (j % 3 ? 1.f : -1.f);
	}
	tu_fill_param(m, "fc.weight", -1, 1, 3);
}

/* The log text of a run (open_memstream), for tests that read what a
 * plugin reported. */
typedef struct pt_log {
	char *text;
	size_t len;
	FILE *f;
} pt_log;

static inline FILE *pt_log_open(pt_log *lg)
{
	memset(lg, 0, sizeof *lg);
	lg->f = open_memstream(&lg->text, &lg->len);
	assert_non_null(lg->f);
	return lg->f;
}

/* Closes the stream; lg->text stays until free(lg->text). */
static inline void pt_log_close(pt_log *lg)
{
	fclose(lg->f);
	lg->f = NULL;
}

#endif
