/* prunebench: everything a program using the library needs. */
#ifndef PRUNEBENCH_H
#define PRUNEBENCH_H

#include "prunebench/version.h"
#include "prunebench/error.h"
#include "prunebench/tensor.h"
#include "prunebench/layers.h"
#include "prunebench/model.h"
#include "prunebench/data.h"
#include "prunebench/quantize.h"
#include "prunebench/checkpoint.h"
#include "prunebench/train.h"
#include "prunebench/bench.h"
#include "prunebench/pruner.h"
#include "prunebench/target.h"
#include "prunebench/plugin.h"
#include "prunebench/metrics.h"
#include "prunebench/table.h"
#include "prunebench/sensitivity.h"
#include "prunebench/experiment.h"

#endif
