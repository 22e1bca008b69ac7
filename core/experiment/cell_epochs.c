/* How many epochs of training a cell does, and where: the one rule that
 * both the dry run (epochs and wall time of a sweep) and the Slurm
 * shard balancer (pb_cell_cost) read. Estimates made from the
 * experiment file alone, before any data or model is loaded; the rule
 * is in experiment.h. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "experiment/experiment_impl.h"
#include "plugin/trunk.h"
#include "prune/schedule.h"

/* Images in the training split: the training file less the validation
 * split. The file's size is known for the named data sets; a folder of
 * other files is taken to be the named set's size. */
double pbi_train_images(const pb_experiment *e)
{
	double n = !strcmp(e->data.kind, "synthetic") ? e->data.synthetic_n :
		   !strcmp(e->data.kind, "cifar10") ? 50000.0 : 60000.0;

	n -= e->val_size > 0 ? e->val_size : 0;
	return n > 0 ? n : 0;
}

static double steps_per_epoch(const pb_experiment *e, const pb_recipe *r)
{
	return (double)pb_recipe_steps_per_epoch(r, (long)pbi_train_images(e));
}

/* The core's rule for a plugin without an estimate hook: every number
 * option named "*_epochs" (a negative value: the dense recipe's epochs),
 * times the rounds when it has a number option `rate` in (0, 1) and the
 * target is a sparsity (ceil(log(1 - X) / log(1 - rate)) rounds). */
static void default_estimate(const pb_pruner *pr, const pb_options *o,
			     pb_estimate *q)
{
	static const char suffix[] = "_epochs";
	const size_t ls = sizeof suffix - 1;
	double epochs = 0.0, rounds = 1.0;
	const pb_target *t = q->target;

	for (int i = 0; i < pr->n_options; i++) {
		const pb_pruner_option *d = &pr->options[i];
		size_t ln = d->name ? strlen(d->name) : 0;
		double v;

		if (d->type != PB_OPT_INT && d->type != PB_OPT_DOUBLE)
			continue;
		v = pb_options_double(o, d->name);
		if (ln > ls && !strcmp(d->name + ln - ls, suffix))
			epochs += v < 0 ? q->dense_epochs : v;
		else if (!strcmp(d->name, "rate") && v > 0 && v < 1 &&
			 t->kind == PB_TARGET_SPARSITY && t->amount > 0 &&
			 t->amount < 1)
			/* Less a hair, so that a whole number of rounds
			 * computed in floating point is not taken for one
			 * more on another machine's libm. */
			rounds = ceil(log(1.0 - t->amount) / log(1.0 - v) -
				      1e-9);
	}
	q->epochs = epochs * (rounds > 1.0 ? rounds : 1.0);
}

/* Conv and linear layers of the experiment's model (0 when it does not
 * load: the file was read when the experiment was). */
static int weight_layers(const pb_experiment *e)
{
	pb_error err = { 0 };
	pb_model *m = NULL;
	int n = 0;

	if (pb_model_load(&m, e->model_path, &err))
		return 0;
	for (int i = 0; i < pb_model_n_layers(m); i++)
		n += pb_model_layer(m, i)->type == PB_LAYER_CONV ||
		     pb_model_layer(m, i)->type == PB_LAYER_LINEAR;
	pb_model_free(m);
	return n;
}

/* One call of method m's plugin at target t. */
static void plugin_estimate(const pb_experiment *e, const pb_exp_method *m,
			    const pb_target *t, pb_estimate *q)
{
	const pb_pruner *pr = pb_plugin_pruner(m->plugin);

	memset(q, 0, sizeof *q);
	q->target = t;
	q->dense_epochs = e->dense.epochs > 0 ? e->dense.epochs : 0.0;
	q->finetune_epochs = e->finetune.epochs > 0 ? e->finetune.epochs : 0.0;
	q->dense_steps_per_epoch = steps_per_epoch(e, &e->dense);
	q->finetune_steps_per_epoch = steps_per_epoch(e, &e->finetune);
	q->weight_layers = weight_layers(e);
	q->opaque = m->options;
	if (!pr)
		return;
	if (!pr->estimate || pr->estimate(q)) {
		q->epochs = q->trunk_epochs = 0.0;
		q->trunk_rounds = 0;
		default_estimate(pr, m->options, q);
	}
	if (q->trunk_epochs > q->epochs)
		q->trunk_epochs = q->epochs;
}

int pbi_method_trunk_hi(const pb_experiment *e, const pb_exp_method *m,
			int t)
{
	int hi = t;

	(void)e;
	if (m->plan.schedule != PB_PRUNE_ITERATIVE || m->sens_drop >= 0)
		return t;
	for (int i = 0; i < m->n_targets; i++) {
		const pb_target *a = &m->targets[i], *b = &m->targets[t];

		if (a->kind != b->kind || a->scope != b->scope ||
		    a->n_overrides != b->n_overrides ||
		    memcmp(a->overrides, b->overrides,
			   sizeof a->overrides[0] * (size_t)a->n_overrides))
			continue;
		if (a->amount > m->targets[hi].amount)
			hi = i;
	}
	return hi;
}

int pb_cell_epochs(const pb_experiment *e, const pb_cell *c,
		   pb_epochs *out)
{
	const pb_exp_method *m = c->method_index >= 0 &&
				 c->method_index < e->n_methods ?
				 &e->methods[c->method_index] : NULL;
	const pb_pruner *pr = m ? pb_plugin_pruner(m->plugin) : NULL;
	const double F = e->finetune.epochs > 0 ? e->finetune.epochs : 0.0;
	const double D = e->dense.epochs > 0 ? e->dense.epochs : 0.0;
	const pb_target *t;
	pb_estimate q;
	double P, P_trunk, calls = 1.0;

	memset(out, 0, sizeof *out);
	if (c->kind == PB_CELL_DENSE || !m) {
		if (c->kind == PB_CELL_DENSE)
			out->dense = D;
		else
			out->finetune = F;
		return 0;
	}
	t = &m->targets[c->target_index];
	plugin_estimate(e, m, t, &q);
	P = 0.0;
	P_trunk = 0.0;
	if (m->plan.schedule == PB_PRUNE_ITERATIVE && m->plan.rounds > 1) {
		const int hi = pbi_method_trunk_hi(e, m, c->target_index);
		const int K = pbi_trunk_rounds(&m->targets[hi], t->amount,
					       m->plan.rounds);
		const double RE = m->plan.round_epochs >= 0 ?
				  m->plan.round_epochs : F;

		/* K trunk rounds, each a prune and its training, then the
		 * target's own round. */
		calls = K + 1;
		P = K * RE;
		P_trunk = K * (RE + q.epochs);
		out->trunk_rounds = K;
	} else if (pr && pr->trunk_final_options) {
		P_trunk = q.trunk_epochs;
		out->trunk_rounds = q.trunk_rounds;
	}
	P += calls * q.epochs;
	out->prune = P;
	if (c->kind == PB_CELL_SCRATCH_B) {
		/* The dense epochs times dense/pruned MACs (1/(1 - amount)
		 * for a MACs target), capped as the cell caps them. */
		double cap = m->scratch_b_cap > 0 ? m->scratch_b_cap : 2.0;
		double f = t->amount < 1 ? 1.0 / (1.0 - t->amount) : cap;

		out->scratch = D * (f < 1.0 ? 1.0 : f > cap ? cap : f);
	} else if (c->kind == PB_CELL_SCRATCH || (pr && pr->at_init)) {
		/* At initialisation: pruned once, then trained with the
		 * dense recipe instead of a fine-tune. */
		out->scratch = D;
	}
	if (pr && pr->at_init)
		return 0;
	out->trunk = P_trunk;
	if (c->kind != PB_CELL_SCRATCH && c->kind != PB_CELL_SCRATCH_B) {
		out->finetune = F;
		if (m->matched) {
			out->matched = P + F;
			out->matched_trunk = P_trunk;
		}
	}
	return 0;
}

double pb_cell_epochs_total(const pb_epochs *x)
{
	return x->dense + x->prune + x->finetune + x->matched + x->scratch;
}

int pbi_trunk_group(const pb_experiment *e, const pb_cell *c, char *buf,
		    size_t n)
{
	const pb_exp_method *m = c->method_index >= 0 ?
				 &e->methods[c->method_index] : NULL;
	const pb_pruner *pr = m ? pb_plugin_pruner(m->plugin) : NULL;
	const pb_target *t;
	char opts[1024];
	size_t k;

	if (!pr || (c->kind != PB_CELL_PRUNE && c->kind != PB_CELL_SCRATCH &&
	    c->kind != PB_CELL_SCRATCH_B))
		return 0;
	if (m->plan.schedule != PB_PRUNE_ITERATIVE && !pr->trunk_final_options)
		return 0;
	t = &m->targets[m->plan.schedule == PB_PRUNE_ITERATIVE ?
			pbi_method_trunk_hi(e, m, c->target_index) :
			c->target_index];
	pbi_trunk_options(pr, m->options, opts, sizeof opts);
	k = (size_t)snprintf(buf, n, "%s|%s|%s|%d|%d:%d:%.17g|%d|",
			     pr->name, pr->version ? pr->version : "", opts,
			     (int)m->scope, (int)m->plan.schedule,
			     m->plan.rounds, m->plan.round_epochs, t->kind);
	if (m->plan.schedule == PB_PRUNE_ITERATIVE && k < n)
		k += (size_t)snprintf(buf + k, n - k, "hi=%.17g|", t->amount);
	for (int i = 0; i < t->n_overrides && k < n; i++)
		k += (size_t)snprintf(buf + k, n - k, "%s=%.17g,",
				      t->overrides[i].layer,
				      t->overrides[i].amount);
	return 1;
}
