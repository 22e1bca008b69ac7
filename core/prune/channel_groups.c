/* Channel groups: which output channels of which layers must be removed
 * together, derived from the model graph.
 *
 * Every conv and linear starts a "channel space" (its output channels, or
 * output neurons). BN, ReLU, dropout and the pools pass a space through
 * unchanged; flatten passes it on with each channel fanning out to H*W
 * features. An add ties the spaces of its two inputs: they are merged with
 * a union-find, so a ResNet's identity-shortcut chain puts the stem and
 * every block-output conv of a stage (and a projection conv) in one group.
 * The model input is a space of its own that can never be pruned; so is
 * whatever reaches the logits. */
#include <stdlib.h>
#include <string.h>

#include "nn/model_impl.h"
#include "prune/prune_impl.h"

struct derive {
	int n;            /* layers; space n is the model input */
	int *parent;      /* union-find over spaces (n + 1) */
	int *space;       /* space of each layer's output */
	int *fan;         /* features per channel in each layer's output */
	int *bad;         /* per space root: cannot be pruned */
	int *tied;        /* per space root: reached an add */
};

static int find(int *parent, int s)
{
	while (parent[s] != s) {
		parent[s] = parent[parent[s]];
		s = parent[s];
	}
	return s;
}

/* Merges two spaces, keeping the smaller index as root so the group order
 * (by first producer) does not depend on the order of adds. */
static void unite(struct derive *d, int a, int b)
{
	a = find(d->parent, a);
	b = find(d->parent, b);
	if (a == b)
		return;
	if (b < a) {
		int t = a;
		a = b;
		b = t;
	}
	d->parent[b] = a;
	d->bad[a] |= d->bad[b];
	d->tied[a] |= d->tied[b];
}

static int in_space(const struct derive *d, int input)
{
	return input < 0 ? d->n : d->space[input];
}

static int in_fan(const struct derive *d, int input)
{
	return input < 0 ? 1 : d->fan[input];
}

/* Follows the channel spaces through the graph in file order. */
static void walk(const pb_model *m, struct derive *d)
{
	for (int i = 0; i < m->n_nodes; i++) {
		const pb_layer_info *li = &m->nodes[i].info;
		int a = li->inputs[0];
		int sa = in_space(d, a), fa = in_fan(d, a);

		switch (li->type) {
		case PB_LAYER_CONV:
		case PB_LAYER_LINEAR:
			d->space[i] = i;
			d->fan[i] = 1;
			break;
		case PB_LAYER_FLATTEN:
			d->space[i] = sa;
			d->fan[i] = fa * li->in_h * li->in_w;
			break;
		case PB_LAYER_ADD: {
			int b = li->inputs[1];
			int sb = in_space(d, b), fb = in_fan(d, b);
			d->space[i] = sa;
			d->fan[i] = fa;
			if (fa != fb) {
				/* Channel c of one side would be features of
				 * several channels of the other: no channel
				 * correspondence, so neither side is pruned. */
				d->bad[find(d->parent, sa)] = 1;
				d->bad[find(d->parent, sb)] = 1;
				break;
			}
			unite(d, sa, sb);
			d->tied[find(d->parent, sa)] = 1;
			break;
		}
		case PB_LAYER_BN:
			d->space[i] = sa;
			d->fan[i] = fa;
			/* A BN on flattened features normalises features, not
			 * channels: removing a channel would not map onto it. */
			if (fa != 1)
				d->bad[find(d->parent, sa)] = 1;
			break;
		default:   /* relu, dropout, maxpool, avgpool */
			d->space[i] = sa;
			d->fan[i] = fa;
			break;
		}
	}
	/* The logits (classes) are never pruned, nor the model input. */
	d->bad[find(d->parent, d->space[m->n_nodes - 1])] = 1;
	d->bad[find(d->parent, d->n)] = 1;
}

static int add_member(int *list, int *n, int v, const pb_model *m,
		      const char *what, int layer, pb_error *err)
{
	for (int k = 0; k < *n; k++)
		if (list[k] == v)
			return 1;   /* already there: not an error */
	if (*n >= PB_GROUP_MAX_MEMBERS)
		return pb_error_set(err, PB_EINVAL,
				    "%s: channel group of [%s] has more than "
				    "%d %s; raise PB_GROUP_MAX_MEMBERS in "
				    "pruner.h", m->source,
				    m->nodes[layer].info.name,
				    PB_GROUP_MAX_MEMBERS, what);
	list[(*n)++] = v;
	return 0;
}

/* Group index of each space root, -1 for none (created on first producer,
 * so groups come in the order of their first producer). */
static int fill_groups(const pb_model *m, struct derive *d, int *gid,
		       pb_channel_group *gs, int *ng, pb_error *err)
{
	int rc;

	for (int s = 0; s <= d->n; s++)
		gid[s] = -1;
	*ng = 0;
	for (int i = 0; i < m->n_nodes; i++) {
		const pb_layer_info *li = &m->nodes[i].info;
		int r;
		pb_channel_group *g;

		if (li->type != PB_LAYER_CONV && li->type != PB_LAYER_LINEAR)
			continue;
		r = find(d->parent, i);
		if (gid[r] < 0) {
			g = &gs[*ng];
			memset(g, 0, sizeof *g);
			g->id = *ng;
			g->n_channels = li->out_c;
			g->prunable = !d->bad[r];
			g->residual = d->tied[r];
			gid[r] = (*ng)++;
		}
		g = &gs[gid[r]];
		rc = add_member(g->producers, &g->n_producers, i, m,
				"producers", i, err);
		if (rc < 0)
			return rc;
	}
	for (int i = 0; i < m->n_nodes; i++) {
		const pb_layer_info *li = &m->nodes[i].info;
		int r = find(d->parent, in_space(d, li->inputs[0]));
		pb_channel_group *g;

		if (gid[r] < 0)
			continue;   /* the model input's channels */
		g = &gs[gid[r]];
		if (li->type == PB_LAYER_BN) {
			rc = add_member(g->bns, &g->n_bns, i, m, "bns", i,
					err);
		} else if (li->type == PB_LAYER_CONV ||
			   li->type == PB_LAYER_LINEAR) {
			int k = g->n_consumers;
			rc = add_member(g->consumers, &g->n_consumers, i, m,
					"consumers", i, err);
			if (rc == 0)
				g->fanout[k] = in_fan(d, li->inputs[0]);
		} else {
			continue;
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

int pbi_groups_derive(const pb_model *m, pb_channel_group **groups,
		      int *n_groups, pb_error *err)
{
	struct derive d = { 0 };
	int n = m->n_nodes, ng = 0, rc = 0;
	int *gid = NULL;
	pb_channel_group *gs = NULL;

	*groups = NULL;
	*n_groups = 0;
	d.n = n;
	d.parent = malloc((size_t)(n + 1) * sizeof *d.parent);
	d.space = malloc((size_t)n * sizeof *d.space);
	d.fan = malloc((size_t)n * sizeof *d.fan);
	d.bad = calloc((size_t)n + 1, sizeof *d.bad);
	d.tied = calloc((size_t)n + 1, sizeof *d.tied);
	gid = malloc((size_t)(n + 1) * sizeof *gid);
	gs = calloc((size_t)n, sizeof *gs);
	if (!d.parent || !d.space || !d.fan || !d.bad || !d.tied || !gid ||
	    !gs) {
		rc = pb_error_set(err, PB_ENOMEM,
				  "out of memory (channel groups)");
		goto out;
	}
	for (int s = 0; s <= n; s++)
		d.parent[s] = s;
	walk(m, &d);
	rc = fill_groups(m, &d, gid, gs, &ng, err);
	if (rc)
		goto out;
	*groups = gs;
	*n_groups = ng;
	gs = NULL;
out:
	free(gs);
	free(gid);
	free(d.parent);
	free(d.space);
	free(d.fan);
	free(d.bad);
	free(d.tied);
	return rc;
}
