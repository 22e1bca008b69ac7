/* Channel surgery: removing channels physically. The graph is rebuilt with
 * fewer output channels in each pruned group's producers (so the
 * consumers' inputs shrink with them) and the kept slices of every tensor
 * are copied over, which gives an ordinary, smaller dense model that runs
 * faster for real. Also the cost of such a model without building it. */
#include <stdlib.h>
#include <string.h>

#include "nn/mask.h"
#include "nn/model_impl.h"
#include "prune/prune_impl.h"

/* Which group each layer belongs to, in each role. */
struct roles {
	int *out;      /* group of a producer's outputs, -1 for none */
	int *bn;       /* group a BN normalises */
	int *in;       /* group a consumer reads */
	int *in_fan;   /* features per channel at that consumer */
};

static void roles_free(struct roles *r)
{
	free(r->out);
	free(r->bn);
	free(r->in);
	free(r->in_fan);
}

static int roles_fill(struct roles *r, const pb_model *m,
		      const pb_channel_group *groups, int n_groups,
		      pb_error *err)
{
	int n = m->n_nodes;

	r->out = malloc((size_t)n * sizeof *r->out);
	r->bn = malloc((size_t)n * sizeof *r->bn);
	r->in = malloc((size_t)n * sizeof *r->in);
	r->in_fan = malloc((size_t)n * sizeof *r->in_fan);
	if (!r->out || !r->bn || !r->in || !r->in_fan)
		return pb_error_set(err, PB_ENOMEM, "out of memory (surgery)");
	for (int i = 0; i < n; i++) {
		r->out[i] = r->bn[i] = r->in[i] = -1;
		r->in_fan[i] = 1;
	}
	/* The groups may come from the caller: check that they still describe
	 * this model, so stale groups fail here rather than corrupt memory. */
	for (int g = 0; g < n_groups; g++) {
		const pb_channel_group *gr = &groups[g];
		for (int k = 0; k < gr->n_producers; k++) {
			int l = gr->producers[k];
			if (l < 0 || l >= n || m->nodes[l].info.out_c !=
						       gr->n_channels)
				return pb_error_set(err, PB_EINVAL,
						    "channel group %d does not "
						    "match model %s (producer "
						    "%d); derive the groups "
						    "again after the model "
						    "changed", g, m->name, l);
			r->out[l] = g;
		}
		for (int k = 0; k < gr->n_bns; k++) {
			int l = gr->bns[k];
			if (l < 0 || l >= n)
				return pb_error_set(err, PB_EINVAL,
						    "channel group %d: bad BN "
						    "layer %d", g, l);
			r->bn[l] = g;
		}
		for (int k = 0; k < gr->n_consumers; k++) {
			int l = gr->consumers[k];
			if (l < 0 || l >= n || gr->fanout[k] < 1)
				return pb_error_set(err, PB_EINVAL,
						    "channel group %d: bad "
						    "consumer layer %d", g, l);
			r->in[l] = g;
			r->in_fan[l] = gr->fanout[k];
		}
	}
	return 0;
}

/* ---- cost ---------------------------------------------------------------- */

void pbi_config_cost(const pb_model *m, const pb_channel_group *groups,
		     int n_groups, const int *kept, uint64_t *params,
		     uint64_t *macs)
{
	int n = m->n_nodes;
	int *oc = malloc((size_t)n * sizeof *oc);
	int *gout = malloc((size_t)n * sizeof *gout);
	uint64_t p = 0, f = 0;

	if (!oc || !gout) {
		free(oc);
		free(gout);
		*params = *macs = 0;
		return;
	}
	for (int i = 0; i < n; i++)
		gout[i] = -1;
	for (int g = 0; g < n_groups; g++)
		for (int k = 0; k < groups[g].n_producers; k++)
			if (groups[g].producers[k] >= 0 &&
			    groups[g].producers[k] < n)
				gout[groups[g].producers[k]] = g;
	/* The same shape inference as the build, on channel counts only:
	 * spatial sizes do not change when channels go. */
	for (int i = 0; i < n; i++) {
		const pbi_node *nd = &m->nodes[i];
		const pb_layer_info *li = &nd->info;
		int a = li->inputs[0];
		uint64_t in_c = a < 0 ? (uint64_t)m->in_c : (uint64_t)oc[a];
		uint64_t o, kk;

		switch (li->type) {
		case PB_LAYER_CONV:
		case PB_LAYER_LINEAR:
			o = (uint64_t)li->out_c;
			if (gout[i] >= 0 && kept)
				o = (uint64_t)kept[gout[i]];
			oc[i] = (int)o;
			/* A linear's input is flat: in_c is its length. */
			kk = li->type == PB_LAYER_CONV ?
				     (uint64_t)li->kernel * li->kernel : 1;
			p += o * in_c * kk + (li->has_bias ? o : 0);
			f += o * in_c * kk * (uint64_t)li->out_h *
			     (uint64_t)li->out_w;
			break;
		case PB_LAYER_FLATTEN:
			oc[i] = (int)(in_c * (uint64_t)li->in_h *
				      (uint64_t)li->in_w);
			break;
		case PB_LAYER_BN:
			oc[i] = (int)in_c;
			p += 2 * in_c;
			break;
		default:
			oc[i] = (int)in_c;
			break;
		}
	}
	free(oc);
	free(gout);
	*params = p;
	*macs = f;
}

/* ---- surgery ------------------------------------------------------------- */

/* The old indices of the kept entries of a dimension of size n that
 * belongs to group g (-1: none) with `fan` features per channel, in
 * order; *len gets the new size. NULL when out of memory. */
static int *kept_map(const pb_channel_group *groups, const uint8_t *const *keep,
		     int g, int n, int fan, int *len)
{
	int *map = malloc(((size_t)n ? (size_t)n : 1) * sizeof *map);
	int k = 0;

	if (!map)
		return NULL;
	if (g < 0 || !keep[g]) {
		for (int i = 0; i < n; i++)
			map[i] = i;
		*len = n;
		return map;
	}
	for (int c = 0; c < groups[g].n_channels; c++) {
		if (!keep[g][c])
			continue;
		for (int s = 0; s < fan; s++)
			map[k++] = c * fan + s;
	}
	*len = k;
	return map;
}

/* dst[o][c][:] = src[om[o]][im[c]][:], src having src_in rows of `inner`
 * floats per output. */
static void gather(float *dst, const float *src, const int *om, int n_out,
		   const int *im, int n_in, int src_in, int inner)
{
	for (int o = 0; o < n_out; o++)
		for (int c = 0; c < n_in; c++)
			memcpy(dst + ((size_t)o * n_in + c) * inner,
			       src + ((size_t)om[o] * src_in + im[c]) * inner,
			       (size_t)inner * sizeof *dst);
}

static void gather1(float *dst, const float *src, const int *map, int n)
{
	for (int i = 0; i < n; i++)
		dst[i] = src[map[i]];
}

/* Copies the kept slices of one tensor, and of its mask when it has one
 * (any trainable tensor may carry a mask, though usually only weights
 * do). A 1-D tensor (bias, BN) is indexed by om alone. */
static int copy_param(const pb_model *m, pb_model *nm, int oi, int ni,
		      const int *om, int n_out, const int *im, int n_in,
		      int src_in, int inner, pb_error *err)
{
	const pb_param *op = &m->params[oi];
	pb_param *np = &nm->params[ni];
	const float *omask;
	float *nmask;

	if (im)
		gather(np->data, op->data, om, n_out, im, n_in, src_in, inner);
	else
		gather1(np->data, op->data, om, n_out);
	if (!op->trainable)
		return 0;
	/* Looking a mask up (create = 0) does not change the model. */
	omask = pbi_mask_get((pb_model *)m, op, 0);
	if (!omask)
		return 0;
	nmask = pbi_mask_get(nm, np, 1);
	if (!nmask)
		return pb_error_set(err, PB_ENOMEM, "out of memory (mask of %s)",
				    np->name);
	if (im)
		gather(nmask, omask, om, n_out, im, n_in, src_in, inner);
	else
		gather1(nmask, omask, om, n_out);
	return 0;
}

/* Copies the kept slices of layer i's tensors (and masks) from m into
 * nm. */
static int copy_layer(const pb_model *m, pb_model *nm, int i,
		      const struct roles *r, const pb_channel_group *groups,
		      const uint8_t *const *keep, pb_error *err)
{
	const pbi_node *on = &m->nodes[i];
	const pbi_node *nn = &nm->nodes[i];
	const pb_layer_info *li = &on->info;
	int *om = NULL, *im = NULL, n_out = 0, n_in = 0, rc = 0;

	if (li->type == PB_LAYER_CONV || li->type == PB_LAYER_LINEAR) {
		int conv = li->type == PB_LAYER_CONV;
		int src_in = conv ? li->in_c : (int)on->in_n;
		int inner = conv ? li->kernel * li->kernel : 1;

		om = kept_map(groups, keep, r->out[i], li->out_c, 1, &n_out);
		im = kept_map(groups, keep, r->in[i], src_in,
			      conv ? 1 : r->in_fan[i], &n_in);
		if (!om || !im) {
			rc = pb_error_set(err, PB_ENOMEM,
					  "out of memory (surgery)");
		} else {
			rc = copy_param(m, nm, on->weight, nn->weight, om,
					n_out, im, n_in, src_in, inner, err);
			if (!rc && on->bias >= 0)
				rc = copy_param(m, nm, on->bias, nn->bias, om,
						n_out, NULL, 0, 0, 0, err);
		}
	} else if (li->type == PB_LAYER_BN) {
		const int oidx[4] = { on->gamma, on->beta, on->run_mean,
				      on->run_var };
		const int nidx[4] = { nn->gamma, nn->beta, nn->run_mean,
				      nn->run_var };

		om = kept_map(groups, keep, r->bn[i], li->out_c, 1, &n_out);
		if (!om)
			rc = pb_error_set(err, PB_ENOMEM,
					  "out of memory (surgery)");
		for (int k = 0; k < 4 && !rc; k++)
			rc = copy_param(m, nm, oidx[k], nidx[k], om, n_out,
					NULL, 0, 0, 0, err);
	}
	free(om);
	free(im);
	return rc;
}

static int check_keep(const pb_model *m, const pb_channel_group *groups,
		      int n_groups, const uint8_t *const *keep, pb_error *err)
{
	for (int g = 0; g < n_groups; g++) {
		const pb_channel_group *gr = &groups[g];
		const char *who = gr->n_producers ?
			m->nodes[gr->producers[0]].info.name : "?";
		int kept = 0;

		if (!keep[g])
			continue;
		for (int c = 0; c < gr->n_channels; c++)
			kept += keep[g][c] != 0;
		if (kept == 0)
			return pb_error_set(err, PB_EINVAL,
					    "removing every channel of group "
					    "%d ([%s]) would cut the network; "
					    "keep at least one", g, who);
		if (kept < gr->n_channels && !gr->prunable)
			return pb_error_set(err, PB_EINVAL,
					    "group %d ([%s]) is not prunable "
					    "(the classes, or channels tied to "
					    "the model input); keep all its %d "
					    "channels", g, who,
					    gr->n_channels);
	}
	return 0;
}

int pbi_remove_channels(const pb_model *m, const pb_channel_group *groups,
			int n_groups, const uint8_t *const *keep,
			pb_model **out, pb_error *err)
{
	struct roles r = { 0 };
	pb_layer_info *infos = NULL;
	pb_model *nm = NULL;
	int rc;

	*out = NULL;
	rc = roles_fill(&r, m, groups, n_groups, err);
	if (!rc)
		rc = check_keep(m, groups, n_groups, keep, err);
	if (rc)
		goto out;
	infos = malloc((size_t)m->n_nodes * sizeof *infos);
	if (!infos) {
		rc = pb_error_set(err, PB_ENOMEM, "out of memory (surgery)");
		goto out;
	}
	for (int i = 0; i < m->n_nodes; i++) {
		int g = r.out[i];
		infos[i] = m->nodes[i].info;
		if (g >= 0 && keep[g]) {
			int kept = 0;
			for (int c = 0; c < groups[g].n_channels; c++)
				kept += keep[g][c] != 0;
			infos[i].out_c = kept;
		}
	}
	rc = pbi_model_build(&nm, m->name, m->in_c, m->in_h, m->in_w,
			     m->classes, infos, m->n_nodes, m->source, err);
	if (rc) {
		pb_error_prefix(err, "rebuilding %s with fewer channels: ",
				m->name);
		goto out;
	}
	for (int i = 0; i < m->n_nodes && !rc; i++)
		rc = copy_layer(m, nm, i, &r, groups, keep, err);
	if (rc)
		goto out;
	*out = nm;
	nm = NULL;
out:
	pb_model_free(nm);
	free(infos);
	roles_free(&r);
	return rc;
}
