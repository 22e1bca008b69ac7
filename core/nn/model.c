/* Building a model graph from layer descriptions: the flat parameter
 * layout, clone, free and accessors. Shapes are inferred in
 * model_shapes.c, parameters initialised in model_init.c, files parsed
 * in model_ini.c, the graph run in model_run.c. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "prunebench/layers.h"
#include "prunebench/tensor.h"
#include "nn/model_impl.h"

/* ---- parameters ---------------------------------------------------------- */

static size_t align_up(size_t n)
{
	return (n + PBI_PARAM_ALIGN - 1) / PBI_PARAM_ALIGN * PBI_PARAM_ALIGN;
}

static const char *param_suffix(pb_param_kind k)
{
	switch (k) {
	case PB_PARAM_WEIGHT: return "weight";
	case PB_PARAM_BIAS: return "bias";
	/* PyTorch's state_dict names, so dumps compare directly. */
	case PB_PARAM_BN_GAMMA: return "weight";
	case PB_PARAM_BN_BETA: return "bias";
	case PB_PARAM_BN_MEAN: return "running_mean";
	case PB_PARAM_BN_VAR: return "running_var";
	case PB_PARAM_MASK: return "mask";
	case PB_PARAM_ACT_QUANT: return "act";
	}
	return "?";
}

static int add_param(pb_model *m, int layer, pb_param_kind kind, int ndim,
		     const int *shape, pb_error *err)
{
	pb_param *p = &m->params[m->n_params];
	const char *lname = m->nodes[layer].info.name;
	const char *suffix = param_suffix(kind);
	size_t len = strlen(lname) + strlen(suffix) + 2;
	char *name = malloc(len);

	if (!name)
		return pb_error_set(err, PB_ENOMEM, "out of memory (model)");
	snprintf(name, len, "%s.%s", lname, suffix);
	memset(p, 0, sizeof *p);
	p->name = name;
	p->kind = kind;
	p->layer = layer;
	p->ndim = ndim;
	p->n = 1;
	for (int d = 0; d < ndim; d++) {
		p->shape[d] = shape[d];
		p->n *= (size_t)shape[d];
	}
	p->trainable = kind != PB_PARAM_BN_MEAN && kind != PB_PARAM_BN_VAR;
	if (p->n > MAX_TENSOR_ELEMS) {
		int rc = pbi_layer_err(err, PB_EFORMAT, m->source,
				       &m->nodes[layer].info, "%s has %zu "
				       "elements, more than %zu", name, p->n,
				       MAX_TENSOR_ELEMS);

		/* Not counted in n_params, so pb_model_free would not free
		 * its name (found by fuzzing). */
		free(name);
		p->name = NULL;
		return rc;
	}
	return m->n_params++;
}

static int node_params(pb_model *m, int i, pb_error *err)
{
	pbi_node *n = &m->nodes[i];
	const pb_layer_info *li = &n->info;
	int k = li->kernel, c = li->in_c, oc = li->out_c;
	int cshape[4] = { oc, c, k, k };
	int lshape[2] = { oc, (int)n->in_n };
	int rc = 0;

	switch (li->type) {
	case PB_LAYER_CONV:
	case PB_LAYER_LINEAR:
		if (li->type == PB_LAYER_CONV)
			rc = n->weight = add_param(m, i, PB_PARAM_WEIGHT, 4,
						   cshape, err);
		else
			rc = n->weight = add_param(m, i, PB_PARAM_WEIGHT, 2,
						   lshape, err);
		if (rc >= 0 && li->has_bias)
			rc = n->bias = add_param(m, i, PB_PARAM_BIAS, 1, &oc,
						 err);
		break;
	case PB_LAYER_BN:
		rc = n->gamma = add_param(m, i, PB_PARAM_BN_GAMMA, 1, &c, err);
		if (rc >= 0)
			rc = n->beta = add_param(m, i, PB_PARAM_BN_BETA, 1, &c,
						 err);
		if (rc >= 0)
			rc = n->run_mean = add_param(m, i, PB_PARAM_BN_MEAN, 1,
						     &c, err);
		if (rc >= 0)
			rc = n->run_var = add_param(m, i, PB_PARAM_BN_VAR, 1,
						    &c, err);
		break;
	default:
		break;
	}
	return rc < 0 ? rc : 0;
}

/* Lays out every tensor in the flat arrays (sizes first, then pointers, so
 * there is exactly one allocation per array). */
static int layout_params(pb_model *m, pb_error *err)
{
	size_t tr = 0, st = 0;
	const pb_param *big = NULL;

	for (int i = 0; i < m->n_params; i++) {
		pb_param *p = &m->params[i];
		if (p->trainable)
			tr += align_up(p->n);
		else
			st += align_up(p->n);
		if (!big || p->n > big->n)
			big = p;
	}
	/* Every tensor may be within its own limit and the model still ask
	 * for more memory than any machine has: each layer of a file could
	 * hold 2^30 weights, and the weights and gradients are zeroed here,
	 * so such a file took the machine down (found by fuzzing) instead
	 * of being refused. */
	if (tr + st > MAX_MODEL_ELEMS)
		return pb_error_set(err, PB_EFORMAT, "%s: the model has %zu "
				    "parameters and statistics, more than the "
				    "%zu prunebench builds (the largest tensor, "
				    "%s, has %zu); use fewer or narrower "
				    "layers", m->source,
				    tr + st, MAX_MODEL_ELEMS, big->name,
				    big->n);
	m->n_train = tr;
	m->n_stats = st;
	m->data = pb_falloc(tr);
	m->grad = pb_falloc(tr);
	m->stats = pb_falloc(st);
	if (!m->data || !m->grad || !m->stats)
		return pb_error_set(err, PB_ENOMEM,
				    "out of memory (%zu parameters)", tr + st);
	tr = st = 0;
	for (int i = 0; i < m->n_params; i++) {
		pb_param *p = &m->params[i];
		if (p->trainable) {
			p->data = m->data + tr;
			p->grad = m->grad + tr;
			tr += align_up(p->n);
		} else {
			p->data = m->stats + st;
			st += align_up(p->n);
		}
	}
	return 0;
}

static int alloc_bn_saved(pb_model *m, pb_error *err)
{
	for (int i = 0; i < m->n_nodes; i++) {
		pbi_node *n = &m->nodes[i];
		if (n->info.type != PB_LAYER_BN)
			continue;
		n->bn_saved = pb_falloc(2 * (size_t)n->info.out_c);
		if (!n->bn_saved)
			return pb_error_set(err, PB_ENOMEM,
					    "out of memory (model)");
	}
	return 0;
}

/* ---- build --------------------------------------------------------------- */

static int copy_layers(pb_model *m, const pb_layer_info *layers, int n,
		       pb_error *err)
{
	m->nodes = calloc((size_t)n, sizeof *m->nodes);
	if (!m->nodes)
		return pb_error_set(err, PB_ENOMEM, "out of memory (model)");
	m->n_nodes = n;
	for (int i = 0; i < n; i++) {
		pbi_node *nd = &m->nodes[i];
		nd->info = layers[i];
		nd->name = strdup(layers[i].name ? layers[i].name : "");
		if (!nd->name)
			return pb_error_set(err, PB_ENOMEM,
					    "out of memory (model)");
		nd->info.name = nd->name;
		nd->weight = nd->bias = nd->gamma = nd->beta = -1;
		nd->run_mean = nd->run_var = -1;
		if (nd->info.type == PB_LAYER_DROPOUT)
			m->has_dropout = 1;
	}
	return 0;
}

static int build_graph(pb_model *m, const pb_layer_info *layers, int n,
		       pb_error *err)
{
	int rc;

	if (n < 1)
		return pb_error_set(err, PB_EFORMAT,
				    "%s: the model has no layers; add a "
				    "section per layer after [model]",
				    m->source);
	if (m->in_c < 1 || m->in_h < 1 || m->in_w < 1 || m->in_c > MAX_DIM ||
	    m->in_h > MAX_DIM || m->in_w > MAX_DIM || m->classes < 1)
		return pb_error_set(err, PB_EFORMAT,
				    "%s: [model] bad input shape %dx%dx%d or "
				    "classes %d (each dimension 1 to %d)",
				    m->source, m->in_c, m->in_h, m->in_w,
				    m->classes, MAX_DIM);
	/* In 64 bits: 65536 x 65536 overflows an int. */
	if ((uint64_t)m->in_c * (uint64_t)m->in_h * (uint64_t)m->in_w >
	    MAX_SAMPLE_ELEMS)
		return pb_error_set(err, PB_EFORMAT,
				    "%s: [model] input %dx%dx%d is %llu values "
				    "per sample, more than %zu",
				    m->source, m->in_c, m->in_h, m->in_w,
				    (unsigned long long)m->in_c *
				    (unsigned long long)m->in_h *
				    (unsigned long long)m->in_w,
				    MAX_SAMPLE_ELEMS);
	if ((rc = copy_layers(m, layers, n, err)))
		return rc;
	if ((rc = pbi_model_infer(m, err)))
		return rc;
	m->params = calloc(6 * (size_t)n, sizeof *m->params);
	if (!m->params)
		return pb_error_set(err, PB_ENOMEM, "out of memory (model)");
	for (int i = 0; i < n; i++)
		if ((rc = node_params(m, i, err)))
			return rc;
	if ((rc = layout_params(m, err)))
		return rc;
	return alloc_bn_saved(m, err);
}

int pbi_model_build(pb_model **out, const char *name, int in_c, int in_h,
		    int in_w, int classes, const pb_layer_info *layers,
		    int n_layers, const char *source, pb_error *err)
{
	pb_model *m = calloc(1, sizeof *m);
	int rc;

	*out = NULL;
	if (!m)
		return pb_error_set(err, PB_ENOMEM, "out of memory (model)");
	m->name = strdup(name ? name : "");
	m->source = strdup(source ? source : "<model>");
	if (!m->name || !m->source) {
		pb_model_free(m);
		return pb_error_set(err, PB_ENOMEM, "out of memory (model)");
	}
	m->in_c = in_c;
	m->in_h = in_h;
	m->in_w = in_w;
	m->classes = classes;
	rc = build_graph(m, layers, n_layers, err);
	if (rc) {
		pb_model_free(m);
		return rc;
	}
	*out = m;
	return 0;
}

void pb_model_free(pb_model *m)
{
	if (!m)
		return;
	pbi_model_sparse_end(m);
	for (int i = 0; i < m->n_nodes; i++) {
		pbi_node *n = &m->nodes[i];
		free(n->name);
		pb_ffree(n->out);
		pb_ffree(n->dout);
		pb_ffree(n->bn_saved);
		free(n->argmax);
		pb_ffree(n->keep);
	}
	for (int i = 0; i < m->n_params; i++)
		free((char *)m->params[i].name);
	free(m->nodes);
	free(m->params);
	pb_ffree(m->data);
	pb_ffree(m->grad);
	pb_ffree(m->stats);
	pb_ffree(m->mask);
	free(m->masked);
	pb_ffree(m->ws);
	pb_ffree(m->sp_ws);
	free(m->eval_argmax);
	pb_ffree(m->xbuf);
	free(m->name);
	free(m->source);
	free(m);
}

int pb_model_clone(pb_model **out, const pb_model *m, pb_error *err)
{
	pb_layer_info *infos;
	pb_model *c;
	int rc;

	*out = NULL;
	infos = malloc((size_t)m->n_nodes * sizeof *infos);
	if (!infos)
		return pb_error_set(err, PB_ENOMEM, "out of memory (clone)");
	for (int i = 0; i < m->n_nodes; i++)
		infos[i] = m->nodes[i].info;
	rc = pbi_model_build(&c, m->name, m->in_c, m->in_h, m->in_w,
			     m->classes, infos, m->n_nodes, m->source, err);
	free(infos);
	if (rc)
		return rc;
	/* Same graph, so the same layout: the flat arrays copy as a whole. */
	memcpy(c->data, m->data, m->n_train * sizeof(float));
	memcpy(c->stats, m->stats, m->n_stats * sizeof(float));
	if (m->mask) {
		c->mask = pb_falloc(m->n_train);
		c->masked = calloc((size_t)m->n_params, 1);
		if (!c->mask || !c->masked) {
			pb_model_free(c);
			return pb_error_set(err, PB_ENOMEM,
					    "out of memory (clone masks)");
		}
		memcpy(c->mask, m->mask, m->n_train * sizeof(float));
		memcpy(c->masked, m->masked, (size_t)m->n_params);
	}
	*out = c;
	return 0;
}

/* ---- accessors ----------------------------------------------------------- */

const char *pb_model_name(const pb_model *m)
{
	return m->name;
}

void pb_model_input_shape(const pb_model *m, int *c, int *h, int *w)
{
	if (c)
		*c = m->in_c;
	if (h)
		*h = m->in_h;
	if (w)
		*w = m->in_w;
}

int pb_model_classes(const pb_model *m)
{
	return m->classes;
}

int pb_model_n_layers(const pb_model *m)
{
	return m->n_nodes;
}

const pb_layer_info *pb_model_layer(const pb_model *m, int i)
{
	if (i < 0 || i >= m->n_nodes)
		return NULL;
	return &m->nodes[i].info;
}

int pb_model_find_layer(const pb_model *m, const char *name)
{
	if (!name)
		return -1;
	for (int i = 0; i < m->n_nodes; i++)
		if (!strcmp(m->nodes[i].name, name))
			return i;
	return -1;
}

int pb_model_n_params(const pb_model *m)
{
	return m->n_params;
}

pb_param *pb_model_param(pb_model *m, int i)
{
	if (i < 0 || i >= m->n_params)
		return NULL;
	return &m->params[i];
}

pb_param *pb_model_find_param(pb_model *m, const char *name)
{
	if (!name)
		return NULL;
	for (int i = 0; i < m->n_params; i++)
		if (!strcmp(m->params[i].name, name))
			return &m->params[i];
	return NULL;
}

size_t pb_model_trainable_size(const pb_model *m)
{
	return m->n_train;
}

float *pb_model_trainable_data(pb_model *m)
{
	return m->data;
}

float *pb_model_trainable_grad(pb_model *m)
{
	return m->grad;
}

