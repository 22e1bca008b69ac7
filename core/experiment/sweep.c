/* The sweep: dense models first (trained or loaded from the cache, in
 * parallel over seeds), then every cell not yet in runs.jsonl, side by
 * side with OpenMP. Cells share only read-only things (the experiment,
 * the data splits, the dense models they clone, the plugin descriptors);
 * each has its own RNG streams, model copies and buffers, so its numbers
 * do not depend on what runs beside it. The only shared mutable state is
 * the progress display and the append to runs.jsonl, both inside
 * critical sections. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include <omp.h>

#include "base/blas.h"
#include "experiment/experiment_impl.h"
#include "experiment/sweep.h"
#include "prunebench/version.h"

/* ---- one cell in the sweep --------------------------------------------------- */

typedef struct cell_status {
	pbi_sweep *S;
	const pb_cell *c;
	int slot;
} cell_status;

static void on_status(void *user, const char *phase, int epoch, int epochs)
{
	cell_status *cs = user;

	if (cs->S->child) {
		char line[256];
		int n;

		if (!phase)
			return;
		n = epochs > 0 ? snprintf(line, sizeof line, "S %s %s %d/%d\n",
					  cs->c->id, phase, epoch, epochs) :
			snprintf(line, sizeof line, "S %s %s\n", cs->c->id,
				 phase);
		/* Only the display depends on it: a failed write is not
		 * the cell's failure. */
		if (n > 0 && write(cs->S->report_fd, line,
				   (size_t)n < sizeof line ? (size_t)n :
				   sizeof line - 1) < 0)
			return;
		return;
	}
	if (!phase)
		pbi_sweep_status(cs->S, cs->slot, "%s", "");
	else if (epochs > 0)
		pbi_sweep_status(cs->S, cs->slot, "%s %s %d/%d", cs->c->id,
				 phase, epoch, epochs);
	else
		pbi_sweep_status(cs->S, cs->slot, "%s %s", cs->c->id, phase);
}

/* A child's spare threads: the last "T N" line its sweep sent on the
 * control socket, read without waiting. */
static int read_grant(void *user)
{
	pbi_sweep *S = user;
	char buf[64];
	ssize_t r;

	while ((r = recv(S->o->control_fd, buf, sizeof buf, MSG_DONTWAIT)) >
	       0) {
		for (ssize_t i = 0; i < r; i++) {
			char *end;
			long v;

			if (buf[i] != '\n') {
				if (S->grant_len < sizeof S->grant_buf - 1)
					S->grant_buf[S->grant_len++] = buf[i];
				continue;
			}
			S->grant_buf[S->grant_len] = '\0';
			S->grant_len = 0;
			if (S->grant_buf[0] != 'T' || S->grant_buf[1] != ' ')
				continue;
			v = strtol(S->grant_buf + 2, &end, 10);
			if (!*end && v > 0 && v <= 4096)
				S->granted = (int)v;
		}
	}
	return S->granted;
}

static int seed_index(const pb_experiment *e, unsigned long seed)
{
	for (int i = 0; i < e->n_seeds; i++)
		if (e->seeds[i] == seed)
			return i;
	return -1;
}

/* What identifies the cell in its record: the experiment's side of it. */
int pbi_sweep_identify(const pbi_sweep *S, const pb_cell *c, pb_record *r,
		       int wrote_curve)
{
	const pb_experiment *e = S->e;
	const pb_exp_method *me = c->method_index >= 0 ?
		&e->methods[c->method_index] : NULL;
	const pb_pruner *pr = me ? pb_plugin_pruner(me->plugin) : NULL;
	const pb_target *t = me ? &me->targets[c->target_index] : NULL;
	const int si = seed_index(e, c->seed);
	char buf[64], when[32], host[256], *curve = NULL;
	time_t now = time(NULL);
	struct tm tm;
	int rc = 0;

	r->kind = c->kind;
	r->seed = (long)c->seed;
	r->target_amount = t ? t->amount : NAN;
	gmtime_r(&now, &tm);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
	rc |= pb_record_set(&r->id, c->id);
	rc |= pb_record_set(&r->experiment, e->name);
	rc |= pb_record_set(&r->method, c->method);
	rc |= pb_record_set(&r->label, me && me->label[0] ? me->label : NULL);
	rc |= pb_record_set(&r->plugin, pr ? pr->name : NULL);
	rc |= pb_record_set(&r->granularity, pr ?
			    pb_granularity_name(pr->granularity) : NULL);
	rc |= pb_record_set(&r->target, me ? me->target_text[c->target_index] :
			    NULL);
	rc |= pb_record_set(&r->target_kind, t ? pb_target_kind_name(t->kind) :
			    NULL);
	rc |= pb_record_set(&r->scope, !me ? NULL : me->scope ==
			    PB_SCOPE_GLOBAL ? "global" : "layer");
	if (me && me->plan.schedule == PB_PRUNE_ITERATIVE)
		snprintf(buf, sizeof buf, "iterative:%d", me->plan.rounds);
	else
		snprintf(buf, sizeof buf, "%s", me && me->plan.schedule ==
			 PB_PRUNE_GRADUAL ? "gradual" : "oneshot");
	rc |= pb_record_set(&r->schedule, me ? buf : NULL);
	if (si >= 0 && S->dense && S->dense[si]) {
		snprintf(buf, sizeof buf, "%08x", (unsigned)S->dense_fp[si]);
		rc |= pb_record_set(&r->dense_fingerprint, buf);
	}
	rc |= pb_record_set(&r->blas, pb_blas_name());
	r->numerics = PB_NUMERICS;
	/* The machine it ran on: on a cluster, which node to look at. */
	if (!gethostname(host, sizeof host)) {
		host[sizeof host - 1] = '\0';
		rc |= pb_record_set(&r->host, host);
	}
	rc |= pb_record_set(&r->finished, when);
	if (wrote_curve && asprintf(&curve, "cells/%s.csv", c->id) < 0) {
		curve = NULL;
		rc |= PB_ENOMEM;
	}
	rc |= pb_record_set(&r->curve, curve);
	free(curve);
	return rc ? PB_ENOMEM : 0;
}

/* The id whose random streams cell c uses: its own, or with stream =
 * METHOD the id of METHOD's cell at the same target and seed. */
static const char *stream_id(const pbi_sweep *S, const pb_cell *c)
{
	const pb_experiment *e = S->e;
	const pb_exp_method *me = c->method_index >= 0 ?
		&e->methods[c->method_index] : NULL;

	if (!me || !me->stream[0])
		return c->id;
	for (int i = 0; i < S->n_cells; i++) {
		const pb_cell *o = &S->cells[i];

		if (o->method_index >= 0 && o->seed == c->seed &&
		    !strcmp(o->method, me->stream) &&
		    !strcmp(e->methods[o->method_index].target_text[
				    o->target_index],
			    me->target_text[c->target_index]))
			return o->id;
	}
	return c->id;
}

char *pbi_sweep_cell_file(const pbi_sweep *S, const pb_cell *c,
			  const char *ext)
{
	char *p;

	if (asprintf(&p, "%s/%s%s", S->cells_dir, c->id, ext) < 0)
		return NULL;
	return p;
}

void pbi_sweep_run_one(pbi_sweep *S, const pb_cell *c, int slot,
		       pb_cell_result *res)
{
	const pb_experiment *e = S->e;
	const pb_exp_method *me = c->method_index >= 0 ?
		&e->methods[c->method_index] : NULL;
	const int si = seed_index(e, c->seed);
	cell_status cs = { S, c, slot };
	pb_cell_env env = { 0 };
	pb_target sens;
	pb_error err = { 0 };
	char *base = pbi_sweep_cell_file(S, c, "");
	char *logp = pbi_sweep_cell_file(S, c, ".log");
	char *stream = NULL;
	FILE *log = NULL;

	if (!base || !logp || asprintf(&stream, "%s|%s|%lu", e->name,
				       stream_id(S, c), c->seed) < 0) {
		stream = NULL;
		pb_error_set(&err, PB_ENOMEM, "out of memory");
	} else if (si < 0 || !S->dense[si]) {
		pb_error_set(&err, si < 0 ? PB_EINVAL : S->dense_rc[si], "%s",
			     si < 0 ? "seed not in the experiment" :
			     S->dense_msg[si]);
	}
	if (err.code) {
		memset(res, 0, sizeof *res);
		pb_record_init(&res->rec);
		res->rec.status = PB_CELL_FAILED;
		pb_record_set(&res->rec.error, err.msg);
		goto out;
	}
	/* A child process appends: its parent made the log and points the
	 * child's own stdout and stderr at it. */
	log = fopen(logp, S->child ? "a" : "w");
	/* layers = sensitivity:D: the target with the scan's amounts (the
	 * scan is in the cache: the sweep made it before the cells). */
	if (me && me->sens_drop >= 0 &&
	    pbi_sens_target(e, me, c->target_index, c->seed, S->dense[si],
			    &S->sp, S->inner, log, &sens, &err)) {
		memset(res, 0, sizeof *res);
		pb_record_init(&res->rec);
		res->rec.status = PB_CELL_FAILED;
		pb_record_set(&res->rec.error, err.msg);
		if (log)
			fprintf(log, "failed: %s\n", err.msg);
		goto out;
	}
	env.dense = S->dense[si];
	env.dense_points = S->dense_base[si];
	env.dense_curve = S->dense_csv[si];
	env.splits = &S->sp;
	env.dense_recipe = &e->dense;
	env.finetune = &e->finetune;
	env.eval_batch = e->dense.eval_batch;
	env.kind = c->kind;
	if (me) {
		env.pruner = pb_plugin_pruner(me->plugin);
		env.options = me->options;
		env.target = me->sens_drop >= 0 ? &sens :
			     &me->targets[c->target_index];
		env.plan = &me->plan;
		env.matched = me->matched;
		env.scratch_b_cap = me->scratch_b_cap;
		if (me->plan.schedule == PB_PRUNE_ITERATIVE &&
		    me->sens_drop < 0)
			env.trunk_hi = &me->targets[pbi_method_trunk_hi(
				e, me, c->target_index)];
	}
	env.trunk_dir = e->cache;
	env.latency = e->latency;
	env.quantize = pbi_cell_int8(e, c->method_index, &env.quant_act);
	env.stream = stream;
	env.seed = c->seed;
	env.has_seed = 1;
	env.out = base;
	env.files = base;
	env.log = log;
	env.label = c->id;
	env.status = on_status;
	env.status_user = &cs;
	if (S->child && S->o->control_fd > 0) {
		env.spare_threads = read_grant;
		env.spare_user = S;
	}
	pb_cell_run(&env, res, &err);
out:
	res->rec.threads = S->inner;
	if (log)
		fclose(log);
	free(stream);
	free(base);
	free(logp);
}

void pbi_sweep_finish(pbi_sweep *S, const pb_cell *c, pb_record *r)
{
	pb_error werr = { 0 };
	char eta[32], line[256];
	int dup = 0;

#pragma omp critical(pb_sweep_write)
	pbi_sweep_append(S, c, r, &dup, &werr);
#pragma omp critical(pb_sweep_progress)
	{
		S->done++;
		if (werr.msg[0]) {
			r->status = PB_CELL_FAILED;
			pb_record_set(&r->error, werr.msg);
		}
		if (dup) {
			/* Another run (a shard started twice, say) recorded
			 * it first: one line per run of a cell, never two. */
			S->sum->duplicates++;
			snprintf(line, sizeof line, "already recorded by "
				 "another run; not recorded again");
		} else if (r->status == PB_CELL_OK) {
			S->sum->ok++;
			snprintf(line, sizeof line, "ok  top-1 %.2f%% -> %.2f%%",
				 100 * r->acc_before, 100 * r->acc_after);
		} else {
			if (r->status == PB_CELL_DIVERGED)
				S->sum->diverged++;
			else if (r->status == PB_CELL_CRASHED)
				S->sum->crashed++;
			else
				S->sum->failed++;
			snprintf(line, sizeof line, "%s%s: %.200s",
				 r->status == PB_CELL_DIVERGED ? "DIVERGED" :
				 r->status == PB_CELL_CRASHED ? "CRASHED" :
				 "FAILED", werr.msg[0] ? " (not recorded)" : "",
				 r->error ? r->error : "");
		}
		pbi_sweep_eta(S, eta, sizeof eta);
		pbi_progress_line(&S->prog, "[%d/%d] %s  %s  (%.1fs, ETA %s)",
				  S->done, S->total, c->id, line,
				  r->time_total_s, eta);
	}
}

/* ---- which cells to run ------------------------------------------------------ */

/* A cell is done when a record of it says so: ok or diverged (a result),
 * or anything at all with --no-retry. A failed or crashed cell runs
 * again; its new line supersedes the old one in the table. */
static int is_done(const pb_record *recs, int n, const char *id,
		   int no_retry)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(recs[i].id, id) &&
		    (no_retry || recs[i].status == PB_CELL_OK ||
		     recs[i].status == PB_CELL_DIVERGED))
			return 1;
	return 0;
}

/* One line of --dry-run: what the cell is and, so that a control can be
 * checked before hours are spent on it, whose draws it shares and which
 * extra row it adds. */
static void list_cell(const pbi_sweep *S, FILE *f, const pb_cell *c,
		      int done)
{
	const pb_exp_method *me = c->method_index >= 0 ?
		&S->e->methods[c->method_index] : NULL;
	const char *sid = stream_id(S, c);

	fprintf(f, "%-5s %-9s %s", done ? "done" : "todo",
		pb_cell_kind_name(c->kind), c->id);
	if (strcmp(sid, c->id))
		fprintf(f, "  draws as %s", sid);
	if (me && me->matched)
		fprintf(f, "  + dense, same training");
	fputc('\n', f);
}

/* The selected cells not yet recorded, into todo; the counts into sum.
 * A line that does not validate is not a record, so its cell runs again
 * (the table skips it by the same rule). */
static int plan_cells(pbi_sweep *S, const pb_cell *cells, int n, int *todo,
		      int *n_todo, pb_error *err)
{
	pb_record *recs = NULL;
	int n_recs = 0, rc;

	if ((rc = pb_records_read(S->jsonl, 1, &recs, &n_recs, NULL, NULL,
				  err)))
		return rc;
	*n_todo = 0;
	S->sum->total = S->sum->skipped = 0;
	for (int i = 0; i < n; i++) {
		if (!pbi_sweep_selected(S, &cells[i]))
			continue;
		S->sum->total++;
		if (is_done(recs, n_recs, cells[i].id, S->o->no_retry))
			S->sum->skipped++;
		else
			todo[(*n_todo)++] = i;
	}
	if (S->o->dry_run) {
		FILE *f = S->o->list ? S->o->list : stdout;
		unsigned char *done = calloc((size_t)(n ? n : 1), 1);

		for (int i = 0; i < n; i++) {
			if (!pbi_sweep_selected(S, &cells[i]))
				continue;
			if (done)
				done[i] = (unsigned char)is_done(recs, n_recs,
					cells[i].id, S->o->no_retry);
			list_cell(S, f, &cells[i],
				  is_done(recs, n_recs, cells[i].id,
					  S->o->no_retry));
		}
		fprintf(f, "output %s\ncache  %s\n", S->e->output,
			S->e->cache);
		rc = done ? pbi_sweep_estimate(S, cells, n, done, f, err) :
		     pb_error_set(err, PB_ENOMEM, "out of memory");
		free(done);
		if (rc) {
			pb_records_free(recs, n_recs);
			return rc;
		}
	}
	pbi_sweep_note_seen(S, n, recs, n_recs);
	pb_records_free(recs, n_recs);
	return 0;
}

/* Every cell of todo, in parallel: in child processes when the options
 * name a program, else on OpenMP threads of this process. */
static int run_cells(pbi_sweep *S, const pb_cell *cells, const int *todo,
		     int n_todo, int threads, pb_error *err)
{
	S->total = n_todo;
	S->t0 = pbi_now();
	S->threads = threads;
	S->outer = n_todo < threads ? n_todo : threads;
	S->inner = S->o->inner_threads > 0 ? S->o->inner_threads :
		   (threads / S->outer > 0 ? threads / S->outer : 1);
	if (S->o->cell_exec)
		return pbi_sweep_spawn(S, cells, todo, n_todo, err);
	pbi_blas_set_threads(S->outer > 1 ? 1 : S->inner);
#pragma omp parallel for schedule(dynamic) num_threads(S->outer)
	for (int i = 0; i < n_todo; i++) {
		const pb_cell *c = &cells[todo[i]];
		pb_cell_result res;

		omp_set_num_threads(S->inner);
		pbi_sweep_run_one(S, c, omp_get_thread_num(), &res);
		if (pbi_sweep_identify(S, c, &res.rec, res.wrote_curve))
			pb_record_set(&res.rec.error, "out of memory");
		pbi_sweep_finish(S, c, &res.rec);
		pb_cell_result_free(&res);
	}
	return 0;
}

int pb_experiment_run(const pb_experiment *e, const pb_run_opts *o,
		      pb_run_summary *sum, pb_error *err)
{
	static const pb_run_opts no_opts;
	pb_run_summary own = { 0 };
	pb_cell *cells = NULL;
	int n = 0, *todo = NULL, n_todo = 0, rc, threads, lock_fd = -1;
	pbi_sweep S = { 0 };
	const int dense_only = o && o->phase == PB_PHASE_DENSE;

	S.e = e;
	S.o = o ? o : &no_opts;
	S.sum = sum ? sum : &own;
	memset(S.sum, 0, sizeof *S.sum);
	S.t0 = pbi_now();
	pbi_progress_init(&S.prog, S.o->progress);
	if ((rc = pb_experiment_cells(e, &cells, &n, err)))
		return rc;
	S.cells = cells;
	S.n_cells = n;
	S.jsonl = pbi_path_join(e->output, "runs.jsonl");
	S.cells_dir = pbi_path_join(e->output, "cells");
	todo = malloc(sizeof *todo * (size_t)(n ? n : 1));
	if (!S.jsonl || !S.cells_dir || !todo) {
		rc = pb_error_set(err, PB_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = pbi_sweep_shards(&S, cells, n, err)) ||
	    (rc = plan_cells(&S, cells, n, todo, &n_todo, err)))
		goto out;
	if (S.o->only && !S.sum->total) {
		rc = pb_error_set(err, PB_ENOTFOUND, "--only %s: no such method "
				  "in %s (methods are dense, dense+ft and the "
				  "NAME of each [prune.NAME])", S.o->only,
				  e->path);
		goto out;
	}
	if (S.o->dry_run)
		goto out;
	if (!n_todo) {
		pbi_progress_line(&S.prog, "%s: all %d cells%s are already in "
				  "%s%s", e->name, S.sum->total,
				  S.o->n_shards || S.o->has_seed ?
				  " of this run" : "", S.jsonl, dense_only ?
				  "; no dense model needed" : "");
		goto out;
	}
	/* The dense phase writes only to the cache (files renamed into
	 * place), never to runs.jsonl: it takes no lock. */
	if (!dense_only && ((rc = pbi_mkdirs(S.cells_dir, err)) ||
			    (rc = pbi_sweep_lock(&S, &lock_fd, err))))
		goto out;
	/* Again under the lock: a run that just finished may have added
	 * cells. */
	if (!dense_only &&
	    ((rc = plan_cells(&S, cells, n, todo, &n_todo, err)) || !n_todo))
		goto out;
	threads = S.o->threads > 0 ? S.o->threads : e->threads > 0 ?
		  e->threads : omp_get_num_procs();
	S.status = calloc((size_t)threads, sizeof *S.status);
	if (!S.status) {
		rc = pb_error_set(err, PB_ENOMEM, "out of memory");
		goto out;
	}
	if (S.o->n_shards)
		pbi_progress_line(&S.prog, "%s: %s %d of %d", e->name,
				  dense_only ? "dense phase, seeds of shard" :
				  "shard", S.o->shard, S.o->n_shards);
	pbi_progress_line(&S.prog, "%s: %d cells, %d already done, %d to run "
			  "with %d thread%s", e->name, S.sum->total,
			  S.sum->skipped, n_todo, threads,
			  threads > 1 ? "s" : "");
	if ((rc = pb_splits_load(&S.sp, &e->data, e->val_size, e->split_seed,
				 err)))
		goto out;
	S.have_splits = 1;
	if ((rc = pbi_sweep_points(&S, cells, todo, n_todo, err)))
		goto out;
	if (S.o->phase == PB_PHASE_CELLS &&
	    (rc = pbi_sweep_dense_ready(&S, cells, todo, n_todo, err)))
		goto out;
	omp_set_max_active_levels(2);
	if ((rc = pbi_sweep_dense(&S, cells, todo, n_todo, threads, err)) ||
	    (rc = pbi_sweep_scans(&S, cells, todo, n_todo, threads, err)))
		goto out;
	if (dense_only)
		rc = pbi_sweep_dense_done(&S, err);
	else
		rc = run_cells(&S, cells, todo, n_todo, threads, err);
out:
	if (lock_fd >= 0)
		close(lock_fd);   /* releases the lock */
	S.sum->seconds = pbi_now() - S.t0;
	pbi_sweep_dense_free(&S);
	free(S.status);
	if (S.have_splits)
		pb_splits_free(&S.sp);
	free(todo);
	free(S.jsonl);
	free(S.cells_dir);
	free(S.shard_of);
	free(S.seen);
	pbi_sweep_appends_free(&S);
	free(cells);
	return rc;
}

/* ---- one cell in a child process ------------------------------------------- */

static int find_cell(const pb_cell *cells, int n, const char *id)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(cells[i].id, id))
			return i;
	return -1;
}

/* The whole line, however the pipe splits it. */
static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t w = write(fd, buf, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

int pb_experiment_run_cell(const pb_experiment *e, const char *id,
			   const pb_run_opts *o, int report_fd, pb_error *err)
{
	static const pb_run_opts no_opts;
	pb_run_summary sum = { 0 };
	pb_cell *cells = NULL;
	pb_cell_result res;
	pbi_sweep S = { 0 };
	char *line = NULL;
	size_t len = 0;
	int n = 0, i, rc, threads;

	S.e = e;
	S.o = o ? o : &no_opts;
	S.sum = &sum;
	S.child = 1;
	S.report_fd = report_fd;
	S.t0 = pbi_now();
	threads = S.o->threads > 0 ? S.o->threads : 1;
	if ((rc = pb_experiment_cells(e, &cells, &n, err)))
		return rc;
	S.cells = cells;
	S.n_cells = n;
	if ((i = find_cell(cells, n, id)) < 0) {
		rc = pb_error_set(err, PB_ENOTFOUND, "%s: no cell '%s' (see "
				  "prunebench run %s --dry-run)", e->path, id,
				  e->path);
		goto out;
	}
	S.cells_dir = pbi_path_join(e->output, "cells");
	S.jsonl = pbi_path_join(e->output, "runs.jsonl");
	if (!S.cells_dir || !S.jsonl) {
		rc = pb_error_set(err, PB_ENOMEM, "out of memory");
		goto out;
	}
	S.outer = 1;
	S.inner = threads;
	if ((rc = pb_splits_load(&S.sp, &e->data, e->val_size, e->split_seed,
				 err)))
		goto out;
	S.have_splits = 1;
	if ((rc = pbi_sweep_points(&S, cells, &i, 1, err)) ||
	    (rc = pbi_sweep_dense(&S, cells, &i, 1, threads, err)))
		goto out;
	/* As in-process: the cell's threads, and BLAS's beside them. */
	omp_set_num_threads(S.inner);
	pbi_blas_set_threads(S.inner);
	pbi_sweep_run_one(&S, &cells[i], 0, &res);
	if (pbi_sweep_identify(&S, &cells[i], &res.rec, res.wrote_curve) ||
	    pb_record_format(&res.rec, &line, &len, err))
		rc = err->msg[0] ? PB_EINVAL : pb_error_set(err, PB_ENOMEM,
							    "out of memory");
	else if (write_all(report_fd, "R ", 2) ||
		 write_all(report_fd, line, len))
		rc = pb_error_set(err, PB_EIO, "cannot report cell %s to the "
				  "sweep: %s", id, strerror(errno));
	free(line);
	pb_cell_result_free(&res);
out:
	pbi_sweep_dense_free(&S);
	if (S.have_splits)
		pb_splits_free(&S.sp);
	free(S.cells_dir);
	free(S.jsonl);
	free(cells);
	return rc;
}
