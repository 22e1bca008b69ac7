/* Running the graph: forward in file order, backward in reverse, every
 * buffer sized once for the batch and reused from then on. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "prunebench/layers.h"
#include "prunebench/tensor.h"
#include "nn/model_impl.h"
#include "nn/layers/conv2d_direct.h"

static float *pdata(pb_model *m, int idx)
{
	return idx < 0 ? NULL : m->params[idx].data;
}

static float *pgrad(pb_model *m, int idx)
{
	return idx < 0 ? NULL : m->params[idx].grad;
}

/* The activation a layer reads: the model input (x) or an earlier
 * layer's output. */
static const float *act(const pb_model *m, int idx, const float *x)
{
	return idx < 0 ? x : m->nodes[idx].y;
}

/* Where a layer adds the gradient for that input; NULL when nobody
 * wants it (the model input, unless the caller asked for dx). */
static float *act_grad(pb_model *m, int idx, float *dx)
{
	return idx < 0 ? dx : m->nodes[idx].dout;
}

static int ensure_i32(int32_t **buf, size_t *cap, size_t n)
{
	int32_t *p;

	if (*buf && *cap >= n)
		return 0;
	p = malloc((n ? n : 1) * sizeof *p);
	if (!p)
		return PB_ENOMEM;
	free(*buf);
	*buf = p;
	*cap = n;
	return 0;
}

static size_t conv_workspace(const pb_model *m, int B)
{
	size_t need = 0;

	for (int i = 0; i < m->n_nodes; i++) {
		const pb_layer_info *li = &m->nodes[i].info;
		size_t n;
		if (li->type != PB_LAYER_CONV)
			continue;
		n = pb_conv2d_workspace(B, li->in_c, li->in_h, li->in_w,
					li->out_c, li->kernel, li->stride,
					li->pad);
		if (n > need)
			need = n;
	}
	return need;
}

/* A training forward fills the saved-for-backward buffers; eval writes
 * maxpool's argmax into a shared scratch so the saved one survives. */
static int ensure_node(pb_model *m, pbi_node *n, size_t len, int train)
{
	int rc = pb_fensure(&n->out, &n->out_cap, len);

	if (rc)
		return rc;
	if (n->info.type == PB_LAYER_MAXPOOL)
		return train ? ensure_i32(&n->argmax, &n->argmax_cap, len) :
			       ensure_i32(&m->eval_argmax,
					  &m->eval_argmax_cap, len);
	if (n->info.type == PB_LAYER_DROPOUT && train)
		return pb_fensure(&n->keep, &n->keep_cap, len);
	return 0;
}

static int ensure_forward(pb_model *m, int B, int train)
{
	size_t in_len = (size_t)B * m->in_c * m->in_h * m->in_w;
	int rc = 0;

	for (int i = 0; i < m->n_nodes && !rc; i++) {
		pbi_node *n = &m->nodes[i];
		if (n->info.type != PB_LAYER_FLATTEN)
			rc = ensure_node(m, n, (size_t)B * n->out_n, train);
	}
	if (!rc && train)
		rc = pb_fensure(&m->xbuf, &m->xbuf_cap, in_len);
	if (!rc)
		rc = pb_fensure(&m->ws, &m->ws_cap, conv_workspace(m, B));
	return rc;
}

/* ---- forward ------------------------------------------------------------- */

static void fwd_bn(pb_model *m, pbi_node *n, const float *in, int B,
		   int train)
{
	const pb_layer_info *li = &n->info;
	const int C = li->out_c, HW = li->out_h * li->out_w;

	if (train)
		pb_bn_forward_train(n->out, n->bn_saved, n->bn_saved + C,
				    pdata(m, n->run_mean), pdata(m, n->run_var),
				    in, pdata(m, n->gamma), pdata(m, n->beta),
				    B, C, HW, li->eps, li->momentum);
	else
		pb_bn_forward_eval(n->out, in, pdata(m, n->gamma),
				   pdata(m, n->beta), pdata(m, n->run_mean),
				   pdata(m, n->run_var), B, C, HW, li->eps);
}

static void fwd_pool(pb_model *m, pbi_node *n, const float *in, int B,
		     int train)
{
	const pb_layer_info *li = &n->info;

	if (li->type == PB_LAYER_MAXPOOL)
		pb_maxpool_forward(n->out, train ? n->argmax : m->eval_argmax,
				   in, B, li->in_c, li->in_h, li->in_w,
				   li->kernel, li->stride);
	else if (li->global)
		pb_avgpool_forward(n->out, in, B, li->in_c, li->in_h,
				   li->in_w, li->in_h, li->in_w, 1);
	else
		pb_avgpool_forward(n->out, in, B, li->in_c, li->in_h,
				   li->in_w, li->kernel, li->kernel,
				   li->stride);
}

static void fwd_dropout(pbi_node *n, const float *in, size_t len,
			int train, gsl_rng *rng)
{
	if (!train) {
		memcpy(n->out, in, len * sizeof(float));
		return;
	}
	pb_dropout_fill_mask(n->keep, len, n->info.p, rng);
	pb_dropout_forward(n->out, in, n->keep, len);
}

static void forward_node(pb_model *m, int i, const float *x, int B,
			 int train, gsl_rng *rng)
{
	pbi_node *n = &m->nodes[i];
	const pb_layer_info *li = &n->info;
	const float *in = act(m, li->inputs[0], x);
	const size_t len = (size_t)B * n->out_n;

	n->y = n->out;
	switch (li->type) {
	case PB_LAYER_CONV:
		pb_conv2d_forward(n->out, in, pdata(m, n->weight),
				  pdata(m, n->bias), B, li->in_c, li->in_h,
				  li->in_w, li->out_c, li->kernel, li->stride,
				  li->pad, m->ws);
		break;
	case PB_LAYER_BN:
		fwd_bn(m, n, in, B, train);
		break;
	case PB_LAYER_RELU:
		pb_relu_forward(n->out, in, len);
		break;
	case PB_LAYER_MAXPOOL:
	case PB_LAYER_AVGPOOL:
		fwd_pool(m, n, in, B, train);
		break;
	case PB_LAYER_LINEAR:
		pb_linear_forward(n->out, in, pdata(m, n->weight),
				  pdata(m, n->bias), B, (int)n->in_n,
				  li->out_c);
		break;
	case PB_LAYER_FLATTEN:
		/* Same memory, new shape: NCHW per sample is already the
		 * C*H*W vector linear expects. */
		n->y = in;
		break;
	case PB_LAYER_DROPOUT:
		fwd_dropout(n, in, len, train, rng);
		break;
	case PB_LAYER_ADD:
		pb_add_forward(n->out, in, act(m, li->inputs[1], x), len);
		break;
	}
}

/* Eval forward of conv -> BN (-> ReLU) in one pass when the conv takes
 * the direct kernel: BN and ReLU are applied while the conv result is in
 * registers. All three outputs are still stored, so every layer's
 * activation reads as before (calibration uses them) and the values are
 * bitwise those of the unfused layers. Returns how many nodes it ran (0:
 * not fusable here, 2 or 3). */
#define FUSE_MAX_C 1024

static int forward_fused_eval(pb_model *m, int i, const float *x, int B)
{
	pbi_node *cv = &m->nodes[i], *bn, *rl = NULL;
	const pb_layer_info *li = &cv->info;
	float scale[FUSE_MAX_C], shift[FUSE_MAX_C];
	const float *g, *be, *rm, *rv;
	pbi_conv_epilogue ep;

	if (li->type != PB_LAYER_CONV || i + 1 >= m->n_nodes ||
	    li->out_c > FUSE_MAX_C ||
	    !pbi_conv_direct_ok(li->in_h, li->in_w, li->kernel, li->stride,
				li->pad))
		return 0;
	bn = &m->nodes[i + 1];
	if (bn->info.type != PB_LAYER_BN || bn->info.inputs[0] != i)
		return 0;
	if (i + 2 < m->n_nodes && m->nodes[i + 2].info.type == PB_LAYER_RELU &&
	    m->nodes[i + 2].info.inputs[0] == i + 1)
		rl = &m->nodes[i + 2];
	g = pdata(m, bn->gamma);
	be = pdata(m, bn->beta);
	rm = pdata(m, bn->run_mean);
	rv = pdata(m, bn->run_var);
	/* The same expressions as pb_bn_forward_eval. */
	for (int c = 0; c < li->out_c; c++) {
		scale[c] = g[c] / sqrtf(rv[c] + bn->info.eps);
		shift[c] = be[c] - rm[c] * scale[c];
	}
	ep.scale = scale;
	ep.shift = shift;
	ep.bn_out = bn->out;
	ep.relu_out = rl ? rl->out : NULL;
	pbi_conv_direct_forward(cv->out, act(m, li->inputs[0], x),
				pdata(m, cv->weight), pdata(m, cv->bias), B,
				li->in_c, li->in_h, li->in_w, li->out_c, 0,
				&ep);
	cv->y = cv->out;
	bn->y = bn->out;
	if (rl)
		rl->y = rl->out;
	return rl ? 3 : 2;
}

int pb_model_forward(pb_model *m, const float *x, int B, int train,
		     gsl_rng *rng, const float **logits, pb_error *err)
{
	const float *xin = x;
	size_t in_len;

	if (!x || B < 1)
		return pb_error_set(err, PB_EINVAL,
				    "pb_model_forward: %s", !x ? "x is NULL" :
				    "batch size must be >= 1");
	if (train && m->has_dropout && !rng)
		return pb_error_set(err, PB_EINVAL,
				    "model %s has dropout: a training forward "
				    "needs an rng", m->name);
	if (ensure_forward(m, B, train))
		return pb_error_set(err, PB_ENOMEM,
				    "out of memory for the activations of "
				    "model %s at batch size %d; use a smaller "
				    "batch", m->name, B);
	/* Activations are about to change: an old backward is void. */
	m->have_train = 0;
	if (train) {
		/* Keep our own copy: backward reads it after the caller may
		 * have refilled its batch buffer. */
		in_len = (size_t)B * m->in_c * m->in_h * m->in_w;
		memcpy(m->xbuf, x, in_len * sizeof(float));
		xin = m->xbuf;
	}
	for (int i = 0; i < m->n_nodes;) {
		int done = train ? 0 : forward_fused_eval(m, i, xin, B);

		if (!done) {
			forward_node(m, i, xin, B, train, rng);
			done = 1;
		}
		if (!train && m->eval_hook)
			m->eval_hook(m->eval_hook_user, m, i, done, B);
		i += done;
	}
	m->batch = B;
	m->have_train = train != 0;
	if (logits)
		*logits = m->nodes[m->n_nodes - 1].y;
	return 0;
}

/* ---- backward ------------------------------------------------------------ */

void pb_model_zero_grad(pb_model *m)
{
	memset(m->grad, 0, m->n_train * sizeof(float));
}

static void bwd_pool(pbi_node *n, float *din, int B)
{
	const pb_layer_info *li = &n->info;

	if (li->type == PB_LAYER_MAXPOOL)
		pb_maxpool_backward(din, n->dout, n->argmax, B, li->in_c,
				    li->in_h, li->in_w, li->kernel,
				    li->stride);
	else if (li->global)
		pb_avgpool_backward(din, n->dout, B, li->in_c, li->in_h,
				    li->in_w, li->in_h, li->in_w, 1);
	else
		pb_avgpool_backward(din, n->dout, B, li->in_c, li->in_h,
				    li->in_w, li->kernel, li->kernel,
				    li->stride);
}

static void bwd_add(pb_model *m, pbi_node *n, float *dx, size_t len)
{
	float *da = act_grad(m, n->info.inputs[0], dx);
	float *db = act_grad(m, n->info.inputs[1], dx);

	/* x + x: one buffer takes both contributions, one call at a time. */
	if (n->info.inputs[0] == n->info.inputs[1]) {
		pb_add_backward(da, NULL, n->dout, len);
		pb_add_backward(da, NULL, n->dout, len);
		return;
	}
	pb_add_backward(da, db, n->dout, len);
}

static void bwd_flatten(pbi_node *n, float *din, size_t len)
{
	for (size_t j = 0; j < len; j++)
		din[j] += n->dout[j];
}

static void backward_node(pb_model *m, int i, const float *x, float *dx,
			  int B)
{
	pbi_node *n = &m->nodes[i];
	const pb_layer_info *li = &n->info;
	const float *in = act(m, li->inputs[0], x);
	float *din = act_grad(m, li->inputs[0], dx);
	const size_t len = (size_t)B * n->out_n;

	switch (li->type) {
	case PB_LAYER_CONV:
		pb_conv2d_backward(din, pgrad(m, n->weight), pgrad(m, n->bias),
				   n->dout, in, pdata(m, n->weight), B,
				   li->in_c, li->in_h, li->in_w, li->out_c,
				   li->kernel, li->stride, li->pad, m->ws);
		break;
	case PB_LAYER_BN:
		pb_bn_backward(din, pgrad(m, n->gamma), pgrad(m, n->beta),
			       n->dout, in, n->bn_saved,
			       n->bn_saved + li->out_c, pdata(m, n->gamma), B,
			       li->out_c, li->out_h * li->out_w);
		break;
	case PB_LAYER_LINEAR:
		pb_linear_backward(din, pgrad(m, n->weight), pgrad(m, n->bias),
				   n->dout, in, pdata(m, n->weight), B,
				   (int)n->in_n, li->out_c);
		break;
	case PB_LAYER_ADD:
		bwd_add(m, n, dx, len);
		break;
	default:
		/* The rest have no parameters: nothing to do without din. */
		if (!din)
			break;
		if (li->type == PB_LAYER_RELU)
			pb_relu_backward(din, n->dout, n->y, len);
		else if (li->type == PB_LAYER_DROPOUT)
			pb_dropout_backward(din, n->dout, n->keep, len);
		else if (li->type == PB_LAYER_FLATTEN)
			bwd_flatten(n, din, len);
		else
			bwd_pool(n, din, B);
	}
}

static int ensure_backward(pb_model *m, int B)
{
	for (int i = 0; i < m->n_nodes; i++) {
		pbi_node *n = &m->nodes[i];
		size_t len = (size_t)B * n->out_n;
		if (pb_fensure(&n->dout, &n->dout_cap, len))
			return PB_ENOMEM;
		/* Consumers add into dout, residual fan-out included. */
		memset(n->dout, 0, len * sizeof(float));
	}
	/* The thread count may differ from the forward's. */
	return pb_fensure(&m->ws, &m->ws_cap, conv_workspace(m, B));
}

int pbi_model_backward_dx(pb_model *m, const float *dlogits, float *dx,
			  pb_error *err)
{
	const int B = m->batch;
	pbi_node *last = &m->nodes[m->n_nodes - 1];

	if (!m->have_train)
		return pb_error_set(err, PB_EINVAL,
				    "pb_model_backward: the last forward of "
				    "model %s was not a training one; call "
				    "pb_model_forward with train = 1 first",
				    m->name);
	if (!dlogits)
		return pb_error_set(err, PB_EINVAL,
				    "pb_model_backward: dlogits is NULL");
	if (ensure_backward(m, B))
		return pb_error_set(err, PB_ENOMEM,
				    "out of memory for the gradients of model "
				    "%s at batch size %d", m->name, B);
	memcpy(last->dout, dlogits, (size_t)B * last->out_n * sizeof(float));
	for (int i = m->n_nodes - 1; i >= 0; i--)
		backward_node(m, i, m->xbuf, dx, B);
	return 0;
}

int pb_model_backward(pb_model *m, const float *dlogits, pb_error *err)
{
	return pbi_model_backward_dx(m, dlogits, NULL, err);
}
