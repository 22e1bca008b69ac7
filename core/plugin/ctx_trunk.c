/* pb_ctx_trunk_*: a plugin's rounds shared across targets (pruner.h).
 * The key, the per-round random streams, reading the deepest cached
 * round back into the context and storing each round computed; the
 * cache itself is trunk.c. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/mask.h"
#include "plugin/ctx_impl.h"
#include "plugin/trunk.h"
#include "prunebench/version.h"
#include "train/train_impl.h"

/* Everything that determines the trunk's rounds; see pruner.h. */
static char *key_text(pb_prune_ctx *ctx)
{
	const pb_prune_setup *su = ctx->setup;
	const pb_target *t = su->target;
	const pb_dataset *tr = su->splits ? &su->splits->train : NULL;
	char opts[1024], dense[1024] = "", ft[1024] = "", data[64];
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return NULL;
	pbi_trunk_options(ctx->pr, ctx->opts, opts, sizeof opts);
	if (su->dense)
		pbi_recipe_canon(su->dense, dense, sizeof dense);
	if (su->finetune)
		pbi_recipe_canon(su->finetune, ft, sizeof ft);
	pbi_trunk_data(tr, data, sizeof data);
	fprintf(f, "trunk v1|plugin=%s|version=%s|options=%s|kind=%d|"
		"scope=%d|ov=", ctx->pr->name,
		ctx->pr->version ? ctx->pr->version : "", opts, (int)t->kind,
		(int)t->scope);
	for (int i = 0; i < t->n_overrides; i++)
		fprintf(f, "%s=%a,", t->overrides[i].layer,
			t->overrides[i].amount);
	/* The thread count: a kernel whose sums depend on it would give a
	 * trunk other bits at another count. */
	fprintf(f, "|model=%08x|dense=%s|finetune=%s|train=%s|val=%d|"
		"threads=%d|blas=%s|numerics=%d",
		(unsigned)pbi_model_crc(ctx->model), dense, ft, data,
		su->splits ? su->splits->val.n : 0, omp_get_max_threads(),
		pb_blas_name(), PB_NUMERICS);
	if (fclose(f))
		return NULL;
	return text;
}

static int oom(pb_prune_ctx *ctx)
{
	return pb_error_set(ctx->err, PB_ENOMEM, "out of memory (trunk)");
}

void pbi_ctx_on_train(pb_prune_ctx *ctx, pb_recipe_which which,
		      double epochs, long steps, const pb_lr_span *span)
{
	const pb_prune_setup *su = ctx->setup;

	if (ctx->trunk_on && ctx->trunk_round > 0) {
		if (ctx->n_trains == ctx->cap_trains) {
			int cap = ctx->cap_trains ? 2 * ctx->cap_trains : 16;
			pbi_trunk_train *n = realloc(ctx->trains, sizeof *n *
						     (size_t)cap);

			/* Without room the rounds are not stored
			 * (pb_ctx_trunk_save). */
			if (!n) {
				ctx->trunk_n = -1;
				goto report;
			}
			ctx->trains = n;
			ctx->cap_trains = cap;
		}
		ctx->trains[ctx->n_trains++] = (pbi_trunk_train){
			ctx->trunk_round, (int)which, epochs, steps,
			span != NULL, span ? span->from : 0.0,
			span ? span->to : 0.0 };
	}
report:
	if (su->trunk)
		su->trunk->round = ctx->trunk_on ? ctx->trunk_round : 0;
	if (su->on_train)
		su->on_train(su->on_train_user, which, epochs, steps, span);
	if (su->trunk)
		su->trunk->round = 0;
}

void pbi_ctx_trunk_release(pb_prune_ctx *ctx)
{
	pbi_trunk_close(ctx->trunk);
	ctx->trunk = NULL;
	if (ctx->trunk_rng)
		gsl_rng_free(ctx->trunk_rng);
	ctx->trunk_rng = NULL;
	free(ctx->trunk_text);
	ctx->trunk_text = NULL;
	free(ctx->trains);
	ctx->trains = NULL;
	ctx->n_trains = ctx->cap_trains = 0;
	ctx->trunk_on = 0;
	ctx->trunk_round = 0;
	ctx->rng = ctx->setup->rng;
}

/* The state read back: the model, snapshots, rounds reported and the
 * trainings (reported to the runner as if they ran). */
static int adopt(pb_prune_ctx *ctx, pbi_trunk_state *st)
{
	const pb_prune_setup *su = ctx->setup;
	pb_prune_report *rep = ctx->report;

	pbi_ctx_replace_model(ctx, st->model);
	st->model = NULL;
	for (int s = 0; s < PB_CTX_SNAPSHOTS; s++) {
		pb_model_free(ctx->snap[s]);
		ctx->snap[s] = st->snap[s];
		st->snap[s] = NULL;
	}
	if (rep) {
		rep->n_rounds = 0;
		for (int i = 0; i < st->n_rounds && i < PB_PRUNE_MAX_ROUNDS;
		     i++)
			rep->rounds[rep->n_rounds++] = st->rounds[i];
	}
	for (int i = 0; i < st->n_trains; i++) {
		const pbi_trunk_train *x = &st->trains[i];
		const pb_recipe *base = x->which == PB_RECIPE_DENSE ?
					su->dense : su->finetune;
		long per_epoch = base && su->splits ?
			pb_recipe_steps_per_epoch(base, su->splits->train.n) : 0;
		pb_lr_span span = { .sched = base };

		if (per_epoch > 0) {
			span.from = x->span_from;
			span.to = x->span_to;
		}
		ctx->trunk_round = x->round;
		pbi_ctx_on_train(ctx, (pb_recipe_which)x->which, x->epochs,
				 x->steps, x->has_span ? &span : NULL);
	}
	return 0;
}

int pb_ctx_trunk_begin(pb_prune_ctx *ctx, int n, int *start)
{
	const pb_prune_setup *su = ctx->setup;
	pbi_trunk_state st = { 0 };
	int rc, found = 0;

	*start = 0;
	if ((rc = pbi_ctx_refuse_in_hook(ctx, "pb_ctx_trunk_begin")))
		return rc;
	if (ctx->trunk_on || n < 0)
		return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': "
				    "pb_ctx_trunk_begin %s", ctx->pr->name,
				    n < 0 ? "with fewer than 0 rounds" :
				    "called twice");
	pbi_ctx_trunk_release(ctx);
	if (!(ctx->trunk_text = key_text(ctx)) ||
	    !(ctx->trunk_rng = gsl_rng_alloc(gsl_rng_mt19937)))
		return oom(ctx);
	pbi_trunk_hash(ctx->trunk_text, ctx->trunk_key);
	ctx->trunk_on = 1;
	ctx->trunk_n = n;
	if (su->trunk) {
		snprintf(su->trunk->key, sizeof su->trunk->key, "%s",
			 ctx->trunk_key);
		su->trunk->rounds = n;
		su->trunk->restored = 0;
	}
	if (n > 0 && su->trunk && su->trunk->dir) {
		if ((rc = pbi_trunk_open(&ctx->trunk, su->trunk->dir,
					 ctx->trunk_text, su->progress,
					 ctx->err)) ||
		    (rc = pbi_trunk_deepest(ctx->trunk, n, &st, &found,
					    ctx->err)))
			return rc;
		if (found) {
			adopt(ctx, &st);
			pbi_trunk_state_free(&st);
			pb_ctx_log(ctx, "trunk %s: rounds 1-%d read from the "
				   "cache", ctx->trunk_key, found);
			su->trunk->restored = found;
		}
	}
	*start = found;
	ctx->trunk_round = found + 1;
	pbi_trunk_rng_set(ctx->trunk_rng, ctx->trunk_key, found + 1, "plugin");
	ctx->rng = ctx->trunk_rng;
	return 0;
}

int pb_ctx_trunk_save(pb_prune_ctx *ctx, int r)
{
	pbi_trunk_state st = { 0 };
	pb_error werr = { 0 };
	int rc;

	if ((rc = pbi_ctx_refuse_in_hook(ctx, "pb_ctx_trunk_save")))
		return rc;
	if (!ctx->trunk_on || r < 1 || r != ctx->trunk_round)
		return pb_error_set(ctx->err, PB_EINVAL, "plugin '%s': "
				    "pb_ctx_trunk_save(%d) is not the trunk's "
				    "next round (%d)", ctx->pr->name, r,
				    ctx->trunk_round);
	if (ctx->trunk && ctx->trunk_n >= 0) {
		st.model = ctx->model;
		for (int s = 0; s < PB_CTX_SNAPSHOTS; s++)
			st.snap[s] = ctx->snap[s];
		st.rounds = ctx->report ? ctx->report->rounds : NULL;
		st.n_rounds = ctx->report ? ctx->report->n_rounds : 0;
		st.trains = ctx->trains;
		st.n_trains = ctx->n_trains;
		/* The numbers do not depend on the cache: a round that
		 * cannot be stored is said and computed again next time. */
		if (pbi_trunk_store(ctx->trunk, r, &st, &werr))
			pb_ctx_log(ctx, "%s", werr.msg);
	}
	ctx->trunk_round = r + 1;
	pbi_trunk_rng_set(ctx->trunk_rng, ctx->trunk_key, r + 1, "plugin");
	return 0;
}

int pb_ctx_trunk_end(pb_prune_ctx *ctx)
{
	int rc;

	if ((rc = pbi_ctx_refuse_in_hook(ctx, "pb_ctx_trunk_end")))
		return rc;
	pbi_trunk_close(ctx->trunk);
	ctx->trunk = NULL;
	ctx->trunk_on = 0;
	ctx->trunk_round = 0;
	ctx->rng = ctx->setup->rng;
	return 0;
}
