/* Running the graph: forward in file order, backward in reverse, every
 * buffer sized once for the batch and reused from then on. A forward is
 * one of three kinds: eval (nothing kept for backward), train (batch
 * statistics, dropout, everything kept), or eval with gradient (eval's
 * function, BN on its running statistics and dropout off, with what
 * backward needs kept: pruning criteria at initialisation). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "prunebench/layers.h"
#include "prunebench/tensor.h"
#include "nn/model_impl.h"
#include "nn/layers/conv2d_direct.h"
#include "nn/layers/layers_impl.h"
#include "nn/layers/sparse.h"

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

enum fwd_mode { FWD_EVAL, FWD_TRAIN, FWD_EVAL_GRAD };

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

/* A forward for backward fills the saved-for-backward buffers; eval
 * writes maxpool's argmax into a shared scratch so the saved one
 * survives. */
static int ensure_node(pb_model *m, pbi_node *n, size_t len, int mode)
{
	int rc = pb_fensure(&n->out, &n->out_cap, len);

	if (rc)
		return rc;
	if (n->info.type == PB_LAYER_MAXPOOL)
		return mode != FWD_EVAL ?
		       ensure_i32(&n->argmax, &n->argmax_cap, len) :
		       ensure_i32(&m->eval_argmax, &m->eval_argmax_cap, len);
	if (n->info.type == PB_LAYER_DROPOUT && mode == FWD_TRAIN)
		return pb_fensure(&n->keep, &n->keep_cap, len);
	return 0;
}

static int ensure_forward(pb_model *m, int B, int mode)
{
	size_t in_len = (size_t)B * m->in_c * m->in_h * m->in_w;
	int rc = 0;

	for (int i = 0; i < m->n_nodes && !rc; i++) {
		pbi_node *n = &m->nodes[i];
		if (n->info.type != PB_LAYER_FLATTEN)
			rc = ensure_node(m, n, (size_t)B * n->out_n, mode);
	}
	if (!rc && mode != FWD_EVAL)
		rc = pb_fensure(&m->xbuf, &m->xbuf_cap, in_len);
	if (!rc)
		rc = pb_fensure(&m->ws, &m->ws_cap, conv_workspace(m, B));
	if (!rc && mode == FWD_EVAL && m->sparse_on)
		for (int i = 0; i < m->n_nodes && !rc; i++)
			if (m->nodes[i].sparse &&
			    m->nodes[i].info.type == PB_LAYER_CONV)
				rc = pb_fensure(&m->sp_ws, &m->sp_ws_cap,
						pbi_sparse_conv_workspace(
							&m->nodes[i].sparse->g));
	return rc;
}

/* ---- forward ------------------------------------------------------------- */

/* relu_out (train only, may be NULL): the following ReLU's output,
 * written in the same pass. */
static void fwd_bn(pb_model *m, pbi_node *n, const float *in, int B,
		   int train, float *relu_out)
{
	const pb_layer_info *li = &n->info;
	const int C = li->out_c, HW = li->out_h * li->out_w;

	if (train)
		pbi_bn_forward_train(n->out, relu_out, n->bn_saved,
				     n->bn_saved + C, pdata(m, n->run_mean),
				     pdata(m, n->run_var), in,
				     pdata(m, n->gamma), pdata(m, n->beta), B,
				     C, HW, li->eps, li->momentum);
	else
		pb_bn_forward_eval(n->out, in, pdata(m, n->gamma),
				   pdata(m, n->beta), pdata(m, n->run_mean),
				   pdata(m, n->run_var), B, C, HW, li->eps);
}

static void fwd_pool(pb_model *m, pbi_node *n, const float *in, int B,
		     int save)
{
	const pb_layer_info *li = &n->info;

	if (li->type == PB_LAYER_MAXPOOL)
		pb_maxpool_forward(n->out, save ? n->argmax : m->eval_argmax,
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
			 int mode, gsl_rng *rng)
{
	const int train = mode == FWD_TRAIN;
	pbi_node *n = &m->nodes[i];
	const pb_layer_info *li = &n->info;
	const float *in = act(m, li->inputs[0], x);
	const size_t len = (size_t)B * n->out_n;

	n->y = n->out;
	if (!train && n->sparse) {
		if (li->type == PB_LAYER_CONV)
			pbi_sparse_conv_forward(n->out, in, &n->sparse->w,
						pdata(m, n->bias),
						&n->sparse->g, B, NULL,
						m->sp_ws);
		else
			pbi_sparse_linear_forward(n->out, in, &n->sparse->w,
						  pdata(m, n->bias), B,
						  (int)n->in_n, li->out_c);
		return;
	}
	switch (li->type) {
	case PB_LAYER_CONV:
		pb_conv2d_forward(n->out, in, pdata(m, n->weight),
				  pdata(m, n->bias), B, li->in_c, li->in_h,
				  li->in_w, li->out_c, li->kernel, li->stride,
				  li->pad, m->ws);
		break;
	case PB_LAYER_BN:
		fwd_bn(m, n, in, B, train, NULL);
		break;
	case PB_LAYER_RELU:
		pb_relu_forward(n->out, in, len);
		break;
	case PB_LAYER_MAXPOOL:
	case PB_LAYER_AVGPOOL:
		fwd_pool(m, n, in, B, mode != FWD_EVAL);
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

void pbi_model_set_lean(pb_model *m, int on)
{
	m->lean = on != 0;
}

/* Inputs of nodes other than `but` that read node i. */
static int other_readers(const pb_model *m, int i, int but)
{
	int n = 0;

	for (int j = i + 1; j < m->n_nodes; j++)
		if (j != but)
			for (int k = 0; k < m->nodes[j].info.n_inputs; k++)
				n += m->nodes[j].info.inputs[k] == i;
	return n;
}

/* Eval forward of conv -> BN (-> ReLU) in one pass when the conv takes
 * the direct kernel, the phase kernel or the sparse one: BN and ReLU are
 * applied while the conv result is in registers; with the direct kernel
 * also conv -> BN -> add -> ReLU, a ResNet block's end whose other input
 * is already computed (an identity shortcut). Every output is stored,
 * so every layer's activation reads as before (calibration uses them),
 * except in a lean forward, which stores only what later layers read;
 * the values are bitwise those of the unfused layers. Returns how many
 * nodes it ran (0: not fusable here, 2, 3 or 4). */
#define FUSE_MAX_C 1024

/* Nodes i+1 .. i+3 are BN (of conv i) -> add -> ReLU, the add's other
 * input computed before conv i and of the same shape: that input's
 * index (-1: the model's input), else PBI_NO_RESIDUAL. */
#define PBI_NO_RESIDUAL (-2)

static int residual_end(const pb_model *m, int i)
{
	const pbi_node *ad = &m->nodes[i + 2], *rl = &m->nodes[i + 3];
	int j;

	if (ad->info.type != PB_LAYER_ADD || ad->info.n_inputs != 2 ||
	    rl->info.type != PB_LAYER_RELU || rl->info.inputs[0] != i + 2)
		return PBI_NO_RESIDUAL;
	if (ad->info.inputs[0] == i + 1)
		j = ad->info.inputs[1];
	else if (ad->info.inputs[1] == i + 1)
		j = ad->info.inputs[0];
	else
		return PBI_NO_RESIDUAL;
	return j < i && (j < 0 || m->nodes[j].y) &&
	       ad->out_n == m->nodes[i + 1].out_n ? j : PBI_NO_RESIDUAL;
}

static int forward_fused_eval(pb_model *m, int i, const float *x, int B)
{
	pbi_node *cv = &m->nodes[i], *bn, *rl = NULL, *ad = NULL;
	const pb_layer_info *li = &cv->info;
	float scale[FUSE_MAX_C], shift[FUSE_MAX_C];
	const float *g, *be, *rm, *rv;
	pbi_conv_epilogue ep = { 0 };
	pbi_sparse_geom pg;
	int direct, j = PBI_NO_RESIDUAL;

	if (li->type != PB_LAYER_CONV || i + 1 >= m->n_nodes ||
	    li->out_c > FUSE_MAX_C)
		return 0;
	direct = pbi_conv_direct_ok(li->in_h, li->in_w, li->kernel,
				    li->stride, li->pad);
	pbi_sparse_geom_init(&pg, li->in_c, li->in_h, li->in_w, li->out_c,
			     li->kernel, li->stride, li->pad);
	if (!cv->sparse && !direct && !pbi_conv_phase_ok(&pg))
		return 0;
	bn = &m->nodes[i + 1];
	if (bn->info.type != PB_LAYER_BN || bn->info.inputs[0] != i)
		return 0;
	if (i + 2 < m->n_nodes && m->nodes[i + 2].info.type == PB_LAYER_RELU &&
	    m->nodes[i + 2].info.inputs[0] == i + 1)
		rl = &m->nodes[i + 2];
	else if (direct && !cv->sparse && i + 3 < m->n_nodes &&
		 (j = residual_end(m, i)) != PBI_NO_RESIDUAL)
		ad = &m->nodes[i + 2], rl = &m->nodes[i + 3];
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
	cv->y = cv->out;
	bn->y = bn->out;
	if (ad) {
		ep.residual = act(m, j, x);
		ep.residual_first = ad->info.inputs[0] == j;
		ep.add_out = ad->out;
		ad->y = ad->out;
		if (m->lean && !other_readers(m, i + 2, i + 3))
			ad->y = ep.add_out = NULL;
	}
	if (m->lean && !other_readers(m, i, i + 1))
		cv->y = NULL;
	if (m->lean && rl && !other_readers(m, i + 1, i + 2))
		bn->y = ep.bn_out = NULL;
	if (cv->sparse)
		pbi_sparse_conv_forward(cv->y ? cv->out : NULL,
					act(m, li->inputs[0], x),
					&cv->sparse->w, pdata(m, cv->bias),
					&cv->sparse->g, B, &ep, m->sp_ws);
	else if (!direct)
		pbi_conv_phase_forward(cv->y ? cv->out : NULL,
				       act(m, li->inputs[0], x),
				       pdata(m, cv->weight), pdata(m, cv->bias),
				       &pg, B, &ep, m->ws);
	else
		pbi_conv_direct_forward(cv->y ? cv->out : NULL,
					act(m, li->inputs[0], x),
					pdata(m, cv->weight),
					pdata(m, cv->bias), B, li->in_c,
					li->in_h, li->in_w, li->out_c, 0,
					&ep);
	if (rl)
		rl->y = rl->out;
	return ad ? 4 : rl ? 3 : 2;
}

/* Training forward of BN -> ReLU in one pass, the same bits as the two
 * layers. When nothing else reads the BN's output, it is not stored:
 * backward needs only the BN's input and the ReLU's output, and only
 * eval forwards' activations are ever read from outside (calibration).
 * Returns how many nodes it ran (0: not this pattern). */
static int forward_fused_add_relu(pb_model *m, int i, const float *x,
				  int B, int train);

static int forward_fused_train(pb_model *m, int i, const float *x, int B)
{
	pbi_node *bn = &m->nodes[i], *rl;
	int others = 0;

	if (bn->info.type == PB_LAYER_ADD)
		return forward_fused_add_relu(m, i, x, B, 1);
	if (bn->info.type != PB_LAYER_BN || i + 1 >= m->n_nodes)
		return 0;
	rl = &m->nodes[i + 1];
	if (rl->info.type != PB_LAYER_RELU || rl->info.inputs[0] != i)
		return 0;
	for (int j = i + 2; j < m->n_nodes && !others; j++)
		for (int k = 0; k < m->nodes[j].info.n_inputs; k++)
			others |= m->nodes[j].info.inputs[k] == i;
	if (!others) {
		pbi_bn_forward_train(NULL, rl->out, bn->bn_saved,
				     bn->bn_saved + bn->info.out_c,
				     pdata(m, bn->run_mean),
				     pdata(m, bn->run_var),
				     act(m, bn->info.inputs[0], x),
				     pdata(m, bn->gamma), pdata(m, bn->beta),
				     B, bn->info.out_c,
				     bn->info.out_h * bn->info.out_w,
				     bn->info.eps, bn->info.momentum);
		bn->y = NULL;
		rl->y = rl->out;
		return 2;
	}
	fwd_bn(m, bn, act(m, bn->info.inputs[0], x), B, 1, rl->out);
	bn->y = bn->out;
	rl->y = rl->out;
	return 2;
}

/* Residual add -> ReLU in one pass. The add's output is stored unless
 * only the ReLU reads it and the forward is a training (backward needs
 * only the ReLU's output) or a lean one. */
static int forward_fused_add_relu(pb_model *m, int i, const float *x,
				  int B, int train)
{
	pbi_node *ad = &m->nodes[i], *rl;
	const size_t len = (size_t)B * ad->out_n;
	int keep;

	if (ad->info.type != PB_LAYER_ADD || i + 1 >= m->n_nodes)
		return 0;
	rl = &m->nodes[i + 1];
	if (rl->info.type != PB_LAYER_RELU || rl->info.inputs[0] != i)
		return 0;
	keep = !(train || m->lean) || other_readers(m, i, i + 1);
	pbi_add_relu_forward(keep ? ad->out : NULL, rl->out,
			     act(m, ad->info.inputs[0], x),
			     act(m, ad->info.inputs[1], x), len);
	ad->y = keep ? ad->out : NULL;
	rl->y = rl->out;
	return 2;
}

static int forward(pb_model *m, const float *x, int B, int mode,
		   gsl_rng *rng, const float **logits, pb_error *err)
{
	const float *xin = x;
	size_t in_len;

	if (!x || B < 1)
		return pb_error_set(err, PB_EINVAL,
				    "pb_model_forward: %s", !x ? "x is NULL" :
				    "batch size must be >= 1");
	if (mode == FWD_TRAIN && m->has_dropout && !rng)
		return pb_error_set(err, PB_EINVAL,
				    "model %s has dropout: a training forward "
				    "needs an rng", m->name);
	if (ensure_forward(m, B, mode))
		return pb_error_set(err, PB_ENOMEM,
				    "out of memory for the activations of "
				    "model %s at batch size %d; use a smaller "
				    "batch", m->name, B);
	/* Activations are about to change: an old backward is void. */
	m->have_train = 0;
	m->grad_eval = 0;
	/* Training changes the weights a sparse session compressed, and a
	 * backward needs the dense layers' activations. */
	if (mode != FWD_EVAL && m->sparse_on)
		pbi_model_sparse_end(m);
	if (mode != FWD_EVAL) {
		/* Keep our own copy: backward reads it after the caller may
		 * have refilled its batch buffer. */
		in_len = (size_t)B * m->in_c * m->in_h * m->in_w;
		memcpy(m->xbuf, x, in_len * sizeof(float));
		xin = m->xbuf;
	}
	for (int i = 0; i < m->n_nodes;) {
		/* The eval forward for a gradient runs layer by layer: its
		 * backward reads every activation and BN's running
		 * statistics, which the fused training passes do not keep. */
		int done = mode == FWD_TRAIN ?
				   forward_fused_train(m, i, xin, B) :
			   mode == FWD_EVAL ?
				   forward_fused_eval(m, i, xin, B) : 0;

		if (!done && mode == FWD_EVAL)
			done = forward_fused_add_relu(m, i, xin, B, 0);

		if (!done) {
			forward_node(m, i, xin, B, mode, rng);
			done = 1;
		}
		if (mode == FWD_EVAL && m->eval_hook)
			m->eval_hook(m->eval_hook_user, m, i, done, B);
		i += done;
	}
	m->batch = B;
	m->have_train = mode != FWD_EVAL;
	m->grad_eval = mode == FWD_EVAL_GRAD;
	if (logits)
		*logits = m->nodes[m->n_nodes - 1].y;
	return 0;
}

int pb_model_forward(pb_model *m, const float *x, int B, int train,
		     gsl_rng *rng, const float **logits, pb_error *err)
{
	return forward(m, x, B, train ? FWD_TRAIN : FWD_EVAL, rng, logits,
		       err);
}

int pbi_model_forward_eval_grad(pb_model *m, const float *x, int B,
				const float **logits, pb_error *err)
{
	return forward(m, x, B, FWD_EVAL_GRAD, NULL, logits, err);
}

/* ---- backward ------------------------------------------------------------ */

void pb_model_zero_grad(pb_model *m)
{
	memset(m->grad, 0, m->n_train * sizeof(float));
}

/* Where a layer puts the gradient for its input idx: the caller's dx
 * (added into, as documented; NULL when not wanted) or that node's dout,
 * which the first contribution overwrites (*ow = 1) and later ones add
 * into. */
static float *grad_to(pb_model *m, int idx, float *dx, int *ow)
{
	pbi_node *p;

	if (idx < 0) {
		*ow = 0;
		return dx;
	}
	p = &m->nodes[idx];
	*ow = !p->dout_ok;
	p->dout_ok = 1;
	return p->dout;
}

static void bwd_pool(pbi_node *n, float *din, int B, int ow)
{
	const pb_layer_info *li = &n->info;

	if (li->type == PB_LAYER_MAXPOOL)
		pbi_maxpool_backward(din, n->dout, n->argmax, B, li->in_c,
				     li->in_h, li->in_w, li->kernel,
				     li->stride, ow);
	else if (li->global)
		pbi_avgpool_backward(din, n->dout, B, li->in_c, li->in_h,
				     li->in_w, li->in_h, li->in_w, 1, ow);
	else
		pbi_avgpool_backward(din, n->dout, B, li->in_c, li->in_h,
				     li->in_w, li->kernel, li->kernel,
				     li->stride, ow);
}

/* dout into din: copied (ow) or added. */
static void pass_grad(float *din, const float *dout, size_t len, int ow)
{
	if (ow)
		memcpy(din, dout, len * sizeof *din);
	else
		pb_add_backward(din, NULL, dout, len);
}

static int relu_fused(const pb_model *m, const pbi_node *rl);

static void bwd_add(pb_model *m, pbi_node *n, float *dx, size_t len)
{
	int ow;
	float *da;

	if (n->n_use == 1 && relu_fused(m, &m->nodes[n->user])) {
		/* ReLU(a + b) backward in one pass */
		const pbi_node *rl = &m->nodes[n->user];
		int ow_b;
		float *db;

		da = grad_to(m, n->info.inputs[0], dx, &ow);
		db = grad_to(m, n->info.inputs[1], dx, &ow_b);
		pbi_add_relu_backward(da, ow, db, ow_b, rl->dout, rl->y, len);
		return;
	}
	da = grad_to(m, n->info.inputs[0], dx, &ow);

	/* For x + x the second grad_to sees the first's write and adds. */
	if (da)
		pass_grad(da, n->dout, len, ow);
	da = grad_to(m, n->info.inputs[1], dx, &ow);
	if (da)
		pass_grad(da, n->dout, len, ow);
}

/* A ReLU whose input is a BN or a residual add read by nothing else:
 * its backward is done by theirs, in the same pass (pbi_bn_backward with
 * relu_out, pbi_add_relu_backward). Not after an eval forward for a
 * gradient, whose BN backward is the eval one. */
static int relu_fused(const pb_model *m, const pbi_node *rl)
{
	const int j = rl->info.inputs[0];

	return !m->grad_eval && rl->info.type == PB_LAYER_RELU && j >= 0 &&
	       (m->nodes[j].info.type == PB_LAYER_BN ||
		m->nodes[j].info.type == PB_LAYER_ADD) &&
	       m->nodes[j].n_use == 1;
}

static void backward_node(pb_model *m, int i, const float *x, float *dx,
			  int B)
{
	pbi_node *n = &m->nodes[i];
	const pb_layer_info *li = &n->info;
	const float *in = act(m, li->inputs[0], x);
	const size_t len = (size_t)B * n->out_n;
	const pbi_node *rl = NULL;
	float *din;
	int ow;

	if (li->type == PB_LAYER_ADD) {
		bwd_add(m, n, dx, len);
		return;
	}
	if (relu_fused(m, n))
		return;
	din = grad_to(m, li->inputs[0], dx, &ow);
	switch (li->type) {
	case PB_LAYER_CONV:
		pbi_conv2d_backward(din, pgrad(m, n->weight),
				    pgrad(m, n->bias), n->dout, in,
				    pdata(m, n->weight), B, li->in_c, li->in_h,
				    li->in_w, li->out_c, li->kernel,
				    li->stride, li->pad, m->ws, ow);
		break;
	case PB_LAYER_BN:
		if (n->n_use == 1 && relu_fused(m, &m->nodes[n->user]))
			rl = &m->nodes[n->user];
		if (m->grad_eval) {
			/* Rare (criteria at initialisation): the eval
			 * backward only adds, so a first consumer zeroes. */
			if (din && ow)
				memset(din, 0, len * sizeof *din);
			pb_bn_backward_eval(din, pgrad(m, n->gamma),
					    pgrad(m, n->beta), n->dout, in,
					    pdata(m, n->gamma),
					    pdata(m, n->run_mean),
					    pdata(m, n->run_var), B, li->out_c,
					    li->out_h * li->out_w, li->eps);
		} else
			pbi_bn_backward(din, pgrad(m, n->gamma),
					pgrad(m, n->beta),
					rl ? rl->dout : n->dout,
					rl ? rl->y : NULL, in, n->bn_saved,
					n->bn_saved + li->out_c,
					pdata(m, n->gamma), B, li->out_c,
					li->out_h * li->out_w, ow);
		break;
	case PB_LAYER_LINEAR:
		pbi_linear_backward(din, pgrad(m, n->weight),
				    pgrad(m, n->bias), n->dout, in,
				    pdata(m, n->weight), B, (int)n->in_n,
				    li->out_c, ow);
		break;
	default:
		/* The rest have no parameters: nothing to do without din. */
		if (!din)
			break;
		if (li->type == PB_LAYER_RELU)
			pbi_relu_backward(din, n->dout, n->y, len, ow);
		else if (li->type == PB_LAYER_DROPOUT && !m->grad_eval)
			pbi_dropout_backward(din, n->dout, n->keep, len, ow);
		else if (li->type == PB_LAYER_FLATTEN ||
			 li->type == PB_LAYER_DROPOUT)
			/* Both pass the gradient through unchanged (dropout
			 * is the identity in eval mode). */
			pass_grad(din, n->dout, len, ow);
		else
			bwd_pool(n, din, B, ow);
	}
}

static int ensure_backward(pb_model *m, int B)
{
	for (int i = 0; i < m->n_nodes; i++) {
		pbi_node *n = &m->nodes[i];
		size_t len = (size_t)B * n->out_n;
		if (pb_fensure(&n->dout, &n->dout_cap, len))
			return PB_ENOMEM;
		/* No zeroing: the first consumer overwrites (grad_to). */
		n->dout_ok = 0;
		n->n_use = 0;
		n->user = -1;
	}
	for (int i = 0; i < m->n_nodes; i++)
		for (int k = 0; k < m->nodes[i].info.n_inputs; k++) {
			const int j = m->nodes[i].info.inputs[k];
			if (j >= 0) {
				m->nodes[j].n_use++;
				m->nodes[j].user = i;
			}
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
				    "model %s kept nothing for backward; call "
				    "pb_model_forward with train = 1 (or "
				    "pbi_model_forward_eval_grad) first",
				    m->name);
	if (!dlogits)
		return pb_error_set(err, PB_EINVAL,
				    "pb_model_backward: dlogits is NULL");
	if (ensure_backward(m, B))
		return pb_error_set(err, PB_ENOMEM,
				    "out of memory for the gradients of model "
				    "%s at batch size %d", m->name, B);
	memcpy(last->dout, dlogits, (size_t)B * last->out_n * sizeof(float));
	last->dout_ok = 1;
	for (int i = m->n_nodes - 1; i >= 0; i--)
		backward_node(m, i, m->xbuf, dx, B);
	return 0;
}

int pb_model_backward(pb_model *m, const float *dlogits, pb_error *err)
{
	return pbi_model_backward_dx(m, dlogits, NULL, err);
}
