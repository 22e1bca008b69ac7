/* Shape inference and the graph checks of a model being built: every
 * layer's input and output shape from its inputs, with errors that name
 * the layer and its file. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/model_impl.h"
#include "prunebench/layers.h"

/* A shape as seen by a consumer: C x H x W, and whether it is a flat
 * feature vector. */
struct shape {
	int c, h, w;
	int flat;
};


int pbi_layer_err(pb_error *err, int code, const char *source,
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
	return pbi_layer_err(err, PB_EFORMAT, m->source, &n->info,
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
		return pbi_layer_err(err, PB_EFORMAT, m->source, li,
				 "kernel %d, stride %d, pad %d: kernel and "
				 "stride must be >= 1, pad >= 0", k,
				 li->stride, pad);
	if (k > s.h + 2 * pad || k > s.w + 2 * pad)
		return pbi_layer_err(err, PB_EFORMAT, m->source, li,
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
		return pbi_layer_err(err, PB_EFORMAT, m->source, &n->info,
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
		return pbi_layer_err(err, PB_EFORMAT, m->source, &n->info,
				 "linear needs a flat input, but [%s] outputs "
				 "%s; put a flatten layer before [%s]",
				 input_name(m, n->info.inputs[0]), buf,
				 n->info.name);
	}
	if (n->info.out_c < 1 || n->info.out_c > MAX_DIM * 16)
		return pbi_layer_err(err, PB_EFORMAT, m->source, &n->info,
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
		return pbi_layer_err(err, PB_EFORMAT, m->source, &n->info,
				 "add takes exactly two inputs, got %d",
				 n->info.n_inputs);
	a = input_shape(m, n->info.inputs[0]);
	b = input_shape(m, n->info.inputs[1]);
	if (a.c != b.c || a.h != b.h || a.w != b.w || a.flat != b.flat) {
		shape_str(sa, sizeof sa, a);
		shape_str(sb, sizeof sb, b);
		return pbi_layer_err(err, PB_EFORMAT, m->source, &n->info,
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
 * element count, counted in 64 bits before it becomes a width. */
static int infer_same(const pb_model *m, pbi_node *n, struct shape s,
		      pb_error *err)
{
	const uint64_t count = (uint64_t)s.c * (uint64_t)s.h *
			       (uint64_t)s.w;

	n->info.out_c = s.c;
	n->info.out_h = s.h;
	n->info.out_w = s.w;
	n->flat = s.flat;
	if (n->info.type == PB_LAYER_FLATTEN) {
		if (count > MAX_SAMPLE_ELEMS)
			return pbi_layer_err(err, PB_EFORMAT, m->source,
					     &n->info, "flattens %dx%dx%d = "
					     "%llu values, more than %zu",
					     s.c, s.h, s.w,
					     (unsigned long long)count,
					     MAX_SAMPLE_ELEMS);
		n->info.out_c = (int)count;
		n->info.out_h = n->info.out_w = 1;
		n->flat = 1;
	}
	return 0;
}

static int check_inputs(const pb_model *m, int i, pb_error *err)
{
	const pb_layer_info *li = &m->nodes[i].info;
	int want = li->type == PB_LAYER_ADD ? 2 : 1;

	if (li->n_inputs != want)
		return pbi_layer_err(err, PB_EFORMAT, m->source, li,
				 "%s takes %d input%s, got %d",
				 pb_layer_type_name(li->type), want,
				 want == 1 ? "" : "s", li->n_inputs);
	for (int k = 0; k < li->n_inputs; k++)
		if (li->inputs[k] < -1 || li->inputs[k] >= i)
			return pbi_layer_err(err, PB_EFORMAT, m->source, li,
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
		rc = infer_same(m, n, s, err);
		break;
	default:
		rc = pbi_layer_err(err, PB_EFORMAT, m->source, &n->info,
			       "unknown layer type %d", (int)n->info.type);
	}
	if (rc)
		return rc;
	n->in_n = (size_t)s.c * (size_t)s.h * (size_t)s.w;
	out_n = (size_t)n->info.out_c * (size_t)n->info.out_h *
		(size_t)n->info.out_w;
	if (out_n > MAX_SAMPLE_ELEMS)
		return pbi_layer_err(err, PB_EFORMAT, m->source, &n->info,
				 "output %dx%dx%d is %zu values per sample, "
				 "more than %zu", n->info.out_c,
				 n->info.out_h, n->info.out_w, out_n,
				 MAX_SAMPLE_ELEMS);
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
			return pbi_layer_err(err, PB_EFORMAT, m->source,
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
	return pbi_layer_err(err, PB_EFORMAT, m->source, &last->info,
			 "the last layer gives the logits and must output a "
			 "flat vector of classes = %d, but it outputs %s; end "
			 "the model with a linear layer of out = %d",
			 m->classes, buf, m->classes);
}

int pbi_model_infer(pb_model *m, pb_error *err)
{
	int rc;

	for (int i = 0; i < m->n_nodes; i++)
		if ((rc = infer_node(m, i, err)))
			return rc;
	if ((rc = check_all_used(m, err)))
		return rc;
	return check_logits(m, err);
}
