/* prunebench: everything a program using the library needs. */
#ifndef PRUNEBENCH_H
#define PRUNEBENCH_H

#include "prunebench/error.h"
#include "prunebench/tensor.h"
#include "prunebench/layers.h"
#include "prunebench/model.h"
#include "prunebench/data.h"
#include "prunebench/checkpoint.h"
#include "prunebench/train.h"
#include "prunebench/bench.h"
#include "prunebench/pruner.h"
#include "prunebench/plugin.h"
#include "prunebench/metrics.h"
#include "prunebench/table.h"
#include "prunebench/experiment.h"

#define PB_VERSION_STRING "0.1.0"

#ifdef __cplusplus
extern "C" {
#endif

/* Version of the library actually linked. */
const char *pb_version(void);

/* The BLAS in use ("OpenBLAS (Haswell core)", "GSL reference CBLAS"). */
const char *pb_blas_name(void);

#ifdef __cplusplus
}
#endif
#endif
