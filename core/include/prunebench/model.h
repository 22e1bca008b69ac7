/* A model: a named graph of layers read from a model INI file.
 *
 * Model INI format (read with inih):
 *
 *   [model]
 *   name = vgg-s          ; at most 64 characters, no ';'
 *   input = 1x28x28        ; C x H x W of one sample
 *   classes = 10
 *
 *   [conv1]                ; section name = layer name, unique
 *   type = conv            ; conv|bn|relu|maxpool|avgpool|linear|flatten|
 *                          ; dropout|add
 *   out = 16               ; conv: out channels; linear: out features
 *   kernel = 3
 *   stride = 1             ; default 1
 *   pad = 1                ; default 0
 *   bias = no              ; conv default yes; linear default yes
 *   input = conv0          ; default: the previous section; "input" = model input
 *
 *   [res1]
 *   type = add
 *   inputs = bn2, proj1    ; add takes exactly two, same shape
 *
 *   maxpool/avgpool: kernel, stride (default = kernel); avgpool also
 *   global = yes. bn: eps (1e-5), momentum (0.1). dropout: p (0.5).
 *
 * The last layer's output is the logits, shape (classes). A model holds at
 * most 2^27 (134 million) parameters and statistics. Every error names
 * file:line and the offending key. */
#ifndef PRUNEBENCH_MODEL_H
#define PRUNEBENCH_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include <gsl/gsl_rng.h>

#include "prunebench/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum pb_layer_type {
	PB_LAYER_CONV,
	PB_LAYER_BN,
	PB_LAYER_RELU,
	PB_LAYER_MAXPOOL,
	PB_LAYER_AVGPOOL,
	PB_LAYER_LINEAR,
	PB_LAYER_FLATTEN,
	PB_LAYER_DROPOUT,
	PB_LAYER_ADD
} pb_layer_type;

typedef enum pb_param_kind {
	PB_PARAM_WEIGHT,     /* conv (OC,C,K,K) or linear (OUT,IN) weight */
	PB_PARAM_BIAS,       /* conv or linear bias (OC) */
	PB_PARAM_BN_GAMMA,   /* batchnorm scale (C) */
	PB_PARAM_BN_BETA,    /* batchnorm shift (C) */
	PB_PARAM_BN_MEAN,    /* running mean (C): state, not trained */
	PB_PARAM_BN_VAR,     /* running variance (C): state, not trained */
	PB_PARAM_MASK,       /* a weight's pruning mask ("conv1.weight.mask",
				1 kept, 0 pruned): only in checkpoints, never
				one of a model's params */
	PB_PARAM_ACT_QUANT   /* an int8 file's activation range of a layer's
				output ("conv1.act", "input.act": lo, hi);
				only in checkpoints (quantize.h) */
} pb_param_kind;

/* One named tensor of model state ("conv1.weight", "bn1.running_mean").
 * data and grad point into the model's flat allocations; grad is NULL for
 * running statistics. */
typedef struct pb_param {
	const char *name;
	pb_param_kind kind;
	int layer;          /* index of the owning layer */
	int ndim;
	int shape[4];
	size_t n;           /* number of elements */
	float *data;
	float *grad;
	int trainable;      /* 0 for running statistics */
} pb_param;

/* Read-only description of one layer, for reports and pruning. */
typedef struct pb_layer_info {
	const char *name;
	pb_layer_type type;
	int n_inputs;
	int inputs[2];      /* layer indices; -1 is the model input */
	int in_c, in_h, in_w;
	int out_c, out_h, out_w;
	int kernel, stride, pad;   /* conv, pools */
	int has_bias;              /* conv, linear */
	int global;                /* avgpool */
	float eps, momentum;       /* bn */
	float p;                   /* dropout */
	int line;                  /* line of its section in the model file */
} pb_layer_info;

typedef struct pb_model pb_model;

/* Parses a model INI file and builds the graph (parameters zeroed; call
 * pb_model_init_params before training). */
int pb_model_load(pb_model **out, const char *path, pb_error *err);
/* Same from a string; `source` names it in messages. */
int pb_model_parse(pb_model **out, const char *text, const char *source,
		   pb_error *err);
void pb_model_free(pb_model *m);

/* A deep copy (graph, parameters, running statistics). */
int pb_model_clone(pb_model **out, const pb_model *m, pb_error *err);

const char *pb_model_name(const pb_model *m);
void pb_model_input_shape(const pb_model *m, int *c, int *h, int *w);
int pb_model_classes(const pb_model *m);

int pb_model_n_layers(const pb_model *m);
const pb_layer_info *pb_model_layer(const pb_model *m, int i);
/* Index of the layer with this name, or -1. */
int pb_model_find_layer(const pb_model *m, const char *name);

/* Every state tensor, in a fixed order (layer order; weight, bias, gamma,
 * beta, running mean, running var). */
int pb_model_n_params(const pb_model *m);
pb_param *pb_model_param(pb_model *m, int i);
/* Lookup by full name, "conv1.weight"; NULL when absent. */
pb_param *pb_model_find_param(pb_model *m, const char *name);
/* The flat arrays of all trainable parameters and their gradients, in the
 * order of pb_model_param (running statistics excluded), so an optimizer
 * is one loop. */
size_t pb_model_trainable_size(const pb_model *m);
float *pb_model_trainable_data(pb_model *m);
float *pb_model_trainable_grad(pb_model *m);

/* How conv weights start (everything else is the same in both):
 * PB_INIT_KAIMING_OUT is torchvision's kaiming_normal_(mode="fan_out",
 * nonlinearity="relu"), std sqrt(2 / (OC K K)); PB_INIT_TORCH_DEFAULT is
 * what a freshly made torch.nn.Conv2d holds, kaiming_uniform_ with
 * a = sqrt(5), i.e. uniform in +-1/sqrt(C K K). Linear weights and all
 * biases are PyTorch's default uniform +-1/sqrt(fan_in), BN gamma 1 and
 * beta 0, running statistics (0, 1). */
typedef enum pb_init_kind {
	PB_INIT_KAIMING_OUT = 0,
	PB_INIT_TORCH_DEFAULT = 1
} pb_init_kind;

int pb_model_init(pb_model *m, gsl_rng *rng, pb_init_kind kind,
		  pb_error *err);
/* pb_model_init with PB_INIT_KAIMING_OUT. */
int pb_model_init_params(pb_model *m, gsl_rng *rng, pb_error *err);

/* Forward pass on x (B, C, H, W). train != 0 uses batch statistics,
 * dropout (drawn from rng, which may be NULL when train == 0) and saves
 * what backward needs. Workspaces grow on demand and are reused.
 * Returns the logits (B, classes), owned by the model. */
int pb_model_forward(pb_model *m, const float *x, int B, int train,
		     gsl_rng *rng, const float **logits, pb_error *err);

/* Zeroes all parameter gradients. */
void pb_model_zero_grad(pb_model *m);
/* Backward of the last training forward; dlogits is (B, classes).
 * Gradients are ADDED to the parameter grads. */
int pb_model_backward(pb_model *m, const float *dlogits, pb_error *err);

/* Sizes. MACs are of one sample's forward pass through conv and linear
 * layers (the convention of pruning papers). */
size_t pb_model_count_params(const pb_model *m);   /* trainable only */
size_t pb_model_layer_params(const pb_model *m, int layer);
uint64_t pb_model_layer_macs(const pb_model *m, int layer);
uint64_t pb_model_count_macs(const pb_model *m);

/* Writes the model definition back as INI text (for pruned models whose
 * shapes changed). Returns 0 or an error. */
int pb_model_write_ini(const pb_model *m, const char *path, pb_error *err);

const char *pb_layer_type_name(pb_layer_type t);

#ifdef __cplusplus
}
#endif
#endif
