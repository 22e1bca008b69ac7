/* The model's internals, shared by core/model*.c and by code inside the
 * library (pruning, checkpoints, tests) that needs more than model.h.
 * Not installed; functions here use the pbi_ prefix and are not exported. */
#ifndef PB_MODEL_IMPL_H
#define PB_MODEL_IMPL_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "prunebench/error.h"
#include "prunebench/model.h"

/* Each trainable tensor starts on a 16-float (64-byte) boundary inside the
 * flat arrays, so per-tensor kernels get aligned pointers. */
#define PBI_PARAM_ALIGN 16

/* Longest layer name; inih truncates section names at 49 bytes, and
 * "NAME.running_mean" must stay readable. */
#define PBI_NAME_MAX 40

/* One layer of the graph plus the buffers it owns. */
/* Bounds that keep every size computation far from int overflow. */
#define MAX_DIM (1 << 16)
#define MAX_SAMPLE_ELEMS ((size_t)1 << 28)
#define MAX_TENSOR_ELEMS ((size_t)1 << 30)
/* All of a model's parameters and statistics: 2^27 floats is 512 MiB for
 * the weights and as much for their gradients, past any model for 28x28
 * or 32x32 images (VGG-16 for CIFAR-10 has 15 million). */
#define MAX_MODEL_ELEMS ((size_t)1 << 27)

typedef struct pbi_node {
	pb_layer_info info;   /* info.name points at name */
	char *name;
	/* The output is a flat feature vector (flatten, linear, or an
	 * elementwise layer on one), the only input linear accepts. */
	int flat;
	size_t in_n, out_n;   /* elements of one sample (first input, output) */

	/* Indices into pb_model.params, -1 when the layer has none. */
	int weight, bias, gamma, beta, run_mean, run_var;

	/* Activations of the last forward, grown to the largest batch seen.
	 * y is what consumers read: out, or for flatten its input's buffer
	 * (flatten only reinterprets the shape, so it never copies). */
	float *out;
	size_t out_cap;
	const float *y;
	/* Gradient of the loss w.r.t. y. Not zeroed before backward: its
	 * first consumer writes it, later ones add (dout_ok set once
	 * written). n_use counts the consumers (an add reading the node
	 * twice counts twice); user is the last one. */
	float *dout;
	size_t dout_cap;
	int dout_ok;
	int n_use, user;

	/* Saved by a training forward for backward; eval never writes them. */
	float *bn_saved;      /* bn: batch mean (C) then 1/sqrt(var+eps) (C) */
	int32_t *argmax;      /* maxpool (B, C, OH, OW) */
	size_t argmax_cap;
	float *keep;          /* dropout keep mask (B, n) */
	size_t keep_cap;

	/* During a sparse inference session, the compressed weight of a
	 * conv or linear layer that takes the sparse kernel; else NULL. */
	struct pbi_sparse_layer *sparse;
} pbi_node;

struct pb_model {
	char *name;
	char *source;         /* file (or string label) the graph came from */
	int in_c, in_h, in_w;
	int classes;

	int n_nodes;
	pbi_node *nodes;

	int n_params;
	pb_param *params;     /* layer order; data/grad point into the arrays */
	/* Trainable parameters and their gradients: one allocation each, in
	 * pb_model_param order, every tensor 16-float aligned (the gaps are
	 * zero and stay zero). Running statistics live apart in stats. */
	float *data;
	float *grad;
	size_t n_train;       /* floats in data and grad, gaps included */
	float *stats;
	size_t n_stats;
	/* Weight masks (core/mask.c): n_train floats laid out like data, 1
	 * kept and 0 pruned, so the optimizer masks in its one loop. NULL
	 * until the first mask is created; then every entry without a mask
	 * (other tensors, alignment gaps) is 1. masked[i] != 0 when
	 * params[i] has a mask of its own (n_params entries). */
	float *mask;
	uint8_t *masked;

	/* Scratch shared by every layer, grown on demand. */
	float *ws;            /* conv im2col workspace */
	size_t ws_cap;
	/* maxpool argmax of eval forwards, so the saved ones survive */
	int32_t *eval_argmax;
	size_t eval_argmax_cap;
	float *xbuf;          /* copy of the training input, read by backward */
	size_t xbuf_cap;

	/* Sparse inference session (model_sparse.c): layers with a
	 * pbi_node.sparse run on the sparse kernels in eval forwards. */
	int sparse_on;
	float *sp_ws;         /* their workspace */
	size_t sp_ws_cap;
	/* Lean eval forwards (pbi_model_set_lean): a fused conv -> BN
	 * (-> ReLU) stores only the outputs other layers read. */
	int lean;
	/* Eval forwards call this after each layer, or each group of
	 * layers run fused, with the first layer's index and how many ran:
	 * the int8 evaluation rounds activations there (core/nn/quant.c).
	 * NULL: nothing. Not copied by clone. */
	void (*eval_hook)(void *user, pb_model *m, int first, int n, int B);
	void *eval_hook_user;

	int batch;            /* B of the last forward */
	int have_train;       /* the last forward kept what backward needs */
	int grad_eval;        /* ... and it was an eval-mode one
				 (pbi_model_forward_eval_grad) */
	int has_dropout;
};

/* Builds a model from layer descriptions whose type, inputs and
 * hyperparameters (out_c for conv/linear, kernel, stride, pad, has_bias,
 * global, eps, momentum, p, line, name) are set; in_* and out_* shapes are
 * computed and checked here, errors naming "source:line". Parameters are
 * zero. Used by the INI parser, clone, and channel pruning, which rebuilds
 * a smaller model from edited descriptions. */
int pbi_model_build(pb_model **out, const char *name, int in_c, int in_h,
		    int in_w, int classes, const pb_layer_info *layers,
		    int n_layers, const char *source, pb_error *err);

/* An eval-mode forward (BN on its running statistics, a fixed affine
 * map; dropout off; nothing updated) that keeps what backward needs, so
 * that pb_model_backward then differentiates the model as it is
 * evaluated, not as it trains: the gradients pruning criteria at
 * initialisation take (SNIP, SynFlow). */
int pbi_model_forward_eval_grad(pb_model *m, const float *x, int B,
				const float **logits, pb_error *err);

/* pb_model_backward that also ADDS the gradient w.r.t. the input x of the
 * last training forward into dx (B, C, H, W) when dx is not NULL. */
int pbi_model_backward_dx(pb_model *m, const float *dlogits, float *dx,
			  pb_error *err);

/* Sparse inference session. From begin to end, eval forwards run every
 * conv and linear layer whose weight is sparse enough to gain (its
 * density measured at begin against the kernels' break-even densities)
 * on the sparse kernels of nn/layers/sparse.h, which read the weights
 * as they were at begin: the weights must not change before end. A
 * training forward, a checkpoint load and pb_model_free end it. Without
 * a sparse kernel on this CPU (or with PB_SPARSE=off) no layer takes it.
 * Returns the number of layers on the sparse kernel, or PB_ENOMEM (then
 * no session is open). end is a no-op without a session. */
int pbi_model_sparse_begin(pb_model *m);
void pbi_model_sparse_end(pb_model *m);

/* Lean eval forwards, for callers that read only the logits (timing,
 * throughput): the conv and BN outputs inside a fused conv -> BN -> ReLU
 * are not stored (their y is NULL), saving two of three activation
 * writes. Calibration, which reads any layer's input, needs the default
 * (off). */
void pbi_model_set_lean(pb_model *m, int on);

/* Parses the type names written in model files ("conv"); -1 if unknown. */
int pbi_layer_type_parse(const char *s);

/* The model INI text of m (what pb_model_write_ini writes) on f. */
void pbi_model_ini_print(FILE *f, const pb_model *m);

/* Infers every node's shapes from its inputs and checks the graph (all
 * layers used, logits of the class count); core/nn/model_shapes.c. */
int pbi_model_infer(pb_model *m, pb_error *err);

/* "SOURCE:LINE: [layer] message": an error about one layer of a model
 * file. Returns code. */
int pbi_layer_err(pb_error *err, int code, const char *source,
		  const pb_layer_info *li, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

#endif
