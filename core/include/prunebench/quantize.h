/* Post-training int8 quantization of a (pruned) model, as deployed after
 * pruning: per-output-channel symmetric int8 weights and, optionally,
 * per-tensor 8-bit activations calibrated on the validation split.
 *
 * Weights: for each row r of a conv (OC,C,K,K) or linear (OUT,IN) weight,
 * scale_r = max |w| / 127 and q = round(w / scale_r) in [-127, 127]. The
 * model keeps the dequantized values q * scale_r (float32 arithmetic), so
 * every later forward runs the real rounding, and 0.0 maps to q = 0 and
 * back to exactly +0.0: pruning's zeros and its masks survive bit for
 * bit. Every weight moves by at most scale_r / 2. Biases, batch-norm
 * parameters and running statistics stay float32 (they are a few values
 * per channel).
 *
 * Activations (optional): every tensor that a conv or linear layer reads
 * (the model input included; through flatten, its producer's output) is
 * rounded per tensor to 8 bits, affine with a zero point chosen so that
 * 0.0 is exact (TFLite's scheme): range [lo, hi] from the calibration
 * data with lo <= 0 <= hi, scale = (hi - lo) / 255, zero = round(-lo /
 * scale), x -> (clamp(round(x / scale) + zero, 0, 255) - zero) * scale.
 * After a ReLU lo is 0, so the code is uint8 without offset. Rounding
 * happens in the output buffer of the producing layer, as if the tensor
 * were stored in 8 bits, so every consumer reads the rounded values.
 *
 * The int8 checkpoint (checkpoint.h) stores q and scale_r for every
 * quantized weight and the activations' (scale, zero), so loading it back
 * gives these very weights and evaluating it gives the same accuracy. */
#ifndef PRUNEBENCH_QUANTIZE_H
#define PRUNEBENCH_QUANTIZE_H

#include <stddef.h>
#include <stdint.h>

#include "prunebench/error.h"
#include "prunebench/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* data.h's data set; declared here so that this header (nn's) does not
 * depend on the data layer. */
struct pb_dataset;

/* One activation tensor's 8-bit code. */
typedef struct pb_act_quant {
	int on;          /* this tensor is rounded */
	float lo, hi;    /* the calibrated range, lo <= 0 <= hi */
	float scale;     /* (hi - lo) / 255; 0 for an all-zero range */
	int32_t zero;    /* in [0, 255]: the code of 0.0 */
} pb_act_quant;

typedef struct pb_quant {
	int n_params;
	/* Per model param (pb_model_param order): the per-row scales of a
	 * quantized weight (shape[0] of them), NULL for float32 tensors. */
	float **scales;
	int n_layers;
	int activations;       /* 1: activations are rounded */
	pb_act_quant input;    /* the model input */
	pb_act_quant *acts;    /* per layer: its output (n_layers) */
} pb_quant;

/* An empty plan for m: no weight quantized, no activation rounded. */
int pb_quant_new(pb_quant **out, const pb_model *m, pb_error *err);
void pb_quant_free(pb_quant *q);

/* Quantizes every conv and linear weight of m in place (the dequantized
 * values) and records the scales in q. */
int pb_quant_weights(pb_model *m, pb_quant *q, pb_error *err);

/* Marks the activation tensors that conv and linear layers read (the
 * model input included) for rounding; pb_quant_calibrate gives them
 * their ranges. */
void pb_quant_mark_activations(const pb_model *m, pb_quant *q);

/* The code of a range: scale and zero point with 0.0 exact. */
void pb_act_quant_set(pb_act_quant *a, float lo, float hi);
/* Rounds n values in place with a's code (no-op when a is off). */
void pb_act_quant_round(const pb_act_quant *a, float *x, size_t n);

/* Runs eval forwards of m over d (batches of `batch`) and sets the range
 * of every marked activation of q to the minimum and maximum seen. */
int pb_quant_calibrate(pb_model *m, pb_quant *q,
		       const struct pb_dataset *d,
		       int batch, pb_error *err);

/* Top-1 accuracy and mean loss of m on d with q's activations rounded
 * (m's weights are whatever they are: quantize them first). Without
 * activations to round it is pb_evaluate. */
int pb_quant_evaluate(pb_model *m, const pb_quant *q,
		      const struct pb_dataset *d,
		      int batch, double *acc, double *loss, pb_error *err);

/* The whole post-training step on m: weights to int8, and with
 * `activations` the activations marked and calibrated on calib (the
 * validation split). *out gets the plan (free with pb_quant_free). */
int pb_quantize_model(pb_model *m, int activations,
		      const struct pb_dataset *calib,
		      int batch, pb_quant **out, pb_error *err);

#ifdef __cplusplus
}
#endif
#endif
