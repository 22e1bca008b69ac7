/* The int8 evaluation's hook into eval forwards (core/nn/quant.c): it
 * widens the calibration ranges of the marked activations, or rounds
 * them, right after the layers that produce them ran. Not installed. */
#ifndef PB_NN_QUANT_IMPL_H
#define PB_NN_QUANT_IMPL_H

#include "prunebench/quantize.h"

typedef struct pbi_quant_run {
	pb_quant *q;
	int calibrate;     /* 1: widen ranges; 0: round */
} pbi_quant_run;

/* Installs the hook on m (run NULL removes it). */
void pbi_quant_attach(pb_model *m, pbi_quant_run *run);

#endif
