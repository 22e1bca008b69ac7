/* Sparse inference sessions: which layers of a model run on the sparse
 * kernels, and their compressed weights (declared in model_impl.h).
 *
 * Why a session rather than a cache checked on every forward: deciding
 * and compressing reads every weight, which costs as much as a batch-1
 * forward of a sparse model; and plugins may write weights through
 * their pointers at any time, so no cheap check could tell that a cache
 * went stale. The callers that run many eval forwards on fixed weights
 * (evaluation, latency measurement) open a session around them. */
#include <stdlib.h>

#include "nn/model_impl.h"
#include "nn/layers/sparse.h"

#define ALIGN_MIN_DENSITY 0.3

void pbi_model_sparse_end(pb_model *m)
{
	for (int i = 0; i < m->n_nodes; i++) {
		pbi_node *n = &m->nodes[i];

		if (!n->sparse)
			continue;
		pbi_sparse_w_free(&n->sparse->w);
		free(n->sparse);
		n->sparse = NULL;
	}
	m->sparse_on = 0;
}

/* The compressed weight of node n when it pays, else NULL in *out. */
static int layer_begin(pb_model *m, pbi_node *n, pbi_sparse_layer **out)
{
	const pb_layer_info *li = &n->info;
	const pb_param *p;
	pbi_sparse_layer *sl;
	size_t nnz;
	int pays, rc;

	*out = NULL;
	if ((li->type != PB_LAYER_CONV && li->type != PB_LAYER_LINEAR) ||
	    n->weight < 0)
		return 0;
	p = &m->params[n->weight];
	nnz = pbi_sparse_count(p->data, p->n);
	sl = calloc(1, sizeof *sl);
	if (!sl)
		return PB_ENOMEM;
	if (li->type == PB_LAYER_CONV) {
		pbi_sparse_geom_init(&sl->g, li->in_c, li->in_h, li->in_w,
				     li->out_c, li->kernel, li->stride,
				     li->pad);
		pays = pbi_sparse_conv_pays(&sl->g, nnz, p->n);
		/* Aligned loads pay for the layout's K shifted copies only
		 * where there are many of them (measured: ahead at density
		 * 0.5, behind at 0.1). */
		if ((double)nnz > ALIGN_MIN_DENSITY * (double)p->n)
			pbi_sparse_geom_align(&sl->g);
		rc = pays ? pbi_sparse_build_conv(&sl->w, p->data, &sl->g) : 0;
	} else {
		pays = pbi_sparse_linear_pays((int)n->in_n, li->out_c, nnz,
					      p->n);
		rc = pays ? pbi_sparse_build_linear(&sl->w, p->data,
						    (int)n->in_n, li->out_c) :
			    0;
	}
	if (rc || !pays) {
		free(sl);
		return rc;
	}
	*out = sl;
	return 0;
}

int pbi_model_sparse_begin(pb_model *m)
{
	int used = 0;

	pbi_model_sparse_end(m);
	if (!pbi_sparse_available())
		return 0;
	for (int i = 0; i < m->n_nodes; i++) {
		pbi_node *n = &m->nodes[i];

		if (layer_begin(m, n, &n->sparse)) {
			pbi_model_sparse_end(m);
			return PB_ENOMEM;
		}
		used += n->sparse != NULL;
	}
	m->sparse_on = 1;
	return used;
}
