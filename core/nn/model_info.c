/* Sizes of a model as pruning papers report them: trainable parameters,
 * and multiply-accumulates of one sample's forward pass through conv and
 * linear layers (BN, pooling, activations and adds are not counted). */
#include "nn/model_impl.h"

const char *pb_layer_type_name(pb_layer_type t)
{
	switch (t) {
	case PB_LAYER_CONV: return "conv";
	case PB_LAYER_BN: return "bn";
	case PB_LAYER_RELU: return "relu";
	case PB_LAYER_MAXPOOL: return "maxpool";
	case PB_LAYER_AVGPOOL: return "avgpool";
	case PB_LAYER_LINEAR: return "linear";
	case PB_LAYER_FLATTEN: return "flatten";
	case PB_LAYER_DROPOUT: return "dropout";
	case PB_LAYER_ADD: return "add";
	}
	return "unknown";
}

size_t pb_model_layer_params(const pb_model *m, int layer)
{
	size_t n = 0;

	for (int i = 0; i < m->n_params; i++)
		if (m->params[i].layer == layer && m->params[i].trainable)
			n += m->params[i].n;
	return n;
}

size_t pb_model_count_params(const pb_model *m)
{
	size_t n = 0;

	for (int i = 0; i < m->n_params; i++)
		if (m->params[i].trainable)
			n += m->params[i].n;
	return n;
}

uint64_t pb_model_layer_macs(const pb_model *m, int layer)
{
	const pb_layer_info *li;
	uint64_t k;

	if (layer < 0 || layer >= m->n_nodes)
		return 0;
	li = &m->nodes[layer].info;
	switch (li->type) {
	case PB_LAYER_CONV:
		k = (uint64_t)li->kernel * (uint64_t)li->kernel;
		return (uint64_t)li->out_c * (uint64_t)li->out_h *
		       (uint64_t)li->out_w * (uint64_t)li->in_c * k;
	case PB_LAYER_LINEAR:
		return (uint64_t)m->nodes[layer].in_n * (uint64_t)li->out_c;
	default:
		return 0;
	}
}

uint64_t pb_model_count_macs(const pb_model *m)
{
	uint64_t n = 0;

	for (int i = 0; i < m->n_nodes; i++)
		n += pb_model_layer_macs(m, i);
	return n;
}
