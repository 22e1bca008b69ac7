/* Expanding an experiment into cells, and the hashes that name them.
 *
 * A cell's id ends in 8 hex digits of a 64-bit FNV-1a hash of a canonical
 * text of everything that defines its numbers: the model file's contents,
 * the data and validation split, the dense recipe and seed, and for
 * derived cells the fine-tune recipe, plugin (name and version), its
 * options, target, scope, overrides, schedule and experiment name (which
 * seeds the cell's RNG stream). Change any of it and the cell gets a new
 * id, so old lines in runs.jsonl are never mistaken for the new cell. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "experiment/experiment_impl.h"
#include "prunebench/version.h"

/* ---- hashing -------------------------------------------------------------- */

uint64_t pb_fnv64(uint64_t h, const void *data, size_t n)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

unsigned long pbi_seed_from(const char *text)
{
	uint64_t h = pb_fnv64(PB_FNV64_INIT, text, strlen(text));
	unsigned long s = (unsigned long)((h ^ (h >> 32)) & 0xffffffffu);

	return s ? s : 1;
}

/* ---- cells ---------------------------------------------------------------- */

/* What defines the dense model of a seed (also the cache key). */
static size_t dense_canon(const pb_experiment *e, unsigned long seed,
			  char *buf, size_t n)
{
	char rec[1024];
	int k;

	pbi_recipe_canon(&e->dense, rec, sizeof rec);
	k = snprintf(buf, n, "dense v1|model=%016llx|data=%s:%s:%d:%lu|"
		     "val_size=%d|split_seed=%lu|recipe=%s|seed=%lu",
		     (unsigned long long)e->model_hash, e->data.kind,
		     e->data.dir, e->data.synthetic_n, e->data.synthetic_seed,
		     e->val_size, e->split_seed, rec, seed);
	return k < 0 ? 0 : (size_t)k < n ? (size_t)k : n - 1;
}

/* Room for the longest canonical texts: a data folder of 4095
 * characters, a recipe of 1024, and for a cell its fine-tune recipe,
 * plugin options (1024) and 64 overrides. A text cut short loses what
 * comes last, the seed: with a folder path of some 1700 characters every
 * seed got the same dense model (found in review; the experiment fuzz
 * harness now reads inputs through such a path). */
#define DENSE_CANON_MAX 8192
#define CELL_CANON_MAX 16384

void pb_experiment_dense_key(const pb_experiment *e, unsigned long seed,
			     char key[17])
{
	char buf[DENSE_CANON_MAX];
	size_t len = dense_canon(e, seed, buf, sizeof buf);
	/* The BLAS kernel too: OpenBLAS picks it per CPU or from
	 * OPENBLAS_CORETYPE, and two kernels sum in different orders, so
	 * they train different dense models (VGG-S's fc layer alone moves
	 * the quickstart's dense top-1 from 92.23% to 91.96%). Not part of
	 * the cells' ids: runs.jsonl records it per line instead. The
	 * engine's own arithmetic likewise (PB_NUMERICS). */
	const char *blas = pb_blas_name();
	uint64_t h = pb_fnv64(PB_FNV64_INIT, buf, len);
	char numerics[32];
	int len_n = snprintf(numerics, sizeof numerics, "|numerics=%d",
			     PB_NUMERICS);

	h = pb_fnv64(h, "|blas=", 6);
	h = pb_fnv64(h, blas, strlen(blas));
	h = pb_fnv64(h, numerics, (size_t)len_n);
	snprintf(key, 17, "%016llx", (unsigned long long)h);
}

static void method_canon(const pb_exp_method *m, int t, char *buf,
			 size_t n)
{
	const pb_pruner *pr = pb_plugin_pruner(m->plugin);
	char opts[1024];
	size_t k;

	pb_options_format(m->options, opts, sizeof opts);
	k = (size_t)snprintf(buf, n, "|plugin=%s|version=%s|options=%s|"
			     "target=%s|scope=%d|schedule=%d:%d:%.17g|"
			     "gradual=%.17g:%.17g:%d:%.17g|scratch=%d|ov=",
			     pr->name, pr->version ? pr->version : "",
			     opts, m->target_text[t], (int)m->scope,
			     (int)m->plan.schedule, m->plan.rounds, m->plan.round_epochs,
			     m->plan.gradual_begin, m->plan.gradual_epochs,
			     m->plan.gradual_steps, m->plan.gradual_initial, m->scratch);
	/* Only when set, so cells defined before the key keep their ids. */
	if (m->matched && k < n)
		k += (size_t)snprintf(buf + k, n - k, "matched=1|");
	/* An iterative schedule follows its method's trunk (issue 17):
	 * other rounds than before, so other ids. */
	if (m->plan.schedule == PB_PRUNE_ITERATIVE && k < n)
		k += (size_t)snprintf(buf + k, n - k, "trunk=1|");
	if (m->stream[0] && k < n)
		k += (size_t)snprintf(buf + k, n - k, "stream=%s|", m->stream);
	if (m->scratch == PB_SCRATCH_B && k < n)
		k += (size_t)snprintf(buf + k, n - k, "scratch_b_cap=%.17g|",
				      m->scratch_b_cap);
	if (m->sens_drop >= 0 && k < n) {
		k += (size_t)snprintf(buf + k, n - k, "sensitivity=%.17g:",
				      m->sens_drop);
		for (int i = 0; i < m->n_sens_levels && k < n; i++)
			k += (size_t)snprintf(buf + k, n - k, "%.17g,",
					      m->sens_levels[i]);
		if (k < n)
			k += (size_t)snprintf(buf + k, n - k, "|");
	}
	for (int i = 0; i < m->targets[t].n_overrides && k < n; i++)
		k += (size_t)snprintf(buf + k, n - k, "%s=%.17g,",
				      m->targets[t].overrides[i].layer,
				      m->targets[t].overrides[i].amount);
}

int pbi_cell_int8(const pb_experiment *e, int mi, int *act)
{
	const pb_exp_method *m = mi >= 0 ? &e->methods[mi] : NULL;

	*act = m && m->quant_act >= 0 ? m->quant_act : e->quant_act;
	return m && m->quantize >= 0 ? m->quantize : e->quantize;
}

static uint32_t cell_hash(const pb_experiment *e, pb_cell_kind kind,
			  int mi, int t, unsigned long seed)
{
	char buf[CELL_CANON_MAX], rec[1024];
	size_t len = dense_canon(e, seed, buf, sizeof buf);
	uint64_t h;

	len += (size_t)snprintf(buf + len, sizeof buf - len,
				"|kind=%s|experiment=%s",
				pb_cell_kind_name(kind), e->name);
	if (kind != PB_CELL_DENSE && len < sizeof buf) {
		pbi_recipe_canon(&e->finetune, rec, sizeof rec);
		len += (size_t)snprintf(buf + len, sizeof buf - len,
					"|finetune=%s", rec);
	}
	if (mi >= 0 && len < sizeof buf) {
		method_canon(&e->methods[mi], t, buf + len, sizeof buf - len);
		len = strlen(buf);
	}
	/* Only when set, so cells defined before the key keep their ids. */
	if (len < sizeof buf) {
		int act, q = pbi_cell_int8(e, mi, &act);

		if (q)
			len += (size_t)snprintf(buf + len, sizeof buf - len,
						"|int8=%s", act ? "act" :
						"weights");
	}
	if (len >= sizeof buf)
		len = sizeof buf - 1;
	h = pb_fnv64(PB_FNV64_INIT, buf, len);
	return (uint32_t)(h ^ (h >> 32));
}

static void fill(pb_cell *c, const pb_experiment *e, pb_cell_kind kind,
		 int mi, int t, unsigned long seed)
{
	memset(c, 0, sizeof *c);
	c->kind = kind;
	c->method_index = mi;
	c->target_index = t;
	c->seed = seed;
	c->hash = cell_hash(e, kind, mi, t, seed);
	if (mi < 0) {
		strcpy(c->method, kind == PB_CELL_DENSE ? "dense" : "dense+ft");
		snprintf(c->id, sizeof c->id, "%s-s%lu-%08x", c->method, seed,
			 c->hash);
	} else {
		snprintf(c->method, sizeof c->method, "%s",
			 e->methods[mi].name);
		snprintf(c->id, sizeof c->id, "%s-%s-s%lu-%08x", c->method,
			 e->methods[mi].target_text[t], seed, c->hash);
	}
}

int pb_experiment_cells(const pb_experiment *e, pb_cell **cells, int *n,
			pb_error *err)
{
	int total = e->n_seeds * (1 + (e->dense_ft ? 1 : 0)), k = 0;
	pb_cell *c;

	for (int i = 0; i < e->n_methods; i++)
		total += e->n_seeds * e->methods[i].n_targets;
	c = calloc((size_t)total, sizeof *c);
	*cells = NULL;
	*n = 0;
	if (!c)
		return pb_error_set(err, PB_ENOMEM, "out of memory (cells)");
	for (int s = 0; s < e->n_seeds; s++) {
		fill(&c[k++], e, PB_CELL_DENSE, -1, -1, e->seeds[s]);
		if (e->dense_ft)
			fill(&c[k++], e, PB_CELL_DENSE_FT, -1, -1, e->seeds[s]);
	}
	for (int i = 0; i < e->n_methods; i++)
		for (int t = 0; t < e->methods[i].n_targets; t++)
			for (int s = 0; s < e->n_seeds; s++)
				fill(&c[k++], e, e->methods[i].scratch ==
				     PB_SCRATCH_B ? PB_CELL_SCRATCH_B :
				     e->methods[i].scratch ? PB_CELL_SCRATCH :
				     PB_CELL_PRUNE, i, t, e->seeds[s]);
	*cells = c;
	*n = k;
	return 0;
}
