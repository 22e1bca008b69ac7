/* Building a model graph from layer descriptions: shape inference and
 * checks, the flat parameter layout, clone, free, accessors and
 * initialisation. Parsing is in model_ini.c, running in model_run.c. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>

#include "prunebench/layers.h"
#include "prunebench/tensor.h"
#include "model_impl.h"

/* Bounds that keep every size computation far from int overflow. */
#define MAX_DIM (1 << 16)
#define MAX_SAMPLE_ELEMS ((size_t)1 << 28)
#define MAX_TENSOR_ELEMS ((size_t)1 << 30)

/* A shape as seen by a consumer: C x H x W, and whether it is a flat
 * feature vector. */
struct shape {
	int c, h, w;
	int flat;
};

static int layer_err(pb_error *err, int code, const char *source,
		     const pb_layer_info *li, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static int layer_err(pb_error *err, int code, const char *source,
		     const pb_layer_info *li, const char *fmt, ...)
{
	char msg[PB_ERROR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return pb_error_set(err, code, "%s:%d: [%s] %s", source, li->line,
			    li->name, msg);
}

static void shape_str(char *buf, size_t n, struct shape s)
{
	if (s.flat)
		snprintf(buf, n, "a flat vector of %d", s.c);
	else
		snprintf(buf, n, "%dx%dx%d", s.c, s.h, s.w);
}

static struct shape input_shape(const pb_model *m, int idx)
{
	struct shape s = { m->in_c, m->in_h, m->in_w, 0 };

	if (idx >= 0) {
		const pbi_node *n = &m->nodes[idx];
		s.c = n->info.out_c;
		s.h = n->info.out_h;
		s.w = n->info.out_w;
		s.flat = n->flat;
	}
	return s;
}

static const char *input_name(const pb_model *m, int idx)
{
	return idx < 0 ? "input" : m->nodes[idx].info.name;
}

/* Conv and pools slide a window over an image; a flat vector has none. */
static int need_image(const pb_model *m, const pbi_node *n, struct shape s,
		      pb_error *err)
{
	char buf[64];

	if (!s.flat)
		return 0;
	shape_str(buf, sizeof buf, s);
	return layer_err(err, PB_EFORMAT, m->source, &n->info,
			 "%s needs an image input (CxHxW), but [%s] outputs "
			 "%s", pb_layer_type_name(n->info.type),
			 input_name(m, n->info.inputs[0]), buf);
}

static int window_out(const pb_model *m, pbi_node *n, struct shape s,
		      int pad, pb_error *err)
{
	pb_layer_info *li = &n->info;
	int k = li->kernel;

	if (k < 1 || li->stride < 1 || pad < 0)
		return layer_err(err, PB_EFORMAT, m->source, li,
				 "kernel %d, stride %d, pad %d: kernel and "
				 "stride must be >= 1, pad >= 0", k,
				 li->stride, pad);
	if (k > s.h + 2 * pad || k > s.w + 2 * pad)
		return layer_err(err, PB_EFORMAT, m->source, li,
				 "kernel %d is larger than its input %dx%d "
				 "(with pad %d); use a smaller kernel, more "
				 "pad, or fewer downsampling layers before it",
				 k, s.h, s.w, pad);
	li->out_h = pb_out_dim(s.h, k, li->stride, pad);
	li->out_w = pb_out_dim(s.w, k, li->stride, pad);
	return 0;
}

static int infer_conv(const pb_model *m, pbi_node *n, struct shape s,
		      pb_error *err)
{
	int rc = need_image(m, n, s, err);

	if (rc)
		return rc;
	if (n->info.out_c < 1 || n->info.out_c > MAX_DIM)
		return layer_err(err, PB_EFORMAT, m->source, &n->info,
				 "out = %d: must be between 1 and %d",
				 n->info.out_c, MAX_DIM);
	return window_out(m, n, s, n->info.pad, err);
}

static int infer_pool(const pb_model *m, pbi_node *n, struct shape s,
		      pb_error *err)
{
	int rc = need_image(m, n, s, err);

	if (rc)
		return rc;
	n->info.out_c = s.c;
	n->info.pad = 0;
	if (n->info.type == PB_LAYER_AVGPOOL && n->info.global) {
		n->info.kernel = 0;
		n->info.stride = 1;
		n->info.out_h = n->info.out_w = 1;
		return 0;
	}
	return window_out(m, n, s, 0, err);
}

static int infer_linear(const pb_model *m, pbi_node *n, struct shape s,
			pb_error *err)
{
	char buf[64];

	if (!s.flat) {
		shape_str(buf, sizeof buf, s);
		return layer_err(err, PB_EFORMAT, m->source, &n->info,
				 "linear needs a flat input, but [%s] outputs "
				 "%s; put a flatten layer before [%s]",
				 input_name(m, n->info.inputs[0]), buf,
				 n->info.name);
	}
	if (n->info.out_c < 1 || n->info.out_c > MAX_DIM * 16)
		return layer_err(err, PB_EFORMAT, m->source, &n->info,
				 "out = %d: must be between 1 and %d",
				 n->info.out_c, MAX_DIM * 16);
	n->info.out_h = n->info.out_w = 1;
	n->flat = 1;
	return 0;
}

static int infer_add(const pb_model *m, pbi_node *n, pb_error *err)
{
	struct shape a, b;
	char sa[64], sb[64];

	if (n->info.n_inputs != 2)
		return layer_err(err, PB_EFORMAT, m->source, &n->info,
				 "add takes exactly two inputs, got %d",
				 n->info.n_inputs);
	a = input_shape(m, n->info.inputs[0]);
	b = input_shape(m, n->info.inputs[1]);
	if (a.c != b.c || a.h != b.h || a.w != b.w || a.flat != b.flat) {
		shape_str(sa, sizeof sa, a);
		shape_str(sb, sizeof sb, b);
		return layer_err(err, PB_EFORMAT, m->source, &n->info,
				 "add needs inputs of the same shape, but [%s] "
				 "is %s and [%s] is %s",
				 input_name(m, n->info.inputs[0]), sa,
				 input_name(m, n->info.inputs[1]), sb);
	}
	n->info.out_c = a.c;
	n->info.out_h = a.h;
	n->info.out_w = a.w;
	n->flat = a.flat;
	return 0;
}

/* Elementwise layers (bn, relu, dropout) keep the shape; flatten keeps the
 * element count. */
static void infer_same(pbi_node *n, struct shape s)
{
	n->info.out_c = s.c;
	n->info.out_h = s.h;
	n->info.out_w = s.w;
	n->flat = s.flat;
	if (n->info.type == PB_LAYER_FLATTEN) {
		n->info.out_c = s.c * s.h * s.w;
		n->info.out_h = n->info.out_w = 1;
		n->flat = 1;
	}
}

static int check_inputs(const pb_model *m, int i, pb_error *err)
{
	const pb_layer_info *li = &m->nodes[i].info;
	int want = li->type == PB_LAYER_ADD ? 2 : 1;

	if (li->n_inputs != want)
		return layer_err(err, PB_EFORMAT, m->source, li,
				 "%s takes %d input%s, got %d",
				 pb_layer_type_name(li->type), want,
				 want == 1 ? "" : "s", li->n_inputs);
	for (int k = 0; k < li->n_inputs; k++)
		if (li->inputs[k] < -1 || li->inputs[k] >= i)
			return layer_err(err, PB_EFORMAT, m->source, li,
					 "input %d is not an earlier layer",
					 li->inputs[k]);
	return 0;
}

static int infer_node(pb_model *m, int i, pb_error *err)
{
	pbi_node *n = &m->nodes[i];
	struct shape s;
	size_t out_n;
	int rc = check_inputs(m, i, err);

	if (rc)
		return rc;
	s = input_shape(m, n->info.inputs[0]);
	n->info.in_c = s.c;
	n->info.in_h = s.h;
	n->info.in_w = s.w;
	switch (n->info.type) {
	case PB_LAYER_CONV:
		rc = infer_conv(m, n, s, err);
		break;
	case PB_LAYER_MAXPOOL:
	case PB_LAYER_AVGPOOL:
		rc = infer_pool(m, n, s, err);
		break;
	case PB_LAYER_LINEAR:
		rc = infer_linear(m, n, s, err);
		break;
	case PB_LAYER_ADD:
		rc = infer_add(m, n, err);
		break;
	case PB_LAYER_BN:
	case PB_LAYER_RELU:
	case PB_LAYER_DROPOUT:
	case PB_LAYER_FLATTEN:
		infer_same(n, s);
		break;
	default:
		rc = layer_err(err, PB_EFORMAT, m->source, &n->info,
			       "unknown layer type %d", (int)n->info.type);
	}
	if (rc)
		return rc;
	n->in_n = (size_t)s.c * (size_t)s.h * (size_t)s.w;
	out_n = (size_t)n->info.out_c * (size_t)n->info.out_h *
		(size_t)n->info.out_w;
	if (out_n > MAX_SAMPLE_ELEMS)
		return layer_err(err, PB_EFORMAT, m->source, &n->info,
				 "output %dx%dx%d is too large",
				 n->info.out_c, n->info.out_h, n->info.out_w);
	n->out_n = out_n;
	return 0;
}

/* A layer nobody reads is almost always a mistyped input name. */
static int check_all_used(const pb_model *m, pb_error *err)
{
	for (int i = 0; i + 1 < m->n_nodes; i++) {
		int used = 0;
		for (int j = i + 1; j < m->n_nodes && !used; j++)
			for (int k = 0; k < m->nodes[j].info.n_inputs; k++)
				used |= m->nodes[j].info.inputs[k] == i;
		if (!used)
			return layer_err(err, PB_EFORMAT, m->source,
					 &m->nodes[i].info,
					 "output is not used by any later "
					 "layer (only the last layer may be "
					 "unused); check the input names");
	}
	return 0;
}

static int check_logits(const pb_model *m, pb_error *err)
{
	const pbi_node *last = &m->nodes[m->n_nodes - 1];
	struct shape s = { last->info.out_c, last->info.out_h,
			   last->info.out_w, last->flat };
	char buf[64];

	if (s.flat && s.c == m->classes)
		return 0;
	shape_str(buf, sizeof buf, s);
	return layer_err(err, PB_EFORMAT, m->source, &last->info,
			 "the last layer gives the logits and must output a "
			 "flat vector of classes = %d, but it outputs %s; end "
			 "the model with a linear layer of out = %d",
			 m->classes, buf, m->classes);
}

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
	if (p->n > MAX_TENSOR_ELEMS)
		return layer_err(err, PB_EFORMAT, m->source,
				 &m->nodes[layer].info,
				 "%s has %zu elements, too many", name, p->n);
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

	for (int i = 0; i < m->n_params; i++) {
		pb_param *p = &m->params[i];
		if (p->trainable)
			tr += align_up(p->n);
		else
			st += align_up(p->n);
	}
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
				    "%s: bad input shape %dx%dx%d or classes "
				    "%d", m->source, m->in_c, m->in_h,
				    m->in_w, m->classes);
	if ((rc = copy_layers(m, layers, n, err)))
		return rc;
	for (int i = 0; i < n; i++)
		if ((rc = infer_node(m, i, err)))
			return rc;
	if ((rc = check_all_used(m, err)) || (rc = check_logits(m, err)))
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

/* ---- initialisation ------------------------------------------------------ */

static void fill_uniform(float *a, size_t n, double bound, gsl_rng *rng)
{
	for (size_t i = 0; i < n; i++)
		a[i] = (float)(bound * (2.0 * gsl_rng_uniform(rng) - 1.0));
}

static void fill_const(float *a, size_t n, float v)
{
	for (size_t i = 0; i < n; i++)
		a[i] = v;
}

/* fan_in of a conv or linear weight: what PyTorch's default init uses
 * (kaiming_uniform with a = sqrt(5) gives bound 1/sqrt(fan_in)). */
static double fan_in(const pb_model *m, const pb_param *p)
{
	const pbi_node *n = &m->nodes[p->layer];

	if (n->info.type == PB_LAYER_CONV)
		return (double)n->info.in_c * n->info.kernel * n->info.kernel;
	return (double)n->in_n;
}

static void init_param(const pb_model *m, pb_param *p, gsl_rng *rng)
{
	const pbi_node *n = &m->nodes[p->layer];
	const pb_layer_info *li = &n->info;

	switch (p->kind) {
	case PB_PARAM_WEIGHT:
		if (li->type == PB_LAYER_CONV) {
			/* torchvision: kaiming_normal_(mode="fan_out",
			 * nonlinearity="relu"), std = sqrt(2 / (OC*K*K)). */
			double sd = sqrt(2.0 / ((double)li->out_c *
						li->kernel * li->kernel));
			for (size_t i = 0; i < p->n; i++)
				p->data[i] = (float)gsl_ran_gaussian(rng, sd);
		} else {
			fill_uniform(p->data, p->n, 1.0 / sqrt(fan_in(m, p)),
				     rng);
		}
		break;
	case PB_PARAM_BIAS:
		fill_uniform(p->data, p->n, 1.0 / sqrt(fan_in(m, p)), rng);
		break;
	case PB_PARAM_BN_GAMMA:
	case PB_PARAM_BN_VAR:
		fill_const(p->data, p->n, 1.0f);
		break;
	case PB_PARAM_BN_BETA:
	case PB_PARAM_BN_MEAN:
		fill_const(p->data, p->n, 0.0f);
		break;
	case PB_PARAM_MASK:
		break;
	}
}

int pb_model_init_params(pb_model *m, gsl_rng *rng, pb_error *err)
{
	if (!rng)
		return pb_error_set(err, PB_EINVAL,
				    "pb_model_init_params: rng is NULL; pass a "
				    "seeded gsl_rng");
	/* Serial and in parameter order, so a seed fixes every weight. */
	for (int i = 0; i < m->n_params; i++)
		init_param(m, &m->params[i], rng);
	return 0;
}
